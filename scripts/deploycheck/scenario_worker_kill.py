"""Scenario 4 of ``make deploy-check``: a Celery worker killed mid-create.

A create-and-wait task running in a Celery worker (``deferrable=False``) is SIGKILLed with its worker
(its process group, and the task's own group below it: ``Processes.kill(..., descendants=True)``);
Airflow sees its heartbeat stop (:data:`CONFIG`: a timeout of :data:`HEARTBEAT_TIMEOUT` s) and retries
it on the other worker. The retry must adopt the first try's still-running job: exactly one job and one
create POST for the task instance, and the task succeeds on try 2. The killed worker is started again
under the same name (:func:`restart_worker`).

Its emulator instance and DAG: ``tests/deploy_dags/create_faults.py``; it ends every job of its own it
left running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from deploycheck import create_tasks as ct
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import Child, DeployCheckFailed, free_port, log, tree, wait_until

WORKER_KILL_DAG = "deploy_check_worker_kill"
DAG_IDS = [WORKER_KILL_DAG]
#: As in tests/deploy_dags/create_faults.py.
WORKER_KILL_INSTANCE = "create4"

#: Airflow settings every component gets: a killed worker's task is detected within about 25 s.
#: The task's supervisor heartbeats every ``[workers] min_heartbeat_interval`` (5 s) whatever the timeout.
HEARTBEAT_TIMEOUT = 20
CONFIG = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


def started_at(ti: dict[str, Any]) -> float | None:
    """A task instance's ``start_date`` as epoch seconds (``None`` if it has none)."""
    value = ti.get("start_date")
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def restart_worker(dep: Deployment, name: str) -> tuple[Child, int]:
    """Start a killed Celery worker again (same name and command line); the new child and its log offset."""
    offset = dep.procs.get(name).log_path.stat().st_size
    dep.procs.restart(name, env={**dep.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
    return dep.procs.get(name), offset


def wait_worker_ready(child: Child, offset: int, timeout: float = 120) -> float:
    """Wait until a (re)started Celery worker logs ``<hostname> ready.`` after ``offset``; the seconds it took."""

    def ready() -> bool:
        if child.proc.poll() is not None:
            raise DeployCheckFailed(f"{child.name} exited with code {child.proc.returncode} after its restart")
        with child.log_path.open("rb") as f:
            f.seek(offset)
            return b" ready." in f.read()

    return wait_until(f"{child.name} ready again", ready, timeout)


@ct.scenario(4, "Worker killed mid-create")
def worker_kill(dep: Deployment, result: ScenarioResult) -> None:
    """Scenario 4: SIGKILL the Celery worker running a create-and-wait task; the retry adopts its job."""
    api, emu = dep.api, dep.emulator
    instance = WORKER_KILL_INSTANCE
    emu.add_instance(instance)
    requests = ct.Requests(emu)
    killed: str | None = None  # a worker killed and not yet restarted
    restarted: tuple[Child, int] | None = None
    try:
        started = time.monotonic()
        what = "the task running and its job created"
        run_id, prefix, ti, job = ct.trigger_until_job(
            dep, 4, WORKER_KILL_DAG, instance, "running", "the worker was killed", what
        )
        pid = int(ti["pid"])
        workers = [c for c in dep.procs.children if c.name.startswith("worker-")]
        holder = [c for c in workers if pid in tree(c.proc.pid)]
        if len(holder) != 1:
            raise DeployCheckFailed(f"not one Celery worker runs the task's pid {pid}: {[c.name for c in holder]}")
        killed = holder[0].name
        killed_pids = tree(holder[0].proc.pid)
        killed_at = dep.procs.kill(killed, descendants=True)  # the task runs in a process group of its own
        log(f"scenario 4: SIGKILLed {killed} ({len(killed_pids)} processes; task pid {pid}, job {job['id']})")
        retrying = ("running", "success", "failed")
        detect, retry = ct.wait_retry(api, WORKER_KILL_DAG, run_id, retrying, "scenario 4: the retry running", 240)
        retry_seen = time.time()
        log(f"scenario 4: try {retry['try_number']} {retry['state']} {detect:.1f} s after the kill")
        # The retry has started elsewhere: bring the killed worker back meanwhile.
        restarted = restart_worker(dep, killed)
        restart_at, killed = time.monotonic(), None
        retry_holder = [c.name for c in workers if retry.get("pid") and int(retry["pid"]) in tree(c.proc.pid)]

        def retry_looked() -> bool:
            # Its listing (adopt, or create another) and one more request: only then end the job.
            since = [r for r in ct.job_requests(requests.poll(), instance) if float(r.get("at", 0)) >= retry_seen - 1]
            return len(since) >= 2 or ct.task_instance(api, WORKER_KILL_DAG, run_id, ct.TASK)["state"] in ct.TERMINAL

        wait_until("scenario 4: the retry looking at the job", retry_looked, 120)
        ct.end_running(emu, instance)
        state = ct.wait_run(api, WORKER_KILL_DAG, run_id)
        total = time.monotonic() - started
        ready = wait_worker_ready(*restarted) + (time.monotonic() - restart_at)
        restarted = None
        records = requests.poll()
        ti = ct.task_instance(api, WORKER_KILL_DAG, run_id, ct.TASK)
        mine = ct.jobs_of(emu.all_jobs(instance=instance), prefix)
        posts = ct.job_requests(records, instance, method="POST", job_id="")
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
            + ", ".join(f"`{j['id']}` try{ct.try_of(j)} {j.get('end_reason')}" for j in mine)
            + f"); create POSTs: {len(posts)}.",
            f"- `{holder[0].name}` restarted (same name), ready {ready:.1f} s later.",
        ]
        ct.check(len(mine) == 1, f"{len(mine)} jobs for the task instance (expected 1): {[j['id'] for j in mine]}")
        ct.check(len(posts) == 1, f"{len(posts)} create POSTs on {instance} (expected 1)")
        ct.check(
            (ti["state"], ti["try_number"]) == ("success", 2),
            f"the task ended {ti['state']} on try {ti['try_number']} (expected success on try 2)",
        )
    finally:
        ct.end_running(emu, instance)
        try:
            if killed is not None:
                restarted = restart_worker(dep, killed)
            if restarted is not None:
                wait_worker_ready(*restarted)
        except DeployCheckFailed as exc:
            result.fail(str(exc))


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {4: worker_kill}
