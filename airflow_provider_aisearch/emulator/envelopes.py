"""Cloudflare's answer envelopes, and the error entries the emulator answers with.

Every answer is ``{"success", "errors", "messages", "result"}``; an error entry is ``{"code",
"message"}`` (validation errors add a ``path``). Codes the emulator invents where Cloudflare
documents none: ``job_not_found`` is 7005, ``Job cannot be cancelled.`` is 7009.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AUTH_ERROR",
    "CANNOT_CANCEL",
    "COOLDOWN",
    "INVALID_TOKEN",
    "NOT_FOUND_INSTANCE",
    "NOT_FOUND_JOB",
    "NO_ROUTE",
    "RATE_LIMITED",
    "UNAVAILABLE",
    "Reply",
    "error",
    "invalid",
    "ok",
]

#: An answer before it is sent: status, JSON body, extra headers.
Reply = tuple[int, dict[str, Any], dict[str, str]]

AUTH_ERROR = {"code": 10000, "message": "Authentication error"}
INVALID_TOKEN = {"code": 1000, "message": "Invalid API Token"}
NO_ROUTE = {"code": 7003, "message": "No route for the URI."}
NOT_FOUND_INSTANCE = {"code": 7002, "message": "ai_search_not_found"}
NOT_FOUND_JOB = {"code": 7005, "message": "job_not_found"}
COOLDOWN = {"code": 7020, "message": "sync_in_cooldown"}
RATE_LIMITED = {"code": 971, "message": "Please wait and consider throttling your request speed"}
CANNOT_CANCEL = {"code": 7009, "message": "Job cannot be cancelled."}
UNAVAILABLE = {"code": 7017, "message": "Unable to connect to ai search"}


def invalid(message: str, *path: str) -> dict[str, Any]:
    """A validation error entry (code 7001) with the ``path`` of the offending field."""
    return {"code": 7001, "message": message, "path": list(path)}


def error(status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    """A failed answer: ``success`` false, ``errors`` as given, ``result`` null."""
    return status, {"success": False, "errors": list(errors), "messages": [], "result": None}, headers or {}


def ok(result: Any, **extra: Any) -> Reply:
    """A 200 answer carrying ``result`` (``extra`` adds top-level keys such as ``result_info``)."""
    body = {"success": True, "errors": [], "messages": [], "result": result}
    body.update(extra)
    return 200, body, {}
