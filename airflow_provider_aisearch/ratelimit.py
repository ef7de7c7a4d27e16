"""Public path (the rate budget, named in the README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.api.ratelimit`.
"""

from __future__ import annotations

from airflow_provider_aisearch.api.ratelimit import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    MAX_WAIT,
    RateBudget,
    RateLimitState,
    budget_for,
    http_date,
    seconds_until,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_WINDOW",
    "MAX_WAIT",
    "RateBudget",
    "RateLimitState",
    "budget_for",
    "http_date",
    "seconds_until",
]
