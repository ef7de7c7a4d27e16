"""The watermark of an event watcher: which ended jobs of an instance were already considered.

:class:`~airflow_provider_aisearch.events.event_trigger.AISearchJobEventTrigger` fires once per job that
ends after it began watching. What "already considered" means is decided here, from the API's own
timestamps and listings only (never the triggerer's clock, which may be skewed):

* **Baseline.** The first successful listing defines "before watching": every job it shows as
  ended is considered, and never fires. A job still running in it fires when it ends.
* **Seen ids.** Every ended job considered since is remembered by id, so two jobs ending in the
  same second (timestamps have one-second resolution) are told apart by id, never by time.
* **Horizon.** ``floor`` is the newest ``ended_at`` listed so far, but never later than the listing's
  own time (``bound``: the answer's ``Date`` header), so a job whose ``ended_at`` lies in the future
  (an API clock glitch) cannot raise it past the present and silence the jobs that end after it
  (it is still remembered by id and fires once). Ids of jobs that ended more than
  :data:`LATE_WINDOW` before the floor are forgotten, and a job listed as ended that long before the
  floor is treated as old. So a job that shows up as ended late (its ``ended_at`` before other
  jobs already seen) still fires if it is within the window, and the state stays bounded: at
  most :data:`MAX_SEEN` ids (an instance runs one job at a time).
* **Progress per job.** :meth:`Watermark.new_jobs` finds a listing's newly ended jobs without
  recording them, :meth:`Watermark.record` records one, so a watcher records each event once the
  triggerer took it (a cancel between two events of a round repeats none of those already taken).
* **Boundary.** :meth:`Watermark.known` says whether a listed job was already considered: a page
  that lists one is where a newest-first listing reaches what earlier rounds read.

The state is a small JSON object (:meth:`Watermark.to_json`), kept in the asset state store on
Airflow 3.3+. Two states can be merged (:meth:`Watermark.merge`): both record considered jobs.

This module imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_aisearch.models.jobs import Job, MalformedJobError, parse_timestamp

__all__ = ["LATE_WINDOW", "MAX_SEEN", "WATERMARK_VERSION", "Watermark"]

#: A job listed as ended up to this long before the newest ``ended_at`` already seen still fires.
LATE_WINDOW = timedelta(hours=1)
#: The most job ids a watermark keeps (the newest ended): at least a list page (50 jobs), so the
#: page where a newest-first listing reaches the jobs already considered holds no forgotten one.
MAX_SEEN = 200
#: The ``version`` field of the JSON form.
WATERMARK_VERSION = 1


def _ended(job: Job) -> datetime | None:
    """When ``job`` ended: its ``ended_at``, else (ended, ``ended_at`` absent or unreadable) its ``last_seen_at``."""
    return job.ended_at or (job.last_seen_at if job.has_ended else None)


def _ended_order(job: Job) -> tuple[datetime, datetime, str]:
    ended = _ended(job)
    assert ended is not None
    return (ended, job.started_at or ended, job.id)


@dataclass
class Watermark:
    """
    Which ended jobs of one instance were already considered.

    :param floor: The newest ``ended_at`` listed so far (``None``: no ended job listed yet).
    :param seen: Ids of the ended jobs considered within :data:`LATE_WINDOW` of ``floor``, with their ``ended_at``.
    """

    floor: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def baseline(cls, jobs: Iterable[Job], bound: datetime | None = None) -> Watermark:
        """
        The state at the first listing: every job already ended there counts as before watching.

        :param bound: The listing's time (see :meth:`record`).
        """
        mark = cls()
        mark.advance(jobs, bound)
        return mark

    def is_new(self, job: Job) -> bool:
        """Whether ``job`` has ended and was not considered yet (nor is older than the window)."""
        ended = _ended(job)
        if ended is None or job.id in self.seen:
            return False
        return self.floor is None or ended >= self.floor - LATE_WINDOW

    def known(self, job: Job) -> bool:
        """Whether ``job`` has ended and was already considered (remembered, or older than the window)."""
        return _ended(job) is not None and not self.is_new(job)

    def new_jobs(self, jobs: Iterable[Job]) -> list[Job]:
        """A listing's newly ended jobs, oldest end first, not recorded yet (see :meth:`record`)."""
        fresh = {job.id: job for job in jobs if self.is_new(job)}
        return sorted(fresh.values(), key=_ended_order)

    def record(self, job: Job, bound: datetime | None = None) -> None:
        """
        Remember an ended ``job`` as considered.

        Recording the jobs of :meth:`new_jobs` in their order never makes a later one of them old.

        :param bound: The listing's time (the answer's ``Date``): the floor never passes it, so a
            job whose ``ended_at`` lies in the future cannot make the jobs that end after it old.
        """
        ended = _ended(job)
        assert ended is not None
        self.seen[job.id] = ended
        end = ended if bound is None else min(ended, bound)
        if self.floor is None or end > self.floor:
            self.floor = end
        self._prune()

    def limit(self, bound: datetime) -> None:
        """
        Bring a floor past ``bound`` (the listing's time) back to it: a state written before the floor
        was bounded (an earlier version, a job's future ``ended_at``) would otherwise make every job
        old until the present caught up with it (years, for bad data).
        """
        if self.floor is not None and self.floor > bound:
            self.floor = bound

    def advance(self, jobs: Iterable[Job], bound: datetime | None = None) -> list[Job]:
        """
        Consider a listing: return its newly ended jobs (oldest end first) and remember them.

        :param jobs: The instance's newest jobs, as listed.
        :param bound: The listing's time (see :meth:`record`).
        """
        new = self.new_jobs(jobs)
        for job in new:
            self.record(job, bound)
        return new

    def merge(self, other: Watermark) -> Watermark:
        """A watermark that considers every job either of the two considered."""
        floors = [f for f in (self.floor, other.floor) if f is not None]
        merged = Watermark(max(floors, default=None), {**other.seen, **self.seen})
        merged._prune()
        return merged

    def _prune(self) -> None:
        # A remembered job whose ended_at lies in the future sorts newest and stays until the floor
        # (bounded by the listings' time) has passed it by LATE_WINDOW: it never fires twice.
        if self.floor is not None:
            horizon = self.floor - LATE_WINDOW
            self.seen = {i: at for i, at in self.seen.items() if at >= horizon}
        if len(self.seen) > MAX_SEEN:
            newest = sorted(self.seen.items(), key=lambda item: (item[1], item[0]), reverse=True)[:MAX_SEEN]
            self.seen = dict(newest)

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe form (ISO 8601 UTC strings), for the asset state store."""
        return {
            "version": WATERMARK_VERSION,
            "floor": None if self.floor is None else self.floor.isoformat(),
            "seen": {job_id: at.isoformat() for job_id, at in sorted(self.seen.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> Watermark:
        """
        Read the JSON form back.

        :raises ValueError: ``data`` is not a watermark of this version.
        """
        if not isinstance(data, Mapping) or data.get("version") != WATERMARK_VERSION:
            raise ValueError(f"not a version {WATERMARK_VERSION} watermark: {str(data)[:80]!r}")
        seen = data.get("seen")
        if not isinstance(seen, Mapping):
            raise ValueError("a watermark's 'seen' must be an object")
        try:
            floor = parse_timestamp(data.get("floor"), name="floor")
            parsed = {str(k): parse_timestamp(v, name="seen") for k, v in seen.items()}
        except MalformedJobError as exc:
            raise ValueError(str(exc)) from None
        if any(at is None for at in parsed.values()):
            raise ValueError("a watermark's 'seen' holds a job without its ended_at")
        mark = cls(floor, {k: v for k, v in parsed.items() if v is not None})
        mark._prune()
        return mark
