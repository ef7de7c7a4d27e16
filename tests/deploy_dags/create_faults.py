"""Scenarios 4 to 7 of ``make deploy-check``: the create operator under faults, in a real deployment.

Each DAG has its own emulator instance (the deploy check creates them through the emulator's
control channel), so what one scenario does never touches another's jobs. The check drives these
DAGs through the REST API (trigger, clear, mark failed), kills a Celery worker, and ends jobs
through the emulator's control channel when it has seen what it needs:

- ``deploy_check_worker_kill`` (scenario 4): a create-and-wait that runs in the worker
  (``deferrable=False``) while the worker is SIGKILLed; the retry must adopt the first try's job.
  ``if_running="supersede"``: without the adoption of an earlier try's job, the retry would start
  a second job (``"reuse"`` would hide that by reusing it).
- ``deploy_check_clear_deferred`` (scenario 5): a deferrable create-and-wait, cleared while deferred.
- ``deploy_check_mark_failed`` (scenario 6): a deferrable create-and-wait, marked failed while
  deferred; ``retries=1`` so that a retry would show if marking failed let one run.
- ``deploy_check_db_connection`` (scenario 7): a deferrable sensor and a deferrable create-and-wait
  on a connection that exists only in the metadata database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import dag

from airflow_provider_aisearch.operators import AISearchCreateJobOperator
from airflow_provider_aisearch.sensors import AISearchJobSensor

#: Emulator instances, one per scenario (``scripts/deploycheck/scenario_*.py`` of scenarios 4 to 7 use the same names).
WORKER_KILL_INSTANCE = "create4"
CLEAR_INSTANCE = "create5"
MARK_FAILED_INSTANCE = "create6"
DB_CONN_SENSOR_INSTANCE = "dbconn"
DB_CONN_CREATE_INSTANCE = "dbconn2"
#: A connection id no ``AIRFLOW_CONN_*`` variable defines: the check creates it through the REST API.
DB_CONN_ID = "aisearch_db_only"
#: Seconds between polls (short: the check waits on these tasks).
POLL = 2

START = datetime(2026, 1, 1)


@dag(dag_id="deploy_check_worker_kill", schedule=None, start_date=START, catchup=False, tags=["deploy-check"])
def worker_kill() -> None:
    AISearchCreateJobOperator(
        task_id="create",
        instance_id=WORKER_KILL_INSTANCE,
        if_running="supersede",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=POLL,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )


@dag(dag_id="deploy_check_clear_deferred", schedule=None, start_date=START, catchup=False, tags=["deploy-check"])
def clear_deferred() -> None:
    AISearchCreateJobOperator(
        task_id="create",
        instance_id=CLEAR_INSTANCE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL,
    )


@dag(dag_id="deploy_check_mark_failed", schedule=None, start_date=START, catchup=False, tags=["deploy-check"])
def mark_failed() -> None:
    AISearchCreateJobOperator(
        task_id="create",
        instance_id=MARK_FAILED_INSTANCE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )


@dag(dag_id="deploy_check_db_connection", schedule=None, start_date=START, catchup=False, tags=["deploy-check"])
def db_connection() -> None:
    AISearchJobSensor(
        task_id="wait",
        aisearch_conn_id=DB_CONN_ID,
        instance_id=DB_CONN_SENSOR_INSTANCE,
        job_id="{{ dag_run.conf['job_id'] }}",
        deferrable=True,
        poke_interval=POLL,
        timeout=600,
    )
    AISearchCreateJobOperator(
        task_id="create",
        aisearch_conn_id=DB_CONN_ID,
        instance_id=DB_CONN_CREATE_INSTANCE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL,
    )


worker_kill()
clear_deferred()
mark_failed()
db_connection()
