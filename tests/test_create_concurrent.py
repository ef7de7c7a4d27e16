"""Two create tasks with ``if_running="wait"`` on one instance: they take turns, never superseding each other.

Two tasks in different DAGs wait on the same running job. When it ends, the first to move creates
its job; the other must list again (after its wait, and before each retry through the create
cooldown), see that job running, and wait for it too. Deferred (triggers run in-process) and in the
worker (two threads), against the emulator over real HTTP; the request log tells the order.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.emulator.server import RequestRecord
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.operators import AISearchCreateJobOperator
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from tests.operator_helpers import FakeTI, create_op, posts


def context(dag_id: str) -> Any:
    ti = FakeTI()
    ti.dag_id = dag_id
    return {"ti": ti}


Task = tuple[AISearchCreateJobOperator, Any]


def two_waiting_tasks(**kwargs: Any) -> list[Task]:
    """``dag_a.create`` and ``dag_b.create``, both ``if_running="wait"`` (their default descriptions differ)."""
    return [(create_op(if_running="wait", timeout=60, **kwargs), context(dag)) for dag in ("dag_a", "dag_b")]


def run_triggers(*triggers: AISearchJobTrigger) -> list[dict[str, Any]]:
    """Run triggers side by side in one event loop (as one triggerer would), each until its first event."""

    async def first_event(trigger: AISearchJobTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    async def run_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(first_event(t) for t in triggers)))

    return asyncio.run(asyncio.wait_for(run_all(), 30))


def defer_all(*tasks: Task) -> list[TaskDeferred]:
    """Run each task until it defers (waiting on the running job); what each deferral holds."""
    deferrals = []
    for op, ctx in tasks:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx)
        deferrals.append(deferred.value)
    return deferrals


def resume(op: AISearchCreateJobOperator, deferred: TaskDeferred, ctx: Any, event: dict[str, Any]) -> Any:
    """What Airflow does when the trigger fires: call the method with the event and the defer kwargs."""
    return getattr(op, deferred.method_name)(ctx, event=event, **(deferred.kwargs or {}))


def wait_for(condition: Callable[[], bool], what: str, bound: float = 20.0) -> None:
    """Wait until ``condition()`` holds (a bound against hanging, not a timing assertion)."""
    give_up = time.monotonic() + bound
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting until {what}")
        time.sleep(0.01)


def gets_of(emu: AISearchEmulator, job_id: str) -> list[RequestRecord]:
    return [r for r in emu.requests if r.method == "GET" and job_id in r.segments]


def created(emu: AISearchEmulator) -> list[RequestRecord]:
    return [r for r in posts(emu) if r.status == 200]


def job_by_description(emu: AISearchEmulator, description: str) -> dict[str, Any]:
    (job,) = [j for j in emu.jobs("docs") if j["description"] == description]
    return job


def job_by_id(emu: AISearchEmulator, job_id: str) -> dict[str, Any]:
    return next(j for j in emu.jobs("docs") if j["id"] == job_id)


def assert_took_turns(emu: AISearchEmulator, first_running: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exactly two jobs created, one after the other; nobody superseded anybody. Returns both jobs, in order."""
    first, second = created(emu)  # exactly 2 successful POSTs...
    first_job = job_by_description(emu, first.body["description"])
    second_job = job_by_description(emu, second.body["description"])
    assert first.body != second.body  # ...one per task
    reasons = {j["id"]: j["end_reason"] for j in emu.jobs("docs")}
    assert len(reasons) == 3
    assert "new_job_has_started" not in reasons.values()
    assert reasons[first_running] == "completed"  # the job both waited on ended on its own
    assert reasons[first_job["id"]] == "completed"  # so did the first task's job: the second task waited for it
    assert second_job["ended_at"] is None
    # The second task listed again after its wait (or its cooldown wait) and before its POST.
    index = emu.requests.index
    lists = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/jobs")]
    assert any(index(first) < index(r) < index(second) for r in lists)
    return first_job, second_job


