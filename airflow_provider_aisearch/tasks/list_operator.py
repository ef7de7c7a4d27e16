"""AISearchListJobsOperator: list an instance's jobs and return those a :class:`JobFilter` keeps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, Asset, BaseOperator

from airflow_provider_aisearch.api import UNSET, ListOrder, _Unset, validate_instance_id
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.lineage.job_lineage import AISearchLineageMixin
from airflow_provider_aisearch.models.jobs import Job, JobStatus
from airflow_provider_aisearch.tasks.job_wait import end_reason_settings, validate_hook_params
from airflow_provider_aisearch.waiting.job_filter import JobFilter, newest_first_key, parse_statuses

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["AISearchListJobsOperator"]


class AISearchListJobsOperator(AISearchLineageMixin, BaseOperator):
    """
    List an instance's indexing jobs and return those matching every filter, newest first.

    The return value feeds ``.expand()`` directly (for example
    ``AISearchJobSensor.partial(...).expand(job_id=list_task.output)`` with ``ids_only=True``).
    Each job is returned once, even when jobs start while the pages are read. Paging stops between
    pages as soon as no later page can match, once every job read proves the list ordered by
    ``started_at`` (see :class:`~airflow_provider_aisearch.api.ListOrder`: the order is checked, never
    assumed); a list with no proven order is read to its end. With ``outlets`` holding an ``Asset``
    (the instance's own is ``cloudflare-aisearch://<account_id>/<namespace>/<instance_id>``, see
    :func:`~airflow_provider_aisearch.assets.instance_uri`), each run that found jobs attaches
    ``{"job_ids": [...], "instance_id": ..., "namespace": ...}`` to the asset event's ``extra``;
    combine with ``skip_if_empty=True`` so that runs finding nothing emit no event.

    :param instance_id: AI Search instance id (templated).
    :param namespace: Namespace (templated); default: the connection's. ``None`` = legacy paths.
    :param aisearch_conn_id: The Airflow connection id.
    :param source: ``"user"`` or ``"schedule"`` (templated).
    :param statuses: Keep jobs whose status is one of these (``JobStatus`` or their string values).
    :param started_after: Inclusive lower bound on ``started_at`` (templated; datetime or string).
    :param started_before: Exclusive upper bound on ``started_at`` (templated).
    :param ended_after: Inclusive lower bound on ``ended_at``; running jobs never match (templated).
    :param ended_before: Exclusive upper bound on ``ended_at``; running jobs never match (templated).
    :param limit: Return at most this many jobs (the newest).
    :param ids_only: Return job ids instead of job dicts.
    :param skip_if_empty: Raise ``AirflowSkipException`` when nothing matched.
    :param success_end_reasons: Extra end reasons meaning success (for ``statuses`` and the returned ``status``).
    :param failure_end_reasons: Extra end reasons meaning failure.
    :param hook_params: ``timeout``, ``max_retries`` and ``retry_backoff`` for the hook.
    """

    template_fields: Sequence[str] = (
        "instance_id",
        "namespace",
        "source",
        "started_after",
        "started_before",
        "ended_after",
        "ended_before",
    )
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        instance_id: str,
        namespace: str | _Unset | None = UNSET,
        aisearch_conn_id: str = AISearchHook.default_conn_name,
        source: str | None = None,
        statuses: Iterable[JobStatus | str] | None = None,
        started_after: datetime | str | None = None,
        started_before: datetime | str | None = None,
        ended_after: datetime | str | None = None,
        ended_before: datetime | str | None = None,
        limit: int | None = None,
        ids_only: bool = False,
        skip_if_empty: bool = False,
        success_end_reasons: Iterable[str] | None = None,
        failure_end_reasons: Iterable[str] | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        self.instance_id = instance_id
        self.namespace = namespace
        self.aisearch_conn_id = aisearch_conn_id
        self.source = source
        self.statuses = None if statuses is None else sorted(s.value for s in parse_statuses(statuses) or ())
        self.started_after = started_after
        self.started_before = started_before
        self.ended_after = ended_after
        self.ended_before = ended_before
        self.limit = limit
        self.ids_only = ids_only
        self.skip_if_empty = skip_if_empty
        self.policy, self.success_end_reasons, self.failure_end_reasons = end_reason_settings(
            success_end_reasons, failure_end_reasons
        )
        self.hook_params = validate_hook_params(hook_params)

    @cached_property
    def hook(self) -> AISearchHook:
        """The hook."""
        return AISearchHook(self.aisearch_conn_id, **self.hook_params)

    def execute(self, context: Context) -> list[Any]:
        """List, filter, and return the matching jobs (dicts, or ids with ``ids_only``)."""
        validate_instance_id(self.instance_id)
        job_filter = JobFilter.build(
            source=self.source,
            statuses=self.statuses,
            started_after=self.started_after,
            started_before=self.started_before,
            ended_after=self.ended_after,
            ended_before=self.ended_before,
            policy=self.policy,
        )
        matched: list[Job] = []
        order = ListOrder()
        listed = 0
        for page in self.hook.iter_job_pages(self.instance_id, namespace=self.namespace):
            for job in page:
                listed += 1
                order.see(job.started_at)
                if job_filter.matches(job):
                    matched.append(job)
            # Only between pages, and only on an order proven by every job read so far.
            if order.descending and (
                (self.limit is not None and len(matched) >= self.limit) or job_filter.older_cannot_match(order.last)
            ):
                break
            if order.ascending and job_filter.newer_cannot_match(order.last):
                break
        matched.sort(key=newest_first_key, reverse=True)
        if self.limit is not None:
            matched = matched[: self.limit]
        self.log.info("%d job(s) of instance %s matched (%d listed)", len(matched), self.instance_id, listed)
        if not matched and self.skip_if_empty:
            raise AirflowSkipException(f"No job of instance {self.instance_id!r} matched the filters")
        if matched:
            self._attach_to_assets(context, [j.id for j in matched])
        return [j.id for j in matched] if self.ids_only else [j.to_dict(self.policy) for j in matched]

    def _attach_to_assets(self, context: Context, job_ids: list[str]) -> None:
        outlets = [o for o in (self.outlets or []) if isinstance(o, Asset)]
        if not outlets:
            return
        namespace = self.hook.api.resolve_namespace(self.namespace)
        extra: dict[str, Any] = {"job_ids": list(job_ids), "instance_id": self.instance_id, "namespace": namespace}
        events = context["outlet_events"]
        for asset in outlets:
            events[asset].extra = dict(extra)
