"""AISearchJobEventTrigger (issue 14): one event per job that ends after watching began, over real HTTP.

Each test runs the trigger's ``run()`` in an event loop against the emulator, ends jobs through the
emulator, and asserts on the events and on the emulator's request log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.events import event_trigger
from airflow_provider_aisearch.events.event_trigger import AISearchJobEventTrigger
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from airflow_provider_aisearch.waiting.polling import active_pollers

Connect = Callable[..., None]
FAST: dict[str, Any] = {"poll_interval": 0.05, "retry_backoff": 0.001, "max_retries": 1, "timeout": [2.0, 5.0]}

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts as a new triggerer process: no in-memory watermark; events of a round unspaced."""
    monkeypatch.setattr(event_trigger, "EVENT_SPACING", 0.0)
    event_trigger._MEMORY.clear()
    yield
    event_trigger._MEMORY.clear()


class BlockingStore:
    """Airflow 3.3.0/3.3.1's accessor: only the blocking ``get``/``set`` (a round trip to the supervisor)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        time.sleep(1.0)
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        time.sleep(1.0)
        self.data[key] = value


class FakeStore:
    """The asset state store's async accessor (Airflow 3.3.2's ``aget``/``aset``), as a dict."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        await asyncio.sleep(0)
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        await asyncio.sleep(0)
        self.data[key] = value
        self.writes += 1


def watcher(store: FakeStore | None = None, **kwargs: Any) -> AISearchJobEventTrigger:
    kwargs.setdefault("instance_id", "docs")
    t = AISearchJobEventTrigger(**{**FAST, **kwargs})
    t._log = logging.getLogger("aisearch.test.watcher")  # type: ignore[assignment]  # caplog sees it on 3.x too
    if store is not None:
        t.asset_state_store = store  # type: ignore[assignment]
    return t


def lists(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and len(r.segments) == 3]


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        await asyncio.sleep(0.01)


class Running:
    """A trigger's ``run()`` as a task, collecting its event payloads."""

    def __init__(self, trigger: AISearchJobEventTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0)  # let the poller close


async def rounds(emu: AISearchEmulator, count: int) -> None:
    """Wait until ``count`` more list requests were answered (every waiter got them)."""
    seen = len(lists(emu))
    await until(lambda: len(lists(emu)) >= seen + count)
    await asyncio.sleep(0.05)


def expected_payload(emu: AISearchEmulator, job_id: str) -> dict[str, Any]:
    from airflow_provider_aisearch.models.jobs import Job

    raw = next(j for j in emu.jobs("docs") if j["id"] == job_id)
    return {**Job.from_api(raw).to_dict(), "instance_id": "docs", "namespace": "default"}


# ---------------------------------------------------------------------------------------------
# Firing: one event per ended job, none for jobs that had ended before watching
# ---------------------------------------------------------------------------------------------


def test_one_event_per_ended_job_with_the_payload(emu: AISearchEmulator) -> None:
    emu.seed_jobs("docs", 3)
    running = emu.add_job("docs", duration=3600, source="user")

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher())
        await rounds(emu, 1)  # the baseline
        emu.finish_job("docs", running.id, "completed")
        later = emu.start_job("docs", source="schedule", duration=3600)
        await until(lambda: len(run.events) == 1)
        emu.finish_job("docs", later.id, "error_indexing")
        await until(lambda: len(run.events) == 2)
        await rounds(emu, 5)  # and nothing more
        await run.stop()
        return run.events

    events = asyncio.run(asyncio.wait_for(scenario(), 60))
    first, second = (j for j in reversed(emu.jobs("docs")) if j["id"] in {e["id"] for e in events})
    assert events == [expected_payload(emu, first["id"]), expected_payload(emu, second["id"])]
    assert [e["status"] for e in events] == ["succeeded", "failed"]
    assert [e["source"] for e in events] == ["user", "schedule"]
    assert emu.requests == lists(emu)  # list requests only: no GET per job
    assert all(r.query.get("page", "1") == "1" for r in lists(emu))  # page 1 only


def test_no_event_for_jobs_that_ended_before_watching(emu: AISearchEmulator) -> None:
    """A first deploy fires nothing for history, not even for a job that ended in the very same second."""
    emu.seed_jobs("docs", 30)
    just_now = emu.add_job("docs", duration=0, source="schedule")

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher())
        await rounds(emu, 6)
        await run.stop()
        return run.events

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == []
    assert just_now.ended_at is not None
    assert len(lists(emu)) >= 6


