"""Scenario 9: the event-driven DAG runs once per ended job, with no repeat across a triggerer failover.

``tests/deploy_dags/event_driven.py`` watches the emulator instance ``events9`` (its own: no other
scenario touches it) with ``AISearchJobEventTrigger`` every 2 s. The scenario:

1. creates the instance with three jobs that have already ended, then unpauses the DAG: the watcher
   starts in one of the two triggerers and takes its baseline (those three jobs never fire);
2. starts and ends two jobs through the emulator's control channel, one after the other, and measures
   for each the delay from the job's end to the start of the DAG run it caused;
3. kills (SIGKILL) the triggerer running the watcher (``PERSIST_GRACE`` + 3 s after the last event, once
   the watermark covering it is written), ends a third job while no triggerer watches, and
   waits for the other triggerer to take the watcher over: the watermark in the asset state store
   (Airflow 3.3) makes it fire for the third job, once, and not again for the first two;
4. checks, after a quiet period, that there is exactly one run per ended job and none for the old jobs.

A replacement triggerer is started afterwards, so scenarios after this one still have two.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

from airflow_provider_aisearch.events.event_trigger import PERSIST_GRACE
from deploycheck.airflow import Api
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, free_port, log, signal_group, wait_until

DAG_ID = "deploy_event_driven"
INSTANCE = "events9"
#: The scenario's DAG, for the runner to wait for.
DAG_IDS = [DAG_ID]
RUN_TIMEOUT = 240.0
#: How long no further run may appear once every job's run was seen.
QUIET = 20.0


def _epoch(stamp: str | None) -> float | None:
    return None if not stamp else datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _runs_by_job(api: Api) -> dict[str, list[dict[str, Any]]]:
    """The DAG's asset-triggered runs, by the job id in their triggering events' payloads."""
    found: dict[str, list[dict[str, Any]]] = {}
    for run in api.runs(DAG_ID):
        if run["run_type"] != "asset_triggered":
            continue
        for event in api.upstream_asset_events(DAG_ID, run["dag_run_id"]):
            payload = (event.get("extra") or {}).get("payload") or {}
            if payload.get("id"):
                found.setdefault(payload["id"], []).append({**run, "event": event})
    return found


def _wait_for_run(api: Api, job_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs_by_job(api).get(job_id)
        if runs and runs[0].get("start_date"):
            return runs[0]
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"no run of {DAG_ID} started from the end of job {job_id} in {timeout:.0f} s")
        time.sleep(0.5)


def _watching_triggerer(dep: Deployment, since: dict[str, int]) -> str:
    """
    The triggerer whose log says, last, that it started watching ``events9`` (after the given log offsets).

    On a loaded machine a triggerer's heartbeat can come late and Airflow hands its triggers to the other
    one (which then logs "Watching" too, and the first one cancels its copy): the watcher is where it
    started last, by the log lines' timestamps.
    """
    needle = f"Watching instance '{INSTANCE}'"
    holders: dict[str, str] = {}
    for child in dep.procs.children:
        if child.name.startswith("triggerer") and child.proc.poll() is None:
            text = child.log_path.read_text(errors="replace")[since.get(child.name, 0) :]
            lines = [line for line in text.splitlines() if needle in line]
            if lines:
                holders[child.name] = lines[-1].split(" ", 1)[0]  # ISO timestamp: sorts as text
    if not holders:
        raise DeployCheckFailed(f"expected a triggerer watching {INSTANCE}, found none")
    if len(holders) > 1:
        log(f"more than one triggerer started watching {INSTANCE} (a hand-over): {holders}")
    return max(holders, key=lambda name: holders[name])


def _log_sizes(dep: Deployment) -> dict[str, int]:
    return {c.name: len(c.log_path.read_text(errors="replace")) for c in dep.procs.children}


def _end_one(dep: Deployment, source: str) -> tuple[str, float]:
    job = dep.emulator.add_jobs(1, instance=INSTANCE, duration=3600, source=source)[0]
    time.sleep(1.5)  # listed running at least once
    ended_at = time.time()
    dep.emulator.end_jobs([job["id"]], instance=INSTANCE)
    return str(job["id"]), ended_at


def run(dep: Deployment) -> ScenarioResult:
    """Scenario 9 as the runner calls it."""
    result = ScenarioResult(9, "The event-driven DAG runs once per ended job, no repeat across a triggerer failover")
    api, emu = dep.api, dep.emulator
    emu.add_instance(INSTANCE)
    old = [j["id"] for j in emu.add_jobs(3, instance=INSTANCE, duration=0)]
    seq = emu.requests_since(0)[1]
    offsets = _log_sizes(dep)
    api.unpause(DAG_ID)
    started = time.monotonic()

    def baseline_taken() -> bool:
        return any(f"/instances/{INSTANCE}/jobs" in r["path"] for r in emu.requests_since(seq)[0])

    wait_until(f"the watcher's first listing of {INSTANCE}", baseline_taken, 180)
    watch_start = time.monotonic() - started
    time.sleep(5)  # two more rounds: the baseline is in the asset state store
    holder = _watching_triggerer(dep, offsets)
    log(f"{holder} watches {INSTANCE} ({watch_start:.1f} s after the unpause)")

    rows = []
    delays = []
    for source in ("user", "schedule"):
        job_id, ended = _end_one(dep, source)
        run_ = _wait_for_run(api, job_id)
        start = _epoch(run_.get("start_date")) or 0.0
        event_at = _epoch(run_["event"].get("timestamp")) or 0.0
        delays.append(start - ended)
        rows.append((job_id, source, event_at - ended, start - ended, run_["dag_run_id"], holder))
        log(f"job {job_id} ended; event {event_at - ended:.1f} s later, run started {start - ended:.1f} s later")

    # Failover: the watcher's triggerer dies once the watermark covering the last event is written
    # (PERSIST_GRACE after it; a triggerer dying sooner repeats the event rather than dropping it);
    # a job ends while no triggerer watches.
    time.sleep(PERSIST_GRACE + 3)
    child = dep.procs.get(holder)
    offsets = _log_sizes(dep)
    killed = time.time()
    signal_group(child.proc.pid, signal.SIGKILL)
    child.proc.wait()
    log(f"killed {holder} (pid {child.proc.pid})")
    time.sleep(2)
    job_id, ended = _end_one(dep, "user")
    run_ = _wait_for_run(api, job_id)
    start = _epoch(run_.get("start_date")) or 0.0
    event_at = _epoch(run_["event"].get("timestamp")) or 0.0
    new_holder = _watching_triggerer(dep, offsets)
    rows.append((job_id, "user", event_at - ended, start - ended, run_["dag_run_id"], new_holder))
    log(f"{new_holder} took the watcher over; run for job {job_id} started {start - killed:.1f} s after the kill")
    own = {**dep.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    dep.procs.start("triggerer-3", [dep.airflow, "triggerer"], own, tier=1)  # two triggerers again

    time.sleep(QUIET)  # no run may follow for a job already reported, nor for the old ones
    by_job = _runs_by_job(api)
    ended_ids = [r[0] for r in rows]
    repeats = {j: len(runs) for j, runs in by_job.items() if len(runs) > 1}
    stray = sorted(set(by_job) - set(ended_ids))
    runs_total = len([r for r in api.runs(DAG_ID) if r["run_type"] == "asset_triggered"])
    states = {r["dag_run_id"]: r["state"] for r in api.runs(DAG_ID)}
    result.figures = {
        "runs per ended job": ", ".join(str(len(by_job.get(j, []))) for j in ended_ids),
        "runs for jobs ended before watching": str(len([j for j in old if j in by_job])),
        "job end -> DAG run start": ", ".join(f"{d:.1f} s" for d in delays),
        "failover: kill -> run for the job ended meanwhile": f"{start - killed:.1f} s",
    }
    result.details = [
        "| job | source | job end -> asset event | job end -> run start | run | triggerer |",
        "|---|---|---|---|---|---|",
        *[f"| `{j}` | {s} | {e:.1f} s | {d:.1f} s | `{r}` | {t} |" for j, s, e, d, r, t in rows],
        "",
        f"Poll interval 2 s. The third job ended {ended - killed:.1f} s after {holder} was killed (SIGKILL), while",
        "no triggerer watched; the other triggerer took the watcher over and resumed from the watermark in the",
        "asset state store. Jobs ended before the watcher began: "
        f"{len(old)}, runs for them: {len([j for j in old if j in by_job])}.",
    ]
    result.passed = True
    if repeats:
        result.fail(f"repeated runs: {repeats}")
    if stray:
        result.fail(f"runs for jobs that ended before watching or were never ended here: {stray}")
    if runs_total != len(ended_ids):
        result.fail(f"{runs_total} asset-triggered runs for {len(ended_ids)} ended jobs")
    failed = {r: s for r, s in states.items() if s != "success"}
    if failed:
        for run_id in failed:  # let them finish before judging
            wait_until(f"{run_id} done", lambda r=run_id: api.run(DAG_ID, r)["state"] in ("success", "failed"), 120)
        failed = {r: api.run(DAG_ID, r)["state"] for r in failed}
        failed = {r: s for r, s in failed.items() if s != "success"}
        if failed:
            result.fail(f"runs not successful: {failed}")
    return result


#: Scenario number -> function, for the runner.
SCENARIOS = {9: run}
