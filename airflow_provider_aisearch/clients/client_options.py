"""What the sync hook and the async client share: their defaults, timeout validation, retry-wait logging.

:class:`~airflow_provider_aisearch.hooks.AISearchHook` (``requests``) and
:class:`~airflow_provider_aisearch.clients.async_client.AISearchAsyncClient` (``httpx``) take the same
connection id, ``timeout``, ``max_retries`` and ``retry_backoff``, and log a retry wait the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_aisearch.api import Backoff

__all__ = ["DEFAULT_CONN_NAME", "DEFAULT_TIMEOUT", "log_backoff", "validate_timeout"]

#: The connection id hooks, clients, operators, sensors and triggers use by default.
DEFAULT_CONN_NAME = "aisearch_default"
#: Seconds: (connect, read).
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)


def log_backoff(log: Any, backoff: Backoff) -> None:
    """Log a wait at its level (warning or debug: named methods, which stdlib and structlog loggers share)."""
    emit = log.warning if backoff.level >= logging.WARNING else log.debug
    emit("%s", backoff.message)


def validate_timeout(timeout: object) -> float | tuple[float, float]:
    """A ``timeout`` argument as seconds, or a ``(connect, read)`` pair.

    :raises ValueError: naming ``timeout``.
    """

    def ok(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    if ok(timeout):
        return float(timeout)  # type: ignore[arg-type]
    if isinstance(timeout, tuple) and len(timeout) == 2 and all(ok(v) for v in timeout):
        return (float(timeout[0]), float(timeout[1]))
    raise ValueError(f"timeout must be a positive number of seconds or a (connect, read) pair, got {timeout!r}")
