"""Benchmark 5: many AISearchJobTriggers in one event loop, with shared polling on and off.

Run by ``bench/run.py`` in two processes so neither measures the other:

* ``serve``: the emulator, with the jobs already running and ending at random times. It prints its
  URL and the job ids, then, when its stdin closes, the time of every request it answered.
* ``wait``: N triggers in one asyncio loop (as in the triggerer), plus a task that measures how late
  the loop wakes it (event-loop lag). It prints lag percentiles, CPU seconds and the events.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aisearch-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")

TOKEN = "bench-token"


def serve(config: dict[str, Any]) -> None:
    from airflow_provider_aisearch.emulator import AISearchEmulator

    rng = random.Random(config["seed"])
    emu = AISearchEmulator(token=TOKEN, instances=["bench"], cooldown=0).start()
    t0 = config["t0"]  # when the triggers start; every job ends at a random time after it
    jobs = [
        emu.add_job("bench", started_at=t0 - 60 + i * 0.001, duration=60 + rng.uniform(*config["ends"]))
        for i in range(config["jobs"])
    ]
    print(json.dumps({"url": emu.url, "connection": emu.connection_json(), "jobs": [j.id for j in jobs]}), flush=True)
    sys.stdin.read()  # until the parent closes it
    stamps = [(r.at, r.method, len(r.segments)) for r in emu.requests]
    emu.stop()
    print(json.dumps({"requests": stamps}), flush=True)


async def _lag_monitor(samples: list[float], stop: asyncio.Event, tick: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(tick)
        samples.append(loop.time() - before - tick)


async def _wait_all(config: dict[str, Any], job_ids: list[str]) -> dict[str, Any]:
    from airflow_provider_aisearch.triggers import AISearchJobTrigger

    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(_lag_monitor(samples, stop))
    triggers = [
        AISearchJobTrigger(
            instance_id="bench",
            job_id=job_ids[i % len(job_ids)],
            poll_interval=config["interval"],
            share_polling=config["share"],
            retry_backoff=0.2,
        )
        for i in range(config["triggers"])
    ]

    async def first(trigger: AISearchJobTrigger) -> tuple[str, float]:
        async for event in trigger.run():
            return event.payload["status"], time.time()
        return "none", time.time()

    cpu0, wall0 = time.process_time(), time.time()
    results = await asyncio.gather(*(first(t) for t in triggers))
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    stop.set()
    await monitor
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "lag_p50_ms": pick(0.50),
        "lag_p99_ms": pick(0.99),
        "lag_max_ms": samples[-1] * 1000 if samples else 0.0,
        "cpu_s": cpu,
        "wall_s": wall,
        "started": wall0,
        "statuses": statuses,
        "mean_detect_s": statistics.fmean(t for _, t in results) - wall0,
    }


def wait(config: dict[str, Any]) -> None:
    os.environ["AIRFLOW_CONN_AISEARCH_DEFAULT"] = config["connection"]
    import airflow_provider_aisearch.triggers  # noqa: F401  (import before timing)

    time.sleep(max(0.0, config["t0"] - time.time()))
    result = asyncio.run(_wait_all(config, config["job_ids"]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    role, raw = sys.argv[1], sys.argv[2]
    cfg = json.loads(Path(raw).read_text() if raw.endswith(".json") else raw)
    if role == "serve":
        serve(cfg)
    else:
        wait(cfg)
