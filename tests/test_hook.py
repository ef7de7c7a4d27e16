"""AISearchHook against the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import math
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchCooldownError,
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchNotFoundError,
    AISearchRateLimitError,
    AISearchResponseError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.jobs import JobStatus
from tests.conftest import EMAIL, GLOBAL_KEY, TOKEN

Connect = Callable[..., None]
MakeEmulator = Callable[..., AISearchEmulator]


def _job_requests(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.route in ("jobs", "legacy_jobs")]


# ---------------------------------------------------------------------------------------------
# Every method, both path forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn_namespace", "call_namespace", "route"),
    [
        ("default", {}, "jobs"),  # connection default
        (None, {}, "legacy_jobs"),  # "namespace": null in the connection extra
        ("default", {"namespace": None}, "legacy_jobs"),  # per-call override to legacy
        (None, {"namespace": "default"}, "jobs"),  # per-call override to namespaced
    ],
)
def test_every_method_in_both_path_forms(
    emulator: AISearchEmulator, connect: Connect, conn_namespace: str | None, call_namespace: dict[str, Any], route: str
) -> None:
    connect(emulator, namespace=conn_namespace)
    emulator.seed_jobs("docs", 3)
    hook = AISearchHook(retry_backoff=0.001)

    page = hook.list_jobs("docs", per_page=2, **call_namespace)
    assert [j.id for j in page.jobs] == [j["id"] for j in emulator.jobs("docs")[:2]]
    assert (page.page, page.per_page, page.count, page.total_count) == (1, 2, 2, 3)
    assert len(list(hook.iter_jobs("docs", **call_namespace))) == 3

    created = hook.create_job("docs", description="from airflow", **call_namespace)
    assert created.status is JobStatus.RUNNING
    assert created.description == "from airflow"
    assert hook.get_job("docs", created.id, **call_namespace).id == created.id
    cancelled = hook.cancel_job("docs", created.id, **call_namespace)
    assert cancelled.status is JobStatus.CANCELLED
    logs = list(hook.iter_job_logs("docs", created.id, **call_namespace))
    assert logs and logs[0].message == "Job ended: cancelled"

    sent = _job_requests(emulator)
    assert {r.route for r in sent} == {route}
    assert [r.method for r in sent] == ["GET", "GET", "POST", "GET", "PATCH", "GET"]
    assert sent[2].body == {"description": "from airflow"}
    assert sent[4].body == {"action": "cancel"}
    if route == "jobs":
        assert sent[0].path.startswith(f"/client/v4/accounts/{emulator.account_id}/ai-search/namespaces/default/")
    else:
        assert sent[0].path.startswith(f"/client/v4/accounts/{emulator.account_id}/ai-search/instances/docs/jobs")


def test_custom_namespace_from_hook_argument(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(instances=[("team-a", "kb")])
    connect(emu)
    hook = AISearchHook(namespace="team-a")
    assert hook.list_jobs("kb").jobs == ()
    assert emu.requests[-1].segments == (emu.account_id, "team-a", "kb")
    with pytest.raises(AISearchNotFoundError):
        AISearchHook(max_retries=0).list_jobs("kb")  # the connection's "default" namespace has no "kb"


def test_create_without_description_sends_empty_object(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    hook.create_job("docs")
    assert emulator.requests[-1].method == "POST"
    assert emulator.requests[-1].body == {}


def test_create_while_running_supersedes_the_running_job(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    first = hook.create_job("docs")
    second = hook.create_job("docs")
    old = hook.get_job("docs", first.id)
    assert old.status is JobStatus.SUPERSEDED
    assert old.end_reason == "new_job_has_started"
    assert hook.get_job("docs", second.id).status is JobStatus.RUNNING


def test_timestamps_parsed_in_both_wire_formats(make_emulator: MakeEmulator, connect: Connect) -> None:
    for fmt in ("cloudflare", "iso"):
        emu = make_emulator(timestamp_format=fmt)
        emu.add_job("docs", started_at=1_700_000_000, duration=60, end_reason="completed")
        connect(emu)
        job = AISearchHook().list_jobs("docs").jobs[0]
        assert job.started_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
        assert job.ended_at == job.started_at + timedelta(seconds=60)
        assert job.status is JobStatus.SUCCEEDED


# ---------------------------------------------------------------------------------------------
# Auth schemes
# ---------------------------------------------------------------------------------------------


def test_token_scheme_sends_only_bearer(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    hook.list_jobs("docs")
    assert [r.auth for r in emulator.requests] == ["bearer"]


def test_global_key_scheme_sends_only_email_and_key(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, global_key=True)
    hook = AISearchHook()
    job = hook.create_job("docs")
    hook.get_job("docs", job.id)
    assert [r.auth for r in emulator.requests] == ["global_key", "global_key"]


def test_wrong_global_key_is_an_auth_error(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, global_key=True, password="wrong-key-123456")
    with pytest.raises(AISearchAuthError) as info:
        AISearchHook().list_jobs("docs")
    assert info.value.status_code == 403
    assert info.value.codes == [9103]


def test_session_headers_do_not_carry_secrets(hook: AISearchHook) -> None:
    session = hook.get_conn()
    assert TOKEN not in repr(dict(session.headers))
    assert TOKEN not in repr(session.auth)
    assert TOKEN not in repr(hook.conn_info)


# ---------------------------------------------------------------------------------------------
# Pagination and connection reuse
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "per_page"), [(1, 50), (49, 50), (50, 50), (51, 50), (120, 50), (7, 3), (9, 3)])
def test_iter_jobs_costs_exactly_ceil_n_over_per_page(
    hook: AISearchHook, emulator: AISearchEmulator, count: int, per_page: int
) -> None:
    emulator.seed_jobs("docs", count)
    ids = [j.id for j in hook.iter_jobs("docs", per_page=per_page)]
    assert ids == [j["id"] for j in emulator.jobs("docs")]
    assert len(emulator.requests) == math.ceil(count / per_page)
    assert [int(r.query["page"]) for r in emulator.requests] == list(range(1, len(emulator.requests) + 1))


def test_iter_jobs_with_no_jobs_costs_one_request(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    assert list(hook.iter_jobs("docs")) == []
    assert len(emulator.requests) == 1


def test_iter_jobs_without_total_count_stops_on_short_page(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.seed_jobs("docs", 7)
    emulator.report_total_count = False
    assert len(list(hook.iter_jobs("docs", per_page=3))) == 7
    assert len(emulator.requests) == 3


def test_iter_jobs_is_lazy(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.seed_jobs("docs", 120)
    jobs = hook.iter_jobs("docs", per_page=50)
    assert emulator.requests == []
    first = next(jobs)
    assert first.id == emulator.jobs("docs")[0]["id"]
    assert len(emulator.requests) == 1


def test_iter_job_logs_pages(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    job = emulator.add_job("docs", duration=0, end_reason="completed")
    logs = list(hook.iter_job_logs("docs", job.id, per_page=2))
    assert [entry.id for entry in logs] == [3, 2, 1]
    assert len(emulator.requests) == 2  # 3 entries, 2 per page
    assert all(entry.created_at is not None and entry.created_at.tzinfo is not None for entry in logs)


def test_one_tcp_connection_is_reused_across_calls(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.seed_jobs("docs", 60)
    list(hook.iter_jobs("docs", per_page=10))
    job = hook.create_job("docs")
    for _ in range(5):
        hook.get_job("docs", job.id)
    hook.cancel_job("docs", job.id)
    list(hook.iter_job_logs("docs", job.id))
    assert len(emulator.requests) == 14
    assert emulator.connections == 1
    assert {r.connection for r in emulator.requests} == {1}


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
        (Fault.http(200, {"success": True, "result": [{"id": "a", "ended_at": "soon"}]}), "malformed job"),
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
    import time

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
# test_connection
# ---------------------------------------------------------------------------------------------


def test_test_connection_with_account_token(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "account-owned" in message
    assert [r.route for r in emulator.requests] == ["account_verify"]


def test_test_connection_falls_back_to_user_token(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(token_owner="user")
    connect(emu)
    ok, message = AISearchHook().test_connection()
    assert ok, message
    assert "user-owned" in message
    assert [r.route for r in emu.requests] == ["account_verify", "user_verify"]


def test_test_connection_with_global_key(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, global_key=True)
    ok, message = AISearchHook().test_connection()
    assert ok, message
    assert EMAIL in message
    assert GLOBAL_KEY not in message
    assert [(r.route, r.auth) for r in emulator.requests] == [("user", "global_key")]


def test_test_connection_bad_token(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="bad-token-0000000")
    ok, message = AISearchHook().test_connection()
    assert not ok
    assert "Invalid API Token" in message
    assert "bad-token-0000000" not in message
    assert len(emulator.requests) == 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"account_id": None}, "no account_id"), ({"password": ""}, "no API token")],
)
def test_test_connection_missing_settings_sends_nothing(
    emulator: AISearchEmulator, connect: Connect, overrides: dict[str, Any], expected: str
) -> None:
    connect(emulator, **overrides)
    ok, message = AISearchHook().test_connection()
    assert not ok
    assert expected in message
    assert emulator.requests == []


def test_missing_account_id_fails_before_any_request(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, account_id=None)
    with pytest.raises(AISearchError, match="'aisearch_default' has no account_id"):
        AISearchHook().list_jobs("docs")
    assert emulator.requests == []


def test_hook_does_not_look_up_the_connection_at_init(mocker: Any) -> None:
    lookup = mocker.patch.object(AISearchHook, "get_connection")
    AISearchHook("does_not_exist")
    lookup.assert_not_called()


def test_logs_never_contain_the_token(
    hook: AISearchHook,
    emulator: AISearchEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.inject(Fault.http(503), times=2)
    hook.list_jobs("docs")
    with pytest.raises(AISearchNotFoundError):
        hook.get_job("docs", "missing")
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err  # Airflow 3 logs through structlog to stdout
    assert "retrying" in text
    assert TOKEN not in text


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


@pytest.mark.parametrize("status", ["disabled", "expired"])
def test_test_connection_inactive_token(hook: AISearchHook, emulator: AISearchEmulator, status: str) -> None:
    emulator.token_status = status
    ok, message = hook.test_connection()
    assert not ok
    assert status in message


def test_test_connection_does_not_retry(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.http(503), times=10)
    ok, message = hook.test_connection()
    assert not ok
    assert "HTTP 503" in message
    assert len(emulator.requests) == 1
    assert sleep.call_count == 0


def test_test_connection_waits_at_most_its_own_timeout(
    emulator: AISearchEmulator, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(emulator)
    monkeypatch.setattr(AISearchHook, "TEST_TIMEOUT", (0.5, 0.5))
    hook = AISearchHook(timeout=(10.0, 60.0))
    emulator.inject(Fault("delay", delay=3.0), times=2)  # verify answers late
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert not ok
    assert time.monotonic() - started < 2.5  # not the hook's 60 s read timeout
    assert "timed out" in message.lower() or "timeout" in message.lower(), message
    assert hook.timeout == (10.0, 60.0)  # restored for the hook's other calls


def test_user_agent_names_the_provider(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    import airflow_provider_aisearch

    hook.list_jobs("docs")
    assert emulator.requests[0].user_agent == f"airflow-provider-aisearch/{airflow_provider_aisearch.__version__}"


def test_host_without_scheme_gets_https(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    conn = {"conn_type": "cloudflare_aisearch", "host": "api.example.com/client/v4/", "password": "t"}
    monkeypatch.setenv("AIRFLOW_CONN_NOSCHEME", json.dumps(conn))
    assert AISearchHook("noscheme").conn_info.base_url == "https://api.example.com/client/v4"


def test_close_drops_the_session(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    hook.list_jobs("docs")
    hook.close()
    assert "session" not in hook.__dict__
    hook.list_jobs("docs")
    assert emulator.connections == 2


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


def test_missing_token_gives_a_clear_error(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="")
    with pytest.raises(AISearchError, match="'aisearch_default' has no API token"):
        AISearchHook().list_jobs("docs")
    assert emulator.requests == []


def test_uri_form_connection_keeps_port_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CF_URI", "cloudflare-aisearch://:tok@api.example.com:8443/client%2Fv4?account_id=a"
    )
    info = AISearchHook("cf_uri").conn_info
    assert info.base_url == "https://api.example.com:8443/client/v4"
    assert info.account_id == "a"


def test_newest_jobs_walks_an_oldest_first_list_without_total(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(list_order="oldest")
    emu.report_total_count = False
    emu.seed_jobs("docs", 60)
    running = emu.add_job("docs", duration=3600)
    connect(emu)
    hook = AISearchHook()
    jobs = hook.run(hook.api.newest_jobs("docs"))
    assert running.id in [j.id for j in jobs]
    assert [r.query["page"] for r in emu.requests] == ["1", "2"]


def test_retry_waits_never_pass_the_deadline(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    import time as clock

    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.rate_limited(retry_after=100), times=5)
    hook.api.deadline = clock.time() + 30
    with pytest.raises(AISearchRateLimitError, match="would pass the deadline"):
        hook.list_jobs("docs")
    assert sleep.call_count == 0
    assert len(emulator.requests) == 1
