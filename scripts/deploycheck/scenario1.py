"""Scenario 1: every example DAG succeeds through the scheduler, triggered as a user does.

Each DAG is unpaused and triggered through the REST API with no logical date. The asset-scheduled
consumer is never triggered by hand: it must run from the event of the producer run triggered here.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_aisearch.emulator.documents import load_documents
from deploycheck.airflow import Api
from deploycheck.emulator_process import Emulator
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, log, tail

TERMINAL = {"success", "failed"}
RUN_TIMEOUT = 300.0
#: example_aisearch_retrieval_check's instance: it holds the demo corpus (as ``make demo`` serves it).
CORPUS_INSTANCE = "kestrel-docs"
#: example_aisearch_sync_folder's instance: built-in storage, empty until the DAG uploads the corpus.
BUILTIN_INSTANCE = "kestrel-builtin"


@dataclass
class DagResult:
    """What one DAG did in scenario 1."""

    dag_id: str
    run_id: str
    run_type: str
    state: str
    seconds: float
    requests: int
    note: str = ""
    failed_tasks: list[str] = field(default_factory=list)
    #: Deferred task tries of this run, and the triggerer job ids that ran their triggers.
    deferred: int = 0
    triggerers: set[str] = field(default_factory=set)


def deferrals(home: Path, result: DagResult) -> None:
    """Fill in which task tries deferred, from the per-trigger log files the triggerers wrote."""
    pattern = f"dag_id={result.dag_id}/run_id={result.run_id}/**/*.log.trigger.*.log"
    for path in (home / "logs").glob(pattern):
        result.deferred += 1
        result.triggerers.add(path.name.rsplit(".", 2)[-2])


def example_dags(repo: Path) -> tuple[list[str], list[str]]:
    """(DAGs to trigger by hand, asset-scheduled DAGs), from the example_dags sources."""
    manual: list[str] = []
    asset_scheduled: list[str] = []
    for path in sorted((repo / "example_dags").glob("*.py")):
        text = path.read_text()
        if "AssetWatcher(" in text:  # runs when an indexing job ends, not from a producer (scenario 9)
            continue
        for match in re.finditer(r'dag_id="([^"]+)",\s*schedule=([^,\n]+)', text):
            (asset_scheduled if match.group(2).startswith("[") else manual).append(match.group(1))
    if not manual:
        raise DeployCheckFailed("found no example DAGs")
    # The producer last, so its consumer's run is the last thing we wait for.
    manual.sort(key=lambda d: d.endswith("_producer"))
    return manual, asset_scheduled


def readable(text: str) -> str:
    """Task logs are JSON lines: show time, level, message and any exception instead."""
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(entry, dict):
            out.append(line)
            continue
        out.append(f"{entry.get('timestamp', '')} {entry.get('level', '')} {entry.get('event', '')}")
        for detail in entry.get("error_detail") or []:
            if isinstance(detail, dict):
                out.append(f"    {detail.get('exc_type')}: {detail.get('exc_value')}")
    return "\n".join(out)


def wait_run(api: Api, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api.run(dag_id, run_id)
        if run["state"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s")
        time.sleep(1)


def failed_task_logs(api: Api, home: Path, dag_id: str, run_id: str, secrets: tuple[str, ...]) -> list[str]:
    """The failed tasks of a run, printing each one's log tail."""
    failed = []
    for ti in api.task_instances(dag_id, run_id):
        if ti["state"] not in ("failed", "upstream_failed"):
            continue
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        failed.append(f"{name}={ti['state']}")
        if ti["state"] != "failed":
            continue
        pattern = f"dag_id={dag_id}/run_id={run_id}/task_id={ti['task_id']}/**/*.log"
        for path in sorted((home / "logs").glob(pattern)):
            log(f"log tail of {dag_id}.{name} ({path.name}):\n{readable(tail(path, 30, secrets))}")
    return failed


def settle(api: Api, dag_ids: list[str], quiet: float = 10.0, timeout: float = RUN_TIMEOUT) -> int:
    """Wait until no run of these DAGs is active and none appeared for ``quiet`` seconds; return the runs seen.

    Unpausing a scheduled DAG makes the scheduler start a run of its own (the latest interval, with
    ``catchup=False``). Left to race the run triggered here, a producer's two asset events can land on
    either side of the consumer run the scheduler creates for the first, and Airflow then makes no run
    for the second (seen here: events 7 ms apart). So those runs are let finish first.
    """
    deadline = time.monotonic() + timeout
    last_change, last = time.monotonic(), -1
    while True:
        runs = [r for dag_id in dag_ids for r in api.runs(dag_id)]
        active = [r for r in runs if r["state"] not in TERMINAL]
        if len(runs) != last or active:
            last_change, last = time.monotonic(), len(runs)
        if time.monotonic() - last_change >= quiet:
            return len(runs)
        if time.monotonic() > deadline:
            raise DeployCheckFailed(f"runs of {dag_ids} still active after {timeout:.0f} s: {active}")
        time.sleep(1)


