"""Waiting on a job: the one implementation behind the sensor's poke path and the trigger.

:class:`JobWatch` is a small state machine over :class:`~airflow_provider_aisearch.api.JobsAPI`
plans. Each :meth:`JobWatch.poll` is one GET of the watched job, plus one list request only when
the job was superseded and ``on_superseded="follow"`` (the successor and any further successors
are read from that listing, with no extra GET). The sync sensor drives it with ``run_sync`` and
the async trigger with ``run_async``; classification, following and outcomes are shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_aisearch.api import UNSET, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.models.jobs import EndReasonPolicy, Job, JobStatus

__all__ = [
    "ON_SUPERSEDED",
    "JobWatch",
    "PollResult",
    "find_successor",
    "result_dict",
    "validate_interval",
    "validate_on_superseded",
]

#: Allowed values of ``on_superseded``.
ON_SUPERSEDED = ("follow", "fail", "succeed")
#: A successor may appear to start this much before the superseded job ended (second-resolution clocks).
SUCCESSOR_TOLERANCE = timedelta(seconds=2)


def validate_on_superseded(value: object) -> str:
    """:raises ValueError: unless ``value`` is one of :data:`ON_SUPERSEDED`."""
    if value not in ON_SUPERSEDED:
        raise ValueError(f"on_superseded must be one of {', '.join(ON_SUPERSEDED)}; got {value!r}")
    return value


def validate_interval(name: str, value: object) -> float:
    """
    Check a wait's interval between polls (``poke_interval``, ``poll_interval``) and return it in seconds.

    :param name: The parameter's name, for the message.
    :param value: Seconds (a number) or a :class:`~datetime.timedelta`.
    :raises ValueError: not a finite number of seconds > 0 (an interval of 0 would poll without pause).
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a number of seconds > 0 (or a timedelta), got {value!r}")
    return float(seconds)


def find_successor(superseded: Job, jobs: Iterable[Job], exclude: Iterable[str] = ()) -> Job | None:
    """
    The job that replaced ``superseded``: the earliest one started at or after it ended.

    When its ``ended_at`` is not known (left out, or not a timestamp), the bound is its
    ``last_seen_at``, else its ``started_at``: jobs of one instance do not overlap, so the earliest
    job started after it is still its successor.

    :param superseded: A job that ended with ``new_job_has_started``.
    :param jobs: Candidate jobs (any order).
    :param exclude: Ids never to return (the superseded job and jobs already followed).
    """
    bound = superseded.ended_at or superseded.last_seen_at or superseded.started_at
    if bound is None:
        return None
    skip = {superseded.id, *exclude}
    earliest = bound - SUCCESSOR_TOLERANCE
    candidates = [j for j in jobs if j.id not in skip and j.started_at is not None and j.started_at >= earliest]
    # Timestamps have one-second resolution: among jobs started in the same second, one that has
    # itself ended (superseded) came before the one still running.
    return min(
        candidates, key=lambda j: (j.started_at, not j.has_ended, j.ended_at or j.started_at, j.id), default=None
    )


@dataclass(frozen=True)
class PollResult:
    """
    What one poll found.

    :param job: The job now watched (after following any supersedes).
    :param status: Its status under the watch's end-reason policy.
    :param followed_from: Ids of superseded jobs followed so far, oldest first.
    :param done: ``True`` once there is an outcome (the job ended and is not being followed).
    """

    job: Job
    status: JobStatus
    followed_from: tuple[str, ...]
    done: bool


class JobWatch:
    """
    Watch one job until it ends, following supersedes when asked.

    :param api: The jobs API plans for the connection.
    :param instance_id: AI Search instance id.
    :param job_id: Job to watch.
    :param namespace: Namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param policy: End-reason classification.
    :param on_superseded: ``"follow"``, ``"fail"`` or ``"succeed"``.
    :param followed_from: Superseded job ids already followed (when resuming).
    """

    def __init__(
        self,
        api: JobsAPI,
        instance_id: str,
        job_id: str,
        *,
        namespace: str | _Unset | None = UNSET,
        policy: EndReasonPolicy | None = None,
        on_superseded: str = "follow",
        followed_from: Sequence[str] = (),
    ) -> None:
        self.api = api
        self.instance_id = instance_id
        self.job_id = job_id
        self.namespace = namespace
        self.policy = policy or EndReasonPolicy()
        self.on_superseded = validate_on_superseded(on_superseded)
        self.followed_from: list[str] = list(followed_from)
        # Validate the ids now, so a bad templated value fails before any request.
        api.path(instance_id, job_id, namespace=namespace)

    def poll(self, listed: Sequence[Job] | None = None, by_id: Mapping[str, Job] | None = None) -> Plan[PollResult]:
        """
        One GET of the watched job (plus one list when following a supersede).

        :param listed: A recent listing of the instance's newest jobs (shared polling). When the
            watched job is in it, its state is read from there and no request is sent; a
            successor is then looked for in the same listing only.
        :param by_id: ``listed`` indexed by job id, when the caller has it (many waiters, one listing).
        """
        if listed is None:
            listed_job = None
        elif by_id is not None:
            listed_job = by_id.get(self.job_id)
        else:
            listed_job = next((j for j in listed if j.id == self.job_id), None)
        if listed_job is None:
            job = yield from self.api.get_job(self.instance_id, self.job_id, namespace=self.namespace)
        else:
            job = listed_job
        while True:
            status = job.classify(self.policy)
            if status is not JobStatus.SUPERSEDED or self.on_superseded != "follow":
                return PollResult(job, status, tuple(self.followed_from), done=status is not JobStatus.RUNNING)
            if listed is None:  # one listing serves a whole chain of supersedes
                listed = yield from self.api.newest_jobs(self.instance_id, namespace=self.namespace)
            successor = find_successor(job, listed, self.followed_from)
            if successor is None:
                # Not listed yet (or out of reach): look again at the next poll.
                return PollResult(job, status, tuple(self.followed_from), done=False)
            self.followed_from.append(job.id)
            self.job_id = successor.id
            job = successor  # the listing already has its state: no extra GET


def result_dict(job: Job, followed_from: Sequence[str], policy: EndReasonPolicy | None = None) -> dict[str, Any]:
    """XCom value of a finished wait: the job's dict (status under ``policy``) plus ``followed_from``."""
    data = job.to_dict(policy)
    data["followed_from"] = list(followed_from)
    return data
