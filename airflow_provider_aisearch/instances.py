"""Public path (the instance and item models: tests/test_public_paths.py).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.models.instances` (and the item
logs and chunks in :mod:`airflow_provider_aisearch.models.items`).
"""

from __future__ import annotations

from airflow_provider_aisearch.models.instances import (
    ITEM_SORT_KEYS,
    STATS_COUNT_FIELDS,
    Instance,
    InstanceStats,
    Item,
    ItemStatus,
    MalformedInstanceError,
    MalformedStatsError,
    redact_url,
    url_secrets,
)
from airflow_provider_aisearch.models.items import ItemChunk, ItemLog

__all__ = [
    "ITEM_SORT_KEYS",
    "STATS_COUNT_FIELDS",
    "Instance",
    "InstanceStats",
    "Item",
    "ItemChunk",
    "ItemLog",
    "ItemStatus",
    "MalformedInstanceError",
    "MalformedStatsError",
    "redact_url",
    "url_secrets",
]