def test_a_job_listed_as_ended_late_still_fires_once() -> None:
    """Ties at one-second resolution and a job that shows up ended after a newer one: ids decide."""
    from datetime import datetime, timedelta, timezone

    from airflow_provider_aisearch.events.watermark import LATE_WINDOW, MAX_SEEN, Watermark
    from airflow_provider_aisearch.models.jobs import Job

    t0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=timezone.utc)

    def job(job_id: str, ended: datetime | None) -> Job:
        return Job(id=job_id, started_at=t0 - timedelta(minutes=5), ended_at=ended)

    mark = Watermark.baseline([job("old", t0), job("run", None)])
    assert mark.advance([job("old", t0), job("tie", t0)]) == [job("tie", t0)]  # same second, other id
    assert mark.advance([job("late", t0 + timedelta(seconds=30)), job("run", t0 - timedelta(minutes=2))]) == [
        job("run", t0 - timedelta(minutes=2)),  # ended before the newest seen, listed ended later: fires
        job("late", t0 + timedelta(seconds=30)),
    ]
    assert mark.advance([job("run", t0 - timedelta(minutes=2)), job("late", t0 + timedelta(seconds=30))]) == []
    assert mark.advance([job("ancient", t0 - LATE_WINDOW - timedelta(minutes=1))]) == []  # out of the window
    for i in range(MAX_SEEN + 50):  # bounded, whatever the number of jobs
        mark.advance([job(f"j{i}", t0 + timedelta(seconds=40 + i))])
    assert len(mark.seen) == MAX_SEEN
    assert Watermark.from_json(mark.to_json()) == mark


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "fired"),
    [
        ({}, ["user-ok", "schedule-ok", "user-failed", "schedule-cancelled"]),
        ({"source": "schedule"}, ["schedule-ok", "schedule-cancelled"]),
        ({"statuses": ["failed", "cancelled"]}, ["user-failed", "schedule-cancelled"]),
        ({"source": "user", "statuses": ["succeeded"]}, ["user-ok"]),
        (
            {"statuses": ["succeeded"], "success_end_reasons": ["aborted_by_policy"]},
            ["user-ok", "schedule-ok", "user-failed"],
        ),
    ],
)
def test_source_and_status_filters(emu: AISearchEmulator, filters: dict[str, Any], fired: list[str]) -> None:
    plan = {
        "user-ok": ("user", "completed"),
        "schedule-ok": ("schedule", "completed"),
        "user-failed": ("user", "aborted_by_policy"),
        "schedule-cancelled": ("schedule", "cancelled_by_user"),
    }
    jobs = {name: emu.add_job("docs", duration=3600, source=source) for name, (source, _) in plan.items()}

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher(**filters))
        await rounds(emu, 1)
        for name, (_, reason) in plan.items():
            emu.finish_job("docs", jobs[name].id, reason)
        await rounds(emu, 4)
        await run.stop()
        return run.events

    events = asyncio.run(asyncio.wait_for(scenario(), 60))
    names = {job.id: name for name, job in jobs.items()}
    assert sorted(names[e["id"]] for e in events) == sorted(fired)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source": "cron"}, "source"),
        ({"statuses": ["running"]}, "statuses"),
        ({"statuses": "running"}, "statuses"),
        ({"statuses": ["done"]}, "statuses"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": [5]}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"statuses": []}, "statuses"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"instance_id": "Docs!"}, "instance_id"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"success_end_reasons": ["x"], "failure_end_reasons": ["x"]}, "overlap"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        watcher(**kwargs)


def test_kwargs_are_json_safe_and_deterministic() -> None:
    import json

    a = watcher(statuses=["failed", "succeeded"], success_end_reasons=["b", "a"])
    b = watcher(statuses=["succeeded", "failed"], success_end_reasons=["a", "b"])
    assert json.loads(json.dumps(a.serialize())) == list(b.serialize())
    assert a.state_key == b.state_key
    assert watcher(source="user").state_key != a.state_key  # another filter: its own watermark
    _, kwargs = a.serialize()
    rebuilt = type(a)(**kwargs)  # the triggerer rebuilds it from these kwargs (timeout as a JSON list)
    assert rebuilt.serialize() == a.serialize() and rebuilt.state_key == a.state_key


def test_filters_read_like_the_list_operators() -> None:
    # The same JobFilter as AISearchListJobsOperator: one status or several, "" for any source.
    assert watcher(statuses="failed").statuses == ["failed"]
    assert watcher(source="").source is None
    assert watcher(statuses=["failed", "failed"]).statuses == ["failed"]


# ---------------------------------------------------------------------------------------------
# The watermark across a rebuilt trigger (triggerer restart or failover)
# ---------------------------------------------------------------------------------------------


def test_no_repeat_and_no_gap_after_a_rebuild_from_serialize(emu: AISearchEmulator, monkeypatch: Any) -> None:
    """Rebuilt from serialize() with the same asset state store in a new process: resumes, never repeats."""
    monkeypatch.setattr(event_trigger, "PERSIST_GRACE", 0.05)
    store = FakeStore()
    first = emu.add_job("docs", duration=3600)
    original = watcher(store)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        run = Running(original)
        await rounds(emu, 1)
        emu.finish_job("docs", first.id, "completed")
        await until(lambda: len(run.events) == 1)
        await until(lambda: first.id in (store.data.get(original.state_key) or {}).get("seen", {}))
        await run.stop()
        event_trigger._MEMORY.clear()  # another triggerer process: only the store remains
        gap = emu.add_job("docs", duration=0)  # ended while no trigger watched
        classpath, kwargs = original.serialize()
        assert classpath == "airflow_provider_aisearch.event_trigger.AISearchJobEventTrigger"
        rebuilt = Running(watcher(store, **kwargs))
        await rounds(emu, 1)
        third = emu.add_job("docs", duration=0)
        await until(lambda: len(rebuilt.events) == 2)
        await rounds(emu, 4)
        await rebuilt.stop()
        assert [e["id"] for e in rebuilt.events] == [gap.id, third.id]
        return run.events, rebuilt.events

    before, after = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["id"] for e in before] == [first.id]
    assert first.id not in {e["id"] for e in after}
    assert store.writes >= 2  # the baseline, then the watermark covering the event


