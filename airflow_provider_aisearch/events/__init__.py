"""Internal: event-driven scheduling, the triggerer side.

:mod:`.event_trigger` is the asset watcher's trigger (public as
:class:`airflow_provider_aisearch.triggers.AISearchJobEventTrigger`), :mod:`.watermark` what it has already fired
for, :mod:`.watch_pages` how it reads past the first page of a listing and :mod:`.watcher_backoff` how it backs off
while Cloudflare fails. Import the trigger from :mod:`airflow_provider_aisearch.triggers`; the modules here may move.
"""
