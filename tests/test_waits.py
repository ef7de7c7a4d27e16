"""Waiting on a job (issue 11): intervals, permanent errors, soft_fail/never_fail, shared-poller reporting.

Over real HTTP against the emulator; each test asserts on the outcome and on the emulator's request log.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import pickle
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RateLimit
from airflow_provider_aisearch.exceptions import AISearchError, AISearchJobFailedError, AISearchResponseError
from airflow_provider_aisearch.sensors import AISearchJobSensor
from airflow_provider_aisearch.triggers import AISearchJobTrigger, error_from_event
from airflow_provider_aisearch.waiting.polling import MIN_ROUND_GAP, format_seconds

Connect = Callable[..., None]
FAST = {"retry_backoff": 0.001, "timeout": (2.0, 5.0), "max_retries": 1}


def make_sensor(**kwargs: Any) -> AISearchJobSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("log_tail", 0)
    return AISearchJobSensor(**kwargs)


def trigger(job_id: str, **kwargs: Any) -> AISearchJobTrigger:
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("retry_backoff", 0.001)
    kwargs.setdefault("max_retries", 1)
    return AISearchJobTrigger(job_id=job_id, **kwargs)


async def first_event(t: AISearchJobTrigger) -> dict[str, Any]:
    events = [event.payload async for event in t.run()]
    assert len(events) == 1, events  # exactly one event per run
    return events[0]


def run_all(triggers: list[AISearchJobTrigger], limit: float = 30) -> list[dict[str, Any]]:
    async def gather() -> list[dict[str, Any]]:
        events = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), limit)
        await asyncio.sleep(0)  # let the poller finish closing
        return list(events)

    return asyncio.run(gather())


def lists(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and len(r.segments) == 3]


def reschedule_context(mocker: Any) -> Any:
    """A context for ``mode="reschedule"`` without a metadata database (Airflow 3.3 and 2.11)."""
    ti = mocker.MagicMock()
    ti.get_first_reschedule_date.return_value = None  # Airflow 3
    ti.max_tries = 0
    try:  # Airflow 2 reads the first try's start date from the database
        base: Any = importlib.import_module("airflow.sensors.base")
    except ImportError:  # pragma: no cover - absent on some Airflow 3 builds
        base = None
    if base is not None and hasattr(base, "_orig_start_date"):
        mocker.patch.object(base, "_orig_start_date", return_value=None)
    if base is not None and hasattr(base, "_is_metadatabase_mysql"):
        mocker.patch.object(base, "_is_metadatabase_mysql", return_value=False)
    return {"ti": ti}


def run_sensor(sensor: AISearchJobSensor, mode: str, mocker: Any) -> Any:
    """Run the sensor's ``execute`` the way ``mode`` does (``deferrable``: the check before deferring)."""
    if mode == "reschedule":
        sensor.mode = "reschedule"
        return sensor.execute(reschedule_context(mocker))
    return sensor.execute({})


MODES = ["poke", "reschedule", "deferrable"]


# ---------------------------------------------------------------------------------------------
# Point 2: no interval can starve the triggerer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, -1, timedelta(0), timedelta(seconds=-5), float("nan"), float("inf"), True])
def test_poke_interval_must_be_positive(value: Any) -> None:
    with pytest.raises(ValueError, match="poke_interval"):
        make_sensor(job_id="j", poke_interval=value)


def test_poke_interval_accepts_seconds_and_timedelta() -> None:
    assert make_sensor(job_id="j", poke_interval=timedelta(seconds=5)).poke_interval == 5.0
    assert make_sensor(job_id="j", poke_interval=0.5).poke_interval == 0.5


@pytest.mark.parametrize("value", [0, -0.5, float("nan"), "10", None])
def test_trigger_poll_interval_must_be_positive(value: Any) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        trigger("j", poll_interval=value)


