"""Scenarios 4 to 7 of ``make deploy-check``: the create operator under faults, and a database-only connection.

4. **Worker killed mid-create.** A create-and-wait task running in a Celery worker
   (``deferrable=False``) is SIGKILLed with its worker; Airflow sees its heartbeat stop and retries it
   on the other worker. The retry must adopt the first try's still-running job: exactly one job and
   one create POST for the task instance, and the task succeeds on try 2.
5. **Clear a running deferred create task** through the REST API. The old try's trigger cancels
   its job (``on_kill`` in the triggerer); the new try ends ``success`` with a job of its own, and no
   job is left running. Both triggerers are paused (SIGSTOP) from just before the clear until the
   new try has deferred, so the new try always meets the old job still running and adopts it, and
   the old trigger's cancel lands afterwards: the race seen in a real deployment, made certain, so
   that the replacement of an adopted job that is then cancelled is what decides the outcome.
6. **Mark a deferred create task failed.** Its job is cancelled by the trigger's ``on_kill``, no
   other request creates or cancels anything (a running job on another instance stays running),
   and the task stays failed (no retry).
7. **A connection only in the metadata database** (created through the REST API, no env var) works
   for a worker and a triggerer: a deferrable sensor and a deferrable create-and-wait succeed, their
   triggers ran in a triggerer, and the token appears in no task or trigger log.

Each scenario has its own emulator instance(s) and DAG (``tests/deploy_dags/create_faults.py``), and
ends every job of its own it left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from deploycheck.airflow import Api
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import Child, DeployCheckFailed, Emulator, free_port, log, wait_until

WORKER_KILL_DAG = "deploy_check_worker_kill"
CLEAR_DAG = "deploy_check_clear_deferred"
MARK_FAILED_DAG = "deploy_check_mark_failed"
DB_CONN_DAG = "deploy_check_db_connection"
DAG_IDS = [WORKER_KILL_DAG, CLEAR_DAG, MARK_FAILED_DAG, DB_CONN_DAG]

#: As in tests/deploy_dags/create_faults.py.
WORKER_KILL_INSTANCE = "create4"
CLEAR_INSTANCE = "create5"
MARK_FAILED_INSTANCE = "create6"
#: Another instance of scenario 6 with a running job that marking the task failed must not touch.
MARK_FAILED_BYSTANDER = "create6-other"
DB_CONN_SENSOR_INSTANCE = "dbconn"
DB_CONN_CREATE_INSTANCE = "dbconn2"
DB_CONN_ID = "aisearch_db_only"
TASK = "create"

#: Seconds an API-created job runs while a scenario needs it running (the scenario ends it itself).
LONG_JOB = 900.0
#: The emulator's ``--job-duration`` default (the deploy check passes its own: :func:`job_duration`).
CLI_JOB_DURATION = 10.0

#: Airflow settings every component gets: a killed worker's task is detected within about 25 s.
#: The task's supervisor heartbeats every ``[workers] min_heartbeat_interval`` (5 s) whatever the timeout.
HEARTBEAT_TIMEOUT = 20
CONFIG = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}

RUN_TIMEOUT = 240.0
TERMINAL = {"success", "failed"}
#: ``.../instances/<instance>/jobs[/<job>]`` in a request path.
JOBS_PATH = re.compile(r"/instances/([^/?]+)/jobs(?:/([^/?]+))?(?:/logs)?(?:\?.*)?$")


# -- pure parts (tested in tests/test_deploy_check_create.py) -------------------------------------


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


def started_at(ti: dict[str, Any]) -> float | None:
    """A task instance's ``start_date`` as epoch seconds (``None`` if it has none)."""
    value = ti.get("start_date")
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def files_containing(root: Path, secret: str) -> list[Path]:
    """Files under ``root`` whose bytes contain ``secret``."""
    needle = secret.encode()
    return sorted(p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


#: A triggerer's supervisor reporting its trigger runner silent (then it skips heartbeats: "unhealthy").
RUNNER_SILENT = re.compile(r"no communication received for ([\d.]+) ?s")


def runner_stalls(text: str) -> list[float]:
    """Seconds of each trigger-runner silence a triggerer log reports."""
    return [float(m.group(1)) for m in RUNNER_SILENT.finditer(text)]


def trigger_logs(home: Path, dag_id: str, run_id: str, task_id: str) -> list[Path]:
    """The per-trigger log files triggerers wrote for a task instance (``*.log.trigger.<job id>.log``)."""
    return sorted((home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log.trigger.*.log"))


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


# -- emulator and process helpers -----------------------------------------------------------------


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


def parent_pids(proc_root: Path = Path("/proc")) -> dict[int, int]:
    """Every process's parent pid, from ``/proc/<pid>/stat``."""
    parents: dict[int, int] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int, parents: dict[int, int]) -> list[int]:
    """``pid`` and every process below it (whatever their process group), parents first."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(sorted(children.get(current, [])))
    return found


def tree(pid: int) -> list[int]:
    """A live process and all its descendants."""
    return descendants(pid, parent_pids()) if Path(f"/proc/{pid}").exists() else []


def kill_tree(child: Child) -> list[int]:
    """SIGKILL a component: its process group, and every descendant in another group (a task's own group)."""
    pids = tree(child.proc.pid)
    with suppress(ProcessLookupError):
        os.killpg(child.proc.pid, signal.SIGKILL)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child.proc.wait(timeout=30)
    return pids


def signal_tree(child: Child, sig: int) -> None:
    """Send ``sig`` to a component and all its descendants."""
    for pid in tree(child.proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def restart_worker(dep: Deployment, old: Child) -> tuple[Child, int]:
    """Start a killed Celery worker again (same name and command line); the new child and its log offset."""
    offset = old.log_path.stat().st_size
    old.out.close()
    dep.procs.children.remove(old)  # so that procs.get(name) is the new one, and the teardown stops it
    args = old.proc.args
    if not isinstance(args, (list, tuple)):
        raise DeployCheckFailed(f"cannot restart {old.name}: unknown command line {args!r}")
    argv = [os.fsdecode(a) for a in args]
    env = {**dep.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
    dep.procs.start(old.name, argv, env, tier=old.tier)
    return dep.procs.get(old.name), offset


def wait_worker_ready(child: Child, offset: int, timeout: float = 120) -> float:
    """Wait until a (re)started Celery worker logs ``<hostname> ready.`` after ``offset``; the seconds it took."""

    def ready() -> bool:
        if child.proc.poll() is not None:
            raise DeployCheckFailed(f"{child.name} exited with code {child.proc.returncode} after its restart")
        with child.log_path.open("rb") as f:
            f.seek(offset)
            return b" ready." in f.read()

    return wait_until(f"{child.name} ready again", ready, timeout)


# -- scenario 4 -------------------------------------------------------------------------------------


def worker_kill(dep: Deployment) -> ScenarioResult:
    """Scenario 4: SIGKILL the Celery worker running a create-and-wait task; the retry adopts its job."""
    result = ScenarioResult(4, "Worker killed mid-create")
    api, emu = dep.api, dep.emulator
    instance = WORKER_KILL_INSTANCE
    emu.add_instance(instance)
    requests = Requests(emu)
    killed: Child | None = None
    restarted: tuple[Child, int] | None = None
    try:
        api.unpause(WORKER_KILL_DAG)
        started = time.monotonic()
        with long_jobs(emu):
            run_id = api.trigger(WORKER_KILL_DAG)
            prefix = task_instance_prefix(WORKER_KILL_DAG, TASK, run_id)
            log(f"scenario 4: triggered {WORKER_KILL_DAG} run {run_id}")
            first: dict[str, Any] = {}

            def created_and_running() -> bool:
                ti = task_instance(api, WORKER_KILL_DAG, run_id, TASK)
                if ti["state"] in TERMINAL:
                    raise DeployCheckFailed(f"the task ended {ti['state']} before the worker was killed")
                mine = jobs_of(emu.all_jobs(instance=instance), prefix)
                if ti["state"] == "running" and ti.get("pid") and mine:
                    first.update(ti=ti, job=mine[0])
                    return True
                return False

            wait_until("scenario 4: the task running and its job created", created_and_running, 180)
        job, pid = first["job"], int(first["ti"]["pid"])
        workers = [c for c in dep.procs.children if c.name.startswith("worker-")]
        holder = [c for c in workers if pid in tree(c.proc.pid)]
        if len(holder) != 1:
            raise DeployCheckFailed(f"not one Celery worker runs the task's pid {pid}: {[c.name for c in holder]}")
        killed = holder[0]
        killed_pids = kill_tree(killed)
        killed_at = time.time()
        log(f"scenario 4: SIGKILLed {killed.name} ({len(killed_pids)} processes; task pid {pid}, job {job['id']})")
        retry: dict[str, Any] = {}

        def retry_running() -> bool:
            ti = task_instance(api, WORKER_KILL_DAG, run_id, TASK)
            if ti["try_number"] >= 2 and ti["state"] in ("running", "success", "failed"):
                retry.update(ti)
                return True
            return False

        detect = wait_until("scenario 4: the retry running", retry_running, 240)
        retry_seen = time.time()
        log(f"scenario 4: try {retry['try_number']} {retry['state']} {detect:.1f} s after the kill")
        # The retry has started elsewhere: bring the killed worker back meanwhile.
        restarted = restart_worker(dep, killed)
        restart_at, killed = time.monotonic(), None
        retry_holder = [c.name for c in workers if retry.get("pid") and int(retry["pid"]) in tree(c.proc.pid)]

        def retry_looked() -> bool:
            # Its listing (adopt, or create another) and one more request: only then end the job.
            since = [r for r in job_requests(requests.poll(), instance) if float(r.get("at", 0)) >= retry_seen - 1]
            return len(since) >= 2 or task_instance(api, WORKER_KILL_DAG, run_id, TASK)["state"] in TERMINAL

        wait_until("scenario 4: the retry looking at the job", retry_looked, 120)
        end_running(emu, instance)
        state = wait_run(api, WORKER_KILL_DAG, run_id)
        total = time.monotonic() - started
        ready = wait_worker_ready(*restarted) + (time.monotonic() - restart_at)
        restarted = None
        records = requests.poll()
        ti = task_instance(api, WORKER_KILL_DAG, run_id, TASK)
        mine = jobs_of(emu.all_jobs(instance=instance), prefix)
        posts = job_requests(records, instance, method="POST", job_id="")
        retry_start = started_at(retry)
        to_retry = detect if retry_start is None else retry_start - killed_at
        result.figures["kill → retry start"] = f"{to_retry:.0f} s"
        result.figures["total"] = f"{total:.0f} s"
        result.figures["jobs for the task instance"] = str(len(mine))
        result.figures["create POSTs"] = str(len(posts))
        result.figures["task"] = f"{ti['state']} on try {ti['try_number']}"
        result.details += [
            f"- Try 1 ran in `{holder[0].name}` (task pid {pid}) and created job `{job['id']}`; the worker's "
            f"{len(killed_pids)} processes (its group and the task's own group) were SIGKILLed.",
            f"- Try {retry['try_number']} started {to_retry:.1f} s after the kill (seen running after {detect:.1f} s) "
            f"in {', '.join(retry_holder) or '?'} "
            f"(`task_instance_heartbeat_timeout` {HEARTBEAT_TIMEOUT} s, detection every 5 s, `retry_delay` 2 s); "
            f"run {state} {total:.0f} s after the trigger.",
            f"- Jobs with this task instance's description: {len(mine)} ("
            + ", ".join(f"`{j['id']}` try{try_of(j)} {j.get('end_reason')}" for j in mine)
            + f"); create POSTs: {len(posts)}.",
            f"- `{holder[0].name}` restarted (same name), ready {ready:.1f} s later.",
        ]
        if len(mine) != 1:
            return result.fail(f"{len(mine)} jobs for the task instance (expected 1): {[j['id'] for j in mine]}")
        if len(posts) != 1:
            return result.fail(f"{len(posts)} create POSTs on {instance} (expected 1)")
        if ti["state"] != "success" or ti["try_number"] != 2:
            return result.fail(f"the task ended {ti['state']} on try {ti['try_number']} (expected success on try 2)")
        result.passed = True
        return result
    except DeployCheckFailed as exc:
        return result.fail(str(exc))
    finally:
        end_running(emu, instance)
        try:
            if killed is not None:
                restarted = restart_worker(dep, killed)
            if restarted is not None:
                wait_worker_ready(*restarted)
        except DeployCheckFailed as exc:
            result.fail(str(exc))
        result.finish()


# -- scenario 5 -------------------------------------------------------------------------------------


def clear_deferred(dep: Deployment) -> ScenarioResult:
    """Scenario 5: clear a deferred create task; the old job is cancelled, the new try gets its own."""
    result = ScenarioResult(5, "Clear a running deferred create task")
    api, emu = dep.api, dep.emulator
    instance = CLEAR_INSTANCE
    emu.add_instance(instance)
    requests = Requests(emu)
    triggerers = [c for c in dep.procs.children if c.name.startswith("triggerer-")]
    paused = False
    try:
        api.unpause(CLEAR_DAG)
        with long_jobs(emu):
            run_id = api.trigger(CLEAR_DAG)
            prefix = task_instance_prefix(CLEAR_DAG, TASK, run_id)
            log(f"scenario 5: triggered {CLEAR_DAG} run {run_id}")
            old: dict[str, Any] = {}

            def deferred_on_job() -> bool:
                ti = task_instance(api, CLEAR_DAG, run_id, TASK)
                if ti["state"] in TERMINAL:
                    raise DeployCheckFailed(f"the task ended {ti['state']} before it was cleared")
                mine = jobs_of(emu.all_jobs(instance=instance), prefix)
                if ti["state"] == "deferred" and mine and trigger_logs(dep.home, CLEAR_DAG, run_id, TASK):
                    old.update(mine[0])
                    return True
                return False

            wait_until("scenario 5: the task deferred on its job", deferred_on_job, 180)
        for child in triggerers:
            signal_tree(child, signal.SIGSTOP)
        paused = True
        t_clear = time.monotonic()
        clear_task(api, CLEAR_DAG, run_id, TASK)
        log(f"scenario 5: triggerers paused, cleared the task deferred on job {old['id']}")
        adopted: dict[str, Any] = {}

        def new_try_deferred() -> bool:
            ti = task_instance(api, CLEAR_DAG, run_id, TASK)
            if ti["try_number"] >= 2 and ti["state"] in ("deferred", "success", "failed"):
                adopted.update(ti)
                return True
            return False

        try:
            wait_until("scenario 5: the new try deferred", new_try_deferred, 25)
        except DeployCheckFailed:
            pass  # resume the triggerers anyway (paused too long, Airflow would declare them dead)
        for child in triggerers:
            signal_tree(child, signal.SIGCONT)
        paused = False
        pause = time.monotonic() - t_clear
        new_try = f"try {adopted.get('try_number')} {adopted.get('state')}" if adopted else "not deferred yet"
        posts_during_pause = len(job_requests(requests.poll(), instance, method="POST", job_id=""))
        result.details.append(
            f"- Triggerers paused {pause:.1f} s from the clear until the new try deferred ({new_try}; "
            f"create POSTs so far: {posts_during_pause}, so the new try adopted the old job)."
        )

        def old_cancelled() -> bool:
            job = next((j for j in emu.all_jobs(instance=instance) if j["id"] == old["id"]), old)
            return not is_running(job)

        wait_until(f"scenario 5: old job {old['id']} ended", old_cancelled, 60)

        def end_new_jobs() -> None:
            for job in jobs_of(emu.all_jobs(instance=instance), prefix):
                if job["id"] != old["id"] and is_running(job):
                    emu.end_jobs([job["id"]], instance=instance, end_reason="completed")

        state = wait_run(api, CLEAR_DAG, run_id, tick=end_new_jobs)
        seconds = time.monotonic() - t_clear
        records = requests.poll()
        ti = task_instance(api, CLEAR_DAG, run_id, TASK)
        jobs = emu.all_jobs(instance=instance)
        mine = jobs_of(jobs, prefix)
        old_job = next(j for j in jobs if j["id"] == old["id"])
        new_jobs = [j for j in mine if j["id"] != old["id"]]
        xcom_job = xcom_value(api, CLEAR_DAG, run_id, TASK, "job_id")
        running = [j["id"] for j in jobs if is_running(j)]
        posts = job_requests(records, instance, method="POST", job_id="")
        result.figures["clear → run end"] = f"{seconds:.0f} s"
        result.figures["jobs created"] = str(len(mine))
        result.figures["end reasons"] = ", ".join(f"try{try_of(j)}: {j.get('end_reason')}" for j in reversed(mine))
        result.details.append(
            f"- Run {state}, task {ti['state']} on try {ti['try_number']}, XCom job id `{xcom_job}`; "
            f"create POSTs {len(posts)}; jobs: "
            + ", ".join(f"`{j['id']}` try{try_of(j)} {j.get('end_reason')}" for j in reversed(mine))
            + "."
        )
        if old_job.get("end_reason") != "cancelled":
            return result.fail(f"the old job {old['id']} ended {old_job.get('end_reason')!r}, not cancelled")
        if ti["state"] != "success":
            return result.fail(f"the new try ended {ti['state']} (try {ti['try_number']})")
        if len(new_jobs) != 1 or xcom_job != new_jobs[0]["id"] or try_of(new_jobs[0]) != ti["try_number"]:
            return result.fail(f"the new try has no job of its own: XCom {xcom_job!r}, new jobs {new_jobs}")
        if running:
            return result.fail(f"jobs left running on {instance}: {running}")
        result.passed = True
        return result
    except DeployCheckFailed as exc:
        return result.fail(str(exc))
    finally:
        if paused:
            for child in triggerers:
                signal_tree(child, signal.SIGCONT)
        end_running(emu, instance)
        result.finish()


# -- scenario 6 -------------------------------------------------------------------------------------


def mark_failed(dep: Deployment) -> ScenarioResult:
    """Scenario 6: mark a deferred create task failed; its job (only) is cancelled, and it stays failed."""
    result = ScenarioResult(6, "Mark a deferred create task failed")
    api, emu = dep.api, dep.emulator
    instance, bystander = MARK_FAILED_INSTANCE, MARK_FAILED_BYSTANDER
    emu.add_instance(instance)
    emu.add_instance(bystander)
    other = emu.add_jobs(1, instance=bystander, duration=LONG_JOB)[0]
    requests = Requests(emu)
    try:
        api.unpause(MARK_FAILED_DAG)
        with long_jobs(emu):
            run_id = api.trigger(MARK_FAILED_DAG)
            prefix = task_instance_prefix(MARK_FAILED_DAG, TASK, run_id)
            log(f"scenario 6: triggered {MARK_FAILED_DAG} run {run_id}")
            found: dict[str, Any] = {}

            def deferred_in_triggerer() -> bool:
                ti = task_instance(api, MARK_FAILED_DAG, run_id, TASK)
                if ti["state"] in TERMINAL:
                    raise DeployCheckFailed(f"the task ended {ti['state']} before it was marked failed")
                mine = jobs_of(emu.all_jobs(instance=instance), prefix)
                # Its trigger must be running in a triggerer: only there can on_kill cancel the job.
                if ti["state"] == "deferred" and mine and trigger_logs(dep.home, MARK_FAILED_DAG, run_id, TASK):
                    found.update(mine[0])
                    return True
                return False

            wait_until("scenario 6: the task deferred, its trigger running", deferred_in_triggerer, 180)
        job_id = found["id"]
        requests.poll()
        before = len(requests.records)
        t_patch = time.monotonic()
        patched_at = time.time()
        mark_task(api, MARK_FAILED_DAG, run_id, TASK, "failed")
        log(f"scenario 6: marked the task failed while deferred on job {job_id}")

        def cancel_seen() -> bool:
            return bool(job_requests(requests.poll()[before:], instance, method="PATCH", job_id=job_id))

        wait_until(f"scenario 6: the cancel request of job {job_id}", cancel_seen, 60)
        cancel = job_requests(requests.records[before:], instance, method="PATCH", job_id=job_id)[0]
        to_cancel = float(cancel["at"]) - patched_at
        # Nothing may follow: no retry (retry_delay is 2 s), no other create or cancel.
        time.sleep(10)
        after = requests.poll()[before:]
        ti = task_instance(api, MARK_FAILED_DAG, run_id, TASK)
        jobs = emu.all_jobs(instance=instance)
        job = next(j for j in jobs if j["id"] == job_id)
        other_now = next(j for j in emu.all_jobs(instance=bystander) if j["id"] == other["id"])
        writes = [r for r in after if r.get("method") in ("POST", "PATCH", "PUT", "DELETE")]
        result.figures["PATCH → cancel request"] = f"{to_cancel:.1f} s"
        result.figures["requests after the PATCH"] = f"{len(after)} ({len(writes)} writes)"
        result.details.append(
            f"- The cancel of `{job_id}` came {to_cancel:.1f} s after the PATCH. Requests in the "
            f"{time.monotonic() - t_patch:.0f} s after the PATCH: "
            + ", ".join(short_request(r) for r in after)
            + f". Task {ti['state']} on try {ti['try_number']}; job {job.get('end_reason')}; "
            f"the other instance's job {'running' if is_running(other_now) else other_now.get('end_reason')}."
        )
        if job.get("end_reason") != "cancelled":
            return result.fail(f"job {job_id} ended {job.get('end_reason')!r}, not cancelled")
        if len(writes) != 1:
            return result.fail(f"{len(writes)} writing requests after the PATCH (expected the one cancel): {writes}")
        if len(jobs_of(jobs, prefix)) != 1:
            return result.fail(f"{len(jobs_of(jobs, prefix))} jobs for the task instance (expected 1)")
        if not is_running(other_now):
            return result.fail(f"the other instance's job ended {other_now.get('end_reason')!r}")
        if ti["state"] != "failed" or ti["try_number"] != 1:
            return result.fail(f"the task is {ti['state']} on try {ti['try_number']} (expected failed, try 1)")
        result.passed = True
        return result
    except DeployCheckFailed as exc:
        return result.fail(str(exc))
    finally:
        end_running(emu, instance)
        end_running(emu, bystander)
        result.finish()


# -- scenario 7 -------------------------------------------------------------------------------------


def db_connection(dep: Deployment) -> ScenarioResult:
    """Scenario 7: a connection created through the REST API serves a worker and a triggerer."""
    result = ScenarioResult(7, "Connection only in the metadata database")
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
        waited_on = emu.start_job(instance=DB_CONN_SENSOR_INSTANCE, duration=LONG_JOB)
        api.unpause(DB_CONN_DAG)
        started = time.monotonic()
        run_id = trigger_with_conf(api, DB_CONN_DAG, {"job_id": waited_on["id"]})
        log(f"scenario 7: triggered {DB_CONN_DAG} run {run_id} (connection {DB_CONN_ID} only in the database)")
        ended: set[str] = set()

        def end_when_deferred() -> None:
            # A job ends only once its waiter's trigger runs in a triggerer, so the wait really happens there.
            for task_id, instance in (("wait", DB_CONN_SENSOR_INSTANCE), ("create", DB_CONN_CREATE_INSTANCE)):
                if task_id not in ended and trigger_logs(dep.home, DB_CONN_DAG, run_id, task_id):
                    ended.add(task_id)
                    end_running(emu, instance)

        state = wait_run(api, DB_CONN_DAG, run_id, tick=end_when_deferred)
        seconds = time.monotonic() - started
        tis = {ti["task_id"]: ti for ti in api.task_instances(DB_CONN_DAG, run_id)}
        logs = {t: trigger_logs(dep.home, DB_CONN_DAG, run_id, t) for t in ("wait", "create")}
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
        if state != "success":
            return result.fail(f"run {state}: " + ", ".join(f"{t}={ti['state']}" for t, ti in tis.items()))
        missing = [t for t, paths in ran.items() if not paths]
        if missing:
            return result.fail(f"no trigger log shows a wait for: {missing}")
        if leaks:
            return result.fail(f"the token appears in {[str(p) for p in leaks]}")
        result.passed = True
        return result
    except DeployCheckFailed as exc:
        return result.fail(str(exc))
    finally:
        for instance in (DB_CONN_SENSOR_INSTANCE, DB_CONN_CREATE_INSTANCE):
            with suppress(Exception):
                end_running(emu, instance)
        result.finish()


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {
    4: worker_kill,
    5: clear_deferred,
    6: mark_failed,
    7: db_connection,
}
