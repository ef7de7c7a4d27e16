"""``make demo``: run every example DAG end to end with ``airflow dags test`` against the emulator.

The emulator runs embedded in this process; each ``airflow dags test`` child finds it through the
``AIRFLOW_CONN_AISEARCH_DEFAULT`` variable. Airflow state goes to ``.demo/`` (recreated each run).

The retrieval check example searches the demo corpus (``example_dags/data/corpus/``), which the emulator
serves on the instance ``kestrel-docs``; it runs twice, so the second run checks against the first's
metrics (its baseline for ``max_drop``). The sync-folder example uploads the same corpus into the
built-in-storage instance ``kestrel-builtin`` and runs twice too: the second run finds every document
unchanged and uploads nothing (run with ``{"expect_unchanged": true}``, its report task asserts it).

The event-driven example (Airflow 3) needs a triggerer, which ``dags test`` does not run: this script
runs its ``AISearchJobEventTrigger`` itself, starts a job on the emulator, lets the emulator's own
scheduled sync (``source: "schedule"``) run a second one, and runs the DAG's tasks once per event,
with the event's job in ``dag_run.conf``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.emulator.documents import load_documents

REPO = Path(__file__).resolve().parents[1]
DEMO_HOME = Path(os.environ.get("AISEARCH_DEMO_HOME") or REPO / ".demo" / "airflow-home")
#: DAGs the demo runs, in order.
DEMO_DAGS = [
    "example_aisearch_hook",
    "example_aisearch_sensor",
    "example_aisearch_operators",
    "example_aisearch_quality_gate",
    "example_aisearch_retrieval_check",
    "example_aisearch_retrieval_check",  # again: now the first run's metrics are its baseline
    "example_aisearch_sync_folder",
    "example_aisearch_sync_folder",  # again: nothing changed, so nothing is uploaded (its report task asserts it)
    "example_aisearch_asset_producer",
    "example_aisearch_asset_consumer",
]
#: Files on "docs" and the share that fails to embed: the quality gate example (max_item_errors=0.05) passes.
QUALITY_ITEMS = 100
QUALITY_ERROR_SHARE = 0.02
#: The retrieval check example's instance, and the folder it indexes (key = path relative to the folder).
CORPUS_INSTANCE = "kestrel-docs"
CORPUS = REPO / "example_dags" / "data" / "corpus"
#: The sync-folder example's instance: built-in storage (``type`` absent), empty until the example uploads the corpus.
BUILTIN_INSTANCE = "kestrel-builtin"
#: The second run of a DAG: its label, and its ``dags test`` run conf.
RERUN_LABELS = {
    "example_aisearch_retrieval_check": "run 2, against run 1's baseline",
    "example_aisearch_sync_folder": "run 2, nothing changed: nothing uploaded",
}
RERUN_CONF = {"example_aisearch_sync_folder": {"expect_unchanged": True}}
#: The event-driven example (Airflow 3.0+), its instance, and how many job ends the demo shows.
EVENT_DAG = "example_aisearch_event_driven"
EVENT_INSTANCE = "handbook"
EVENT_JOBS = 2


def watch_events(emulator: AISearchEmulator) -> list[dict[str, Any]]:
    """Run the event trigger as the triggerer would; a user job, then a scheduled sync, end meanwhile."""
    from airflow_provider_aisearch.triggers import AISearchJobEventTrigger

    async def scenario() -> list[dict[str, Any]]:
        trigger = AISearchJobEventTrigger(instance_id=EVENT_INSTANCE, poll_interval=1.0)
        events: list[dict[str, Any]] = []
        run = cast("AsyncGenerator[Any, None]", trigger.run())
        try:
            seen = len(emulator.requests)
            first = asyncio.ensure_future(run.__anext__())
            while not any(EVENT_INSTANCE in r.segments for r in emulator.requests[seen:]):  # the baseline listing
                await asyncio.sleep(0.1)
            job = emulator.start_job(EVENT_INSTANCE, source="user", description="demo: started by a user", duration=2)
            print(f"started job {job.id} on {EVENT_INSTANCE!r}; a scheduled sync follows in ~6 s", flush=True)
            emulator.end_reason = "error_source_unreachable"  # the scheduled sync fails: the DAG's alert branch runs
            emulator.set_sync_interval(EVENT_INSTANCE, 3600, first_in=6)
            events.append((await asyncio.wait_for(first, 60)).payload)
            while len(events) < EVENT_JOBS:
                events.append((await asyncio.wait_for(run.__anext__(), 60)).payload)
        finally:
            await run.aclose()
        return events

    return asyncio.run(scenario())


def main() -> int:
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    # A short cooldown (Cloudflare: about 30 s) so consecutive DAGs can each start a job.
    emulator = AISearchEmulator(instances=[EVENT_INSTANCE], job_duration=3.0, cooldown=5.0)
    # The quality gate's example: 100 files on "docs", 2 % of which fail to embed (its gate allows 5 %).
    emulator.add_instance("docs", items=QUALITY_ITEMS)
    emulator.set_item_errors(QUALITY_ERROR_SHARE, instance_id="docs")
    emulator.seed_jobs("docs", 5)
    # The retrieval check example's instance holds the demo corpus: its items are those documents.
    emulator.add_instance(CORPUS_INSTANCE, documents=load_documents(CORPUS))
    emulator.seed_jobs(CORPUS_INSTANCE, 2)
    emulator.seed_jobs(EVENT_INSTANCE, 3)  # ended before watching: they never fire
    # The sync-folder example pushes the corpus into built-in storage (no sync jobs); an upload takes 1 s.
    emulator.add_instance(BUILTIN_INSTANCE, type=None, items=0)
    emulator.set_upload_duration(1.0)
    emulator.start()
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(DEMO_HOME),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW_CONN_AISEARCH_DEFAULT=emulator.connection_json(),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    print(f"AI Search emulator: {emulator.url}")
    try:
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode:
            print(migrate.stdout[-4000:], migrate.stderr[-4000:])
            print("airflow db migrate failed")
            return 1
        results = []
        for number, dag_id in enumerate(DEMO_DAGS):
            before = len(emulator.requests)
            started = time.monotonic()
            rerun = dag_id in DEMO_DAGS[:number]
            label = f"{dag_id} ({RERUN_LABELS[dag_id]})" if rerun else dag_id
            print(f"\n=== airflow dags test {label} ===", flush=True)
            run_conf = ["-c", json.dumps(RERUN_CONF[dag_id])] if rerun and dag_id in RERUN_CONF else []
            rc = subprocess.run([airflow, "dags", "test", dag_id, *run_conf], env=env).returncode
            results.append((label, rc, time.monotonic() - started, len(emulator.requests) - before))
        if airflow_3(airflow, env):
            os.environ.update(env)  # the trigger runs in this process, reading the same connection
            print(f"\n=== {EVENT_DAG}: AISearchJobEventTrigger watching {EVENT_INSTANCE!r} ===", flush=True)
            before, started = len(emulator.requests), time.monotonic()
            events = watch_events(emulator)
            for job in events:
                print(f"event: job {job['id']} ({job['source']}) ended {job['ended_at']}: {job['status']}", flush=True)
            watched = (f"{EVENT_DAG} trigger", 0 if len(events) == EVENT_JOBS else 1, time.monotonic() - started)
            results.append((*watched, len(emulator.requests) - before))
            for job in events:
                before, started = len(emulator.requests), time.monotonic()
                print(f"\n=== airflow dags test {EVENT_DAG} (job {job['id']}) ===", flush=True)
                conf = json.dumps({"jobs": [job]})
                rc = subprocess.run([airflow, "dags", "test", EVENT_DAG, "-c", conf], env=env).returncode
                results.append((f"{EVENT_DAG} ({job['source']} job)", rc, time.monotonic() - started, 0))
    finally:
        emulator.stop()
    print("\n=== demo summary ===")
    for dag_id, rc, seconds, requests in results:
        print(f"{'ok    ' if rc == 0 else 'FAILED'} {dag_id}: {seconds:.1f} s, {requests} API requests to the emulator")
    return 0 if all(rc == 0 for _, rc, _, _ in results) else 1


def airflow_3(airflow: str, env: dict[str, str]) -> bool:
    """Whether the venv's Airflow has event-driven scheduling (3.0+)."""
    version = subprocess.run([airflow, "version"], env=env, capture_output=True, text=True).stdout.strip()
    return not version.startswith("2.")


if __name__ == "__main__":
    sys.exit(main())
