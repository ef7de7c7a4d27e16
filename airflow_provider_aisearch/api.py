"""The Cloudflare AI Search jobs API without a transport: paths, validation, retries, error mapping.

Everything here is shared by the sync :class:`~airflow_provider_aisearch.hooks.AISearchHook` and
the async trigger, so each rule lives in exactly one place:

* :func:`jobs_path` and the ``validate_*`` helpers build every URL (input checked before any request);
* :class:`ConnectionInfo` reads an Airflow connection (base URL, account, namespace, auth headers);
* :class:`RetryPolicy` decides how long to wait between attempts (``Retry-After`` honoured, capped);
* :func:`evaluate` turns one HTTP answer, or one transport failure, into a payload or an exception,
  and says whether it may be retried;
* :func:`parse_job`, :func:`parse_job_page`, :func:`parse_log_page` read the envelopes.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from airflow_provider_aisearch import CONN_TYPE, __version__
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchCooldownError,
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchNotFoundError,
    AISearchRateLimitError,
    AISearchResponseError,
)
from airflow_provider_aisearch.jobs import Job, JobLog, JobPage, MalformedJobError
from airflow_provider_aisearch.ratelimit import RateBudget, budget_for, seconds_until
from airflow_provider_aisearch.ratelimit import header as _header

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

__all__ = [
    "DEFAULT_BASE_URL",
    "Answer",
    "Backoff",
    "Call",
    "JobsAPI",
    "Plan",
    "run_async",
    "run_sync",
    "with_retries",
    "DEFAULT_NAMESPACE",
    "UNSET",
    "ConnectionInfo",
    "RetryPolicy",
    "TransportFailure",
    "Verdict",
    "evaluate",
    "is_already_ended",
    "jobs_path",
    "parse_job",
    "parse_job_page",
    "parse_log_page",
    "validate_instance_id",
    "validate_namespace",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_NAMESPACE = "default"
JOBS_MAX_PER_PAGE = 50
LOGS_MAX_PER_PAGE = 500
DESCRIPTION_MAX_LENGTH = 255
SEGMENT_MAX_LENGTH = 256
COOLDOWN_CODE = 7020
#: "Unable to connect to ai search": HTTP 503 on any jobs endpoint, transient (nothing was done).
UNAVAILABLE_CODE = 7017
USER_AGENT = f"airflow-provider-aisearch/{__version__}"

#: Cloudflare's instance id pattern (OpenAPI 2026-08): no leading, trailing or doubled ``-``.
_INSTANCE_ID_RE = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
INSTANCE_ID_MAX_LENGTH = 64
#: Cloudflare's namespace name pattern (OpenAPI 2026-08): 1-28 characters, ``-`` only inside.
_NAMESPACE_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,26}[a-z0-9])?")


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "<the connection's namespace>"

    __str__ = __repr__


#: Sentinel for "use the connection's namespace" (``None`` means the legacy un-namespaced paths).
UNSET = _Unset.UNSET


# --------------------------------------------------------------------------------------------
# Validation and URL building (the only place paths are made)
# --------------------------------------------------------------------------------------------


def validate_instance_id(instance_id: object) -> str:
    """
    Check an AI Search instance id as Cloudflare does: ``^[a-z0-9_]+(?:-[a-z0-9_]+)*$``, 1-64 characters.

    :raises ValueError: naming ``instance_id``.
    """
    if (
        not isinstance(instance_id, str)
        or len(instance_id) > INSTANCE_ID_MAX_LENGTH
        or not _INSTANCE_ID_RE.fullmatch(instance_id)
    ):
        raise ValueError(
            "instance_id must be 1-64 characters of lowercase letters, digits, '_' and single '-' between them "
            f"(no leading, trailing or doubled '-'), got {_preview(instance_id)}"
        )
    return instance_id


def validate_namespace(namespace: object) -> str:
    """
    Check a namespace name as Cloudflare does: ``^[a-z0-9]([a-z0-9-]{0,26}[a-z0-9])?$``.

    :raises ValueError: naming ``namespace``.
    """
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(
            "namespace must be 1-28 characters of lowercase letters, digits and '-', starting and ending "
            f"with a letter or digit, got {_preview(namespace)}"
        )
    return namespace


def path_segment(name: str, value: object) -> str:
    """
    Percent-encode ``value`` as exactly one URL path segment.

    Empty, whitespace-only, over-long values and the dot segments ``.`` / ``..`` (which HTTP
    clients collapse) are rejected, so no value can change the path's shape.

    :param name: Parameter name, for the error message.
    :raises ValueError: naming the parameter.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty or whitespace, got {value!r}")
    if value in (".", ".."):
        raise ValueError(f"{name} must not be {value!r}")
    if len(value) > SEGMENT_MAX_LENGTH:
        raise ValueError(f"{name} is {len(value)} characters long; at most {SEGMENT_MAX_LENGTH} are allowed")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return quote(value, safe="")


def validate_per_page(per_page: object, maximum: int, name: str = "per_page") -> int:
    """:raises ValueError: unless ``per_page`` is an int in ``1..maximum``."""
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {per_page!r}")
    return per_page


