"""Shared polling in the triggerer and rate-limit pacing, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.api.ratelimit import RateBudget, RateLimitState, budget_for
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RateLimit
from airflow_provider_aisearch.exceptions import AISearchRateLimitError
from airflow_provider_aisearch.hooks import AISearchAsyncClient, load_connection_info
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from airflow_provider_aisearch.waiting import polling
from airflow_provider_aisearch.waiting.polling import SharedJobPoller, active_pollers

Connect = Callable[..., None]


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


# ---------------------------------------------------------------------------------------------
# Mutation-testing additions
# ---------------------------------------------------------------------------------------------


async def budget_of(conn_id: str = "aisearch_default") -> RateBudget:
    info = await load_connection_info(conn_id)
    return budget_for(info.base_url, f"{info.email or ''}\0{info.secret}")


def test_waiter_joining_during_a_list_request_is_looked_for_next_round(emu: AISearchEmulator) -> None:
    old = emu.add_job("docs", started_at=time.time() - 7200, duration=30)  # page 2 of the listing
    emu.seed_jobs("docs", 55)
    running = emu.add_job("docs", duration=0.8)
    emu.inject(Fault("delay", delay=0.4), method="GET", times=1)  # the first list request is slow

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(first_event(trigger(running.id)))
        await asyncio.sleep(0.2)  # the first round (page 1 only: the running job is there) is in flight
        return [await first_event(trigger(old.id)), await first]

    events = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [e["job"]["id"] for e in events] == [old.id, running.id]
    assert [e["status"] for e in events] == ["done", "done"]
    # The late waiter was not handed the page-1 listing its job is missing from: the next round looked for it.
    assert gets(emu) == []
    assert "2" in {r.query["page"] for r in lists(emu)}


def test_waiter_is_not_served_before_its_own_interval(emu: AISearchEmulator) -> None:
    fast = emu.add_job("docs", duration=3600)
    slow = emu.add_job("docs", duration=0.3)

    async def scenario() -> tuple[Any, float]:
        started = time.time()
        task = asyncio.ensure_future(first_event(trigger(fast.id, poll_interval=0.05)))
        event = await first_event(trigger(slow.id, poll_interval=1.5))
        at = time.time() - started
        task.cancel()
        return event, at

    event, at = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert event["status"] == "done"
    # Polled at once (running), then 1.5 s later: the other waiter's 50 ms rounds did not serve it.
    assert at >= 1.2, at  # (a listing up to 10 % of the interval early may serve it)
    assert len(lists(emu)) >= 10  # the fast waiter's rounds ran meanwhile


def test_poller_failure_ends_every_waiter_with_an_error(emu: AISearchEmulator, mocker: Any) -> None:
    jobs = [emu.add_job("docs", duration=3600) for _ in range(2)]
    mocker.patch.object(SharedJobPoller, "_poll_once", side_effect=RuntimeError("poller bug"))
    events = asyncio.run(run_all([trigger(j.id) for j in jobs], limit=5))
    assert [e["status"] for e in events] == ["error", "error"]
    assert all("poller bug" in e["message"] for e in events)
    assert emu.requests == []


def test_shared_fallback_get_respects_the_deadline(emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling, "MAX_SCAN_PAGES", 1)
    job = emu.add_job("docs", started_at=time.time() - 7200, duration=3600 * 24)  # running, on page 2
    emu.seed_jobs("docs", 55)
    emu.inject(Fault.rate_limited(retry_after=100), path=job.id, times=50)  # only its own GETs are refused
    started = time.monotonic()
    (event,) = asyncio.run(run_all([trigger(job.id, deadline=time.time() + 0.8)], limit=10))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 4  # no 100 s Retry-After wait past the deadline
    own = [r for r in emu.requests if r.path.endswith(job.id)]
    assert own and all(r.status == 429 for r in own)  # its own GETs were sent, and refused


def test_gate_counts_requests_in_flight(emu: AISearchEmulator) -> None:
    """20 requests left, 1 in reserve: of 25 concurrent GETs, 18 go now and 7 after the reset."""
    emu.rate_limit = RateLimit(limit=20, window=1.0, lockout=1.0)
    job = emu.add_job("docs", duration=0)

    async def scenario() -> list[Any]:
        async with AISearchAsyncClient(retry_backoff=0.001, max_retries=0) as client:
            await client.run(client.api.get_job("docs", job.id))  # 19 left
            return list(await asyncio.gather(*(client.run(client.api.get_job("docs", job.id)) for _ in range(25))))

    results = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [j.id for j in results] == [job.id] * 25
    assert emu.rate_limit.refused == 0
    assert [r.status for r in emu.requests] == [200] * 26


def test_shared_poller_slows_down_when_the_budget_runs_low(emu: AISearchEmulator) -> None:
    """40 requests per 2 s: once 8 are left (low), the list rounds spread the 6 above the reserve."""
    emu.rate_limit = RateLimit(limit=40, window=2.0, lockout=2.0)
    job = emu.add_job("docs", duration=1.6)
    (event,) = asyncio.run(run_all([trigger(job.id, poll_interval=0.02)], limit=10))
    assert event["status"] == "done"
    assert emu.rate_limit.refused == 0
    window_end = emu.requests[0].at + 2.0
    low = [
        b.at - a.at
        for a, b in itertools.pairwise(emu.requests)
        if b.at < window_end and int(a.headers["x-ratelimit-remaining"]) <= 8
    ]
    assert low, [r.headers for r in emu.requests]
    # Unpaced, the rounds would go on every 20 ms until the reserve; paced, they are ~0.2 s apart.
    assert sum(gap < 0.1 for gap in low) <= 1, low


def test_triggers_with_other_credentials_do_not_share_a_poller(emu: AISearchEmulator, connect: Connect) -> None:
    connect(emu, "aisearch_wrong", password="wrong-token")
    job = emu.add_job("docs", duration=0.6)
    events = asyncio.run(run_all([trigger(job.id), trigger(job.id, aisearch_conn_id="aisearch_wrong")]))
    # The second connection's token is refused: it is never served by the first one's listings.
    assert [e["status"] for e in events] == ["done", "error"]
    assert events[1]["error"]["type"] == "AISearchAuthError"
    assert emu.connections == 2


def test_shared_rounds_are_one_interval_apart_however_slow_the_answers(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=1.6)
    emu.inject(Fault("delay", delay=0.3), method="GET", times=100)
    (event,) = asyncio.run(run_all([trigger(job.id, poll_interval=0.5)], limit=10))
    assert event["status"] == "done"
    sent = [r.at for r in lists(emu)]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(gaps) >= 2
    # One interval from one request to the next, not an interval after each answer (0.8 s).
    assert all(0.45 < gap < 0.65 for gap in gaps), gaps


def test_triggers_starting_together_read_their_connection_once(emu: AISearchEmulator, mocker: Any) -> None:
    from airflow_provider_aisearch.clients import compat  # the provider's one way to common-compat's connection readers

    lookup = mocker.spy(compat, "get_async_connection")
    jobs = [emu.add_job("docs", duration=0.3) for _ in range(20)]
    events = asyncio.run(run_all([trigger(j.id) for j in jobs]))
    assert [e["status"] for e in events] == ["done"] * 20
    assert lookup.call_count == 1


def test_requests_go_until_only_the_reserve_is_left(emu: AISearchEmulator) -> None:
    """40 requests per 30 s, 2 (5 %) in reserve: 38 sequential GETs go, the 39th is held for the reset."""
    emu.rate_limit = RateLimit(limit=40, window=30.0, lockout=30.0)
    job = emu.add_job("docs", duration=0)

    async def scenario() -> tuple[int, AISearchRateLimitError]:
        async with AISearchAsyncClient(max_retries=0) as client:
            api = client.api.with_deadline(time.time() + 5)  # waiting ~30 s for the reset would pass it
            for served in range(40):
                try:
                    await client.run(api.get_job("docs", job.id))
                except AISearchRateLimitError as exc:
                    return served, exc
        raise AssertionError("never held back")

    served, error = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert served == 38  # each answered request left the in-flight count; held at exactly the reserve
    assert "was not sent" in str(error)
    assert [r.status for r in emu.requests] == [200] * 38  # never a 429
    assert emu.requests[-1].headers["x-ratelimit-remaining"] == "2"


def test_an_older_answer_arriving_late_does_not_raise_the_remaining_budget(emu: AISearchEmulator) -> None:
    emu.rate_limit = RateLimit(limit=40, window=30.0, lockout=30.0)
    job = emu.add_job("docs", duration=0)

    async def scenario() -> None:
        async with AISearchAsyncClient(max_retries=0) as client:
            api = client.api.with_deadline(time.time() + 5)
            for _ in range(36):  # 4 left
                await client.run(api.get_job("docs", job.id))
            emu.inject(Fault("delay", delay=0.3), times=1)
            slow = asyncio.ensure_future(client.run(api.get_job("docs", job.id)))  # counted first: 3 left
            while len(emu.requests) < 37:
                await asyncio.sleep(0.01)
            await client.run(api.get_job("docs", job.id))  # 2 left, answered first
            await slow  # "3 left" arrives last
            with pytest.raises(AISearchRateLimitError, match="was not sent"):
                await client.run(api.get_job("docs", job.id))

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [r.status for r in emu.requests] == [200] * 38


def test_oldest_first_listing_is_read_back_only_until_the_waited_job_is_seen(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(list_order="oldest")
    connect(emu)
    emu.seed_jobs("docs", 200)  # pages 1-4
    running = emu.add_job("docs", duration=0.5)  # alone on page 5, the newest
    (event,) = asyncio.run(run_all([trigger(running.id)]))
    assert event["status"] == "done"
    assert gets(emu) == []
    # Each round: page 1 (which shows the order), then the last page, where the job is; not pages 4, 3, 2.
    assert {r.query["page"] for r in lists(emu)} == {"1", "5"}


def test_a_trigger_cancelled_while_its_connection_is_read_does_not_cancel_the_others(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.3)

    async def scenario() -> Any:
        first = asyncio.ensure_future(first_event(trigger(job.id)))
        second = asyncio.ensure_future(first_event(trigger(job.id)))
        await asyncio.sleep(0)  # both wait on the one connection lookup
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    event = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert event["status"] == "done"
    assert event["job"]["id"] == job.id


def test_waiters_not_pending_when_the_poller_dies_get_an_error(emu: AISearchEmulator, mocker: Any) -> None:
    job = emu.add_job("docs", duration=3600)
    # The first round delivers its listing, then the poll loop dies (a bug past the delivery).
    mocker.patch.object(RateBudget, "is_low", side_effect=RuntimeError("poller bug"))
    (event,) = asyncio.run(run_all([trigger(job.id)], limit=5))
    assert event["status"] == "error"
    assert "poller bug" in event["message"]
    assert len(lists(emu)) == 1


def test_shared_deadline_is_kept_while_the_budget_holds_list_rounds(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)

    async def scenario() -> Any:
        # One request above the 5 % reserve and 30 s to the reset: the second round is held ~30 s.
        (await budget_of()).observe(
            {"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "61", "x-ratelimit-reset": "30"}
        )
        return await first_event(trigger(job.id, deadline=time.time() + 1.0))

    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 3  # polled once more at the deadline, not after the hold


def test_cancelled_requests_give_their_rate_limit_slot_back(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0)
    emu.inject(Fault("delay", delay=1.0), method="GET", times=2)

    async def scenario() -> Any:
        # Two requests above the 5 % reserve, 30 s to the reset (the emulator sends no rate headers).
        (await budget_of()).observe(
            {"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "62", "x-ratelimit-reset": "30"}
        )
        async with AISearchAsyncClient(max_retries=0) as client:
            api = client.api.with_deadline(time.time() + 5)
            slow = [asyncio.ensure_future(client.run(api.get_job("docs", job.id))) for _ in range(2)]
            while len(emu.requests) < 2:
                await asyncio.sleep(0.01)
            for task in slow:  # kept referenced: the trigger's task object outlives the cancellation
                task.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
            return await client.run(api.get_job("docs", job.id))  # not held back by the cancelled two

    assert asyncio.run(asyncio.wait_for(scenario(), 10)).id == job.id
    assert len(emu.requests) == 3


def test_budget_pacing_never_waits_past_the_reset() -> None:
    now = [1000.0]
    budget = RateBudget(clock=lambda: now[0])
    # 100 left, 60 in reserve: 40 requests over the 60 s to the reset, one every 1.5 s.
    budget.observe({"x-ratelimit-limit": "1200", "x-ratelimit-remaining": "100", "x-ratelimit-reset": "60"})
    waits = [budget.pace(5) for _ in range(200)]  # 200 unshared pollers ask in turn
    assert waits[:3] == [5, 6.5, 8]
    assert max(waits) == 60  # the pollers past the 40 turns wait for the reset, not 200 turns (300 s)
    assert waits.count(60) == 200 - 37


def test_failed_lookup_after_every_caller_left_is_not_reported_as_unretrieved(mocker: Any) -> None:
    import gc

    from airflow_provider_aisearch.hooks import load_connection_info

    async def failing(conn_id: str) -> Any:
        await asyncio.sleep(0.05)
        raise RuntimeError("no such connection")

    mocker.patch("airflow_provider_aisearch.clients.async_client._read_connection_info", failing)
    reported: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        callers = [asyncio.ensure_future(load_connection_info("gone")) for _ in range(3)]
        await asyncio.sleep(0.01)
        for caller in callers:
            caller.cancel()  # every trigger waiting on the lookup was cancelled
        await asyncio.gather(*callers, return_exceptions=True)
        await asyncio.sleep(0.1)  # the shared lookup fails with nobody left to read it
        gc.collect()

    asyncio.run(scenario())
    assert [c.get("message") for c in reported] == []
