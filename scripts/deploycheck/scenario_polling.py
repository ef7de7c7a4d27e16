"""Scenarios 2, 3 and 8 of ``make deploy-check``: shared polling, triggerer failover, the rate limiter.

**2. Shared polling in a real triggerer.** 100 mapped deferrable sensors (two DAGs of 50) wait on 100
running jobs of one emulator instance. Once all are deferred, the emulator's requests are counted per
poll interval per triggerer: each request's TCP source port (``peer_port``) is mapped to the triggerer
whose process tree held that local port, sampled every 0.2 s from ``/proc`` (psutil). Expected:
about ``ceil(jobs listed / 50)`` list pages per interval for each triggerer holding waiters, against
100 GETs per interval unshared, and no per-job GET from a triggerer. The triggerers' CPU seconds
(their process trees, user + system) are recorded.

**3. Triggerer failover** (run right after 2, on 2's still-deferred sensors plus a few sensors each on
the only running job of its own instance). The triggerer holding the most waiters (among those holding
a follow sensor) is SIGKILLed with its process group; during the gap one job it watched is superseded
(``start_job`` on that job's own instance). Measured: the seconds until Airflow considers it dead and
until every one of its task instances is held by the other triggerer, in seconds and heartbeats. Then
the jobs end (most ``completed``, a few ``failed``): every task instance must end in the matching
state, and the superseded job's sensor must end on its successor (XCom ``id`` and ``followed_from``).
The killed triggerer is started again under the same name.

**8. The emulator's rate limiter at a low limit.** Ten deferrable sensors on jobs of ten instances (one
shared poller each) at ``poke_interval=1`` want 150 requests per 15 s window; the limit is 100 per 15 s.
The waiting sensors must pace themselves from the ``x-ratelimit-*`` headers: no request answered 429
(fault ``rate_limit``), every task succeeds.

Airflow 3.3.2's rule for a dead triggerer (``airflow/models/trigger.py``, ``Trigger.assign_unassigned``):
a trigger is free for another triggerer when its triggerer's job has
``latest_heartbeat <= utcnow() - [triggerer] triggerer_health_check_threshold`` (an absolute number of
seconds, 30 by default); the 2.1 x heartrate grace of ``airflow/jobs/job.py`` (``health_check_threshold``)
applies only to job types other than scheduler, triggerer and dag-processor. The other triggerer picks
the triggers up on its next loop (``TriggererJobRunner.run_once``: ``load_triggers`` about every second).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped]  # installed with Airflow; no stubs in the venv

from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.scenario1 import TERMINAL, failed_task_logs
from deploycheck.services import DeployCheckFailed, free_port, log, wait_until

#: Extra settings every component gets: a failover check in seconds, not the default 30.
JOB_HEARTBEAT_SEC = 2
HEALTH_CHECK_THRESHOLD = 10
CONFIG = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(JOB_HEARTBEAT_SEC),
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
}

SHARED_DAGS = ("deploy_check_shared_polling_a", "deploy_check_shared_polling_b")
FOLLOW_DAG = "deploy_check_failover_follow"
RATE_DAG = "deploy_check_rate_limited"
DAG_IDS = [*SHARED_DAGS, FOLLOW_DAG, RATE_DAG]

SHARED_INSTANCE = "deploy-check-shared"
WAITERS_PER_DAG = 50
#: The DAGs' poke_interval (tests/deploy_dags/shared_polling.py).
POKE_INTERVAL = 5.0
#: Poll intervals measured in scenario 2.
INTERVALS = 6
#: Most jobs one list page holds (the provider reads pages of 50, Cloudflare's maximum).
PAGE_SIZE = 50
#: Extra list requests allowed per interval per triggerer (a round falling on an interval boundary).
SLACK = 1
FOLLOW_INSTANCES = tuple(f"deploy-check-follow-{n}" for n in range(6))
#: Map indices (per shared DAG) whose job ends ``failed``: those sensors must fail.
FAILING = {SHARED_DAGS[0]: (0, 17, 33), SHARED_DAGS[1]: (5, 42)}
JOB_SECONDS = 900.0  # longer than the check: every job here is ended explicitly

RATE_INSTANCES = tuple(f"deploy-check-rate-{n}" for n in range(10))
RATE_POKE_INTERVAL = 1.0
#: 100 per 15 s: unpaced, the sensors want 150. Its 5 % reserve (5 requests) covers what one triggerer
#: sends that the other has not yet seen in an answer's ``x-ratelimit-remaining``.
RATE_LIMIT = 100
RATE_WINDOW = 15.0
#: Seconds the sensors wait under the limit before their jobs end (two windows and a half).
RATE_MEASURE = 2.5 * RATE_WINDOW

DEFER_TIMEOUT = 300.0
END_TIMEOUT = 300.0
#: After the jobs ended: seconds without any sensor changing state before the rest count as stuck.
STALL = 60.0
SAMPLE_EVERY = 0.2

_JOBS_PATH = re.compile(r"/instances/([^/?]+)/jobs(?:/([^/?]+)(/logs)?)?/?$")


# -- pure parts (tests/test_deploy_check_polling.py) ---------------------------------------------


def request_kind(record: Mapping[str, Any], instance: str | None = None) -> str | None:
    """
    What an emulator request was: ``list``, ``get``, ``logs``, ``create``, ``cancel`` or ``other``.

    :param record: One request record (``method``, ``path``).
    :param instance: Only requests on this instance's jobs count; others give ``None``.
    """
    match = _JOBS_PATH.search(str(record.get("path", "")).split("?", 1)[0])
    if match is None:
        return None if instance is not None else "other"
    if instance is not None and match.group(1) != instance:
        return None
    method = str(record.get("method", "")).upper()
    if match.group(3):
        return "logs"
    if match.group(2):
        return "get" if method == "GET" else "cancel"
    return "list" if method == "GET" else "create"


def expected_pages(jobs_listed: int, page_size: int = PAGE_SIZE) -> int:
    """List pages one shared round reads when its waiters' jobs are among ``jobs_listed`` newest jobs."""
    return max(1, math.ceil(jobs_listed / page_size))