def validate_page(page: object) -> int:
    """:raises ValueError: unless ``page`` is an int >= 1."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be an integer >= 1, got {page!r}")
    return page


def validate_description(description: object) -> str | None:
    """:raises ValueError: unless ``description`` is ``None`` or a string of at most 255 characters."""
    if description is None:
        return None
    if not isinstance(description, str):
        raise ValueError(f"description must be a string or None, got {type(description).__name__}")
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValueError(
            f"description is {len(description)} characters long; Cloudflare allows at most {DESCRIPTION_MAX_LENGTH}"
        )
    return description


def jobs_path(
    account_id: str,
    namespace: str | None,
    instance_id: str,
    job_id: str | None = None,
    *,
    logs: bool = False,
) -> str:
    """
    Build a jobs API path (relative to the base URL), validating every part.

    With a namespace: ``/accounts/{a}/ai-search/namespaces/{ns}/instances/{i}/jobs[/{job}[/logs]]``;
    with ``namespace=None`` the legacy ``/accounts/{a}/ai-search/instances/{i}/jobs[...]``.

    :raises ValueError: naming the first invalid parameter.
    """
    path = f"/accounts/{path_segment('account_id', account_id)}/ai-search"
    if namespace is not None:
        path += f"/namespaces/{validate_namespace(namespace)}"
    path += f"/instances/{validate_instance_id(instance_id)}/jobs"
    if job_id is not None:
        path += f"/{path_segment('job_id', job_id)}"
        if logs:
            path += "/logs"
    elif logs:
        raise ValueError("job_id is required for the logs path")
    return path


def _preview(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------------


def _extra_value(extra: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    for candidate in (key, f"extra__{CONN_TYPE}__{key}"):
        if candidate in extra:
            return True, extra[candidate]
    return False, None


@dataclass(frozen=True)
class ConnectionInfo:
    """
    What a request needs from an Airflow connection. Built without network access.

    ``repr`` never shows the secret.

    :param conn_id: The Airflow connection id (named in error messages).
    :param base_url: API base URL including its path, without a trailing slash.
    :param account_id: Cloudflare account id.
    :param namespace: AI Search namespace, or ``None`` for the legacy un-namespaced paths.
    :param email: Account email for the legacy Global API Key scheme, else ``None``.
    """

    conn_id: str
    base_url: str
    account_id: str | None
    namespace: str | None
    email: str | None
    secret: str = field(repr=False)

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any] | None = None) -> ConnectionInfo:
        """
        Read a ``cloudflare_aisearch`` connection.

        :param conn: The Airflow connection.
        :param extra: The connection's parsed extra, when already available (async lookups).
        """
        if extra is None:
            extra = conn.extra_dejson
        conn_id = conn.conn_id or "<unnamed>"
        host = (conn.host or "").strip()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host.rstrip("/")  # JSON form: the full base URL, verbatim
        else:
            # URI form splits the URL into host, port and schema (path).
            port = f":{conn.port}" if conn.port else ""
            schema = (conn.schema or "").strip("/")
            base_url = f"https://{host.rstrip('/')}{port}" + (f"/{schema}" if schema else "")
        found, account_id = _extra_value(extra, "account_id")
        account = str(account_id).strip() if found and account_id not in (None, "") else None
        found, namespace = _extra_value(extra, "namespace")
        if not found or namespace == "":
            ns: str | None = DEFAULT_NAMESPACE
        elif namespace is None:
            ns = None
        else:
            ns = str(namespace).strip()
        email = (conn.login or "").strip() or None
        secret = (conn.password or "").strip()
        return cls(conn_id=conn_id, base_url=base_url, account_id=account, namespace=ns, email=email, secret=secret)

    @property
    def auth_scheme(self) -> str:
        """``"global_key"`` when an email is set, else ``"token"``."""
        return "global_key" if self.email else "token"

    def auth_headers(self) -> dict[str, str]:
        """Headers of exactly one auth scheme: Bearer token, or X-Auth-Email + X-Auth-Key."""
        if self.email:
            return {"X-Auth-Email": self.email, "X-Auth-Key": self.secret}
        return {"Authorization": f"Bearer {self.secret}"}

    def require_account_id(self) -> str:
        """:raises AISearchError: the connection has no ``account_id`` extra."""
        if not self.account_id:
            raise AISearchError(
                f"Connection {self.conn_id!r} has no account_id: set the 'account_id' field "
                '(extra {"account_id": "..."}) to your Cloudflare account id'
            )
        return self.account_id

    def require_secret(self) -> str:
        """:raises AISearchError: the connection has no token / key."""
        if not self.secret:
            what = "Global API Key" if self.email else "API token"
            raise AISearchError(f"Connection {self.conn_id!r} has no {what}: set it in the password field")
        return self.secret


# --------------------------------------------------------------------------------------------
# Retry policy and response evaluation (shared by the sync hook and the async trigger)
# --------------------------------------------------------------------------------------------


class TransportFailure(str, Enum):
    """Why no HTTP answer arrived."""

    #: The request never left (connection refused, DNS failure, connect timeout): always safe to retry.
    NOT_SENT = "not_sent"
    #: The request may have reached the server (read timeout, reset, truncated answer).
    LOST = "lost"
    #: A local problem retrying cannot fix (bad URL, TLS setup).
    FATAL = "fatal"


@dataclass(frozen=True)
class RetryPolicy:
    """
    Which failures are retried and how long to wait between attempts.

    Retried: connection errors, timeouts, 5xx, 429 and malformed 2xx answers. Never retried:
    other 4xx. ``create`` (POST of a job) is retried only when the answer proves no job was
    started: 429, a ``sync_in_cooldown`` (7020) body, or a request that was never sent.

    :param max_retries: Retries after the first attempt.
    :param backoff: First backoff in seconds; doubled each retry, with jitter, up to ``max_backoff``.
    :param max_backoff: Longest computed backoff.
    :param max_retry_after: Cap on a server-given ``Retry-After`` (Cloudflare's lockout is 300 s).
    """

    max_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """
        Seconds to wait before retry ``retry_number`` (0-based).

        A server ``Retry-After`` wins (capped at ``max_retry_after``); otherwise exponential
        backoff with jitter in ``[0.5, 1.0]`` of the step.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        step = min(self.max_backoff, self.backoff * (2**retry_number))
        return step * (0.5 + 0.5 * (rng or random).random())


@dataclass(frozen=True)
class Verdict:
    """Result of :func:`evaluate`: a payload, or an error and whether to retry it."""

    payload: dict[str, Any] | None = None
    error: AISearchError | None = None
    retryable: bool = False
    retry_after: float | None = None


def parse_retry_after(value: str | None, headers: Mapping[str, str] | None = None) -> float | None:
    """
    Seconds from a ``Retry-After`` header (delta-seconds, or an HTTP date read against the answer's
    ``Date``), capped at Cloudflare's 300 s lockout; ``None`` when absent or unreadable.

    :param value: The header value.
    :param headers: The answer's headers (for ``Date``).
    """
    return seconds_until(value, headers or {}, time.time())


def _errors_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping):
        return []
    raw = body.get("errors")
    if not isinstance(raw, list):
        return []
    out: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, Mapping):
            entry: dict[str, Any] = {"code": item.get("code"), "message": str(item.get("message", ""))[:500]}
            where = item.get("path")
            if isinstance(where, list) and where:
                # A validation error's location, e.g. ["body", "description"] (Cloudflare's 400s carry it).
                entry["path"] = [p if isinstance(p, int) and not isinstance(p, bool) else str(p)[:100] for p in where][
                    :20
                ]
            chain = item.get("error_chain")
            if isinstance(chain, list):
                entry["error_chain"] = _errors_of({"errors": chain})
            out.append(entry)
        elif isinstance(item, str):
            out.append({"code": None, "message": item[:500]})
    return out


