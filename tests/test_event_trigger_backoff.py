"""The event watcher after a permanent error (issue 21 point 5): it backs off instead of ending, over real HTTP.

Airflow 3.3's triggerer re-creates an asset watcher's trigger that ended, so a watcher that ended on a
revoked token sent a 401 every few seconds, forever. :func:`triggerer` plays that part here: it runs
the trigger and re-creates it from ``serialize()`` whenever it ends. The back-off's timings are shrunk
(``FIRST_WAIT``, ``MAX_WAIT``); the assertions compare the gaps between the emulator's recorded
requests with them (lower bounds only: no timed assertion).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.events import event_trigger, watcher_backoff
from airflow_provider_aisearch.events.event_trigger import AISearchJobEventTrigger
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from airflow_provider_aisearch.waiting.polling import active_pollers
from tests.conftest import TOKEN
from tests.test_event_trigger import FakeStore, Running, lists, rounds, until, watcher

Connect = Callable[..., None]
FIRST = 0.1
CAP = 0.4
#: A sleep may end a little early (timer granularity): gaps are compared with this share of the wait.
SLACK = 0.9


@pytest.fixture(autouse=True)
def shrunk_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A new triggerer process per test, with the back-off scaled down (5 s -> 0.1 s, 60 s -> 0.4 s)."""
    monkeypatch.setattr(event_trigger, "EVENT_SPACING", 0.0)
    monkeypatch.setattr(watcher_backoff, "FIRST_WAIT", FIRST)
    monkeypatch.setattr(watcher_backoff, "MAX_WAIT", CAP)
    event_trigger._MEMORY.clear()
    watcher_backoff._MEMORY.clear()
    yield
    event_trigger._MEMORY.clear()
    watcher_backoff._MEMORY.clear()


def step(n: int) -> float:
    """The configured wait after the n-th failure in a row (1-based)."""
    return min(CAP, FIRST * 2 ** (n - 1))


class Triggerer(Running):
    """Runs a watcher as Airflow 3.3's triggerer does: when ``run()`` ends, the trigger is re-created."""

    def __init__(self, trigger: AISearchJobEventTrigger, store: FakeStore | None = None) -> None:
        self.store = store
        self.recreated = 0
        super().__init__(trigger)

    async def _consume(self) -> None:
        trigger = self.trigger
        while True:
            try:
                async for event in trigger.run():
                    self.events.append(event.payload)
            except Exception:
                pass
            await asyncio.sleep(0.05)  # the triggerer's next loop
            self.recreated += 1
            trigger = watcher(self.store, **trigger.serialize()[1])


def refused(emu: AISearchEmulator, status: int = 401) -> list[Any]:
    return [r for r in lists(emu) if r.status == status]


