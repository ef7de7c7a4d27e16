"""AISearchJobSensor and AISearchJobTrigger against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_aisearch.api import TransportFailure
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchError,
    AISearchJobFailedError,
    AISearchNotFoundError,
)
from airflow_provider_aisearch.hooks import _classify_httpx_error
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.sensors import AISearchJobSensor
from airflow_provider_aisearch.triggers import AISearchJobTrigger, validate_event
from airflow_provider_aisearch.waiting.watch import JobWatch, find_successor
from tests.operator_helpers import make_sensor

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats

Connect = Callable[..., None]


def job_gets(emu: AISearchEmulator, job_id: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and r.segments[3:] == (job_id,)]


def lists(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.route == "jobs" and len(r.segments) == 3]


def run_trigger(trigger: AISearchJobTrigger, limit: float = 20) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), limit))


def defer(sensor: AISearchJobSensor) -> AISearchJobTrigger:
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, AISearchJobTrigger)
    assert info.value.method_name == "execute_complete"
    return trigger


# ---------------------------------------------------------------------------------------------
# Poke path
# ---------------------------------------------------------------------------------------------


def test_poke_waits_then_returns_job_dict(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=1.5, end_reason="completed", source="user")  # still running at the 1st poke
    result = make_sensor(job_id=job.id).execute({})
    assert result["id"] == job.id
    assert result["status"] == "succeeded"
    assert result["followed_from"] == []
    gets = job_gets(emu, job.id)
    assert len(gets) >= 2  # it polled while the job ran
    assert len(gets) == len(emu.requests)  # nothing but GETs of the job (no logs, no list)


def test_each_poke_is_exactly_one_get(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    sensor = make_sensor(job_id=job.id)
    assert [sensor.poke({}) for _ in range(3)] == [False, False, False]
    assert len(emu.requests) == 3
    assert job_gets(emu, job.id) == emu.requests


@pytest.mark.parametrize(
    "end_reason",
    ["error", "failed", "indexing_error: source unreachable", "timeout", "cancelled", "canceled_by_user", "weird_one"],
)
def test_failing_end_reason_raises_with_log_tail(
    emu: AISearchEmulator, end_reason: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    job = emu.add_job("docs", duration=0, end_reason=end_reason)
    with pytest.raises(AISearchJobFailedError) as info:
        make_sensor(job_id=job.id, log_tail=2).execute({})
    message = str(info.value)
    assert job.id in message
    assert "'docs'" in message
    assert repr(end_reason) in message
    logs = [r for r in emu.requests if r.route == "jobs" and r.path.endswith("/logs")]
    assert len(logs) == 1
    out = caplog.text + capsys.readouterr().out
    assert f"Job ended: {end_reason}" in out
    assert "Starting indexing data source" not in out  # only the last 2 of 3 lines


def test_unrecognised_end_reason_message_explains_override(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0, end_reason="weird_one")
    with pytest.raises(AISearchJobFailedError, match=r"success_end_reasons=\{'weird_one'\}"):
        make_sensor(job_id=job.id, log_tail=0).execute({})
    assert len(emu.requests) == 1  # log_tail=0: no log request


def test_end_reason_overrides(emu: AISearchEmulator) -> None:
    odd = emu.add_job("docs", duration=0, end_reason="Weird_One")
    # the XCom status follows the overrides too
    assert make_sensor(job_id=odd.id, success_end_reasons=["weird_one"]).execute({})["status"] == "succeeded"
    done = emu.add_job("docs", duration=0, end_reason="completed")
    with pytest.raises(AISearchJobFailedError):
        make_sensor(job_id=done.id, failure_end_reasons=["completed"]).execute({})
    with pytest.raises(ValueError, match="overlap"):
        make_sensor(job_id=done.id, success_end_reasons=["x"], failure_end_reasons=["X"])


def test_soft_fail_turns_failure_into_skip(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0, end_reason="error")
    with pytest.raises(AirflowSkipException):
        make_sensor(job_id=job.id, soft_fail=True).execute({})


def test_poke_timeout_and_soft_fail(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    with pytest.raises(AirflowSensorTimeout):
        make_sensor(job_id=job.id, timeout=0.3).execute({})
    with pytest.raises(AirflowSkipException):
        make_sensor(job_id=job.id, timeout=0.3, soft_fail=True).execute({})


@pytest.mark.parametrize("overrides", [{}, {"ended_at": "not a time"}], ids=["ended_at", "ended_at-unreadable"])
def test_follow_superseded_job(emu: AISearchEmulator, overrides: dict[str, Any]) -> None:
    """Also when the superseded job's ``ended_at`` is unreadable: its successor is found by its other times."""
    first = emu.add_job("docs", duration=3600, source="user", overrides=overrides)
    sensor = make_sensor(job_id=first.id)
    assert sensor.poke({}) is False
    second = emu.start_job("docs", source="schedule", duration=3600)  # supersedes `first`
    assert sensor.poke({}) is False  # GET first -> superseded -> list -> now waiting on `second`
    assert sensor.watch.job_id == second.id
    emu.finish_job("docs", second.id, "completed")
    done = sensor.poke({})
    assert not isinstance(done, bool)
    value = done.xcom_value
    assert isinstance(value, dict)
    assert value["id"] == second.id
    assert value["followed_from"] == [first.id]
    assert len(lists(emu)) == 1
    assert len(job_gets(emu, first.id)) == 2
    assert len(job_gets(emu, second.id)) == 1


