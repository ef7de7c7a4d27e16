"""Scenario 2 of ``make deploy-check`` (sketch, not wired in yet): shared polling in a real triggerer.

Two DAGs of 50 mapped deferrable sensors each, all on jobs of one instance, so 100 triggers wait at
once. The job ids come from the run's conf (``{"job_ids": [...]}``), which the deploy check passes
when it triggers the run through the REST API. While they wait, the check counts the emulator's
requests per poll interval per triggerer: about ceil(jobs / 50) list pages per interval for each
triggerer holding waiters, against 100 GETs per interval unshared.

Still missing (next session): jobs that stay running for the whole measurement (the emulator CLI
seeds only ended jobs, and one instance runs one job at a time through the API), and the wiring
(dags folder bundle, trigger with conf, per-interval counts from the access log).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.sensors import AISearchJobSensor

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")
#: Seconds between polls; the per-interval request counts are taken over this window.
POKE_INTERVAL = 5
#: Sensors per DAG (two DAGs: 100 waiters).
WAITERS_PER_DAG = 50


def _shared_polling_dag(dag_id: str) -> None:
    @dag(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["deploy-check"])
    def waiters() -> None:
        @task
        def job_ids(**context: Any) -> list[str]:
            ids = list((context["dag_run"].conf or {}).get("job_ids", []))
            if len(ids) != WAITERS_PER_DAG:
                raise ValueError(f"job_ids: expected {WAITERS_PER_DAG} ids in the run's conf, got {len(ids)}")
            return ids

        AISearchJobSensor.partial(
            task_id="wait",
            instance_id=INSTANCE_ID,
            deferrable=True,
            poke_interval=POKE_INTERVAL,
            timeout=1800,
        ).expand(job_id=job_ids())

    waiters()


_shared_polling_dag("deploy_check_shared_polling_a")
_shared_polling_dag("deploy_check_shared_polling_b")
