"""Public path (the job models DAG code imports: README, example DAGs).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.models.jobs`.
"""

from __future__ import annotations

from airflow_provider_aisearch.models.jobs import (
    DEFAULT_END_REASON_POLICY,
    FAILING_STATUSES,
    SUCCESS_END_REASONS,
    TERMINAL_STATUSES,
    EndReasonPolicy,
    Job,
    JobLog,
    JobPage,
    JobStatus,
    MalformedJobError,
    parse_timestamp,
)

__all__ = [
    "DEFAULT_END_REASON_POLICY",
    "FAILING_STATUSES",
    "SUCCESS_END_REASONS",
    "TERMINAL_STATUSES",
    "EndReasonPolicy",
    "Job",
    "JobLog",
    "JobPage",
    "JobStatus",
    "MalformedJobError",
    "parse_timestamp",
]
