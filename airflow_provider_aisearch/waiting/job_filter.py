"""Which jobs a listing keeps: :class:`JobFilter` (source, statuses, time bounds) and its argument parsing.

The bounds also tell a listing in a proven order when no later page can match
(:meth:`JobFilter.older_cannot_match`, :meth:`JobFilter.newer_cannot_match`), and
:func:`newest_first_key` is the order results are returned in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pendulum

from airflow_provider_aisearch.models.jobs import EndReasonPolicy, Job, JobStatus
from airflow_provider_aisearch.waiting.watch import SUCCESSOR_TOLERANCE

__all__ = ["SOURCES", "JobFilter", "newest_first_key", "parse_bound", "parse_statuses"]

#: The values of a job's ``source``.
SOURCES = ("user", "schedule")


def parse_bound(name: str, value: Any) -> datetime | None:
    """
    A time bound: a datetime, or a string pendulum parses; naive values are UTC.

    :raises ValueError: naming the parameter.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            parsed = pendulum.parse(value.strip(), tz="UTC")
        except Exception as exc:
            raise ValueError(f"{name} is not a date/time: {value[:64]!r} ({exc})") from None
        if not isinstance(parsed, datetime):
            raise ValueError(f"{name} must be a date/time, got {value[:64]!r}")
        moment = parsed
    else:
        raise ValueError(f"{name} must be a datetime or a string, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_statuses(value: Iterable[JobStatus | str] | None) -> frozenset[JobStatus] | None:
    """
    Job statuses: ``JobStatus`` members or their string values, one or several (``None``: any).

    :raises ValueError: naming ``statuses``.
    """
    if value is None:
        return None
    if isinstance(value, (str, JobStatus)):
        value = [value]
    out = set()
    for item in value:
        try:
            out.add(JobStatus(item))
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise ValueError(f"statuses: {item!r} is not a job status ({allowed})") from None
    return frozenset(out)


@dataclass(frozen=True)
class JobFilter:
    """
    Which jobs a list keeps: every given condition must hold. ``*_after`` bounds are inclusive,
    ``*_before`` exclusive; ``ended_*`` bounds match only jobs that have ended.
    """

    source: str | None = None
    statuses: frozenset[JobStatus] | None = None
    policy: EndReasonPolicy = field(default_factory=EndReasonPolicy)
    started_after: datetime | None = None
    started_before: datetime | None = None
    ended_after: datetime | None = None
    ended_before: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        source: str | None = None,
        statuses: Iterable[JobStatus | str] | None = None,
        started_after: Any = None,
        started_before: Any = None,
        ended_after: Any = None,
        ended_before: Any = None,
        policy: EndReasonPolicy | None = None,
    ) -> JobFilter:
        """:raises ValueError: naming the bad parameter."""
        if source in (None, ""):
            source = None
        elif source not in SOURCES:
            raise ValueError(f"source must be 'user', 'schedule' or None, got {source!r}")
        return cls(
            source=source,
            statuses=parse_statuses(statuses),
            policy=policy or EndReasonPolicy(),
            started_after=parse_bound("started_after", started_after),
            started_before=parse_bound("started_before", started_before),
            ended_after=parse_bound("ended_after", ended_after),
            ended_before=parse_bound("ended_before", ended_before),
        )

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes every condition."""
        if self.source is not None and job.source != self.source:
            return False
        if self.statuses is not None and job.classify(self.policy) not in self.statuses:
            return False
        if not _within(job.started_at, self.started_after, self.started_before):
            return False
        return _within(job.ended_at, self.ended_after, self.ended_before)

    def older_cannot_match(self, started_at: datetime) -> bool:
        """In a newest-first list, whether jobs started before ``started_at`` can no longer match."""
        if self.started_after is not None and started_at < self.started_after:
            return True
        # Jobs of one instance do not overlap (a new job ends the running one), so every older job
        # ended before this one started.
        return self.ended_after is not None and started_at + SUCCESSOR_TOLERANCE < self.ended_after

    def newer_cannot_match(self, started_at: datetime) -> bool:
        """In an oldest-first list, whether jobs started at or after ``started_at`` can no longer match."""
        bounds = [b for b in (self.started_before, self.ended_before) if b is not None]
        return bool(bounds) and started_at >= min(bounds)


def _within(value: datetime | None, after: datetime | None, before: datetime | None) -> bool:
    if after is None and before is None:
        return True
    if value is None:
        return False
    return (after is None or value >= after) and (before is None or value < before)


def newest_first_key(job: Job) -> tuple[bool, datetime]:
    """Sort key putting the newest job last (jobs with no ``started_at`` first): use with ``reverse=True``."""
    return (job.started_at is not None, job.started_at or datetime.min.replace(tzinfo=timezone.utc))
