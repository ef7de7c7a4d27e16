"""Public path (the quality gate, check_items named in the README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.waiting.quality`.
"""

from __future__ import annotations

from airflow_provider_aisearch.waiting.quality import (
    FAILED_ITEMS_LOGGED,
    OUTCOME_ERRORS,
    ItemCheck,
    ItemGate,
    check_items,
    ended_well,
    items_pending,
    items_timeout_message,
    read_item_stats,
)

__all__ = [
    "FAILED_ITEMS_LOGGED",
    "OUTCOME_ERRORS",
    "ItemCheck",
    "ItemGate",
    "check_items",
    "ended_well",
    "items_pending",
    "items_timeout_message",
    "read_item_stats",
]
