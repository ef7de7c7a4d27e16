"""Start an indexing job, wait for it with the deferrable sensor, then wait on several jobs at once (mapped).

``make demo`` runs it against the local emulator.
"""

from __future__ import annotations

import os
from datetime import datetime
from itertools import islice
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.sensors import AISearchJobSensor

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")


@dag(
    dag_id="example_aisearch_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_sensor() -> None:
    @task
    def start_indexing(**context: Any) -> str:
        description = f"airflow:{context['dag'].dag_id}:{context['run_id']}"[:255]
        return AISearchHook().create_job(INSTANCE_ID, description=description).id

    # Deferrable: the wait happens in the triggerer, not in a worker slot. The job id comes from XCom.
    wait_for_indexing = AISearchJobSensor(
        task_id="wait_for_indexing",
        instance_id=INSTANCE_ID,
        job_id="{{ ti.xcom_pull(task_ids='start_indexing') }}",
        deferrable=True,
        poke_interval=2,
        timeout=3600,
    )

    @task
    def recent_job_ids() -> list[str]:
        return [job.id for job in islice(AISearchHook().iter_jobs(INSTANCE_ID), 3)]

    # One mapped sensor per job id listed at run time.
    wait_for_each = AISearchJobSensor.partial(
        task_id="wait_for_each",
        instance_id=INSTANCE_ID,
        deferrable=True,
        poke_interval=2,
        timeout=3600,
    ).expand(job_id=recent_job_ids())

    @task
    def report(job: dict[str, Any]) -> None:
        print(f"job {job['id']} {job['status']} at {job['ended_at']} (followed from {job['followed_from']})")

    start_indexing() >> wait_for_indexing
    wait_for_indexing >> wait_for_each
    report(wait_for_indexing.output)  # type: ignore[arg-type]  # an XComArg resolves to the job dict


example_aisearch_sensor()