@pytest.mark.parametrize(("share", "count"), [(True, 20), (False, 5)])
def test_tiny_intervals_never_starve_the_event_loop(emu: AISearchEmulator, share: bool, count: int) -> None:
    """20 triggers polling with an interval of 0 (below validation) beside a heartbeat: it keeps ticking."""
    jobs = [emu.add_job("docs", duration=3600) for _ in range(count)]

    async def scenario() -> tuple[list[dict[str, Any]], list[float]]:
        ticks: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        beat = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0)
        deadline = time.time() + 1.5  # a starved loop still ends: each trigger times out at its deadline
        triggers = []
        for job in jobs:
            t = trigger(job.id, deadline=deadline, share_polling=share)
            t.poll_interval = 0.0  # the worst case, past validation
            triggers.append(t)
        events = await asyncio.gather(*(first_event(t) for t in triggers))
        ticks.append(time.monotonic())  # the gap up to the end counts too
        done.set()
        await beat
        return list(events), ticks

    events, ticks = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [e["status"] for e in events] == ["timeout"] * count
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 20, len(ticks)  # ~270 measured; 4 with a starved loop
    assert max(gaps) < 0.75, max(gaps)  # 0.04 s measured; starved, one gap is the whole 1.5 s wait
    if share:
        # Rounds never come closer than MIN_ROUND_GAP, whatever the interval.
        sent = [r.at for r in lists(emu)]
        assert len(sent) <= (sent[-1] - sent[0]) / MIN_ROUND_GAP + 2
        assert emu.requests == lists(emu)


# ---------------------------------------------------------------------------------------------
# Point 3: permanent errors end a wait; transient ones are polled through
# ---------------------------------------------------------------------------------------------

PERMANENT = {
    "400": Fault.http(400, {"success": False, "errors": [{"code": 7001, "message": "bad request"}], "result": None}),
    "3xx": Fault.http(301, headers={"Location": "http://127.0.0.1:9/elsewhere"}),
    "405": Fault.http(405),
    "409": Fault.http(409),
    "422": Fault.http(422),
}
TRANSIENT = {
    "503": Fault.http(503),
    "429": Fault.rate_limited(retry_after=0),
    "timeout": Fault("delay", delay=1.0),
    "reset": Fault("reset_before"),
    "malformed": Fault.html(200),
}


def break_connection(emu: AISearchEmulator, connect: Connect, kind: str) -> None:
    """``fatal``: a URL no transport can send to; ``account``: no account id. Neither reaches the server."""
    if kind == "fatal":
        connect(emu, host=emu.url.replace("http://", "ftp://"))
    else:
        connect(emu, account_id=None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(PERMANENT))
