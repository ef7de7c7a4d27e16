"""Operations: :class:`JobsAPI`, the jobs endpoints as plans for one connection.

Each method validates its arguments (:mod:`.paths`), builds the path, and returns a plan that
sends its call through the retry loop (:mod:`.retry`) and parses the answer (:mod:`.parse`),
reading paged lists with :mod:`.paging`. A new endpoint is a new method here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from typing import Any

from airflow_provider_aisearch.api.connection import ConnectionInfo
from airflow_provider_aisearch.api.instance_operations import InstanceOperations
from airflow_provider_aisearch.api.paging import ListOrder, UniqueJobs, is_last_page
from airflow_provider_aisearch.api.parse import parse_job, parse_job_page, parse_log_page
from airflow_provider_aisearch.api.paths import (
    JOBS_MAX_PER_PAGE,
    LOGS_MAX_PER_PAGE,
    UNSET,
    _Unset,
    check_path_form,
    instance_path,
    jobs_path,
    path_segment,
    validate_description,
    validate_instance_id,
    validate_namespace,
    validate_page,
    validate_per_page,
)
from airflow_provider_aisearch.api.plans import Call, Plan
from airflow_provider_aisearch.api.ratelimit import RateBudget, budget_for
from airflow_provider_aisearch.api.retry import RetryPolicy, with_retries
from airflow_provider_aisearch.api.search_operations import SearchOperations
from airflow_provider_aisearch.exceptions import AISearchCreateAmbiguousError, AISearchResponseError
from airflow_provider_aisearch.models.jobs import Job, JobLog, JobPage

__all__ = ["JobsAPI"]


class JobsAPI(InstanceOperations, SearchOperations):
    """
    The jobs endpoints (and, from :class:`InstanceOperations` and :class:`SearchOperations`, the
    instance's own and its search) as plans, for one connection. No I/O happens here.

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
        """Validate the arguments and build the jobs path (``job_id=None`` is rejected, not ignored)."""
        validate_instance_id(instance_id)
        if job_id is not UNSET:
            path_segment("job_id", job_id)
        resolved = self._checked_namespace(namespace, "jobs")
        job = None if job_id is UNSET else job_id
        return jobs_path(self.info.require_account_id(), resolved, instance_id, job, logs=logs)

    def instance_path(
        self, instance_id: str, endpoint: str | None = None, *, namespace: str | _Unset | None = UNSET
    ) -> str:
        """
        Validate the arguments and build the path of the instance or one of its endpoints.

        :param endpoint: ``None`` (the instance), ``"stats"`` or ``"items"`` (namespaced only: with
            ``namespace=None`` a ``ValueError`` naming ``namespace``).
        """
        validate_instance_id(instance_id)
        resolved = self._checked_namespace(namespace, endpoint)
        return instance_path(self.info.require_account_id(), resolved, instance_id, endpoint)

    def _checked_namespace(self, namespace: str | _Unset | None, endpoint: str | None) -> str | None:
        """The namespace a call uses, validated; warns (``on_legacy_path``) when it selects the legacy form."""
        resolved = self.resolve_namespace(namespace)
        check_path_form(resolved, endpoint)  # items: no legacy form (ValueError naming namespace)
        if resolved is not None:
            validate_namespace(resolved)  # also the connection's namespace, before any request
        elif self.on_legacy_path is not None:
            self.on_legacy_path(
                f"Connection {self.info.conn_id!r}: namespace=None uses the un-namespaced "
                "/ai-search/instances/{id}/... paths, which Cloudflare has deprecated (its SDK since 5.8 and "
                "wrangler use /ai-search/namespaces/{name}/instances/...); set a namespace, usually 'default'"
            )
        return resolved

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
        self,
        instance_id: str,
        *,
        description: str | None = None,
        namespace: str | _Unset | None = UNSET,
        retry_cooldown: bool = True,
    ) -> Plan[Job]:
        """Start a job (never re-sent after an ambiguous failure; ``retry_cooldown``: see :class:`Call`)."""
        validate_description(description)
        path = self.path(instance_id, namespace=namespace)
        return self._create_job(path, description, retry_cooldown)

    def _create_job(self, path: str, description: str | None, retry_cooldown: bool = True) -> Plan[Job]:
        body = {} if description is None else {"description": description}
        call = Call("POST", path, json_body=body, create=True, description=description, retry_cooldown=retry_cooldown)
        payload = yield from self.request(call)
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
