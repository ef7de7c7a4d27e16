"""Scenario 9 of ``make deploy-check``: the event-driven DAG, run by a real triggerer's AssetWatcher.

The watcher polls its own emulator instance (``events9``, created by the scenario) every 2 s; each job
that ends there after the watcher began watching starts one run, which logs the job it was started by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Asset, dag, task

from airflow_provider_aisearch.assets import instance_uri
from airflow_provider_aisearch.triggers import AISearchJobEventTrigger

try:
    from airflow.sdk import AssetWatcher
except ImportError:  # Airflow 2.11 (the deploy check needs Airflow 3)
    AssetWatcher = None  # type: ignore[misc,assignment]

INSTANCE_ID = "events9"
POLL_INTERVAL = 2.0

if AssetWatcher is not None:
    EVENTS9 = Asset(
        instance_uri("0123456789abcdef0123456789abcdef", "default", INSTANCE_ID),
        watchers=[
            AssetWatcher(
                name="deploy_events9_jobs_ended",
                trigger=AISearchJobEventTrigger(instance_id=INSTANCE_ID, poll_interval=POLL_INTERVAL),
            )
        ],
    )

    @dag(dag_id="deploy_event_driven", schedule=[EVENTS9], start_date=datetime(2026, 1, 1), catchup=False)
    def deploy_event_driven() -> None:
        @task
        def ended_jobs(**context: Any) -> list[str]:
            events = context.get("triggering_asset_events") or {}
            ids = [e.extra["payload"]["id"] for evs in events.values() for e in evs if (e.extra or {}).get("payload")]
            print(f"started by the end of job(s) {ids}")
            return ids

        ended_jobs()

    deploy_event_driven()
