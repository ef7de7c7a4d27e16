"""Shared polling in the triggerer and rate-limit pacing, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch import polling
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RateLimit
from airflow_provider_aisearch.polling import active_pollers
from airflow_provider_aisearch.ratelimit import RateBudget, RateLimitState
from airflow_provider_aisearch.triggers import AISearchJobTrigger

Connect = Callable[..., None]


@pytest.fixture
def emu(emulator: AISearchEmulator, connect: Connect) -> AISearchEmulator:
    connect(emulator)
    return emulator


def lists(emu: AISearchEmulator, instance: str = "docs") -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and r.segments[2:] == (instance,)]


def gets(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and len(r.segments) == 4]


def trigger(job_id: str, **kwargs: Any) -> AISearchJobTrigger:
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("retry_backoff", 0.001)
    return AISearchJobTrigger(job_id=job_id, **kwargs)


async def first_event(t: AISearchJobTrigger) -> Any:
    events = [event.payload async for event in t.run()]
    assert len(events) == 1, events  # exactly one event per trigger run
    return events[0]


async def run_all(triggers: list[AISearchJobTrigger], limit: float = 30) -> list[Any]:
    events = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), limit)
    await asyncio.sleep(0)  # let the poller task finish closing
    return list(events)


def test_many_triggers_share_one_list_per_interval(emu: AISearchEmulator) -> None:
    rng = random.Random(7)
    jobs = [emu.add_job("docs", duration=rng.uniform(0.3, 1.5)) for _ in range(30)]
    started = time.time()
    events = asyncio.run(run_all([trigger(j.id) for j in jobs]))
    elapsed = time.time() - started
    assert [e["status"] for e in events] == ["done"] * 30
    assert [e["job"]["id"] for e in events] == [j.id for j in jobs]
    assert all(e["job"]["end_reason"] == "completed" for e in events)
    assert gets(emu) == []  # every state came from a shared listing
    assert emu.requests == lists(emu)
    # One list per 0.2 s round (plus the first), not one request per trigger per round.
    assert len(lists(emu)) <= elapsed / 0.2 + 2, (len(lists(emu)), elapsed)
    assert emu.connections == 1  # one keep-alive connection for all 30 waits


def test_poller_stops_and_closes_when_the_last_waiter_leaves(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.3)

    async def scenario() -> tuple[int, int]:
        await run_all([trigger(job.id), trigger(job.id)])
        during = len(active_pollers())
        await asyncio.sleep(0.5)
        return during, len(active_pollers())

    assert asyncio.run(scenario()) == (0, 0)
    requests = len(emu.requests)
    time.sleep(0.5)
    assert len(emu.requests) == requests  # nothing polls any more
    assert not emu._open  # the poller's connection was closed


def test_cancelled_waiters_leave_and_the_rest_keep_waiting(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600)
    b = emu.add_job("docs", duration=0.8)

    async def scenario() -> tuple[Any, int, int]:
        ta = asyncio.ensure_future(first_event(trigger(a.id)))
        tb = asyncio.ensure_future(first_event(trigger(b.id)))
        await asyncio.sleep(0.3)
        ta.cancel()  # the triggerer moved or cancelled this trigger
        with pytest.raises(asyncio.CancelledError):
            await ta
        (poller,) = active_pollers()
        waiting = len(poller.waiters)
        event = await asyncio.wait_for(tb, 10)
        await asyncio.sleep(0.05)
        return event, waiting, len(active_pollers())

    event, waiting, left = asyncio.run(scenario())
    assert event["status"] == "done"
    assert event["job"]["id"] == b.id
    assert (waiting, left) == (1, 0)


def test_job_missing_from_the_listing_falls_back_to_its_own_get(
    emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "MAX_SCAN_PAGES", 2)
    old = emu.seed_jobs("docs", 120)[0]  # on page 3, past the 2 pages a round may read
    running = emu.add_job("docs", duration=0.6)
    events = asyncio.run(run_all([trigger(old.id), trigger(running.id)]))
    assert [e["job"]["id"] for e in events] == [old.id, running.id]
    assert [e["status"] for e in events] == ["done", "done"]
    assert [r.segments[3] for r in gets(emu)] == [old.id]  # one GET, then it was done
    pages = [r.query["page"] for r in lists(emu)]
    assert set(pages) == {"1", "2"}
    # Once the old job's waiter left, every job waited on is on page 1: one request per round.
    assert pages[pages.index("2") + 1 :].count("2") == 0


def test_scan_stops_at_the_page_holding_every_waited_job(emu: AISearchEmulator) -> None:
    emu.seed_jobs("docs", 300)
    running = emu.add_job("docs", duration=0.5)
    (event,) = asyncio.run(run_all([trigger(running.id)]))
    assert event["status"] == "done"
    assert {r.query["page"] for r in lists(emu)} == {"1"}


def test_listing_reads_further_pages_when_waited_jobs_are_missing(emu: AISearchEmulator) -> None:
    now = time.time()
    # 70 running jobs: the oldest 20 are on page 2 of the newest-first listing.
    jobs = [emu.add_job("docs", started_at=now - 70 + i, duration=3600) for i in range(70)]
    for job in jobs:
        emu.finish_job("docs", job.id, "completed")
    events = asyncio.run(run_all([trigger(j.id) for j in jobs]))
    assert {e["status"] for e in events} == {"done"}
    assert gets(emu) == []
    assert sorted(r.query["page"] for r in lists(emu))[:2] == ["1", "2"]
    assert len(lists(emu)) <= 6  # a few rounds while the 70 triggers start, not 70 requests


def test_triggers_on_two_instances_use_two_pollers(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(instances=["docs", "wiki"])
    connect(emu)
    a = emu.add_job("docs", duration=0.5)
    b = emu.add_job("wiki", duration=0.5)
    events = asyncio.run(run_all([trigger(a.id), trigger(b.id, instance_id="wiki"), trigger(a.id)]))
    assert [e["job"]["id"] for e in events] == [a.id, b.id, a.id]
    assert lists(emu, "docs") and lists(emu, "wiki")
    assert gets(emu) == []


def test_shared_deadline_times_out_one_waiter_while_others_continue(emu: AISearchEmulator) -> None:
    long = emu.add_job("docs", duration=3600)
    short = emu.add_job("docs", duration=1.2)
    deadline = time.time() + 0.5
    events = asyncio.run(
        run_all([trigger(long.id, poll_interval=5, deadline=deadline), trigger(short.id, poll_interval=0.2)])
    )
    assert [e["status"] for e in events] == ["timeout", "done"]
    assert events[0]["job"]["id"] == long.id
    assert events[0]["job"]["status"] == "running"
    timed_out_at = [r.at for r in lists(emu) if r.at >= deadline]
    assert timed_out_at and timed_out_at[0] - deadline < 0.5  # one more listing at the deadline


def test_listing_auth_error_ends_every_waiter(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="wrong-token")
    events = asyncio.run(run_all([trigger("j1"), trigger("j2")]))
    assert [e["status"] for e in events] == ["error", "error"]
    assert [e["error"]["type"] for e in events] == ["AISearchAuthError"] * 2
    assert len(emulator.requests) == 1  # one listing, shared by both waiters


def test_transient_listing_errors_keep_waiters_waiting(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=1.0)
    emu.inject(Fault.http(503), method="GET", times=6)
    events = asyncio.run(run_all([trigger(job.id, max_retries=1), trigger(job.id, max_retries=1)]))
    assert [e["status"] for e in events] == ["done", "done"]
    assert emu.fault_counts["status"] == 6


def test_unshared_trigger_has_its_own_connection(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.5)
    events = asyncio.run(run_all([trigger(job.id, share_polling=False), trigger(job.id, share_polling=False)]))
    assert [e["status"] for e in events] == ["done", "done"]
    assert lists(emu) == []
    assert emu.connections == 2


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------


def test_rate_limit_state_from_cloudflare_headers() -> None:
    now = 1_800_000_000.0
    headers = {
        "X-RateLimit-Limit": "1200",
        "X-RateLimit-Remaining": "17",
        "X-RateLimit-Reset": "Fri, 15 Jan 2027 08:00:00 GMT",
    }
    state = RateLimitState.from_headers(headers, now)
    assert state is not None
    assert (state.remaining, state.limit) == (17, 1200)
    assert state.reset_at == 1_800_000_001.0  # the date's second, rounded up
    assert RateLimitState.from_headers({"x-ratelimit-remaining": "5", "x-ratelimit-reset": "30"}, now) == (
        RateLimitState(5, None, now + 30, now)
    )
    locked = RateLimitState.from_headers({"x-ratelimit-remaining": "0", "retry-after": "300"}, now)
    assert locked is not None and locked.reset_at == now + 300
    assert RateLimitState.from_headers({"content-type": "application/json"}, now) is None


def test_budget_pacing_spreads_the_remainder_and_holds_the_reserve() -> None:
    now = [1000.0]
    budget = RateBudget(clock=lambda: now[0])
    assert budget.pace(10) == 10  # nothing seen yet
    budget.observe({"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "1000", "x-ratelimit-reset": "300"})
    assert budget.pace(10) == 10 and not budget.is_low()
    budget.observe({"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "160", "x-ratelimit-reset": "200"})
    assert budget.is_low()
    # 160 left, 60 kept in reserve: 100 requests over 200 s, one every 2 s, taken in turns.
    assert [round(budget.pace(0.5), 3) for _ in range(3)] == [0.5, 2.5, 4.5]
    budget.observe({"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "40", "x-ratelimit-reset": "120"})
    assert budget.pace(10) == 120  # only the reserve left: wait for the reset
    now[0] += 121
    assert budget.pace(10) == 10  # the window has reset


@pytest.mark.parametrize("aware", [True, False], ids=["paced", "unpaced"])
def test_pollers_slow_down_before_the_lockout(emu: AISearchEmulator, aware: bool, mocker: Any) -> None:
    """Ten triggers polling every 50 ms against a 60-requests-per-3-s limit."""
    emu.rate_limit = RateLimit(limit=60, window=3.0, lockout=3.0)
    if not aware:  # the guard removed: the same pollers run into the lockout
        mocker.patch.object(RateBudget, "pace", lambda self, interval: interval)
        mocker.patch.object(RateBudget, "is_low", return_value=False)
        mocker.patch.object(RateBudget, "acquire", return_value=0.0)
    jobs = [emu.add_job("docs", duration=2.5) for _ in range(10)]
    triggers = [trigger(j.id, poll_interval=0.05, share_polling=False, max_retries=0) for j in jobs]
    events = asyncio.run(run_all(triggers, limit=60))
    refused = [r for r in emu.requests if r.status == 429]
    if aware:
        assert [e["status"] for e in events] == ["done"] * 10
        assert refused == []
        assert emu.rate_limit.refused == 0
        first_window = [r for r in emu.requests if r.at < emu.requests[0].at + 3.0]
        assert len(first_window) <= 60
    else:
        assert refused  # the pacing above is what keeps the account out of the lockout
