"""The deferred sensors scenarios 2 and 3 of ``make deploy-check`` share, and their handover.

:func:`start_waiting` seeds 100 running jobs on one emulator instance (:data:`SHARED_INSTANCE`) and
one running job on each of :data:`FOLLOW_INSTANCES`, triggers the two shared-polling DAGs (50 mapped
deferrable sensors each) and the follow DAG (one sensor per follow instance) through the REST API, and
waits until every sensor is deferred in a triggerer (:class:`Waiting`, with a running
:class:`~deploycheck.attribution.Sampler`). :func:`finish_waiting` ends the jobs and checks each
sensor's end state; :func:`cleanup` ends whatever a failed scenario left running.

Scenario 2 measures on these sensors and, when scenario 3 runs later (:func:`will_run`), leaves them
deferred for it (:func:`hand_over_waiting`, :func:`take_over_waiting`). The REST helpers here (:func:`trigger_run`,
:func:`sensor_tis`, :func:`wait_deferred`, ...) serve scenario 8 too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploycheck.attribution import Sampler, emulator_port, triggerer_pids
from deploycheck.harness import Deployment
from deploycheck.scenario1 import TERMINAL, failed_task_logs
from deploycheck.services import DeployCheckFailed, log, wait_until

SHARED_DAGS = ("deploy_check_shared_polling_a", "deploy_check_shared_polling_b")
FOLLOW_DAG = "deploy_check_failover_follow"
#: The DAGs :func:`start_waiting` triggers (tests/deploy_dags/shared_polling.py).
WAITER_DAGS = (*SHARED_DAGS, FOLLOW_DAG)

SHARED_INSTANCE = "deploy-check-shared"
WAITERS_PER_DAG = 50
FOLLOW_INSTANCES = tuple(f"deploy-check-follow-{n}" for n in range(6))
JOB_SECONDS = 900.0  # longer than the check: every job here is ended explicitly

DEFER_TIMEOUT = 300.0
END_TIMEOUT = 300.0
#: After the jobs ended: seconds without any sensor changing state before the rest count as stuck.
STALL = 60.0


def trigger_run(dep: Deployment, dag_id: str, waits: list[dict[str, str]]) -> str:
    """Trigger a run through the REST API, as a user does: no logical date, the waits in its conf."""
    body = {"logical_date": None, "conf": {"waits": waits}}
    run = dep.api.call("POST", f"/api/v2/dags/{dep.api.q(dag_id)}/dagRuns", body)
    return str(run["dag_run_id"])


def xcom_value(dep: Deployment, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """A task instance's XCom ``return_value`` (deserialized), through the REST API."""
    q = dep.api.q
    path = (
        f"/api/v2/dags/{q(dag_id)}/dagRuns/{q(run_id)}/taskInstances/{q(task_id)}/xcomEntries/return_value"
        f"?map_index={map_index}&deserialize=true"
    )
    return dep.api.get(path)["value"]


def alive_triggerer_ids(dep: Deployment) -> set[str]:
    """The ids of the triggerer jobs Airflow considers alive."""
    jobs = dep.api.get("/api/v2/jobs?job_type=TriggererJob&is_alive=true&limit=100")["jobs"]
    return {str(j["id"]) for j in jobs}


@dataclass
class Wait:
    """One mapped sensor: its run, map index and the job it waits on."""

    dag_id: str
    run_id: str
    map_index: int
    instance_id: str
    job_id: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.dag_id, self.map_index)


@dataclass
class Waiting:
    """Scenario 2's sensors (and scenario 3's follow sensors) while they are deferred."""

    waits: list[Wait]
    runs: dict[str, str]
    sampler: Sampler
    first_seq: int
    deferred_after: float = 0.0


#: Scenario 2 hands its deferred sensors to scenario 3 (when it runs next) through this.
_WAITING: Waiting | None = None


def will_run(dep: Deployment, number: int) -> bool:
    """Whether scenario ``number`` runs later in this deploy check (the runner's selection, if it says)."""
    selected = getattr(dep, "selected", None)
    return selected is None or number in selected


