"""AISearchCreateJobOperator across tries: retries, clears, if_running='wait' in the triggerer, timeouts.

Each test runs the operator as Airflow would run successive tries of one task instance (same dag,
task, map index and run id; a growing ``try_number``) against the emulator over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import (
    AISearchError,
    AISearchJobFailedError,
    AISearchJobTimeoutError,
)
from airflow_provider_aisearch.operators import STATE_STORE_KEY, AISearchCreateJobOperator
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from tests.conftest import Connect
from tests.operator_helpers import FakeTI, create_op, posts


class FakeStore:
    """The task state store (Airflow 3.3+): scoped to the task instance, so shared by its tries."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def context(try_number: int = 1, store: FakeStore | None = None, **ti_attrs: Any) -> Any:
    ti = FakeTI(try_number)
    for name, value in ti_attrs.items():
        setattr(ti, name, value)
    out: dict[str, Any] = {"ti": ti}
    if store is not None:
        out["task_state_store"] = store
    return out


def job(emu: AISearchEmulator, job_id: str) -> dict[str, Any]:
    return next(j for j in emu.jobs("docs") if j["id"] == job_id)


def run_trigger(trigger: AISearchJobTrigger) -> dict[str, Any]:
    async def collect() -> list[Any]:
        return [e async for e in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), 30))
    return dict(event.payload)


def resume(op: AISearchCreateJobOperator, deferred: TaskDeferred, ctx: dict[str, Any]) -> Any:
    """What Airflow does when the trigger fires: call the method with the event and the defer kwargs."""
    assert isinstance(deferred.trigger, AISearchJobTrigger)
    event = run_trigger(deferred.trigger)
    return getattr(op, deferred.method_name)(ctx, event=event, **(deferred.kwargs or {}))


# ---------------------------------------------------------------------------------------------
# 1. A retried task never starts a second job
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("if_running", ["reuse", "wait", "supersede", "fail"])
def test_a_retry_adopts_the_running_job_of_an_earlier_try_whatever_if_running_says(
    emu: AISearchEmulator, if_running: str
) -> None:
    first = create_op(if_running=if_running).execute(context(1))
    emu.clear_log()
    ctx = context(2)
    second = create_op(if_running=if_running).execute(ctx)
    assert second["id"] == first["id"] == ctx["ti"].xcom["job_id"]
    assert posts(emu) == []
    assert [r.method for r in emu.requests] == ["GET"]  # one listing decided it
    assert job(emu, first["id"])["ended_at"] is None  # not superseded by a second job


def test_a_retry_after_the_earlier_job_ended_indexes_again(emu: AISearchEmulator) -> None:
    first = create_op().execute(context(1))
    emu.finish_job("docs", first["id"])
    second = create_op(if_running="fail").execute(context(2))
    assert second["id"] != first["id"]
    assert len(posts(emu)) == 2
    assert posts(emu)[-1].body == {"description": "airflow:dag_a:create:manual__2026-11-22T00:00:00+00:00:try2"}


def test_a_failed_job_fails_the_task_so_that_retries_apply_and_the_retry_starts_a_new_job(
    emu: AISearchEmulator,
) -> None:
    emu.plan_next_job(duration=0.2, end_reason="error")
    with pytest.raises(AISearchJobFailedError) as failed:
        create_op(wait_for_completion=True).execute(context(1))
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert not isinstance(failed.value, AirflowFailException)  # AirflowFailException would skip the retries
    emu.job_duration = 0.2
    result = create_op(wait_for_completion=True).execute(context(2))
    assert result["status"] == "succeeded"
    assert len(posts(emu)) == 2


def test_only_the_same_task_instance_is_recognised(emu: AISearchEmulator) -> None:
    for other in ({"run_id": "scheduled__x"}, {"map_index": 4}, {"task_id": "other"}, {"dag_id": "dag_b"}):
        create_op(if_running="supersede").execute(context(1, **other))
    with pytest.raises(AISearchError, match="if_running='fail'"):
        create_op(if_running="fail").execute(context(2))
    assert len(posts(emu)) == 4


