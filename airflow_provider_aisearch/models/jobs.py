"""Value objects for Cloudflare AI Search indexing jobs, and the end-reason classification.

The API has no status field: a job runs until ``ended_at`` or ``end_reason`` is present, and its
outcome is read from the free-form ``end_reason``. :class:`EndReasonPolicy` is the one place that
turns the pair into a :class:`JobStatus`; everything else (hook, sensor, trigger, operators) calls
it. Timestamps are read by :mod:`~airflow_provider_aisearch.models.timestamps`.

This module imports nothing from Airflow, so trigger events and tests can use it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from airflow_provider_aisearch.models.timestamps import (
    MalformedJobError,
    format_timestamp,
    parse_timestamp,
    read_timestamps,
)

__all__ = [
    "DEFAULT_END_REASON_POLICY",
    "FAILING_STATUSES",
    "SUCCESS_END_REASONS",
    "TERMINAL_STATUSES",
    "EndReasonPolicy",
    "Job",
    "JobLog",
    "JobPage",
    "JobStatus",
    "MalformedJobError",
    "parse_timestamp",
]


class JobStatus(str, Enum):
    """Status of an indexing job, derived from ``ended_at`` and ``end_reason``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"

    def __str__(self) -> str:
        return self.value


#: Statuses of a job that has ended.
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUPERSEDED})
#: Statuses a sensor fails on (``superseded`` is decided by ``on_superseded``).
FAILING_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})

#: End reasons read as success by default (compared case-insensitively). Cloudflare documents no
#: enum; an empty or null end reason on an ended job also counts as success.
SUCCESS_END_REASONS = frozenset({"completed", "job_completed", "done", "finished", "success", "succeeded"})
#: The end reason Cloudflare gives a running job that a newer job replaced.
SUPERSEDED_END_REASON = "new_job_has_started"
#: Substrings that mark an end reason as a known failure (anything else unknown is failed too,
#: but with a message explaining how to declare it a success).
_KNOWN_FAILURE_MARKERS = ("error", "fail", "timeout", "timed_out", "abort", "unreachable")


def _normalise(reason: str | None) -> str:
    return (reason or "").strip().lower()


def _normalise_set(name: str, reasons: Iterable[str] | None) -> frozenset[str]:
    if reasons is None:
        return frozenset()
    if isinstance(reasons, str):
        raise ValueError(f"{name} must be a collection of strings, not a single string: {reasons!r}")
    out = set()
    for reason in reasons:
        if not isinstance(reason, str):
            raise ValueError(f"{name} must contain strings, got {reason!r}")
        out.add(_normalise(reason))
    return frozenset(out)