def _describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for e in errors:
        text = f"[{e.get('code')}] {e.get('message')}" if e.get("code") is not None else str(e.get("message"))
        where = e.get("path")
        if where:
            text += " (at " + ".".join(str(p) for p in where) + ")"
        chain = e.get("error_chain")
        if chain:
            text += " (" + _describe_errors(chain) + ")"
        parts.append(text)
    return "; ".join(parts)


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


_NOT_JSON = object()


def evaluate(
    *,
    conn_id: str,
    method: str,
    path: str,
    status: int | None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    failure: TransportFailure | None = None,
    failure_detail: str = "",
    create: bool = False,
    description: str | None = None,
) -> Verdict:
    """
    Classify one attempt: the parsed envelope on success, or the error and whether to retry it.

    :param conn_id: Connection id, named in messages.
    :param method: HTTP method.
    :param path: API path (relative to the base URL; no secrets).
    :param status: HTTP status, or ``None`` when no answer arrived (then ``failure`` is set).
    :param headers: Response headers.
    :param body: Raw response body.
    :param failure: Why no answer arrived.
    :param failure_detail: Short text describing the transport failure (exception type).
    :param create: The request is a job create (POST), which must never run twice.
    :param description: The description sent with a create, carried by the ambiguity error.
    """
    where = f"{method} {path} (connection {conn_id!r})"
    headers = headers or {}
    if status is None:
        failure = failure or TransportFailure.LOST
        if failure is TransportFailure.FATAL:
            return Verdict(
                error=AISearchError(f"{where} could not be sent: {failure_detail}", method=method, path=path)
            )
        text = f"{where} got no answer: {failure_detail or failure.value}"
        if create and failure is TransportFailure.LOST:
            return Verdict(error=_ambiguous(text, description, None, [], method, path))
        return Verdict(error=AISearchError(text, method=method, path=path), retryable=True)

    parsed = _decode_json(body)
    errors = _errors_of(parsed)
    codes = {e.get("code") for e in errors}

    if 300 <= status < 400:
        return Verdict(
            error=AISearchError(
                f"{where} answered with a redirect (HTTP {status}); check the connection's base URL",
                status_code=status,
                method=method,
                path=path,
            )
        )
    if 200 <= status < 300:
        problem = None
        if parsed is _NOT_JSON:
            ctype = _header(headers, "content-type") or "unknown type"
            problem = f"answered HTTP {status} with a body that is not JSON ({ctype}, {len(body)} bytes)"
        elif not isinstance(parsed, dict):
            problem = f"answered HTTP {status} with JSON that is not an object"
        elif parsed.get("success") is False:
            detail = _describe_errors(errors) or "no error details"
            problem = f"answered HTTP {status} with success=false: {detail}"
        elif "result" not in parsed:
            problem = f"answered HTTP {status} without a 'result'"
        if problem is None:
            assert isinstance(parsed, dict)
            return Verdict(payload=parsed)
        if create:
            return Verdict(error=_ambiguous(f"{where} {problem}", description, status, errors, method, path))
        return Verdict(
            error=AISearchResponseError(
                f"{where} {problem}", status_code=status, errors=errors, method=method, path=path
            ),
            retryable=True,
        )

    detail = _describe_errors(errors)
    if not detail:
        if parsed is _NOT_JSON:
            ctype = _header(headers, "content-type") or "unknown type"
            detail = f"non-JSON body ({ctype}, {len(body)} bytes)"
        else:
            detail = "no error details"
    text = f"{where} failed with HTTP {status}: {detail}"
    kwargs: dict[str, Any] = {"status_code": status, "errors": errors, "method": method, "path": path}
    retry_after = parse_retry_after(_header(headers, "retry-after"), headers)
    verdict = _error_verdict(text, kwargs, status, conn_id, retry_after, codes, detail, create, description)
    if verdict.error is not None:
        verdict.error.retry_after = retry_after
    return verdict


