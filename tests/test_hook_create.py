"""AISearchHook.create_job against the emulator over real HTTP: it never starts two jobs."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchCooldownError,
    AISearchCreateAmbiguousError,
    AISearchError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import TOKEN, Connect, MakeEmulator

# ---------------------------------------------------------------------------------------------
# create_job never starts two jobs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(502),
        Fault.http(503),
        Fault.html(500),
        Fault("reset_before"),
        Fault("reset_after"),
        Fault.html(200),
    ],
    ids=["502", "503", "html500", "reset_before", "reset_after", "html200"],
)
def test_ambiguous_create_failure_is_not_resent(hook: AISearchHook, emulator: AISearchEmulator, fault: Fault) -> None:
    emulator.inject(fault, method="POST")
    with pytest.raises(AISearchCreateAmbiguousError) as info:
        hook.create_job("docs", description="run-42")
    assert info.value.description == "run-42"
    assert "run-42" in str(info.value)
    assert len(emulator.requests_to(method="POST")) == 1
    expected_jobs = 1 if fault.kind == "reset_after" else 0
    assert len(emulator.jobs("docs")) == expected_jobs


def test_create_with_unreadable_job_is_ambiguous(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.http(200, {"success": True, "result": {"id": None}}), method="POST")
    with pytest.raises(AISearchCreateAmbiguousError, match="malformed job.*description 'x-1'"):
        hook.create_job("docs", description="x-1")
    assert len(emulator.requests_to(method="POST")) == 1


def test_create_read_timeout_is_ambiguous_and_job_exists_once(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.inject(Fault("delay", delay=0.6), method="POST")
    hook = AISearchHook(timeout=(1.0, 0.2), retry_backoff=0.001)
    with pytest.raises(AISearchCreateAmbiguousError):
        hook.create_job("docs", description="slow")
    time.sleep(0.6)
    assert [j["description"] for j in emulator.jobs("docs")] == ["slow"]
    assert len(emulator.requests_to(method="POST")) == 1


def test_create_retries_through_cooldown(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.cooldown = 30.0
    emulator.add_job("docs", duration=0)  # a job started just now: the next create is in cooldown
    with pytest.raises(AISearchCooldownError) as info:
        hook.create_job("docs")
    assert info.value.status_code == 429
    assert info.value.codes == [7020]
    assert len(emulator.requests_to(method="POST")) == 4
    assert sleep.call_count == 3
    assert len(emulator.jobs("docs")) == 1

    emulator.requests.clear()
    emulator.cooldown = 0.0
    emulator.inject(
        Fault.http(429, {"success": False, "errors": [{"code": 7020, "message": "sync_in_cooldown"}], "result": {}})
    )
    emulator.inject(  # before 2026-07-18 the cooldown came back as a 5xx: still proof nothing was created
        Fault.http(500, {"success": False, "errors": [{"code": 7020, "message": "sync_in_cooldown"}]})
    )
    created = hook.create_job("docs")
    assert [r.status for r in emulator.requests_to(method="POST")] == [429, 500, 200]
    assert [j["id"] for j in emulator.jobs("docs")][0] == created.id
    assert len(emulator.jobs("docs")) == 2


def test_create_can_leave_the_cooldown_to_its_caller(
    hook: AISearchHook, emulator: AISearchEmulator, mocker: Any
) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.cooldown = 30.0
    emulator.add_job("docs", duration=0)
    with pytest.raises(AISearchCooldownError) as info:  # at once: the caller lists the instance before retrying
        hook.create_job("docs", retry_cooldown=False)
    assert info.value.transient
    assert [r.status for r in emulator.requests_to(method="POST")] == [429]
    assert sleep.call_count == 0
    # Other proofs that nothing was created are still retried here (the rate limit, code 971).
    emulator.cooldown = 0.0
    emulator.inject(Fault.rate_limited(retry_after=1), method="POST")
    hook.create_job("docs", retry_cooldown=False)
    assert [r.status for r in emulator.requests_to(method="POST")] == [429, 429, 200]


def test_create_after_rate_limit_429_is_retried(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.rate_limited(retry_after=1), method="POST", times=2)
    hook.create_job("docs")
    assert [r.status for r in emulator.requests_to(method="POST")] == [429, 429, 200]
    assert len(emulator.jobs("docs")) == 1


def test_create_retries_when_connection_refused(make_emulator: MakeEmulator, connect: Connect, mocker: Any) -> None:
    """Nothing listens at first: the POST was never sent, so retrying is safe; it then lands once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    later = AISearchEmulator(port=port, token=TOKEN, cooldown=0.0, job_duration=3600.0)
    connect(later)
    started: list[AISearchEmulator] = []

    def start_server(_: float) -> None:
        if not started:
            started.append(later.start())

    mocker.patch("airflow_provider_aisearch.hooks.time.sleep", side_effect=start_server)
    try:
        job = AISearchHook().create_job("docs", description="refused-first")
        assert started
        assert [j["id"] for j in later.jobs("docs")] == [job.id]
        assert len(later.requests_to(method="POST")) == 1
    finally:
        later.stop()


def test_refused_reads_fail_after_retries_with_clear_error(connect: Connect, mocker: Any) -> None:
    mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connect(AISearchEmulator(port=port), host=f"http://127.0.0.1:{port}/client/v4")
    with pytest.raises(AISearchError, match="got no answer.*connection refused.*after 4 attempts"):
        AISearchHook().list_jobs("docs")


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


def test_cooldown_detected_by_code_or_by_message(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.http(500, {"success": False, "errors": [{"code": 7020, "message": "please wait"}]}))
    emulator.inject(Fault.http(503, {"success": False, "errors": ["sync_in_cooldown"]}))
    emulator.inject(
        Fault.http(
            429,
            {"success": False, "errors": [{"code": 7020, "message": "sync_in_cooldown"}], "result": {}},
            headers={"Retry-After": "42"},
        )
    )
    hook.create_job("docs")
    assert [r.status for r in emulator.requests] == [500, 503, 429, 200]
    assert sleep.call_args_list[2].args[0] == 42
