"""AISearchCreateJobOperator against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

import airflow_provider_aisearch.tasks.safe_create as safe_create
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import AISearchCooldownError, AISearchError, AISearchJobFailedError
from airflow_provider_aisearch.links import DASHBOARD_URL_XCOM_KEY
from airflow_provider_aisearch.operators import default_description
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from tests.conftest import Connect
from tests.operator_helpers import FAST, FakeTI, create_op, ctx, posts, seed

# Each test runs with the emulator sending Cloudflare's timestamps and RFC 3339 ones (see conftest).
pytestmark = pytest.mark.both_timestamp_formats


def test_create_pushes_job_id_and_link(emu: AISearchEmulator) -> None:
    ti = FakeTI()
    result = create_op().execute(ctx(ti=ti))
    (post,) = posts(emu)
    assert post.body == {"description": "airflow:dag_a:create:manual__2026-11-22T00:00:00+00:00:try1"}
    assert ti.xcom["job_id"] == result["id"] == emu.jobs("docs")[0]["id"]
    assert ti.xcom[DASHBOARD_URL_XCOM_KEY] == (
        f"https://dash.cloudflare.com/{emu.account_id}/ai/ai-search/instance/docs/jobs"
    )
    assert result["status"] == "running"


def test_default_description_is_at_most_255_and_unique() -> None:
    ti = FakeTI()
    ti.run_id = "r" * 400
    text = default_description(ctx(ti=ti))
    assert len(text) <= 255
    assert text.endswith(":try1")
    ti.try_number = 2
    second = default_description(ctx(ti=ti))
    assert second != text
    assert second.removesuffix(":try2") == text.removesuffix(":try1")  # every try shares the task-instance part
    ti.try_number = 123456
    assert len(default_description(ctx(ti=ti))) <= 255
    ti.run_id, ti.map_index, ti.try_number = "run", 3, 2
    assert default_description(ctx(ti=ti)) == "airflow:dag_a:create[3]:run:try2"


def test_if_running_reuse_adopts_without_post(emu: AISearchEmulator) -> None:
    running = emu.add_job("docs", duration=3600, source="schedule")
    ti = FakeTI()
    result = create_op(if_running="reuse").execute(ctx(ti=ti))
    assert result["id"] == running.id == ti.xcom["job_id"]
    assert posts(emu) == []


def test_if_running_fail_raises(emu: AISearchEmulator) -> None:
    running = emu.add_job("docs", duration=3600)
    with pytest.raises(AISearchError, match=f"{running.id}.*if_running='fail'"):
        create_op(if_running="fail").execute(ctx(ti=FakeTI()))
    assert posts(emu) == []


def test_if_running_supersede_creates_anyway(emu: AISearchEmulator) -> None:
    running = emu.add_job("docs", duration=3600)
    result = create_op(if_running="supersede").execute(ctx(ti=FakeTI()))
    assert result["id"] != running.id
    assert len(posts(emu)) == 1
    old = next(j for j in emu.jobs("docs") if j["id"] == running.id)
    assert old["end_reason"] == "new_job_has_started"


def test_if_running_wait_waits_then_creates(emu: AISearchEmulator) -> None:
    running = emu.add_job("docs", duration=0.4)
    result = create_op(if_running="wait").execute(ctx(ti=FakeTI()))
    assert result["id"] != running.id
    (post,) = posts(emu)
    old = next(j for j in emu.jobs("docs") if j["id"] == running.id)
    assert old["end_reason"] == "completed"  # it ended on its own, not superseded
    gets = [r for r in emu.requests if r.method == "GET" and r.segments[3:] == (running.id,)]
    assert len(gets) >= 2
    assert post.at > gets[-1].at


def test_no_running_job_creates(emu: AISearchEmulator) -> None:
    seed(emu, 3)
    create_op(if_running="fail").execute(ctx(ti=FakeTI()))
    assert len(posts(emu)) == 1


def test_cooldown_is_waited_out(emu: AISearchEmulator) -> None:
    emu.cooldown = 1.5
    emu.cooldown_retry_after = True
    emu.add_job("docs", duration=0)  # just started: the instance is in its cooldown
    started = time.monotonic()
    result = create_op(cooldown_timeout=30).execute(ctx(ti=FakeTI()))
    assert time.monotonic() - started >= 1.0
    statuses = [r.status for r in posts(emu)]
    assert statuses[-1] == 200
    assert set(statuses[:-1]) == {429}
    assert len(emu.jobs("docs")) == 2
    assert result["id"] == emu.jobs("docs")[0]["id"]


def test_cooldown_gives_up_after_cooldown_timeout(emu: AISearchEmulator) -> None:
    emu.cooldown = 3600
    emu.add_job("docs", duration=0)
    with pytest.raises(AISearchCooldownError, match="still in its sync cooldown after cooldown_timeout=0.3 s"):
        create_op(cooldown_timeout=0.3).execute(ctx(ti=FakeTI()))
    assert len(emu.jobs("docs")) == 1
    assert {r.status for r in posts(emu)} == {429}


@pytest.mark.parametrize("fault", [Fault("reset_after"), Fault("delay", delay=0.6)], ids=["reset_after", "slow"])
def test_ambiguous_post_resolves_to_exactly_one_job(emu: AISearchEmulator, fault: Fault) -> None:
    emu.inject(fault, method="POST")
    op = create_op(hook_params={"retry_backoff": 0.001, "timeout": (1.0, 0.3)})
    op.ambiguity_recheck_delay = 0.5
    ti = FakeTI()
    result = op.execute(ctx(ti=ti))
    assert len(emu.jobs("docs")) == 1
    assert len(posts(emu)) == 1
    assert result["id"] == ti.xcom["job_id"] == emu.jobs("docs")[0]["id"]


def test_ambiguous_post_that_created_nothing_is_sent_again(emu: AISearchEmulator) -> None:
    emu.inject(Fault("reset_before"), method="POST")
    result = create_op().execute(ctx(ti=FakeTI()))
    assert [r.fault for r in posts(emu)] == ["reset_before", None]
    assert [j["id"] for j in emu.jobs("docs")] == [result["id"]]


def test_on_kill_cancels_only_a_created_job(emu: AISearchEmulator) -> None:
    op = create_op()
    job = op.execute(ctx(ti=FakeTI()))
    op.on_kill()
    assert emu.jobs("docs")[0]["end_reason"] == "cancelled"
    assert emu.requests[-1].method == "PATCH"

    other = emu.start_job("docs", duration=3600)
    reuse = create_op(if_running="reuse")
    assert reuse.execute(ctx(ti=FakeTI()))["id"] == other.id
    emu.clear_log()
    reuse.on_kill()
    assert emu.requests == []
    assert emu.jobs("docs")[0]["ended_at"] is None
    assert job["id"] != other.id


def test_on_kill_during_wait_for_completion(emu: AISearchEmulator) -> None:
    op = create_op(wait_for_completion=True, timeout=30)

    def kill_once_created() -> None:  # Airflow calls on_kill from another thread when the task is killed
        deadline = time.monotonic() + 10
        while not posts(emu) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        op.on_kill()

    killer = threading.Thread(target=kill_once_created)
    killer.start()
    try:
        with pytest.raises(AISearchJobFailedError, match="cancelled"):
            op.execute(ctx(ti=FakeTI()))
    finally:
        killer.join(15)
    assert emu.jobs("docs")[0]["end_reason"] == "cancelled"
    assert [r.method for r in emu.requests].count("PATCH") == 1


def test_wait_for_completion_in_worker(emu: AISearchEmulator) -> None:
    emu.job_duration = 0.4
    result = create_op(wait_for_completion=True).execute(ctx(ti=FakeTI()))
    assert result["status"] == "succeeded"
    assert result["followed_from"] == []
    emu.plan_next_job(duration=0.2, end_reason="error")
    with pytest.raises(AISearchJobFailedError, match="'error'"):
        create_op(wait_for_completion=True, if_running="supersede").execute(ctx(ti=FakeTI()))


def test_wait_for_completion_deferrable(emu: AISearchEmulator) -> None:
    emu.job_duration = 0.4
    op = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti=ti))
    trigger = info.value.trigger
    assert isinstance(trigger, AISearchJobTrigger)
    assert trigger.job_id == ti.xcom["job_id"]
    assert trigger.deadline is not None

    async def collect() -> list[Any]:
        return [e async for e in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), 20))
    result = op.execute_complete(ctx(), event.payload)
    assert result["id"] == ti.xcom["job_id"]
    assert result["status"] == "succeeded"
    assert len(posts(emu)) == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"if_running": "queue"}, "if_running"),
        ({"cooldown_timeout": -1}, "cooldown_timeout"),
        ({"timeout": 0}, "timeout"),
        ({"on_superseded": "x"}, "on_superseded"),
    ],
)
def test_bad_create_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        create_op(**kwargs)


def test_bad_description_fails_before_any_request(emu: AISearchEmulator) -> None:
    with pytest.raises(ValueError, match="description"):
        create_op(description="x" * 256).execute(ctx(ti=FakeTI()))
    assert emu.requests == []


def test_deadline_is_in_the_future(emu: AISearchEmulator) -> None:
    op = create_op(wait_for_completion=True, deferrable=True, timeout=120)
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti=FakeTI()))
    deadline = info.value.trigger.deadline
    assert time.time() + 100 < deadline < time.time() + 130
    assert info.value.timeout is not None
    assert info.value.timeout > timedelta(seconds=120)


def test_ambiguous_create_never_adopts_an_older_job_with_the_same_description(emu: AISearchEmulator) -> None:
    old = emu.add_job("docs", started_at=time.time() - 86400, duration=60, description="nightly")
    emu.inject(Fault.http(502), method="POST")  # nothing created, answer lost
    result = create_op(description="nightly").execute(ctx(ti=FakeTI()))
    assert result["id"] != old.id
    assert [r.status for r in posts(emu)] == [502, 200]
    assert len(emu.jobs("docs")) == 2


def test_ambiguous_create_raises_when_absence_is_not_proven(emu: AISearchEmulator) -> None:
    from airflow_provider_aisearch.exceptions import AISearchCreateAmbiguousError

    now = time.time()
    for i in range(60):  # a full first page of jobs newer than our POST: the listing cannot prove absence
        emu.add_job("docs", started_at=now + 1 + i * 0.01, duration=0)
    emu.inject(Fault("reset_before"), method="POST")
    with pytest.raises(AISearchCreateAmbiguousError):
        create_op(if_running="supersede").execute(ctx(ti=FakeTI()))
    assert len(posts(emu)) == 1


def test_if_running_reuse_finds_the_running_job_on_an_oldest_first_list(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(list_order="oldest")
    emu.report_total_count = False
    connect(emu)
    emu.seed_jobs("docs", 60)
    running = emu.add_job("docs", duration=3600)
    assert create_op(if_running="reuse").execute(ctx(ti=FakeTI()))["id"] == running.id
    assert posts(emu) == []


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the operator's sleeps; fail fast instead of sleeping long or looping for ever."""
    recorded: list[float] = []
    start = time.monotonic()

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        assert seconds <= 5, f"slept {seconds} s"
        assert time.monotonic() - start < 10, "still looping after 10 s"
        time.sleep(seconds)

    monkeypatch.setattr(safe_create, "time", SimpleNamespace(monotonic=time.monotonic, time=time.time, sleep=sleep))
    return recorded


