"""The event watcher under real data (issue 21, points 1-4), over real HTTP against the emulator.

A job whose ``ended_at`` lies in the future, more jobs ending between two rounds than a list page
holds, two watchers in one triggerer, and a cancel between two events of one round: every job fires
exactly once. Helpers and the fresh-memory fixture come from ``test_event_trigger``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.events import event_trigger, watch_pages
from airflow_provider_aisearch.events.watermark import Watermark
from tests.test_event_trigger import (  # noqa: F401  (fresh_memory: autouse here too)
    FakeStore,
    Running,
    fresh_memory,
    lists,
    rounds,
    until,
    watcher,
)

Connect = Callable[..., None]


def pages(emu: AISearchEmulator, since: int = 0) -> list[int]:
    """The page numbers of the list requests sent, from the ``since``-th on."""
    return [int(r.query.get("page", "1")) for r in lists(emu)[since:]]


def fired(*runs: Running) -> list[str]:
    return [e["id"] for run in runs for e in run.events]


# ---------------------------------------------------------------------------------------------
# 1. A job whose ended_at lies in the future
# ---------------------------------------------------------------------------------------------


def test_a_future_ended_at_silences_no_job(emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """One job ends two hours ahead; three end normally; a restart from the store; one more: each fires once."""
    monkeypatch.setattr(event_trigger, "PERSIST_GRACE", 0.05)
    emu.seed_jobs("docs", 3)
    odd = emu.add_job("docs", duration=3600)
    store = FakeStore()
    first = watcher(store)

    async def scenario() -> tuple[Running, Running, list[str], str]:
        run = Running(first)
        await rounds(emu, 1)  # the baseline
        emu.finish_job("docs", odd.id, ended_at=emu.clock() + 7200)
        await until(lambda: len(run.events) == 1)
        normal = [emu.add_job("docs", duration=0).id for _ in range(3)]
        await rounds(emu, 6)
        await asyncio.sleep(0.2)  # past PERSIST_GRACE: the store holds what was considered
        await run.stop()
        event_trigger._MEMORY.clear()  # another triggerer: only the asset state store remains
        rebuilt = Running(watcher(store, **first.serialize()[1]))
        await rounds(emu, 1)
        last = emu.add_job("docs", duration=0).id
        await rounds(emu, 6)
        await rebuilt.stop()
        return run, rebuilt, normal, last

    run, rebuilt, normal, last = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert fired(run)[0] == odd.id and sorted(fired(run)[1:]) == sorted(normal)  # ties in one second: by id
    assert fired(rebuilt) == [last]
    floor = Watermark.from_json(store.data[first.state_key]).floor
    assert floor is not None and floor.timestamp() <= emu.clock() + 1  # never past the API's Date
    assert odd.id in store.data[first.state_key]["seen"]  # remembered by id: it never fires again


# ---------------------------------------------------------------------------------------------
# 2. More jobs ended between two rounds than a list page holds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "count", "per_round", "expected_pages"),
    [
        ("newest", 60, None, [1, 2]),
        ("newest", 130, None, [1, 2, 3]),
        ("newest", 130, 1, [1, 2, 1, 3]),  # one page per round: the scan goes on in the next round
        ("oldest", 130, None, [1, 3, 1, 2]),  # page 1 and the newest page shared, then back from page 2
    ],
)
def test_jobs_that_ended_during_a_failover_all_fire_once(
    make_emulator: Callable[..., AISearchEmulator],
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    order: str,
    count: int,
    per_round: int | None,
    expected_pages: list[int],
) -> None:
    emu = make_emulator(list_order=order)
    connect(emu)
    if per_round is not None:
        monkeypatch.setattr(watch_pages, "MAX_WATCH_PAGES", per_round)
    emu.seed_jobs("docs", 5)
    store = FakeStore()
    first = watcher(store)

    async def scenario() -> tuple[list[str], list[str], int]:
        run = Running(first)
        await until(lambda: first.state_key in store.data)  # the baseline, written at once
        await run.stop()
        await asyncio.sleep(0.3)  # a list request in flight at the stop is logged by now
        event_trigger._MEMORY.clear()
        now = emu.clock()
        ended = [emu.add_job("docs", started_at=now - 2 * count + 2 * i, duration=1).id for i in range(count)]
        since = len(lists(emu))
        rebuilt = Running(watcher(store, **first.serialize()[1]))
        await until(lambda: len(rebuilt.events) >= count or len(lists(emu)) >= since + 12)
        await rounds(emu, 3)
        await rebuilt.stop()
        return ended, fired(run, rebuilt), since

    ended, events, since = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(events) == len(set(events)), "a job fired twice"
    assert sorted(events) == sorted(ended), f"{len(set(ended) - set(events))} of {count} jobs never fired"
    sent = pages(emu, since)
    assert sent[: len(expected_pages)] == expected_pages
    later = sent[len(expected_pages) :]
    assert later and set(later) <= ({1} if order == "newest" else {1, 3})  # then the rounds as cheap as before


def test_a_page_that_fails_is_read_again_in_the_next_round(emu: AISearchEmulator, caplog: Any) -> None:
    """A transient error on a page past the listing: logged, that page read again next round, none lost."""
    emu.seed_jobs("docs", 5)
    store = FakeStore()
    first = watcher(store)

    async def scenario() -> tuple[list[str], list[str], int]:
        run = Running(first)
        await until(lambda: first.state_key in store.data)
        await run.stop()
        await asyncio.sleep(0.3)  # a list request in flight at the stop is logged by now
        event_trigger._MEMORY.clear()
        now = emu.clock()
        ended = [emu.add_job("docs", started_at=now - 200 + 2 * i, duration=1).id for i in range(60)]
        since = len(emu.requests)
        # Page 1 is served; the two attempts at page 2 that follow it fail (503).
        emu.inject(Fault.before(lambda: emu.inject(Fault.http(503), times=2)))
        rebuilt = Running(watcher(store, **first.serialize()[1]))
        await until(lambda: len(rebuilt.events) >= 60 or len(lists(emu)) >= since + 12)
        await rounds(emu, 2)
        await rebuilt.stop()
        return ended, fired(rebuilt), since

    with caplog.at_level(logging.WARNING):
        ended, events, since = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(events) == sorted(ended) and len(events) == len(set(events))
    sent = [(int(r.query.get("page", "1")), r.status) for r in emu.requests[since:]]  # a faulted one has no route
    assert sent[:5] == [(1, 200), (2, 503), (2, 503), (1, 200), (2, 200)], sent
    assert sum("will poll again" in r.getMessage() for r in caplog.records) == 1


def test_no_page_past_the_first_while_it_reaches_the_jobs_considered(emu: AISearchEmulator) -> None:
    """A long history, one job ending at a time: page 1 reaches the jobs already considered, no other page is read."""
    emu.seed_jobs("docs", 120)

    async def scenario() -> None:
        run = Running(watcher())
        await rounds(emu, 1)
        emu.add_job("docs", duration=0)
        await until(lambda: len(run.events) == 1)
        await rounds(emu, 4)
        await run.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert set(pages(emu)) == {1}


# ---------------------------------------------------------------------------------------------
# 3. Two watchers in one triggerer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stores", [False, True], ids=["memory", "asset-stores"])
def test_two_watchers_in_one_triggerer_each_fire(emu: AISearchEmulator, stores: bool) -> None:
    """Same filters, other poll settings (two triggers for two assets): B rebuilt after A fired still fires."""
    job = emu.add_job("docs", duration=3600)
    store_a, store_b = (FakeStore(), FakeStore()) if stores else (None, None)
    a = watcher(store_a, poll_interval=0.05)
    b = watcher(store_b, poll_interval=0.06)
    assert a.state_key == b.state_key  # what fires is the same; the triggers are not

    async def scenario() -> tuple[Running, Running, Running]:
        run_a, run_b = Running(a), Running(b)
        await rounds(emu, 2)  # both took their baseline
        await run_b.stop()  # B is rebuilt in the same triggerer (e.g. reassigned), after A fired
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run_a.events) == 1)
        await rounds(emu, 1)
        again_b = Running(watcher(store_b, **b.serialize()[1]))
        await rounds(emu, 4)
        await run_a.stop()
        await again_b.stop()
        return run_a, run_b, again_b

    run_a, run_b, again_b = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert fired(run_a) == [job.id]
    assert fired(run_b, again_b) == [job.id]
    assert a.memory_key != b.memory_key


# ---------------------------------------------------------------------------------------------
# 4. A cancel between two events of one round
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("process", ["same", "new"])
def test_a_cancel_mid_round_repeats_at_most_the_last_event(
    emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch, process: str
) -> None:
    """Three jobs end in one round; the trigger is cancelled right after the second event."""
    monkeypatch.setattr(event_trigger, "EVENT_SPACING", 1.0)
    monkeypatch.setattr(event_trigger, "PERSIST_GRACE", 0.05)
    jobs = [emu.add_job("docs", duration=3600) for _ in range(3)]
    store = FakeStore() if process == "new" else None
    first = watcher(store, poll_interval=1.0)

    async def scenario() -> tuple[list[str], list[str]]:
        run = Running(first)
        await rounds(emu, 1)
        for job in jobs:  # well within the round's 1 s
            emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run.events) == 2)
        await run.stop()  # in EVENT_SPACING before the third event
        if process == "new":
            event_trigger._MEMORY.clear()  # another triggerer: only the asset state store remains
        rebuilt = Running(watcher(store, **first.serialize()[1]))
        await until(lambda: len(rebuilt.events) >= 1)
        await rounds(emu, 2)
        await rebuilt.stop()
        return fired(run), fired(rebuilt)

    before, after = asyncio.run(asyncio.wait_for(scenario(), 60))
    order = before + [j.id for j in jobs if j.id not in before]
    assert len(before) == 2
    if process == "same":
        assert after == order[2:]  # the triggerer's memory holds each event as it was yielded
    else:
        assert after in (order[2:], order[1:])  # at most the event yielded within PERSIST_GRACE repeats


def test_the_bound_is_the_apis_own_time_not_the_triggerers(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    """The API's clock runs 3 h behind the triggerer's: the answer's ``Date`` bounds the floor, not the local clock."""
    emu = make_emulator(clock=lambda: time.time() - 3 * 3600)
    connect(emu)
    emu.seed_jobs("docs", 3)
    odd = emu.add_job("docs", duration=3600)

    async def scenario() -> tuple[Running, list[str]]:
        run = Running(watcher())
        await rounds(emu, 1)  # the baseline
        emu.finish_job("docs", odd.id, ended_at=emu.clock() + 7200)  # 2 h ahead of the API, 1 h behind us
        await until(lambda: len(run.events) == 1)
        normal = [emu.add_job("docs", duration=0).id for _ in range(2)]
        await until(lambda: len(run.events) == 3 or len(lists(emu)) > 40)
        await rounds(emu, 2)
        await run.stop()
        return run, normal

    run, normal = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert fired(run)[0] == odd.id and sorted(fired(run)[1:]) == sorted(normal)


def test_a_floor_stored_past_the_apis_time_heals(emu: AISearchEmulator) -> None:
    """
    An earlier version stored a floor from a job's future ``ended_at`` (years ahead: bad data). A watcher
    resuming from that store brings the floor back to the listing's time: the next job fires.
    """
    emu.seed_jobs("docs", 3)
    store = FakeStore()
    first = watcher(store)
    poisoned = datetime.fromtimestamp(emu.clock() + 10 * 365 * 86400, tz=timezone.utc)
    store.data[first.state_key] = Watermark(poisoned, {"odd": poisoned}).to_json()

    async def scenario() -> tuple[Running, str]:
        run = Running(first)
        await rounds(emu, 1)
        job = emu.add_job("docs", duration=0).id
        await until(lambda: len(run.events) == 1 or len(lists(emu)) > 40)
        await run.stop()
        return run, job

    run, job = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert fired(run) == [job]
