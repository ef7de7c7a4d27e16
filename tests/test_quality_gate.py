"""The item quality gate (max_item_errors, degraded stats, wait_for_items) on the sensor and the create operator.

Every mode, over real HTTP against the emulator: the sensor poking, the sensor deferred (its trigger
run in the test's event loop, rebuilt from ``serialize()`` as the triggerer does, then
``execute_complete``), the create operator waiting in the worker, and deferred.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RateLimit
from airflow_provider_aisearch.exceptions import (
    AISearchError,
    AISearchIndexQualityError,
    AISearchJobFailedError,
    AISearchJobTimeoutError,
)
from airflow_provider_aisearch.models.instances import InstanceStats
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from airflow_provider_aisearch.waiting.quality import FAILED_ITEMS_LOGGED, ItemGate
from tests.operator_helpers import FAST, FakeTI, create_op, ctx, make_sensor

MODES = ["poke", "deferred", "create", "create_deferred"]
XCOM_KEYS = {"completed", "queued", "running", "error", "skipped", "outdated", "last_activity", "degraded"}


@pytest.fixture
def setup(make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]) -> Any:
    """An emulator with instance ``docs`` of ``items`` items, ``errors`` (and ``skipped``) of which fail."""

    def make(items: int = 20, errors: float = 0.0, skipped: float = 0.0, **kwargs: Any) -> AISearchEmulator:
        emu = make_emulator(instances=[], **kwargs)
        emu.add_instance("docs", items=items)
        emu.set_item_errors(errors)
        if skipped:
            emu.set_item_skipped(skipped)
        connect(emu)
        return emu

    return make


def run_trigger(trigger: AISearchJobTrigger, limit: float = 30) -> dict[str, Any]:
    """Rebuild the trigger from its serialized form (as the triggerer does) and run it to its one event."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_aisearch.triggers.AISearchJobTrigger"
    rebuilt = AISearchJobTrigger(**json.loads(json.dumps(kwargs)))

    async def collect() -> list[Any]:
        return [event async for event in rebuilt.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), limit))
    payload: dict[str, Any] = event.payload
    return payload


def wait(
    emu: AISearchEmulator,
    mode: str,
    *,
    duration: float = 1.0,
    timeout: float | None = 30,
    end_reason: str = "completed",
    **kwargs: Any,
) -> Any:
    """Run one wait on a job of ``duration`` seconds in ``mode``; its XCom value (or what it raised)."""
    if mode in ("poke", "deferred"):
        job = emu.add_job("docs", duration=duration, end_reason=end_reason)
        sensor = make_sensor(job_id=job.id, deferrable=mode == "deferred", timeout=timeout, **kwargs)
        if mode == "poke":
            return sensor.execute({})
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        # As Airflow resumes it (soft_fail and never_fail apply there).
        return sensor.resume_execution("execute_complete", {"event": run_trigger(info.value.trigger)}, {})
    emu.job_duration, emu.end_reason = duration, end_reason
    op = create_op(wait_for_completion=True, deferrable=mode == "create_deferred", timeout=timeout, **kwargs)
    if mode == "create":
        return op.execute(ctx(ti=FakeTI()))
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti=FakeTI()))
    return op.execute_complete(ctx(), run_trigger(info.value.trigger), **(info.value.kwargs or {}))


def stats_reads(emu: AISearchEmulator) -> list[Any]:
    """GETs of the stats (by path: a request answered by an injected fault has no route)."""
    return [r for r in emu.requests if r.path.endswith("/stats")]


def item_lists(emu: AISearchEmulator) -> list[Any]:
    return emu.requests_to(route="items")


def logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    return caplog.text + capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Default: no gate, no request
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_default_reads_no_stats(setup: Any, mode: str) -> None:
    emu = setup(errors=0.5)
    result = wait(emu, mode)
    assert result["status"] == "succeeded"
    assert "items" not in result  # the XCom is as before
    assert [r.route for r in emu.requests if r.route not in ("jobs",)] == []  # no stats, no items: zero new requests


