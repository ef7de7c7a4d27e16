"""Scenario 10 of ``make deploy-check``: an AssetWatcher whose API token is revoked, then restored.

The watcher polls its own emulator instance (``events10``, created by the scenario) every 2 s, as scenario
9's does; the scenario revokes the emulator's token under it for 2 minutes, restores it, and ends a job,
whose end must start one run of this DAG.
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

INSTANCE_ID = "events10"
POLL_INTERVAL = 2.0

if AssetWatcher is not None:
    EVENTS10 = Asset(
        instance_uri("0123456789abcdef0123456789abcdef", "default", INSTANCE_ID),
        watchers=[
            AssetWatcher(
                name="deploy_events10_jobs_ended",
                trigger=AISearchJobEventTrigger(instance_id=INSTANCE_ID, poll_interval=POLL_INTERVAL),
            )
        ],
    )

    @dag(dag_id="deploy_event_revoked", schedule=[EVENTS10], start_date=datetime(2026, 1, 1), catchup=False)
    def deploy_event_revoked() -> None:
        @task
        def ended_jobs(**context: Any) -> list[str]:
            events = context.get("triggering_asset_events") or {}
            ids = [e.extra["payload"]["id"] for evs in events.values() for e in evs if (e.extra or {}).get("payload")]
            print(f"started by the end of job(s) {ids}")
            return ids

        ended_jobs()

    deploy_event_revoked()
