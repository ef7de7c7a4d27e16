"""Public path (the item counts' wait, DEFAULT_ITEMS_TIMEOUT named in the README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.waiting.item_stats`.
"""

from __future__ import annotations

from airflow_provider_aisearch.waiting.item_stats import (
    DEFAULT_ITEMS_TIMEOUT,
    MIN_STATS_GAP,
    items_deadline,
    items_pending,
    items_timeout_message,
    read_item_stats,
)

__all__ = [
    "DEFAULT_ITEMS_TIMEOUT",
    "MIN_STATS_GAP",
    "items_deadline",
    "items_pending",
    "items_timeout_message",
    "read_item_stats",
]
