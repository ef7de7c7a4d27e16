"""AISearchListJobsOperator (and its JobFilter) against the emulator over real HTTP."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException, Asset

from airflow_provider_aisearch.assets import instance_uri
from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.models.jobs import JobStatus
from airflow_provider_aisearch.operators import JobFilter
from tests.conftest import Connect
from tests.operator_helpers import BASE, at, brute_force, create_op, ctx, list_op, seed

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"source": "user"},
        {"source": "schedule"},
        {"statuses": ["succeeded"]},
        {"statuses": [JobStatus.FAILED, "cancelled"]},
        {"statuses": "superseded"},
        {"started_after": at(1000)},
        {"started_before": at(1000).isoformat()},
        {"started_after": "2026-09-21T14:30:00Z", "started_before": "2026-09-21 14:40:00"},
        {"ended_after": at(1050)},
        {"ended_before": at(1050)},
        {"ended_after": at(500), "ended_before": at(1550), "source": "schedule", "statuses": ["succeeded", "failed"]},
    ],
)
def test_filters_match_a_brute_force_filter(emu: AISearchEmulator, filters: dict[str, Any]) -> None:
    seed(emu, 30)
    emu.add_job("docs", duration=3600, source="user")  # a job that is still running
    result = list_op(**filters).execute({})
    expected = brute_force(emu, JobFilter.build(**filters))
    assert [j["id"] for j in result] == expected
    assert expected  # every case matches something
    if any(k.startswith("ended_") for k in filters):
        assert all(j["ended_at"] is not None for j in result)


def test_bounds_are_inclusive_after_and_exclusive_before(emu: AISearchEmulator) -> None:
    jobs = seed(emu, 5)
    result = list_op(started_after=at(100), started_before=at(300), ids_only=True).execute({})
    assert result == [jobs[2].id, jobs[1].id]


def test_ids_only_and_limit_newest_first(emu: AISearchEmulator) -> None:
    jobs = seed(emu, 12)
    assert list_op(ids_only=True, limit=3).execute({}) == [jobs[11].id, jobs[10].id, jobs[9].id]
    dicts = list_op(limit=2).execute({})
    assert [d["id"] for d in dicts] == [jobs[11].id, jobs[10].id]
    assert set(dicts[0]) >= {"id", "source", "status", "started_at", "ended_at", "end_reason"}


def test_skip_if_empty(emu: AISearchEmulator) -> None:
    seed(emu, 5)
    assert list_op(source="user", started_after=at(10_000)).execute({}) == []
    with pytest.raises(AirflowSkipException, match="docs"):
        list_op(source="user", started_after=at(10_000), skip_if_empty=True).execute({})


def test_asset_extra_lists_the_jobs(emu: AISearchEmulator) -> None:
    jobs = seed(emu, 4)
    asset = Asset(instance_uri(emu.account_id, "default", "docs"))  # the instance's asset (issue 14)

    class Accessor:
        def __init__(self) -> None:
            self.extra: dict[str, Any] = {}

    class OutletEvents(defaultdict[str, Accessor]):
        """Keyed by the asset's URI, as Airflow's accessors key it (an Asset is unhashable on Airflow 3.1)."""

        def __missing__(self, key: Any) -> Accessor:
            return self.setdefault(key.uri, Accessor())

        def __getitem__(self, key: Any) -> Accessor:
            return super().__getitem__(key.uri) if key.uri in self else self.__missing__(key)

    events = OutletEvents()
    ids = list_op(ids_only=True, outlets=[asset]).execute(ctx(outlet_events=events))
    assert ids == [j.id for j in reversed(jobs)]
    assert events[asset].extra == {"job_ids": ids, "instance_id": "docs", "namespace": "default"}
    events.clear()
    list_op(outlets=[asset], started_after=at(99_999)).execute(ctx(outlet_events=events))
    assert dict(events) == {}  # nothing found: nothing attached


@pytest.mark.parametrize(
    ("filters", "expected_pages"),
    [
        ({"started_after": at(100 * 170)}, 1),  # the 30 newest of 200: first page only
        ({"started_after": at(100 * 80)}, 3),  # 120 newest: pages 1-3
        ({"ended_after": at(100 * 170 + 50)}, 1),
        ({"limit": 10}, 1),
        ({"statuses": ["failed"], "limit": 5}, 1),
        ({"source": "user"}, 4),  # no bound: every page
    ],
)
def test_paging_stops_early_on_a_newest_first_list(
    emu: AISearchEmulator, filters: dict[str, Any], expected_pages: int
) -> None:
    seed(emu, 200)
    result = list_op(ids_only=True, **filters).execute({})
    pure = {k: v for k, v in filters.items() if k != "limit"}
    expected = brute_force(emu, JobFilter.build(**pure))[: filters.get("limit")]
    assert result == expected
    assert len(emu.requests) == expected_pages


def test_paging_stops_early_on_an_oldest_first_list(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(list_order="oldest")
    connect(emu)
    seed(emu, 200)
    result = list_op(ids_only=True, started_before=at(100 * 30)).execute({})
    assert result == brute_force(emu, JobFilter.build(started_before=at(100 * 30)))
    assert len(emu.requests) == 1
    emu.clear_log()
    # a lower bound or a limit needs the newest jobs, which an oldest-first list gives last
    assert list_op(ids_only=True, limit=3).execute({}) == brute_force(emu, JobFilter())[:3]
    assert len(emu.requests) == math.ceil(200 / 50)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"source": "cron"}, "source"),
        ({"started_after": "not a date"}, "started_after"),
        ({"ended_before": 12}, "ended_before"),
        ({"instance_id": "Bad Id"}, "instance_id"),
    ],
)
def test_bad_list_arguments_fail_before_any_request(emu: AISearchEmulator, kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        list_op(**kwargs).execute({})
    assert emu.requests == []


@pytest.mark.parametrize(("kwargs", "name"), [({"statuses": ["done"]}, "statuses"), ({"limit": 0}, "limit")])
def test_bad_list_arguments_fail_at_parse_time(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        list_op(**kwargs)


def test_list_statuses_follow_end_reason_overrides(emu: AISearchEmulator) -> None:
    odd = emu.add_job("docs", started_at=BASE, duration=10, end_reason="indexed_ok")
    assert list_op(statuses=["succeeded"], ids_only=True).execute({}) == []
    result = list_op(statuses=["succeeded"], success_end_reasons=["Indexed_OK"]).execute({})
    assert [(j["id"], j["status"]) for j in result] == [(odd.id, "succeeded")]


def test_bad_hook_params_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="hook_params"):
        list_op(hook_params={"retries": 2})
    with pytest.raises(ValueError, match="max_retries"):
        create_op(hook_params={"max_retries": -1})


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing (expected values worked out independently of JobFilter)
# ---------------------------------------------------------------------------------------------

INDEPENDENT = {  # seed(): job i is "user" iff i % 3 == 0; REASONS[i % 6] -> status
    0: "succeeded",
    1: "failed",
    2: "succeeded",
    3: "cancelled",
    4: "superseded",
    5: "succeeded",
}


def test_source_filter_against_independent_oracle(emu: AISearchEmulator) -> None:  # 2a
    jobs = seed(emu, 12)
    assert list_op(source="user", ids_only=True).execute({}) == [jobs[i].id for i in (9, 6, 3, 0)]


def test_status_filter_against_independent_oracle(emu: AISearchEmulator) -> None:  # 2b
    jobs = seed(emu, 12)
    want = [jobs[i].id for i in reversed(range(12)) if INDEPENDENT[i % 6] in ("failed", "cancelled")]
    assert list_op(statuses=["failed", "cancelled"], ids_only=True).execute({}) == want


def test_running_job_never_matches_ended_bounds(emu: AISearchEmulator) -> None:  # 2c
    # test_filters_match_a_brute_force_filter's "running job" (BASE + 3000, 1 h) ended on 2026-09-21
    jobs = seed(emu, 3)
    emu.add_job("docs", duration=3600)  # really running: started now
    assert list_op(ended_after=at(0), ids_only=True).execute({}) == [j.id for j in reversed(jobs)]
    assert list_op(ended_before=at(10**9), ids_only=True).execute({}) == [j.id for j in reversed(jobs)]


def test_empty_source_means_any(emu: AISearchEmulator) -> None:  # 22c (templated source rendering to "")
    jobs = seed(emu, 3)
    assert list_op(source="", ids_only=True).execute({}) == [j.id for j in reversed(jobs)]


def test_naive_datetime_bounds_are_utc(emu: AISearchEmulator) -> None:  # 3
    jobs = seed(emu, 5)
    naive = list_op(started_after=at(100).replace(tzinfo=None), started_before=at(300).replace(tzinfo=None))
    assert [j["id"] for j in naive.execute({})] == [jobs[2].id, jobs[1].id]


def test_ended_after_keeps_an_older_job_that_ended_just_after_its_successor_started(emu: AISearchEmulator) -> None:
    a = emu.add_job("docs", started_at=BASE, duration=101)  # 4b: ends 1 s after b started (within tolerance)
    b = emu.add_job("docs", started_at=BASE + 100, duration=50)
    c = emu.add_job("docs", started_at=BASE + 200, duration=50)
    assert list_op(ended_after=at(101), ids_only=True).execute({}) == [c.id, b.id, a.id]


def test_oldest_first_stops_at_the_earliest_upper_bound(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(list_order="oldest")
    connect(emu)
    jobs = seed(emu, 200)
    result = list_op(ids_only=True, started_before=at(100 * 150), ended_before=at(100 * 30)).execute({})
    assert result == [j.id for j in reversed(jobs[:30])]
    assert len(emu.requests) == 1


def test_no_early_stop_once_the_list_was_seen_rising(emu: AISearchEmulator) -> None:  # 6
    jobs = seed(emu, 100)
    order = [0, 1, *range(99, 60, -1), *range(59, 1, -1), 60]  # rises, then falls, then one out of place
    emu._ordered = lambda inst: [jobs[i] for i in order]  # type: ignore[method-assign]  # a list in no order
    assert list_op(started_after=at(100 * 60), ids_only=True).execute({}) == [jobs[i].id for i in range(99, 59, -1)]