def hand_over_waiting(waiting: Waiting) -> None:
    """Leave ``waiting``'s sensors deferred for a later scenario (:func:`take_over_waiting`)."""
    global _WAITING
    _WAITING = waiting


def take_over_waiting() -> Waiting | None:
    """The sensors an earlier scenario handed over (``None`` if none); they are then the caller's."""
    global _WAITING
    waiting, _WAITING = _WAITING, None
    return waiting


def sensor_tis(dep: Deployment, runs: Mapping[str, str]) -> dict[tuple[str, int], dict[str, Any]]:
    """The ``wait`` task instances of these runs (``dag_id -> run_id``), by ``(dag_id, map_index)``."""
    found = {}
    for dag_id, run_id in runs.items():
        for ti in dep.api.task_instances(dag_id, run_id):
            if ti["task_id"] == "wait":
                found[(dag_id, int(ti["map_index"]))] = ti
    return found


def holder_of(ti: Mapping[str, Any]) -> str | None:
    """The id of the triggerer job holding a task instance's trigger (REST ``triggerer_job``), or ``None``."""
    job = ti.get("triggerer_job")
    return str(job["id"]) if isinstance(job, dict) and job.get("id") is not None else None


def _fail_fast(dep: Deployment, runs: Mapping[str, str]) -> None:
    for dag_id, run_id in runs.items():
        run = dep.api.run(dag_id, run_id)
        if run["state"] in TERMINAL:
            failed = failed_task_logs(dep.api, dep.home, dag_id, run_id, dep.secrets)
            raise DeployCheckFailed(f"{dag_id} run ended {run['state']} before its sensors deferred: {failed}")


def wait_deferred(dep: Deployment, runs: Mapping[str, str], expected: int, timeout: float = DEFER_TIMEOUT) -> float:
    """Wait until ``expected`` sensors of these runs are deferred and held by a triggerer; the seconds."""

    def deferred() -> bool:
        tis = sensor_tis(dep, runs)
        states = Counter(ti["state"] for ti in tis.values())
        if states.get("failed") or states.get("upstream_failed"):
            _fail_fast(dep, runs)
            raise DeployCheckFailed(f"sensors failed before deferring: {dict(states)}")
        held = sum(1 for ti in tis.values() if ti["state"] == "deferred" and holder_of(ti))
        return len(tis) == expected and held == expected

    try:
        return wait_until(f"{expected} sensors deferred in a triggerer", deferred, timeout, interval=1.0)
    except DeployCheckFailed:
        _fail_fast(dep, runs)
        raise


def start_waiting(dep: Deployment) -> Waiting:
    """Seed the jobs, trigger the shared-polling and follow DAGs, and wait until every sensor is deferred."""
    started = time.monotonic()
    first_seq = next_seq(dep)
    dep.emulator.add_instance(SHARED_INSTANCE)
    jobs = dep.emulator.add_jobs(2 * WAITERS_PER_DAG, instance=SHARED_INSTANCE, duration=JOB_SECONDS)
    waits_by_dag: dict[str, list[dict[str, str]]] = {}
    for n, dag_id in enumerate(SHARED_DAGS):
        chunk = jobs[n * WAITERS_PER_DAG : (n + 1) * WAITERS_PER_DAG]
        waits_by_dag[dag_id] = [{"instance_id": SHARED_INSTANCE, "job_id": str(j["id"])} for j in chunk]
    follow = []
    for instance in FOLLOW_INSTANCES:
        dep.emulator.add_instance(instance)
        (job,) = dep.emulator.add_jobs(1, instance=instance, duration=JOB_SECONDS)
        follow.append({"instance_id": instance, "job_id": str(job["id"])})
    waits_by_dag[FOLLOW_DAG] = follow
    sampler = Sampler(lambda: triggerer_pids(dep), emulator_port(dep))
    sampler.start()
    runs: dict[str, str] = {}
    waits = [
        Wait(dag_id, "", i, w["instance_id"], w["job_id"])
        for dag_id, items in waits_by_dag.items()
        for i, w in enumerate(items)
    ]
    waiting = Waiting(waits, runs, sampler, first_seq)
    try:
        for dag_id, items in waits_by_dag.items():
            dep.api.unpause(dag_id)
            runs[dag_id] = trigger_run(dep, dag_id, items)
            log(f"triggered {dag_id} ({len(items)} sensors): {runs[dag_id]}")
        for w in waits:
            w.run_id = runs[w.dag_id]
        waiting.deferred_after = wait_deferred(dep, runs, len(waits))
    except BaseException:
        cleanup(dep, waiting)
        raise
    log(f"{len(waits)} sensors deferred {time.monotonic() - started:.1f} s after the first trigger")
    return waiting