# ---------------------------------------------------------------------------------------------
# The gate: by count and by fraction, in every mode
# ---------------------------------------------------------------------------------------------

# 20 items: 10 skipped, 2 in error, 8 completed. Processed = 20, so the share in error is 10 %
# (not 2 / 10 = 20 %, as it would be without the skipped ones).
# Exactly at the limit passes ("more than"): 2 errors with max 2, 10 % with max 0.10.
GATES = [(2, True), (1, False), (0.15, True), (0.10, True), (0.09, False)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("limit", "passes"), GATES, ids=["count-2-pass", "count-1-fail", "15pc-pass", "10pc-at-limit-pass", "9pc-fail"]
)
def test_gate_by_count_and_fraction(setup: Any, mode: str, limit: float, passes: bool) -> None:
    emu = setup(items=20, errors=0.1, skipped=0.5)
    if passes:
        result = wait(emu, mode, max_item_errors=limit)
        assert result["status"] == "succeeded"
        items = result["items"]
        assert set(items) == XCOM_KEYS  # the XCom shape: counts, last_activity, degraded; nothing else
        assert json.loads(json.dumps(items)) == items
        assert (items["completed"], items["error"], items["skipped"]) == (8, 2, 10)
        assert (items["queued"], items["running"], items["outdated"], items["degraded"]) == (0, 0, 0, False)
        assert datetime.fromisoformat(items["last_activity"]).tzinfo is not None
        assert item_lists(emu) == []  # nothing failed: no items listed
    else:
        with pytest.raises(AISearchIndexQualityError, match="item quality gate failed") as info:
            wait(emu, mode, max_item_errors=limit)
        assert info.value.max_item_errors == limit
        assert isinstance(info.value.stats, InstanceStats) and info.value.stats.error == 2
        expected = (
            "2 of 20 processed item(s) in error (10.0%)" if isinstance(limit, float) else "2 item(s) in error > 1"
        )
        assert expected in str(info.value)
        (listing,) = item_lists(emu)
        assert listing.query["status"] == "error"
    assert len(stats_reads(emu)) == 1  # read once, after the job ended (in the worker or in the triggerer)
    assert stats_reads(emu)[0].at >= max(r.at for r in emu.requests_to(route="jobs"))


def test_the_gate_reads_the_stats_in_the_triggerer_when_deferred(setup: Any) -> None:
    emu = setup(items=20, errors=0.1)
    job = emu.add_job("docs", duration=1.0)
    with pytest.raises(TaskDeferred) as info:
        make_sensor(job_id=job.id, deferrable=True, max_item_errors=5).execute({})
    worker_requests = len(emu.requests)
    event = run_trigger(info.value.trigger)
    assert event["status"] == "done"
    assert event["items"]["error"] == 2  # the trigger read them (with the async client) and sent them
    assert len(stats_reads(emu)) == 1
    assert emu.requests.index(stats_reads(emu)[0]) >= worker_requests
    sensor = make_sensor(job_id=job.id, deferrable=True, max_item_errors=5)
    before = len(emu.requests)
    assert sensor.execute_complete({}, event)["items"] == event["items"]
    assert len(emu.requests) == before  # execute_complete sends nothing when the gate passes


@pytest.mark.parametrize("mode", ["deferred", "create_deferred"])
def test_deferred_the_triggerer_waits_for_the_items_and_the_worker_sends_nothing(setup: Any, mode: str) -> None:
    """Both deferrable tasks: the item wait runs in the trigger; ``execute_complete`` only judges the event."""
    emu = setup(items=20, errors=0.1)
    emu.set_item_lag(1.0)
    gate = {"max_item_errors": 2, "wait_for_items": True}
    task: Any
    if mode == "deferred":
        job = emu.add_job("docs", duration=0.5)
        task = make_sensor(job_id=job.id, deferrable=True, **gate)
        with pytest.raises(TaskDeferred) as info:
            task.execute({})
    else:
        emu.job_duration = 0.5
        task = create_op(wait_for_completion=True, deferrable=True, timeout=30, **gate)
        with pytest.raises(TaskDeferred) as info:
            task.execute(ctx(ti=FakeTI()))
    assert stats_reads(emu) == []  # nothing read in the worker before deferring
    event = run_trigger(info.value.trigger)
    assert event["status"] == "done"
    assert (event["items"]["queued"], event["items"]["running"], event["items"]["error"]) == (0, 0, 2)
    assert len(stats_reads(emu)) >= 2  # the trigger read them again while items were in flight
    before = len(emu.requests)
    if mode == "deferred":
        result = task.execute_complete({}, event)
    else:
        result = task.execute_complete(ctx(), event, **(info.value.kwargs or {}))
    assert result["items"] == event["items"]
    assert len(emu.requests) == before  # the worker sent nothing after the event


