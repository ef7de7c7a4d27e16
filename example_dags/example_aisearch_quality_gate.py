"""Did it index? Start a job, wait for it, and fail the task when more than 5 % of the items failed.

- ``AISearchCreateJobOperator`` starts a job (or reuses a running one) and waits for it in the
  triggerer. Once the job has ended successfully, it reads the instance's item stats and checks them
  against ``max_item_errors=0.05``: more than 5 % of the processed items (completed + error +
  skipped) in ``error`` fails the task with ``AISearchIndexQualityError``, after logging up to 20
  failed items (key and error). Degraded stats (no counts) fail it too, unless ``allow_degraded_stats``.
- The stats travel in the XCom under ``"items"``; a downstream task prints the counts.

``make demo`` runs it against the local emulator (2 % of its files fail to embed, so the gate passes).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.operators import AISearchCreateJobOperator

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")


@dag(
    dag_id="example_aisearch_quality_gate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_quality_gate() -> None:
    # [START howto_quality_gate]
    reindex = AISearchCreateJobOperator(
        task_id="reindex_checked",
        instance_id=INSTANCE_ID,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=3600,
        max_item_errors=0.05,  # fail when more than 5 % of the processed items are in error
    )
    # [END howto_quality_gate]

    @task
    def report_items(job: dict[str, Any]) -> dict[str, Any]:
        items = job["items"]
        print(
            f"job {job['id']}: {items['completed']} completed, {items['error']} error, {items['skipped']} skipped, "
            f"{items['queued']} queued, {items['running']} running, {items['outdated']} outdated "
            f"(last activity {items['last_activity']}, degraded={items['degraded']})"
        )
        return dict(items)

    report_items(reindex.output)  # type: ignore[arg-type]  # an XComArg resolves to the job dict


example_aisearch_quality_gate()