def assert_backed_off(times: list[float], first_failure: int = 1) -> None:
    """Each gap between consecutive refused requests is at least the configured step of that failure."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    wanted = [step(first_failure + i) for i in range(len(gaps))]
    assert all(g >= SLACK * w for g, w in zip(gaps, wanted, strict=True)), list(zip(gaps, wanted, strict=True))


def lines(caplog: Any, text: str, level: int = logging.ERROR) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def test_a_revoked_token_is_backed_off_and_the_job_fires_once_restored(emu: AISearchEmulator, caplog: Any) -> None:
    job = emu.add_job("docs", duration=3600)

    async def scenario() -> tuple[Triggerer, list[float]]:
        airflow = Triggerer(watcher())
        await rounds(emu, 1)  # the baseline
        emu.token_revoked = True
        await until(lambda: len(refused(emu)) >= 7)  # up to the cap, then three at the cap
        times = [r.at for r in refused(emu)][:7]
        emu.token_revoked = False
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(airflow.events) == 1)
        await airflow.stop()
        return airflow, times

    with caplog.at_level(logging.INFO):
        airflow, times = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["id"] for e in airflow.events] == [job.id]  # fired after the token works again
    assert airflow.recreated == 0  # it never ended: nothing for Airflow to re-create
    assert_backed_off(times)  # 0.1, 0.2, 0.4, 0.4, ...: at the cap, one request per MAX_WAIT
    failures = refused(emu)
    errors = lines(caplog, "Could not list jobs of instance 'docs'")
    assert len(errors) == len(failures)  # once per back-off step
    assert [e.split("(failure ")[1] for e in errors[:3]] == ["1 in a row)", "2 in a row)", "3 in a row)"]
    assert "HTTP 401" in errors[0] and "next try in 0.1 s" in errors[0]
    assert len(lines(caplog, "works again", logging.INFO)) == 1
    assert not lines(caplog, "Stopped watching")
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("kept_in", ["memory", "store"])
def test_a_re_created_watcher_goes_on_with_the_back_off(emu: AISearchEmulator, caplog: Any, kept_in: str) -> None:
    """
    Rebuilt in the same triggerer (memory): its first request waits out the step. Rebuilt in another one
    (only the asset state store): its first request goes at once, and the count goes on from the stored one.
    """
    store = FakeStore()
    original = watcher(store)

    async def scenario() -> list[float]:
        airflow = Triggerer(original, store)
        await rounds(emu, 1)
        emu.token_revoked = True
        await until(lambda: len(refused(emu)) >= 4)
        await asyncio.sleep(FIRST)  # the 4th failure is recorded (its step, CAP, is still running)
        await airflow.stop()  # e.g. a failover: the trigger is built again from its kwargs
        assert any(k.startswith("aisearch_jobs_backoff:") for k in store.data)
        if kept_in == "store":
            watcher_backoff._MEMORY.clear()  # another triggerer process: only the store remains
        rebuilt = Triggerer(watcher(store, **original.serialize()[1]), store)
        await until(lambda: len(refused(emu)) >= 7)
        await rebuilt.stop()
        return [r.at for r in refused(emu)][:7]

    with caplog.at_level(logging.INFO):
        times = asyncio.run(asyncio.wait_for(scenario(), 60))
    errors = lines(caplog, "Could not list jobs of instance 'docs'")
    assert [e.split("(failure ")[1] for e in errors[3:6]] == ["4 in a row)", "5 in a row)", "6 in a row)"]
    if kept_in == "memory":
        assert_backed_off(times)  # the rebuilt trigger's first request waited for the 4th failure's step
        assert len(lines(caplog, "before this trigger started", logging.INFO)) == 1
    else:
        assert_backed_off(times[:4])
        assert_backed_off(times[4:], first_failure=5)  # at the cap from its first failure on


def test_a_revoked_watcher_does_not_slow_a_working_credential(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    """The watcher's token is revoked; a sensor on the same instance with the Global API Key keeps its pace."""
    emu = make_emulator()
    connect(emu)
    connect(emu, "aisearch_key", global_key=True)
    job = emu.add_job("docs", duration=3600)

    async def scenario() -> tuple[list[float], list[Any]]:
        sensor = AISearchJobTrigger(
            instance_id="docs",
            job_id=job.id,
            aisearch_conn_id="aisearch_key",
            poll_interval=0.05,
            retry_backoff=0.001,
            max_retries=1,
            timeout=[2.0, 5.0],
        )
        waiting = asyncio.ensure_future(sensor.run().__anext__())
        airflow = Triggerer(watcher())
        await rounds(emu, 2)
        assert len(active_pollers()) == 2  # one per credential
        emu.token_revoked = True
        await until(lambda: len(refused(emu)) >= 5)
        times = [r.at for r in refused(emu)][:5]
        emu.finish_job("docs", job.id, "completed")
        event = await asyncio.wait_for(waiting, 30)
        assert event.payload["status"] == "done"
        await airflow.stop()
        return times, [r for r in lists(emu) if r.auth == "global_key"]

    times, sensor_polls = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert_backed_off(times)
    during = [r for r in sensor_polls if times[3] <= r.at <= times[4]]
    assert len(during) >= 3  # the sensor polled every 0.05 s while the watcher waited its 0.4 s step