@dataclass
class PortOwners:
    """Which process held each local TCP port towards the emulator, as sampled (port -> owner, when)."""

    seen: dict[int, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, port: int, owner: str, at: float) -> None:
        """Record that ``owner`` held ``port`` at ``at`` (a change of owner starts a new entry)."""
        entries = self.seen[port]
        if not entries or entries[-1][1] != owner:
            entries.append((at, owner))

    def owner(self, port: int | None, at: float) -> str | None:
        """The owner of ``port`` at ``at``: the latest sampled before (else the first after), or ``None``."""
        if port is None or port not in self.seen:
            return None
        entries = self.seen[port]
        before = [owner for when, owner in entries if when <= at + SAMPLE_EVERY]
        return before[-1] if before else entries[0][1]


def attribute(records: Iterable[Mapping[str, Any]], owners: PortOwners) -> dict[int, str]:
    """
    The owner of each request (by ``seq``): its ``peer_port``'s owner, else that of another request on
    the same TCP connection (a keep-alive connection is one port), else ``"other"``.
    """
    records = list(records)
    by_connection: dict[Any, str] = {}
    result: dict[int, str] = {}
    for rec in records:
        found = owners.owner(rec.get("peer_port"), float(rec.get("at", 0.0)))
        if found is not None:
            by_connection.setdefault(rec.get("connection"), found)
            result[int(rec["seq"])] = found
    for rec in records:
        seq = int(rec["seq"])
        if seq not in result:
            result[seq] = by_connection.get(rec.get("connection"), "other")
    return result


def per_interval(
    records: Iterable[Mapping[str, Any]],
    owner_of: Mapping[int, str],
    *,
    start: float,
    interval: float,
    count: int,
    instance: str,
) -> dict[str, dict[str, list[int]]]:
    """
    Requests on ``instance``'s jobs per owner, per kind, per interval: ``{owner: {kind: [n0, n1, ...]}}``.

    Interval ``k`` is ``[start + k * interval, start + (k + 1) * interval)``; requests outside the
    ``count`` intervals are left out.
    """
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * count))
    for rec in records:
        kind = request_kind(rec, instance)
        if kind is None:
            continue
        k = math.floor((float(rec["at"]) - start) / interval)
        if 0 <= k < count:
            table[owner_of.get(int(rec["seq"]), "other")][kind][k] += 1
    return {owner: dict(kinds) for owner, kinds in table.items()}


def fixed_window_counts(times: Sequence[float], window: float) -> list[int]:
    """
    Requests per window of the emulator's limiter: a window starts at a request and lasts ``window``
    seconds; the first request after it starts the next (as ``emulator/ratelimit.py`` counts).
    """
    counts: list[int] = []
    start: float | None = None
    for at in sorted(times):
        if start is None or at >= start + window:
            start = at
            counts.append(0)
        counts[-1] += 1
    return counts


