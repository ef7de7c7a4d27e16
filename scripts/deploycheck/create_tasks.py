"""A create task instance as scenarios 4 to 7 of ``make deploy-check`` see it, and what they drive it with.

- Its jobs: the operator's default description (:func:`task_instance_prefix`) tells which emulator jobs
  a task instance started (:func:`jobs_of`) and on which try (:func:`try_of`).
- Its requests: :class:`Requests` follows the emulator's request log from a point on, and
  :func:`job_requests` picks the creates, cancels and reads of one instance's jobs from it.
- Its state through the REST API: :func:`task_instance`, :func:`clear_task`, :func:`mark_task`,
  :func:`xcom_value`, :func:`trigger_with_conf`, :func:`wait_run`; its triggers' logs (:func:`trigger_logs`).
- The emulator's job-duration switch: :func:`long_jobs` keeps API-created jobs running while a scenario
  needs them (it ends them itself: :func:`end_running`); :func:`trigger_until_job` starts a scenario's
  run with it and waits until the create task holds its job; :func:`wait_retry` waits for its next try.
- The frame of each scenario: :func:`scenario` (a result, failed by the first :func:`check` that does not
  hold or any other :class:`~deploycheck.services.DeployCheckFailed`, passed otherwise).

Pure parts are tested in ``tests/test_deploy_check_create.py``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from deploycheck.airflow import Api
from deploycheck.emulator_process import Emulator
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, log, wait_until

#: The create task of every scenario DAG (tests/deploy_dags/create_faults.py).
TASK = "create"

#: Seconds an API-created job runs while a scenario needs it running (the scenario ends it itself).
LONG_JOB = 900.0
#: The emulator's ``--job-duration`` default (the deploy check passes its own: :func:`job_duration`).
CLI_JOB_DURATION = 10.0

RUN_TIMEOUT = 240.0
TERMINAL = {"success", "failed"}
#: ``.../instances/<instance>/jobs[/<job>]`` in a request path.
JOBS_PATH = re.compile(r"/instances/([^/?]+)/jobs(?:/([^/?]+))?(?:/logs)?(?:\?.*)?$")


# -- a task instance's jobs and requests (pure) ---------------------------------------------------


def task_instance_prefix(dag_id: str, task_id: str, run_id: str) -> str:
    """What every try's default job description starts with (``task_tries.task_instance_prefix``, unmapped)."""
    return f"airflow:{dag_id}:{task_id}:{run_id}:try"