def test_the_watermark_is_written_only_after_the_grace(emu: AISearchEmulator) -> None:
    """Events reach the database before the watermark that covers them: a crash repeats, never drops."""
    store = FakeStore()
    job = emu.add_job("docs", duration=3600)
    t = watcher(store)

    async def scenario() -> dict[str, Any]:
        run = Running(t)
        await rounds(emu, 1)
        baseline = dict(store.data[t.state_key])
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run.events) == 1)
        await rounds(emu, 3)  # well within PERSIST_GRACE (5 s)
        assert store.data[t.state_key] == baseline
        await run.stop()  # the triggerer stops: the pending write is dropped
        return baseline

    baseline = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert store.data[t.state_key] == baseline
    assert job.id not in baseline["seen"]


def test_in_memory_watermark_without_a_store(emu: AISearchEmulator) -> None:
    """Airflow 3.0-3.2: a trigger rebuilt in the same triggerer process resumes from memory."""
    job = emu.add_job("docs", duration=3600)

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher())
        await rounds(emu, 1)
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run.events) == 1)
        await run.stop()
        gap = emu.add_job("docs", duration=0)
        again = Running(watcher(**watcher().serialize()[1]))
        await until(lambda: len(again.events) == 1)
        await rounds(emu, 4)
        await again.stop()
        assert [e["id"] for e in again.events] == [gap.id]
        return run.events

    assert [e["id"] for e in asyncio.run(asyncio.wait_for(scenario(), 60))] == [job.id]


# ---------------------------------------------------------------------------------------------
# Sharing, errors, the event loop
# ---------------------------------------------------------------------------------------------


def test_event_and_job_triggers_share_one_list_request_per_interval(emu: AISearchEmulator) -> None:
    waited = [emu.add_job("docs", duration=3600) for _ in range(3)]

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        run = Running(watcher(poll_interval=0.3))
        jobs = [
            AISearchJobTrigger(
                instance_id="docs",
                job_id=j.id,
                poll_interval=0.3,
                retry_backoff=0.001,
                max_retries=1,
                timeout=[2.0, 5.0],
            )
            for j in waited
        ]

        async def first(t: AISearchJobTrigger) -> dict[str, Any]:
            return [e.payload async for e in t.run()][0]

        waits = asyncio.gather(*(first(t) for t in jobs))
        await rounds(emu, 2)
        (poller,) = active_pollers()
        assert len(poller.waiters) == 4
        for j in waited:
            emu.finish_job("docs", j.id, "completed")
        done = await asyncio.wait_for(waits, 30)
        await until(lambda: len(run.events) == 3)
        await rounds(emu, 2)
        await run.stop()
        return done, run.events

    done, events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["status"] for e in done] == ["done"] * 3
    assert sorted(e["id"] for e in events) == sorted(j.id for j in waited)
    sent = lists(emu)
    assert emu.requests == sent  # no GET per job: every trigger read the shared listing
    assert len({r.connection for r in sent}) == 1  # one client, one keep-alive connection
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert sum(gap < 0.2 for gap in gaps) <= 1, gaps  # one request per 0.3 s round, not one per trigger