def test_a_later_try_is_never_taken_for_an_earlier_one(emu: AISearchEmulator) -> None:
    create_op().execute(context(3))  # e.g. a try of the same task instance that is still running elsewhere
    with pytest.raises(AISearchError, match="if_running='fail'"):
        create_op(if_running="fail").execute(context(2))


def test_the_task_state_store_covers_a_user_set_description(emu: AISearchEmulator) -> None:
    store = FakeStore()
    first = create_op(description="nightly").execute(context(1, store))
    assert store.values == {STATE_STORE_KEY: first["id"]}
    emu.clear_log()
    second = create_op(description="nightly", if_running="supersede").execute(context(2, store))
    assert second["id"] == first["id"]
    assert posts(emu) == []
    # Without the store (Airflow < 3.3) a user-set description says nothing about tries: if_running applies.
    third = create_op(description="nightly", if_running="supersede").execute(context(3))
    assert third["id"] != first["id"]
    assert job(emu, first["id"])["end_reason"] == "new_job_has_started"


def test_a_stored_job_beyond_the_listing_is_looked_up(emu: AISearchEmulator) -> None:
    store = FakeStore()
    first = create_op(description="nightly").execute(context(1, store))
    for i in range(60):  # 60 ended jobs listed before it: the running job is not on the first page
        emu.add_job("docs", duration=0.0, started_at=time.time() + 10 + i)
    emu.clear_log()
    second = create_op(description="nightly", if_running="supersede").execute(context(2, store))
    assert second["id"] == first["id"]
    assert posts(emu) == []
    assert emu.requests[-1].method == "GET" and emu.requests[-1].segments[-1] == first["id"]


def test_a_store_that_fails_never_fails_the_task(emu: AISearchEmulator) -> None:
    class Broken(FakeStore):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("state store down")

        def set(self, key: str, value: Any) -> None:
            raise RuntimeError("state store down")

    result = create_op().execute(context(1, Broken()))
    assert result["id"] == emu.jobs("docs")[0]["id"]


# ---------------------------------------------------------------------------------------------
# 1. Clearing a running task: the earlier try's on_kill cancels the job the new try adopted
# ---------------------------------------------------------------------------------------------


def test_clearing_a_running_deferred_task_ends_with_a_job_of_the_new_try(emu: AISearchEmulator) -> None:
    # Try 1 started job J and deferred; its trigger cancels J when killed.
    old = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as first:
        old.execute(context(1))
    old_trigger = first.value.trigger
    assert isinstance(old_trigger, AISearchJobTrigger)
    j = old_trigger.job_id
    # Clear: try 2 starts while try 1's trigger is still alive, and adopts J.
    new = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    ctx = context(2)
    with pytest.raises(TaskDeferred) as second:
        new.execute(ctx)
    assert second.value.trigger.job_id == j
    assert len(posts(emu)) == 1
    # Then the triggerer cancels try 1's trigger and calls its on_kill: J is cancelled.
    asyncio.run(old_trigger.on_kill())
    assert job(emu, j)["end_reason"] == "cancelled"
    # Try 2 sees J cancelled and replaces it, once, with a job of its own, which succeeds.
    emu.job_duration = 0.3
    with pytest.raises(TaskDeferred) as third:
        resume(new, second.value, ctx)
    k = third.value.trigger.job_id
    assert k != j
    assert (third.value.kwargs or {})["adopted"] is False
    assert third.value.trigger.serialize()[1]["cancel_on_kill"] is True
    result = resume(new, third.value, ctx)
    assert result["id"] == k == ctx["ti"].xcom["job_id"]
    assert result["status"] == "succeeded"
    assert len(posts(emu)) == 2
    assert not [j for j in emu.jobs("docs") if j["ended_at"] is None]  # nothing left running