def sliding_window_max(times: Sequence[float], window: float) -> int:
    """The most requests in any ``window`` seconds (any start), a stricter figure than the fixed windows."""
    ordered = sorted(times)
    best = lo = 0
    for hi, at in enumerate(ordered):
        while ordered[lo] <= at - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def trigger_log_owners(paths: Iterable[str | Path]) -> Counter[str]:
    """Triggerer job ids from per-trigger log file names (``*.log.trigger.<job id>.log``), counted."""
    found: Counter[str] = Counter()
    for path in paths:
        match = re.search(r"\.log\.trigger\.(\d+)\.log$", str(path))
        if match:
            found[match.group(1)] += 1
    return found


def choose_victim(holders: Mapping[str, Counter[str]], follow_keys: Iterable[str]) -> str | None:
    """
    The triggerer job id to kill: the one holding the most waiters among those holding a follow waiter.

    :param holders: Triggerer job id -> Counter of waiter keys (``dag_id`` -> waiters) it holds.
    :param follow_keys: The keys (DAG ids) of follow waiters.
    """
    follow = set(follow_keys)
    candidates = [job for job, held in holders.items() if any(held[k] for k in follow)]
    if not candidates:
        return None
    return max(candidates, key=lambda job: (sum(holders[job].values()), job))


def in_heartbeats(seconds: float, heartbeat: float) -> float:
    """``seconds`` as a number of triggerer heartbeats."""
    return seconds / heartbeat if heartbeat > 0 else float("nan")


# -- the deployment side -------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (reaped children included)."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class Sampler(threading.Thread):
    """
    Every :data:`SAMPLE_EVERY` s: which local ports each named process tree holds towards the emulator,
    and which per-trigger log files it has open (triggerer job id -> process name).
    """

    def __init__(self, pids: Callable[[], dict[str, int]], emulator_port: int) -> None:
        super().__init__(name="deploy-check-port-sampler", daemon=True)
        self.pids = pids
        self.emulator_port = emulator_port
        self.owners = PortOwners()
        self.job_owner: dict[str, str] = {}
        self.samples = 0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        now = time.time()
        for name, pid in self.pids().items():
            for proc in _tree(pid):
                try:
                    conns = proc.net_connections(kind="tcp")
                except psutil.Error:
                    continue
                with self._lock:
                    for conn in conns:
                        if conn.raddr and conn.raddr.port == self.emulator_port and conn.laddr:
                            self.owners.add(conn.laddr.port, name, now)
                self._scan_fds(proc.pid, name)
        self.samples += 1

    def _scan_fds(self, pid: int, name: str) -> None:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            match = re.search(r"\.log\.trigger\.(\d+)\.log$", target)
            if match:
                with self._lock:
                    self.job_owner.setdefault(match.group(1), name)

    def snapshot(self) -> tuple[PortOwners, dict[str, str]]:
        """A copy of what was sampled so far."""
        with self._lock:
            owners = PortOwners()
            for port, entries in self.owners.seen.items():
                owners.seen[port] = list(entries)
            return owners, dict(self.job_owner)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def emulator_port(dep: Deployment) -> int:
    """The emulator's TCP port, from the connection every component got."""
    host = json.loads(dep.emulator.connection)["host"]
    port = urlsplit(host).port
    if port is None:
        raise DeployCheckFailed(f"no port in the emulator connection's host {host!r}")
    return port


def triggerer_pids(dep: Deployment) -> dict[str, int]:
    """The live triggerer processes by component name (``triggerer-1``, ``triggerer-2``)."""
    return {c.name: c.proc.pid for c in dep.procs.children if c.name.startswith("triggerer-") and c.proc.poll() is None}


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


def _sensor_tis(dep: Deployment, runs: Mapping[str, str]) -> dict[tuple[str, int], dict[str, Any]]:
    found = {}
    for dag_id, run_id in runs.items():
        for ti in dep.api.task_instances(dag_id, run_id):
            if ti["task_id"] == "wait":
                found[(dag_id, int(ti["map_index"]))] = ti
    return found


def _holder(ti: Mapping[str, Any]) -> str | None:
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
        tis = _sensor_tis(dep, runs)
        states = Counter(ti["state"] for ti in tis.values())
        if states.get("failed") or states.get("upstream_failed"):
            _fail_fast(dep, runs)
            raise DeployCheckFailed(f"sensors failed before deferring: {dict(states)}")
        held = sum(1 for ti in tis.values() if ti["state"] == "deferred" and _holder(ti))
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
        _cleanup(dep, waiting)
        raise
    log(f"{len(waits)} sensors deferred {time.monotonic() - started:.1f} s after the first trigger")
    return waiting


def next_seq(dep: Deployment) -> int:
    """The sequence number the emulator's next API request will get."""
    _, seq = dep.emulator.requests_since(2**62)
    return seq


