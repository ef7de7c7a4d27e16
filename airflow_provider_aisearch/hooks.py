"""AISearchHook: the Cloudflare AI Search jobs API over one keep-alive ``requests.Session``.

Paths, validation, the retry policy and error mapping come from :mod:`airflow_provider_aisearch.api`,
which the async trigger shares; this module adds the connection lookup, the session and the
synchronous retry loop (its ``requests`` details are :mod:`~airflow_provider_aisearch.clients.requests_transport`,
the Test button :mod:`~airflow_provider_aisearch.clients.connection_check`, the instance reads
:mod:`~airflow_provider_aisearch.clients.instance_reads`, the search :mod:`~airflow_provider_aisearch.clients.search`).
The async client for triggers is
:class:`~airflow_provider_aisearch.clients.async_client.AISearchAsyncClient`, re-exported here.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_aisearch.api import (
    CONN_TYPE,
    JOBS_MAX_PER_PAGE,
    LOGS_MAX_PER_PAGE,
    UNSET,
    USER_AGENT,
    Answer,
    Backoff,
    Call,
    ConnectionInfo,
    JobsAPI,
    ListOrder,
    Plan,
    RetryPolicy,
    UniqueJobs,
    _Unset,
    is_last_page,
    run_sync,
    validate_namespace,
)

# Re-exported: triggers, DAG code and tests import the async client from here.
from airflow_provider_aisearch.clients.async_client import AISearchAsyncClient
from airflow_provider_aisearch.clients.async_client import _classify_httpx_error as _classify_httpx_error
from airflow_provider_aisearch.clients.async_client import load_connection_info as load_connection_info
from airflow_provider_aisearch.clients.client_options import (
    DEFAULT_CONN_NAME,
    DEFAULT_TIMEOUT,
    log_backoff,
    validate_timeout,
)
from airflow_provider_aisearch.clients.compat import mask_secret
from airflow_provider_aisearch.clients.instance_reads import InstanceReads
from airflow_provider_aisearch.clients.item_calls import ItemCalls
from airflow_provider_aisearch.clients.requests_transport import CloudflareAuth, classify_requests_error
from airflow_provider_aisearch.clients.search import SearchReads
from airflow_provider_aisearch.models.jobs import Job, JobLog, JobPage

if TYPE_CHECKING:
    import requests

__all__ = ["AISearchAsyncClient", "AISearchHook"]

T = TypeVar("T")


class AISearchHook(InstanceReads, ItemCalls, SearchReads, BaseHook):
    """
    Interact with the Cloudflare AI Search jobs API.

    Credentials come from an Airflow connection of type ``cloudflare_aisearch``: the API token in
    ``password`` (sent as ``Authorization: Bearer``), or an account email in ``login`` with the
    Global API Key in ``password`` (sent as ``X-Auth-Email`` / ``X-Auth-Key``). Extra
    ``account_id`` is required; extra ``namespace`` defaults to ``"default"`` (``null`` selects
    the legacy un-namespaced paths). ``host`` overrides the base URL.

    Requests reuse one keep-alive ``requests.Session``, have connect and read timeouts, and are
    retried by :class:`RetryPolicy`. Every argument is validated before any request.

    :param aisearch_conn_id: The Airflow connection id.
    :param namespace: Namespace for every call (default: the connection's; ``None`` = legacy paths).
    :param timeout: Seconds: one number for both, or ``(connect, read)``.
    :param max_retries: Retries after the first attempt.
    :param retry_backoff: First retry delay in seconds (doubles each retry, with jitter).
    """

    conn_name_attr = "aisearch_conn_id"
    default_conn_name = DEFAULT_CONN_NAME
    conn_type = CONN_TYPE
    hook_name = "Cloudflare AI Search"

    DEFAULT_TIMEOUT: ClassVar[tuple[float, float]] = DEFAULT_TIMEOUT
    #: Longest (connect, read) wait of each :meth:`test_connection` request.
    TEST_TIMEOUT: ClassVar[tuple[float, float]] = (5.0, 10.0)

    def __init__(
        self,
        aisearch_conn_id: str = default_conn_name,
        *,
        namespace: str | _Unset | None = UNSET,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(aisearch_conn_id, str) or not aisearch_conn_id:
            raise ValueError(f"aisearch_conn_id must be a non-empty string, got {aisearch_conn_id!r}")
        if namespace is not UNSET and namespace is not None:
            validate_namespace(namespace)
        self.aisearch_conn_id = aisearch_conn_id
        self.namespace = namespace
        self.timeout = validate_timeout(timeout)
        self.retry_policy = RetryPolicy(max_retries=max_retries, backoff=retry_backoff)
        self._rng = random.Random()
        self._legacy_warned = False

    # -- connection ------------------------------------------------------------------------

    @cached_property
    def conn_info(self) -> ConnectionInfo:
        """The connection's settings (looked up once, on first use)."""
        return ConnectionInfo.from_connection(self.get_connection(self.aisearch_conn_id))

    @cached_property
    def session(self) -> requests.Session:
        """The hook's keep-alive session (one TCP connection reused across calls)."""
        import requests

        info = self.conn_info
        mask_secret(info.require_secret())  # the token / Global API Key never appears in task logs
        session = requests.Session()
        session.auth = CloudflareAuth(info)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's ``requests.Session``."""
        return self.session

    def close(self) -> None:
        """Close the session's pooled connections."""
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()

    def __enter__(self) -> AISearchHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def api(self) -> JobsAPI:
        """The jobs endpoints as plans (paths, validation, retries, parsing), for this connection."""
        api = JobsAPI(self.conn_info, self.retry_policy, self.namespace)
        api.rng = self._rng
        api.on_legacy_path = self._warn_legacy_path
        return api

    def _warn_legacy_path(self, message: str) -> None:
        """Log the un-namespaced paths' deprecation, once per hook."""
        if not self._legacy_warned:
            self._legacy_warned = True
            self.log.warning("Deprecated: %s", message)

    def run(self, plan: Plan[T]) -> T:
        """Drive a :class:`~airflow_provider_aisearch.api.JobsAPI` plan over the hook's session."""
        return run_sync(plan, self._send, self._sleep)

    def _send(self, call: Call) -> Answer:
        session = self.session  # outside the try: a missing token must raise its own clear error
        try:
            response = session.request(
                call.method,
                self.conn_info.base_url + call.path,
                params=call.params,
                json=call.json_body,
                data=call.data,
                files=call.files,  # with data: multipart/form-data (an item upload)
                headers=None if call.accept is None else {"Accept": call.accept},
                timeout=self.timeout,
                allow_redirects=False,  # never carry credentials to another host
            )
        except Exception as exc:  # requests raises many types; classify them, never leak them
            failure, detail = classify_requests_error(exc)
            return Answer(None, failure=failure, failure_detail=detail)
        return Answer(response.status_code, response.headers, response.content)

    def _sleep(self, backoff: Backoff) -> None:
        log_backoff(self.log, backoff)
        time.sleep(backoff.seconds)

    # -- jobs API --------------------------------------------------------------------------

    def list_jobs(
        self,
        instance_id: str,
        *,
        page: int = 1,
        per_page: int = JOBS_MAX_PER_PAGE,
        namespace: str | _Unset | None = UNSET,
    ) -> JobPage:
        """
        List one page of an instance's indexing jobs.

        :param instance_id: AI Search instance id.
        :param page: Page number, from 1.
        :param per_page: Jobs per page, 1-50.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        return self.run(self.api.list_jobs(instance_id, page=page, per_page=per_page, namespace=namespace))

    def iter_jobs(
        self, instance_id: str, *, per_page: int = JOBS_MAX_PER_PAGE, namespace: str | _Unset | None = UNSET
    ) -> Iterator[Job]:
        """
        Iterate over all of an instance's jobs, fetching pages lazily, each job id once.

        Stops at ``total_count`` or a short page, so N jobs cost ``ceil(N / per_page)`` requests
        (one request when there are none). A job that starts while pages are read shifts the list;
        a job listed again because of that is skipped.

        :param instance_id: AI Search instance id.
        :param per_page: Jobs per page, 1-50.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        pages = self.iter_job_pages(instance_id, per_page=per_page, namespace=namespace)  # validates now
        return (job for page in pages for job in page)

    def iter_job_pages(
        self, instance_id: str, *, per_page: int = JOBS_MAX_PER_PAGE, namespace: str | _Unset | None = UNSET
    ) -> Iterator[list[Job]]:
        """
        As :meth:`iter_jobs`, one list per page read (jobs already read on an earlier page are left
        out, so a list may be shorter than the page, or empty). Stop between pages to stop paging.

        :param instance_id: AI Search instance id.
        :param per_page: Jobs per page, 1-50.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        first = self.api.list_jobs(instance_id, page=1, per_page=per_page, namespace=namespace)  # validates now
        return self._iter_job_pages(first, instance_id, per_page, namespace)

    def _iter_job_pages(
        self, first: Plan[JobPage], instance_id: str, per_page: int, namespace: str | _Unset | None
    ) -> Iterator[list[Job]]:
        unique = UniqueJobs(keep=False)  # only the ids: memory stays small for long listings
        result = self.run(first)
        while True:
            yield unique.add(result.jobs)
            if is_last_page(result.count, result.page, per_page, result.total_count):
                return
            result = self.list_jobs(instance_id, page=result.page + 1, per_page=per_page, namespace=namespace)

    def get_job(self, instance_id: str, job_id: str, *, namespace: str | _Unset | None = UNSET) -> Job:
        """
        Get one job.

        :param instance_id: AI Search instance id.
        :param job_id: Job id.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        return self.run(self.api.get_job(instance_id, job_id, namespace=namespace))

    def create_job(
        self,
        instance_id: str,
        *,
        description: str | None = None,
        namespace: str | _Unset | None = UNSET,
        retry_cooldown: bool = True,
    ) -> Job:
        """
        Start an indexing job (POST). Never sends the POST twice when it might have succeeded.

        Retried only on answers proving no job was started (429, ``sync_in_cooldown``, connection
        refused). After an ambiguous failure (5xx, timeout, reset) it raises
        :class:`~airflow_provider_aisearch.exceptions.AISearchCreateAmbiguousError`.

        :param instance_id: AI Search instance id.
        :param description: Up to 255 characters, stored on the job (used to find it again).
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        :param retry_cooldown: ``False``: raise the create cooldown's
            :class:`~airflow_provider_aisearch.exceptions.AISearchCooldownError` at once, without retrying
            (for a caller that looks at the instance again before it retries).
        """
        from airflow_provider_aisearch.lineage import (
            job_lineage as lineage,  # imported on use: not every hook user needs it
        )

        plan = self.api.create_job(
            instance_id, description=description, namespace=namespace, retry_cooldown=retry_cooldown
        )
        job = self.run(plan)
        lineage.record_job_output(self, instance_id, namespace)  # hook lineage: the instance is an output
        return job

    def cancel_job(self, instance_id: str, job_id: str, *, namespace: str | _Unset | None = UNSET) -> Job:
        """
        Cancel a running job (PATCH ``{"action": "cancel"}``).

        :param instance_id: AI Search instance id.
        :param job_id: Job id.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        return self.run(self.api.cancel_job(instance_id, job_id, namespace=namespace))

    def iter_job_logs(
        self,
        instance_id: str,
        job_id: str,
        *,
        per_page: int = LOGS_MAX_PER_PAGE,
        namespace: str | _Unset | None = UNSET,
    ) -> Iterator[JobLog]:
        """
        Iterate over a job's log entries in the order the API returns them, fetching pages lazily.

        :param instance_id: AI Search instance id.
        :param job_id: Job id.
        :param per_page: Entries per page, 1-500.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        first = self.api.job_logs_page(instance_id, job_id, per_page=per_page, namespace=namespace)
        return self._iter_logs(first, instance_id, job_id, per_page, namespace)

    def _iter_logs(
        self,
        first: Plan[tuple[list[JobLog], int | None]],
        instance_id: str,
        job_id: str,
        per_page: int,
        namespace: str | _Unset | None,
    ) -> Iterator[JobLog]:
        page = 1
        entries, total = self.run(first)
        while True:
            yield from entries
            if is_last_page(len(entries), page, per_page, total):
                return
            page += 1
            entries, total = self.run(
                self.api.job_logs_page(instance_id, job_id, page=page, per_page=per_page, namespace=namespace)
            )

    def tail_job_logs(
        self, instance_id: str, job_id: str, lines: int = 20, *, namespace: str | _Unset | None = UNSET
    ) -> list[JobLog]:
        """
        The last ``lines`` log entries of a job, oldest first, in one request (two for very long logs).

        The order of the entries is read off page 1 (:class:`~airflow_provider_aisearch.api.ListOrder`):
        when it proves none and there are more pages, every page is read.

        :param instance_id: AI Search instance id.
        :param job_id: Job id.
        :param lines: How many entries.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
            raise ValueError(f"lines must be an integer >= 0, got {lines!r}")
        first = self.api.job_logs_page(instance_id, job_id, per_page=LOGS_MAX_PER_PAGE, namespace=namespace)
        if lines == 0:
            return []
        entries, total = self.run(first)
        order = ListOrder(e.id for e in entries)
        if is_last_page(len(entries), 1, LOGS_MAX_PER_PAGE, total) or order.descending:
            return sorted(entries, key=lambda e: e.id)[-lines:]
        if order.ascending and total is not None:
            # Oldest first and longer than a page: the newest entries are on the last page(s).
            last = -(-total // LOGS_MAX_PER_PAGE)
            tail: list[JobLog] = []
            page = last
            while page > 1 and len(tail) < lines:
                older, _ = self.run(
                    self.api.job_logs_page(
                        instance_id, job_id, page=page, per_page=LOGS_MAX_PER_PAGE, namespace=namespace
                    )
                )
                tail = older + tail
                page -= 1
            if ListOrder(e.id for e in entries + tail).ascending:
                return sorted({e.id: e for e in entries + tail}.values(), key=lambda e: e.id)[-lines:]
        # No proven order (or no total to find the end by): every page, keeping the newest entries.
        newest = dict(heapq.nlargest(lines, ((e.id, e) for e in entries)))
        page = 1
        while not is_last_page(len(entries), page, LOGS_MAX_PER_PAGE, total):
            page += 1
            entries, total = self.run(
                self.api.job_logs_page(instance_id, job_id, page=page, per_page=LOGS_MAX_PER_PAGE, namespace=namespace)
            )
            newest.update((e.id, e) for e in entries)
            newest = dict(heapq.nlargest(lines, newest.items()))
        return [newest[i] for i in sorted(newest)]

    # -- connection test -------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the credentials with one or two cheap GETs (no retries).

        Token: ``/accounts/{account_id}/tokens/verify``, falling back to ``/user/tokens/verify``
        for user-owned tokens. Email + Global API Key: ``/user``. Each request waits at most
        :attr:`TEST_TIMEOUT` (the UI's Test button waits on it), whatever the hook's ``timeout``.
        """
        from airflow_provider_aisearch.clients.connection_check import check_connection  # the Test button only

        return check_connection(self)

    # -- connection form (Airflow < 3.2; 3.2+ reads get_provider_info()) ---------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide the standard connection fields (Airflow < 3.2)."""
        from airflow_provider_aisearch import _ui_field_behaviour

        return _ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Form fields for ``account_id`` and ``namespace`` (Airflow < 3.2)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            "account_id": StringField(lazy_gettext("Account ID"), widget=BS3TextFieldWidget()),
            "namespace": StringField(lazy_gettext("Namespace"), widget=BS3TextFieldWidget(), default="default"),
        }