def test_clearing_a_task_waiting_in_the_worker_ends_with_a_job_of_the_new_try(emu: AISearchEmulator) -> None:
    old = create_op()
    j = old.execute(context(1))["id"]
    new = create_op(wait_for_completion=True, timeout=30)

    def kill_the_earlier_try() -> None:  # its worker is killed: on_kill cancels its job
        deadline = time.monotonic() + 10
        while len(emu.requests_to(method="GET")) < 3 and time.monotonic() < deadline:  # list, then polls of J
            time.sleep(0.01)
        emu.job_duration = 0.3
        old.on_kill()

    killer = threading.Thread(target=kill_the_earlier_try)
    killer.start()
    try:
        result = new.execute(context(2))
    finally:
        killer.join(15)
    assert result["id"] != j
    assert result["status"] == "succeeded"
    assert job(emu, j)["end_reason"] == "cancelled"
    assert len(posts(emu)) == 2


def test_an_adopted_job_is_replaced_only_once(emu: AISearchEmulator) -> None:
    create_op().execute(context(1))
    new = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    ctx = context(2)
    with pytest.raises(TaskDeferred) as adopted:
        new.execute(ctx)
    emu.finish_job("docs", adopted.value.trigger.job_id, "cancelled")
    with pytest.raises(TaskDeferred) as replaced:
        resume(new, adopted.value, ctx)
    emu.finish_job("docs", replaced.value.trigger.job_id, "cancelled")
    with pytest.raises(AISearchJobFailedError, match="cancelled"):
        resume(new, replaced.value, ctx)
    assert len(posts(emu)) == 2


def test_a_reused_job_that_is_cancelled_is_not_replaced(emu: AISearchEmulator) -> None:
    other = emu.start_job("docs", duration=3600)  # someone else's job
    op = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    ctx = context(2)
    with pytest.raises(TaskDeferred) as reused:
        op.execute(ctx)
    assert reused.value.trigger.job_id == other.id
    emu.finish_job("docs", other.id, "cancelled")
    with pytest.raises(AISearchJobFailedError, match="cancelled"):
        resume(op, reused.value, ctx)
    assert posts(emu) == []


# ---------------------------------------------------------------------------------------------
# 5. if_running="wait" with deferrable=True waits in the triggerer
# ---------------------------------------------------------------------------------------------


def test_if_running_wait_defers_on_the_running_job_then_creates(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=0.4)
    op = create_op(if_running="wait", wait_for_completion=True, deferrable=True, timeout=60)
    ctx = context(1)
    started = time.time()
    with pytest.raises(TaskDeferred) as idle:
        op.execute(ctx)
    trigger = idle.value.trigger
    assert isinstance(trigger, AISearchJobTrigger)
    assert trigger.job_id == running.id
    assert trigger.serialize()[1]["cancel_on_kill"] is False  # not ours: never cancelled
    assert [r.method for r in emu.requests] == ["GET"]  # the worker did not poll: one listing, then defer
    assert posts(emu) == []
    emu.job_duration = 0.3
    with pytest.raises(TaskDeferred) as own:
        resume(op, idle.value, ctx)
    assert len(posts(emu)) == 1
    own_trigger = own.value.trigger
    assert own_trigger.job_id == ctx["ti"].xcom["job_id"] != running.id
    # One timeout for the whole task: the second wait's deadline is the first one's.
    assert trigger.deadline is not None and own_trigger.deadline is not None
    assert abs(own_trigger.deadline - trigger.deadline) < 1.0
    assert own_trigger.deadline <= started + 60 + 1
    result = resume(op, own.value, ctx)
    assert result["status"] == "succeeded"
    assert job(emu, running.id)["end_reason"] == "completed"  # it ended on its own