def _records_between(dep: Deployment, first_seq: int) -> list[dict[str, Any]]:
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
        now = tuple(sorted((k, str(ti["state"])) for k, ti in _sensor_tis(dep, waiting.runs).items()))
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > STALL:
            stalled = True  # a sensor that never ends (say, one following a successor it cannot find)
            break
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"runs not ended {END_TIMEOUT:.0f} s after their jobs ended: {states}")
        time.sleep(1)
    tis = _sensor_tis(dep, waiting.runs)
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


def _cleanup(dep: Deployment, waiting: Waiting) -> None:
    """End whatever is still running (a scenario that failed half-way) so later scenarios start clean."""
    global _WAITING
    _WAITING = None
    waiting.sampler.stop()
    for instance in sorted({w.instance_id for w in waiting.waits}):
        try:
            dep.emulator.end_jobs(None, instance=instance, end_reason="cancelled")
        except Exception as exc:  # best effort: the scenario's own failure is what gets reported
            log(f"could not end the jobs of {instance}: {exc}")


# -- scenario 2 ----------------------------------------------------------------------------------


def shared_polling(dep: Deployment, *, hand_over: bool | None = None) -> ScenarioResult:
    """Scenario 2: 100 deferred sensors on one instance; list requests per interval per triggerer."""
    global _WAITING
    result = ScenarioResult(2, "Shared polling in a real triggerer: 100 deferred sensors on one instance")
    if hand_over is None:
        hand_over = _will_run(dep, 3)
    waiting: Waiting | None = None
    try:
        waiting = start_waiting(dep)
        sampler = waiting.sampler
        # One interval for the last triggers to join their pollers, then count.
        time.sleep(POKE_INTERVAL)
        pids = triggerer_pids(dep)
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        start = time.time()
        window = INTERVALS * POKE_INTERVAL
        time.sleep(window + 1.0)  # the measurement window itself (plus the last request's arrival)
        cpu_after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        tis = _sensor_tis(dep, waiting.runs)
        records = _records_between(dep, waiting.first_seq)
        owners, job_owner = sampler.snapshot()
        owner_of = attribute(records, owners)
        table = per_interval(
            records, owner_of, start=start, interval=POKE_INTERVAL, count=INTERVALS, instance=SHARED_INSTANCE
        )
        shared_keys = {(w.dag_id, w.map_index) for w in waiting.waits if w.instance_id == SHARED_INSTANCE}
        holders: Counter[str] = Counter(_holder(ti) or "none" for key, ti in tis.items() if key in shared_keys)
        logged: Counter[str] = Counter()
        for dag_id in SHARED_DAGS:
            pattern = f"dag_id={dag_id}/run_id={waiting.runs[dag_id]}/**/*.log.trigger.*.log"
            logged += trigger_log_owners((dep.home / "logs").glob(pattern))
        by_name: Counter[str] = Counter()
        unmapped = []
        for job_id, n in holders.items():
            name = job_owner.get(job_id)
            if name is None:
                unmapped.append(job_id)
            else:
                by_name[name] += n
        not_deferred = [f"{k[0]}[{k[1]}]={ti['state']}" for k, ti in tis.items() if ti["state"] != "deferred"]
        pages = expected_pages(len(shared_keys))
        limit = pages + SLACK
        lines = []
        failures = []
        total_trig_lists = 0
        for name in sorted(pids):
            kinds = table.get(name, {})
            lists = kinds.get("list", [0] * INTERVALS)
            gets = kinds.get("get", [0] * INTERVALS)
            total_trig_lists += sum(lists)
            lines.append(
                f"| {name} | {', '.join(j for j, n in job_owner.items() if n == name) or '?'} | {by_name[name]} | "
                f"{' '.join(map(str, lists))} | {sum(gets)} | {cpu_after[name] - cpu_before[name]:.1f} | "
                f"{cpu_after[name]:.1f} |"
            )
            if sum(gets):
                failures.append(f"{name} sent {sum(gets)} per-job GETs on {SHARED_INSTANCE} (want 0: shared listings)")
            if by_name[name]:
                if max(lists) > limit:
                    failures.append(
                        f"{name} (holding {by_name[name]} waiters) sent {max(lists)} list requests in one "
                        f"{POKE_INTERVAL:.0f} s interval (want <= ceil({len(shared_keys)}/{PAGE_SIZE}) + {SLACK} = "
                        f"{limit}); per interval: {lists}"
                    )
                if sum(lists) < INTERVALS - 1:
                    failures.append(f"{name} holds {by_name[name]} waiters but listed only {sum(lists)} times")
        other = table.get("other", {})
        other_total = sum(sum(v) for v in other.values())
        per_interval_total = total_trig_lists / INTERVALS
        ratio = (len(shared_keys) / per_interval_total) if per_interval_total else float("inf")
        if not_deferred:
            failures.append(f"sensors left the deferred state during the measurement: {not_deferred[:10]}")
        if unmapped:
            failures.append(f"triggerer job(s) {unmapped} hold waiters but no triggerer process had their log open")
        result.figures = {
            "waiters": f"{len(shared_keys)} on 1 instance (2 DAGs)",
            "waiters per triggerer": ", ".join(f"{n} {by_name[n]}" for n in sorted(pids)),
            "list requests / interval": ", ".join(
                f"{n} {sum(table.get(n, {}).get('list', [0])) / INTERVALS:.1f}" for n in sorted(pids)
            ),
            "unshared": f"{len(shared_keys)} GETs / interval",
            "ratio": f"{ratio:.0f}x fewer",
            "triggerer CPU s (window)": ", ".join(f"{n} {cpu_after[n] - cpu_before[n]:.1f}" for n in sorted(pids)),
        }
        result.details = [
            f"{len(shared_keys)} mapped deferrable `AISearchJobSensor`s (`{SHARED_DAGS[0]}` and `{SHARED_DAGS[1]}`, "
            f"{WAITERS_PER_DAG} each, `poke_interval={POKE_INTERVAL:.0f}`) on {len(shared_keys)} running jobs of "
            f"instance `{SHARED_INSTANCE}`, plus {len(FOLLOW_INSTANCES)} sensors of `{FOLLOW_DAG}` (scenario 3) on "
            "other instances. All deferred "
            f"{waiting.deferred_after:.0f} s after the trigger; then {INTERVALS} intervals of "
            f"{POKE_INTERVAL:.0f} s were counted. Requests are attributed by their TCP source port to the "
            f"triggerer process tree holding it (sampled every {SAMPLE_EVERY} s, {sampler.samples} samples).",
            "",
            "| triggerer | job id | waiters | list requests per interval | per-job GETs | CPU s (window) | "
            "CPU s (total) |",
            "|---|---|---|---|---|---|---|",
            *lines,
            "",
            f"Expected: at most ceil({len(shared_keys)}/{PAGE_SIZE}) = {pages} list pages per interval per "
            f"triggerer holding waiters (+{SLACK} slack), against {len(shared_keys)} GETs per interval unshared: "
            f"{per_interval_total:.1f} requests per interval from the triggerers, {ratio:.0f}x fewer. "
            f"Requests on `{SHARED_INSTANCE}` from other processes (workers) in the window: {other_total}.",
            "",
            "Waiters per triggerer job: "
            + ", ".join(f"job {j}: {n}" for j, n in sorted(holders.items()))
            + " (REST `triggerer_job` of each task instance); per-trigger log files `*.log.trigger.<job id>.log`: "
            + ", ".join(f"job {j}: {n}" for j, n in sorted(logged.items()))
            + ". Job id to process: the triggerer process tree holding that job's trigger log files open.",
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        log(f"scenario 2: {result.figures}")
        if hand_over and result.passed:
            _WAITING = waiting
            waiting = None
            log("scenario 2: sensors stay deferred for scenario 3 (failover)")
        else:
            done = finish_waiting(dep, waiting, {})
            if done["wrong"]:
                result.fail(f"after the jobs ended: {done['wrong'][:10]}")
            waiting.sampler.stop()
            waiting = None
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if waiting is not None:
            _cleanup(dep, waiting)
    return result.finish()


def _will_run(dep: Deployment, number: int) -> bool:
    """Whether scenario ``number`` runs later in this deploy check (the runner's selection, if it says)."""
    selected = getattr(dep, "selected", None)
    return selected is None or number in selected


# -- scenario 3 ----------------------------------------------------------------------------------


def _kill_group(dep: Deployment, name: str) -> float:
    """SIGKILL a component's process group, reap it and drop it from ``dep.procs``; the kill's epoch time."""
    child = dep.procs.get(name)
    at = time.time()
    try:
        os.killpg(child.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.proc.wait(timeout=30)
    child.out.close()
    dep.procs.children.remove(child)
    return at


def _restart_triggerer(dep: Deployment, name: str, argv: Sequence[str]) -> None:
    env = {**dep.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    dep.procs.start(name, list(argv), env, tier=1)


def failover(dep: Deployment) -> ScenarioResult:
    """Scenario 3: SIGKILL the triggerer holding the waiters; the other one takes them over."""
    global _WAITING
    result = ScenarioResult(3, "Triggerer failover: SIGKILL the triggerer holding the deferred sensors")
    waiting, _WAITING = _WAITING, None
    reused = waiting is not None
    killed: tuple[str, Sequence[str]] | None = None
    try:
        if waiting is None:
            waiting = start_waiting(dep)
        tis = _sensor_tis(dep, waiting.runs)
        holders: dict[str, Counter[str]] = defaultdict(Counter)
        for w in waiting.waits:
            holder = _holder(tis[w.key])
            if holder:
                holders[holder][w.dag_id] += 1
        victim = choose_victim(holders, [FOLLOW_DAG])
        if victim is None:
            raise DeployCheckFailed(f"no triggerer holds a follow sensor: {dict(holders)}")
        _, job_owner = waiting.sampler.snapshot()
        name = job_owner.get(victim)
        if name is None:
            raise DeployCheckFailed(f"no triggerer process has the logs of triggerer job {victim} open: {job_owner}")
        victim_keys = [w.key for w in waiting.waits if _holder(tis[w.key]) == victim]
        gone = {w.key: w for w in waiting.waits if w.key in set(victim_keys)}
        superseded = [w for w in gone.values() if w.dag_id == FOLLOW_DAG][:1]
        argv = [str(a) for a in dep.procs.get(name).proc.args]  # type: ignore[union-attr]
        killed = (name, argv)
        log(f"scenario 3: SIGKILL {name} (triggerer job {victim}, {len(victim_keys)} waiters)")
        killed_at = _kill_group(dep, name)
        successors: dict[tuple[str, int], tuple[str, str]] = {}
        for w in superseded:
            successor = dep.emulator.start_job(instance=w.instance_id, duration=JOB_SECONDS)
            successors[w.key] = (w.job_id, str(successor["id"]))
        supersede_after = time.time() - killed_at
        dead_after: float | None = None
        taken_by: set[str] = set()

        runs = waiting.runs

        def taken_over() -> bool:
            nonlocal dead_after
            if dead_after is None and victim not in alive_triggerer_ids(dep):
                dead_after = time.time() - killed_at
            now_tis = _sensor_tis(dep, runs)
            held = [_holder(now_tis[k]) for k in victim_keys]
            if all(h is not None and h != victim for h in held):
                taken_by.update(h for h in held if h)
                return True
            return False

        wait_until("the other triggerer holding the killed one's sensors", taken_over, 120, interval=0.25)
        takeover = time.time() - killed_at
        log(f"scenario 3: taken over by triggerer job(s) {sorted(taken_by)} {takeover:.1f} s after the kill")
        _restart_triggerer(dep, name, argv)
        killed = None
        done = finish_waiting(dep, waiting, FAILING)
        wait_until("two triggerers alive again", lambda: dep.api.alive_triggerers() >= 2, 120)
        end_states = _sensor_tis(dep, waiting.runs)
        followed: list[tuple[tuple[str, int], str, str, str, bool]] = []
        for key, (old, new) in successors.items():
            state = end_states[key]["state"]
            if state != "success":
                followed.append((key, old, new, f"nothing (the sensor is {state})", False))
                continue
            value = xcom_value(dep, key[0], waiting.runs[key[0]], "wait", key[1])
            got = str(value.get("id")) if isinstance(value, dict) else repr(value)
            ok = isinstance(value, dict) and got == new and value.get("followed_from") == [old]
            followed.append((key, old, new, got, ok))
        failures = [
            f"{k[0]}[{k[1]}] ended on {got}, not on the successor {new} of job {old} (superseded during the gap)"
            for k, old, new, got, ok in followed
            if not ok
        ]
        failures += done["wrong"]
        if not successors:
            failures.append("no follow sensor on the killed triggerer: nothing superseded during the gap")
        if supersede_after >= takeover:
            failures.append(f"the supersede ({supersede_after:.1f} s) came after the takeover ({takeover:.1f} s)")
        want_failed = sum(len(v) for v in FAILING.values())
        result.figures = {
            "[triggerer] job_heartbeat_sec": f"{JOB_HEARTBEAT_SEC}",
            "triggerer_health_check_threshold": f"{HEALTH_CHECK_THRESHOLD} s",
            "dead after": f"{dead_after:.1f} s" if dead_after is not None else "?",
            "takeover": f"{takeover:.1f} s = {in_heartbeats(takeover, JOB_HEARTBEAT_SEC):.1f} heartbeats",
            "sensors taken over": str(len(victim_keys)),
            "supersede in the gap followed": "yes" if followed and all(f[-1] for f in followed) else "no",
            "end states": ", ".join(f"{s} {n}" for s, n in sorted(done["states"].items())),
        }
        origin = "Reuses scenario 2's" if reused else "Sets up its own (scenario 2 handed none over)"
        result.details = [
            f"{origin} {len(waiting.waits)} deferred sensors "
            f"({', '.join(f'`{d}`' for d in waiting.runs)}). Components run with "
            f"`[triggerer] job_heartbeat_sec = {JOB_HEARTBEAT_SEC}` and "
            f"`triggerer_health_check_threshold = {HEALTH_CHECK_THRESHOLD}` (defaults 5 and 30) to keep it short.",
            "",
            f"SIGKILL of `{name}`'s process group (triggerer job {victim}, holding {len(victim_keys)} sensors; "
            f"holders before: {', '.join(f'job {j}: {sum(c.values())}' for j, c in sorted(holders.items()))}). "
            f"{supersede_after:.1f} s later, during the gap, job(s) "
            f"{', '.join(old for old, _ in successors.values())} were superseded (`start_job` on their own instance).",
            "",
            "| step | seconds after the kill | heartbeats |",
            "|---|---|---|",
            f"| job not alive in `/api/v2/jobs?is_alive=true` | {dead_after or float('nan'):.1f} | "
            f"{in_heartbeats(dead_after or float('nan'), JOB_HEARTBEAT_SEC):.1f} |",
            f"| every one of its sensors held by triggerer job(s) {', '.join(sorted(taken_by))} | {takeover:.1f} | "
            f"{in_heartbeats(takeover, JOB_HEARTBEAT_SEC):.1f} |",
            "",
            "Airflow 3.3.2's rule (`Trigger.assign_unassigned`, `airflow/models/trigger.py`): a trigger moves when "
            "its triggerer's `latest_heartbeat` is older than `[triggerer] triggerer_health_check_threshold` "
            "seconds; the 2.1 x heartrate grace (`airflow/jobs/job.py`, `health_check_threshold`) is for other job "
            f"types. So the takeover comes {HEALTH_CHECK_THRESHOLD - JOB_HEARTBEAT_SEC}-{HEALTH_CHECK_THRESHOLD} s "
            "after the kill (the last heartbeat was up to one heartbeat before it), plus the other triggerer's "
            "next loop (about 1 s).",
            "",
            f"Then {sum(len(w) for w in [waiting.waits])} jobs ended: {want_failed} `failed`, the rest `completed`. "
            f"Sensor end states: {dict(done['states'])}; runs: {done['runs']} "
            f"({done['seconds']:.0f} s from the end of the jobs to every run ended).",
            *(
                f"Superseded {old} -> successor {new}: `{k[0]}[{k[1]}]` ended on {got} ({'ok' if ok else 'WRONG'})."
                for k, old, new, got, ok in followed
            ),
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        waiting.sampler.stop()
        waiting = None
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if killed is not None:  # failed between the kill and the restart: later scenarios need two triggerers
            _restart_triggerer(dep, *killed)
        if waiting is not None:
            _cleanup(dep, waiting)
    return result.finish()


# -- scenario 8 ----------------------------------------------------------------------------------


def slowed_down(home: Path, dag_id: str, run_id: str) -> int:
    """Task tries of a run whose trigger log says it polled slower than asked (the rate-limit budget ran low)."""
    found = 0
    for path in (home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/**/*.log.trigger.*.log"):
        if "instead of" in path.read_text(errors="replace"):
            found += 1
    return found


def rate_limited(dep: Deployment) -> ScenarioResult:
    """Scenario 8: waiting sensors pace themselves under a low emulator rate limit (no 429 lockout)."""
    result = ScenarioResult(8, "The emulator's rate limiter at a low limit: waiting sensors slow down")
    limited = False
    instances_with_jobs: list[str] = []
    try:
        waits = []
        for instance in RATE_INSTANCES:
            dep.emulator.add_instance(instance)
            (job,) = dep.emulator.add_jobs(1, instance=instance, duration=JOB_SECONDS)
            instances_with_jobs.append(instance)
            waits.append({"instance_id": instance, "job_id": str(job["id"])})
        dep.api.unpause(RATE_DAG)
        runs = {RATE_DAG: trigger_run(dep, RATE_DAG, waits)}
        wait_deferred(dep, runs, len(waits))
        first_seq = next_seq(dep)
        dep.emulator.set_rate_limit(RATE_LIMIT, RATE_WINDOW)
        limited = True
        limit_at = time.time()
        log(f"scenario 8: {len(waits)} sensors deferred; rate limit {RATE_LIMIT} per {RATE_WINDOW:.0f} s on")
        time.sleep(RATE_MEASURE)  # the sensors wait under the limit this long before their jobs end
        for instance in RATE_INSTANCES:
            dep.emulator.end_jobs(None, instance=instance)
        instances_with_jobs.clear()
        ended_at = time.time()
        run = dep.api.run(RATE_DAG, runs[RATE_DAG])
        deadline = time.monotonic() + END_TIMEOUT
        while run["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise DeployCheckFailed(f"{RATE_DAG} still {run['state']} {END_TIMEOUT:.0f} s after its jobs ended")
            time.sleep(1)
            run = dep.api.run(RATE_DAG, runs[RATE_DAG])
        resumed_after = time.time() - ended_at
        records = _records_between(dep, first_seq)
        dep.emulator.set_rate_limit(None)
        limited = False
        served = [r for r in records if r.get("fault") != "rate_limit" and r.get("status") != 429]
        refused = [r for r in records if r.get("fault") == "rate_limit" or r.get("status") == 429]
        windows = fixed_window_counts([float(r["at"]) for r in records], RATE_WINDOW)
        sliding = sliding_window_max([float(r["at"]) for r in served], RATE_WINDOW)
        tis = _sensor_tis(dep, runs)
        states = Counter(ti["state"] for ti in tis.values())
        slowed = slowed_down(dep.home, RATE_DAG, runs[RATE_DAG])
        demand = len(waits) * RATE_WINDOW / RATE_POKE_INTERVAL
        failures = []
        if refused:
            first = min(float(r["at"]) for r in refused) - limit_at
            failures.append(f"{len(refused)} requests answered 429 (rate_limit lockout), the first {first:.1f} s in")
        if run["state"] != "success" or states.get("success", 0) != len(waits):
            failed = failed_task_logs(dep.api, dep.home, RATE_DAG, runs[RATE_DAG], dep.secrets)
            failures.append(f"{RATE_DAG} ended {run['state']} (sensors: {dict(states)}; failed: {failed})")
        if windows and max(windows) < RATE_LIMIT * 0.8:
            failures.append(
                f"the sensors never came near the limit (at most {max(windows)} of {RATE_LIMIT} in a window): "
                "nothing was proven"
            )
        result.figures = {
            "limit": f"{RATE_LIMIT} / {RATE_WINDOW:.0f} s",
            "waiters": f"{len(waits)} on {len(RATE_INSTANCES)} instances, poke {RATE_POKE_INTERVAL:.0f} s",
            "unpaced demand": f"{demand:.0f} / window",
            "requests served": str(len(served)),
            "max per window": str(max(windows, default=0)),
            "429s": str(len(refused)),
            "sensors slowed": f"{slowed} of {len(waits)}",
        }
        result.details = [
            f"{len(waits)} mapped deferrable sensors (`{RATE_DAG}`, `poke_interval={RATE_POKE_INTERVAL:.0f}`), each on "
            f"the running job of its own instance (one shared poller per instance per triggerer): unpaced they send "
            f"{len(waits)} requests per {RATE_POKE_INTERVAL:.0f} s = {demand:.0f} per {RATE_WINDOW:.0f} s window, "
            f"over the limit of {RATE_LIMIT} (Cloudflare: 1200 per 300 s, then 429 code 971 for a lockout). "
            f"The limit was set once all were deferred; the jobs ended {RATE_MEASURE:.0f} s later.",
            "",
            "| | |",
            "|---|---|",
            f"| requests while limited | {len(records)} ({len(served)} served, {len(refused)} answered 429) |",
            f"| per emulator window (fixed, {RATE_WINDOW:.0f} s) | {', '.join(map(str, windows))} |",
            f"| most in any {RATE_WINDOW:.0f} s (sliding; more than the limit is fine across a reset) | {sliding} |",
            f"| jobs ended -> run ended | {resumed_after:.1f} s |",
            f"| sensor states | {dict(states)} |",
            f"| sensors whose trigger logged a slowdown (`... instead of ...`) | {slowed} of {len(waits)} |",
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        log(f"scenario 8: {result.figures}")
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if limited:
            dep.emulator.set_rate_limit(None)
        for instance in instances_with_jobs:
            try:
                dep.emulator.end_jobs(None, instance=instance, end_reason="cancelled")
            except Exception as exc:
                log(f"could not end the jobs of {instance}: {exc}")
    return result.finish()


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {2: shared_polling, 3: failover, 8: rate_limited}
