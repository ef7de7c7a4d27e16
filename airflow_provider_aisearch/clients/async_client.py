"""AISearchAsyncClient: the jobs API over ``httpx`` for triggers, never blocking the event loop.

Plans come from the same :class:`~airflow_provider_aisearch.api.JobsAPI` as the sync hook, so
retries, paths, validation and error mapping are identical; this module adds the non-blocking
connection lookup (shared by concurrent triggers), one TLS context per process, the ``httpx``
client and the classification of its errors. ``httpx`` is imported only when a client opens.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any, TypeVar

from airflow_provider_aisearch.api import (
    UNSET,
    USER_AGENT,
    Answer,
    Backoff,
    Call,
    ConnectionInfo,
    JobsAPI,
    Plan,
    RetryPolicy,
    TransportFailure,
    _Unset,
    run_async,
    validate_namespace,
)
from airflow_provider_aisearch.api.ratelimit import header, http_date
from airflow_provider_aisearch.clients.client_options import (
    DEFAULT_CONN_NAME,
    DEFAULT_TIMEOUT,
    log_backoff,
    validate_timeout,
)
from airflow_provider_aisearch.models.instances import Instance, InstanceStats
from airflow_provider_aisearch.models.search import SearchResult

__all__ = ["AISearchAsyncClient", "load_connection_info"]

T = TypeVar("T")


def _classify_httpx_error(exc: Exception) -> tuple[TransportFailure, str]:
    import httpx

    detail = type(exc).__name__
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return TransportFailure.FATAL, detail
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return TransportFailure.NOT_SENT, detail + " (connection refused or host unreachable)"
    if isinstance(exc, httpx.TransportError):
        return TransportFailure.LOST, detail
    return TransportFailure.FATAL, detail


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every async client in the process (loading CA certificates costs ~30 ms)."""
    return ssl.create_default_context()


async def _read_connection_info(aisearch_conn_id: str) -> ConnectionInfo:
    from airflow_provider_aisearch.clients.compat import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(aisearch_conn_id)
    extra = await get_async_extra_dejson(conn)
    return ConnectionInfo.from_connection(conn, extra)


_lookups: dict[tuple[Any, str], Any] = {}


async def load_connection_info(aisearch_conn_id: str) -> ConnectionInfo:
    """
    Read a connection without blocking the event loop (``get_async_connection``).

    Concurrent calls for the same connection in one event loop share a single lookup (1,000
    triggers starting together make one); nothing is cached after it completes.
    """
    import asyncio

    key = (asyncio.get_running_loop(), aisearch_conn_id)
    task = _lookups.get(key)
    if task is None:
        task = _lookups[key] = asyncio.ensure_future(_read_connection_info(aisearch_conn_id))
        task.add_done_callback(lambda done: (_lookups.pop(key, None), done.cancelled() or done.exception()))
        # (reading the exception marks it retrieved: when every caller was cancelled, asyncio stays quiet)
    return await asyncio.shield(task)  # one caller being cancelled does not cancel the others


