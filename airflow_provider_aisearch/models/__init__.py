"""Internal: the models the API returns (jobs, instances, items) and the timestamps they are read with.

Import them from the public paths :mod:`airflow_provider_aisearch.jobs` and
:mod:`airflow_provider_aisearch.instances`; the modules here may move. The models import nothing from Airflow and
nothing else from the provider (the bottom layer, with :mod:`airflow_provider_aisearch.exceptions`).
"""
