"""Value objects for Cloudflare AI Search indexing jobs, and the end-reason classification.

The API has no status field: a job runs while ``ended_at`` is null, and its outcome is read from
the free-form ``end_reason``. :class:`EndReasonPolicy` is the one place that turns the pair into a
:class:`JobStatus`; everything else (hook, sensor, trigger, operators) calls it.

This module imports nothing from Airflow, so trigger events and tests can use it cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

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


class MalformedJobError(ValueError):
    """A job or log object from the API lacks a required field or has a field of the wrong type."""


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

    def classify(self, ended_at: datetime | None, end_reason: str | None) -> JobStatus:
        """Return the status of a job with these ``ended_at`` / ``end_reason`` values."""
        if ended_at is None:
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
        status = self.classify(job.ended_at, job.end_reason)
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


_DATE_FIRST = re.compile(r"\d{4}-?\d{2}-?\d{2}")
#: The forms Cloudflare sends (``2026-07-16 19:29:59``, or ISO 8601 with ``T``, up to 6 fraction
#: digits and ``Z`` / ``±HH:MM`` / ``±HHMM``), read without pendulum: listing 10,000 jobs parses
#: 30,000 timestamps, and ``pendulum.parse`` costs about 15 µs each.
_COMMON_FORM = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))?"
)


def _parse_common_form(text: str) -> datetime | None:
    """A timestamp in :data:`_COMMON_FORM` (naive = UTC), or ``None`` for any other form."""
    match = _COMMON_FORM.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    zone = timezone.utc
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone)


def parse_timestamp(value: Any, *, name: str = "timestamp") -> datetime | None:
    """
    Parse a job timestamp into an aware UTC datetime.

    Cloudflare sends ``"2026-07-16 19:29:59"`` (UTC, no zone). ISO 8601 with ``T``, fractional
    seconds of any length, ``Z`` or an offset (``+00:00`` or ``+0000``) is accepted too; naive
    values are read as UTC. ``pendulum`` parses them, the same on every Python version
    (``datetime.fromisoformat`` accepts far less before Python 3.11).

    :param value: The raw value (``None`` and ``""`` give ``None``).
    :param name: Field name, for the error message.
    :raises MalformedJobError: the value is not a parseable string.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            common = _parse_common_form(text)
        except (ValueError, OverflowError):  # e.g. month 13, or an offset of a day or more
            raise MalformedJobError(f"{name} is not a timestamp: {value[:64]!r}") from None
        if common is not None:
            return common.astimezone(timezone.utc)
        import pendulum  # Airflow imports it already: no import cost

        result = None
        if _DATE_FIRST.match(text):  # a date and maybe a time; never a bare time or a duration
            try:
                result = pendulum.parse(text, tz="UTC")
            except (ValueError, TypeError, OverflowError):
                result = None
        if not isinstance(result, pendulum.DateTime):
            raise MalformedJobError(f"{name} is not a timestamp: {value[:64]!r}") from None
        parsed = datetime(
            result.year,
            result.month,
            result.day,
            result.hour,
            result.minute,
            result.second,
            result.microsecond,
            tzinfo=timezone(result.utcoffset() or timedelta(0)),
        )
    else:
        raise MalformedJobError(f"{name} must be a string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _format_timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedJobError(f"job field {key!r} must be a string or null, got {type(value).__name__}")


@dataclass(frozen=True)
class Job:
    """
    One indexing job, as returned by the AI Search jobs API.

    Timestamps are timezone-aware UTC datetimes (or ``None``). :attr:`status` is derived with the
    default :class:`EndReasonPolicy`; use :meth:`classify` to apply user overrides.
    """

    id: str
    source: str | None = None
    description: str | None = None
    end_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    last_seen_at: datetime | None = None

    @property
    def status(self) -> JobStatus:
        """Status under the default end-reason classification."""
        return DEFAULT_END_REASON_POLICY.classify(self.ended_at, self.end_reason)

    @property
    def is_running(self) -> bool:
        """``True`` while the job has not ended (``ended_at`` is null)."""
        return self.ended_at is None

    def classify(self, policy: EndReasonPolicy | None = None) -> JobStatus:
        """Status of this job under ``policy`` (the default classification when ``None``)."""
        return (policy or DEFAULT_END_REASON_POLICY).classify(self.ended_at, self.end_reason)

    @classmethod
    def from_api(cls, raw: Any) -> Job:
        """
        Build a job from the API's JSON object. Unknown extra fields are ignored.

        :raises MalformedJobError: ``raw`` is not an object, has no string ``id``, or has a field of the wrong type.
        """
        if not isinstance(raw, Mapping):
            raise MalformedJobError(f"a job must be a JSON object, got {type(raw).__name__}")
        job_id = raw.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise MalformedJobError("a job object has no string 'id'")
        return cls(
            id=job_id,
            source=_optional_str(raw, "source"),
            description=_optional_str(raw, "description"),
            end_reason=_optional_str(raw, "end_reason"),
            started_at=parse_timestamp(raw.get("started_at"), name="started_at"),
            ended_at=parse_timestamp(raw.get("ended_at"), name="ended_at"),
            last_seen_at=parse_timestamp(raw.get("last_seen_at"), name="last_seen_at"),
        )

    def to_dict(self, policy: EndReasonPolicy | None = None) -> dict[str, Any]:
        """
        JSON-safe dict for XCom and trigger events: ISO 8601 UTC strings plus ``"status"``.

        :param policy: Classification for ``"status"`` (the default one when ``None``).
        """
        return {
            "id": self.id,
            "source": self.source,
            "description": self.description,
            "end_reason": self.end_reason,
            "started_at": _format_timestamp(self.started_at),
            "ended_at": _format_timestamp(self.ended_at),
            "last_seen_at": _format_timestamp(self.last_seen_at),
            "status": self.classify(policy).value,
        }

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
    :param created_at: Aware UTC datetime (the API sends epoch seconds).
    :param message: Log text.
    :param message_type: Cloudflare's numeric kind code (meaning undocumented).
    """

    id: int
    created_at: datetime | None
    message: str
    message_type: int | None = None

    @classmethod
    def from_api(cls, raw: Any) -> JobLog:
        """
        Build a log entry from the API's JSON object.

        :raises MalformedJobError: ``raw`` is not an object or has fields of the wrong type.
        """
        if not isinstance(raw, Mapping):
            raise MalformedJobError(f"a log entry must be a JSON object, got {type(raw).__name__}")
        entry_id = raw.get("id")
        if isinstance(entry_id, bool) or not isinstance(entry_id, int):
            raise MalformedJobError("a log entry has no integer 'id'")
        created = raw.get("created_at")
        if created is None:
            created_at = None
        elif isinstance(created, (int, float)) and not isinstance(created, bool):
            try:
                created_at = datetime.fromtimestamp(created, tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                raise MalformedJobError(f"log 'created_at' out of range: {created!r}") from None
        else:
            raise MalformedJobError("log 'created_at' must be epoch seconds")
        message = raw.get("message")
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise MalformedJobError("log 'message' must be a string")
        message_type = raw.get("message_type")
        if message_type is not None and (isinstance(message_type, bool) or not isinstance(message_type, int)):
            raise MalformedJobError("log 'message_type' must be an integer")
        return cls(id=entry_id, created_at=created_at, message=message, message_type=message_type)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "id": self.id,
            "created_at": _format_timestamp(self.created_at),
            "message": self.message,
            "message_type": self.message_type,
        }