def test_reuse_adopts_the_newest_running_job(emu: AISearchEmulator) -> None:  # 13a
    emu.add_job("docs", started_at=emu.clock() - 300, duration=3600)
    newer = emu.add_job("docs", started_at=emu.clock() - 100, duration=3600)
    assert create_op(if_running="reuse").execute(ctx(ti=FakeTI()))["id"] == newer.id
    assert posts(emu) == []


def test_reuse_finds_the_running_job_on_the_last_page_of_an_oldest_first_list(
    make_emulator: Callable[..., AISearchEmulator], connect: Connect
) -> None:
    emu = make_emulator(list_order="oldest")  # 13b, 21
    connect(emu)
    emu.seed_jobs("docs", 60)
    running = emu.add_job("docs", duration=3600)
    assert create_op(if_running="reuse").execute(ctx(ti=FakeTI()))["id"] == running.id
    assert posts(emu) == []


def test_cooldown_waits_retry_after_once(emu: AISearchEmulator, sleeps: list[float]) -> None:  # 14a, 14b
    emu.cooldown = 1.0
    emu.cooldown_retry_after = True
    emu.add_job("docs", duration=0)
    # max_retries=0: the hook's own 429 retries would otherwise hide the operator's cooldown loop
    create_op(cooldown_timeout=30, hook_params={**FAST, "max_retries": 0}).execute(ctx(ti=FakeTI()))
    assert sleeps == [1.0]
    assert [r.status for r in posts(emu)] == [429, 200]