def run_scenario(
    api: Api, emulator: Emulator, repo: Path, home: Path, results: list[DagResult], timings: dict[str, float]
) -> None:
    """Run scenario 1, appending one :class:`DagResult` per DAG run to ``results``."""
    manual, asset_scheduled = example_dags(repo)
    secrets = (emulator.token,)
    emulator.add_instance(CORPUS_INSTANCE, documents=load_documents(repo / "example_dags" / "data" / "corpus"))
    emulator.add_instance(BUILTIN_INSTANCE, builtin=True)
    # Consumers first, so a producer's event finds them listening; then let the scheduler's own runs end.
    for dag_id in asset_scheduled + manual:
        api.unpause(dag_id)
    started = time.monotonic()
    own_runs = settle(api, manual + asset_scheduled)
    timings[f"unpause -> the scheduler's own {own_runs} run(s) ended + 10 s quiet (duration)"] = (
        time.monotonic() - started
    )
    log(
        f"unpaused {len(manual + asset_scheduled)} DAGs; the scheduler's own {own_runs} run(s) ended, "
        f"quiet after {time.monotonic() - started:.1f} s"
    )
    for dag_id in manual:
        before = sum(emulator.request_counts().values())
        started = time.monotonic()
        run_id = api.trigger(dag_id)
        log(f"triggered {dag_id}: {run_id}")
        run = wait_run(api, dag_id, run_id)
        seconds = time.monotonic() - started
        requests = sum(emulator.request_counts().values()) - before
        result = DagResult(dag_id, run_id, run["run_type"], run["state"], seconds, requests)
        deferrals(home, result)
        if run["state"] != "success":
            result.failed_tasks = failed_task_logs(api, home, dag_id, run_id, secrets)
        log(f"{dag_id}: {run['state']} in {seconds:.1f} s, {requests} emulator requests")
        results.append(result)
        if dag_id.endswith("_producer") and run["state"] == "success":
            results.extend(_consumers(api, home, asset_scheduled, dag_id, run_id, started, secrets))
        elif dag_id.endswith("_producer"):
            for consumer in asset_scheduled:  # no event came, so no run: fail now instead of waiting for one
                results.append(DagResult(consumer, "-", "asset_triggered", "not run", 0.0, 0, f"{dag_id} failed"))
    # Runs the scheduler made by itself (a scheduled producer run after the unpause) must succeed too.
    for dag_id in manual + asset_scheduled:
        seen = {r.run_id for r in results}
        for run in api.runs(dag_id):
            if run["dag_run_id"] in seen:
                continue
            run = wait_run(api, dag_id, run["dag_run_id"])
            result = DagResult(dag_id, run["dag_run_id"], run["run_type"], run["state"], 0.0, 0, "not triggered here")
            if run["state"] != "success":
                result.failed_tasks = failed_task_logs(api, home, dag_id, run["dag_run_id"], secrets)
            results.append(result)


def _consumers(
    api: Api,
    home: Path,
    consumers: list[str],
    producer: str,
    producer_run: str,
    started: float,
    secrets: tuple[str, ...],
) -> list[DagResult]:
    """Wait for each consumer's run made from this producer run's asset event."""
    results = []
    for dag_id in consumers:
        deadline = time.monotonic() + RUN_TIMEOUT
        found: dict[str, Any] | None = None
        while found is None:
            for run in api.runs(dag_id):
                if run["run_type"] != "asset_triggered":
                    continue
                events = api.upstream_asset_events(dag_id, run["dag_run_id"])
                if any(e.get("source_dag_id") == producer and e.get("source_run_id") == producer_run for e in events):
                    found = run
                    break
            if found is None:
                if time.monotonic() > deadline:
                    raise DeployCheckFailed(f"{dag_id} never ran from the asset event of {producer} {producer_run}")
                time.sleep(1)
        run = wait_run(api, dag_id, found["dag_run_id"])
        seconds = time.monotonic() - started
        result = DagResult(
            dag_id, run["dag_run_id"], run["run_type"], run["state"], seconds, 0, f"from {producer}'s asset event"
        )
        if run["state"] != "success":
            result.failed_tasks = failed_task_logs(api, home, dag_id, run["dag_run_id"], secrets)
        log(f"{dag_id}: {run['state']} {seconds:.1f} s after the producer was triggered ({run['run_type']})")
        results.append(result)
    return results


def run(dep: Deployment) -> ScenarioResult:
    """Scenario 1 as the runner calls it: every example DAG run, one row each."""
    result = ScenarioResult(1, "Every example DAG succeeds through the scheduler")
    runs: list[DagResult] = []
    try:
        run_scenario(dep.api, dep.emulator, dep.repo, dep.home, runs, dep.timings)
    finally:
        result.details = _table(runs, dep)
        ok = [r for r in runs if r.state == "success"]
        result.figures = {
            "runs succeeded": f"{len(ok)} of {len(runs)}",
            "asset consumer ran from the event": "yes"
            if any(r.run_type == "asset_triggered" and r.seconds and r.state == "success" for r in runs)
            else "no",
        }
    result.passed = bool(runs) and len(ok) == len(runs)
    if not result.passed:
        result.fail(", ".join(f"{r.dag_id}={r.state}" for r in runs if r.state != "success") or "no runs")
    return result


def _table(runs: list[DagResult], dep: Deployment) -> list[str]:
    lines = [
        "| DAG | run type | state | seconds | emulator requests | deferred tries (triggerer job ids) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        seconds = f"{r.seconds:.1f}" if r.seconds else "-"
        reqs = str(r.requests) if r.requests else "-"
        note = r.note + (f"; failed: {', '.join(r.failed_tasks)}" if r.failed_tasks else "")
        deferred = f"{r.deferred} ({', '.join(sorted(r.triggerers))})" if r.deferred else "-"
        lines.append(f"| `{r.dag_id}` | {r.run_type} | {r.state} | {seconds} | {reqs} | {deferred} | {note} |")
    lines += [
        "",
        "Seconds: from the trigger to the run's end (for the asset consumer: from the producer's trigger).",
        "Emulator requests: every request the emulator served while that DAG ran (the DAGs run one after another).",
        "Deferred tries: task tries whose trigger ran in a triggerer",
        "(one `*.log.trigger.<triggerer job id>.log` each).",
    ]
    return lines


#: Scenario number -> function, for the runner.
SCENARIOS = {1: run}