class AISearchAsyncClient:
    """
    Async access to the jobs API for triggers: one ``httpx.AsyncClient`` (one keep-alive connection) per use.

    The connection is looked up with ``get_async_connection`` (never a blocking call on the event
    loop). Plans come from the same :class:`~airflow_provider_aisearch.api.JobsAPI` as the sync
    hook, so retries, paths, validation and error mapping are identical::

        async with AISearchAsyncClient("aisearch_default") as client:
            job = await client.run(client.api.get_job("docs", job_id))

    :param aisearch_conn_id: The Airflow connection id.
    :param namespace: Default namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param timeout: Seconds, or ``(connect, read)``.
    :param max_retries: Retries after the first attempt.
    :param retry_backoff: First retry delay in seconds.
    :param log: Logger for retry warnings.
    """

    def __init__(
        self,
        aisearch_conn_id: str = DEFAULT_CONN_NAME,
        *,
        namespace: str | _Unset | None = UNSET,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        log: Any = None,
    ) -> None:
        self.aisearch_conn_id = aisearch_conn_id
        self.namespace = namespace
        self.timeout = validate_timeout(timeout)
        self.retry_policy = RetryPolicy(max_retries=max_retries, backoff=retry_backoff)
        if namespace is not UNSET and namespace is not None:
            validate_namespace(namespace)
        self.log = log
        self._client: Any = None
        self._api: JobsAPI | None = None
        self._legacy_warned = False
        #: The newest answer's ``Date`` header (epoch seconds; ``None``: none read yet): the API's time.
        self.server_time: float | None = None

    async def __aenter__(self) -> AISearchAsyncClient:
        self.open(await load_connection_info(self.aisearch_conn_id))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def open(self, info: ConnectionInfo) -> AISearchAsyncClient:
        """Start the HTTP client for an already-read connection (no I/O; use :meth:`aclose` after)."""
        import httpx

        info.require_secret()
        headers = info.auth_headers()

        def add_auth(request: httpx.Request) -> httpx.Request:
            request.headers.update(headers)
            return request

        if isinstance(self.timeout, tuple):
            connect, read = self.timeout
        else:
            connect = read = self.timeout
        self._api = JobsAPI(info, self.retry_policy, self.namespace)
        self._api.on_legacy_path = self._warn_legacy_path
        self._client = httpx.AsyncClient(
            verify=_ssl_context(),
            auth=add_auth,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=httpx.Timeout(read, connect=connect),
            follow_redirects=False,
        )
        return self

    def _warn_legacy_path(self, message: str) -> None:
        """Log the un-namespaced paths' deprecation, once per client."""
        if not self._legacy_warned and self.log is not None:
            self._legacy_warned = True
            self.log.warning("Deprecated: %s", message)

    async def aclose(self) -> None:
        """Close the HTTP client (idempotent)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @property
    def api(self) -> JobsAPI:
        """The jobs API plans (available inside ``async with``)."""
        if self._api is None:
            raise RuntimeError("use AISearchAsyncClient inside 'async with'")
        return self._api

    async def run(self, plan: Plan[T]) -> T:
        """Drive a plan over the async client (any plan of this connection, e.g. from :meth:`JobsAPI.with_deadline`)."""
        return await run_async(plan, self._send, self._sleep)

    async def get_instance(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> Instance:
        """
        Get the instance (as :meth:`AISearchHook.get_instance
        <airflow_provider_aisearch.hooks.AISearchHook.get_instance>`).

        :param instance_id: AI Search instance id.
        :param namespace: Overrides the client's namespace (``None`` = legacy path).
        """
        return await self.run(self.api.get_instance(instance_id, namespace=namespace))

    async def get_instance_stats(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> InstanceStats:
        """
        Get the instance's item counts (as :meth:`AISearchHook.get_instance_stats
        <airflow_provider_aisearch.hooks.AISearchHook.get_instance_stats>`).

        :param instance_id: AI Search instance id.
        :param namespace: Overrides the client's namespace (``None`` = legacy path).
        """
        return await self.run(self.api.get_instance_stats(instance_id, namespace=namespace))

    async def search(self, instance_id: str, query: str, **options: Any) -> SearchResult:
        """
        Search the instance (as :meth:`AISearchHook.search <airflow_provider_aisearch.hooks.AISearchHook.search>`,
        which documents ``options``; the same plan, validated before any request).

        :param instance_id: AI Search instance id.
        :param query: The text to search for.
        """
        return await self.run(self.api.search(instance_id, query, **options))

    async def _send(self, call: Call) -> Answer:
        try:
            response = await self._client.request(
                call.method,
                self.api.info.base_url + call.path,
                params=call.params,
                json=call.json_body,
                data=call.data,
                files=call.files,  # with data: multipart/form-data (an item upload)
                headers=None if call.accept is None else {"Accept": call.accept},
            )
        except Exception as exc:  # httpx raises many types; classify them, never leak them
            failure, detail = _classify_httpx_error(exc)
            return Answer(None, failure=failure, failure_detail=detail)
        self.server_time = http_date(header(response.headers, "date")) or self.server_time
        return Answer(response.status_code, response.headers, response.content)

    async def _sleep(self, backoff: Backoff) -> None:
        import asyncio

        if self.log is not None:
            log_backoff(self.log, backoff)
        await asyncio.sleep(backoff.seconds)