def test_cooldown_wait_is_capped_by_cooldown_timeout(emu: AISearchEmulator, sleeps: list[float]) -> None:  # 22b
    emu.cooldown = 3600
    emu.add_job("docs", duration=0)
    with pytest.raises(AISearchCooldownError):
        create_op(cooldown_timeout=0.3).execute(ctx(ti=FakeTI()))
    assert sleeps and all(s <= 0.3 for s in sleeps)


@pytest.mark.timeout(30)
def test_cooldown_gives_up_promptly(emu: AISearchEmulator, sleeps: list[float]) -> None:  # 14c
    emu.cooldown = 3600
    emu.add_job("docs", duration=0)
    with pytest.raises(AISearchCooldownError):
        create_op(cooldown_timeout=0.3).execute(ctx(ti=FakeTI()))


def test_ambiguous_resend_ignores_jobs_with_other_descriptions(emu: AISearchEmulator) -> None:  # 16
    old = emu.add_job("docs", started_at=emu.clock() - 600, duration=10, description="someone else")
    emu.inject(Fault("reset_before"), method="POST")
    result = create_op().execute(ctx(ti=FakeTI()))
    assert result["id"] != old.id
    assert len(posts(emu)) == 2


def test_ambiguous_create_respects_cooldown_timeout(emu: AISearchEmulator) -> None:  # 22g
    emu.inject(Fault("reset_before"), method="POST", times=3)
    with pytest.raises(AISearchError):
        create_op(cooldown_timeout=0).execute(ctx(ti=FakeTI()))
    assert len(posts(emu)) == 1