def test_transient_errors_are_logged_and_polled_through(emu: AISearchEmulator, caplog: Any) -> None:
    job = emu.add_job("docs", duration=3600)

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher())
        await rounds(emu, 1)
        emu.inject(Fault.http(503), times=4)  # two whole rounds fail (one retry each)
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run.events) == 1)
        await rounds(emu, 2)
        await run.stop()
        return run.events

    with caplog.at_level(logging.WARNING):
        events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["id"] for e in events] == [job.id]
    assert sum(emu.fault_counts.values()) == 4
    assert [r.status for r in emu.requests].count(503) == 4
    assert sum("will poll again" in r.getMessage() for r in caplog.records) == 2


def test_the_event_loop_is_never_blocked(emu: AISearchEmulator) -> None:
    """Watchers polling with an interval of 0 (below validation), through errors, blocking stores, and a heartbeat."""
    emu.seed_jobs("docs", 40)
    emu.inject(Fault.http(503), times=30)
    stores = {None: BlockingStore(), "user": BlockingStore(), "schedule": BlockingStore()}  # read off the loop

    async def scenario() -> list[float]:
        ticks: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        beat = asyncio.ensure_future(heartbeat())
        runs = []
        for source in (None, "user", "schedule"):
            t = watcher(source=source)
            t.poll_interval = 0.0  # the worst case, past validation
            t.asset_state_store = stores[source]  # type: ignore[assignment]
            runs.append(Running(t))
        await asyncio.sleep(1.5)
        for run in runs:
            await run.stop()
        ticks.append(time.monotonic())
        done.set()
        await beat
        return ticks

    ticks = asyncio.run(asyncio.wait_for(scenario(), 30))
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 20, len(ticks)
    assert max(gaps) < 0.75, max(gaps)
    assert [r.status for r in emu.requests].count(503) == 30  # polled through every error
    assert len([r for r in lists(emu) if r.status == 200]) >= 10  # and kept polling, sharing one poller


def test_scheduled_syncs_fire_with_no_client_starting_jobs(make_emulator: Callable[..., Any], connect: Connect) -> None:
    """The emulator's own scheduled syncs (source "schedule") end jobs; the watcher fires for each."""
    emu = make_emulator(job_duration=0.2)
    connect(emu)
    seeded = {j.id for j in emu.seed_jobs("docs", 2)}
    emu.set_sync_interval("docs", 0.5)

    async def scenario() -> list[dict[str, Any]]:
        run = Running(watcher(source="schedule"))
        await until(lambda: len(run.events) == 2)
        await run.stop()
        return run.events

    events = asyncio.run(asyncio.wait_for(scenario(), 60))
    scheduled = [j for j in reversed(emu.jobs("docs")) if j["id"] not in seeded]  # oldest first
    assert {j["source"] for j in scheduled} == {"schedule"}
    assert [e["id"] for e in events] == [j["id"] for j in scheduled][:2]
    assert {e["status"] for e in events} == {"succeeded"}
    assert emu.requests == lists(emu)  # nothing but list requests: no client started a job


def test_events_of_one_round_are_spaced(emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several jobs ended in one round (e.g. after a failover): events come EVENT_SPACING apart, oldest end first."""
    monkeypatch.setattr(event_trigger, "EVENT_SPACING", 0.3)
    jobs = [emu.add_job("docs", duration=3600) for _ in range(3)]

    async def scenario() -> tuple[list[dict[str, Any]], list[float]]:
        stamps: list[float] = []
        events: list[dict[str, Any]] = []

        async def consume() -> None:
            async for event in watcher(poll_interval=1.0).run():
                stamps.append(time.monotonic())
                events.append(event.payload)

        task = asyncio.ensure_future(consume())
        await rounds(emu, 1)
        for job in jobs:  # well within the round's 1 s
            emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(events) == 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return events, stamps

    events, stamps = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(e["id"] for e in events) == sorted(j.id for j in jobs)
    assert len(lists(emu)) == 2  # the baseline, then one round for all three
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(stamps)), stamps


def test_a_store_for_several_assets_falls_back_to_memory(emu: AISearchEmulator, caplog: Any) -> None:
    """One trigger watching two assets has no single state store: it warns and keeps the watermark in memory."""

    class SeveralAssets(FakeStore):
        async def aget(self, key: str, default: Any = None) -> Any:
            raise ValueError("Task has 2 concrete inlets and outlets")

        async def aset(self, key: str, value: Any) -> None:
            raise ValueError("Task has 2 concrete inlets and outlets")

    job = emu.add_job("docs", duration=3600)
    t = watcher(SeveralAssets())

    async def scenario() -> list[dict[str, Any]]:
        run = Running(t)
        await rounds(emu, 1)
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(run.events) == 1)
        await rounds(emu, 2)
        await run.stop()
        return run.events

    with caplog.at_level(logging.WARNING):
        events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["id"] for e in events] == [job.id]
    assert job.id in event_trigger._MEMORY[t.memory_key]["seen"]
    assert any("in memory only" in r.getMessage() for r in caplog.records)