def jobs_of(jobs: Sequence[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The jobs whose description marks them as started by the task instance with ``prefix``."""
    return [j for j in jobs if str(j.get("description") or "").startswith(prefix)]


def try_of(job: dict[str, Any]) -> int | None:
    """The try number in a default description (``...:try<n>``)."""
    match = re.search(r":try(\d+)$", str(job.get("description") or ""))
    return int(match.group(1)) if match else None


def is_running(job: dict[str, Any]) -> bool:
    """Whether an emulator job dict is still running."""
    return job.get("ended_at") is None and job.get("end_reason") is None


def job_requests(
    records: Sequence[dict[str, Any]], instance: str, *, method: str | None = None, job_id: str | None = None
) -> list[dict[str, Any]]:
    """Requests to the jobs of ``instance`` (optionally one method, one job id: ``""`` = the collection)."""
    found = []
    for record in records:
        match = JOBS_PATH.search(str(record.get("path", "")))
        if match is None or match.group(1) != instance:
            continue
        if method is not None and record.get("method") != method:
            continue
        if job_id is not None and (match.group(2) or "") != job_id:
            continue
        found.append(record)
    return found


def short_request(record: dict[str, Any]) -> str:
    """``METHOD <instance>/jobs[/<job id prefix>]`` for a jobs request (else method and path)."""
    path = str(record.get("path", ""))
    match = JOBS_PATH.search(path)
    if match is None:
        return f"{record.get('method')} {path}"
    job = f"/{match.group(2)[:8]}" if match.group(2) else ""
    return f"{record.get('method')} {match.group(1)}/jobs{job}"


def trigger_logs(home: Path, dag_id: str, run_id: str, task_id: str) -> list[Path]:
    """The per-trigger log files triggerers wrote for a task instance (``*.log.trigger.<job id>.log``)."""
    return sorted((home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log.trigger.*.log"))


# -- the scenario frame -------------------------------------------------------------------------


def scenario(
    number: int, title: str
) -> Callable[[Callable[[Deployment, ScenarioResult], None]], Callable[[Deployment], ScenarioResult]]:
    """
    Make a scenario function of ``body(dep, result)``: it fills the result's figures and details, and
    raises :class:`DeployCheckFailed` (:func:`check`) when something does not hold; the result passes
    when it returns with no failure recorded.

    :param number: The scenario's number.
    :param title: Its title in the report.
    """

    def wrap(body: Callable[[Deployment, ScenarioResult], None]) -> Callable[[Deployment], ScenarioResult]:
        @functools.wraps(body)
        def run(dep: Deployment) -> ScenarioResult:
            result = ScenarioResult(number, title)
            try:
                body(dep, result)
                result.passed = not result.failure
            except DeployCheckFailed as exc:
                result.fail(str(exc))
            return result.finish()

        return run

    return wrap


def check(holds: bool, failure: str) -> None:
    """Raise :class:`DeployCheckFailed` with ``failure`` unless ``holds``."""
    if not holds:
        raise DeployCheckFailed(failure)


# -- REST helpers ---------------------------------------------------------------------------------


def task_instance(api: Api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """``GET .../taskInstances/{task_id}`` (state, try_number, pid, hostname)."""
    path = f"/api/v2/dags/{api.q(dag_id)}/dagRuns/{api.q(run_id)}/taskInstances/{api.q(task_id)}"
    ti: dict[str, Any] = api.get(path)
    return ti


def trigger_with_conf(api: Api, dag_id: str, conf: dict[str, Any]) -> str:
    """Trigger a run with ``conf`` and no logical date; its run id."""
    run = api.call("POST", f"/api/v2/dags/{api.q(dag_id)}/dagRuns", {"logical_date": None, "conf": conf})
    return str(run["dag_run_id"])


def clear_task(api: Api, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """``POST /api/v2/dags/{dag_id}/clearTaskInstances`` for one task of one run, running or not."""
    body = {"dag_run_id": run_id, "task_ids": [task_id], "only_failed": False, "dry_run": False}
    cleared = api.call("POST", f"/api/v2/dags/{api.q(dag_id)}/clearTaskInstances", body)
    tis: list[dict[str, Any]] = cleared["task_instances"]
    return tis


def mark_task(api: Api, dag_id: str, run_id: str, task_id: str, state: str) -> None:
    """``PATCH .../taskInstances/{task_id}`` with ``new_state``."""
    path = f"/api/v2/dags/{api.q(dag_id)}/dagRuns/{api.q(run_id)}/taskInstances/{api.q(task_id)}"
    api.call("PATCH", path, {"new_state": state})


def xcom_value(api: Api, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    """An XCom value of a task instance (``None`` when there is none)."""
    path = f"/api/v2/dags/{api.q(dag_id)}/dagRuns/{api.q(run_id)}/taskInstances/{api.q(task_id)}/xcomEntries/{key}"
    try:
        entry = api.get(path + "?deserialize=true")
    except DeployCheckFailed as exc:
        if "HTTP 404" in str(exc):
            return None
        raise
    value = entry.get("value")
    if isinstance(value, str):
        with suppress(ValueError):
            value = json.loads(value)
    return value


def wait_run(
    api: Api, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT, tick: Callable[[], None] | None = None
) -> str:
    """Wait until the run ends (calling ``tick`` each round); its state."""
    deadline = time.monotonic() + timeout
    while True:
        state = str(api.run(dag_id, run_id)["state"])
        if state in TERMINAL:
            return state
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
        if tick is not None:
            tick()
        time.sleep(1)


# -- the emulator's request log and job durations -------------------------------------------------


class Requests:
    """The emulator's request log from a point on."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        _, self.seq = emulator.requests_since(0)
        self.records: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Fetch what was served since the last poll; every record since the start."""
        records, self.seq = self.emulator.requests_since(self.seq)
        self.records.extend(records)
        return self.records


def job_duration(argv: Sequence[str]) -> float:
    """The duration of API-created jobs an emulator command line sets (``--job-duration``)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--job-duration" and i + 1 < len(args):
            return float(args[i + 1])
        if arg.startswith("--job-duration="):
            return float(arg.split("=", 1)[1])
    return CLI_JOB_DURATION


@contextmanager
def long_jobs(emulator: Emulator) -> Iterator[None]:
    """API-created jobs run :data:`LONG_JOB` seconds inside the block (the scenario ends them itself)."""
    args = emulator.proc.args
    usual = job_duration([os.fsdecode(a) for a in args] if isinstance(args, (list, tuple)) else [])
    emulator.configure(job_duration=LONG_JOB)
    try:
        yield
    finally:
        emulator.configure(job_duration=usual)


def end_running(emulator: Emulator, instance: str, end_reason: str = "completed") -> list[str]:
    """End every running job of ``instance`` (cleanup); the ids ended."""
    return list(emulator.end_jobs(None, instance=instance, end_reason=end_reason))


def trigger_until_job(
    dep: Deployment, number: int, dag_id: str, instance: str, state: str, before: str, what: str
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """
    Trigger ``dag_id`` while API-created jobs run :data:`LONG_JOB` s, and wait until its create task is
    ``state`` with a job of its own on ``instance``; the run id, the task instance's description prefix,
    the task instance and its (newest) job.

    :param dep: The deployment.
    :param number: The scenario's number (for the log lines).
    :param dag_id: The DAG (unpaused here).
    :param instance: The emulator instance the task creates its job on.
    :param state: ``running`` (the task's pid known too) or ``deferred`` (its trigger has written its log:
        it runs in a triggerer).
    :param before: What the scenario does next, for the failure when the task ends first.
    :param what: What is awaited, for the timeout's message.
    """
    api, emu = dep.api, dep.emulator
    api.unpause(dag_id)
    with long_jobs(emu):
        run_id = api.trigger(dag_id)
        prefix = task_instance_prefix(dag_id, TASK, run_id)
        log(f"scenario {number}: triggered {dag_id} run {run_id}")
        found: dict[str, Any] = {}

        def holds_its_job() -> bool:
            ti = task_instance(api, dag_id, run_id, TASK)
            if ti["state"] in TERMINAL:
                raise DeployCheckFailed(f"the task ended {ti['state']} before {before}")
            mine = jobs_of(emu.all_jobs(instance=instance), prefix)
            if ti["state"] != state or not mine:
                return False
            if state == "running" and not ti.get("pid"):
                return False
            if state == "deferred" and not trigger_logs(dep.home, dag_id, run_id, TASK):
                return False
            found.update(ti=ti, job=mine[0])
            return True

        wait_until(f"scenario {number}: {what}", holds_its_job, 180)
    return run_id, prefix, found["ti"], found["job"]


def wait_retry(
    api: Api, dag_id: str, run_id: str, states: tuple[str, ...], what: str, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Wait until try 2 or later of the create task is in one of ``states``; the seconds taken, that task instance."""
    found: dict[str, Any] = {}

    def retried() -> bool:
        ti = task_instance(api, dag_id, run_id, TASK)
        if ti["try_number"] >= 2 and ti["state"] in states:
            found.update(ti)
            return True
        return False

    return wait_until(what, retried, timeout), found
