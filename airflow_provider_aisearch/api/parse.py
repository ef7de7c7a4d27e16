"""Parsing: Cloudflare's answer envelopes into jobs, pages of jobs, log entries, instances, stats and items.

:func:`parse_job`, :func:`parse_job_page` and :func:`parse_log_page` build
:class:`~airflow_provider_aisearch.models.jobs.Job`, :class:`~airflow_provider_aisearch.models.jobs.JobPage` and
:class:`~airflow_provider_aisearch.models.jobs.JobLog`; :func:`parse_instance`, :func:`parse_instance_stats`
and :func:`parse_item_page` build the :mod:`~airflow_provider_aisearch.models.instances` models,
:func:`parse_search_result` a :class:`~airflow_provider_aisearch.models.search.SearchResult`; a payload
that does not hold what it should becomes
:class:`~airflow_provider_aisearch.exceptions.AISearchResponseError` naming the request. A timestamp
that is present but not readable is no error: the model keeps it as sent, and it is logged once
per object and field (:func:`~airflow_provider_aisearch.models.timestamps.warn_unparsed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_provider_aisearch.exceptions import AISearchResponseError
from airflow_provider_aisearch.models.instances import Instance, InstanceStats, Item, MalformedStatsError
from airflow_provider_aisearch.models.jobs import Job, JobLog, JobPage, MalformedJobError
from airflow_provider_aisearch.models.search import SearchResult
from airflow_provider_aisearch.models.timestamps import warn_unparsed

__all__ = [
    "parse_instance",
    "parse_instance_stats",
    "parse_item_page",
    "parse_job",
    "parse_job_page",
    "parse_log_page",
    "parse_search_result",
    "result_of",
]

T = TypeVar("T")


def result_of(payload: Mapping[str, Any], kind: type, *, method: str, path: str) -> Any:
    """Return ``payload["result"]`` if it is a ``kind`` (dict or list), else raise AISearchResponseError."""
    result = payload.get("result")
    if not isinstance(result, kind):
        raise AISearchResponseError(
            f"{method} {path} answered with a 'result' that is not {'a list' if kind is list else 'an object'}",
            method=method,
            path=path,
        )
    return result


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _warn_job(job: Job, where: str) -> None:
    if job.unparsed_timestamps:
        ended = "; whether it has ended is read from ended_at/end_reason being present"
        warn_unparsed("job", job.id, job.unparsed_timestamps, where=where, consequence=ended)


def parse_job_page(payload: Mapping[str, Any], *, page: int, per_page: int, method: str, path: str) -> JobPage:
    """Build a :class:`JobPage` from a list-jobs envelope."""
    jobs, total = _parse_list(payload, Job.from_api, "a malformed job", method=method, path=path)
    for job in jobs:
        _warn_job(job, f"{method} {path}")
    info = payload.get("result_info")
    info = info if isinstance(info, Mapping) else {}
    return JobPage(
        jobs=tuple(jobs),
        page=_int_or_none(info.get("page")) or page,
        per_page=_int_or_none(info.get("per_page")) or per_page,
        count=len(jobs),
        total_count=total,
    )


def _parse_one(payload: Mapping[str, Any], build: Callable[[Any], T], what: str, *, method: str, path: str) -> T:
    """One object envelope through ``build`` (a model's ``from_api``); ``what`` names it in the error."""
    raw = result_of(payload, dict, method=method, path=path)
    try:
        return build(raw)
    except MalformedJobError as exc:
        # Stats that break the schema can never become valid: a wait ends at once instead of at its timeout.
        permanent = isinstance(exc, MalformedStatsError)
        raise AISearchResponseError(
            f"{method} {path} returned {what}: {exc}", method=method, path=path, transient=False if permanent else None
        ) from None


def _parse_list(
    payload: Mapping[str, Any], build: Callable[[Any], T], what: str, *, method: str, path: str
) -> tuple[list[T], int | None]:
    """A list envelope: each entry through ``build``, and ``result_info.total_count`` (if reported)."""
    raw = result_of(payload, list, method=method, path=path)
    try:
        entries = [build(entry) for entry in raw]
    except MalformedJobError as exc:
        raise AISearchResponseError(f"{method} {path} returned {what}: {exc}", method=method, path=path) from None
    info = payload.get("result_info")
    total = _int_or_none(info.get("total_count")) if isinstance(info, Mapping) else None
    return entries, total


def parse_job(payload: Mapping[str, Any], *, method: str, path: str) -> Job:
    """Build a :class:`Job` from a single-job envelope."""
    job = _parse_one(payload, Job.from_api, "a malformed job", method=method, path=path)
    _warn_job(job, f"{method} {path}")
    return job


def parse_log_page(payload: Mapping[str, Any], *, method: str, path: str) -> tuple[list[JobLog], int | None]:
    """Read a job-logs envelope: the entries and ``result_info.total_count`` (if reported)."""
    entries, total = _parse_list(payload, JobLog.from_api, "a malformed log entry", method=method, path=path)
    for entry in entries:
        if entry.unparsed_timestamps:
            warn_unparsed("log entry", str(entry.id), entry.unparsed_timestamps, where=f"{method} {path}")
    return entries, total


def parse_instance(payload: Mapping[str, Any], *, method: str, path: str) -> Instance:
    """Build an :class:`Instance` from a get-instance envelope."""
    return _parse_one(payload, Instance.from_api, "a malformed instance", method=method, path=path)


def parse_instance_stats(payload: Mapping[str, Any], *, method: str, path: str) -> InstanceStats:
    """Build :class:`InstanceStats` from a stats envelope (malformed stats: a permanent, not transient, error)."""
    stats = _parse_one(payload, InstanceStats.from_api, "malformed instance stats", method=method, path=path)
    if stats.unparsed_timestamps:
        warn_unparsed("instance stats", path, stats.unparsed_timestamps, where=f"{method} {path}")
    return stats


def parse_item_page(payload: Mapping[str, Any], *, method: str, path: str) -> tuple[list[Item], int | None]:
    """Read an items-list envelope: the items and ``result_info.total_count`` (if reported)."""
    items, total = _parse_list(payload, Item.from_api, "a malformed item", method=method, path=path)
    for item in items:
        if item.unparsed_timestamps:
            warn_unparsed("item", item.id, item.unparsed_timestamps, where=f"{method} {path}")
    return items, total


def parse_search_result(payload: Mapping[str, Any], *, method: str, path: str) -> SearchResult:
    """Build a :class:`SearchResult` from a search envelope."""
    return _parse_one(payload, SearchResult.from_api, "a malformed search result", method=method, path=path)
