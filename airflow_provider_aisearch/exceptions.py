"""Exceptions raised by the Cloudflare AI Search provider.

Every error that comes from the API is an :class:`AISearchError` carrying the HTTP status and
Cloudflare's ``errors`` list (``code`` + ``message``). Messages name the connection id, the HTTP
method and the path; they never contain a token or key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    from airflow_provider_aisearch.models.instances import InstanceStats


class AISearchError(AirflowException):
    """
    An error from the Cloudflare AI Search API, or a response that could not be understood.

    :param message: Human-readable description.
    :param status_code: HTTP status of the answer, or ``None`` when no answer arrived.
    :param errors: Cloudflare's ``errors`` entries, each with ``code`` and ``message``.
    :param method: HTTP method of the failed request.
    :param path: API path of the failed request (relative to the base URL).
    :param transient: Whether waiting and asking again may succeed (the retry policy's verdict);
        ``None``: the class default (:attr:`transient`).
    """

    #: Default of :attr:`transient` for errors not judged by the retry policy: a wait polls
    #: through a transient error and ends at once on any other.
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        method: str | None = None,
        path: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException types it HTTPStatus
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors]
        self.method = method
        self.path = path
        #: Seconds the server asked to wait (``Retry-After``), when it said so.
        self.retry_after: float | None = None
        if transient is not None:
            #: ``True`` when the retry policy would retry this failure (5xx, 429, timeouts, resets,
            #: malformed answers): a wait polls again. ``False`` (400, 3xx, 405/409/422, auth,
            #: not found, a fatal transport failure, a bad connection): a wait ends at once.
            self.transient = bool(transient)

    @property
    def codes(self) -> list[int]:
        """Cloudflare error codes carried by this error (may be empty)."""
        return [e["code"] for e in self.errors if isinstance(e.get("code"), int)]

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only attributes when pickled (Airflow may pickle exceptions across processes).
        return (
            _rebuild,
            (
                type(self),
                self.message,
                self.status_code,
                self.errors,
                self.method,
                self.path,
                self.retry_after,
                self.transient,
            ),
        )


def _rebuild(
    cls: type[AISearchError],
    message: str,
    status_code: int | None,
    errors: list[dict[str, Any]],
    method: str | None,
    path: str | None,
    retry_after: float | None = None,
    transient: bool | None = None,
) -> AISearchError:
    error = cls(message, status_code=status_code, errors=errors, method=method, path=path, transient=transient)
    error.retry_after = retry_after
    return error


class AISearchAuthError(AISearchError):
    """Authentication or permission failure (HTTP 401 or 403). Never retried."""


class AISearchNotFoundError(AISearchError):
    """The account, namespace, instance or job does not exist (HTTP 404). Never retried."""


class AISearchRateLimitError(AISearchError):
    """HTTP 429 still returned after every retry (the account is throttled)."""

    transient = True


class AISearchCooldownError(AISearchRateLimitError):
    """A create was refused with ``sync_in_cooldown`` (code 7020) after every retry; no job was created."""


class AISearchResponseError(AISearchError):
    """The API answered with something that is not a valid Cloudflare envelope (HTML, bad JSON, missing fields)."""

    transient = True


class AISearchCreateAmbiguousError(AISearchError):
    """
    A create request failed in a way that does not tell whether a job was started.

    Raised instead of re-sending the POST (which could start a second job that supersedes the
    first). The caller resolves it by listing jobs and matching :attr:`description`.

    :param description: The description sent with the create request, for matching.
    """

    def __init__(self, message: str, *, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.description = description

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_ambiguous,
            (self.message, self.description, self.status_code, self.errors, self.method, self.path, self.transient),
        )


def _rebuild_ambiguous(
    message: str,
    description: str | None,
    status_code: int | None,
    errors: list[dict[str, Any]],
    method: str | None,
    path: str | None,
    transient: bool | None = None,
) -> AISearchCreateAmbiguousError:
    return AISearchCreateAmbiguousError(
        message,
        description=description,
        status_code=status_code,
        errors=errors,
        method=method,
        path=path,
        transient=transient,
    )


class AISearchJobFailedError(AISearchError):
    """
    An indexing job ended with a failing end reason (failed, cancelled, or a refused supersede).

    An :class:`~airflow.exceptions.AirflowException` (not ``AirflowFailException``), so the task's
    ``retries`` apply, as in the dbt Cloud and Databricks providers. A sensor with ``soft_fail=True``
    turns it into a skip in every mode.

    :attr job: The ended job's dict (id, status, end reason), for the task's OpenLineage FAIL event
        (set where the error is raised; ``None`` when unknown).
    """

    job: dict[str, Any] | None = None


class AISearchJobTimeoutError(AISearchError):
    """
    A job was still running when the create operator's ``timeout`` passed.

    Airflow's ``retries`` apply; the job this task instance started was cancelled first unless
    ``cancel_on_timeout=False``, so a retry starts a fresh job.
    """


class AISearchIndexQualityError(AISearchError):
    """
    A job ended successfully, but the instance's item stats failed the quality gate.

    Raised by the sensor and the create operator (``max_item_errors``) when more items ended in
    ``error`` than allowed, or when the stats were ``degraded`` (no counts) and
    ``allow_degraded_stats=False``. An :class:`~airflow.exceptions.AirflowException`, so the task's
    ``retries`` apply; a sensor with ``soft_fail=True`` turns it into a skip, as a failed job.

    :param stats: The stats the verdict was made on.
    :param max_item_errors: The threshold: a count (``int``) or a fraction of the processed items (``float``).

    :attr job: The job's dict with the counts under ``"items"``, for the task's OpenLineage FAIL event
        (set where the error is raised; ``None`` when unknown).
    """

    job: dict[str, Any] | None = None

    def __init__(
        self,
        message: str,
        *,
        stats: InstanceStats | None = None,
        max_item_errors: int | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.stats = stats
        self.max_item_errors = max_item_errors

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_quality, (self.message, self.stats, self.max_item_errors))


def _rebuild_quality(
    message: str, stats: InstanceStats | None, max_item_errors: int | float | None
) -> AISearchIndexQualityError:
    return AISearchIndexQualityError(message, stats=stats, max_item_errors=max_item_errors)


class AISearchRetrievalCheckError(AISearchError):
    """
    A retrieval check failed: a metric under its ``min_*`` threshold, or fallen by more than ``max_drop``.

    Raised by ``AISearchRetrievalCheckOperator`` after the task log listed every missed query and the
    metrics. An :class:`~airflow.exceptions.AirflowException`, so the task's ``retries`` apply (a retry
    asks every query again).

    :param result: The check's value as the XCom would have held it (``k``, ``queries``, the metrics,
        ``per_query``, ``baseline``).
    :param failed: The assertions that failed, in words (e.g. ``"recall=0.5000 (min_recall=0.8)"``).
    """

    def __init__(
        self,
        message: str,
        *,
        result: dict[str, Any] | None = None,
        failed: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.result = result
        self.failed = list(failed)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_retrieval, (self.message, self.result, self.failed))


def _rebuild_retrieval(message: str, result: dict[str, Any] | None, failed: list[str]) -> AISearchRetrievalCheckError:
    return AISearchRetrievalCheckError(message, result=result, failed=failed)


class AISearchSyncTimeoutError(AISearchError):
    """
    A folder sync's uploaded items were still queued or running when its ``timeout`` passed.

    Airflow's ``retries`` apply: a retry sends nothing the first try stored (their hashes match)
    and waits for them again.
    """