def test_an_event_without_stats_reads_them_once_in_execute_complete(setup: Any) -> None:
    """A trigger serialized before the gate existed (no read_item_stats kwarg) still resumes a gated task."""
    emu = setup(items=20, errors=0.1)
    job = emu.add_job("docs", duration=0.5)
    old = AISearchJobTrigger(instance_id="docs", job_id=job.id, poll_interval=0.05, retry_backoff=0.001)
    _, kwargs = old.serialize()
    for key in ("read_item_stats", "wait_for_items"):
        kwargs.pop(key)  # what an older provider version serialized
    event = run_trigger(AISearchJobTrigger(**kwargs))
    assert "items" not in event
    assert stats_reads(emu) == []
    result = make_sensor(job_id=job.id, max_item_errors=5).execute_complete({}, event)
    assert result["items"]["error"] == 2
    assert len(stats_reads(emu)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_job_reads_no_stats(setup: Any, mode: str) -> None:
    emu = setup(items=20, errors=0.5)
    with pytest.raises(AISearchJobFailedError):
        wait(emu, mode, end_reason="error_source_unreachable", max_item_errors=0, log_tail=0)
    assert stats_reads(emu) == []
    assert item_lists(emu) == []


# ---------------------------------------------------------------------------------------------
# The failed items in the task log
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["poke", "create_deferred"])
def test_a_failed_gate_logs_at_most_20_failed_items_from_one_page(
    setup: Any, mode: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    emu = setup(items=100, errors=0.5)
    with pytest.raises(AISearchIndexQualityError, match=r"50 item\(s\) in error > 0"):
        wait(emu, mode, max_item_errors=0)
    out = logged(caplog, capsys)
    failed = [i for i in emu.items("docs") if i["status"] == "error"]
    assert len(failed) == 50
    shown = [i for i in failed if f"{i['key']}: {i['error']}" in out]
    assert len(shown) == FAILED_ITEMS_LOGGED == 20  # keys and errors, 20 of the 50
    assert "Failed items (20 of 50)" in out
    assert "Failed to embed" in out or "Could not parse PDF" in out
    (listing,) = item_lists(emu)  # one page of 20; it stopped paging there
    assert listing.query == {"page": "1", "per_page": "20", "status": "error"}


def test_the_error_breakdowns_are_capped_in_the_log(
    setup: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    emu = setup(items=20, errors=0.5)
    long_error = "Could not parse PDF: " + "x" * 5000
    embed = {long_error: 1} | {f"error kind {n:02d}": n for n in range(30)}
    stats = {"completed": 10, "error": 10, "skipped": 0, "queued": 0, "running": 0, "outdated": 0}
    body = {"success": True, "errors": [], "result": {**stats, "file_embed_errors": embed, "index_source_errors": {}}}
    emu.inject(Fault.http(200, body), method="GET", path="/instances/docs/stats$", times=5)
    with pytest.raises(AISearchIndexQualityError):
        wait(emu, "poke", max_item_errors=0)
    out = logged(caplog, capsys)
    (line,) = [line for line in out.splitlines() if "file_embed_errors:" in line]
    assert "error kind 18: 18" in line and "error kind 19" not in line  # the first 20 entries
    assert "Could not parse PDF: xxx" in line  # cut short
    assert "and 11 more" in line
    assert "x" * 201 not in out and long_error not in out
    assert len(line) < 2000
    assert len(stats_reads(emu)) == 1


def test_failed_items_cannot_be_listed_on_legacy_paths_but_the_gate_still_fails(
    setup: Any, connect: Callable[..., None], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    emu = setup(items=20, errors=0.5)
    with pytest.raises(AISearchIndexQualityError):
        wait(emu, "poke", max_item_errors=0, namespace=None)
    assert [r.route for r in emu.requests if r.route != "legacy_jobs"] == ["legacy_instance_stats"]
    assert "Could not list the failed items" in logged(caplog, capsys)


# ---------------------------------------------------------------------------------------------
# degraded: never silent
# ---------------------------------------------------------------------------------------------

DEGRADED = [
    ({"read_item_stats": True}, True),  # no gate: warn, pass
    ({"max_item_errors": 5}, False),  # a gate: fail
    ({"max_item_errors": 5, "allow_degraded_stats": True}, True),  # allowed: warn, pass
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("gate", "passes"), DEGRADED, ids=["no-gate", "gate", "allowed"])
def test_degraded_stats_warn_and_fail_a_gate_unless_allowed(
    setup: Any,
    mode: str,
    gate: dict[str, Any],
    passes: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    emu = setup(items=20, errors=0.5)
    emu.set_degraded(True)
    if passes:
        items = wait(emu, mode, **gate)["items"]
        assert items["degraded"] is True
        assert [items[k] for k in ("completed", "error", "queued", "running", "skipped", "outdated")] == [None] * 6
    else:
        with pytest.raises(AISearchIndexQualityError, match="degraded") as info:
            wait(emu, mode, **gate)
        assert info.value.stats is not None and info.value.stats.degraded
    warned = [line for line in logged(caplog, capsys).splitlines() if "the item stats are degraded" in line]
    assert warned and all("warning" in line.lower() for line in warned)  # a warning in every case
    assert len(stats_reads(emu)) == 1
    assert item_lists(emu) == []


# ---------------------------------------------------------------------------------------------
# wait_for_items
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_wait_for_items_reads_the_stats_until_nothing_is_in_flight(setup: Any, mode: str) -> None:
    emu = setup(items=20, errors=0.1)
    emu.set_item_lag(1.5)  # items settle up to 1.5 s after the job ended
    items = wait(emu, mode, duration=0.5, wait_for_items=True, max_item_errors=2)["items"]
    assert (items["queued"], items["running"]) == (0, 0)
    assert (items["completed"], items["error"]) == (18, 2)
    reads = stats_reads(emu)
    assert len(reads) >= 2  # it read them again while items were in flight
    assert len(reads) < 200  # at the poll interval, not in a busy loop


@pytest.mark.parametrize("mode", MODES)
def test_degraded_stats_end_an_item_wait(setup: Any, mode: str) -> None:
    """Degraded stats have no counts to wait on: one read, then the verdict (a warning, no gate here)."""
    emu = setup(items=20)
    emu.set_item_lag(3600)
    emu.set_degraded(True)
    items = wait(emu, mode, duration=0.5, timeout=5, wait_for_items=True)["items"]
    assert items["degraded"] is True
    assert len(stats_reads(emu)) == 1


@pytest.mark.parametrize("mode", ["deferred", "create", "create_deferred"])
def test_an_item_wait_is_paced_by_the_rate_limit_budget(
    setup: Any, mode: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    40 requests per 2 s and a 0.02 s interval: the stats reads spread out as the budget runs low.

    Paced, they never reach the reserve, so no request is held at the budget gate (unpaced, they
    would burn the budget down to the reserve and wait there) and none is answered 429.
    """
    caplog.set_level(logging.DEBUG)
    emu = setup(items=20)
    emu.rate_limit = RateLimit(limit=40, window=2.0, lockout=2.0)
    emu.set_item_lag(3.0)
    interval: dict[str, Any] = {"poke_interval": 0.02} if mode == "deferred" else {"poll_interval": 0.02}
    items = wait(emu, mode, duration=0.3, wait_for_items=True, **interval)["items"]
    assert (items["queued"], items["running"]) == (0, 0)
    assert emu.rate_limit.refused == 0
    assert [r.status for r in emu.requests if r.status == 429] == []
    assert "rate-limit budget nearly spent" not in logged(caplog, capsys)


@pytest.mark.parametrize("mode", MODES)
def test_without_wait_for_items_the_one_read_may_see_items_in_flight(setup: Any, mode: str) -> None:
    """The premise of the test above: with the lag, a single read right after the job sees unsettled items."""
    emu = setup(items=20)
    emu.set_item_lag(3600)
    items = wait(emu, mode, duration=0.5, read_item_stats=True)["items"]
    assert items["queued"] + items["running"] > 0
    assert len(stats_reads(emu)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_wait_for_items_times_out_with_the_usual_timeout_error(setup: Any, mode: str) -> None:
    emu = setup(items=20)
    emu.set_item_lag(3600)
    error = AirflowSensorTimeout if mode in ("poke", "deferred") else AISearchJobTimeoutError
    with pytest.raises(error) as info:
        wait(emu, mode, duration=0.5, timeout=2.5, wait_for_items=True)
    if mode != "poke":  # (Airflow's own poke loop words its timeout itself)
        assert "still queued" in str(info.value)
    assert len(stats_reads(emu)) >= 2
    assert emu.requests_to(method="PATCH") == []  # the job had ended: nothing to cancel


# ---------------------------------------------------------------------------------------------
# Transient failures, soft_fail, the trigger's arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["poke", "deferred", "create"])
def test_a_transient_stats_failure_is_read_again(setup: Any, mode: str) -> None:
    emu = setup(items=20, errors=0.1)
    # More 503s than the hook's retries (3): the first stats read fails, the next poll reads them.
    emu.inject(Fault("status", status=503), path="/stats", times=4)
    result = wait(emu, mode, max_item_errors=2, hook_params={**FAST, "max_retries": 3})
    assert result["items"]["error"] == 2
    assert [r.status for r in stats_reads(emu)] == [503, 503, 503, 503, 200]


def test_a_permanent_stats_failure_fails_at_once(
    setup: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    emu = setup(items=20)
    emu.inject(Fault("status", status=403), path="/stats", times=50)
    with pytest.raises(AISearchError) as info:
        wait(emu, "deferred", max_item_errors=2)
    assert info.value.status_code == 403
    assert len(stats_reads(emu)) == 1
    out = logged(caplog, capsys)
    assert "Stopped reading the item stats of instance 'docs'" in out
    assert "AISearchJobTrigger failed" not in out  # an expected API error, not a crash with a traceback


def test_the_trigger_reports_items_still_in_flight_at_the_deadline_as_a_timeout(setup: Any) -> None:
    emu = setup(items=20)
    emu.set_item_lag(3600)
    job = emu.add_job("docs", duration=0.2)
    trigger = AISearchJobTrigger(
        instance_id="docs",
        job_id=job.id,
        poll_interval=0.05,
        deadline=time.time() + 1.5,
        retry_backoff=0.001,
        wait_for_items=True,
    )
    event = run_trigger(trigger)
    assert (event["status"], event["items_pending"]) == ("timeout", True)
    assert event["items"]["queued"] + event["items"]["running"] > 0
    assert "still queued" in event["message"]
    assert event["job"]["id"] == job.id


@pytest.mark.parametrize("mode", ["poke", "deferred"])
def test_soft_fail_turns_a_failed_gate_into_a_skip(setup: Any, mode: str) -> None:
    emu = setup(items=20, errors=0.5)
    with pytest.raises(AirflowSkipException):
        wait(emu, mode, max_item_errors=0, soft_fail=True)


def test_trigger_kwargs_round_trip_and_old_ones_still_load() -> None:
    trigger = AISearchJobTrigger(instance_id="docs", job_id="j", read_item_stats=True, wait_for_items=True)
    _, kwargs = trigger.serialize()
    assert (kwargs["read_item_stats"], kwargs["wait_for_items"]) == (True, True)
    assert AISearchJobTrigger(**json.loads(json.dumps(kwargs))).serialize() == trigger.serialize()
    old = {k: v for k, v in kwargs.items() if k not in ("read_item_stats", "wait_for_items")}
    rebuilt = AISearchJobTrigger(**old)
    assert (rebuilt.read_item_stats, rebuilt.wait_for_items) == (False, False)


def test_the_idle_wait_before_a_create_reads_no_stats(setup: Any) -> None:
    """if_running="wait" defers on someone else's job first: that wait must not read (or gate) stats."""
    emu = setup(items=20, errors=0.5)
    emu.add_job("docs", duration=3600)
    with pytest.raises(TaskDeferred) as info:
        create_op(wait_for_completion=True, deferrable=True, if_running="wait", max_item_errors=0).execute(
            ctx(ti=FakeTI())
        )
    _, kwargs = info.value.trigger.serialize()
    assert (kwargs["read_item_stats"], kwargs["wait_for_items"]) == (False, False)


# ---------------------------------------------------------------------------------------------
# Parse-time validation
# ---------------------------------------------------------------------------------------------

BAD = [
    ({"max_item_errors": True}, "max_item_errors"),
    ({"max_item_errors": -1}, "max_item_errors"),
    ({"max_item_errors": 1.0}, "max_item_errors"),
    ({"max_item_errors": 0.0}, "max_item_errors"),
    ({"max_item_errors": 1.5}, "max_item_errors"),
    ({"max_item_errors": -0.1}, "max_item_errors"),
    ({"max_item_errors": math.nan}, "max_item_errors"),
    ({"max_item_errors": math.inf}, "max_item_errors"),
    ({"max_item_errors": "5"}, "max_item_errors"),
    ({"allow_degraded_stats": "yes"}, "allow_degraded_stats"),
    ({"wait_for_items": 1}, "wait_for_items"),
    ({"read_item_stats": "no"}, "read_item_stats"),
    ({"max_item_errors": 3, "read_item_stats": False}, "read_item_stats"),
    ({"wait_for_items": True, "read_item_stats": False}, "read_item_stats"),
]


@pytest.mark.parametrize("operator", ["sensor", "create"])
@pytest.mark.parametrize(("kwargs", "name"), BAD)
def test_bad_gate_arguments_fail_at_parse_time(operator: str, kwargs: dict[str, Any], name: str) -> None:
    build: Callable[..., Any] = (lambda **kw: make_sensor(job_id="j", **kw)) if operator == "sensor" else create_op
    with pytest.raises(ValueError, match=name):
        build(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "gate"),
    [
        ({}, ItemGate()),
        ({"max_item_errors": 0}, ItemGate(0, read_item_stats=True)),
        ({"max_item_errors": 0.05}, ItemGate(0.05, read_item_stats=True)),
        ({"wait_for_items": True}, ItemGate(wait_for_items=True, read_item_stats=True)),
        ({"read_item_stats": True}, ItemGate(read_item_stats=True)),
        ({"allow_degraded_stats": True}, ItemGate(allow_degraded_stats=True)),
    ],
)
def test_good_gate_arguments(kwargs: dict[str, Any], gate: ItemGate) -> None:
    assert make_sensor(job_id="j", **kwargs).item_gate == gate
    assert create_op(**kwargs).item_gate == gate


def test_the_quality_error_keeps_its_stats_and_threshold_when_pickled() -> None:
    import pickle

    stats = InstanceStats(completed=8, error=2, skipped=10, queued=0, running=0, outdated=0)
    error = AISearchIndexQualityError("gate failed", stats=stats, max_item_errors=0.05)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, AISearchIndexQualityError) and isinstance(copy, AISearchError)
    assert (copy.message, copy.stats, copy.max_item_errors) == ("gate failed", stats, 0.05)