def test_follow_a_chain_of_supersedes_with_one_list(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    b = emu.start_job("docs", duration=3600)
    c = emu.start_job("docs", duration=0.3)
    result = make_sensor(job_id=a.id).execute({})
    assert result["id"] == c.id
    assert result["followed_from"] == [a.id, b.id]
    assert len(lists(emu)) == 1
    assert job_gets(emu, b.id) == []


def test_follow_when_listing_is_oldest_first(make_emulator: Callable[..., AISearchEmulator], connect: Connect) -> None:
    emu = make_emulator(list_order="oldest")
    connect(emu)
    emu.seed_jobs("docs", 60)
    a = emu.add_job("docs", duration=3600, source="user")
    b = emu.start_job("docs", duration=0)
    result = make_sensor(job_id=a.id).execute({})
    assert result["id"] == b.id
    assert [r.query["page"] for r in lists(emu)] == ["1", "2"]


@pytest.mark.parametrize(("mode", "outcome"), [("fail", "error"), ("succeed", "ok")])
def test_on_superseded_fail_and_succeed(emu: AISearchEmulator, mode: str, outcome: str) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    emu.start_job("docs", duration=3600)
    sensor = make_sensor(job_id=a.id, on_superseded=mode)
    if outcome == "error":
        with pytest.raises(AISearchJobFailedError, match="superseded"):
            sensor.execute({})
    else:
        result = sensor.execute({})
        assert result["id"] == a.id
        assert result["status"] == "superseded"
    assert lists(emu) == []


def test_bad_on_superseded_is_rejected() -> None:
    with pytest.raises(ValueError, match="on_superseded"):
        make_sensor(job_id="x", on_superseded="ignore")


def test_transient_errors_do_not_fail_the_sensor(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    emu.inject(Fault.http(502), times=4)  # one whole poke fails after the hook's 3 retries
    emu.inject(Fault.rate_limited(retry_after=0), times=4)  # and another one on 429s
    sensor = make_sensor(job_id=job.id)
    assert sensor.poke({}) is False
    assert sensor.poke({}) is False
    emu.finish_job("docs", job.id, "completed")
    result = sensor.poke({})
    assert not isinstance(result, bool)
    value = result.xcom_value
    assert isinstance(value, dict)
    assert value["status"] == "succeeded"
    assert [r.status for r in emu.requests] == [502] * 4 + [429] * 4 + [200]


def test_auth_error_fails_at_once_even_with_soft_fail(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="revoked-token-x1")
    with pytest.raises(AISearchAuthError, match="aisearch_default"):
        make_sensor(job_id="j", soft_fail=True).execute({})
    assert len(emulator.requests) == 1


def test_not_found_fails_at_once(emu: AISearchEmulator) -> None:
    with pytest.raises(AISearchNotFoundError, match="job_not_found"):
        make_sensor(job_id="missing").execute({})
    assert len(emu.requests) == 1


def test_bad_job_id_fails_before_any_request(emu: AISearchEmulator) -> None:
    with pytest.raises(ValueError, match="job_id"):
        make_sensor(job_id="..").execute({})
    assert emu.requests == []


def test_fast_polling_against_cloudflare_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AISEARCH_DEFAULT", json.dumps({"conn_type": "cloudflare_aisearch", "password": "t", "extra": {}})
    )
    caplog.set_level(logging.WARNING)
    make_sensor(job_id="j", poke_interval=5)._warn_fast_polling(5)
    make_sensor(job_id="j", poke_interval=30)._warn_fast_polling(30)
    out = caplog.text + capsys.readouterr().out
    assert "poke_interval=5" in out
    assert "1200 requests per 5 minutes" in out
    assert "poke_interval=30" not in out


# ---------------------------------------------------------------------------------------------
# Deferrable path
# ---------------------------------------------------------------------------------------------


def test_deferrable_already_ended_does_not_defer(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0)
    result = make_sensor(job_id=job.id, deferrable=True).execute({})
    assert result["id"] == job.id
    assert len(emu.requests) == 1


def test_deferrable_end_to_end(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.5)
    sensor = make_sensor(job_id=job.id, deferrable=True, poke_interval=0.1, timeout=60)
    trigger = defer(sensor)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_aisearch.triggers.AISearchJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["deadline"] > time.time() + 50
    assert kwargs["namespace"] == "default"
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "done"
    result = sensor.execute_complete({}, event.payload)
    assert result["id"] == job.id
    assert result["status"] == "succeeded"
    assert emu.connections == 2  # one for the sensor's check, one for the whole trigger wait
    # The sensor's check is one GET; the trigger's polls are shared list requests (no GETs).
    assert emu.requests[:1] == job_gets(emu, job.id)
    assert emu.requests[1:] == lists(emu)


def test_trigger_makes_one_get_per_poll_interval(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=0.2, retry_backoff=0.001, share_polling=False
    )

    async def scenario() -> list[Any]:
        task = asyncio.ensure_future(trigger.run().__anext__())
        while len(emu.requests) < 4:
            await asyncio.sleep(0.01)
        emu.finish_job("docs", job.id, "completed")
        return [await asyncio.wait_for(task, 5)]

    (event,) = asyncio.run(scenario())
    assert event.payload["status"] == "done"
    gets = job_gets(emu, job.id)
    assert gets == emu.requests  # only GETs of the job
    gaps = [b.at - a.at for a, b in itertools.pairwise(gets)]
    assert all(gap >= 0.18 for gap in gaps), gaps
    assert emu.connections == 1


def test_trigger_follows_with_one_list_call(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    b = emu.start_job("docs", duration=0.5)
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=a.id, poll_interval=0.1, retry_backoff=0.001, share_polling=False
    )
    (event,) = run_trigger(trigger)
    assert event.payload["job"]["id"] == b.id
    assert event.payload["followed_from"] == [a.id]
    assert len(lists(emu)) == 1
    assert len(job_gets(emu, a.id)) == 1
    assert len(job_gets(emu, b.id)) >= 1


def test_shared_trigger_follows_from_the_shared_listing(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    b = emu.start_job("docs", duration=0.5)
    trigger = AISearchJobTrigger(instance_id="docs", job_id=a.id, poll_interval=0.1, retry_backoff=0.001)
    (event,) = run_trigger(trigger)
    assert event.payload["job"]["id"] == b.id
    assert event.payload["followed_from"] == [a.id]
    assert emu.requests == lists(emu)  # the supersede and the successor's end were read off listings


def test_trigger_rebuilt_from_serialize_mid_wait(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    first = AISearchJobTrigger(instance_id="docs", job_id=a.id, poll_interval=0.05, retry_backoff=0.001)

    async def interrupted() -> None:
        task = asyncio.ensure_future(first.run().__anext__())
        while len(emu.requests) < 3:
            await asyncio.sleep(0.01)
        task.cancel()  # the triggerer restarts
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    b = emu.start_job("docs", duration=0.3)  # while nobody watched, a scheduled job superseded `a`
    classpath, kwargs = first.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**json.loads(json.dumps(kwargs)))
    (event,) = run_trigger(rebuilt)
    assert event.payload["status"] == "done"
    assert event.payload["job"]["id"] == b.id
    assert event.payload["followed_from"] == [a.id]


def test_trigger_timeout_polls_once_more_at_the_deadline(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    deadline = time.time() + 0.35
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=10, deadline=deadline, retry_backoff=0.001
    )
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "timeout"
    assert event.payload["job"]["status"] == "running"
    assert len(emu.requests) == 2  # the first poll, and one last poll at the deadline
    assert emu.requests[-1].at >= deadline
    sensor = make_sensor(job_id=job.id, deferrable=True)
    with pytest.raises(AirflowSensorTimeout, match=job.id):
        sensor.execute_complete({}, event.payload)
    soft = make_sensor(job_id=job.id, deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", {"event": event.payload}, {})


def test_trigger_transient_errors_keep_waiting(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.4)
    emu.inject(Fault.http(503), times=8)
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=0.05, retry_backoff=0.001, max_retries=1
    )
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "done"
    assert event.payload["job"]["status"] == "succeeded"
    assert [r.status for r in emu.requests][:8] == [503] * 8


def test_trigger_auth_error_event_raises_same_error(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="revoked-token-x2")
    trigger = AISearchJobTrigger(instance_id="docs", job_id="j1", poll_interval=0.05)
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "error"
    assert event.payload["error"]["type"] == "AISearchAuthError"
    assert "revoked-token-x2" not in json.dumps(event.payload)
    with pytest.raises(AISearchAuthError) as info:
        make_sensor(job_id="j1", deferrable=True).execute_complete({}, event.payload)
    assert info.value.status_code == 401
    assert len(emulator.requests) == 1


def test_trigger_failed_job_event_raises_in_execute_complete(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.2, end_reason="error")
    (event,) = run_trigger(AISearchJobTrigger(instance_id="docs", job_id=job.id, poll_interval=0.05))
    assert event.payload["status"] == "done"
    with pytest.raises(AISearchJobFailedError, match="'error'"):
        make_sensor(job_id=job.id, deferrable=True).execute_complete({}, event.payload)
    soft = make_sensor(job_id=job.id, deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", {"event": event.payload}, {})


def test_trigger_unexpected_exception_becomes_error_event(emu: AISearchEmulator, mocker: Any) -> None:
    mocker.patch.object(JobWatch, "poll", side_effect=RuntimeError("boom"))
    (event,) = run_trigger(AISearchJobTrigger(instance_id="docs", job_id="j", poll_interval=0.05))
    assert event.payload["status"] == "error"
    assert "RuntimeError: boom" in event.payload["message"]


@pytest.mark.parametrize(
    "event",
    [None, "done", {}, {"status": "weird"}, {"status": "done"}, {"status": "done", "job": {}, "followed_from": "a"}],
)
def test_invalid_events_are_rejected(event: Any) -> None:
    with pytest.raises(AISearchError, match="event"):
        validate_event(event)


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


def test_find_successor_tolerates_clock_skew() -> None:
    t = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    a = Job("a", end_reason="new_job_has_started", started_at=t - timedelta(minutes=5), ended_at=t)
    b = Job("b", started_at=t - timedelta(seconds=1))
    old = Job("old", end_reason="completed", started_at=t - timedelta(seconds=3), ended_at=t - timedelta(seconds=2))
    assert find_successor(a, [old, b]) == b
    assert find_successor(a, [old]) is None


def test_superseded_successor_not_listed_yet_keeps_waiting(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=0, end_reason="new_job_has_started", source="user")
    sensor = make_sensor(job_id=a.id)
    assert sensor.poke({}) is False
    assert sensor.watch.job_id == a.id
    assert len(lists(emu)) == 1
    b = emu.add_job("docs", duration=0)
    done = sensor.poke({})
    assert not isinstance(done, bool)
    value = done.xcom_value
    assert isinstance(value, dict)
    assert value["id"] == b.id
    assert value["followed_from"] == [a.id]


def test_deferrable_soft_fail_on_already_failed_job_skips(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0, end_reason="error")
    with pytest.raises(AirflowSkipException):
        make_sensor(job_id=job.id, deferrable=True, soft_fail=True, log_tail=0).execute({})


def test_deferrable_keeps_followed_from_across_defer(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    b = emu.start_job("docs", duration=0.3)
    sensor = make_sensor(job_id=a.id, deferrable=True, poke_interval=0.05)
    trigger = defer(sensor)
    assert trigger.job_id == b.id
    assert trigger.followed_from == [a.id]
    (event,) = run_trigger(trigger)
    assert sensor.execute_complete({}, event.payload)["followed_from"] == [a.id]


def test_trigger_serialize_keeps_every_argument() -> None:
    trigger = AISearchJobTrigger(
        instance_id="docs",
        job_id="j2",
        aisearch_conn_id="c",
        namespace=None,
        poll_interval=7,
        deadline=123.0,
        on_superseded="fail",
        success_end_reasons=["x"],
        failure_end_reasons=["y"],
        followed_from=["j1"],
        timeout=(1, 2),
        max_retries=5,
        retry_backoff=0.5,
    )
    classpath, kwargs = trigger.serialize()
    assert set(kwargs) == set(inspect.signature(AISearchJobTrigger).parameters)
    assert AISearchJobTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)
    assert kwargs["followed_from"] == ["j1"]
    assert kwargs["on_superseded"] == "fail"
    assert kwargs["namespace"] is None


def test_deferred_trigger_gets_connection_namespace_and_hook_params(
    emulator: AISearchEmulator, connect: Connect
) -> None:
    emulator.add_instance("docs", namespace="team")
    connect(emulator, namespace="team")
    job = emulator.add_job("docs", namespace="team", duration=3600)
    params = {"timeout": 3, "max_retries": 1, "retry_backoff": 0.002}
    _, kwargs = defer(make_sensor(job_id=job.id, deferrable=True, hook_params=params)).serialize()
    assert kwargs["namespace"] == "team"
    assert (kwargs["timeout"], kwargs["max_retries"], kwargs["retry_backoff"]) == (3.0, 1, 0.002)


def test_trigger_applies_end_reason_overrides(emu: AISearchEmulator) -> None:
    odd = emu.add_job("docs", duration=0, end_reason="weird_one")
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=odd.id, poll_interval=0.05, success_end_reasons=["weird_one"]
    )
    (event,) = run_trigger(trigger)
    assert event.payload["message"].endswith("is succeeded")


def test_trigger_on_superseded_fail_does_not_follow(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", duration=3600, source="user")
    emu.start_job("docs", duration=3600)
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=a.id, poll_interval=0.05, on_superseded="fail", share_polling=False
    )
    (event,) = run_trigger(trigger, limit=5)
    assert event.payload["job"]["id"] == a.id
    assert lists(emu) == []


def test_trigger_timeout_fires_at_deadline_not_after_poll_interval(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    deadline = time.time() + 0.3
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=10, deadline=deadline, retry_backoff=0.001
    )
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "timeout"
    assert emu.requests[-1].at - deadline < 1


def test_classify_httpx_errors() -> None:
    import httpx

    assert _classify_httpx_error(httpx.ConnectError("refused"))[0] is TransportFailure.NOT_SENT
    assert _classify_httpx_error(httpx.ConnectTimeout("slow"))[0] is TransportFailure.NOT_SENT
    assert _classify_httpx_error(httpx.ReadError("reset"))[0] is TransportFailure.LOST
    assert _classify_httpx_error(httpx.UnsupportedProtocol("ftp"))[0] is TransportFailure.FATAL


def test_single_string_end_reasons_are_rejected() -> None:
    with pytest.raises(ValueError, match="success_end_reasons"):
        make_sensor(job_id="j", success_end_reasons="indexed")


def test_deferred_auth_error_fails_even_with_soft_fail(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="revoked-token-x3")
    (event,) = run_trigger(AISearchJobTrigger(instance_id="docs", job_id="j1", poll_interval=0.05))
    sensor = make_sensor(job_id="j1", deferrable=True, soft_fail=True)
    with pytest.raises(AISearchAuthError):
        sensor.resume_execution("execute_complete", {"event": event.payload}, {})


def test_trigger_deadline_bounds_retry_waits(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=3600)
    emu.inject(Fault.rate_limited(retry_after=100), times=50)
    trigger = AISearchJobTrigger(
        instance_id="docs", job_id=job.id, poll_interval=0.2, deadline=time.time() + 1.0, retry_backoff=0.001
    )
    started = time.monotonic()
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "timeout"
    assert time.monotonic() - started < 5