# ---------------------------------------------------------------------------------------------
# Deferred: both wait in the triggerer, then resume in the worker one after the other
# ---------------------------------------------------------------------------------------------


def test_deferred_tasks_waiting_on_one_job_take_turns(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=3600)
    (op_a, ctx_a), (op_b, ctx_b) = two_waiting_tasks(deferrable=True)
    idle = defer_all((op_a, ctx_a), (op_b, ctx_b))
    emu.finish_job("docs", running.id)
    event_a, event_b = run_triggers(*(d.trigger for d in idle))
    assert event_a["status"] == event_b["status"] == "done"
    first = resume(op_a, idle[0], ctx_a, event_a)  # dag_a creates its job
    assert len(created(emu)) == 1
    with pytest.raises(TaskDeferred) as again:  # dag_b lists again, sees it running, and waits for it
        resume(op_b, idle[1], ctx_b, event_b)
    assert isinstance(again.value.trigger, AISearchJobTrigger)
    assert again.value.trigger.job_id == first["id"]
    assert again.value.trigger.deadline is not None and idle[1].trigger.deadline is not None
    assert abs(again.value.trigger.deadline - idle[1].trigger.deadline) < 1.0  # within the same timeout
    assert len(created(emu)) == 1
    emu.finish_job("docs", first["id"])
    (event,) = run_triggers(again.value.trigger)
    second = resume(op_b, again.value, ctx_b, event)
    first_job, second_job = assert_took_turns(emu, running.id)
    assert (first_job["id"], second_job["id"]) == (first["id"], second["id"])
    assert ctx_b["ti"].xcom["job_id"] == second["id"]


def test_deferred_task_lists_again_before_its_cooldown_retry(emu: AISearchEmulator) -> None:
    emu.cooldown, emu.cooldown_retry_after = 1.0, True
    running = emu.add_job("docs", started_at=time.time() - 60, duration=3600)  # (its own cooldown is over)
    (op_a, ctx_a), (op_b, ctx_b) = two_waiting_tasks(deferrable=True)
    idle = defer_all((op_b, ctx_b), (op_a, ctx_a))
    emu.finish_job("docs", running.id)
    event_b, event_a = run_triggers(*(d.trigger for d in idle))
    results: list[Any] = []
    # dag_b lists (nothing runs) and POSTs; dag_a's job starts just before that POST is served, so it gets a 429.
    emu.inject(Fault.before(lambda: results.append(resume(op_a, idle[1], ctx_a, event_a))), method="POST")
    with pytest.raises(TaskDeferred) as again:  # after the cooldown wait: lists again, sees dag_a's job, waits for it
        resume(op_b, idle[0], ctx_b, event_b)
    (first,) = results
    assert [r.status for r in posts(emu)] == [429, 200]
    assert again.value.trigger.job_id == first["id"]
    emu.finish_job("docs", first["id"])
    (event,) = run_triggers(again.value.trigger)
    second = resume(op_b, again.value, ctx_b, event)
    first_job, second_job = assert_took_turns(emu, running.id)
    assert (first_job["id"], second_job["id"]) == (first["id"], second["id"])


# ---------------------------------------------------------------------------------------------
# In the worker: two threads, each polling the running job
# ---------------------------------------------------------------------------------------------


def _ready_for_execute_in_this_thread() -> None:
    """
    Airflow 2.11's ``ExecutorSafeguard`` (around ``execute``) keeps its callers in a thread-local that it sets
    up in the importing thread only: another thread's ``execute`` fails with ``AttributeError: callers``.
    Airflow runs a task in its process's main thread; these tests run two in threads, so they set it up.
    """
    try:
        safeguard = importlib.import_module("airflow.models.baseoperator").ExecutorSafeguard
    except (ImportError, AttributeError):  # Airflow 3: not there
        return
    if not hasattr(safeguard._sentinel, "callers"):
        safeguard._sentinel.callers = {}


