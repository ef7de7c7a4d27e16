"""Public path (the shared poller, named in the README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.waiting.polling`.
"""

from __future__ import annotations

from airflow_provider_aisearch.waiting.polling import (
    MIN_ROUND_GAP,
    Listing,
    OwnPolls,
    SharedJobPoller,
    SharedPolls,
    active_pollers,
    format_seconds,
    shared_polls,
)

__all__ = [
    "MIN_ROUND_GAP",
    "Listing",
    "OwnPolls",
    "SharedJobPoller",
    "SharedPolls",
    "active_pollers",
    "format_seconds",
    "shared_polls",
]
