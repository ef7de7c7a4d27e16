"""Scenarios 4 to 7 of ``make deploy-check`` (``scripts/deploycheck/scenario_create.py``): parts with no deployment.

The scenarios themselves run against a real Airflow deployment (``make deploy-check``). These tests
guard what they rely on to judge it: which jobs belong to a task instance (the operator's own
default description), which emulator requests are creates and cancels of an instance's jobs, the
REST body of a database-only connection, the process tree a worker kill must reach, and the
token scan of the logs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from deploycheck import scenario_create as sc  # noqa: E402

from airflow_provider_aisearch.emulator import AISearchEmulator  # noqa: E402
from airflow_provider_aisearch.task_tries import default_description  # noqa: E402


def _context(dag_id: str, task_id: str, run_id: str, try_number: int) -> Any:
    ti = SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=-1, try_number=try_number)
    return {"ti": ti}


def test_task_instance_prefix_is_the_operators_default_description() -> None:
    run_id = "manual__2026-11-29T20:00:00.123456+00:00"
    prefix = sc.task_instance_prefix(sc.CLEAR_DAG, sc.TASK, run_id)
    for try_number in (1, 2, 12):
        description = default_description(_context(sc.CLEAR_DAG, sc.TASK, run_id, try_number))
        assert description == f"{prefix}{try_number}"
        assert sc.try_of({"description": description}) == try_number


def test_jobs_of_keeps_only_the_task_instances_jobs() -> None:
    prefix = sc.task_instance_prefix("d", "create", "run1")
    jobs: list[dict[str, Any]] = [
        {"id": "a", "description": prefix + "1"},
        {"id": "b", "description": prefix + "2"},
        {"id": "c", "description": sc.task_instance_prefix("d", "create", "run10") + "1"},  # another run
        {"id": "d", "description": None},
        {"id": "e"},
    ]
    assert [j["id"] for j in sc.jobs_of(jobs, prefix)] == ["a", "b"]
    assert sc.try_of({"description": "user text"}) is None


def test_is_running() -> None:
    assert sc.is_running({"id": "a", "ended_at": None, "end_reason": None})
    assert not sc.is_running({"id": "a", "ended_at": "2026-11-29 20:00:00", "end_reason": "cancelled"})


def test_job_requests_tells_creates_and_cancels_of_one_instance_apart() -> None:
    base = "/client/v4/accounts/acc/ai-search/namespaces/default/instances"
    records = [
        {"method": "GET", "path": f"{base}/create5/jobs?per_page=50&page=1"},
        {"method": "POST", "path": f"{base}/create5/jobs"},
        {"method": "GET", "path": f"{base}/create5/jobs/j1"},
        {"method": "PATCH", "path": f"{base}/create5/jobs/j1"},
        {"method": "GET", "path": f"{base}/create5/jobs/j1/logs?page=1"},
        {"method": "POST", "path": f"{base}/create55/jobs"},  # another instance
        {"method": "PATCH", "path": f"{base}/create6/jobs/j1"},
        {"method": "GET", "path": "/client/v4/user/tokens/verify"},
    ]
    assert len(sc.job_requests(records, "create5")) == 5
    assert sc.job_requests(records, "create5", method="POST", job_id="") == [records[1]]
    assert sc.job_requests(records, "create5", method="PATCH", job_id="j1") == [records[3]]
    assert len(sc.job_requests(records, "create5", method="GET", job_id="j1")) == 2  # the job and its logs
    assert sc.job_requests(records, "create6", method="POST") == []


def test_connection_body_describes_the_same_connection_as_the_env_var() -> None:
    from airflow.models.connection import Connection

    emu = AISearchEmulator(token="tok-secret", account_id="acc1")
    conn_json = emu.connection_json()
    body = sc.connection_body("aisearch_db_only", conn_json)
    assert body["connection_id"] == "aisearch_db_only"
    assert isinstance(body["extra"], str)  # the REST API takes extra as a JSON string
    from_body = Connection(
        conn_id="aisearch_db_only",
        conn_type=body["conn_type"],
        host=body.get("host"),
        login=body.get("login"),
        password=body.get("password"),
        extra=body["extra"],
    )
    from_env = Connection.from_json(conn_json, conn_id="aisearch_db_only")
    for attr in ("conn_type", "host", "login", "password"):
        assert getattr(from_body, attr) == getattr(from_env, attr), attr
    assert from_body.extra_dejson == from_env.extra_dejson == {"account_id": "acc1", "namespace": "default"}
    assert sc.env_var_for("aisearch_db_only") == "AIRFLOW_CONN_AISEARCH_DB_ONLY"


def test_files_containing_finds_the_token_anywhere_under_the_logs(tmp_path: Path) -> None:
    (tmp_path / "dag_id=x" / "run_id=y").mkdir(parents=True)
    clean = tmp_path / "dag_id=x" / "run_id=y" / "attempt=1.log"
    leaky = tmp_path / "dag_id=x" / "run_id=y" / "attempt=1.log.trigger.7.log"
    clean.write_text('{"event": "Waiting for job j1"}\n')
    leaky.write_text('{"event": "Authorization: Bearer tok-secret"}\n')
    assert sc.files_containing(tmp_path, "tok-secret") == [leaky]
    assert sc.files_containing(tmp_path, "not-there") == []


def test_trigger_logs_are_the_triggerers_files_of_one_task_instance(tmp_path: Path) -> None:
    task_dir = tmp_path / "logs" / "dag_id=d" / "run_id=r" / "task_id=create"
    task_dir.mkdir(parents=True)
    (task_dir / "attempt=1.log").write_text("")
    (task_dir / "attempt=1.log.trigger.12.log").write_text("")
    (task_dir / "attempt=2.log.trigger.13.log").write_text("")
    found = sc.trigger_logs(tmp_path, "d", "r", "create")
    assert [p.name for p in found] == ["attempt=1.log.trigger.12.log", "attempt=2.log.trigger.13.log"]
    assert sc.trigger_logs(tmp_path, "d", "r", "wait") == []


def test_descendants_walks_every_generation() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
    assert sc.descendants(10, parents) == [10, 11, 12, 13]
    assert sc.descendants(21, parents) == [21]


def test_kill_tree_reaches_a_grandchild_in_its_own_process_group(tmp_path: Path) -> None:
    """As a Celery worker's task runs in a process group of its own, below the worker's group."""
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import os, subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    log_path = tmp_path / "child.log"
    out = log_path.open("ab")
    child = sc.Child("worker-x", proc, log_path, out, 1)
    grandchild = 0
    try:
        sc.wait_until("grandchild started", lambda: pid_file.exists() and pid_file.read_text(), 30, 0.1)
        grandchild = int(pid_file.read_text())
        assert os.getpgid(grandchild) != os.getpgid(proc.pid)  # another group: killpg alone would miss it
        assert grandchild in sc.tree(proc.pid)
        killed = sc.kill_tree(child)
        assert proc.pid in killed and grandchild in killed
        assert proc.returncode == -signal.SIGKILL
        sc.wait_until("grandchild gone", lambda: not _alive(grandchild), 30, 0.1)
    finally:
        for pid in (proc.pid, grandchild):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        out.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_dag_file_uses_the_scenarios_instances_and_connection() -> None:
    spec = importlib.util.spec_from_file_location("create_faults", REPO / "tests" / "deploy_dags" / "create_faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in (
        "WORKER_KILL_INSTANCE",
        "CLEAR_INSTANCE",
        "MARK_FAILED_INSTANCE",
        "DB_CONN_SENSOR_INSTANCE",
        "DB_CONN_CREATE_INSTANCE",
        "DB_CONN_ID",
    ):
        assert getattr(module, name) == getattr(sc, name), name
    text = (REPO / "tests" / "deploy_dags" / "create_faults.py").read_text()
    for dag_id in sc.DAG_IDS:
        assert f'dag_id="{dag_id}"' in text


@pytest.mark.parametrize("name", sorted(sc.CONFIG))
def test_config_names_exist_in_airflow(name: str) -> None:
    from importlib.metadata import version

    from airflow.configuration import conf

    if int(version("apache-airflow").split(".")[0]) < 3:
        pytest.skip("the deploy check runs Airflow 3 only")
    _, section, key = name.split("__", 2)
    assert conf.has_option(section.lower(), key.lower()), name
    assert json.loads(sc.CONFIG[name]) > 0


def test_job_duration_is_read_from_the_emulators_command_line() -> None:
    assert sc.job_duration(["python", "-m", "x", "--job-duration", "3", "--cooldown", "5"]) == 3.0
    assert sc.job_duration(["python", "--job-duration=7.5"]) == 7.5
    assert sc.job_duration(["python", "-m", "x"]) == sc.CLI_JOB_DURATION


def test_runner_stalls_reads_the_triggerers_deadlock_report() -> None:
    text = (
        "2026-11-29T20:06:37.527057Z [error    ] TriggerRunner subprocess event loop appears deadlocked: "
        "no communication received for 34.9s (threshold: 30.0s). Skipping heartbeat\n"
        "2026-11-29T20:06:37.584509Z [info     ] Heartbeat recovered after 38.96 seconds\n"
    )
    assert sc.runner_stalls(text) == [34.9]
    assert sc.runner_stalls("all quiet") == []


def test_started_at_reads_the_rest_apis_start_date() -> None:
    assert sc.started_at({"start_date": "2026-11-29T20:05:20.500000Z"}) == 1795982720.5
    assert sc.started_at({"start_date": "2026-11-29T20:05:20.5+00:00"}) == 1795982720.5
    assert sc.started_at({"start_date": None}) is None


def test_short_request() -> None:
    base = "/client/v4/accounts/acc/ai-search/namespaces/default/instances"
    assert (
        sc.short_request({"method": "PATCH", "path": f"{base}/create6/jobs/259f4329e6f4590b"})
        == "PATCH create6/jobs/259f4329"
    )
    assert sc.short_request({"method": "POST", "path": f"{base}/create6/jobs"}) == "POST create6/jobs"
    assert sc.short_request({"method": "GET", "path": "/client/v4/user"}) == "GET /client/v4/user"
