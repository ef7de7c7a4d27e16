"""Property-based bad input: every value is rejected locally before any request, or reaches the API as
exactly the intended path segment; malformed answers become AISearchError, never a raw exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import AISearchError, AISearchNotFoundError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.operators import parse_bound
from tests.conftest import TOKEN

EXAMPLES = 150
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
TRICKY = st.sampled_from(
    ["", " ", ".", "..", "/", "a/b", "%2F", "a%2Fb", "../jobs", "?", "#", "\\", "\x00", "\n", "ü", "日本", "x" * 10_000]
)
IDS = st.one_of(TRICKY, st.text(max_size=300), st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True))


@pytest.fixture(scope="module")
def fuzz_emu() -> Iterator[AISearchEmulator]:
    with AISearchEmulator(token=TOKEN, cooldown=0, job_duration=3600) as emu:
        yield emu


@pytest.fixture
def hook(fuzz_emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch) -> AISearchHook:
    monkeypatch.setenv("AIRFLOW_CONN_AISEARCH_DEFAULT", fuzz_emu.connection_json())
    return AISearchHook(max_retries=0)


def _count(figures: dict[str, dict[str, Any]], name: str) -> None:
    figures.setdefault("fuzzing", {}).setdefault(name, 0)
    figures["fuzzing"][name] += 1


def _check_one_segment(
    emu: AISearchEmulator, call: Any, expected_segments: tuple[str, ...], query: dict[str, str] | None = None
) -> None:
    emu.clear_log()
    try:
        call()
    except ValueError:
        assert emu.requests == []  # rejected locally, before any request
        return
    except AISearchNotFoundError:
        pass  # reached the API, which does not know it
    (record,) = emu.requests
    assert record.route == "jobs"
    assert record.segments == expected_segments
    assert record.query == (query or {})


@SETTINGS
@given(job_id=IDS)
def test_job_ids(hook: AISearchHook, fuzz_emu: AISearchEmulator, job_id: str, figures: Any) -> None:
    _count(figures, "job_id")
    acct = fuzz_emu.account_id
    _check_one_segment(fuzz_emu, lambda: hook.get_job("docs", job_id), (acct, "default", "docs", job_id))


@SETTINGS
@given(instance_id=IDS)
def test_instance_ids(hook: AISearchHook, fuzz_emu: AISearchEmulator, instance_id: str, figures: Any) -> None:
    _count(figures, "instance_id")
    acct = fuzz_emu.account_id
    _check_one_segment(
        fuzz_emu, lambda: hook.list_jobs(instance_id), (acct, "default", instance_id), {"page": "1", "per_page": "50"}
    )


@SETTINGS
@given(namespace=IDS)
def test_namespaces(hook: AISearchHook, fuzz_emu: AISearchEmulator, namespace: str, figures: Any) -> None:
    _count(figures, "namespace")
    acct = fuzz_emu.account_id
    _check_one_segment(
        fuzz_emu,
        lambda: hook.list_jobs("docs", namespace=namespace),
        (acct, namespace, "docs"),
        {"page": "1", "per_page": "50"},
    )


@SETTINGS
@given(page=st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5), st.none()))
def test_page_sizes(hook: AISearchHook, fuzz_emu: AISearchEmulator, page: Any, figures: Any) -> None:
    _count(figures, "per_page")
    fuzz_emu.clear_log()
    try:
        hook.list_jobs("docs", per_page=page)
    except ValueError:
        assert fuzz_emu.requests == []
        return
    assert 1 <= page <= 50
    assert fuzz_emu.requests[-1].query["per_page"] == str(page)


@SETTINGS
@given(value=st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.datetimes(), st.none()))
def test_time_bounds(value: Any, figures: Any) -> None:
    _count(figures, "time_bound")
    try:
        parsed = parse_bound("started_after", value)
    except ValueError as exc:
        message = str(exc)
    else:
        assert parsed is None or parsed.tzinfo is not None
        return
    assert "started_after" in message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
JOBISH = st.fixed_dictionaries(
    {"success": st.sampled_from([True, False, None, "yes"])},
    optional={
        "result": st.one_of(
            JSON,
            st.lists(st.dictionaries(st.sampled_from(["id", "ended_at", "started_at", "source", "end_reason"]), JSON)),
            st.dictionaries(st.sampled_from(["id", "ended_at", "started_at", "description"]), JSON),
        ),
        "result_info": JSON,
        "errors": JSON,
    },
)


@SETTINGS
@given(body=st.one_of(JOBISH, JSON, st.binary(max_size=64)), status=st.sampled_from([200, 201, 400, 500, 502]))
def test_malformed_answers(
    hook: AISearchHook, fuzz_emu: AISearchEmulator, body: Any, status: int, figures: Any
) -> None:
    _count(figures, "malformed_answer")
    fuzz_emu.clear_faults()
    payload = body if isinstance(body, bytes) else json.dumps(body)
    fuzz_emu.inject(Fault.http(status, payload), times=2)
    for call in (lambda: hook.list_jobs("docs"), lambda: hook.get_job("docs", "job-1")):
        try:
            call()
        except AISearchError:
            pass  # the only exception type allowed (no KeyError, TypeError, JSONDecodeError, ...)
