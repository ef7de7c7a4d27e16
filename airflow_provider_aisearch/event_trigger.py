"""Public path (the classpath the event trigger serializes under, which Airflow stores and hashes).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.events.event_trigger`.
"""

from __future__ import annotations

from airflow_provider_aisearch.events.event_trigger import (
    CLASSPATH,
    EVENT_SOURCES,
    EVENT_SPACING,
    PERSIST_GRACE,
    STATE_KEY_PREFIX,
    AISearchJobEventTrigger,
)

__all__ = [
    "CLASSPATH",
    "EVENT_SOURCES",
    "EVENT_SPACING",
    "PERSIST_GRACE",
    "STATE_KEY_PREFIX",
    "AISearchJobEventTrigger",
]
