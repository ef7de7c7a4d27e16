"""The event watcher's paging: reading past the shared listing down to the jobs already considered.

The shared poller (:mod:`~airflow_provider_aisearch.waiting.polling`) lists page 1 for an event watcher
(more pages only for job triggers waiting on jobs missing from it), as cheap as the sensors need.
When more jobs ended between two rounds than that listing holds (a failover, a burst of jobs), the
older ones are only on later pages. :class:`BoundaryScan` reads them, newest first, until a page
lists a job the watermark already considered
(:meth:`~airflow_provider_aisearch.events.watermark.Watermark.known`: the boundary) or the list ends. It
reads at most :data:`MAX_WATCH_PAGES` pages per round and continues in the next round where it
stopped; no job of an unfinished scan fires, so none is skipped and a round's events stay in the
order of their ends. A scan lost with its trigger (a cancel, a restart) recorded nothing: the next
trigger scans again.

The list's order is read off the listing (:class:`~airflow_provider_aisearch.api.ListOrder`):

* newest first: the scan reads on from the page after those listed (a job that starts meanwhile
  shifts the list back, so a page may repeat jobs, never miss one);
* oldest first (the listing holds page 1 and the last page): the scan reads page 1 for the total,
  then back from the page before the last (pages counted from the front do not shift);
* no proven order: the listing already holds every page (see ``JobsAPI.newest_jobs``).

:func:`listing_time` is the listing's own time, which bounds what the watermark believes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_aisearch.api import JOBS_MAX_PER_PAGE, ListOrder, is_last_page
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.waiting.polling import Listing, SharedPolls

__all__ = ["MAX_WATCH_PAGES", "BoundaryScan", "listing_time"]

#: Most list pages an event watcher reads itself in one poll round (beyond the shared listing).
MAX_WATCH_PAGES = 4


def listing_time(listing: Listing) -> datetime:
    """
    The latest a listed job can have ended: the answer's ``Date`` plus the second it is rounded down
    by (the triggerer's clock when the answer had no ``Date``).
    """
    at = listing.server_time if listing.server_time is not None else time.time()
    return datetime.fromtimestamp(at + 1.0, tz=timezone.utc)


class BoundaryScan:
    """
    One event watcher's reading of the pages past its shared listing (state kept across rounds).

    :param instance_id: AI Search instance id.
    :param log: The watcher's logger.
    """

    def __init__(self, instance_id: str, log: Any) -> None:
        self.instance_id = instance_id
        self.log = log
        self.found: dict[str, Job] = {}  # every job read by the scan so far, newest read last
        self.next_page: int | None = None  # None: no scan under way; 0: read page 1 for the total first
        self.step = 1  # +1: newest first, read on; -1: oldest first, read back
        self.order = ListOrder()

    async def extend(self, source: SharedPolls, listing: Listing, known: Callable[[Job], bool]) -> Listing:
        """
        The jobs this round considers: ``listing`` down to the boundary.

        :return: ``listing`` itself when it reaches the boundary; with the pages read past it once
            the scan is done; with no jobs while the scan goes on; with ``error`` set when a page
            could not be read (the scan resumes at that page).
        """
        if self.next_page is None and not self._start(listing.jobs or (), known):
            return listing
        self._add(listing.jobs or ())
        try:
            done = await self._read(source, known)
        except Exception as exc:  # handled by the watcher as a failed listing
            return dataclasses.replace(listing, error=exc)
        if not done:
            return dataclasses.replace(listing, jobs=())
        jobs = tuple(self.found.values())
        self.found, self.next_page = {}, None
        return dataclasses.replace(listing, jobs=jobs)

    def _start(self, jobs: Iterable[Job], known: Callable[[Job], bool]) -> bool:
        """Whether a scan is needed past ``jobs`` (the shared listing); if so, where it begins."""
        listed = list(jobs)
        order = ListOrder(j.started_at for j in listed)
        if len(listed) < JOBS_MAX_PER_PAGE or not order.proven:
            return False  # one page, or every page (no proven order): nothing past it
        if order.descending:
            if any(known(j) for j in listed):
                return False
            self.next_page, self.step, self.order = len(listed) // JOBS_MAX_PER_PAGE + 1, 1, order
        else:  # oldest first: page 1, then the newest page(s)
            newest = listed[JOBS_MAX_PER_PAGE:]
            if not newest or any(known(j) for j in newest):
                return False
            self.next_page, self.step = 0, -1
        return True

    def _add(self, jobs: Iterable[Job]) -> list[Job]:
        fresh = [j for j in jobs if j.id not in self.found]
        for job in jobs:  # the newest read of each job wins
            self.found.pop(job.id, None)
            self.found[job.id] = job
        return fresh

    async def _read(self, source: SharedPolls, known: Callable[[Job], bool]) -> bool:
        """Read up to :data:`MAX_WATCH_PAGES` pages; whether the boundary or the list's end was reached."""
        first = self.next_page
        for _ in range(MAX_WATCH_PAGES):
            number = self.next_page
            assert number is not None
            page = await source.run(source.api.list_jobs(self.instance_id, page=max(number, 1)))
            fresh = self._add(page.jobs)
            if number == 0:  # oldest first: page 1 told the total; read back from before the last page
                last = -(-(page.total_count or 0) // page.per_page)
                self.next_page = last - 1
                if self.next_page <= 1:
                    return True
                continue
            if self.step > 0:
                for job in fresh:
                    self.order.see(job.started_at)
                ordered = self.order.descending  # else: no order after all, read every page
                if (ordered and any(known(j) for j in page.jobs)) or is_last_page(
                    page.count, number, page.per_page, page.total_count
                ):
                    return True
            elif any(known(j) for j in page.jobs) or number <= 2:
                return True
            self.next_page = number + self.step
        self.log.info(
            "Read %d list pages of instance %r (from page %s) without reaching the jobs already "
            "considered; reading on from page %s in the next round (no event until then)",
            MAX_WATCH_PAGES,
            self.instance_id,
            max(first or 0, 1),
            self.next_page,
        )
        return False
