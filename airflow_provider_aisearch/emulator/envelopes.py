"""Cloudflare's answer envelopes, and the error entries the emulator answers with.

Every answer is ``{"success", "errors", "messages", "result"}``; an error entry is ``{"code",
"message"}``, and every entry of a 400 answer carries a ``path`` (the offending field's, empty when
there is none), as Cloudflare's schema requires of its "Input Validation Error". Codes the emulator
invents where Cloudflare documents none: ``job_not_found`` is 7005, ``Job cannot be cancelled.`` is 7009,
``item_not_found`` is 7006, a sync job asked of a built-in-storage instance is 7024.
:func:`present` leaves out the optional fields an object does not have, as Cloudflare's schema has
them (optional, not nullable).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "AUTH_ERROR",
    "CANNOT_CANCEL",
    "COOLDOWN",
    "INVALID_TOKEN",
    "NOT_FOUND_INSTANCE",
    "NOT_FOUND_ITEM",
    "NOT_FOUND_JOB",
    "NO_SYNC_JOBS",
    "NO_ROUTE",
    "RATE_LIMITED",
    "UNAVAILABLE",
    "Reply",
    "error",
    "invalid",
    "ok",
    "present",
]

#: An answer before it is sent: status, JSON body (bytes: sent as they are, e.g. a download), extra headers.
Reply = tuple[int, dict[str, Any] | bytes, dict[str, str]]

AUTH_ERROR = {"code": 10000, "message": "Authentication error"}
INVALID_TOKEN = {"code": 1000, "message": "Invalid API Token"}
NO_ROUTE = {"code": 7003, "message": "No route for the URI."}
NOT_FOUND_INSTANCE = {"code": 7002, "message": "ai_search_not_found"}
NOT_FOUND_JOB = {"code": 7005, "message": "job_not_found"}
NOT_FOUND_ITEM = {"code": 7006, "message": "item_not_found"}
#: ``POST jobs`` on a built-in-storage instance: Cloudflare's answer is undocumented ("There are no sync jobs").
NO_SYNC_JOBS = {
    "code": 7024,
    "message": "Instances with built-in storage have no sync jobs: uploaded files are indexed as they are uploaded",
}
COOLDOWN = {"code": 7020, "message": "sync_in_cooldown"}
RATE_LIMITED = {"code": 971, "message": "Please wait and consider throttling your request speed"}
CANNOT_CANCEL = {"code": 7009, "message": "Job cannot be cancelled."}
UNAVAILABLE = {"code": 7017, "message": "Unable to connect to ai search"}


def invalid(message: str, *path: str) -> dict[str, Any]:
    """A validation error entry (code 7001) with the ``path`` of the offending field."""
    return {"code": 7001, "message": message, "path": list(path)}


def error(status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    """A failed answer: ``success`` false, ``errors`` as given (on a 400, each with a ``path``), ``result`` null."""
    entries = [{**entry, "path": entry.get("path", [])} if status == 400 else entry for entry in errors]
    return status, {"success": False, "errors": entries, "messages": [], "result": None}, headers or {}


def present(data: dict[str, Any], optional: Iterable[str]) -> dict[str, Any]:
    """``data`` without the ``optional`` fields whose value is ``None`` (absent, not null)."""
    absent = {key for key in optional if data.get(key, 0) is None}
    return {key: value for key, value in data.items() if key not in absent}


def ok(result: Any, **extra: Any) -> Reply:
    """A 200 answer carrying ``result`` (``extra`` adds top-level keys such as ``result_info``)."""
    body = {"success": True, "errors": [], "messages": [], "result": result}
    body.update(extra)
    return 200, body, {}