def next_seq(dep: Deployment) -> int:
    """The sequence number the emulator's next API request will get."""
    _, seq = dep.emulator.requests_since(2**62)
    return seq


def records_since(dep: Deployment, first_seq: int) -> list[dict[str, Any]]:
    """The emulator's request records from sequence number ``first_seq`` on."""
    records, _ = dep.emulator.requests_since(first_seq)
    return list(records)


def finish_waiting(dep: Deployment, waiting: Waiting, failing: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """
    End every job still running on the scenario's instances (those at ``failing`` map indices with
    ``failed``, the rest ``completed``), wait for the runs, and check each sensor's end state.

    Gives up when no sensor changed state for :data:`STALL` seconds (those left are then wrong).

    :return: ``{"states": Counter, "wrong": [...], "runs": {dag_id: state}, "seconds": float}``.
    """
    started = time.monotonic()
    failed_ids = {w.job_id for w in waiting.waits if w.map_index in failing.get(w.dag_id, ())}
    shared = [w.job_id for w in waiting.waits if w.instance_id == SHARED_INSTANCE]
    dep.emulator.end_jobs(sorted(failed_ids), instance=SHARED_INSTANCE, end_reason="failed")
    dep.emulator.end_jobs([j for j in shared if j not in failed_ids], instance=SHARED_INSTANCE)
    for instance in sorted({w.instance_id for w in waiting.waits} - {SHARED_INSTANCE}):
        dep.emulator.end_jobs(None, instance=instance)
    deadline = time.monotonic() + END_TIMEOUT
    states: dict[str, str] = {}
    last: tuple[tuple[tuple[str, int], str], ...] = ()
    changed = time.monotonic()
    stalled = False
    while True:
        states = {dag_id: dep.api.run(dag_id, run_id)["state"] for dag_id, run_id in waiting.runs.items()}
        if all(s in TERMINAL for s in states.values()):
            break
        now = tuple(sorted((k, str(ti["state"])) for k, ti in sensor_tis(dep, waiting.runs).items()))
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > STALL:
            stalled = True  # a sensor that never ends (say, one following a successor it cannot find)
            break
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"runs not ended {END_TIMEOUT:.0f} s after their jobs ended: {states}")
        time.sleep(1)
    tis = sensor_tis(dep, waiting.runs)
    wrong = []
    for w in waiting.waits:
        want = "failed" if w.map_index in failing.get(w.dag_id, ()) else "success"
        got = tis.get(w.key, {}).get("state")
        if got != want:
            wrong.append(f"{w.dag_id}[{w.map_index}]={got} (want {want})")
    want_runs = {dag_id: "failed" if failing.get(dag_id) else "success" for dag_id in waiting.runs}
    wrong += [f"run {d}={s} (want {want_runs[d]})" for d, s in states.items() if s != want_runs[d]]
    if stalled:
        wrong.insert(0, f"no sensor changed state for {STALL:.0f} s after the jobs ended, some never ended")
    return {
        "states": Counter(ti["state"] for ti in tis.values()),
        "wrong": wrong,
        "runs": states,
        "seconds": time.monotonic() - started,
    }


def cleanup(dep: Deployment, waiting: Waiting) -> None:
    """End whatever is still running (a scenario that failed half-way) so later scenarios start clean."""
    global _WAITING
    _WAITING = None
    waiting.sampler.stop()
    for instance in sorted({w.instance_id for w in waiting.waits}):
        try:
            dep.emulator.end_jobs(None, instance=instance, end_reason="cancelled")
        except Exception as exc:  # best effort: the scenario's own failure is what gets reported
            log(f"could not end the jobs of {instance}: {exc}")
