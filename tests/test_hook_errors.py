"""AISearchHook errors and retries against the emulator over real HTTP: each class, fail fast, backoff."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchNotFoundError,
    AISearchRateLimitError,
    AISearchResponseError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import Connect, MakeEmulator

# ---------------------------------------------------------------------------------------------
# Errors: each class, fail fast, retries
# ---------------------------------------------------------------------------------------------


def test_bad_token_fails_fast_with_auth_error(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="not-the-token-xyz")
    with pytest.raises(AISearchAuthError) as info:
        AISearchHook().get_job("docs", "some-job")
    err = info.value
    assert len(emulator.requests) == 1
    assert err.status_code == 401
    assert err.codes == [10000]
    assert "aisearch_default" in str(err)
    assert "[10000] Authentication error" in str(err)
    assert "not-the-token-xyz" not in str(err)


def test_token_without_permission_is_403_auth_error(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(forbidden_tokens=["readonly-token-abc"])
    connect(emu, password="readonly-token-abc")
    with pytest.raises(AISearchAuthError) as info:
        AISearchHook().list_jobs("docs")
    assert info.value.status_code == 403
    assert len(emu.requests) == 1


def test_wrong_account_is_403(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, account_id="ffffffffffffffffffffffffffffffff")
    with pytest.raises(AISearchAuthError):
        AISearchHook().list_jobs("docs")
    assert len(emulator.requests) == 1


def test_unknown_instance_and_job_are_not_found(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    with pytest.raises(AISearchNotFoundError) as info:
        hook.list_jobs("nope")
    assert info.value.codes == [7002]
    with pytest.raises(AISearchNotFoundError) as info:
        hook.get_job("docs", "missing-job")
    assert info.value.codes == [7005]
    assert "job_not_found" in str(info.value)
    assert len(emulator.requests) == 2  # never retried


def test_400_is_not_retried(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.http(400, {"success": False, "errors": [{"code": 7001, "message": "bad"}]}), times=5)
    with pytest.raises(AISearchError) as info:
        hook.list_jobs("docs")
    assert type(info.value) is AISearchError
    assert info.value.status_code == 400
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_succeeds(hook: AISearchHook, emulator: AISearchEmulator, status: int) -> None:
    emulator.seed_jobs("docs", 2)
    emulator.inject(Fault.http(status), times=3)
    assert len(hook.list_jobs("docs").jobs) == 2
    assert [r.status for r in emulator.requests] == [status, status, status, 200]


def test_retries_stop_after_max_retries(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.inject(Fault.http(502), times=10)
    with pytest.raises(AISearchError) as info:
        AISearchHook(max_retries=2, retry_backoff=0.001).list_jobs("docs")
    assert info.value.status_code == 502
    assert "after 3 attempts" in str(info.value)
    assert len(emulator.requests) == 3


def test_retry_after_is_honoured_and_capped(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.rate_limited(retry_after=7))
    emulator.inject(Fault.rate_limited(retry_after=1000))
    http_date = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    emulator.inject(Fault.http(503, headers={"Retry-After": http_date}))
    hook.list_jobs("docs")
    delays = [c.args[0] for c in sleep.call_args_list]
    assert delays[0] == 7
    assert delays[1] == 300  # capped at Cloudflare's 5-minute lockout
    assert 110 <= delays[2] <= 120
    assert [r.status for r in emulator.requests] == [429, 429, 503, 200]


def test_backoff_without_retry_after_grows(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    hook.retry_policy = type(hook.retry_policy)(max_retries=3, backoff=1.0)
    emulator.inject(Fault.http(503), times=3)
    hook.list_jobs("docs")
    d0, d1, d2 = (c.args[0] for c in sleep.call_args_list)
    assert 0.5 <= d0 <= 1.0
    assert 1.0 <= d1 <= 2.0
    assert 2.0 <= d2 <= 4.0


def test_sustained_429_ends_in_rate_limit_error(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.rate_limited(retry_after=2), times=100)
    with pytest.raises(AISearchRateLimitError) as info:
        hook.list_jobs("docs")
    assert info.value.codes == [971]
    assert len(emulator.requests) == 4  # 1 + max_retries


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            Fault.http(200, {"success": False, "errors": [{"code": 7017, "message": "unable_to_connect"}]}),
            "success=false",
        ),
        (Fault.html(200), "not JSON (text/html"),
        (Fault.http(200, b'{"result": [ {"id": '), "not JSON"),
        (Fault.http(200, {"success": True}), "without a 'result'"),
        (Fault.http(200, {"success": True, "result": {"id": "x"}}), "'result' that is not a list"),
        (Fault.http(200, {"success": True, "result": [{"no_id": 1}]}), "malformed job"),
        (Fault.http(200, {"success": True, "result": [{"id": "a", "end_reason": 5}]}), "malformed job"),
        (Fault.http(200, [1, 2]), "not an object"),
    ],
)
def test_malformed_answers_become_response_errors(
    emulator: AISearchEmulator, connect: Connect, fault: Fault, expected: str
) -> None:
    connect(emulator)
    emulator.inject(fault, times=10)
    with pytest.raises(AISearchResponseError, match=re.escape(expected)):
        AISearchHook(max_retries=1, retry_backoff=0.001).list_jobs("docs")


def test_html_5xx_page_is_retried_then_reported(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.html(502), times=10)
    with pytest.raises(AISearchError, match=r"HTTP 502: non-JSON body \(text/html"):
        hook.list_jobs("docs")
    assert len(emulator.requests) == 4


def test_read_timeout_is_retried_for_reads(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.inject(Fault("delay", delay=0.5), method="GET")
    hook = AISearchHook(timeout=(1.0, 0.2), retry_backoff=0.001)
    assert hook.list_jobs("docs").jobs == ()
    assert len(emulator.requests) == 2


def test_connection_reset_is_retried_for_reads(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault("reset_before"), method="GET")
    emulator.inject(Fault("reset_after"), method="GET")
    assert hook.list_jobs("docs").jobs == ()
    assert [r.fault for r in emulator.requests] == ["reset_before", "reset_after", None]


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


def test_408_is_retried_for_reads_and_ambiguous_for_create(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.http(408))
    assert hook.list_jobs("docs").jobs == ()
    assert [r.status for r in emulator.requests] == [408, 200]
    emulator.inject(Fault.http(408), method="POST")
    with pytest.raises(AISearchCreateAmbiguousError):
        hook.create_job("docs")


def test_malformed_2xx_is_retried_for_reads(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.html(200))
    assert hook.list_jobs("docs").jobs == ()
    assert [r.fault for r in emulator.requests] == ["status", None]


def test_backoff_is_capped_and_jittered() -> None:
    from random import Random

    from airflow_provider_aisearch.api import RetryPolicy

    class Fixed(Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    policy = RetryPolicy(backoff=1.0, max_backoff=2.0)
    assert policy.delay(10, None, Fixed(0.999)) <= 2.0
    assert policy.delay(0, None, Fixed(0.0)) == 0.5
    assert policy.delay(1, None, Fixed(0.0)) == 1.0
    assert policy.delay(0, -5.0) == 0.0


def test_retry_after_read_case_insensitively_from_plain_dicts() -> None:
    from airflow_provider_aisearch.api import evaluate

    verdict = evaluate(conn_id="c", method="GET", path="/p", status=429, headers={"retry-after": "5"})
    assert verdict.retryable
    assert verdict.retry_after == 5
    verdict = evaluate(conn_id="c", method="GET", path="/p", status=429, headers={"RETRY-AFTER": "7"})
    assert verdict.retry_after == 7


def test_error_chain_is_reported(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    body = {
        "success": False,
        "errors": [
            {"code": 6003, "message": "Invalid request headers", "error_chain": [{"code": 6111, "message": "inner"}]}
        ],
    }
    emulator.inject(Fault.http(400, body))
    with pytest.raises(AISearchError) as info:
        hook.list_jobs("docs")
    assert "[6003] Invalid request headers ([6111] inner)" in str(info.value)


def test_redirects_are_not_followed(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.inject(Fault.http(302, b"", headers={"Location": "http://127.0.0.1:9/steal"}))
    with pytest.raises(AISearchError, match="redirect"):
        hook.list_jobs("docs")
    assert len(emulator.requests) == 1


def test_retry_waits_never_pass_the_deadline(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    import time as clock

    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.rate_limited(retry_after=100), times=5)
    hook.api.deadline = clock.time() + 30
    with pytest.raises(AISearchRateLimitError, match="would pass the deadline"):
        hook.list_jobs("docs")
    assert sleep.call_count == 0
    assert len(emulator.requests) == 1