def test_if_running_wait_deferred_times_out_without_cancelling(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=3600)
    op = create_op(if_running="wait", deferrable=True, timeout=0.5)
    ctx = context(1)
    with pytest.raises(TaskDeferred) as idle:
        op.execute(ctx)
    with pytest.raises(AISearchJobTimeoutError, match="if_running='wait'"):
        resume(op, idle.value, ctx)
    assert job(emu, running.id)["ended_at"] is None
    assert emu.requests_to(method="PATCH") == [] and posts(emu) == []


# ---------------------------------------------------------------------------------------------
# 10. A timed-out wait cancels the job it started
# ---------------------------------------------------------------------------------------------


def test_a_timed_out_wait_in_the_worker_cancels_the_job_it_started(emu: AISearchEmulator) -> None:
    ctx = context(1)
    with pytest.raises(AISearchJobTimeoutError, match="was cancelled"):
        create_op(wait_for_completion=True, timeout=0.3).execute(ctx)
    j = ctx["ti"].xcom["job_id"]
    assert job(emu, j)["end_reason"] == "cancelled"
    assert len(emu.requests_to(method="PATCH")) == 1
    # The retry starts a fresh job.
    emu.job_duration = 0.2
    assert create_op(wait_for_completion=True, timeout=30).execute(context(2))["id"] != j
    assert len(posts(emu)) == 2


def test_a_timed_out_deferred_wait_cancels_the_job_it_started(emu: AISearchEmulator) -> None:
    op = create_op(wait_for_completion=True, deferrable=True, timeout=0.5)
    ctx = context(1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    with pytest.raises(AISearchJobTimeoutError, match="was cancelled"):
        resume(op, deferred.value, ctx)
    assert job(emu, ctx["ti"].xcom["job_id"])["end_reason"] == "cancelled"


def test_cancel_on_timeout_false_leaves_the_job_running(emu: AISearchEmulator) -> None:
    ctx = context(1)
    with pytest.raises(AISearchJobTimeoutError):
        create_op(wait_for_completion=True, timeout=0.3, cancel_on_timeout=False).execute(ctx)
    assert job(emu, ctx["ti"].xcom["job_id"])["ended_at"] is None
    assert emu.requests_to(method="PATCH") == []


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_timeout_never_cancels_a_reused_job(emu: AISearchEmulator, deferrable: bool) -> None:
    other = emu.start_job("docs", duration=3600)
    op = create_op(wait_for_completion=True, deferrable=deferrable, timeout=0.3)
    ctx = context(1)

    def wait() -> Any:
        if not deferrable:
            return op.execute(ctx)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx)
        return resume(op, deferred.value, ctx)

    with pytest.raises(AISearchJobTimeoutError) as timed_out:
        wait()
    assert "cancelled" not in str(timed_out.value)
    assert job(emu, other.id)["ended_at"] is None
    assert emu.requests_to(method="PATCH") == []


# ---------------------------------------------------------------------------------------------
# 2. poll_interval must be > 0
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, -1, True, "5", float("inf"), float("nan")])
def test_poll_interval_must_be_positive(value: Any) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        create_op(poll_interval=value)


# ---------------------------------------------------------------------------------------------
# The same in Airflow itself: dag.test() runs the retry (Airflow 3.3 with the real task state store)
# ---------------------------------------------------------------------------------------------

RETRY_DAG = """
import datetime as dt
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_aisearch.operators import AISearchCreateJobOperator

with DAG("aisearch_retry", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    AISearchCreateJobOperator(
        task_id="reindex",
        instance_id="docs",
        description={description!r},
        if_running="supersede",  # would end the earlier try's job if the retry did not recognise it
        wait_for_completion=True,
        timeout=4.0,  # the first try times out while its job still runs...
        cancel_on_timeout=False,  # ...and leaves it running: Airflow's retry must adopt it
        poll_interval=0.2,
        retries=1,
        retry_delay=dt.timedelta(seconds=0),
        hook_params={{"retry_backoff": 0.001}},
    )
"""