def run_in_threads(tasks: list[Task]) -> tuple[list[Any], Callable[[], None]]:
    """Start each task's ``execute`` in a thread; returns the results (filled as they end) and a join."""
    results: list[Any] = []

    def run(op: AISearchCreateJobOperator, ctx: Any) -> None:
        try:
            _ready_for_execute_in_this_thread()
            results.append(op.execute(ctx))
        except Exception as exc:  # the assertions below report it
            results.append(exc)

    threads = [threading.Thread(target=run, args=task, daemon=True) for task in tasks]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads)

    return results, join


def both_waiting_on(emu: AISearchEmulator, job_id: str) -> bool:
    """Both tasks poll ``job_id`` (each has its own connection)."""
    return len({r.connection for r in gets_of(emu, job_id)}) >= 2


def finish_the_first_task_job_once_waited_on(emu: AISearchEmulator, results: list[Any]) -> None:
    """When the second task polls the first task's job (or both tasks are done), end that job."""

    def first_job() -> str | None:
        ok = created(emu)
        return job_by_description(emu, ok[0].body["description"])["id"] if ok else None

    wait_for(lambda: first_job() is not None, "the first task created its job")
    first = first_job()
    assert first is not None
    wait_for(lambda: bool(gets_of(emu, first)) or len(results) == 2, "the second task waits for the first's job")
    emu.finish_job("docs", first)


def run_two_worker_tasks_past(emu: AISearchEmulator, running_id: str) -> list[Any]:
    """Two waiting tasks in threads: both poll ``running_id``, it ends, and each returns its job's dict."""
    results, join = run_in_threads(two_waiting_tasks())
    wait_for(lambda: both_waiting_on(emu, running_id), "both tasks poll the running job")
    emu.finish_job("docs", running_id)
    finish_the_first_task_job_once_waited_on(emu, results)
    join()
    assert all(isinstance(r, dict) for r in results), results
    return results


def test_worker_tasks_waiting_on_one_job_take_turns(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=3600)
    passed: list[int] = []

    def after_the_end_one_at_a_time() -> None:
        # The first task to see the job ended goes on; the other sees it only once the first has created its job.
        if job_by_id(emu, running.id)["ended_at"] is None:
            return
        passed.append(1)
        if len(passed) > 1:
            wait_for(lambda: len(emu.jobs("docs")) >= 2, "the first task created its job", bound=10)

    emu.inject(Fault.before(after_the_end_one_at_a_time), method="GET", path=running.id, times=10_000)
    results = run_two_worker_tasks_past(emu, running.id)
    first_job, second_job = assert_took_turns(emu, running.id)
    assert sorted(r["id"] for r in results) == sorted([first_job["id"], second_job["id"]])
    assert len(posts(emu)) == 2


def test_worker_task_lists_again_before_its_cooldown_retry(emu: AISearchEmulator) -> None:
    emu.cooldown, emu.cooldown_retry_after = 1.0, True
    running = emu.add_job("docs", started_at=time.time() - 60, duration=3600)  # (its own cooldown is over)

    def hold_the_first_post() -> None:
        # Both tasks saw the job end and found nothing running: their POSTs meet, and one gets the cooldown's 429.
        wait_for(lambda: len(posts(emu)) >= 2, "the other task POSTs too", bound=10)

    emu.inject(Fault.before(hold_the_first_post), method="POST")
    run_two_worker_tasks_past(emu, running.id)
    statuses = [r.status for r in posts(emu)]
    assert statuses.count(200) == 2 and 429 in statuses
    first_job, _ = assert_took_turns(emu, running.id)
    # The task that got the 429 polled the other task's job before creating its own.
    assert gets_of(emu, first_job["id"])


