"""A shared poller's list request held by the rate-limit budget, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.hooks import load_connection_info
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from airflow_provider_aisearch.waiting.polling import shared_polls

#: A 503 that also says the rate-limit window is spent for one more second (Cloudflare sends these
#: headers on every answer): the retry of the list request is held until the reset.
SPENT = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}


def _lists(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith("/instances/docs/jobs")]


def test_list_request_held_twice_polls_through(
    emulator: AISearchEmulator, connect: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    """
    The second hold of one request logs at DEBUG; the shared client's log (one per poller, feeding
    every waiter's log) must take it, else the wait dies on a transient 503.
    """
    connect(emulator)
    job = emulator.start_job("docs", duration=3.0)
    emulator.inject(Fault.http(503, headers=SPENT), method="GET", path=r"/instances/docs/jobs(\?|$)", times=2)
    t = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=0.05, retry_backoff=0.001, max_retries=3, share_polling=True
    )
    t._log = logging.getLogger("aisearch.test.waiter.held")  # type: ignore[assignment]

    async def events() -> list[dict[str, Any]]:
        return [e.payload async for e in t.run()]

    with caplog.at_level(logging.DEBUG):
        payloads = asyncio.run(asyncio.wait_for(events(), 60))
    assert [p["status"] for p in payloads] == ["done"], payloads
    assert payloads[0]["job"]["id"] == job.id
    statuses = [r.status for r in _lists(emulator)]
    assert statuses[:3] == [503, 503, 200], statuses
    held = [r for r in caplog.records if r.name == "aisearch.test.waiter.held" and " held: " in r.getMessage()]
    levels = [r.levelno for r in held]
    assert levels[:2] == [logging.WARNING, logging.DEBUG], [(r.levelname, r.getMessage()) for r in held]


def test_a_waiters_own_request_held_twice_warns_once(
    emulator: AISearchEmulator, connect: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    """
    A waiter's own GET (its job is not in the listing) logs its holds as every client does:
    WARNING once, then DEBUG.
    """
    connect(emulator)
    job = emulator.start_job("docs", duration=3600.0)
    emulator.inject(Fault.http(503, headers=SPENT), method="GET", path=job.id, times=2)
    waiter_log = logging.getLogger("aisearch.test.waiter.own")

    async def own_get() -> Any:
        info = await load_connection_info("aisearch_default")
        async with shared_polls(
            info,
            instance_id="docs",
            job_id=job.id,
            interval=60.0,
            deadline=None,
            timeout=(2.0, 5.0),
            max_retries=3,
            retry_backoff=0.001,
            log_to=waiter_log,
        ) as shared:
            return await shared.run(shared.api.get_job("docs", job.id))

    with caplog.at_level(logging.DEBUG):
        got = asyncio.run(asyncio.wait_for(own_get(), 60))
    assert got.id == job.id
    gets = [r.status for r in emulator.requests if r.method == "GET" and r.path.endswith(job.id)]
    assert gets == [503, 503, 200]
    held = [r for r in caplog.records if r.name == waiter_log.name and " held: " in r.getMessage()]
    levels = [r.levelno for r in held]
    assert levels == [logging.WARNING, logging.DEBUG], [(r.levelname, r.getMessage()) for r in held]