def _error_verdict(
    text: str,
    kwargs: dict[str, Any],
    status: int,
    conn_id: str,
    retry_after: float | None,
    codes: set[Any],
    detail: str,
    create: bool,
    description: str | None,
) -> Verdict:
    method, path = kwargs["method"], kwargs["path"]
    errors = kwargs["errors"]
    cooldown = COOLDOWN_CODE in codes or "sync_in_cooldown" in detail

    if status in (401, 403):
        hint = (
            f". Check the API token (or email + Global API Key) and account_id of connection {conn_id!r}; "
            "the token needs AI Search:Edit and AI Search:Run"
        )
        return Verdict(error=AISearchAuthError(text + hint, **kwargs))
    if status == 404:
        return Verdict(error=AISearchNotFoundError(text, **kwargs))
    if cooldown and (status == 429 or status >= 500):
        # Cloudflare answered 5xx for the cooldown before 2026-07-18; either way nothing was created.
        return Verdict(error=AISearchCooldownError(text, **kwargs), retryable=True, retry_after=retry_after)
    if status == 429:
        return Verdict(error=AISearchRateLimitError(text, **kwargs), retryable=True, retry_after=retry_after)
    if status >= 500 and UNAVAILABLE_CODE in codes:
        # The API could not reach AI Search: nothing was done, so even a create may be sent again.
        return Verdict(error=AISearchError(text, **kwargs), retryable=True, retry_after=retry_after)
    if status >= 500 or status == 408:
        if create:
            return Verdict(error=_ambiguous(text, description, status, errors, method, path))
        return Verdict(error=AISearchError(text, **kwargs), retryable=True, retry_after=retry_after)
    return Verdict(error=AISearchError(text, **kwargs))


def is_already_ended(exc: BaseException) -> bool:
    """
    Whether a cancel failed only because the job had already ended.

    Cloudflare answers a PATCH cancel of an ended job with HTTP 400 ``Job cannot be cancelled.``;
    callers cancelling on kill or on timeout treat that as done, not as a failure.

    :param exc: The exception the cancel raised.
    """
    if not isinstance(exc, AISearchError) or exc.status_code != 400:
        return False
    return any("cannot be cancel" in str(e.get("message", "")).lower() for e in exc.errors)


def _ambiguous(
    text: str,
    description: str | None,
    status: int | None,
    errors: Sequence[Mapping[str, Any]],
    method: str,
    path: str,
) -> AISearchCreateAmbiguousError:
    return AISearchCreateAmbiguousError(
        text
        + "; a job may or may not have been started, so the request was not re-sent"
        + (f" (find it by description {description!r})" if description else ""),
        description=description,
        status_code=status,
        errors=errors,
        method=method,
        path=path,
    )


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


def parse_job_page(payload: Mapping[str, Any], *, page: int, per_page: int, method: str, path: str) -> JobPage:
    """Build a :class:`JobPage` from a list-jobs envelope."""
    items = result_of(payload, list, method=method, path=path)
    try:
        jobs = tuple(Job.from_api(item) for item in items)
    except MalformedJobError as exc:
        raise AISearchResponseError(
            f"{method} {path} returned a malformed job: {exc}", method=method, path=path
        ) from None
    info = payload.get("result_info")
    info = info if isinstance(info, Mapping) else {}
    return JobPage(
        jobs=jobs,
        page=_int_or_none(info.get("page")) or page,
        per_page=_int_or_none(info.get("per_page")) or per_page,
        count=len(jobs),
        total_count=_int_or_none(info.get("total_count")),
    )