@dataclass(frozen=True)
class EndReasonPolicy:
    """
    How an ended job's ``end_reason`` maps to a :class:`JobStatus`.

    Explicit sets add to the defaults and win over the default patterns; comparison is
    case-insensitive and ignores surrounding whitespace.

    :param success_end_reasons: End reasons to treat as success.
    :param failure_end_reasons: End reasons to treat as failure.
    """

    success_end_reasons: frozenset[str] = field(default_factory=frozenset)
    failure_end_reasons: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        success_end_reasons: Iterable[str] | None = None,
        failure_end_reasons: Iterable[str] | None = None,
    ) -> EndReasonPolicy:
        """
        Validate and normalise user-given end-reason sets.

        :raises ValueError: a value is not a string, or a reason appears in both sets.
        """
        success = _normalise_set("success_end_reasons", success_end_reasons)
        failure = _normalise_set("failure_end_reasons", failure_end_reasons)
        both = success & failure
        if both:
            raise ValueError(
                "success_end_reasons and failure_end_reasons overlap: " + ", ".join(repr(r) for r in sorted(both))
            )
        return cls(success, failure)

    def classify(self, ended_at: datetime | None, end_reason: str | None, *, ended: bool | None = None) -> JobStatus:
        """
        Return the status of a job with these ``ended_at`` / ``end_reason`` values.

        A job has ended when either is present: an ended job may leave out ``ended_at`` (the
        schema makes it optional), and a running one carries no ``end_reason``.

        :param ended: Whether the job has ended, when the caller knows better (:attr:`Job.has_ended`:
            an ``ended_at`` that is present but not a timestamp); default: from the two values.
        """
        if ended is None:
            ended = ended_at is not None or bool(_normalise(end_reason))
        if not ended:
            return JobStatus.RUNNING
        reason = _normalise(end_reason)
        if reason in self.success_end_reasons:
            return JobStatus.SUCCEEDED
        if reason in self.failure_end_reasons:
            return JobStatus.FAILED
        if not reason or reason in SUCCESS_END_REASONS:
            return JobStatus.SUCCEEDED
        if reason == SUPERSEDED_END_REASON:
            return JobStatus.SUPERSEDED
        if "cancel" in reason:
            return JobStatus.CANCELLED
        return JobStatus.FAILED

    def is_recognised(self, end_reason: str | None) -> bool:
        """Whether ``end_reason`` is declared or matches a default pattern (known success/failure)."""
        reason = _normalise(end_reason)
        return (
            not reason
            or reason in self.success_end_reasons
            or reason in self.failure_end_reasons
            or reason in SUCCESS_END_REASONS
            or reason == SUPERSEDED_END_REASON
            or "cancel" in reason
            or any(marker in reason for marker in _KNOWN_FAILURE_MARKERS)
        )

    def explain(self, job: Job) -> str:
        """A one-line description of ``job``'s outcome under this policy, for logs and exceptions."""
        status = job.classify(self)
        text = f"job {job.id!r} is {status.value}"
        if status is JobStatus.RUNNING:
            return text
        text += f" (end_reason={job.end_reason!r})"
        if status is JobStatus.FAILED and not self.is_recognised(job.end_reason):
            text += (
                f"; this end_reason is not recognised and is treated as a failure. If it means "
                f"success, pass success_end_reasons={{{_normalise(job.end_reason)!r}}}"
            )
        return text


DEFAULT_END_REASON_POLICY = EndReasonPolicy()


#: A job's timestamp fields, in the order of :meth:`Job.to_dict`.
JOB_TIMESTAMP_FIELDS = ("started_at", "ended_at", "last_seen_at")


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedJobError(f"job field {key!r} must be a string or null, got {type(value).__name__}")


