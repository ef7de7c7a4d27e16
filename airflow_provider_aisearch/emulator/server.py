"""The emulator itself: a loopback HTTP server, the request log, and how faults apply to a request.

:class:`AISearchEmulator` serves in a background thread (one thread per connection). Each request
is recorded (:class:`RequestRecord`, never a header value), counted by the rate limit, given a
scripted or random fault if one applies, routed, authenticated (:mod:`.auth`) and answered by
the jobs endpoints (:mod:`.endpoints`), the instance endpoints (:mod:`.instance_endpoints`,
:mod:`.items`), the Items API (:mod:`.item_endpoints`, :mod:`.uploads`) or the search
(:mod:`.search_endpoints`) on the emulated state (:mod:`.state`, :mod:`.documents`).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_aisearch.emulator.auth import Credentials, auth_kind
from airflow_provider_aisearch.emulator.control import CONTROL_PREFIX, ControlEndpoints
from airflow_provider_aisearch.emulator.documents import DocumentStore
from airflow_provider_aisearch.emulator.endpoints import JobEndpoints
from airflow_provider_aisearch.emulator.envelopes import NO_ROUTE, RATE_LIMITED, Reply, error
from airflow_provider_aisearch.emulator.faults import FaultInjection
from airflow_provider_aisearch.emulator.instance_endpoints import INSTANCE_ROUTES, InstanceEndpoints
from airflow_provider_aisearch.emulator.item_endpoints import ITEM_ROUTES, ItemEndpoints
from airflow_provider_aisearch.emulator.multipart import FormPart, MultipartError, parse_form
from airflow_provider_aisearch.emulator.ratelimit import RateLimit
from airflow_provider_aisearch.emulator.routes import API_PREFIX, match_route
from airflow_provider_aisearch.emulator.search_endpoints import SearchEndpoints
from airflow_provider_aisearch.emulator.state import LOG_TIME_UNITS, TIMESTAMP_FORMATS

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_TOKEN", "AISearchEmulator", "RequestRecord"]

DEFAULT_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
DEFAULT_TOKEN = "emulator-token"


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
    :param peer_port: The client's TCP source port (tells apart client processes on one host).
    :param user_agent: The ``User-Agent`` header (the only header value kept).
    :param body: Parsed JSON body, if any.
    :param content_type: The request's ``Content-Type`` (a header value kept: it is no secret).
    :param accept: The request's ``Accept`` header (kept: no secret).
    :param form: A ``multipart/form-data`` body's parts (:class:`~.multipart.FormPart`), in order.
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
    peer_port: int = 0
    user_agent: str = ""
    body: Any = None
    content_type: str = ""
    accept: str = ""
    form: list[FormPart] | None = None
    status: int | None = None
    fault: str | None = None
    at: float = 0.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)


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


class AISearchEmulator(
    Credentials, FaultInjection, JobEndpoints, ItemEndpoints, InstanceEndpoints, SearchEndpoints, ControlEndpoints
):
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
    :param timestamp_format: ``"cloudflare"`` (``2026-07-16 19:29:59``), ``"iso"`` (``2026-07-16T19:29:59Z``),
        ``"mixed"`` (either, at random), ``"rfc3339"`` (``2026-07-16T21:29:59.123456+02:00``), or a job's
        timestamps as Unix seconds, ``"epoch"`` (a number) or ``"epoch_string"`` (see :meth:`JobState._ts`).
    :param log_time_unit: ``"seconds"`` or ``"milliseconds"``: the unit of a log entry's ``created_at``.
    :param list_order: ``"newest"`` (by ``started_at``, newest first), ``"oldest"``, or ``"none"`` (a
        fixed order unrelated to time: by a hash of the job id, so pages stay consistent between requests).
    :param seed: Seed for job ids.
    :param clock: Time source (epoch seconds).
    :param verbose: Print an access line per request (never header values).
    :param control: Serve the control channel under ``/_emulator/`` (see :mod:`.control`).
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
        log_time_unit: str = "seconds",
        list_order: str = "newest",
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
        control: bool = False,
    ) -> None:
        if token_owner not in ("account", "user"):
            raise ValueError("token_owner must be 'account' or 'user'")
        if timestamp_format not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamp_format must be one of {', '.join(TIMESTAMP_FORMATS)}")
        if log_time_unit not in LOG_TIME_UNITS:
            raise ValueError(f"log_time_unit must be one of {', '.join(LOG_TIME_UNITS)}")
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
        self.log_time_unit = log_time_unit
        self.list_order = list_order
        self.clock = clock
        self.verbose = verbose
        self.control = control
        #: When true, job objects carry an unknown extra field and sometimes lack optional ones.
        self.vary_fields = False
        #: Random transient faults (see :class:`Chaos`); ``None`` for none.
        self.chaos = None
        #: How many faults were injected, by kind (scripted and chaos).
        self.fault_counts = Counter()
        #: When true, a cooldown 429 carries ``Retry-After`` with the seconds left (Cloudflare's is undocumented).
        self.cooldown_retry_after = False
        #: What token verify reports: ``"active"``, ``"disabled"`` or ``"expired"``.
        self.token_status = "active"
        #: When true, the API token is revoked: every request with it gets 401 (the control channel still takes it).
        self.token_revoked = False
        #: When false, list answers omit ``result_info.total_count`` (clients must stop on a short page).
        self.report_total_count = True
        #: Called with the page number before a list page is served (e.g. to start a job while a client
        #: pages through the list); runs under the emulator's lock, so it may call :meth:`start_job`.
        self.before_list_page = None
        #: Cloudflare's global rate limit (see :class:`RateLimit`); ``None``: unlimited, no headers.
        self.rate_limit: RateLimit | None = None
        self.requests: list[RequestRecord] = []
        self.connections = 0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._namespaces = {"default": {}}
        self._documents = DocumentStore()  # the instances' documents (see .documents)
        self._faults = []
        self._planned = []
        self._uploads, self._hidden, self._upload_counts, self._forced = {}, {}, {}, {}
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

    # -- the request log -------------------------------------------------------------------

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

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        raw_path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        if self.control and raw_path.startswith(CONTROL_PREFIX):
            self._serve_control(h, raw_path, query, length)
            return
        record = RequestRecord(
            method=h.command,
            path=raw_path,
            query=query,
            route=None,
            segments=(),
            auth=auth_kind(h.headers),
            user_agent=h.headers.get("User-Agent", ""),
            accept=h.headers.get("Accept", ""),
            connection=h.connection_id,
            peer_port=int(h.client_address[1]),
            at=self.clock(),
        )
        with self._lock:
            self.requests.append(record)
            admitted, record.headers = (True, {}) if self.rate_limit is None else self.rate_limit.admit(record.at)
        if not admitted:
            record.fault = "rate_limit"
            self._send(h, record, 429, json.dumps(error(429, RATE_LIMITED)[1]), {})
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
        record.content_type = h.headers.get("Content-Type", "")
        if raw_body and record.content_type.lower().startswith("multipart/form-data"):
            try:
                record.form = parse_form(record.content_type, raw_body)
            except MultipartError as exc:
                record.body = f"unreadable multipart body: {exc}"
        elif raw_body:
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
        data = body if isinstance(body, bytes) else json.dumps(body)
        if fault is not None and fault.kind == "truncate":
            data = data[: len(data) // 2]
        self._send(h, record, status, data, headers)

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

    def _dispatch(self, h: _Handler, record: RequestRecord, raw_path: str, query: dict[str, str]) -> Reply:
        matched = match_route(raw_path)
        if matched is None:
            return error(404, NO_ROUTE)
        record.route, record.segments = matched
        answer = self._authenticate(h.headers, record.auth, record.route, record.segments)
        if answer is not None:
            return answer
        if record.route in ITEM_ROUTES or (record.route == "items" and h.command != "GET"):
            return self._item_endpoint(h.command, record.route, record.segments, query, record.body, record.form)
        if record.route in INSTANCE_ROUTES:
            return self._instance_endpoint(h.command, record.route, record.segments, query)
        if record.route == "search":
            return self._search_endpoint(h.command, record.segments, record.body)
        return self._jobs_endpoint(h.command, record.route, record.segments, raw_path, query, record.body)