def _airflow_has_task_state_store() -> bool:
    try:
        from airflow.sdk import ResumableJobMixin  # noqa: F401  (arrived with the task state store, 3.3)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("description", [None, "nightly"], ids=["default description", "user description"])
def test_airflow_retries_the_task_and_the_retry_adopts_the_job(
    make_emulator: Callable[..., AISearchEmulator],
    connect: Connect,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    description: str | None,
) -> None:
    if description is not None and not _airflow_has_task_state_store():
        pytest.skip("below Airflow 3.3 there is no task state store: a user-set description is not tied to a try")
    import airflow.settings
    from airflow.utils import db

    (tmp_path / "aisearch_retry.py").write_text(RETRY_DAG.format(description=description))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path))  # dag.test() syncs this folder on 3.x
    db.resetdb()
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    emu = make_emulator(job_duration=3600.0)
    connect(emu)

    def end_the_job_once_the_retry_has_looked() -> None:
        # The first try times out with its job running; the job ends once the retry has listed the jobs (a
        # fixed job duration raced with how long Airflow takes to start the retry: 3.1's dag.test() is slower).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listings = [r for r in emu.requests if r.method == "GET" and len(r.segments) == 3]
            if len(listings) >= 2 and posts(emu):
                emu.finish_job("docs", emu.jobs("docs")[0]["id"])  # the one job, the first try's
                return
            time.sleep(0.05)

    ender = threading.Thread(target=end_the_job_once_the_retry_has_looked, daemon=True)
    ender.start()
    dag = DagBag(dag_folder=str(tmp_path)).get_dag("aisearch_retry")
    run = dag.test()
    ender.join(5)
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    listings = [r for r in emu.requests if r.method == "GET" and len(r.segments) == 3]
    assert len(listings) == 2  # each try looked once: the first try did fail and Airflow retried it
    assert len(posts(emu)) == 1  # the retry started no second job
    (only,) = emu.jobs("docs")
    assert only["end_reason"] == "completed"  # and did not supersede the first
    assert emu.requests_to(method="PATCH") == []


# ---------------------------------------------------------------------------------------------
# Review findings: an empty description, and a wait that ends when time is up
# ---------------------------------------------------------------------------------------------


def test_an_empty_description_is_the_default_one_on_every_try(emu: AISearchEmulator) -> None:
    first = create_op(description="").execute(context(1))  # e.g. a template that rendered empty
    assert posts(emu)[0].body == {"description": "airflow:dag_a:create:manual__2026-11-22T00:00:00+00:00:try1"}
    second = create_op(description="", if_running="supersede").execute(context(2))
    assert second["id"] == first["id"]
    assert len(posts(emu)) == 1


def test_no_job_is_started_when_time_is_up_after_waiting_in_the_worker(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=0.5)  # ends just before the operator's deadline passes
    op = create_op(if_running="wait", wait_for_completion=True, timeout=0.5, poll_interval=5)
    with pytest.raises(AISearchJobTimeoutError, match="no job was started"):
        op.execute(context(1))
    assert job(emu, running.id)["end_reason"] == "completed"
    assert posts(emu) == [] and emu.requests_to(method="PATCH") == []


def test_no_job_is_started_when_the_trigger_reports_the_end_after_the_deadline(emu: AISearchEmulator) -> None:
    running = emu.start_job("docs", duration=3600)
    op = create_op(if_running="wait", wait_for_completion=True, deferrable=True, timeout=60)
    ctx = context(1)
    with pytest.raises(TaskDeferred) as idle:
        op.execute(ctx)
    emu.finish_job("docs", running.id)
    event = run_trigger(idle.value.trigger)  # the job has ended...
    kwargs = dict(idle.value.kwargs or {}, deadline=time.time() - 1)  # ...but the last poll came after the deadline
    with pytest.raises(AISearchJobTimeoutError, match="no job was started"):
        op.execute_complete(ctx, event=event, **kwargs)
    assert posts(emu) == []