# ---------------------------------------------------------------------------------------------
# What each if_running means when a job starts during the cooldown wait (the second round)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def sync_starts_during_the_cooldown(emu: AISearchEmulator) -> Callable[[], str]:
    """The task's first POST meets a scheduled sync that has just started: 429, and the sync runs on."""
    emu.cooldown, emu.cooldown_retry_after = 1.0, True
    started: list[str] = []
    emu.inject(Fault.before(lambda: started.append(emu.start_job("docs", duration=3600).id)), method="POST")
    return lambda: started[0]


def test_reuse_adopts_a_job_that_started_during_the_cooldown(
    emu: AISearchEmulator, sync_starts_during_the_cooldown: Callable[[], str]
) -> None:
    ctx = context("dag_a")
    result = create_op(if_running="reuse").execute(ctx)
    sync = sync_starts_during_the_cooldown()
    assert result["id"] == ctx["ti"].xcom["job_id"] == sync
    assert [r.status for r in posts(emu)] == [429]  # no retry: it would have superseded the sync
    assert job_by_id(emu, sync)["ended_at"] is None


def test_fail_raises_for_a_job_that_started_during_the_cooldown(
    emu: AISearchEmulator, sync_starts_during_the_cooldown: Callable[[], str]
) -> None:
    with pytest.raises(AISearchError, match="already running.*if_running='fail'"):
        create_op(if_running="fail").execute(context("dag_a"))
    assert [r.status for r in posts(emu)] == [429]
    assert job_by_id(emu, sync_starts_during_the_cooldown())["ended_at"] is None


def test_wait_waits_for_a_job_that_started_during_the_cooldown(
    emu: AISearchEmulator, sync_starts_during_the_cooldown: Callable[[], str]
) -> None:
    results, join = run_in_threads([(create_op(if_running="wait", timeout=60), context("dag_a"))])
    wait_for(lambda: bool(posts(emu)) and bool(gets_of(emu, sync_starts_during_the_cooldown())), "it waits")
    sync = sync_starts_during_the_cooldown()
    emu.finish_job("docs", sync)
    join()
    (result,) = results
    assert [r.status for r in posts(emu)] == [429, 200]
    assert job_by_id(emu, sync)["end_reason"] == "completed"
    assert job_by_id(emu, result["id"])["ended_at"] is None


def test_supersede_retries_through_the_cooldown_without_listing(
    emu: AISearchEmulator, sync_starts_during_the_cooldown: Callable[[], str]
) -> None:
    result = create_op(if_running="supersede").execute(context("dag_a"))
    assert [r.status for r in posts(emu)] == [429, 200]
    assert [r.method for r in emu.requests] == ["GET", "POST", "POST"]  # its one listing, before the first POST
    assert job_by_id(emu, sync_starts_during_the_cooldown())["end_reason"] == "new_job_has_started"
    assert job_by_id(emu, result["id"])["ended_at"] is None


def test_the_job_of_an_ambiguous_post_found_in_the_cooldown_relisting_is_ours(emu: AISearchEmulator) -> None:
    """
    The first POST fails ambiguously (503) and no job is listed, so the task POSTs again; that POST meets
    the cooldown of the job the first one did start (it shows up late: not in the two look-ups that
    follow the 429). The listing before the cooldown retry finds it: it is this task's job, never a
    Busy one that ``if_running`` would apply to (``"fail"`` would raise, ``"wait"`` wait on it).
    """
    emu.cooldown, emu.cooldown_retry_after = 1.0, True
    op = create_op(if_running="fail", description="ours")
    mine: list[str] = []
    empty = {"success": True, "errors": [], "messages": [], "result": [], "result_info": {"count": 0, "page": 1}}

    def the_first_post_did_start_it() -> None:
        mine.append(emu.start_job("docs", source="user", description="ours", duration=3600).id)
        emu.inject(Fault.http(200, body=empty), method="GET", path="/jobs", times=2)  # not listed yet

    emu.inject(Fault.http(503), method="POST")
    emu.inject(Fault.before(the_first_post_did_start_it), method="POST")
    result = op.execute(context("dag_a"))
    assert result["id"] == mine[0]
    assert [r.status for r in posts(emu)] == [503, 429]
