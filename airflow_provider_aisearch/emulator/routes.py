"""The paths the emulator serves, and which route a raw request path is.

Routes: ``jobs`` (``/accounts/{account}/ai-search/namespaces/{namespace}/instances/{id}/jobs[/{job}[/logs]]``),
``legacy_jobs`` (the same without ``namespaces/{namespace}``), ``instance`` and ``instance_stats``
(``.../instances/{id}[/stats]``, with ``legacy_instance`` and ``legacy_instance_stats``), ``items``
(``.../namespaces/{namespace}/instances/{id}/items``, namespaced only, as Cloudflare serves it),
``search`` (``.../namespaces/{namespace}/instances/{id}/search``, namespaced only),
``account_verify``, ``user_verify`` and ``user``. Segments are matched on the raw (percent-encoded)
path and decoded afterwards.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["API_PREFIX", "match_route", "route_of"]

API_PREFIX = "/client/v4"

_SEG = r"([^/]+)"
_JOBS_TAIL = r"/instances/" + _SEG + r"/jobs(?:/" + _SEG + r"(/logs)?)?"
_NS = r"/accounts/" + _SEG + r"/ai-search/namespaces/" + _SEG
_LEGACY = r"/accounts/" + _SEG + r"/ai-search"
_INSTANCE = r"/instances/" + _SEG
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("jobs", re.compile(_NS + _JOBS_TAIL)),
    ("legacy_jobs", re.compile(_LEGACY + _JOBS_TAIL)),
    ("instance", re.compile(_NS + _INSTANCE)),
    ("legacy_instance", re.compile(_LEGACY + _INSTANCE)),
    ("instance_stats", re.compile(_NS + _INSTANCE + "/stats")),
    ("legacy_instance_stats", re.compile(_LEGACY + _INSTANCE + "/stats")),
    ("items", re.compile(_NS + _INSTANCE + "/items")),
    ("search", re.compile(_NS + _INSTANCE + "/search")),
    ("account_verify", re.compile(r"/accounts/" + _SEG + r"/tokens/verify")),
    ("user_verify", re.compile(r"/user/tokens/verify")),
    ("user", re.compile(r"/user")),
]


def match_route(raw_path: str) -> tuple[str, tuple[str, ...]] | None:
    """The route a raw path is, with its path parameters percent-decoded; ``None`` for no route."""
    if not raw_path.startswith(API_PREFIX + "/"):
        return None
    rest = raw_path[len(API_PREFIX) :]
    for name, pattern in _ROUTES:
        match = pattern.fullmatch(rest)
        if match:
            return name, tuple(unquote(g) for g in match.groups() if g is not None and g != "/logs")
    return None


def route_of(raw_path: str) -> str | None:
    """The route name of a raw path, or ``None``."""
    matched = match_route(raw_path)
    return None if matched is None else matched[0]
