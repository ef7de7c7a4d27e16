"""How the sync hook talks HTTP through ``requests``: auth at send time, and its exceptions classified.

The auth headers are added to each prepared request when it is sent (kept out of every repr,
and never taken from ``.netrc``); a ``requests`` exception becomes a
:class:`~airflow_provider_aisearch.api.TransportFailure`: not sent (safe to retry any call),
lost (the API may have acted), or fatal. ``requests`` is imported only when an error is classified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_aisearch.api import ConnectionInfo, TransportFailure

if TYPE_CHECKING:
    import requests

__all__ = ["CloudflareAuth", "classify_requests_error"]


class CloudflareAuth:
    """``requests`` auth: adds the auth headers at send time (keeps them out of reprs; stops ``.netrc``)."""

    def __init__(self, info: ConnectionInfo) -> None:
        self._headers = info.auth_headers()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the auth headers to ``request``."""
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return "<CloudflareAuth ***>"


def classify_requests_error(exc: Exception) -> tuple[TransportFailure, str]:
    """What a ``requests`` exception means for a retry, and a short detail naming it (never its message)."""
    import requests
    from urllib3.exceptions import NewConnectionError

    detail = type(exc).__name__
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return TransportFailure.NOT_SENT, detail  # nothing is sent before the TLS handshake succeeds
    if isinstance(exc, requests.exceptions.ConnectionError):
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, NewConnectionError):
                return TransportFailure.NOT_SENT, detail + " (connection refused or host unreachable)"
            nxt = getattr(cause, "reason", None)
            if not isinstance(nxt, BaseException):
                nxt = (cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None) or (
                    cause.__cause__ or cause.__context__
                )
            cause = nxt
        return TransportFailure.LOST, detail
    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)):
        return TransportFailure.LOST, detail
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return TransportFailure.LOST, detail
    return TransportFailure.FATAL, detail
