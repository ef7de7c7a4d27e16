"""Start indexing safely and wait for it, then fan out over the finished jobs.

- ``AISearchCreateJobOperator`` reuses a running job or starts one (through the cooldown), and waits
  for it in the triggerer (``deferrable=True``).
- ``AISearchListJobsOperator`` lists the newest succeeded jobs; its output feeds a mapped sensor and a
  mapped ``@task`` directly.

``make demo`` runs it against the local emulator.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.operators import AISearchCreateJobOperator, AISearchListJobsOperator
from airflow_provider_aisearch.sensors import AISearchJobSensor

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")


@dag(
    dag_id="example_aisearch_operators",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_operators() -> None:
    # [START howto_create_and_wait]
    reindex = AISearchCreateJobOperator(
        task_id="reindex",
        instance_id=INSTANCE_ID,
        if_running="reuse",  # adopt a sync that is already running instead of superseding it
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=3600,
    )
    # [END howto_create_and_wait]

    # [START howto_list_then_map]
    recent_ids = AISearchListJobsOperator(
        task_id="recent_succeeded_ids",
        instance_id=INSTANCE_ID,
        statuses=["succeeded"],
        # The week before the run: its data interval's end, or (a run triggered with no logical date
        # on Airflow 3, where ds and data_interval_* are undefined) when it was triggered.
        started_after=(
            "{{ (data_interval_end if data_interval_end is defined else dag_run.run_after)"
            " - macros.timedelta(days=7) }}"
        ),
        limit=3,
        ids_only=True,
    )
    AISearchJobSensor.partial(task_id="confirm_each", instance_id=INSTANCE_ID, poke_interval=2).expand(
        job_id=recent_ids.output
    )

    recent_jobs = AISearchListJobsOperator(task_id="recent_jobs", instance_id=INSTANCE_ID, limit=3)

    @task
    def describe(job: dict[str, Any]) -> str:
        return f"{job['id']}: {job['status']} ({job['source']}, ended {job['ended_at']})"

    describe.expand(job=recent_jobs.output)
    # [END howto_list_then_map]

    reindex >> [recent_ids, recent_jobs]


example_aisearch_operators()
