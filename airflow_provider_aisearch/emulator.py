"""A local emulator of the Cloudflare AI Search jobs API (stdlib only).

Use it to try the example DAGs without a Cloudflare account, and in tests::

    with AISearchEmulator(instances=["docs"]) as emu:
        emu.url                      # http://127.0.0.1:<port>/client/v4
        emu.connection_json()        # value for AIRFLOW_CONN_AISEARCH_DEFAULT
        emu.requests                 # what clients sent (never header values)

or from a shell: ``python -m airflow_provider_aisearch.emulator --port 8787``.

It serves every jobs endpoint in the namespaced and the legacy un-namespaced form, token verify
and ``/user``, with Cloudflare's envelopes, auth checks (401/403), pagination with
``result_info``, jobs that end as time passes, ``new_job_has_started`` when a job is created while
one runs, the create cooldown (429, code 7020), and scripted faults (:meth:`AISearchEmulator.inject`).
Cancelling an ended job gets Cloudflare's 400 ``Job cannot be cancelled.``; its own validation
errors (400) carry a ``path`` array like Cloudflare's. Error codes it invents where Cloudflare
documents none: ``job_not_found`` is 7005, ``Job cannot be cancelled.`` is 7009.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["CHAOS_KINDS", "AISearchEmulator", "Chaos", "EmulatedJob", "Fault", "RateLimit", "RequestRecord"]

API_PREFIX = "/client/v4"
DEFAULT_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
DEFAULT_TOKEN = "emulator-token"

_SEG = r"([^/]+)"
_JOBS_TAIL = r"/instances/" + _SEG + r"/jobs(?:/" + _SEG + r"(/logs)?)?"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("jobs", re.compile(r"/accounts/" + _SEG + r"/ai-search/namespaces/" + _SEG + _JOBS_TAIL)),
    ("legacy_jobs", re.compile(r"/accounts/" + _SEG + r"/ai-search" + _JOBS_TAIL)),
    ("account_verify", re.compile(r"/accounts/" + _SEG + r"/tokens/verify")),
    ("user_verify", re.compile(r"/user/tokens/verify")),
    ("user", re.compile(r"/user")),
]


def _route_of(raw_path: str) -> str | None:
    if not raw_path.startswith(API_PREFIX + "/"):
        return None
    rest = raw_path[len(API_PREFIX) :]
    return next((name for name, pattern in _ROUTES if pattern.fullmatch(rest)), None)


AUTH_ERROR = {"code": 10000, "message": "Authentication error"}
INVALID_TOKEN = {"code": 1000, "message": "Invalid API Token"}
NO_ROUTE = {"code": 7003, "message": "No route for the URI."}
NOT_FOUND_INSTANCE = {"code": 7002, "message": "ai_search_not_found"}
NOT_FOUND_JOB = {"code": 7005, "message": "job_not_found"}
COOLDOWN = {"code": 7020, "message": "sync_in_cooldown"}
RATE_LIMITED = {"code": 971, "message": "Please wait and consider throttling your request speed"}
CANNOT_CANCEL = {"code": 7009, "message": "Job cannot be cancelled."}
UNAVAILABLE = {"code": 7017, "message": "Unable to connect to ai search"}


def _invalid(message: str, *path: str) -> dict[str, Any]:
    """A validation error entry (code 7001) with the ``path`` of the offending field."""
    return {"code": 7001, "message": message, "path": list(path)}


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
        body = {"success": False, "errors": [dict(UNAVAILABLE)], "messages": [], "result": None}
        return cls("status", status=503, body=body)

    @classmethod
    def http(cls, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Fault:
        """An HTTP answer; ``body`` defaults to a Cloudflare error envelope."""
        if body is None:
            body = {"success": False, "errors": [{"code": status, "message": "emulated failure"}], "result": None}
        return cls("status", status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: int | None = 1) -> Fault:
        """Cloudflare's global rate-limit 429 (code 971), optionally with ``Retry-After``."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = {
            "success": False,
            "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}],
            "messages": [],
            "result": None,
        }
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
class RateLimit:
    """
    Cloudflare's global rate limit: ``limit`` requests per ``window`` seconds, then a lockout.

    Every answer carries ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``x-ratelimit-reset``
    (an RFC 1123 date). The request that exceeds the limit, and every request during the
    ``lockout`` after it, gets 429 with code 971 and ``retry-after``. The window is fixed (it
    starts at the first request and restarts when it has passed); all credentials share it.

    :param limit: Requests allowed per window.
    :param window: Window length in seconds (Cloudflare: 300).
    :param lockout: Seconds every call is refused after the limit was exceeded (Cloudflare: 300).
    """

    limit: int = 1200
    window: float = 300.0
    lockout: float = 300.0
    window_start: float | None = None
    count: int = 0
    locked_until: float = 0.0
    #: Requests refused with 429 (971) so far.
    refused: int = 0

    def admit(self, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request: whether it is served, and the headers its answer carries."""
        window_over = self.window_start is None or now >= self.window_start + self.window
        if window_over and now >= self.locked_until:
            self.window_start, self.count = now, 0
        locked = now < self.locked_until
        if not locked:
            self.count += 1
            if self.count > self.limit:
                self.locked_until = now + self.lockout
                locked = True
        assert self.window_start is not None
        reset_at = max(self.window_start + self.window, self.locked_until)
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": "0" if locked else str(max(self.limit - self.count, 0)),
            "x-ratelimit-reset": formatdate(math.ceil(reset_at), usegmt=True),  # rounded up, like retry-after
        }
        if locked:
            self.refused += 1
            headers["retry-after"] = str(max(1, int(-(-(self.locked_until - now) // 1))))
        return not locked, headers


@dataclass
class _FaultRule:
    fault: Fault
    method: str | None
    path: re.Pattern[str] | None
    remaining: int


@dataclass
class RequestRecord:
    """
    One request as the emulator saw it. Header values are never stored.

    :param method: HTTP method.
    :param path: Raw request path (percent-encoding kept), without the query.
    :param query: Parsed query string.
    :param route: Route name (``jobs``, ``legacy_jobs``, ``account_verify``, ...) or ``None``.
    :param segments: The route's path parameters, percent-decoded.
    :param auth: ``"bearer"``, ``"global_key"``, ``"both"`` or ``"none"``.
    :param connection: Sequence number of the TCP connection it came on.
    :param user_agent: The ``User-Agent`` header (the only header value kept).
    :param body: Parsed JSON body, if any.
    :param status: Status answered (``None`` when the connection was dropped).
    :param fault: Kind of injected fault, if one applied.
    """

    method: str
    path: str
    query: dict[str, str]
    route: str | None
    segments: tuple[str, ...]
    auth: str
    connection: int
    user_agent: str = ""
    body: Any = None
    status: int | None = None
    fault: str | None = None
    at: float = 0.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class EmulatedJob:
    """Server-side state of one job."""

    id: str
    source: str
    description: str | None
    started_at: float
    duration: float
    planned_end_reason: str | None
    ended_at: float | None = None
    end_reason: str | None = None

    def settle(self, now: float) -> None:
        """End the job if its planned duration has passed."""
        if self.ended_at is None and now >= self.started_at + self.duration:
            self.ended_at = self.started_at + self.duration
            self.end_reason = self.planned_end_reason

    def end(self, now: float, reason: str | None) -> None:
        """End the job now (if it still runs)."""
        if self.ended_at is None:
            self.ended_at = now
            self.end_reason = reason


@dataclass
class _Instance:
    jobs: list[EmulatedJob] = field(default_factory=list)
    last_create: float | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see ../shared/reference/loopback-http-notes.md: ~44 ms stall otherwise
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.emulator._register_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._unregister_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header tells the emulator's own time (its clock may be a test's), as a server's does.
        return super().date_time_string(self.server.emulator.clock() if timestamp is None else timestamp)

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    do_POST = do_GET
    do_PATCH = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], emulator: AISearchEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class AISearchEmulator:
    """
    The emulated API, served on loopback in a background thread.

    :param host: Address to bind (loopback by default).
    :param port: Port (0 picks a free one).
    :param account_id: The one account that exists.
    :param token: A valid API token.
    :param token_owner: ``"account"`` or ``"user"``: which ``tokens/verify`` endpoint accepts the token.
    :param forbidden_tokens: Tokens that verify but lack the AI Search permission (403 on jobs).
    :param email: Email for the Global API Key scheme.
    :param global_key: The Global API Key matching ``email``.
    :param instances: Instance ids to create in the ``default`` namespace (or ``(namespace, id)`` pairs).
    :param job_duration: Seconds a created job runs before it ends.
    :param end_reason: End reason a job gets when it ends on its own.
    :param cooldown: Seconds after a job starts during which a create gets 429 ``sync_in_cooldown``.
    :param timestamp_format: ``"cloudflare"`` (``2026-07-16 19:29:59``), ``"iso"`` (``2026-07-16T19:29:59Z``)
        or ``"mixed"`` (either, at random).
    :param list_order: ``"newest"`` (by ``started_at``, newest first), ``"oldest"``, or ``"none"`` (a
        fixed order unrelated to time: by a hash of the job id, so pages stay consistent between requests).
    :param seed: Seed for job ids.
    :param clock: Time source (epoch seconds).
    :param verbose: Print an access line per request (never header values).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        token: str = DEFAULT_TOKEN,
        token_owner: str = "account",
        forbidden_tokens: Iterable[str] = (),
        email: str | None = None,
        global_key: str | None = None,
        instances: Iterable[str | tuple[str, str]] = ("docs",),
        job_duration: float = 3.0,
        end_reason: str | None = "completed",
        cooldown: float = 30.0,
        timestamp_format: str = "cloudflare",
        list_order: str = "newest",
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ) -> None:
        if token_owner not in ("account", "user"):
            raise ValueError("token_owner must be 'account' or 'user'")
        if timestamp_format not in ("cloudflare", "iso", "mixed"):
            raise ValueError("timestamp_format must be 'cloudflare', 'iso' or 'mixed'")
        if list_order not in ("newest", "oldest", "none"):
            raise ValueError("list_order must be 'newest', 'oldest' or 'none'")
        self.host = host
        self.port = port
        self.account_id = account_id
        self.token = token
        self.token_owner = token_owner
        self.forbidden_tokens = set(forbidden_tokens)
        self.email = email
        self.global_key = global_key
        self.job_duration = job_duration
        self.end_reason = end_reason
        self.cooldown = cooldown
        self.timestamp_format = timestamp_format
        self.list_order = list_order
        self.clock = clock
        self.verbose = verbose
        #: When true, job objects carry an unknown extra field and sometimes lack optional ones.
        self.vary_fields = False
        #: Random transient faults (see :class:`Chaos`); ``None`` for none.
        self.chaos: Chaos | None = None
        #: How many faults were injected, by kind (scripted and chaos).
        self.fault_counts: Counter[str] = Counter()
        #: When true, a cooldown 429 carries ``Retry-After`` with the seconds left (Cloudflare's is undocumented).
        self.cooldown_retry_after = False
        #: What token verify reports: ``"active"``, ``"disabled"`` or ``"expired"``.
        self.token_status = "active"
        #: When false, list answers omit ``result_info.total_count`` (clients must stop on a short page).
        self.report_total_count = True
        #: Called with the page number before a list page is served (e.g. to start a job while a client
        #: pages through the list); runs under the emulator's lock, so it may call :meth:`start_job`.
        self.before_list_page: Callable[[int], None] | None = None
        #: Cloudflare's global rate limit (see :class:`RateLimit`); ``None``: unlimited, no headers.
        self.rate_limit: RateLimit | None = None
        self.requests: list[RequestRecord] = []
        self.connections = 0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._namespaces: dict[str, dict[str, _Instance]] = {"default": {}}
        self._faults: list[_FaultRule] = []
        self._planned: list[tuple[float | None, str | None]] = []
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for item in instances:
            namespace, instance_id = item if isinstance(item, tuple) else ("default", item)
            self.add_instance(instance_id, namespace=namespace)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> AISearchEmulator:
        """Start serving in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="aisearch-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AISearchEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to put in the connection's ``host``."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def connection_json(self, *, namespace: str | None = "default", global_key: bool = False) -> str:
        """A JSON connection (for ``AIRFLOW_CONN_<ID>``) that points at this emulator."""
        conn: dict[str, Any] = {
            "conn_type": "cloudflare_aisearch",
            "host": self.url,
            "extra": {"account_id": self.account_id, "namespace": namespace},
        }
        if global_key:
            conn["login"] = self.email
            conn["password"] = self.global_key
        else:
            conn["password"] = self.token
        return json.dumps(conn)

    # -- state for tests -------------------------------------------------------------------

    def add_instance(self, instance_id: str, *, namespace: str = "default") -> None:
        """Create an instance (and its namespace)."""
        with self._lock:
            self._namespaces.setdefault(namespace, {}).setdefault(instance_id, _Instance())

    def add_job(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        source: str = "schedule",
        description: str | None = None,
        started_at: float | None = None,
        duration: float | None = None,
        end_reason: str | None = "completed",
        job_id: str | None = None,
    ) -> EmulatedJob:
        """Add a job directly (no cooldown, no supersede). ``duration=0`` gives an ended job."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            job = EmulatedJob(
                id=job_id or self._new_id(),
                source=source,
                description=description,
                started_at=self.clock() if started_at is None else started_at,
                duration=self.job_duration if duration is None else duration,
                planned_end_reason=end_reason,
            )
            job.settle(self.clock())
            inst.jobs.append(job)
            return job

    def seed_jobs(
        self, instance_id: str, count: int, *, namespace: str = "default", end_reason: str | None = "completed"
    ) -> list[EmulatedJob]:
        """Add ``count`` ended jobs, one minute apart, the newest ending an hour ago."""
        base = self.clock() - 3600 - 60 * count
        return [
            self.add_job(
                instance_id,
                namespace=namespace,
                started_at=base + 60 * i,
                duration=30,
                end_reason=end_reason,
                source="schedule" if i % 2 else "user",
            )
            for i in range(count)
        ]

    def start_job(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        source: str = "schedule",
        description: str | None = None,
        duration: float | None = None,
        end_reason: str | None = "completed",
    ) -> EmulatedJob:
        """Start a job as Cloudflare would (ignoring the cooldown): a running job ends with ``new_job_has_started``."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            return self._start(inst, source, description, duration, end_reason)

    def plan_next_job(self, *, duration: float | None = None, end_reason: str | None = "completed") -> None:
        """Set duration and end reason for the next job created through the API (FIFO)."""
        with self._lock:
            self._planned.append((duration, end_reason))

    def finish_job(
        self, instance_id: str, job_id: str, end_reason: str | None = "completed", *, namespace: str = "default"
    ) -> None:
        """End a running job now."""
        with self._lock:
            job = self._job(namespace, instance_id, job_id)
            if job is None:
                raise KeyError(job_id)
            job.end(self.clock(), end_reason)

    def jobs(self, instance_id: str, *, namespace: str = "default") -> list[dict[str, Any]]:
        """The instance's jobs as the API would return them (newest first)."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(instance_id)
            return [self._job_json(j) for j in self._ordered(inst)]

    def inject(self, fault: Fault, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """
        Apply ``fault`` to the next ``times`` requests matching ``method`` and ``path``.

        :param path: Regular expression searched in the raw request path.
        """
        with self._lock:
            self._faults.append(_FaultRule(fault, method, re.compile(path) if path else None, times))

    def clear_faults(self) -> None:
        """Drop every scripted fault and the chaos setting."""
        with self._lock:
            self._faults.clear()
            self.chaos = None

    def clear_log(self) -> None:
        """Forget recorded requests and the connection count."""
        with self._lock:
            self.requests.clear()
            self.connections = 0
            self.fault_counts.clear()

    def requests_to(self, route: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Recorded requests, filtered by route name and method."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (route is None or r.route == route) and (method is None or r.method == method)
            ]

    # -- internals -------------------------------------------------------------------------

    def _register_connection(self, sock: socket.socket) -> int:
        with self._lock:
            self.connections += 1
            self._open.add(sock)
            return self.connections

    def _unregister_connection(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def _instance(self, namespace: str, instance_id: str) -> _Instance | None:
        return self._namespaces.get(namespace, {}).get(instance_id)

    def _job(self, namespace: str, instance_id: str, job_id: str) -> EmulatedJob | None:
        inst = self._instance(namespace, instance_id)
        if inst is None:
            return None
        return next((j for j in inst.jobs if j.id == job_id), None)

    def _ordered(self, inst: _Instance) -> list[EmulatedJob]:
        now = self.clock()
        for job in inst.jobs:
            job.settle(now)
        if self.list_order == "none":
            return sorted(inst.jobs, key=lambda j: hashlib.sha256(j.id.encode()).digest())
        return sorted(inst.jobs, key=lambda j: j.started_at, reverse=self.list_order == "newest")

    def _ts(self, value: float | None) -> str | None:
        if value is None:
            return None
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
        iso = self.timestamp_format == "iso" or (self.timestamp_format == "mixed" and self._rng.random() < 0.5)
        if iso:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def _job_json(self, job: EmulatedJob) -> dict[str, Any]:
        now = self.clock()
        job.settle(now)
        last_seen = job.ended_at if job.ended_at is not None else now
        data: dict[str, Any] = {
            "id": job.id,
            "source": job.source,
            "description": job.description,
            "end_reason": job.end_reason,
            "started_at": self._ts(job.started_at),
            "ended_at": self._ts(job.ended_at),
            "last_seen_at": self._ts(last_seen),
        }
        if self.vary_fields:
            # Fields the API may add, and optional ones it may leave out.
            data["x_new_field"] = {"added": "later"}
            if data["description"] is None:
                del data["description"]
            if self._rng.random() < 0.3:
                del data["last_seen_at"]
        return data

    def _logs_json(self, job: EmulatedJob) -> list[dict[str, Any]]:
        job.settle(self.clock())
        entries = [(job.started_at, "Starting indexing data source...")]
        if job.ended_at is None:
            entries.append((job.started_at, "Indexing in progress"))
        else:
            entries.append((job.started_at, "Indexing in progress"))
            if job.end_reason in (None, "", "completed"):
                entries.append((job.ended_at, "Indexing completed"))
            else:
                entries.append((job.ended_at, f"Job ended: {job.end_reason}"))
        # Newest first, as the live API appears to return them.
        return [
            {"id": i + 1, "created_at": int(at), "message": msg, "message_type": 1 if "ended" in msg else 0}
            for i, (at, msg) in reversed(list(enumerate(entries)))
        ]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if (
                    rule.remaining > 0
                    and (rule.method in (None, method))
                    and (rule.path is None or rule.path.search(path))
                ):
                    rule.remaining -= 1
                    self.fault_counts[rule.fault.kind] += 1
                    return rule.fault
            if self.chaos is not None:
                picked = self.chaos.pick(method, _route_of(path))
                if picked is not None:
                    self.fault_counts[picked[0]] += 1
                    return picked[1]
            return None

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        raw_path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        record = RequestRecord(
            method=h.command,
            path=raw_path,
            query=query,
            route=None,
            segments=(),
            auth=self._auth_kind(h),
            user_agent=h.headers.get("User-Agent", ""),
            connection=h.connection_id,
            at=self.clock(),
        )
        with self._lock:
            self.requests.append(record)
            admitted, record.headers = (True, {}) if self.rate_limit is None else self.rate_limit.admit(record.at)
        if not admitted:
            record.fault = "rate_limit"
            self._send(h, record, 429, json.dumps(self._error(429, RATE_LIMITED)[1]), {})
            return
        fault = self._take_fault(h.command, raw_path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "reset_before":
                self._drop(h)
                return
            if fault.kind == "before" and fault.action is not None:
                fault.action()
        raw_body = h.rfile.read(length) if length else b""
        if raw_body:
            try:
                record.body = json.loads(raw_body)
            except ValueError:
                record.body = raw_body.decode("utf-8", "replace")
        if fault is not None and fault.kind == "status":
            payload = fault.body if isinstance(fault.body, (bytes, str)) else json.dumps(fault.body)
            self._send(h, record, fault.status, payload, fault.headers)
            return
        status, body, headers = self._dispatch(h, record, raw_path, query)
        if fault is not None and fault.kind == "status_after":
            # A proxy in front of the API fails after the API acted (the job exists).
            payload = fault.body if isinstance(fault.body, (bytes, str)) else json.dumps(fault.body)
            self._send(h, record, fault.status, payload, fault.headers)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)  # the work is done; only the answer is late
        if fault is not None and fault.kind == "reset_after":
            self._drop(h)
            return
        data = json.dumps(body)
        if fault is not None and fault.kind == "truncate":
            data = data[: len(data) // 2]
        self._send(h, record, status, data, headers)

    def _auth_kind(self, h: _Handler) -> str:
        bearer = h.headers.get("Authorization") is not None
        key = h.headers.get("X-Auth-Key") is not None or h.headers.get("X-Auth-Email") is not None
        return "both" if bearer and key else "bearer" if bearer else "global_key" if key else "none"

    def _drop(self, h: _Handler) -> None:
        h.close_connection = True
        try:
            # RST rather than FIN: the client sees a reset, as with a dropped proxy connection.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _send(
        self, h: _Handler, record: RequestRecord, status: int, body: str | bytes, headers: dict[str, str]
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        headers = {**record.headers, **headers}
        record.status = status
        h.send_response(status)
        if not any(k.lower() == "content-type" for k in headers):
            h.send_header("Content-Type", "application/json")
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        try:
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the client gave up (e.g. its read timeout passed)
            return
        if self.verbose:
            h.log_message('"%s %s" %s (%s)', record.method, record.path, status, record.auth)

    # -- routing ---------------------------------------------------------------------------

    @staticmethod
    def _error(
        status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        return status, {"success": False, "errors": list(errors), "messages": [], "result": None}, headers or {}

    @staticmethod
    def _ok(result: Any, **extra: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = {"success": True, "errors": [], "messages": [], "result": result}
        body.update(extra)
        return 200, body, {}

    def _dispatch(
        self, h: _Handler, record: RequestRecord, raw_path: str, query: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not raw_path.startswith(API_PREFIX + "/"):
            return self._error(404, NO_ROUTE)
        rest = raw_path[len(API_PREFIX) :]
        for name, pattern in _ROUTES:
            match = pattern.fullmatch(rest)
            if match:
                record.route = name
                record.segments = tuple(unquote(g) for g in match.groups() if g is not None and g != "/logs")
                break
        else:
            return self._error(404, NO_ROUTE)

        scheme = record.auth
        if scheme == "both":
            return self._error(
                400,
                {
                    "code": 6003,
                    "message": "Invalid request headers",
                    "error_chain": [
                        {"code": 6111, "message": "Send either an API token or an email and Global API Key, not both"}
                    ],
                },
            )
        if scheme == "none":
            return self._error(401, AUTH_ERROR)
        token = None
        if scheme == "bearer":
            value = h.headers.get("Authorization", "")
            if not value.startswith("Bearer ") or not value[7:]:
                return self._error(
                    400,
                    {
                        "code": 6003,
                        "message": "Invalid request headers",
                        "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
                    },
                )
            token = value[7:]
            if token != self.token and token not in self.forbidden_tokens:
                return self._error(401, INVALID_TOKEN if record.route.endswith("verify") else AUTH_ERROR)
        else:
            if not (
                self.email
                and h.headers.get("X-Auth-Email") == self.email
                and h.headers.get("X-Auth-Key") == self.global_key
            ):
                return self._error(403, {"code": 9103, "message": "Unknown X-Auth-Key or X-Auth-Email"})

        if record.route == "user":
            if scheme != "global_key" and self.token_owner != "user":
                return self._error(403, AUTH_ERROR)
            return self._ok({"id": "emulated-user", "email": self.email or "user@example.com"})
        if record.route in ("account_verify", "user_verify"):
            if scheme != "bearer":
                return self._error(400, {"code": 6003, "message": "Invalid request headers"})
            owner = "account" if record.route == "account_verify" else "user"
            if owner != self.token_owner:
                return self._error(401, INVALID_TOKEN)
            if owner == "account" and record.segments[0] != self.account_id:
                return self._error(404, NO_ROUTE)
            return self._ok(
                {"id": "emulated-token-id", "status": self.token_status},
                messages=[{"code": 10000, "message": "This API Token is valid and active", "type": None}],
            )

        # jobs routes
        if token is not None and token in self.forbidden_tokens:
            return self._error(403, AUTH_ERROR)
        if record.route == "jobs":
            account, namespace, instance_id, *tail = record.segments
        else:
            account, instance_id, *tail = record.segments
            namespace = "default"
        if account != self.account_id:
            return self._error(403, AUTH_ERROR)
        job_id = tail[0] if tail else None
        logs = raw_path.endswith("/logs") and job_id is not None
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                return self._error(404, NOT_FOUND_INSTANCE)
            if job_id is None:
                if h.command == "GET":
                    return self._list(inst, query, max_per_page=50)
                if h.command == "POST":
                    return self._create(inst, record.body)
                return self._error(405, {"code": 10405, "message": "Method not allowed"})
            job = next((j for j in inst.jobs if j.id == job_id), None)
            if job is None:
                return self._error(404, NOT_FOUND_JOB)
            if logs:
                if h.command != "GET":
                    return self._error(405, {"code": 10405, "message": "Method not allowed"})
                return self._paginate(self._logs_json(job), query, max_per_page=500)
            if h.command == "GET":
                return self._ok(self._job_json(job))
            if h.command == "PATCH":
                body = record.body
                if not isinstance(body, dict) or body.get("action") != "cancel":
                    return self._error(400, _invalid("action must be 'cancel'", "action"))
                job.settle(self.clock())
                if job.ended_at is not None:
                    return self._error(400, CANNOT_CANCEL)
                job.end(self.clock(), "cancelled")
                return self._ok(self._job_json(job))
            return self._error(405, {"code": 10405, "message": "Method not allowed"})

    def _paginate(
        self,
        items: list[Any],
        query: dict[str, str],
        *,
        max_per_page: int,
        render: Callable[[Any], Any] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "20"))
        except ValueError:
            return self._error(400, _invalid("page and per_page must be numbers", "page"))
        if page < 1:
            return self._error(400, _invalid("page must be >= 1", "page"))
        if not 0 <= per_page <= max_per_page:
            return self._error(400, _invalid(f"per_page must be 0-{max_per_page}", "per_page"))
        per_page = per_page or 20
        chunk = items[(page - 1) * per_page : page * per_page]
        chunk = [render(item) for item in chunk] if render is not None else chunk
        info: dict[str, int] = {"count": len(chunk), "page": page, "per_page": per_page}
        if self.report_total_count:
            info["total_count"] = len(items)
        return self._ok(chunk, result_info=info)

    def _list(
        self, inst: _Instance, query: dict[str, str], *, max_per_page: int
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.before_list_page is not None:
            try:
                page = int(query.get("page", "1"))
            except ValueError:
                page = 0
            self.before_list_page(page)
        # Only the page is rendered, so listing stays cheap for large instances.
        return self._paginate(self._ordered(inst), query, max_per_page=max_per_page, render=self._job_json)

    def _create(self, inst: _Instance, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return self._error(400, _invalid("body must be a JSON object"))
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            return self._error(400, _invalid("description must be a string of at most 255 characters", "description"))
        now = self.clock()
        latest = max((j.started_at for j in inst.jobs), default=None)
        if latest is not None and now - latest < self.cooldown:
            left = self.cooldown - (now - latest)
            headers = {"Retry-After": str(max(1, int(left + 0.999)))} if self.cooldown_retry_after else {}
            return 429, {"success": False, "errors": [COOLDOWN], "result": {}}, headers
        duration, end_reason = self._planned.pop(0) if self._planned else (None, self.end_reason)
        job = self._start(inst, "user", description, duration, end_reason)
        return self._ok(self._job_json(job))

    def _start(
        self, inst: _Instance, source: str, description: str | None, duration: float | None, end_reason: str | None
    ) -> EmulatedJob:
        now = self.clock()
        for running in inst.jobs:
            running.settle(now)
            running.end(now, "new_job_has_started")
        job = EmulatedJob(
            id=self._new_id(),
            source=source,
            description=description,
            started_at=now,
            duration=self.job_duration if duration is None else duration,
            planned_end_reason=end_reason,
        )
        inst.jobs.append(job)
        inst.last_create = now
        return job


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground (``python -m airflow_provider_aisearch.emulator``)."""
    parser = argparse.ArgumentParser(
        description="Local Cloudflare AI Search jobs API emulator. Prints its base URL and an Airflow "
        "connection for it, then serves until interrupted."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port (printed)")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the valid API token")
    parser.add_argument("--email", default=None, help="account email for the Global API Key scheme")
    parser.add_argument("--global-key", default=None, help="the Global API Key matching --email")
    parser.add_argument(
        "--namespace",
        action="append",
        help="namespace holding every --instance (repeatable; default: default); the first one goes in the "
        "printed connection",
    )
    parser.add_argument(
        "--instance", action="append", help="instance id, or NAMESPACE/ID for one namespace (repeatable; default: docs)"
    )
    parser.add_argument("--seed-jobs", type=int, default=3, help="ended jobs to create per instance")
    parser.add_argument("--job-duration", type=float, default=10.0)
    parser.add_argument("--cooldown", type=float, default=30.0)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="serve at most N requests per --rate-window seconds, then refuse all for --rate-window (429, code 971)",
    )
    parser.add_argument("--rate-window", type=float, default=300.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if (args.email is None) != (args.global_key is None):
        parser.error("--email and --global-key go together")
    namespaces = args.namespace or ["default"]
    instances: list[tuple[str, str]] = []
    for item in args.instance or ["docs"]:
        if "/" in item:
            namespace, instance_id = item.split("/", 1)
            instances.append((namespace, instance_id))
        else:
            instances.extend((namespace, item) for namespace in namespaces)
    emu = AISearchEmulator(
        host=args.host,
        port=args.port,
        account_id=args.account_id,
        token=args.token,
        email=args.email,
        global_key=args.global_key,
        instances=instances,
        job_duration=args.job_duration,
        cooldown=args.cooldown,
        verbose=args.verbose,
    )
    if args.rate_limit is not None:
        emu.rate_limit = RateLimit(limit=args.rate_limit, window=args.rate_window, lockout=args.rate_window)
    for namespace, instance_id in instances:
        emu.seed_jobs(instance_id, args.seed_jobs, namespace=namespace)
    emu.start()
    print(f"AI Search emulator on {emu.url}", flush=True)
    conn = emu.connection_json(namespace=namespaces[0], global_key=args.email is not None)
    print(f"export AIRFLOW_CONN_AISEARCH_DEFAULT='{conn}'", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main()
