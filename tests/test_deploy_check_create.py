"""Scenarios 4 to 7 of ``make deploy-check``: parts with no deployment.

Modules in ``scripts/deploycheck/``: ``create_tasks.py`` (what the four share), ``scenario_worker_kill.py``
(4), ``scenario_clear.py`` (5), ``scenario_mark_failed.py`` (6), ``scenario_db_connection.py`` (7).
The scenarios themselves run against a real Airflow deployment (``make deploy-check``). These tests
guard what they rely on to judge it: which jobs belong to a task instance (the operator's own
default description), which emulator requests are creates and cancels of an instance's jobs, the
REST body of a database-only connection, and the token scan of the logs (the process tree a worker
kill must reach: ``tests/test_deploy_check_parts.py``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from deploycheck import create_tasks as ct  # noqa: E402
from deploycheck import scenario_clear as s5  # noqa: E402
from deploycheck import scenario_db_connection as dbc  # noqa: E402
from deploycheck import scenario_mark_failed as s6  # noqa: E402
from deploycheck import scenario_worker_kill as wk  # noqa: E402

from airflow_provider_aisearch.emulator import AISearchEmulator  # noqa: E402
from airflow_provider_aisearch.tasks.task_tries import default_description  # noqa: E402

SCENARIO_MODULES = (wk, s5, s6, dbc)


def _context(dag_id: str, task_id: str, run_id: str, try_number: int) -> Any:
    ti = SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=-1, try_number=try_number)
    return {"ti": ti}


def test_task_instance_prefix_is_the_operators_default_description() -> None:
    run_id = "manual__2026-11-29T20:00:00.123456+00:00"
    prefix = ct.task_instance_prefix(s5.CLEAR_DAG, ct.TASK, run_id)
    for try_number in (1, 2, 12):
        description = default_description(_context(s5.CLEAR_DAG, ct.TASK, run_id, try_number))
        assert description == f"{prefix}{try_number}"
        assert ct.try_of({"description": description}) == try_number


def test_jobs_of_keeps_only_the_task_instances_jobs() -> None:
    prefix = ct.task_instance_prefix("d", "create", "run1")
    jobs: list[dict[str, Any]] = [
        {"id": "a", "description": prefix + "1"},
        {"id": "b", "description": prefix + "2"},
        {"id": "c", "description": ct.task_instance_prefix("d", "create", "run10") + "1"},  # another run
        {"id": "d", "description": None},
        {"id": "e"},
    ]
    assert [j["id"] for j in ct.jobs_of(jobs, prefix)] == ["a", "b"]
    assert ct.try_of({"description": "user text"}) is None


def test_is_running() -> None:
    assert ct.is_running({"id": "a", "ended_at": None, "end_reason": None})
    assert not ct.is_running({"id": "a", "ended_at": "2026-11-29 20:00:00", "end_reason": "cancelled"})


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
    assert len(ct.job_requests(records, "create5")) == 5
    assert ct.job_requests(records, "create5", method="POST", job_id="") == [records[1]]
    assert ct.job_requests(records, "create5", method="PATCH", job_id="j1") == [records[3]]
    assert len(ct.job_requests(records, "create5", method="GET", job_id="j1")) == 2  # the job and its logs
    assert ct.job_requests(records, "create6", method="POST") == []


def test_connection_body_describes_the_same_connection_as_the_env_var() -> None:
    from airflow.models.connection import Connection

    emu = AISearchEmulator(token="tok-secret", account_id="acc1")
    conn_json = emu.connection_json()
    body = dbc.connection_body("aisearch_db_only", conn_json)
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
    assert dbc.env_var_for("aisearch_db_only") == "AIRFLOW_CONN_AISEARCH_DB_ONLY"


def test_files_containing_finds_the_token_anywhere_under_the_logs(tmp_path: Path) -> None:
    (tmp_path / "dag_id=x" / "run_id=y").mkdir(parents=True)
    clean = tmp_path / "dag_id=x" / "run_id=y" / "attempt=1.log"
    leaky = tmp_path / "dag_id=x" / "run_id=y" / "attempt=1.log.trigger.7.log"
    clean.write_text('{"event": "Waiting for job j1"}\n')
    leaky.write_text('{"event": "Authorization: Bearer tok-secret"}\n')
    assert dbc.files_containing(tmp_path, "tok-secret") == [leaky]
    assert dbc.files_containing(tmp_path, "not-there") == []


def test_trigger_logs_are_the_triggerers_files_of_one_task_instance(tmp_path: Path) -> None:
    task_dir = tmp_path / "logs" / "dag_id=d" / "run_id=r" / "task_id=create"
    task_dir.mkdir(parents=True)
    (task_dir / "attempt=1.log").write_text("")
    (task_dir / "attempt=1.log.trigger.12.log").write_text("")
    (task_dir / "attempt=2.log.trigger.13.log").write_text("")
    found = ct.trigger_logs(tmp_path, "d", "r", "create")
    assert [p.name for p in found] == ["attempt=1.log.trigger.12.log", "attempt=2.log.trigger.13.log"]
    assert ct.trigger_logs(tmp_path, "d", "r", "wait") == []


def test_dag_file_uses_the_scenarios_instances_and_connection() -> None:
    spec = importlib.util.spec_from_file_location("create_faults", REPO / "tests" / "deploy_dags" / "create_faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    owners = {
        "WORKER_KILL_INSTANCE": wk,
        "CLEAR_INSTANCE": s5,
        "MARK_FAILED_INSTANCE": s6,
        "DB_CONN_SENSOR_INSTANCE": dbc,
        "DB_CONN_CREATE_INSTANCE": dbc,
        "DB_CONN_ID": dbc,
    }
    for name, owner in owners.items():
        assert getattr(module, name) == getattr(owner, name), name
    text = (REPO / "tests" / "deploy_dags" / "create_faults.py").read_text()
    for scenario in SCENARIO_MODULES:
        assert len(scenario.DAG_IDS) == 1
        assert f'dag_id="{scenario.DAG_IDS[0]}"' in text, scenario.__name__


@pytest.mark.parametrize("name", sorted(wk.CONFIG))
def test_config_names_exist_in_airflow(name: str) -> None:
    from importlib.metadata import version

    from airflow.configuration import conf

    if int(version("apache-airflow").split(".")[0]) < 3:
        pytest.skip("the deploy check runs Airflow 3 only")
    _, section, key = name.split("__", 2)
    assert conf.has_option(section.lower(), key.lower()), name
    assert json.loads(wk.CONFIG[name]) > 0


def test_job_duration_is_read_from_the_emulators_command_line() -> None:
    assert ct.job_duration(["python", "-m", "x", "--job-duration", "3", "--cooldown", "5"]) == 3.0
    assert ct.job_duration(["python", "--job-duration=7.5"]) == 7.5
    assert ct.job_duration(["python", "-m", "x"]) == ct.CLI_JOB_DURATION


def test_runner_stalls_reads_the_triggerers_deadlock_report() -> None:
    text = (
        "2026-11-29T20:06:37.527057Z [error    ] TriggerRunner subprocess event loop appears deadlocked: "
        "no communication received for 34.9s (threshold: 30.0s). Skipping heartbeat\n"
        "2026-11-29T20:06:37.584509Z [info     ] Heartbeat recovered after 38.96 seconds\n"
    )
    assert dbc.runner_stalls(text) == [34.9]
    assert dbc.runner_stalls("all quiet") == []


def test_started_at_reads_the_rest_apis_start_date() -> None:
    assert wk.started_at({"start_date": "2026-11-29T20:05:20.500000Z"}) == 1795982720.5
    assert wk.started_at({"start_date": "2026-11-29T20:05:20.5+00:00"}) == 1795982720.5
    assert wk.started_at({"start_date": None}) is None


def test_short_request() -> None:
    base = "/client/v4/accounts/acc/ai-search/namespaces/default/instances"
    assert (
        ct.short_request({"method": "PATCH", "path": f"{base}/create6/jobs/259f4329e6f4590b"})
        == "PATCH create6/jobs/259f4329"
    )
    assert ct.short_request({"method": "POST", "path": f"{base}/create6/jobs"}) == "POST create6/jobs"
    assert ct.short_request({"method": "GET", "path": "/client/v4/user"}) == "GET /client/v4/user"


def test_the_modules_import_one_way() -> None:
    """create_tasks <- each scenario module; no scenario module imports another."""
    for module in (ct, *SCENARIO_MODULES):
        name = module.__name__.split(".")[-1]
        tree = ast.parse((REPO / "scripts" / "deploycheck" / f"{name}.py").read_text())
        imported = {
            node.module.split(".")[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deploycheck.")
        }
        allowed = {"airflow", "emulator_process", "harness", "services"} | (
            {"create_tasks"} if module is not ct else set()
        )
        assert imported <= allowed, (name, imported - allowed)


def test_the_scenario_frame_passes_unless_a_check_or_the_body_fails() -> None:
    dep: Any = object()

    @ct.scenario(4, "frame")
    def holds(dep: Any, result: Any) -> None:
        ct.check(True, "never")
        result.figures["n"] = "1"

    @ct.scenario(4, "frame")
    def broken(dep: Any, result: Any) -> None:
        ct.check(False, "the first check that does not hold")
        ct.check(False, "never reached")

    @ct.scenario(4, "frame")
    def failed_in_cleanup(dep: Any, result: Any) -> None:
        result.fail("restart failed")

    ok = holds(dep)
    assert (ok.number, ok.title, ok.passed, ok.figures, ok.failure) == (4, "frame", True, {"n": "1"}, "")
    assert ok.seconds >= 0
    bad = broken(dep)
    assert (bad.passed, bad.failure) == (False, "the first check that does not hold")
    assert (failed_in_cleanup(dep).passed, failed_in_cleanup(dep).failure) == (False, "restart failed")
