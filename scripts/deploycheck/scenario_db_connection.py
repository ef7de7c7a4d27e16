"""Scenario 7 of ``make deploy-check``: a connection only in the metadata database.

The connection is created through the REST API (:func:`connection_body`; no ``AIRFLOW_CONN_*`` env
var) and works for a worker and a triggerer: a deferrable sensor and a deferrable create-and-wait
succeed, their triggers ran in a triggerer, and the token appears in no task or trigger log
(:func:`files_containing`). A triggerer stall on the first lookup (:func:`runner_stalls`) is reported.
The DAG and its two emulator instances are those of ``tests/deploy_dags/create_faults.py``; at the end
no job of theirs is left running.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from deploycheck import create_tasks as ct
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, log

#: The DAG, the instances its sensor and its create task use, and the connection: as in the DAG file.
DB_CONN_DAG, DB_CONN_SENSOR_INSTANCE, DB_CONN_CREATE_INSTANCE = "deploy_check_db_connection", "dbconn", "dbconn2"
DB_CONN_ID = "aisearch_db_only"
DAG_IDS = [DB_CONN_DAG]

#: A triggerer's supervisor reporting its trigger runner silent (then it skips heartbeats: "unhealthy").
RUNNER_SILENT = re.compile(r"no communication received for ([\d.]+) ?s")


def connection_body(conn_id: str, connection_json: str) -> dict[str, Any]:
    """The ``POST /api/v2/connections`` body for the connection an ``AIRFLOW_CONN_*`` JSON value describes."""
    conn = json.loads(connection_json)
    extra = conn.get("extra") or {}
    body: dict[str, Any] = {"connection_id": conn_id, "conn_type": conn["conn_type"]}
    for field in ("host", "login", "password", "schema", "port"):
        if conn.get(field) is not None:
            body[field] = conn[field]
    body["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    return body


def env_var_for(conn_id: str) -> str:
    """The env var that would define connection ``conn_id``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def files_containing(root: Path, secret: str) -> list[Path]:
    """Files under ``root`` whose bytes contain ``secret``."""
    needle = secret.encode()
    return sorted(p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def runner_stalls(text: str) -> list[float]:
    """Seconds of each trigger-runner silence a triggerer log reports."""
    return [float(m.group(1)) for m in RUNNER_SILENT.finditer(text)]


@ct.scenario(7, "Connection only in the metadata database")
def db_connection(dep: Deployment, result: ScenarioResult) -> None:
    """Scenario 7: a connection created through the REST API serves a worker and a triggerer."""
    api, emu = dep.api, dep.emulator
    var = env_var_for(DB_CONN_ID)
    triggerers = [c for c in dep.procs.children if c.name.startswith("triggerer-")]
    offsets = {c.name: c.log_path.stat().st_size for c in triggerers}
    try:
        if var in dep.env or var in os.environ:
            raise DeployCheckFailed(f"{var} is set: the connection would not come from the metadata database")
        api.call("POST", "/api/v2/connections", connection_body(DB_CONN_ID, emu.connection))
        for instance in (DB_CONN_SENSOR_INSTANCE, DB_CONN_CREATE_INSTANCE):
            emu.add_instance(instance)
        waited_on = emu.start_job(instance=DB_CONN_SENSOR_INSTANCE, duration=ct.LONG_JOB)
        api.unpause(DB_CONN_DAG)
        started = time.monotonic()
        run_id = ct.trigger_with_conf(api, DB_CONN_DAG, {"job_id": waited_on["id"]})
        log(f"scenario 7: triggered {DB_CONN_DAG} run {run_id} (connection {DB_CONN_ID} only in the database)")
        ended: set[str] = set()

        def end_when_deferred() -> None:
            # A job ends only once its waiter's trigger runs in a triggerer, so the wait really happens there.
            for task_id, instance in (("wait", DB_CONN_SENSOR_INSTANCE), ("create", DB_CONN_CREATE_INSTANCE)):
                if task_id not in ended and ct.trigger_logs(dep.home, DB_CONN_DAG, run_id, task_id):
                    ended.add(task_id)
                    ct.end_running(emu, instance)

        state = ct.wait_run(api, DB_CONN_DAG, run_id, tick=end_when_deferred)
        seconds = time.monotonic() - started
        tis = {ti["task_id"]: ti for ti in api.task_instances(DB_CONN_DAG, run_id)}
        logs = {t: ct.trigger_logs(dep.home, DB_CONN_DAG, run_id, t) for t in ("wait", "create")}
        ran = {t: [p for p in paths if "Waiting for job" in p.read_text(errors="replace")] for t, paths in logs.items()}
        leaks = files_containing(dep.home / "logs", emu.token)
        stalls = {}
        for child in triggerers:
            with child.log_path.open("rb") as f:
                f.seek(offsets[child.name])
                stalls[child.name] = runner_stalls(f.read().decode(errors="replace"))
        result.figures["run"] = f"{state} in {seconds:.0f} s"
        result.figures["trigger logs (sensor, create)"] = f"{len(ran['wait'])}, {len(ran['create'])}"
        result.figures["token in logs"] = str(len(leaks))
        result.details.append(
            f"- Connection `{DB_CONN_ID}` created through `POST /api/v2/connections` (no `{var}`); run {state}: "
            + ", ".join(f"`{t}` {ti['state']}" for t, ti in sorted(tis.items()))
            + "; trigger logs: "
            + "; ".join(
                f"`{t}` in triggerer job {', '.join(p.name.rsplit('.', 2)[-2] for p in paths) or 'none'}"
                for t, paths in logs.items()
            )
            + f"; files under the Airflow logs holding the token: {len(leaks)}."
        )
        if any(stalls.values()):
            worst = max(s for found in stalls.values() for s in found)
            result.figures["triggerer stall"] = f"{worst:.0f} s"
            result.details.append(
                "- The first lookup of a database-only connection in a triggerer held its supervisor: "
                + ", ".join(
                    f"{name} silent {', '.join(f'{s:.1f}' for s in found)} s" for name, found in stalls.items() if found
                )
                + ". Airflow's in-process Execution API builds its versioned routes on its first request (CPU "
                "bound: about 3.6 s alone on this machine); past `[triggerer] runner_health_check_threshold` "
                "(30 s) Airflow reports the runner deadlocked, skips heartbeats and reassigns its triggers."
            )
        ct.check(state == "success", f"run {state}: " + ", ".join(f"{t}={ti['state']}" for t, ti in tis.items()))
        missing = [t for t, paths in ran.items() if not paths]
        ct.check(not missing, f"no trigger log shows a wait for: {missing}")
        ct.check(not leaks, f"the token appears in {[str(p) for p in leaks]}")
    finally:
        for instance in (DB_CONN_SENSOR_INSTANCE, DB_CONN_CREATE_INSTANCE):
            with suppress(Exception):
                ct.end_running(emu, instance)


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {7: db_connection}
