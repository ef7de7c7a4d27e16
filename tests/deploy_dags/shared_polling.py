"""Scenarios 2, 3 and 8 of ``make deploy-check``: mapped deferrable sensors whose jobs come from the run's conf.

Every DAG here has one task reading the run's conf (``{"waits": [{"instance_id": ..., "job_id": ...}, ...]}``)
and one deferrable :class:`~airflow_provider_aisearch.sensors.AISearchJobSensor` mapped over it, so the
deploy check decides at trigger time (through the REST API, no logical date) which jobs of which
emulator instances are waited on:

- ``deploy_check_shared_polling_a`` / ``_b`` (scenario 2): 50 sensors each, all on jobs of one
  instance, so 100 triggers wait at once and share one list request per poll interval per triggerer;
- ``deploy_check_failover_follow`` (scenario 3): a few sensors, each on the only running job of its
  own instance, so one of them can be superseded while its triggerer is dead;
- ``deploy_check_rate_limited`` (scenario 8): sensors on jobs of ten instances (one poller each)
  at ``poke_interval=1``, against a low emulator rate limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.sensors import AISearchJobSensor


def _waiters_dag(dag_id: str, *, poke_interval: float, doc: str) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=200,  # every mapped sensor must defer at once (the default is 16 per run)
        tags=["deploy-check"],
        doc_md=doc,
    )
    def waiters() -> None:
        @task(retries=0)
        def waits(**context: Any) -> list[dict[str, str]]:
            found = list((context["dag_run"].conf or {}).get("waits", []))
            if not found or not all(isinstance(w, dict) and {"instance_id", "job_id"} <= w.keys() for w in found):
                raise ValueError(f"waits: expected a list of {{instance_id, job_id}} in the run's conf, got {found!r}")
            return [{"instance_id": str(w["instance_id"]), "job_id": str(w["job_id"])} for w in found]

        AISearchJobSensor.partial(
            task_id="wait",
            deferrable=True,
            poke_interval=poke_interval,
            timeout=1800,
            retries=0,
        ).expand_kwargs(waits())

    waiters()


_waiters_dag(
    "deploy_check_shared_polling_a",
    poke_interval=5,
    doc="Scenario 2: 50 deferrable sensors on jobs of one instance (with `_b`: 100 waiters).",
)
_waiters_dag(
    "deploy_check_shared_polling_b",
    poke_interval=5,
    doc="Scenario 2: 50 deferrable sensors on jobs of one instance (with `_a`: 100 waiters).",
)
_waiters_dag(
    "deploy_check_failover_follow",
    poke_interval=5,
    doc="Scenario 3: one sensor per instance; one is superseded while its triggerer is dead.",
)
_waiters_dag(
    "deploy_check_rate_limited",
    poke_interval=1,
    doc="Scenario 8: sensors on ten instances against a low emulator rate limit.",
)
