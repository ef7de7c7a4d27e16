"""Call AISearchHook from tasks: check the connection, list recent jobs, start one and wait for it.

Runs against the real API or the local emulator (``make demo`` starts one and points the
``aisearch_default`` connection at it). Set ``AISEARCH_INSTANCE_ID`` to use another instance.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from itertools import islice
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, dag, task

from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.jobs import JobStatus

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")


@dag(
    dag_id="example_aisearch_hook",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_hook() -> None:
    @task
    def check_connection() -> str:
        ok, message = AISearchHook().test_connection()
        if not ok:
            raise AirflowException(message)
        return message

    @task
    def recent_jobs() -> list[dict[str, Any]]:
        # iter_jobs pages lazily: taking 10 jobs costs one request.
        return [job.to_dict() for job in islice(AISearchHook().iter_jobs(INSTANCE_ID), 10)]

    @task
    def start_indexing(**context: Any) -> str:
        description = f"airflow:{context['dag'].dag_id}:{context['run_id']}"[:255]
        job = AISearchHook().create_job(INSTANCE_ID, description=description)
        return job.id

    @task
    def wait_for_job(job_id: str) -> dict[str, Any]:
        # A stand-in until AISearchJobSensor lands: poll get_job until the job ends.
        with AISearchHook() as hook:
            deadline = time.monotonic() + 600
            job = hook.get_job(INSTANCE_ID, job_id)
            while job.is_running and time.monotonic() < deadline:
                time.sleep(2)
                job = hook.get_job(INSTANCE_ID, job_id)
            if job.status is not JobStatus.SUCCEEDED:
                raise AirflowException(f"job {job_id} is {job.status.value} (end_reason={job.end_reason!r})")
            for entry in sorted(hook.iter_job_logs(INSTANCE_ID, job_id), key=lambda e: e.id):
                print(f"[job {job_id}] {entry.message}")
            return job.to_dict()

    job_id = start_indexing()
    check_connection() >> [recent_jobs(), job_id]
    wait_for_job(job_id)  # type: ignore[arg-type]  # an XComArg resolves to str at run time


example_aisearch_hook()
