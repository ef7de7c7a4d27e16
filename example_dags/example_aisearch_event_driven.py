"""Event-driven DAGs (Airflow 3.0+): a DAG run starts seconds after any indexing job of an instance ends.

An ``AssetWatcher`` runs :class:`~airflow_provider_aisearch.triggers.AISearchJobEventTrigger` in the
triggerer. Each job that ends after the watcher began watching (started by Airflow, the dashboard,
wrangler, CI or Cloudflare's own scheduled sync) becomes one asset event of the instance's asset,
``cloudflare-aisearch://<account_id>/<namespace>/<instance_id>``, with the job as its payload; the DAG
scheduled on the asset reads the job, logs it, and branches on its status. No task waits.

The asset of an instance with a watcher is defined in this one file: Airflow keys assets by name and
URI, and a second file defining the same asset without the watcher would remove the watcher at each
parse. So this example watches its own instance (``handbook``), not the ``docs`` instance whose
asset the list operator's example updates.

``make demo`` runs the trigger against the emulator and then this DAG's tasks with each event's job
(``airflow dags test`` has no triggerer: a run by hand takes the jobs from ``dag_run.conf["jobs"]``).
On Airflow 2.11, where ``AssetWatcher`` does not exist, this file defines no DAG.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Asset, dag, task

from airflow_provider_aisearch.assets import instance_uri
from airflow_provider_aisearch.triggers import AISearchJobEventTrigger

try:
    from airflow.sdk import AssetWatcher  # Airflow 3.0+
except ImportError:  # Airflow 2.11: no event-driven scheduling
    AssetWatcher = None  # type: ignore[misc,assignment]

ACCOUNT_ID = os.environ.get("AISEARCH_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")  # the emulator's
INSTANCE_ID = os.environ.get("AISEARCH_EVENT_INSTANCE_ID", "handbook")
POLL_INTERVAL = float(os.environ.get("AISEARCH_EVENT_POLL_INTERVAL", "60"))

if AssetWatcher is not None:
    JOBS_ENDED = Asset(
        instance_uri(ACCOUNT_ID, "default", INSTANCE_ID),
        watchers=[
            AssetWatcher(
                name=f"aisearch_{INSTANCE_ID}_jobs_ended",
                # Deterministic kwargs only (the trigger's identity is a hash of them): no now(), no run ids.
                trigger=AISearchJobEventTrigger(instance_id=INSTANCE_ID, poll_interval=POLL_INTERVAL),
            )
        ],
    )

    @dag(
        dag_id="example_aisearch_event_driven",
        schedule=[JOBS_ENDED],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["example", "cloudflare", "aisearch"],
    )
    def example_aisearch_event_driven() -> None:
        @task
        def ended_jobs(**context: Any) -> list[dict[str, Any]]:
            """The jobs whose end started this run (several, if they ended before the run was created)."""
            events = context.get("triggering_asset_events") or {}
            jobs = [
                event.extra["payload"]
                for asset_events in events.values()
                for event in asset_events
                if (event.extra or {}).get("from_trigger") and isinstance(event.extra.get("payload"), dict)
            ]
            if not jobs:  # a run by hand (`airflow dags test -c '{"jobs": [...]}'`, as `make demo` does)
                jobs = list((context["dag_run"].conf or {}).get("jobs") or [])
            for job in jobs:
                print(
                    f"job {job['id']} on {job['namespace']}/{job['instance_id']} "
                    f"({job['source']}) ended {job['ended_at']}: {job['status']} (end_reason={job['end_reason']!r})"
                )
            return jobs

        @task.branch
        def by_status(jobs: list[dict[str, Any]]) -> str:
            failed = [job["id"] for job in jobs if job["status"] in ("failed", "cancelled")]
            return "alert" if failed else "refresh_downstream"

        @task
        def refresh_downstream(jobs: list[dict[str, Any]]) -> None:
            print(f"index refreshed by {len(jobs)} job(s): refreshing caches, search pages, evaluations")

        @task
        def alert(jobs: list[dict[str, Any]]) -> None:
            for job in jobs:
                if job["status"] in ("failed", "cancelled"):
                    print(f"ALERT: indexing job {job['id']} {job['status']} (end_reason={job['end_reason']!r})")

        jobs: Any = ended_jobs()  # an XComArg, resolved to the list at run time
        by_status(jobs) >> [refresh_downstream(jobs), alert(jobs)]

    example_aisearch_event_driven()
