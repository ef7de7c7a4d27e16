"""Internal: the clients that carry the core's plans over HTTP, and what they share.

The sync transport (``requests``, :mod:`.requests_transport`) that
:class:`~airflow_provider_aisearch.hooks.AISearchHook` drives, the async client (``httpx``, :mod:`.async_client`)
the triggers use, their shared options (:mod:`.client_options`), the Airflow connection readers
(:mod:`.compat`), the hook's instance and item reads (:mod:`.instance_reads`) and its connection test
(:mod:`.connection_check`). Import the clients from :mod:`airflow_provider_aisearch.hooks`; the modules here
may move.
"""