def test_permanent_http_error_fails_the_sensor_at_once(
    emu: AISearchEmulator, mocker: Any, mode: str, kind: str
) -> None:
    job = emu.add_job("docs", duration=3600)
    emu.inject(PERMANENT[kind], times=50)  # polling through it would send dozens
    sensor = make_sensor(job_id=job.id, deferrable=mode == "deferrable")
    with pytest.raises(AISearchError) as info:
        run_sensor(sensor, mode, mocker)
    assert not isinstance(info.value, AISearchJobFailedError)
    assert info.value.transient is False
    assert info.value.status_code == int(PERMANENT[kind].status)
    assert f"HTTP {PERMANENT[kind].status}" in str(info.value)
    assert len(emu.requests) == 1  # one request, no retry, no second poke


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["fatal", "account"])
def test_permanent_local_failure_fails_the_sensor_at_once(
    emu: AISearchEmulator, connect: Connect, mocker: Any, mode: str, kind: str
) -> None:
    break_connection(emu, connect, kind)
    sensor = make_sensor(job_id="j1", deferrable=mode == "deferrable")
    with pytest.raises(AISearchError, match="could not be sent" if kind == "fatal" else "account") as info:
        run_sensor(sensor, mode, mocker)
    assert info.value.transient is False
    assert "attempts" not in str(info.value)  # not retried
    assert emu.requests == []


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("kind", sorted(PERMANENT))
def test_permanent_http_error_ends_the_trigger_at_once(emu: AISearchEmulator, share: bool, kind: str) -> None:
    job = emu.add_job("docs", duration=3600)
    emu.inject(PERMANENT[kind], times=50)
    (event,) = run_all([trigger(job.id, share_polling=share, deadline=time.time() + 20)])
    assert event["status"] == "error"
    assert event["error"]["transient"] is False
    assert len(emu.requests) == 1
    with pytest.raises(AISearchError) as info:
        make_sensor(job_id=job.id, deferrable=True).execute_complete({}, event)
    assert info.value.status_code == int(PERMANENT[kind].status)
    assert info.value.transient is False


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("kind", ["fatal", "account"])
def test_permanent_local_failure_ends_the_trigger_at_once(
    emu: AISearchEmulator, connect: Connect, share: bool, kind: str
) -> None:
    break_connection(emu, connect, kind)
    (event,) = run_all([trigger("j1", share_polling=share, deadline=time.time() + 20)])
    assert event["status"] == "error"
    assert event["error"]["transient"] is False
    assert emu.requests == []


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_transient_error_is_polled_through_in_poke_mode(emu: AISearchEmulator, kind: str) -> None:
    job = emu.add_job("docs", duration=1.0)
    emu.inject(TRANSIENT[kind], times=2)  # the first poke fails after its one retry
    sensor = make_sensor(job_id=job.id, poke_interval=0.1, hook_params={**FAST, "timeout": (2.0, 0.4)})
    assert sensor.execute({})["status"] == "succeeded"
    assert emu.fault_counts[TRANSIENT[kind].kind] == 2
    assert len(emu.requests) >= 3  # 2 faulted, then polls until the job ended


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_transient_error_is_polled_through_in_reschedule_mode(emu: AISearchEmulator, mocker: Any, kind: str) -> None:
    from airflow.exceptions import AirflowRescheduleException

    job = emu.add_job("docs", duration=3600)
    emu.inject(TRANSIENT[kind], times=2)  # the first poke fails after its one retry
    sensor = make_sensor(job_id=job.id, hook_params={**FAST, "timeout": (2.0, 0.4)})
    with pytest.raises(AirflowRescheduleException):  # inconclusive: poke again later
        run_sensor(sensor, "reschedule", mocker)
    assert len(emu.requests) == 2
    with pytest.raises(AirflowRescheduleException):  # the job still runs
        run_sensor(sensor, "reschedule", mocker)
    emu.finish_job("docs", job.id, "completed")
    assert run_sensor(sensor, "reschedule", mocker)["status"] == "succeeded"
    assert len(emu.requests) == 4  # 2 faulted + 2 answered polls
    assert emu.fault_counts[TRANSIENT[kind].kind] == 2


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_transient_error_is_polled_through_by_the_trigger(emu: AISearchEmulator, share: bool, kind: str) -> None:
    job = emu.add_job("docs", duration=0.8)
    emu.inject(TRANSIENT[kind], times=4)  # two whole polls fail (one retry each)
    (event,) = run_all([trigger(job.id, share_polling=share, timeout=(2.0, 0.4))])
    assert event["status"] == "done"
    assert event["job"]["status"] == "succeeded"
    assert emu.fault_counts[TRANSIENT[kind].kind] == 4
    assert len(emu.requests) >= 5


def test_transient_flag_survives_pickling_and_events() -> None:
    for transient in (True, False):
        error = AISearchError("x (connection 'c')", status_code=503, transient=transient)
        assert pickle.loads(pickle.dumps(error)).transient is transient
    assert AISearchResponseError("bad envelope").transient is True  # a malformed answer: poll again
    assert AISearchError("no account_id").transient is False
    failed = AISearchJobFailedError("job 'j' failed")
    event = {"status": "error", "message": str(failed), "error": {"type": "AISearchJobFailedError", "errors": []}}
    rebuilt = error_from_event(event)
    assert type(rebuilt) is AISearchJobFailedError
    assert str(rebuilt) == str(failed)
    assert type(pickle.loads(pickle.dumps(failed))) is AISearchJobFailedError


# ---------------------------------------------------------------------------------------------
# AISearchJobFailedError, soft_fail and never_fail in every mode
# ---------------------------------------------------------------------------------------------