def test_on_kill_does_not_patch_an_ended_job(emu: AISearchEmulator) -> None:  # 18b
    op = create_op()
    job = op.execute(ctx(ti=FakeTI()))
    emu.finish_job("docs", job["id"])
    emu.clear_log()
    op.on_kill()
    assert [r.method for r in emu.requests] == ["GET"]


@pytest.mark.timeout(30)
def test_if_running_wait_honours_timeout(emu: AISearchEmulator, sleeps: list[float]) -> None:  # 22a
    running = emu.add_job("docs", duration=3600)
    with pytest.raises(AISearchError, match=f"{running.id}.*still running"):
        create_op(if_running="wait", timeout=0.3).execute(ctx(ti=FakeTI()))
    assert posts(emu) == []


def test_killing_the_deferred_task_cancels_only_a_created_job(emu: AISearchEmulator) -> None:
    op = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti=FakeTI()))
    trigger = info.value.trigger
    assert isinstance(trigger, AISearchJobTrigger)
    assert trigger.serialize()[1]["cancel_on_kill"] is True
    asyncio.run(trigger.on_kill())  # Airflow 3.3's triggerer calls this when a user kills the task
    assert emu.jobs("docs")[0]["end_reason"] == "cancelled"
    assert [r.method for r in emu.requests][-1] == "PATCH"

    running = emu.start_job("docs", duration=3600)
    reuse = create_op(if_running="reuse", wait_for_completion=True, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        reuse.execute(ctx(ti=FakeTI()))
    reused_trigger = info.value.trigger
    assert isinstance(reused_trigger, AISearchJobTrigger)
    assert reused_trigger.job_id == running.id
    emu.clear_log()
    asyncio.run(reused_trigger.on_kill())
    assert emu.requests == []
    assert emu.jobs("docs")[0]["ended_at"] is None