def test_a_token_rotated_in_the_connection_is_picked_up(emu: AISearchEmulator, connect: Connect, caplog: Any) -> None:
    job = emu.add_job("docs", duration=3600)
    connect(emu, password="tok-revoked-1")  # the token was revoked before the watcher started

    async def scenario() -> list[dict[str, Any]]:
        airflow = Triggerer(watcher())
        await until(lambda: len(refused(emu)) >= 3)
        connect(emu, password=TOKEN)  # the user puts the new token into the connection
        await until(lambda: any(r.status == 200 for r in lists(emu)))  # the baseline, with the new token
        emu.finish_job("docs", job.id, "completed")
        await until(lambda: len(airflow.events) == 1)
        await airflow.stop()
        return airflow.events

    with caplog.at_level(logging.INFO):
        events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [e["id"] for e in events] == [job.id]
    assert_backed_off([r.at for r in refused(emu)])
    assert "tok-revoked-1" not in caplog.text and TOKEN not in caplog.text


PERMANENT = {
    "401": "token",
    "403": "forbidden",
    "404 instance": "instance",
    "400": "fault",
    "no connection": "connection",
}


@pytest.mark.parametrize("kind", sorted(PERMANENT))
def test_every_permanent_error_is_backed_off_and_logged_once_per_step(
    make_emulator: Callable[..., AISearchEmulator],
    connect: Connect,
    caplog: Any,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    how = PERMANENT[kind]
    emu = make_emulator(forbidden_tokens=["tok-forbidden-1"])
    if how == "token":
        connect(emu, password="tok-wrong-2")
    elif how == "forbidden":
        connect(emu, password="tok-forbidden-1")
    elif how != "connection":
        connect(emu)
    if how == "fault":
        emu.inject(Fault.http(400), times=50)
    instance = "missing" if how == "instance" else "docs"
    tries: list[float] = []
    if how == "connection":  # counted where the watcher reads it (no request can go without one)
        real = event_trigger.load_connection_info

        async def counted(conn_id: str) -> Any:
            tries.append(asyncio.get_running_loop().time())
            return await real(conn_id)

        monkeypatch.setattr(event_trigger, "load_connection_info", counted)

    async def scenario() -> Triggerer:
        airflow = Triggerer(watcher(instance_id=instance))
        await until(lambda: len(tries if how == "connection" else emu.requests) >= 5)
        await asyncio.sleep(FIRST)  # the 5th failure is logged (the next try is CAP later)
        await airflow.stop()
        return airflow

    with caplog.at_level(logging.INFO):
        airflow = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert airflow.recreated == 0 and airflow.events == []
    times = tries if how == "connection" else [r.at for r in emu.requests]
    assert_backed_off(times[:5])
    what = "Could not read connection 'aisearch_default'" if how == "connection" else f"instance {instance!r}"
    errors = [e for e in lines(caplog, "still watching: next try in") if what in e]
    assert len(errors) == len(times)  # one line per step, naming what failed
    assert "tok-" not in caplog.text
    assert active_pollers_after_run() == []


def active_pollers_after_run() -> list[Any]:
    async def check() -> list[Any]:
        return active_pollers()

    return asyncio.run(check())


def test_the_state_kept_is_json_and_a_stale_one_is_dropped() -> None:
    async def scenario() -> tuple[float, int, int]:
        store = FakeStore()
        backoff = watcher_backoff.WatcherBackoff.for_watcher("aisearch_jobs_watermark:abc")
        assert backoff.key == "aisearch_jobs_backoff:abc"
        assert [await backoff.failed(100.0, store) for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]
        json.dumps(store.data)
        stale = watcher_backoff.WatcherBackoff(backoff.key)
        stale.take_over()  # its next try was at 100.4 s epoch: long past
        await stale.failed(time.time(), store)  # reads the store too: as stale
        fresh = watcher_backoff.WatcherBackoff(backoff.key)
        await fresh.failed(time.time(), store)  # the state just written is not stale: the count goes on
        assert await backoff.succeeded(store) == 4
        return backoff.step, stale.failures, fresh.failures

    assert asyncio.run(scenario()) == (0.0, 1, 2)
