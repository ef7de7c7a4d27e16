"""Internal: waiting for a job, shared by the sensor, the create operator and the triggers.

:mod:`.watch` is the one poll-and-follow logic (a job, or its successor, until it ends), :mod:`.polling` the
shared poller (one list request per credential, instance and interval, for every waiting trigger),
:mod:`.job_filter` which jobs a listing or a watcher keeps, :mod:`.item_stats` the wait for an ended job's
item counts and :mod:`.quality` the quality gate on them. Import what DAG code needs from the public modules
(:mod:`airflow_provider_aisearch.sensors`, :mod:`airflow_provider_aisearch.triggers`,
:mod:`airflow_provider_aisearch.quality`); the modules here may move.
"""
