"""AISearchHook against the emulator over real HTTP on 127.0.0.1: the methods, auth schemes, paging."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchNotFoundError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.jobs import JobStatus
from tests.conftest import TOKEN, Connect, MakeEmulator

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats

# ---------------------------------------------------------------------------------------------
# Every method, both path forms
# ---------------------------------------------------------------------------------------------


def _job_requests(emu: AISearchEmulator) -> list[Any]:
    return [r for r in emu.requests if r.route in ("jobs", "legacy_jobs")]


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
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


def test_user_agent_names_the_provider(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    import airflow_provider_aisearch

    hook.list_jobs("docs")
    assert emulator.requests[0].user_agent == f"airflow-provider-aisearch/{airflow_provider_aisearch.__version__}"


def test_close_drops_the_session(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    hook.list_jobs("docs")
    hook.close()
    assert "session" not in hook.__dict__
    hook.list_jobs("docs")
    assert emulator.connections == 2


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