@dataclass(frozen=True)
class Job:
    """
    One indexing job, as returned by the AI Search jobs API.

    Timestamps are timezone-aware UTC datetimes (or ``None``), read in any form
    :func:`~airflow_provider_aisearch.models.timestamps.parse_timestamp` accepts. A timestamp that is present
    but not readable is ``None`` here and kept as sent in :attr:`unparsed_timestamps` (and in
    :meth:`to_dict`); whether the job has ended is then read from ``ended_at`` / ``end_reason``
    being present (:attr:`has_ended`). :attr:`status` is derived with the default
    :class:`EndReasonPolicy`; use :meth:`classify` to apply user overrides.
    """

    id: str
    source: str | None = None
    description: str | None = None
    end_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    last_seen_at: datetime | None = None
    #: Timestamp fields present in the answer but not readable as a time: field name -> value as sent.
    unparsed_timestamps: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def has_ended(self) -> bool:
        """Whether the job has ended: ``ended_at`` (readable or not) or ``end_reason`` is present."""
        return self.ended_at is not None or "ended_at" in self.unparsed_timestamps or bool(_normalise(self.end_reason))

    @property
    def status(self) -> JobStatus:
        """Status under the default end-reason classification."""
        return self.classify()

    @property
    def is_running(self) -> bool:
        """``True`` while the job has not ended (see :attr:`has_ended`)."""
        return not self.has_ended

    def classify(self, policy: EndReasonPolicy | None = None) -> JobStatus:
        """Status of this job under ``policy`` (the default classification when ``None``)."""
        return (policy or DEFAULT_END_REASON_POLICY).classify(self.ended_at, self.end_reason, ended=self.has_ended)

    @classmethod
    def from_api(cls, raw: Any) -> Job:
        """
        Build a job from the API's JSON object. Unknown extra fields are ignored; a timestamp that is
        not readable is kept in :attr:`unparsed_timestamps` (never an error).

        :raises MalformedJobError: ``raw`` is not an object, has no string ``id``, or has a field of the wrong type.
        """
        if not isinstance(raw, Mapping):
            raise MalformedJobError(f"a job must be a JSON object, got {type(raw).__name__}")
        job_id = raw.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise MalformedJobError("a job object has no string 'id'")
        times, unparsed = read_timestamps(raw, JOB_TIMESTAMP_FIELDS)
        return cls(
            id=job_id,
            source=_optional_str(raw, "source"),
            description=_optional_str(raw, "description"),
            end_reason=_optional_str(raw, "end_reason"),
            started_at=times["started_at"],
            ended_at=times["ended_at"],
            last_seen_at=times["last_seen_at"],
            unparsed_timestamps=unparsed,
        )

    def to_dict(self, policy: EndReasonPolicy | None = None) -> dict[str, Any]:
        """
        JSON-safe dict for XCom and trigger events: ISO 8601 UTC strings (an unreadable timestamp as the
        API sent it) plus ``"status"``.

        :param policy: Classification for ``"status"`` (the default one when ``None``).
        """
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "description": self.description,
            "end_reason": self.end_reason,
        }
        for key in JOB_TIMESTAMP_FIELDS:
            out[key] = format_timestamp(getattr(self, key), self.unparsed_timestamps, key)
        out["status"] = self.classify(policy).value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict` (the derived ``status`` and unknown keys are ignored)."""
        return cls.from_api(data)


@dataclass(frozen=True)
class JobPage:
    """
    One page of the job list.

    :param jobs: The jobs on this page, in the order the API returned them.
    :param page: Page number (1-based).
    :param per_page: Page size asked for.
    :param count: Number of jobs on this page.
    :param total_count: Total jobs across all pages, when the API reports it.
    """

    jobs: tuple[Job, ...]
    page: int
    per_page: int
    count: int
    total_count: int | None


@dataclass(frozen=True)
class JobLog:
    """
    One log entry of a job.

    :param id: Entry id (increasing per entry).
    :param created_at: Aware UTC datetime. Cloudflare's schema says only "number": epoch seconds, or
        milliseconds from :data:`~airflow_provider_aisearch.models.timestamps.EPOCH_MS_THRESHOLD` on; any
        other form :func:`~airflow_provider_aisearch.models.timestamps.parse_timestamp` reads is accepted too.
    :param message: Log text.
    :param message_type: Cloudflare's numeric kind code (meaning undocumented).
    :param unparsed_timestamps: ``{"created_at": value}`` when it was present but not readable.
    """

    id: int
    created_at: datetime | None
    message: str
    message_type: int | None = None
    unparsed_timestamps: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_api(cls, raw: Any) -> JobLog:
        """
        Build a log entry from the API's JSON object (an unreadable ``created_at`` is kept, never an error).

        :raises MalformedJobError: ``raw`` is not an object or has fields of the wrong type.
        """
        if not isinstance(raw, Mapping):
            raise MalformedJobError(f"a log entry must be a JSON object, got {type(raw).__name__}")
        entry_id = raw.get("id")
        if isinstance(entry_id, bool) or not isinstance(entry_id, int):
            raise MalformedJobError("a log entry has no integer 'id'")
        times, unparsed = read_timestamps(raw, ("created_at",))
        message = raw.get("message")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise MalformedJobError("log 'message' must be a string")
        message_type = raw.get("message_type")
        if message_type is not None and (isinstance(message_type, bool) or not isinstance(message_type, int)):
            raise MalformedJobError("log 'message_type' must be an integer")
        return cls(
            id=entry_id,
            created_at=times["created_at"],
            message=message,
            message_type=message_type,
            unparsed_timestamps=unparsed,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``created_at`` in ISO 8601 UTC, or as the API sent it when not readable)."""
        return {
            "id": self.id,
            "created_at": format_timestamp(self.created_at, self.unparsed_timestamps, "created_at"),
            "message": self.message,
            "message_type": self.message_type,
        }
