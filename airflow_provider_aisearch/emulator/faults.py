"""Scripted faults (:class:`Fault`, :meth:`AISearchEmulator.inject`) and random ones (:class:`Chaos`).

A fault replaces or spoils the answer to a request: an HTTP error, a dropped connection before
or after the API acted, a late or truncated answer, an HTML page from a proxy, or an action run
just before the request is served.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aisearch.emulator.envelopes import RATE_LIMITED, UNAVAILABLE, error
from airflow_provider_aisearch.emulator.routes import route_of

__all__ = ["CHAOS_KINDS", "Chaos", "Fault", "FaultInjection", "FaultRule"]


@dataclass
class Fault:
    """
    A scripted failure for the next matching request(s).

    :param kind: ``"status"`` (answer ``status``/``body``/``headers`` without acting),
        ``"reset_before"`` (drop the connection before acting), ``"reset_after"`` (act, then drop
        the connection without answering), ``"delay"`` (act, then answer ``delay`` seconds late),
        ``"truncate"`` (act, then send the first half of the JSON answer), ``"status_after"`` (act,
        then answer ``status``/``body`` as a failing proxy would), ``"before"`` (call ``action``,
        then serve the request normally: e.g. end a job just before a cancel arrives).
    :param status: HTTP status for ``"status"``.
    :param body: Body for ``"status"``: bytes/str sent verbatim, anything else JSON-encoded.
    :param headers: Extra response headers for ``"status"``.
    :param delay: Seconds for ``"delay"``.
    :param action: Callable for ``"before"``.
    """

    kind: str
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: Callable[[], None] | None = None

    @classmethod
    def before(cls, action: Callable[[], None]) -> Fault:
        """Run ``action`` (no arguments) just before the request is served normally."""
        return cls("before", action=action)

    @classmethod
    def unavailable(cls) -> Fault:
        """Cloudflare's 503 ``Unable to connect to ai search`` (code 7017), as any jobs endpoint may send it."""
        _, body, _ = error(503, dict(UNAVAILABLE))
        return cls("status", status=503, body=body)

    @classmethod
    def http(cls, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Fault:
        """An HTTP answer; ``body`` defaults to a Cloudflare error envelope."""
        if body is None:
            _, body, _ = error(status, {"code": status, "message": "emulated failure"})
        return cls("status", status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: int | None = 1) -> Fault:
        """Cloudflare's global rate-limit 429 (code 971), optionally with ``Retry-After``."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        _, body, _ = error(429, dict(RATE_LIMITED))
        return cls("status", status=429, body=body, headers=headers)

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page (as a proxy in front of the API would send)."""
        page = f"<html><head><title>{status}</title></head><body><h1>Error {status}</h1></body></html>"
        return cls("status", status=status, body=page, headers={"Content-Type": "text/html"})


#: Transient faults :class:`Chaos` can inject, with their default weights.
CHAOS_KINDS: dict[str, float] = {
    "500": 1,
    "502": 2,
    "503": 2,
    "504": 1,
    "429": 2,
    "reset_before": 1,
    "reset_after": 1,
    "slow": 0.5,
    "truncated": 1,
    "html200": 0.5,
    "html502": 1,
    "502_after": 1,
    "success_false": 0.5,
}


@dataclass
class Chaos:
    """
    Random transient faults on a share of requests, deterministic under ``seed`` for a given request order.

    :param rate: Share of matching requests that get a fault (0-1).
    :param kinds: Fault kinds and weights (keys of :data:`CHAOS_KINDS`).
    :param seed: Seed of the fault choices.
    :param methods: Only these HTTP methods (``None``: all).
    :param routes: Only these routes, e.g. ``{"jobs", "legacy_jobs"}`` (``None``: all).
    :param slow_delay: Seconds a ``"slow"`` answer takes (set it above the client's read timeout).
    :param retry_after: ``Retry-After`` seconds on ``"429"`` faults.
    """

    rate: float = 0.3
    kinds: dict[str, float] = field(default_factory=lambda: dict(CHAOS_KINDS))
    seed: int = 0
    methods: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    slow_delay: float = 0.3
    retry_after: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(CHAOS_KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds: {sorted(unknown)}")
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._rng = random.Random(self.seed)
        self._names = list(self.kinds)
        self._weights = [self.kinds[n] for n in self._names]

    def pick(self, method: str, route: str | None) -> tuple[str, Fault] | None:
        """The fault for one request, or ``None``."""
        if self.methods is not None and method not in self.methods:
            return None
        if self.routes is not None and route not in self.routes:
            return None
        if self._rng.random() >= self.rate:
            return None
        name = self._rng.choices(self._names, self._weights)[0]
        return name, self._fault(name)

    def _fault(self, name: str) -> Fault:
        if name.isdigit() and name != "429":  # the API refused: nothing was done
            return Fault.http(int(name))
        if name == "429":
            return Fault.rate_limited(retry_after=self.retry_after)
        if name in ("reset_before", "reset_after", "truncate"):
            return Fault(name)
        if name == "slow":
            return Fault("delay", delay=self.slow_delay)
        if name == "truncated":
            return Fault("truncate")
        if name == "html200":
            return Fault.html(200)
        if name == "html502":
            return Fault.html(502)
        if name == "502_after":
            page = Fault.html(502)
            return Fault("status_after", status=502, body=page.body, headers=page.headers)
        body = {"success": False, "errors": [{"code": 7017, "message": "unable_to_connect_to_ai_search"}]}
        return Fault.http(200, body)


@dataclass
class FaultRule:
    """
    A scripted fault waiting for its requests (see :meth:`AISearchEmulator.inject`).

    :param fault: The fault to apply.
    :param method: Only requests with this HTTP method (``None``: all).
    :param path: Only requests whose raw path this pattern is found in (``None``: all).
    :param remaining: How many more requests get it.
    """

    fault: Fault
    method: str | None
    path: re.Pattern[str] | None
    remaining: int

    def take(self, method: str, path: str) -> bool:
        """Whether the rule applies to this request (counting it if so)."""
        if self.remaining > 0 and (self.method in (None, method)) and (self.path is None or self.path.search(path)):
            self.remaining -= 1
            return True
        return False


class FaultInjection:
    """
    How :class:`~airflow_provider_aisearch.emulator.AISearchEmulator` picks the fault for a request.

    Scripted faults (:meth:`inject`) come first, in the order they were added; then :attr:`chaos`.
    The emulator's constructor sets the attributes below.
    """

    chaos: Chaos | None
    fault_counts: Counter[str]
    _faults: list[FaultRule]
    _lock: threading.RLock

    def inject(self, fault: Fault, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """
        Apply ``fault`` to the next ``times`` requests matching ``method`` and ``path``.

        :param path: Regular expression searched in the raw request path.
        """
        with self._lock:
            self._faults.append(FaultRule(fault, method, re.compile(path) if path else None, times))

    def clear_faults(self) -> None:
        """Drop every scripted fault and the chaos setting."""
        with self._lock:
            self._faults.clear()
            self.chaos = None

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.take(method, path):
                    self.fault_counts[rule.fault.kind] += 1
                    return rule.fault
            if self.chaos is not None:
                picked = self.chaos.pick(method, route_of(path))
                if picked is not None:
                    self.fault_counts[picked[0]] += 1
                    return picked[1]
            return None