def parse_job(payload: Mapping[str, Any], *, method: str, path: str) -> Job:
    """Build a :class:`Job` from a single-job envelope."""
    raw = result_of(payload, dict, method=method, path=path)
    try:
        return Job.from_api(raw)
    except MalformedJobError as exc:
        raise AISearchResponseError(
            f"{method} {path} returned a malformed job: {exc}", method=method, path=path
        ) from None


def is_last_page(items_on_page: int, page: int, per_page: int, total_count: int | None) -> bool:
    """Whether no request past ``page`` is needed (shared by job and log pagination)."""
    if items_on_page < per_page:
        return True
    return total_count is not None and page * per_page >= total_count


#: Distinct values, all in one strict direction, that prove a paged list's order. Two values prove
#: nothing (any two are in one order or the other), and a random order of 3 looks sorted one time in
#: three; 10 looks sorted by chance 1 time in 1.8 million (2/10!). A full page of jobs (50) or log
#: entries (500) is far more; only lists read with a small ``per_page`` need an extra page first.
ORDER_EVIDENCE = 10


class ListOrder:
    """
    The order of a paged list as read so far: one source of truth for every paged read (jobs by
    ``started_at``, log entries by ``id``), deciding whether pages not read yet can be skipped.

    An order is proven only when every value read so far goes one way (equal neighbours allowed)
    and at least :data:`ORDER_EVIDENCE` distinct values were seen; a single step the other way means
    "no order" for good. A missing value (``None``: a job created but not started yet) has no place
    in the order and is passed over, so that a pending job does not make every listing read every
    page. Feed each item once, in list order (drop an item listed again because the list shifted
    while paging before calling :meth:`see`).
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self.last: Any = None
        self.distinct = 0
        self.rising = False
        self.falling = False
        for value in values:
            self.see(value)

    def see(self, value: Any) -> None:
        """Take the next value of the list (``None`` is passed over)."""
        if value is None:
            return
        if self.last is None:
            self.distinct = 1
        elif value > self.last:
            self.rising = True
            self.distinct += 1
        elif value < self.last:
            self.falling = True
            self.distinct += 1
        self.last = value

    @property
    def proven(self) -> bool:
        """Whether one direction is proven (see :attr:`descending` and :attr:`ascending`)."""
        return self.rising != self.falling and self.distinct >= ORDER_EVIDENCE

    @property
    def descending(self) -> bool:
        """Proven newest (largest) first."""
        return self.proven and self.falling

    @property
    def ascending(self) -> bool:
        """Proven oldest (smallest) first."""
        return self.proven and self.rising


class UniqueJobs:
    """
    The jobs of a paged listing, each id once, in list order. A job that started while pages were
    read shifts the list, so a job already read comes back on the next page; it is dropped here.

    :param keep: Keep the jobs in :attr:`jobs` (else only their ids, for long streamed listings).
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.jobs: list[Job] = []
        self.ids: set[str] = set()

    def add(self, jobs: Iterable[Job]) -> list[Job]:
        """Add ``jobs`` and return those not seen before."""
        fresh = []
        for job in jobs:
            if job.id not in self.ids:
                self.ids.add(job.id)
                fresh.append(job)
        if self.keep:
            self.jobs.extend(fresh)
        return fresh


def parse_log_page(payload: Mapping[str, Any], *, method: str, path: str) -> tuple[list[JobLog], int | None]:
    """Read a job-logs envelope: the entries and ``result_info.total_count`` (if reported)."""
    items = result_of(payload, list, method=method, path=path)
    try:
        entries = [JobLog.from_api(item) for item in items]
    except MalformedJobError as exc:
        raise AISearchResponseError(
            f"{method} {path} returned a malformed log entry: {exc}", method=method, path=path
        ) from None
    info = payload.get("result_info")
    total = _int_or_none(info.get("total_count")) if isinstance(info, Mapping) else None
    return entries, total


# --------------------------------------------------------------------------------------------
# Plans: each API operation as a generator that yields what to do and receives the results.
# The sync hook and the async trigger drive the same plans (run_sync / run_async), so the retry
# loop, paths and parsing exist once.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """
    One HTTP request a plan wants sent; the driver answers with an :class:`Answer`.

    :param method: HTTP method.
    :param path: Path relative to the base URL (already validated and encoded).
    :param params: Query parameters.
    :param json_body: JSON body, if any.
    :param create: A job create, which must never be re-sent after an ambiguous failure.
    :param description: The create's description (carried by the ambiguity error).
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    create: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Answer:
    """What came back for a :class:`Call`: an HTTP answer, or a transport failure (``status=None``)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    failure: TransportFailure | None = None
    failure_detail: str = ""


@dataclass(frozen=True)
class Backoff:
    """
    A wait a plan asks for before retrying; the driver logs ``message`` at ``level``, sleeps
    ``seconds`` and sends ``None``.
    """

    seconds: float
    message: str
    level: int = logging.WARNING


T = TypeVar("T")
#: A plan: yields :class:`Call` (send back an :class:`Answer`) or :class:`Backoff` (send back ``None``).
Plan = Generator[Call | Backoff, Answer | None, T]


def run_sync(plan: Plan[T], send: Callable[[Call], Answer], sleep: Callable[[Backoff], None]) -> T:
    """Drive ``plan`` with blocking ``send`` / ``sleep`` callables and return its result."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Call):
                step = plan.send(send(step))
            else:
                sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        plan.close()  # abandoned mid-request (interrupted): the plan releases its rate-limit slot now


