"""Start one job, never two: POST through the create cooldown, and resolve an ambiguous POST by description.

A create that fails ambiguously (5xx, timeout, reset: the job may exist) is followed by a listing
for a job with the same description started after the POST (less :data:`CLOCK_SKEW`): found, it
is the job; proven absent (the listing reaches back before the POST), the POST is sent again;
neither, the ambiguity is raised rather than risking a second job.

Unless told to supersede, it never ends another job either: it lists the instance again after
the caller's wait (``list_first``) and before each retry through the cooldown (the cooldown means
a job has just started, perhaps another task's), and hands a job found running back to the caller
as :class:`Busy`, for ``if_running`` to apply to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_aisearch.api import JOBS_MAX_PER_PAGE, _Unset
from airflow_provider_aisearch.exceptions import AISearchCooldownError, AISearchCreateAmbiguousError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.waiting.job_filter import newest_first_key

__all__ = ["CLOCK_SKEW", "COOLDOWN_WAIT", "MIN_COOLDOWN_WAIT", "Busy", "SafeCreate", "newest_running"]

#: Wait between create attempts during the cooldown when Cloudflare gives no ``Retry-After``.
COOLDOWN_WAIT = 30.0
#: Shortest wait between create attempts during the cooldown (even with ``Retry-After: 0``).
MIN_COOLDOWN_WAIT = 1.0
#: Slack for the difference between this machine's clock and Cloudflare's.
CLOCK_SKEW = timedelta(minutes=2)


def newest_running(jobs: Iterable[Job]) -> Job | None:
    """The newest of the running ``jobs``, if any."""
    running = [j for j in jobs if j.is_running]
    return max(running, key=newest_first_key) if running else None


@dataclass(frozen=True)
class Busy:
    """No job was started: ``job`` (not ours) was found running when listing again before a POST."""

    job: Job


@dataclass
class SafeCreate:
    """
    Create a job on one instance for :class:`~airflow_provider_aisearch.operators.AISearchCreateJobOperator`.

    :param hook: The hook (its retry policy bounds the ambiguous rounds).
    :param instance_id: AI Search instance id.
    :param namespace: Namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param cooldown_timeout: Seconds to keep retrying through the create cooldown.
    :param recheck_delay: Seconds before looking for the job of an ambiguous create a second time.
    :param log: The operator's logger.
    :param yield_to_running: List again before each cooldown retry (and first, with ``list_first``),
        and give way to a job found running (``False``: ``if_running="supersede"``, POST regardless).
    """

    hook: AISearchHook
    instance_id: str
    namespace: str | _Unset | None
    cooldown_timeout: float
    recheck_delay: float
    log: Any
    yield_to_running: bool = False

    def create(self, description: str, *, list_first: bool = False) -> Job | Busy:
        """
        POST through the cooldown; resolve ambiguous failures by description, never creating twice.

        :param description: The job's description (how an ambiguous POST's job is found).
        :param list_first: List before the first POST too (the caller has waited since it last listed).
        :return: The job started, or (``yield_to_running``) :class:`Busy` when another job runs.
        """
        deadline = time.monotonic() + self.cooldown_timeout
        sent_at = time.time()  # (wall clock) any job of ours started after this
        maybe_created: AISearchCreateAmbiguousError | None = None
        ambiguous_rounds = 0
        api = self.hook.api
        api.deadline = time.time() + self.cooldown_timeout  # the hook's own retry waits stay inside it
        try:
            found = self._running(description, sent_at, None) if list_first else None
            while found is None:
                try:
                    # The cooldown is retried here, not in the hook: each retry lists the instance first.
                    return self.hook.create_job(
                        self.instance_id, description=description, namespace=self.namespace, retry_cooldown=False
                    )
                except AISearchCooldownError as exc:
                    if maybe_created is not None:
                        # The job an earlier, ambiguous POST of ours started may be what holds the cooldown.
                        job, _ = self._find_by_description(description, sent_at)
                        if job is not None:
                            return job
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if maybe_created is not None:
                            raise maybe_created from None
                        raise AISearchCooldownError(
                            f"Instance {self.instance_id!r} was still in its sync cooldown after "
                            f"cooldown_timeout={self.cooldown_timeout:g} s: {exc.message}",
                            status_code=exc.status_code,
                            errors=exc.errors,
                            method=exc.method,
                            path=exc.path,
                        ) from None
                    wait = exc.retry_after if exc.retry_after is not None else COOLDOWN_WAIT
                    wait = min(max(wait, MIN_COOLDOWN_WAIT), remaining)
                    self.log.info("Instance %s is in its sync cooldown; trying again in %.1f s", self.instance_id, wait)
                    time.sleep(wait)
                    found = self._running(description, sent_at, maybe_created)
                except AISearchCreateAmbiguousError as exc:
                    self.log.warning("%s; looking for the job by its description", exc.message)
                    job, covered = self._find_by_description(description, sent_at)
                    if job is not None:
                        self.log.info("Found job %s started by the ambiguous request", job.id)
                        return job
                    ambiguous_rounds += 1
                    if (
                        not covered
                        or ambiguous_rounds > self.hook.retry_policy.max_retries
                        or time.monotonic() >= deadline
                    ):
                        # Absence is not proven (the listing does not reach back to our POST), or the
                        # retry budget is spent: raising is safer than risking a second job.
                        raise
                    maybe_created = exc
                    self.log.info("No job has description %r: the create did not happen; sending it again", description)
            return found
        finally:
            api.deadline = None

    def _running(self, description: str, since: float, maybe_created: Exception | None) -> Job | Busy | None:
        """
        List again: after an ambiguous POST, our job (as :func:`_find_by_description` finds it) if it is
        there; else the newest running job as :class:`Busy`; ``None`` when none runs.
        """
        if not self.yield_to_running:
            return None
        jobs = self.hook.run(self.hook.api.newest_jobs(self.instance_id, namespace=self.namespace))
        mine = _mine(jobs, description, since) if maybe_created is not None else None
        if mine is not None:
            self.log.info("Found job %s started by the ambiguous request", mine.id)
            return mine
        running = newest_running(jobs)
        if running is None:
            return None
        self.log.info("Job %s is running on instance %s now: no job was started", running.id, self.instance_id)
        return Busy(running)

    def _find_by_description(self, description: str, since: float) -> tuple[Job | None, bool]:
        """
        The job with ``description`` started after ``since`` (epoch seconds, less clock-skew slack),
        and whether the listing reaches back before ``since`` (so that absence means "not created").
        """
        earliest = datetime.fromtimestamp(since, tz=timezone.utc) - CLOCK_SKEW
        covered = False
        for attempt in range(2):
            jobs = self.hook.run(self.hook.api.newest_jobs(self.instance_id, namespace=self.namespace))
            mine = _mine(jobs, description, since)
            if mine is not None:
                return mine, True
            covered = len(jobs) < JOBS_MAX_PER_PAGE or any(
                j.started_at is not None and j.started_at < earliest for j in jobs
            )
            if attempt == 0:
                time.sleep(self.recheck_delay)
        return None, covered


def _mine(jobs: Iterable[Job], description: str, since: float) -> Job | None:
    """The newest job with ``description`` started after ``since`` (epoch seconds, less :data:`CLOCK_SKEW`)."""
    earliest = datetime.fromtimestamp(since, tz=timezone.utc) - CLOCK_SKEW
    mine = [j for j in jobs if j.description == description and (j.started_at is None or j.started_at >= earliest)]
    return max(mine, key=newest_first_key) if mine else None
