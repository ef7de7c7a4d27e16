"""Internal: what the operators and the sensor do in a worker's task.

:mod:`.create_operator` and :mod:`.list_operator` are the operators (public in
:mod:`airflow_provider_aisearch.operators`), :mod:`.safe_create` starts a job without starting a second,
:mod:`.task_tries` finds the job an earlier try of the same task started, and :mod:`.job_wait` is the wait the
sensor and the create operator share (poll or defer to the trigger, then the quality gate). Import the operators
from :mod:`airflow_provider_aisearch.operators` and the sensor from :mod:`airflow_provider_aisearch.sensors`; the
modules here may move.
"""