async def run_async(
    plan: Plan[T], send: Callable[[Call], Awaitable[Answer]], sleep: Callable[[Backoff], Awaitable[None]]
) -> T:
    """Drive ``plan`` with awaitable ``send`` / ``sleep`` callables and return its result."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Call):
                step = plan.send(await send(step))
            else:
                await sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        plan.close()  # abandoned mid-request (cancelled): the plan releases its rate-limit slot now


def with_retries(
    call: Call,
    *,
    conn_id: str,
    policy: RetryPolicy,
    max_retries: int | None = None,
    rng: random.Random | None = None,
    deadline: float | None = None,
    budget: RateBudget | None = None,
) -> Plan[dict[str, Any]]:
    """
    The retry loop: send ``call`` until :func:`evaluate` gives a payload or a final error.

    :param call: The request.
    :param conn_id: Connection id, for messages.
    :param policy: Which waits to take.
    :param max_retries: Overrides ``policy.max_retries``.
    :param rng: Jitter source.
    :param deadline: Wall-clock epoch seconds; no wait may end after it (the error is raised instead).
    :param budget: The credential's rate-limit budget: every answer's headers are recorded, and
        no request is sent while only its reserve is left (the plan waits for the reset instead).
    :raises AISearchError: the final error (its message says how many attempts were made; its
        ``transient`` attribute says whether the policy would have retried it).
    """
    retries = policy.max_retries if max_retries is None else max_retries
    attempt = 0
    announced = False  # a held request says so once, at WARNING; later holds of it log at DEBUG
    while True:
        if budget is not None:
            announced = yield from _await_budget(budget, call, deadline, announced)
        try:
            answer = yield call
        except BaseException:  # the plan was abandoned mid-request (cancelled, closed)
            if budget is not None:
                budget.release(None)
            raise
        assert answer is not None
        if budget is not None:
            budget.release(answer.headers if answer.status is not None else None)
        verdict = evaluate(
            conn_id=conn_id,
            method=call.method,
            path=call.path,
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            failure=answer.failure,
            failure_detail=answer.failure_detail,
            create=call.create,
            description=call.description,
        )
        if verdict.payload is not None:
            return verdict.payload
        error = verdict.error
        assert error is not None
        error.transient = verdict.retryable  # the policy's verdict, for waits: poll again, or end the wait
        if not verdict.retryable or attempt >= retries:
            if attempt:
                error.message += f" (after {attempt + 1} attempts)"
                error.args = (error.message,)
            raise error
        delay = policy.delay(attempt, verdict.retry_after, rng)
        if deadline is not None and time.time() + delay > deadline:
            error.message += f" (not retried: waiting {delay:.1f} s would pass the deadline)"
            error.args = (error.message,)
            raise error
        yield Backoff(delay, f"{error.message}; retrying in {delay:.1f} s (retry {attempt + 1} of {retries})")
        attempt += 1


def _await_budget(
    budget: RateBudget, call: Call, deadline: float | None, announced: bool = False
) -> Generator[Backoff, Any, bool]:
    """
    Wait (as :class:`Backoff` steps) until the rate-limit budget lets ``call`` go.

    Each wait is at most :data:`~airflow_provider_aisearch.ratelimit.MAX_WAIT` and never ends
    after ``deadline`` (the error is raised instead). The first hold is logged at WARNING with
    what it waits for and until when; later ones (``announced``) at DEBUG.

    :return: Whether the hold has been announced.
    """
    while True:
        wait = budget.acquire()
        if wait <= 0:
            return announced
        now = time.time()
        if deadline is not None and now + wait > deadline:
            raise AISearchRateLimitError(
                f"{call.method} {call.path} was not sent: {budget.describe()}, and waiting {wait:.0f} s "
                "for the rate-limit window to reset would pass the deadline",
                method=call.method,
                path=call.path,
            )
        until = datetime.fromtimestamp(now + wait, tz=timezone.utc).strftime("%H:%M:%S UTC")
        yield Backoff(
            wait,
            f"{call.method} {call.path} held: Cloudflare rate-limit budget nearly spent ({budget.describe()}); "
            f"waiting {wait:.0f} s, until {until}, for the window to reset",
            logging.DEBUG if announced else logging.WARNING,
        )
        announced = True


class JobsAPI:
    """
    The jobs endpoints as plans, for one connection. No I/O happens here.

    Every method validates its arguments when called (before any request) and returns a
    :data:`Plan` to drive with :func:`run_sync` or :func:`run_async`.

    :param info: The connection's settings.
    :param policy: Retry policy.
    :param namespace: Default namespace (``UNSET``: the connection's; ``None``: legacy paths).
    """

    def __init__(self, info: ConnectionInfo, policy: RetryPolicy, namespace: str | _Unset | None = UNSET) -> None:
        self.info = info
        self.policy = policy
        self.namespace = namespace
        self.rng = random.Random()
        #: Wall-clock epoch seconds past which no retry wait may end (``None``: no limit).
        self.deadline: float | None = None
        #: The credential's rate-limit budget, updated from every answer (shared per process).
        self.budget: RateBudget = budget_for(info.base_url, f"{info.email or ''}\0{info.secret}")
        #: Called with a message whenever a path is built for the deprecated un-namespaced form.
        self.on_legacy_path: Callable[[str], None] | None = None

    def with_deadline(self, deadline: float | None) -> JobsAPI:
        """A copy of these plans whose retry waits never run past ``deadline`` (same connection and budget)."""
        other = JobsAPI(self.info, self.policy, self.namespace)
        other.rng = self.rng
        other.deadline = deadline
        other.on_legacy_path = self.on_legacy_path
        return other

    def resolve_namespace(self, namespace: str | _Unset | None = UNSET) -> str | None:
        """The namespace a call uses: the argument, else the default, else the connection's."""
        if namespace is not UNSET:
            return namespace
        if self.namespace is not UNSET:
            return self.namespace
        return self.info.namespace

    def path(
        self,
        instance_id: str,
        job_id: str | _Unset = UNSET,
        *,
        logs: bool = False,
        namespace: str | _Unset | None = UNSET,
    ) -> str:
        """Validate the arguments and build the path (``job_id=None`` is rejected, not ignored)."""
        validate_instance_id(instance_id)
        if job_id is not UNSET:
            path_segment("job_id", job_id)
        resolved = self.resolve_namespace(namespace)
        if resolved is not None:
            validate_namespace(resolved)  # also the connection's namespace, before any request
        elif self.on_legacy_path is not None:
            self.on_legacy_path(
                f"Connection {self.info.conn_id!r}: namespace=None uses the un-namespaced "
                "/ai-search/instances/{id}/jobs paths, which Cloudflare has deprecated (its SDK since 5.8 and "
                "wrangler use /ai-search/namespaces/{name}/instances/...); set a namespace, usually 'default'"
            )
        job = None if job_id is UNSET else job_id
        return jobs_path(self.info.require_account_id(), resolved, instance_id, job, logs=logs)

    def request(self, call: Call, max_retries: int | None = None) -> Plan[dict[str, Any]]:
        """Send one call with retries; the plan returns the envelope."""
        return with_retries(
            call,
            conn_id=self.info.conn_id,
            policy=self.policy,
            max_retries=max_retries,
            rng=self.rng,
            deadline=self.deadline,
            budget=self.budget,
        )

    def list_jobs(
        self,
        instance_id: str,
        *,
        page: int = 1,
        per_page: int = JOBS_MAX_PER_PAGE,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[JobPage]:
        """One page of jobs."""
        validate_page(page)
        validate_per_page(per_page, JOBS_MAX_PER_PAGE)
        path = self.path(instance_id, namespace=namespace)
        return self._list_jobs(path, page, per_page)

    def _list_jobs(self, path: str, page: int, per_page: int) -> Plan[JobPage]:
        payload = yield from self.request(Call("GET", path, params={"page": page, "per_page": per_page}))
        return parse_job_page(payload, page=page, per_page=per_page, method="GET", path=path)

    def newest_jobs(
        self,
        instance_id: str,
        *,
        namespace: str | _Unset | None = UNSET,
        want: Collection[str] = (),
        max_pages: int = 1,
    ) -> Plan[list[Job]]:
        """
        The newest jobs, each id once: page 1 of a newest-first list, the last page(s) of an
        oldest-first one, and every page of a list with no proven order.

        The API documents no order, so it is read off the pages (see :class:`ListOrder`): page 1
        must prove it before later pages are skipped. An oldest-first list's last page is read
        next (one more request, plus one if jobs started meanwhile); when it does not continue
        page 1's order, every page is read. A list with no proven order is read to its end, so
        the result holds the newest job whatever the server's order.

        :param want: Job ids the caller looks for: on an ordered list further pages are read,
            newest first, until every one of them was seen, up to ``max_pages`` pages in all.
        :param max_pages: The most pages read when looking for ``want`` on an ordered list (at
            least 1; the last page of an oldest-first list is always read).
        """
        if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
            raise ValueError(f"max_pages must be an integer >= 1, got {max_pages!r}")
        path = self.path(instance_id, namespace=namespace)
        return self._newest_jobs(path, frozenset(want), max_pages)

    def _newest_jobs(self, path: str, want: frozenset[str] = frozenset(), max_pages: int = 1) -> Plan[list[Job]]:
        first = yield from self._list_jobs(path, 1, JOBS_MAX_PER_PAGE)
        per_page = first.per_page
        unique = UniqueJobs()
        head = unique.add(first.jobs)
        order = ListOrder(j.started_at for j in head)
        if is_last_page(first.count, 1, per_page, first.total_count):
            return unique.jobs
        number, page = 1, first
        if order.descending:
            while (
                not want <= unique.ids
                and number < max_pages
                and not is_last_page(page.count, number, per_page, page.total_count)
            ):
                number += 1
                page = yield from self._list_jobs(path, number, per_page)
                for job in unique.add(page.jobs):
                    order.see(job.started_at)
            if order.descending:  # still proven on every page read
                return unique.jobs
        elif order.ascending and first.total_count is not None:
            tail = yield from self._oldest_first_tail(path, first, head, want, max_pages)
            if tail is not None:
                return tail
        # No proven order (or oldest first with no total to find the end by): every page.
        while not is_last_page(page.count, number, per_page, page.total_count):
            number += 1
            page = yield from self._list_jobs(path, number, per_page)
            unique.add(page.jobs)
        return unique.jobs

    def _oldest_first_tail(
        self, path: str, first: JobPage, head: list[Job], want: frozenset[str], max_pages: int
    ) -> Plan[list[Job] | None]:
        """
        Page 1 and the last page(s) of an oldest-first list, read backwards; ``None`` when the pages
        read do not continue page 1's order (the caller then reads every page).
        """
        per_page = first.per_page
        assert first.total_count is not None
        last = -(-first.total_count // per_page)
        pages: list[JobPage] = []  # the pages read after page 1, in list order
        number = last
        page = yield from self._list_jobs(path, number, per_page)
        pages.append(page)
        # Jobs that started since page 1 was read are past the old end: read on to the new end.
        while not is_last_page(page.count, number, per_page, page.total_count):
            number += 1
            page = yield from self._list_jobs(path, number, per_page)
            pages.append(page)
        number = last - 1
        while True:
            unique = UniqueJobs()
            unique.add(head)
            for read in pages:
                unique.add(read.jobs)
            if not ListOrder(j.started_at for j in unique.jobs).ascending:
                return None
            if number <= 1 or want <= unique.ids or 1 + len(pages) >= max(max_pages, 2):
                return unique.jobs
            page = yield from self._list_jobs(path, number, per_page)
            pages.insert(0, page)
            number -= 1

    def get_job(self, instance_id: str, job_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[Job]:
        """One job."""
        path = self.path(instance_id, job_id, namespace=namespace)
        return self._get_job(path)

    def _get_job(self, path: str) -> Plan[Job]:
        payload = yield from self.request(Call("GET", path))
        return parse_job(payload, method="GET", path=path)

    def create_job(
        self, instance_id: str, *, description: str | None = None, namespace: str | _Unset | None = UNSET
    ) -> Plan[Job]:
        """Start a job (never re-sent after an ambiguous failure)."""
        validate_description(description)
        path = self.path(instance_id, namespace=namespace)
        return self._create_job(path, description)

    def _create_job(self, path: str, description: str | None) -> Plan[Job]:
        body = {} if description is None else {"description": description}
        payload = yield from self.request(Call("POST", path, json_body=body, create=True, description=description))
        try:
            return parse_job(payload, method="POST", path=path)
        except AISearchResponseError as exc:
            # A job was started but its id is unreadable: the caller must find it by description.
            raise AISearchCreateAmbiguousError(
                f"{exc.message}; the job was probably started"
                + (f" (find it by description {description!r})" if description else ""),
                description=description,
                status_code=exc.status_code,
                method="POST",
                path=path,
            ) from None

    def cancel_job(self, instance_id: str, job_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[Job]:
        """Cancel a job (PATCH ``{"action": "cancel"}``)."""
        path = self.path(instance_id, job_id, namespace=namespace)
        return self._cancel_job(path)

    def _cancel_job(self, path: str) -> Plan[Job]:
        payload = yield from self.request(Call("PATCH", path, json_body={"action": "cancel"}))
        return parse_job(payload, method="PATCH", path=path)

    def job_logs_page(
        self,
        instance_id: str,
        job_id: str,
        *,
        page: int = 1,
        per_page: int = LOGS_MAX_PER_PAGE,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[tuple[list[JobLog], int | None]]:
        """One page of a job's logs, with ``total_count`` when reported."""
        validate_page(page)
        validate_per_page(per_page, LOGS_MAX_PER_PAGE)
        path = self.path(instance_id, job_id, logs=True, namespace=namespace)
        return self._logs_page(path, page, per_page)

    def _logs_page(self, path: str, page: int, per_page: int) -> Plan[tuple[list[JobLog], int | None]]:
        payload = yield from self.request(Call("GET", path, params={"page": page, "per_page": per_page}))
        return parse_log_page(payload, method="GET", path=path)
