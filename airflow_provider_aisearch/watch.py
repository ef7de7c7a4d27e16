"""Public path (the one poll-and-follow logic, JobWatch, named in the README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.waiting.watch`.
"""

from __future__ import annotations

from airflow_provider_aisearch.waiting.watch import (
    ON_SUPERSEDED,
    JobWatch,
    PollResult,
    find_successor,
    result_dict,
    validate_interval,
    validate_on_superseded,
)

__all__ = [
    "ON_SUPERSEDED",
    "JobWatch",
    "PollResult",
    "find_successor",
    "result_dict",
    "validate_interval",
    "validate_on_superseded",
]