def test_failed_job_error_lets_airflow_retries_apply(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0, end_reason="error")
    with pytest.raises(AISearchJobFailedError) as info:
        make_sensor(job_id=job.id).execute({})
    assert isinstance(info.value, AirflowException)
    assert not isinstance(info.value, AirflowFailException)  # AirflowFailException skips the retries


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_failed_job_is_skipped_with_soft_fail_or_never_fail(
    emu: AISearchEmulator, mocker: Any, mode: str, flag: str
) -> None:
    job = emu.add_job("docs", duration=0, end_reason="error")
    sensor = make_sensor(job_id=job.id, deferrable=mode == "deferrable", **{flag: True})
    with pytest.raises(AirflowSkipException) as info:
        run_sensor(sensor, mode, mocker)
    assert isinstance(info.value.__cause__, AISearchJobFailedError)
    assert len(emu.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_permanent_error_fails_with_soft_fail_and_is_skipped_with_never_fail(
    emu: AISearchEmulator, mocker: Any, mode: str, flag: str
) -> None:
    emu.inject(PERMANENT["400"], times=50)
    sensor = make_sensor(job_id="j1", deferrable=mode == "deferrable", **{flag: True})
    expected = AISearchError if flag == "soft_fail" else AirflowSkipException
    with pytest.raises(expected):
        run_sensor(sensor, mode, mocker)
    assert len(emu.requests) == 1


def _events(emu: AISearchEmulator) -> dict[str, dict[str, Any]]:
    """One event of each kind, from real trigger runs."""
    failed = emu.add_job("docs", duration=0, end_reason="error")
    running = emu.add_job("docs", duration=3600)
    (done,) = run_all([trigger(failed.id)])
    (timeout,) = run_all([trigger(running.id, deadline=time.time() + 0.2)])
    emu.inject(PERMANENT["400"], times=1)
    (error,) = run_all([trigger(running.id)])
    assert [done["status"], timeout["status"], error["status"]] == ["done", "timeout", "error"]
    return {"failed": done, "timeout": timeout, "error": error}


@pytest.mark.parametrize("flag", [None, "soft_fail", "never_fail"])
def test_resume_after_the_trigger_applies_soft_fail_and_never_fail(emu: AISearchEmulator, flag: str | None) -> None:
    events = _events(emu)
    sensor = make_sensor(job_id="j", deferrable=True, **({flag: True} if flag else {}))
    expected: dict[str, type[BaseException]] = {
        "failed": AISearchJobFailedError,
        "timeout": AirflowSensorTimeout,
        "error": AISearchError,
    }
    if flag == "soft_fail":  # a failed job and a timeout are skipped; an API error still fails (as when poking)
        expected.update(failed=AirflowSkipException, timeout=AirflowSkipException)
    if flag == "never_fail":  # every failure is skipped (also on Airflow 2, whose resume_execution ignores it)
        expected = dict.fromkeys(expected, AirflowSkipException)
    for kind, event in events.items():
        with pytest.raises(expected[kind]) as info:
            sensor.resume_execution("execute_complete", {"event": event}, {})
        if expected[kind] is not AirflowSkipException:
            assert not isinstance(info.value, AirflowSkipException), kind


def test_deferrable_sensor_still_defers_on_a_transient_error(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    emu.inject(Fault.http(503), times=2)
    with pytest.raises(TaskDeferred):
        make_sensor(job_id=job.id, deferrable=True, never_fail=True).execute({})
    assert [r.status for r in emu.requests] == [503, 503]


# ---------------------------------------------------------------------------------------------
# Point 6: shared polling reports to each waiter
# ---------------------------------------------------------------------------------------------


def own_log(t: AISearchJobTrigger, name: str) -> AISearchJobTrigger:
    t._log = logging.getLogger(f"aisearch.test.waiter.{name}")  # type: ignore[assignment]
    return t


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"aisearch.test.waiter.{name}"]


def test_shared_rounds_report_to_each_waiter_under_its_own_connection_id(
    emu: AISearchEmulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    connect(emu, "aisearch_a")
    connect(emu, "aisearch_b")  # same credentials: one poller, opened with the first waiter's connection
    short = emu.add_job("docs", duration=0.3)
    long = emu.add_job("docs", duration=3600)
    caplog.set_level(logging.INFO)

    async def scenario() -> list[dict[str, Any]]:
        a = asyncio.ensure_future(first_event(own_log(trigger(short.id, aisearch_conn_id="aisearch_a"), "a")))
        await asyncio.sleep(0.1)  # `a` opened the poller
        b = asyncio.ensure_future(first_event(own_log(trigger(long.id, aisearch_conn_id="aisearch_b"), "b")))
        first = await a  # `a` is done; `b` goes on with the poller `a` opened
        emu.inject(Fault.http(503), method="GET", times=2)  # one round fails after its retry
        emu.inject(PERMANENT["400"], method="GET", times=1)  # the next one ends the wait
        return [first, await b]

    events = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert [e["status"] for e in events] == ["done", "error"]
    assert emu.connections == 1  # one shared poller
    assert "'aisearch_b'" in events[1]["message"]
    assert "aisearch_a" not in events[1]["message"]
    a_lines, b_lines = lines(caplog, "a"), lines(caplog, "b")
    assert any(line.startswith(f"Waiting for job {short.id}") for line in a_lines)
    assert any(line.startswith(f"Waiting for job {long.id}") for line in b_lines)
    # The failed round's retry and error went to b's log (naming b's connection), none to a's after it ended.
    assert any("retrying in" in line and "'aisearch_b'" in line for line in b_lines), b_lines
    assert any(line.startswith(f"Could not poll job {long.id}") for line in b_lines), b_lines
    assert any(line.startswith(f"Stopped waiting for job {long.id}") for line in b_lines), b_lines
    assert not any("aisearch_a" in line for line in b_lines)
    assert not any("HTTP" in line or "retrying" in line for line in a_lines), a_lines
    assert not [r for r in caplog.records if r.name == "airflow_provider_aisearch.waiting.polling"]
    assert [r.status for r in emu.requests][-3:] == [503, 503, 400]


def test_a_slowed_shared_waiter_logs_the_rate_limit_once_per_real_change(
    emu: AISearchEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """40 requests per 2 s: once the budget runs low, the shared rounds slow down; the waiter's log says so."""
    emu.rate_limit = RateLimit(limit=40, window=2.0, lockout=2.0)
    job = emu.add_job("docs", duration=1.6)
    caplog.set_level(logging.INFO)
    (event,) = run_all([own_log(trigger(job.id, poll_interval=0.02), "slow")], limit=10)
    assert event["status"] == "done"
    assert emu.rate_limit.refused == 0
    slowed = [line for line in lines(caplog, "slow") if "instead of" in line]
    assert slowed, lines(caplog, "slow")
    for line in slowed:
        match = re.search(r"every (\S+) s instead of (\S+) s: (.+)", line)
        assert match, line
        assert match[1] != match[2], line  # never "every 1 s instead of 1 s"
        assert match[2] == "0.02"
        assert "remaining" in match[3] or "requests" in match[3], line  # and why
    assert len(slowed) <= 6, slowed  # only real changes, not one line per round


def test_format_seconds_keeps_sensible_precision() -> None:
    assert [format_seconds(s) for s in (0.02, 0.25, 1.0, 1.24, 9.96, 12.4, 300)] == [
        "0.02",
        "0.25",
        "1",
        "1.2",
        "10",
        "12",
        "300",
    ]


def test_waiters_with_different_intervals_share_rounds(emu: AISearchEmulator) -> None:
    """A 0.2 s and a 0.5 s waiter on one poller cost the 0.2 s waiter's rounds, not the sum of both."""
    fast = emu.add_job("docs", duration=3600)
    slow = emu.add_job("docs", duration=3600)
    deadline = time.time() + 3.0
    events = run_all(
        [trigger(fast.id, poll_interval=0.2, deadline=deadline), trigger(slow.id, poll_interval=0.5, deadline=deadline)]
    )
    assert [e["status"] for e in events] == ["timeout", "timeout"]
    sent = [r.at for r in lists(emu)]
    assert emu.requests == lists(emu)
    span = sent[-1] - sent[0]
    # Unshared rounds: ~6 per second (1.2x the fast rate); shared: at most one per 0.2 s (+ the deadline round).
    assert len(sent) <= span / 0.2 + 2, (len(sent), span)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    # No extra round squeezed between two of the fast waiter's (about 6 of them without sharing).
    assert sum(gap < 0.15 for gap in gaps) <= 2, gaps
