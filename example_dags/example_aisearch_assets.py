"""Asset-driven pipelines: a producer DAG records each batch of newly finished indexing jobs on an
asset, and a consumer DAG runs once per batch, reading the job ids from the asset event.

``make demo`` runs the producer and then the consumer against the local emulator.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import Asset, dag, task

from airflow_provider_aisearch.assets import instance_uri
from airflow_provider_aisearch.operators import AISearchListJobsOperator

INSTANCE_ID = os.environ.get("AISEARCH_INSTANCE_ID", "docs")
ACCOUNT_ID = os.environ.get("AISEARCH_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")  # the emulator's
# The instance's asset, cloudflare-aisearch://<account_id>/<namespace>/<instance_id> (Airflow validates it).
INDEXED = Asset(instance_uri(ACCOUNT_ID, "default", INSTANCE_ID))


@dag(
    dag_id="example_aisearch_asset_producer",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_asset_producer() -> None:
    # Runs that find nothing are skipped, so they emit no asset event and trigger no consumer run.
    AISearchListJobsOperator(
        task_id="newly_indexed",
        instance_id=INSTANCE_ID,
        statuses=["succeeded"],
        # The 24 hours before the interval end: data_interval_start for a scheduled daily run, and
        # the last day for a manual one (whose interval is empty). A run triggered with no logical
        # date (Airflow 3: `airflow dags trigger`, the REST API) has no data interval: the 24 hours
        # before it was triggered.
        ended_after=(
            "{{ (data_interval_end if data_interval_end is defined else dag_run.run_after)"
            " - macros.timedelta(days=1) }}"
        ),
        ids_only=True,
        skip_if_empty=True,
        outlets=[INDEXED],
    )


@dag(
    dag_id="example_aisearch_asset_consumer",
    schedule=[INDEXED],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_asset_consumer() -> None:
    @task
    def refresh_downstream(**context: Any) -> list[str]:
        # Airflow 3 calls them asset events; Airflow 2.11 dataset events.
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        job_ids = [
            job_id
            for asset_events in events.values()
            for event in asset_events
            for job_id in (event.extra or {}).get("job_ids", [])
        ]
        print(f"newly indexed jobs: {job_ids or 'none (run by hand)'}")
        return job_ids

    refresh_downstream()


example_aisearch_asset_producer()
example_aisearch_asset_consumer()
