"""Chaos runs: complete task runs against the emulator with 30% transient faults.

Every run must end with the outcome the job's true end state dictates (read from the emulator's
state, not through the faulty API), no run may fail because of a transient fault, and every
logical call must stay within the retry budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Chaos
from airflow_provider_aisearch.exceptions import AISearchJobFailedError
from airflow_provider_aisearch.models.jobs import DEFAULT_END_REASON_POLICY, Job, JobStatus
from airflow_provider_aisearch.operators import AISearchCreateJobOperator, AISearchListJobsOperator, JobFilter
from airflow_provider_aisearch.sensors import AISearchJobSensor

FAULT_RATE = 0.3
MAX_RETRIES = 8  # 0.3 ** 9: about 2 in 100,000 logical calls would exhaust it
HOOK_PARAMS = {"max_retries": MAX_RETRIES, "retry_backoff": 0.001, "timeout": (1.0, 0.1)}
END_REASONS = ["completed", None, "error", "cancelled", "indexing_error: source unreachable", "completed"]


class FakeTI:
    dag_id, task_id, map_index = "chaos", "create", -1

    def __init__(self, run: int) -> None:
        self.run_id = f"chaos_{run}"
        self.try_number = 1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def chaos_emu(make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]) -> AISearchEmulator:
    emu = make_emulator(timestamp_format="mixed")
    emu.vary_fields = True
    connect(emu)
    return emu


def _arm(emu: AISearchEmulator, seed: int) -> None:
    emu.chaos = Chaos(rate=FAULT_RATE, seed=seed, routes=frozenset({"jobs"}), slow_delay=0.15)


def _truth(emu: AISearchEmulator, job_id: str) -> JobStatus:
    raw = next(j for j in emu.jobs("docs") if j["id"] == job_id)
    return Job.from_api(raw).status


def _run_outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except AISearchJobFailedError as exc:
        return "failed", exc


class Tally:
    def __init__(self, emu: AISearchEmulator) -> None:
        self.emu = emu
        self.runs = 0
        self.wrong: list[str] = []
        self.max_requests = 0
        self.budget_breaches: list[str] = []

    def record(self, label: str, first_request: int, expected: str, got: str) -> None:
        self.runs += 1
        if expected != got:
            self.wrong.append(f"{label}: expected {expected}, got {got}")
        sent = self.emu.requests[first_request:]
        self.max_requests = max(self.max_requests, len(sent))
        answered = [r for r in sent if r.fault is None]
        # Each logical call is answered once and makes at most MAX_RETRIES + 1 attempts.
        if len(sent) > len(answered) * (MAX_RETRIES + 1):
            self.budget_breaches.append(f"{label}: {len(sent)} requests for {len(answered)} answered calls")

    def report(self, figures: dict[str, dict[str, Any]], name: str) -> None:
        figures[name] = {
            "runs": self.runs,
            "faults_injected": sum(self.emu.fault_counts.values()),
            "wrong_outcomes": len(self.wrong),
            "max_requests_per_run": self.max_requests,
        }
        assert self.wrong == []
        assert self.budget_breaches == []


def _expected(status: JobStatus) -> str:
    return "ok" if status is JobStatus.SUCCEEDED else "failed"


def test_chaos_sensor_poke_runs(chaos_emu: AISearchEmulator, figures: dict[str, dict[str, Any]]) -> None:
    rng = random.Random(1)
    tally = Tally(chaos_emu)
    for run in range(60):
        job = chaos_emu.add_job("docs", duration=rng.uniform(0.01, 0.08), end_reason=rng.choice(END_REASONS))
        _arm(chaos_emu, seed=run)
        first = len(chaos_emu.requests)
        sensor = AISearchJobSensor(
            task_id=f"wait_{run}",
            instance_id="docs",
            job_id=job.id,
            poke_interval=0.01,
            timeout=60,
            log_tail=3,
            hook_params=HOOK_PARAMS,
        )
        got, value = _run_outcome(lambda: sensor.execute({}))  # noqa: B023
        chaos_emu.chaos = None
        tally.record(f"poke {run}", first, _expected(_truth(chaos_emu, job.id)), got)
        if got == "ok":
            assert value["id"] == job.id
    tally.report(figures, "sensor poke")


def test_chaos_sensor_deferrable_runs(chaos_emu: AISearchEmulator, figures: dict[str, dict[str, Any]]) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    rng = random.Random(2)
    tally = Tally(chaos_emu)

    async def first_event(trigger: Any) -> Any:
        return await asyncio.wait_for(trigger.run().__anext__(), 60)

    for run in range(50):
        job = chaos_emu.add_job("docs", duration=rng.uniform(0.05, 0.15), end_reason=rng.choice(END_REASONS))
        _arm(chaos_emu, seed=1000 + run)
        first = len(chaos_emu.requests)
        sensor = AISearchJobSensor(
            task_id=f"defer_{run}",
            instance_id="docs",
            job_id=job.id,
            deferrable=True,
            poke_interval=0.02,
            timeout=60,
            log_tail=3,
            hook_params=HOOK_PARAMS,
        )

        def run_task() -> Any:
            try:
                return sensor.execute({})  # noqa: B023
            except TaskDeferred as deferred:
                event = asyncio.run(first_event(deferred.trigger))
                return sensor.execute_complete({}, event.payload)  # noqa: B023

        got, _ = _run_outcome(run_task)
        chaos_emu.chaos = None
        tally.record(f"deferrable {run}", first, _expected(_truth(chaos_emu, job.id)), got)
    tally.report(figures, "sensor deferrable")


def test_chaos_list_operator_runs(chaos_emu: AISearchEmulator, figures: dict[str, dict[str, Any]]) -> None:
    rng = random.Random(3)
    base = 1_790_000_000.0
    for i in range(130):
        chaos_emu.add_job(
            "docs",
            started_at=base + 100 * i,
            duration=50,
            end_reason=rng.choice(END_REASONS),
            source=rng.choice(["user", "schedule"]),
        )
    tally = Tally(chaos_emu)
    for run in range(50):
        kwargs: dict[str, Any] = {
            "source": rng.choice([None, "user", "schedule"]),
            "statuses": rng.choice([None, ["succeeded"], ["failed", "cancelled"]]),
            "started_after": base + 100 * rng.randrange(0, 130) if rng.random() < 0.5 else None,
            "limit": rng.choice([None, 5, 20]),
        }
        if kwargs["started_after"] is not None:
            kwargs["started_after"] = datetime.fromtimestamp(kwargs["started_after"], tz=timezone.utc)
        jobs = [Job.from_api(j) for j in chaos_emu.jobs("docs")]
        pure = {k: v for k, v in kwargs.items() if k != "limit"}
        job_filter = JobFilter.build(**pure)
        newest_first = sorted(
            jobs, key=lambda j: j.started_at or datetime.min.replace(tzinfo=timezone.utc), reverse=True
        )
        expected = [j.id for j in newest_first if job_filter.matches(j)]
        expected = expected[: kwargs["limit"]] if kwargs["limit"] else expected
        _arm(chaos_emu, seed=2000 + run)
        first = len(chaos_emu.requests)
        op = AISearchListJobsOperator(
            task_id=f"list_{run}", instance_id="docs", ids_only=True, hook_params=HOOK_PARAMS, **kwargs
        )
        result = op.execute({})
        chaos_emu.chaos = None
        tally.record(f"list {run}", first, "same", "same" if result == expected else f"{len(result)} ids")
    tally.report(figures, "list operator")


def test_chaos_create_operator_runs(chaos_emu: AISearchEmulator, figures: dict[str, dict[str, Any]]) -> None:
    rng = random.Random(4)
    tally = Tally(chaos_emu)
    for run in range(45):
        reason = rng.choice(END_REASONS)
        chaos_emu.plan_next_job(duration=rng.uniform(0.02, 0.08), end_reason=reason)
        before = len(chaos_emu.jobs("docs"))
        _arm(chaos_emu, seed=3000 + run)
        first = len(chaos_emu.requests)
        op = AISearchCreateJobOperator(
            task_id=f"create_{run}",
            instance_id="docs",
            wait_for_completion=True,
            poll_interval=0.01,
            timeout=60,
            log_tail=3,
            deferrable=False,
            hook_params=HOOK_PARAMS,
        )
        op.ambiguity_recheck_delay = 0.01
        ti = FakeTI(run)
        context: Any = {"ti": ti}
        got, _ = _run_outcome(lambda: op.execute(context))  # noqa: B023
        chaos_emu.chaos = None
        jobs = chaos_emu.jobs("docs")
        created = len(jobs) - before
        assert created == 1, f"run {run}: {created} jobs created"
        expected = _expected(DEFAULT_END_REASON_POLICY.classify(Job.from_api(jobs[0]).ended_at, reason))
        tally.record(f"create {run}", first, expected, got)
        assert ti.xcom["job_id"] == jobs[0]["id"]
    tally.report(figures, "create operator")
