"""Benchmark 5: many AISearchJobTriggers in one event loop, with shared polling on and off.

Run by ``bench/run.py`` in two processes so neither measures the other:

* ``serve``: a minimal asyncio server of the two jobs GETs, with the jobs already running and ending
  at random times. It prints the connection and the job ids (newest first), then, when its stdin
  closes, the time of every request it answered.
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


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


async def _serve(config: dict[str, Any]) -> None:
    """
    A minimal asyncio HTTP/1.1 server for the two jobs GETs (list and get), in Cloudflare's envelopes.

    The emulator serves one thread per connection; with 1,000 unshared triggers (1,000 keep-alive
    connections) its threads, not the provider, would set the pace. This server keeps up with both modes.
    """
    rng = random.Random(config["seed"])
    t0 = config["t0"]  # when the triggers start; every job ends at a random time after it
    ids = [f"{i:032x}" for i in range(config["jobs"])]
    starts = {job_id: t0 - 60 + i * 0.001 for i, job_id in enumerate(ids)}
    ends = {job_id: t0 + rng.uniform(*config["ends"]) for job_id in ids}
    newest_first = sorted(ids, key=lambda j: starts[j], reverse=True)
    stamps: list[tuple[float, str, int]] = []

    def job_json(job_id: str, now: float) -> dict[str, Any]:
        ended = ends[job_id] <= now
        return {
            "id": job_id,
            "source": "schedule",
            "description": None,
            "started_at": _ts(starts[job_id]),
            "last_seen_at": _ts(min(now, ends[job_id])),
            "ended_at": _ts(ends[job_id]) if ended else None,
            "end_reason": "completed" if ended else None,
        }

    def answer(path: str) -> dict[str, Any]:
        now = time.time()
        route, _, query = path.partition("?")
        segments = route.rstrip("/").split("/")
        if segments[-1] == "jobs":
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            page, per_page = int(params.get("page", 1)), int(params.get("per_page", 20))
            chunk = newest_first[(page - 1) * per_page : page * per_page]
            stamps.append((now, "GET", 3))
            return {
                "success": True,
                "errors": [],
                "messages": [],
                "result": [job_json(j, now) for j in chunk],
                "result_info": {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(ids)},
            }
        stamps.append((now, "GET", 4))
        return {"success": True, "errors": [], "messages": [], "result": job_json(segments[-1], now)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                body = json.dumps(answer(path)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    connection = json.dumps(
        {
            "conn_type": "cloudflare_aisearch",
            "host": f"http://127.0.0.1:{port}/client/v4",
            "password": TOKEN,
            "extra": {"account_id": "0123456789abcdef0123456789abcdef"},
        }
    )
    print(json.dumps({"connection": connection, "jobs": newest_first}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes it
    server.close()
    print(json.dumps({"requests": stamps}), flush=True)


def serve(config: dict[str, Any]) -> None:
    asyncio.run(_serve(config))


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
