"""Paging under change and under any order: the list operator, ``iter_jobs``, ``newest_jobs`` and
``tail_job_logs`` against the emulator over real HTTP (issue 11, point 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.api import ORDER_EVIDENCE, ListOrder
from airflow_provider_aisearch.emulator import AISearchEmulator, EmulatedJob
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.operators import JobFilter
from tests.operator_helpers import BASE, at, brute_force, list_op, seed

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats

Connect = Callable[..., None]
MakeEmulator = Callable[..., AISearchEmulator]

FILTERS: list[dict[str, Any]] = [
    {},
    {"started_after": at(100 * 170)},  # the 30 newest of 200
    {"started_before": at(100 * 30)},  # the 30 oldest
    {"ended_after": at(100 * 170 + 50)},
    {"source": "user", "statuses": ["succeeded", "failed"]},
    {"limit": 10},
    {"statuses": ["failed"], "limit": 5},
]


def list_requests(emu: AISearchEmulator) -> int:
    return sum(1 for r in emu.requests_to(method="GET") if len(r.segments) == 3)


def start_once_before_page(emu: AISearchEmulator, page: int, **kwargs: Any) -> list[EmulatedJob]:
    """Start one job just before ``page`` is served the first time (a job starting mid-pagination)."""
    started: list[EmulatedJob] = []

    def hook(number: int) -> None:
        if number == page and not started:
            started.append(emu.start_job("docs", **kwargs))

    emu.before_list_page = hook
    return started


def expected(emu: AISearchEmulator, filters: dict[str, Any]) -> list[str]:
    pure = {k: v for k, v in filters.items() if k != "limit"}
    return brute_force(emu, JobFilter.build(**pure))[: filters.get("limit")]


def env(make_emulator: MakeEmulator, connect: Connect, order: str) -> AISearchEmulator:
    emu = make_emulator(list_order=order)
    connect(emu)
    return emu


# ---------------------------------------------------------------------------------------------
# The list operator: equal to a brute-force filter whatever the order; requests only as needed
# ---------------------------------------------------------------------------------------------

# Pages read for 200 jobs (4 pages of 50): early only on a proven order, and only the pages needed.
PAGES = {
    "newest": [4, 1, 4, 1, 4, 1, 1],
    "oldest": [4, 4, 1, 4, 4, 4, 4],
    "none": [4, 4, 4, 4, 4, 4, 4],
}


@pytest.mark.parametrize("order", ["newest", "oldest", "none"])
@pytest.mark.parametrize("case", range(len(FILTERS)))
def test_list_operator_equals_brute_force_in_any_order(
    make_emulator: MakeEmulator, connect: Connect, order: str, case: int
) -> None:
    emu = env(make_emulator, connect, order)
    seed(emu, 200)
    filters = FILTERS[case]
    result = list_op(ids_only=True, **filters).execute({})
    assert result == expected(emu, filters)
    assert result  # every case matches something
    assert list_requests(emu) == len(emu.requests) == PAGES[order][case]


@pytest.mark.parametrize("order", ["newest", "oldest", "none"])
@pytest.mark.parametrize("filters", [{}, {"started_after": at(100 * 120)}, {"limit": 60}])
def test_a_job_started_while_paging_is_listed_once(
    make_emulator: MakeEmulator, connect: Connect, order: str, filters: dict[str, Any]
) -> None:
    emu = env(make_emulator, connect, order)
    emu.clock = lambda: BASE + 100 * 200  # "now": after the seeded jobs, which have all ended
    seed(emu, 200)
    before = expected(emu, filters)
    started = start_once_before_page(emu, 2, duration=3600)
    result = list_op(ids_only=True, **filters).execute({})
    assert started  # the list changed between the page 1 and page 2 requests
    after = expected(emu, filters)
    assert len(result) == len(set(result))  # each id once
    # The new job is listed or not (depending on where it lands), but nothing else changes.
    assert result in (before, after)
    if order == "newest":
        # It shifts every job one place down, so the last job of page 1 is listed again on page 2;
        # it lands ahead of the pages still to read: not listed.
        assert result == before
    if order == "oldest":
        assert result == after  # it lands at the end, on a page still to read


def test_a_job_started_while_paging_is_read_once_by_iter_jobs(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    emulator.clock = lambda: BASE + 100 * 200
    seed(emulator, 120)
    before = [j["id"] for j in emulator.jobs("docs")]
    started = start_once_before_page(emulator, 2)
    ids = [j.id for j in hook.iter_jobs("docs")]
    assert started
    assert len(ids) == len(set(ids)) == 120  # newest first: the new job is ahead of page 2
    assert ids == before
    assert list_requests(emulator) == 3  # 121 jobs: the third page ends the list


def test_iter_job_pages_can_stop_between_pages(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    seed(emulator, 120)
    pages = hook.iter_job_pages("docs")
    assert len(next(pages)) == 50
    assert list_requests(emulator) == 1
    assert len(next(pages)) == 50
    assert list_requests(emulator) == 2


def _move_newest_to(emu: AISearchEmulator, position: int) -> None:
    """The emulator lists newest first, except that the newest job comes at ``position``."""
    ordered = emu._ordered

    def patched(inst: Any) -> list[EmulatedJob]:
        jobs = ordered(inst)
        return [*jobs[1 : position + 1], jobs[0], *jobs[position + 1 :]]

    emu._ordered = patched  # type: ignore[method-assign]


def test_paging_never_stops_inside_a_page_that_breaks_the_order(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    # Page 1 starts newest first, but its 21st job is the newest of all: the list has no order,
    # although the first 20 jobs (and the first 5 matches) looked ordered.
    seed(emulator, 120)
    _move_newest_to(emulator, 20)
    result = list_op(ids_only=True, limit=5).execute({})
    assert result == brute_force(emulator, JobFilter())[:5]
    assert list_requests(emulator) == 3  # no proven order: every page


def test_two_or_few_ordered_jobs_prove_no_order(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    # Pages of 2 jobs: even a page in perfect order proves nothing before ORDER_EVIDENCE jobs.
    seed(emulator, 40)
    pages = hook.iter_job_pages("docs", per_page=2)
    order = ListOrder()
    read = 0
    for page in pages:
        for job in page:
            order.see(job.started_at)
        read += len(page)
        assert order.descending == (read >= ORDER_EVIDENCE)
        if order.descending:
            break
    assert read == ORDER_EVIDENCE
    assert not ListOrder([at(3), at(2)]).proven
    assert not ListOrder([at(i) for i in range(ORDER_EVIDENCE - 1, 0, -1)]).proven
    assert ListOrder([at(i) for i in range(ORDER_EVIDENCE, 0, -1)]).descending
    # A job not started yet (no started_at) has no place in the order: passed over.
    assert ListOrder([None, *[at(i) for i in range(ORDER_EVIDENCE, 0, -1)], None]).descending
    assert not ListOrder([*[at(i) for i in range(20, 0, -1)], at(30)]).proven  # one step the other way


# ---------------------------------------------------------------------------------------------
# newest_jobs (the create operator's and the pollers' listing)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("order", "requests"), [("newest", 1), ("oldest", 2), ("none", 3)])
def test_newest_jobs_holds_the_newest_job_in_any_order(
    make_emulator: MakeEmulator, connect: Connect, order: str, requests: int
) -> None:
    emu = env(make_emulator, connect, order)
    seed(emu, 119)
    running = emu.add_job("docs", started_at=BASE + 100 * 119, duration=10**9)
    hook = AISearchHook(retry_backoff=0.001, timeout=(2.0, 5.0))
    jobs = hook.run(hook.api.newest_jobs("docs"))
    assert running.id in {j.id for j in jobs}
    assert len(jobs) == len({j.id for j in jobs})
    assert list_requests(emu) == requests
    hook.close()


def test_newest_jobs_reads_on_when_a_job_starts_after_page_1_of_an_oldest_first_list(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = env(make_emulator, connect, "oldest")
    emu.clock = lambda: BASE + 100 * 200
    seed(emu, 100)  # two full pages
    started = start_once_before_page(emu, 2)
    hook = AISearchHook(retry_backoff=0.001, timeout=(2.0, 5.0))
    jobs = hook.run(hook.api.newest_jobs("docs"))
    assert started and started[0].id in {j.id for j in jobs}
    assert [r.query["page"] for r in emu.requests] == ["1", "2", "3"]
    hook.close()


def test_newest_jobs_on_a_list_whose_last_page_breaks_the_order_reads_every_page(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = env(make_emulator, connect, "oldest")
    seed(emu, 150)
    ordered = emu._ordered

    def patched(inst: Any) -> list[EmulatedJob]:
        jobs = ordered(inst)  # oldest first, but the oldest job comes last (on the last page)
        return [*jobs[1:], jobs[0]]

    emu._ordered = patched  # type: ignore[method-assign]
    hook = AISearchHook(retry_backoff=0.001, timeout=(2.0, 5.0))
    jobs = hook.run(hook.api.newest_jobs("docs"))
    newest = max(emu.jobs("docs"), key=lambda j: j["started_at"])
    assert newest["id"] in {j.id for j in jobs}
    assert sorted(r.query["page"] for r in emu.requests) == ["1", "2", "3", "3"]
    hook.close()


def test_newest_jobs_reads_every_page_when_a_later_page_breaks_the_order(
    hook: AISearchHook, emulator: AISearchEmulator
) -> None:
    # Newest first, but the newest job is listed on page 2: page 1 proves an order that page 2 breaks.
    seed(emulator, 150)
    _move_newest_to(emulator, 60)
    listed = emulator.jobs("docs")
    jobs = hook.run(hook.api.newest_jobs("docs", want={listed[70]["id"]}, max_pages=2))
    assert {j["id"] for j in listed} == {j.id for j in jobs}
    assert [r.query["page"] for r in emulator.requests] == ["1", "2", "3"]


# ---------------------------------------------------------------------------------------------
# tail_job_logs
# ---------------------------------------------------------------------------------------------


def test_tail_job_logs_reads_every_page_when_the_entries_have_no_order(
    hook: AISearchHook, emulator: AISearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = emulator.add_job("docs", duration=0)
    entries: list[dict[str, Any]] = [
        {"id": i, "message": f"line {i}", "message_type": 0, "created_at": int(BASE) + i} for i in range(1, 1201)
    ]
    shuffled = sorted(entries, key=lambda e: (e["id"] * 7919) % 1201)
    monkeypatch.setattr(emulator, "_logs_json", lambda j: shuffled if j is job else [])
    tail = hook.tail_job_logs("docs", job.id, 5)
    assert [e.id for e in tail] == [1196, 1197, 1198, 1199, 1200]
    assert len(emulator.requests) == 3  # 1,200 entries, 500 a page
