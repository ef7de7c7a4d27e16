"""Waiting on a job, shared by the sensor and the create operator: poll, finish, defer, resume.

:class:`AISearchJobWaitMixin` is the one implementation of the wait (one poll, the outcome of an
ended job with its item quality gate, the trigger that continues it, ``execute_complete``), mixed
into :class:`~airflow_provider_aisearch.sensors.AISearchJobSensor` and
:class:`~airflow_provider_aisearch.tasks.create_operator.AISearchCreateJobOperator`; with the parse-time
checks of their shared parameters (``hook_params``, the end-reason sets). All are re-exported from
``sensors``, their public path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout

from airflow_provider_aisearch.api import DEFAULT_BASE_URL, _Unset
from airflow_provider_aisearch.exceptions import AISearchError, AISearchJobFailedError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.jobs import EndReasonPolicy, Job, JobStatus
from airflow_provider_aisearch.triggers import AISearchJobTrigger, error_from_event, validate_event
from airflow_provider_aisearch.waiting.quality import ItemCheck, ItemGate, ended_well
from airflow_provider_aisearch.waiting.watch import JobWatch, PollResult, result_dict, validate_on_superseded

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["MIN_RECOMMENDED_POKE_INTERVAL", "AISearchJobWaitMixin", "end_reason_settings", "validate_hook_params"]

#: Below this poke interval against the real API, a warning points at Cloudflare's rate limit.
MIN_RECOMMENDED_POKE_INTERVAL = 10.0


def validate_hook_params(hook_params: dict[str, Any] | None) -> dict[str, Any]:
    """
    Check ``hook_params`` (passed to :class:`AISearchHook`) at DAG parse time.

    :raises ValueError: an unknown key or a bad value.
    """
    params = dict(hook_params or {})
    unknown = set(params) - {"timeout", "max_retries", "retry_backoff"}
    if unknown:
        raise ValueError(f"hook_params accepts timeout, max_retries and retry_backoff; got {sorted(unknown)}")
    AISearchHook("validate", **params)  # validates the values; looks nothing up
    return params


def end_reason_settings(
    success_end_reasons: Iterable[str] | None, failure_end_reasons: Iterable[str] | None
) -> tuple[EndReasonPolicy, list[str] | None, list[str] | None]:
    """
    Validate user end-reason sets at DAG parse time.

    :return: The policy, and both sets normalised as sorted lists (JSON-safe for triggers), or ``None``.
    :raises ValueError: a single string, a non-string, or a reason in both sets.
    """
    policy = EndReasonPolicy.build(success_end_reasons, failure_end_reasons)
    success = None if success_end_reasons is None else sorted(policy.success_end_reasons)
    failure = None if failure_end_reasons is None else sorted(policy.failure_end_reasons)
    return policy, success, failure


class AISearchJobWaitMixin:
    """
    Waiting on a job, shared by :class:`AISearchJobSensor` and the create operator's
    ``wait_for_completion``: one poll, the outcome of an ended job, the trigger, and ``execute_complete``.

    The host class sets ``instance_id``, ``namespace``, ``aisearch_conn_id``, ``hook_params``,
    ``policy``, ``on_superseded``, ``success_end_reasons``, ``failure_end_reasons``, ``log_tail``
    and ``item_gate`` (:mod:`~airflow_provider_aisearch.waiting.quality`: the item stats after a successful end).
    """

    instance_id: str
    namespace: str | _Unset | None
    aisearch_conn_id: str
    hook_params: dict[str, Any]
    policy: EndReasonPolicy
    on_superseded: str
    success_end_reasons: list[str] | None
    failure_end_reasons: list[str] | None
    log_tail: int
    item_gate: ItemGate
    log: Any

    def _init_wait(
        self,
        *,
        on_superseded: str,
        success_end_reasons: Iterable[str] | None,
        failure_end_reasons: Iterable[str] | None,
        log_tail: int,
        hook_params: dict[str, Any] | None,
        **item_params: Any,
    ) -> None:
        """Validate and store the wait settings (at DAG parse time); ``item_params``: :meth:`ItemGate.build`'s."""
        self.item_gate = ItemGate.build(**item_params)
        self.on_superseded = validate_on_superseded(on_superseded)
        self.policy, self.success_end_reasons, self.failure_end_reasons = end_reason_settings(
            success_end_reasons, failure_end_reasons
        )
        if isinstance(log_tail, bool) or not isinstance(log_tail, int) or log_tail < 0:
            raise ValueError(f"log_tail must be an integer >= 0, got {log_tail!r}")
        self.log_tail = log_tail
        self.hook_params = validate_hook_params(hook_params)

    @cached_property
    def hook(self) -> AISearchHook:
        """The hook (one session for the whole task try)."""
        return AISearchHook(self.aisearch_conn_id, **self.hook_params)

    @cached_property
    def item_check(self) -> ItemCheck:
        """The item stats and their gate (built after templates are rendered)."""
        return ItemCheck(self.item_gate, self.hook, self.instance_id, self.namespace, self.log)

    def _new_watch(self, job_id: str) -> JobWatch:
        return JobWatch(
            self.hook.api,
            self.instance_id,
            job_id,
            namespace=self.namespace,
            policy=self.policy,
            on_superseded=self.on_superseded,
        )

    def _warn_fast_polling(self, interval: float) -> None:
        if interval < MIN_RECOMMENDED_POKE_INTERVAL and self.hook.conn_info.base_url == DEFAULT_BASE_URL:
            self.log.warning(
                "poke_interval=%s s against the Cloudflare API: every poll counts against the account's "
                "limit of 1200 requests per 5 minutes (shared with the dashboard and other tools); "
                "consider %s s or more, or deferrable=True",
                interval,
                int(MIN_RECOMMENDED_POKE_INTERVAL),
            )

    def _poll(self, watch: JobWatch) -> PollResult | None:
        """
        One poll; ``None`` when a transient error made it inconclusive.

        :raises AISearchError: an error the retry policy would not retry (auth, not found, 400,
            3xx, 405/409/422, a fatal transport failure): polling again cannot help.
        """
        try:
            result = self.hook.run(watch.poll())
        except AISearchError as exc:
            if not exc.transient:
                raise
            self.log.warning("Could not get job %s (will try again at the next poll): %s", watch.job_id, exc)
            return None
        if result.done:
            return result
        if result.status is JobStatus.SUPERSEDED:
            self.log.info("Job %s was superseded; the job that replaced it is not listed yet", result.job.id)
        else:
            self.log.info(
                "Job %s on instance %s is still running (started %s, last seen %s)",
                result.job.id,
                self.instance_id,
                result.job.started_at,
                result.job.last_seen_at,
            )
        return result

    def _finish(self, job: Job, followed_from: Sequence[str]) -> dict[str, Any]:
        """Turn an ended job into the XCom value, or raise for a failing end reason (every path)."""
        status = job.classify(self.policy)
        if followed_from:
            self.log.info("Followed superseded job(s) %s to job %s", ", ".join(followed_from), job.id)
        if ended_well(status, self.on_superseded):
            self.log.info("%s", self.policy.explain(job))
            return result_dict(job, followed_from, self.policy)
        where = f"AI Search job {job.id!r} on instance {self.instance_id!r}"
        if status is JobStatus.SUPERSEDED:
            error = AISearchJobFailedError(
                f"{where} was superseded by a newer job (end_reason={job.end_reason!r}) and on_superseded='fail'"
            )
        else:
            self._log_tail(job)
            error = AISearchJobFailedError(f"{where}: {self.policy.explain(job)}")
        error.job = result_dict(job, followed_from, self.policy)  # the OpenLineage FAIL event's job facet
        raise error

    def _log_tail(self, job: Job) -> None:
        if not self.log_tail:
            return
        try:
            entries = self.hook.tail_job_logs(self.instance_id, job.id, self.log_tail, namespace=self.namespace)
        except (AISearchError, ValueError) as exc:
            self.log.warning("Could not fetch the logs of job %s: %s", job.id, exc)
            return
        self.log.error("Last %d log lines of job %s:", len(entries), job.id)
        for entry in entries:
            stamp = entry.created_at.isoformat() if entry.created_at else "-"
            self.log.error("  %s [%s] %s", stamp, entry.message_type, entry.message)

    def _wait_for_end(self, watch: JobWatch, interval: float, deadline: float | None) -> PollResult | None:
        """
        Poll in this process until the job ends (the create operator's non-deferrable waits).

        :param deadline: Wall-clock epoch seconds; ``None``: no limit.
        :return: The final poll, or ``None`` when ``deadline`` passed while the job still ran.
        """
        while True:
            result = self._poll(watch)
            if result is not None and result.done:
                return result
            if deadline is not None and time.time() >= deadline:
                return None
            time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.time())))

    def _trigger(
        self,
        watch: JobWatch,
        interval: float,
        timeout: float | None,
        *,
        cancel_on_kill: bool = False,
        on_superseded: str | None = None,
        items: bool = True,
    ) -> AISearchJobTrigger:
        """The trigger that continues ``watch`` in the triggerer (JSON-safe kwargs); ``items``: it reads the stats."""
        hook = self.hook
        return AISearchJobTrigger(
            instance_id=self.instance_id,
            job_id=watch.job_id,
            aisearch_conn_id=self.aisearch_conn_id,
            namespace=hook.api.resolve_namespace(self.namespace),
            poll_interval=interval,
            deadline=None if timeout is None else time.time() + timeout,
            on_superseded=on_superseded or self.on_superseded,
            success_end_reasons=self.success_end_reasons,
            failure_end_reasons=self.failure_end_reasons,
            followed_from=watch.followed_from,
            timeout=hook.timeout,
            max_retries=hook.retry_policy.max_retries,
            retry_backoff=hook.retry_policy.backoff,
            cancel_on_kill=cancel_on_kill,
            read_item_stats=items and self.item_gate.read_item_stats,
            wait_for_items=items and self.item_gate.wait_for_items,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: return the job dict, or raise what the poll path would."""
        event = validate_event(event)
        if event["status"] == "done":
            job = Job.from_dict(event["job"])
            value = self._finish(job, event.get("followed_from", []))
            return self.item_check.finish(job, value, event=event, timeout_error=AirflowSensorTimeout)
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"Timed out: {event['message']}")
        raise error_from_event(event)
