"""Helpers shared by the operator tests: seeded jobs, operators and sensors with fast settings, a task context."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_provider_aisearch.emulator import AISearchEmulator, EmulatedJob
from airflow_provider_aisearch.operators import AISearchCreateJobOperator, AISearchListJobsOperator, JobFilter
from airflow_provider_aisearch.sensors import AISearchJobSensor

FAST = {"retry_backoff": 0.001, "timeout": (2.0, 5.0)}
BASE = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
REASONS = ["completed", "error", None, "cancelled", "new_job_has_started", "completed"]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(BASE + seconds, tz=timezone.utc)


def seed(emu: AISearchEmulator, count: int) -> list[EmulatedJob]:
    """Jobs every 100 s from BASE, each 50 s long, with mixed sources and end reasons (oldest first)."""
    return [
        emu.add_job(
            "docs",
            started_at=BASE + 100 * i,
            duration=50,
            end_reason=REASONS[i % len(REASONS)],
            source="user" if i % 3 == 0 else "schedule",
        )
        for i in range(count)
    ]


def make_sensor(**kwargs: Any) -> AISearchJobSensor:
    """A sensor on instance ``docs`` with fast polls and retries (poke mode unless told otherwise)."""
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("deferrable", False)
    return AISearchJobSensor(**kwargs)


def list_op(**kwargs: Any) -> AISearchListJobsOperator:
    kwargs.setdefault("task_id", "list")
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("hook_params", FAST)
    return AISearchListJobsOperator(**kwargs)


class FakeTI:
    """A task instance as the operators see it: one try of ``dag_a.create`` in one run."""

    dag_id = "dag_a"
    task_id = "create"
    run_id = "manual__2026-11-22T00:00:00+00:00"
    map_index = -1

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def ctx(**values: Any) -> Any:
    """A minimal task context (the operators read only these keys)."""
    return values


def create_op(**kwargs: Any) -> AISearchCreateJobOperator:
    kwargs.setdefault("task_id", "create")
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    op = AISearchCreateJobOperator(**kwargs)
    op.ambiguity_recheck_delay = 0.05
    return op


def posts(emu: AISearchEmulator) -> list[Any]:
    return emu.requests_to(method="POST")


def brute_force(emu: AISearchEmulator, job_filter: JobFilter) -> list[str]:
    from airflow_provider_aisearch.models.jobs import Job

    jobs = [Job.from_api(j) for j in emu.jobs("docs")]
    return [j.id for j in sorted(jobs, key=lambda j: j.started_at or at(-1e9), reverse=True) if job_filter.matches(j)]
