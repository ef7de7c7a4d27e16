"""Public path (the create operator's module, as OpenLineage's disabled_for_operators names it; README).

A re-export only: the code lives in :mod:`airflow_provider_aisearch.tasks.create_operator`.
"""

from __future__ import annotations

from airflow_provider_aisearch.tasks.create_operator import (
    IF_RUNNING,
    AISearchCreateJobOperator,
)

__all__ = [
    "IF_RUNNING",
    "AISearchCreateJobOperator",
]
