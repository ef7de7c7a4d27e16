"""Error mapping: one HTTP answer, or one transport failure, into a payload or an error verdict.

:func:`evaluate` is the only place a status, a body and Cloudflare's error entries become our
exception types (with code and message) and a retry decision (:class:`Verdict`); a job create
that may have started a job becomes :class:`~airflow_provider_aisearch.exceptions.AISearchCreateAmbiguousError`,
never a retry. :func:`is_already_ended` recognises a cancel of a job that had already ended.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_aisearch.api.ratelimit import header as _header
from airflow_provider_aisearch.api.ratelimit import seconds_until
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchCooldownError,
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchNotFoundError,
    AISearchRateLimitError,
    AISearchResponseError,
)

__all__ = [
    "COOLDOWN_CODE",
    "UNAVAILABLE_CODE",
    "TransportFailure",
    "Verdict",
    "describe_errors",
    "evaluate",
    "is_already_ended",
    "parse_retry_after",
]

COOLDOWN_CODE = 7020
#: "Unable to connect to ai search": HTTP 503 on any jobs endpoint, transient (nothing was done).
UNAVAILABLE_CODE = 7017


class TransportFailure(str, Enum):
    """Why no HTTP answer arrived."""

    #: The request never left (connection refused, DNS failure, connect timeout): always safe to retry.
    NOT_SENT = "not_sent"
    #: The request may have reached the server (read timeout, reset, truncated answer).
    LOST = "lost"
    #: A local problem retrying cannot fix (bad URL, TLS setup).
    FATAL = "fatal"


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


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """
    Cloudflare's error entries as one line: ``[code] message (at path) (chain)``, joined by ``; ``.

    :param errors: Entries as read by :func:`evaluate` (``code``, ``message``, ``path``, ``error_chain``).
    """
    parts = []
    for e in errors:
        text = f"[{e.get('code')}] {e.get('message')}" if e.get("code") is not None else str(e.get("message"))
        where = e.get("path")
        if where:
            text += " (at " + ".".join(str(p) for p in where) + ")"
        chain = e.get("error_chain")
        if chain:
            text += " (" + describe_errors(chain) + ")"
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
    raw: bool = False,
    resource: str = "job",
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
    :param raw: A 2xx answer is content, not an envelope (a download): its payload is
        ``{"result": body, "content_type": ...}``.
    :param resource: What a create creates (``"job"``, ``"item"``), named in the ambiguity error.
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
            return Verdict(error=_ambiguous(text, description, None, [], method, path, resource))
        return Verdict(error=AISearchError(text, method=method, path=path), retryable=True)

    if raw and 200 <= status < 300:
        return Verdict(payload={"result": body, "content_type": _header(headers, "content-type")})
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
            detail = describe_errors(errors) or "no error details"
            problem = f"answered HTTP {status} with success=false: {detail}"
        elif "result" not in parsed:
            problem = f"answered HTTP {status} without a 'result'"
        if problem is None:
            assert isinstance(parsed, dict)
            return Verdict(payload=parsed)
        if create:
            return Verdict(error=_ambiguous(f"{where} {problem}", description, status, errors, method, path, resource))
        return Verdict(
            error=AISearchResponseError(
                f"{where} {problem}", status_code=status, errors=errors, method=method, path=path
            ),
            retryable=True,
        )

    detail = describe_errors(errors)
    if not detail:
        if parsed is _NOT_JSON:
            ctype = _header(headers, "content-type") or "unknown type"
            detail = f"non-JSON body ({ctype}, {len(body)} bytes)"
        else:
            detail = "no error details"
    text = f"{where} failed with HTTP {status}: {detail}"
    kwargs: dict[str, Any] = {"status_code": status, "errors": errors, "method": method, "path": path}
    retry_after = parse_retry_after(_header(headers, "retry-after"), headers)
    verdict = _error_verdict(text, kwargs, status, conn_id, retry_after, codes, detail, create, description, resource)
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
    resource: str = "job",
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
            return Verdict(error=_ambiguous(text, description, status, errors, method, path, resource))
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
    resource: str = "job",
) -> AISearchCreateAmbiguousError:
    done = "started" if resource == "job" else "stored"
    return AISearchCreateAmbiguousError(
        text + f"; {'an' if resource[:1] in 'aeiou' else 'a'} {resource} may or may not have been {done}, so the "
        "request was not re-sent" + (f" (find it by description {description!r})" if description else ""),
        description=description,
        status_code=status,
        errors=errors,
        method=method,
        path=path,
    )
