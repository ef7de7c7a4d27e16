"""Paging: when a paged list has been read to its end, its order, and each job once.

:func:`is_last_page` ends every paged read (jobs and log entries); :class:`ListOrder` is the one
place a list's order is read off its pages (the API documents none); :class:`UniqueJobs` drops a
job listed again because the list shifted while it was paged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_aisearch.models.jobs import Job

__all__ = ["ORDER_EVIDENCE", "ListOrder", "UniqueJobs", "is_last_page"]


def is_last_page(items_on_page: int, page: int, per_page: int, total_count: int | None) -> bool:
    """Whether no request past ``page`` is needed (shared by job and log pagination)."""
    if items_on_page < per_page:
        return True
    return total_count is not None and page * per_page >= total_count


#: Distinct values, all in one strict direction, that prove a paged list's order. Two values prove
#: nothing (any two are in one order or the other), and a random order of 3 looks sorted one time in
#: three; 10 looks sorted by chance 1 time in 1.8 million (2/10!). A full page of jobs (50) or log
#: entries (500) is far more; only lists read with a small ``per_page`` need an extra page first.
ORDER_EVIDENCE = 10


class ListOrder:
    """
    The order of a paged list as read so far: one source of truth for every paged read (jobs by
    ``started_at``, log entries by ``id``), deciding whether pages not read yet can be skipped.

    An order is proven only when every value read so far goes one way (equal neighbours allowed)
    and at least :data:`ORDER_EVIDENCE` distinct values were seen; a single step the other way means
    "no order" for good. A missing value (``None``: a job created but not started yet) has no place
    in the order and is passed over, so that a pending job does not make every listing read every
    page. Feed each item once, in list order (drop an item listed again because the list shifted
    while paging before calling :meth:`see`).
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self.last: Any = None
        self.distinct = 0
        self.rising = False
        self.falling = False
        for value in values:
            self.see(value)

    def see(self, value: Any) -> None:
        """Take the next value of the list (``None`` is passed over)."""
        if value is None:
            return
        if self.last is None:
            self.distinct = 1
        elif value > self.last:
            self.rising = True
            self.distinct += 1
        elif value < self.last:
            self.falling = True
            self.distinct += 1
        self.last = value

    @property
    def proven(self) -> bool:
        """Whether one direction is proven (see :attr:`descending` and :attr:`ascending`)."""
        return self.rising != self.falling and self.distinct >= ORDER_EVIDENCE

    @property
    def descending(self) -> bool:
        """Proven newest (largest) first."""
        return self.proven and self.falling

    @property
    def ascending(self) -> bool:
        """Proven oldest (smallest) first."""
        return self.proven and self.rising


class UniqueJobs:
    """
    The jobs of a paged listing, each id once, in list order. A job that started while pages were
    read shifts the list, so a job already read comes back on the next page; it is dropped here.

    :param keep: Keep the jobs in :attr:`jobs` (else only their ids, for long streamed listings).
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.jobs: list[Job] = []
        self.ids: set[str] = set()

    def add(self, jobs: Iterable[Job]) -> list[Job]:
        """Add ``jobs`` and return those not seen before."""
        fresh = []
        for job in jobs:
            if job.id not in self.ids:
                self.ids.add(job.id)
                fresh.append(job)
        if self.keep:
            self.jobs.extend(fresh)
        return fresh
