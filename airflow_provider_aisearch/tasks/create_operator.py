"""AISearchCreateJobOperator: start an indexing job safely (never two per task try), optionally wait for it.

Adopting an earlier try's job is :mod:`~airflow_provider_aisearch.tasks.task_tries`; one POST through the
cooldown and ambiguous failures is :mod:`~airflow_provider_aisearch.tasks.safe_create`; the wait is the
sensor's (:class:`~airflow_provider_aisearch.tasks.job_wait.AISearchJobWaitMixin`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_aisearch.api import UNSET, _Unset, is_already_ended, validate_description
from airflow_provider_aisearch.exceptions import AISearchError, AISearchJobTimeoutError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.lineage.job_lineage import AISearchLineageMixin
from airflow_provider_aisearch.links import DASHBOARD_URL_XCOM_KEY, AISearchJobsLink, dashboard_url
from airflow_provider_aisearch.models.jobs import Job, JobStatus
from airflow_provider_aisearch.tasks.job_wait import AISearchJobWaitMixin
from airflow_provider_aisearch.tasks.safe_create import Busy, SafeCreate, newest_running
from airflow_provider_aisearch.tasks.task_tries import default_description, earlier_try_job, store_job_id
from airflow_provider_aisearch.triggers import error_from_event, validate_event
from airflow_provider_aisearch.waiting.watch import JobWatch, result_dict, validate_interval

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["IF_RUNNING", "AISearchCreateJobOperator"]

#: What :class:`AISearchCreateJobOperator` does when a job is already running.
IF_RUNNING = ("reuse", "wait", "supersede", "fail")
#: ``execute_complete`` phases: waiting for someone else's job to end (``if_running="wait"``), or for ours.
_IDLE, _JOB = "idle", "job"


class AISearchCreateJobOperator(AISearchLineageMixin, AISearchJobWaitMixin, BaseOperator):
    """
    Start an indexing job safely, optionally waiting until it ends.

    **A retried or cleared task never starts a second job while its first still runs.** Before
    anything else it looks for a running job that an earlier try of the same task instance (same
    DAG, task, map index and run id) started, and adopts it whatever ``if_running`` says. Earlier
    tries are recognised by the default ``description``, and on Airflow 3.3+ also by the job id kept
    in the task state store (so a user-set ``description`` is covered too). If that job has ended,
    a retry means "index again" and starts a new job. An adopted job that then ends ``cancelled``
    (clearing a running task: the earlier try's ``on_kill`` cancels it) is replaced, once, by a
    job of this try's own.

    Otherwise it applies ``if_running`` to a running job: ``"reuse"`` adopts it (no POST),
    ``"wait"`` waits for it to end and then creates (in the triggerer when ``deferrable=True``),
    ``"supersede"`` creates anyway (Cloudflare ends the old one with ``new_job_has_started``),
    ``"fail"`` raises. During the create cooldown (429 ``sync_in_cooldown``) it waits
    (``Retry-After``, else 30 s) and retries until ``cooldown_timeout``. After a wait, and before
    each cooldown retry, it lists again: a job that started meanwhile (another task's, a scheduled
    sync) gets ``if_running`` applied again, within the same ``timeout``: ``"wait"`` waits for it
    too, ``"reuse"`` adopts it, ``"fail"`` raises; only ``"supersede"`` POSTs regardless. An
    ambiguous create failure is resolved by finding the job by its ``description``, so one task try
    never starts two jobs.

    The job id is pushed to XCom (key ``job_id``) as soon as it is known; the return value is the job's
    dict. ``wait_for_completion=True`` waits exactly as :class:`~airflow_provider_aisearch.sensors.AISearchJobSensor`
    (the same code, deferrable with the same trigger when ``deferrable=True``). A failed job raises
    :class:`~airflow_provider_aisearch.exceptions.AISearchJobFailedError`, and a wait past ``timeout``
    :class:`~airflow_provider_aisearch.exceptions.AISearchJobTimeoutError`; Airflow's ``retries``
    apply to both, and a retry starts a new job. ``on_kill``, and a timeout unless
    ``cancel_on_timeout=False``, cancel a job this task instance started (never one adopted with
    ``if_running="reuse"``).

    :param instance_id: AI Search instance id (templated).
    :param namespace: Namespace (templated); default: the connection's. ``None`` = legacy paths.
    :param aisearch_conn_id: The Airflow connection id.
    :param description: Stored on the job (templated, at most 255 characters); default identifies
        the DAG, task, map index, run and try.
    :param if_running: ``"reuse"``, ``"wait"``, ``"supersede"`` or ``"fail"``.
    :param cooldown_timeout: Seconds to keep retrying through the create cooldown.
    :param wait_for_completion: Wait until the job ends (and fail on a failing end reason).
    :param poll_interval: Seconds between polls while waiting (> 0; a number or a ``timedelta``).
    :param timeout: Seconds the whole task may wait, ``if_running="wait"`` included (``None``: no limit).
    :param cancel_on_timeout: Cancel the job this task instance started when ``timeout`` passes.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param on_superseded: As for the sensor: ``"follow"``, ``"fail"`` or ``"succeed"``.
    :param success_end_reasons: Extra end reasons meaning success.
    :param failure_end_reasons: Extra end reasons meaning failure.
    :param log_tail: Log lines of a failed job to write to the task log.
    :param hook_params: ``timeout``, ``max_retries`` and ``retry_backoff`` for the hook.
    :param max_item_errors: As for the sensor: the item quality gate after a successful end (count or fraction).
    :param allow_degraded_stats: Let ``degraded`` item stats pass the gate (always with a warning).
    :param wait_for_items: After the job ends, wait (within ``timeout``) until no item is queued or running.
    :param read_item_stats: Read the item stats into the XCom (``"items"``); default: only for a gate or a wait.
    """

    #: The module Airflow and OpenLineage know the operator by (its logger, the serialized DAG's task module, the
    #: ``[openlineage] disabled_for_operators`` name the README gives): its home before ``tasks/`` (issue 22),
    #: which ``airflow_provider_aisearch/create_operator.py`` still re-exports.
    __module__ = "airflow_provider_aisearch.create_operator"

    template_fields: Sequence[str] = ("instance_id", "namespace", "description")
    operator_extra_links = (AISearchJobsLink(),)
    ui_color = "#f6821f"

    #: Seconds to wait before looking for the job of an ambiguous create a second time.
    ambiguity_recheck_delay = 2.0

    def __init__(
        self,
        *,
        instance_id: str,
        namespace: str | _Unset | None = UNSET,
        aisearch_conn_id: str = AISearchHook.default_conn_name,
        description: str | None = None,
        if_running: str = "reuse",
        cooldown_timeout: float = 600,
        wait_for_completion: bool = False,
        poll_interval: float = 30,
        timeout: float | None = None,
        cancel_on_timeout: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        on_superseded: str = "follow",
        success_end_reasons: Iterable[str] | None = None,
        failure_end_reasons: Iterable[str] | None = None,
        log_tail: int = 20,
        hook_params: dict[str, Any] | None = None,
        max_item_errors: int | float | None = None,
        allow_degraded_stats: bool = False,
        wait_for_items: bool = False,
        read_item_stats: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_running not in IF_RUNNING:
            raise ValueError(f"if_running must be one of {', '.join(IF_RUNNING)}; got {if_running!r}")
        if isinstance(cooldown_timeout, bool) or not isinstance(cooldown_timeout, (int, float)) or cooldown_timeout < 0:
            raise ValueError(f"cooldown_timeout must be a number of seconds >= 0, got {cooldown_timeout!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.instance_id = instance_id
        self.namespace = namespace
        self.aisearch_conn_id = aisearch_conn_id
        self.description = description
        self.if_running = if_running
        self.cooldown_timeout = float(cooldown_timeout)
        self.wait_for_completion = wait_for_completion
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.deferrable = deferrable
        self._init_wait(
            on_superseded=on_superseded,
            success_end_reasons=success_end_reasons,
            failure_end_reasons=failure_end_reasons,
            log_tail=log_tail,
            hook_params=hook_params,
            max_item_errors=max_item_errors,
            allow_degraded_stats=allow_degraded_stats,
            wait_for_items=wait_for_items,
            read_item_stats=read_item_stats,
        )
        self._created_job_id: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Adopt an earlier try's running job, or apply ``if_running`` and start one; optionally wait."""
        description = self._description(context)
        validate_description(description)
        hook = self.hook
        where = hook.api.path(self.instance_id, namespace=self.namespace)  # validate before any request
        deadline = None if self.timeout is None else time.time() + self.timeout
        self.log.info("Starting an indexing job on %s with description %r", where, description)
        jobs = hook.run(hook.api.newest_jobs(self.instance_id, namespace=self.namespace))
        earlier = earlier_try_job(
            context,
            jobs,
            description=self.description or None,  # "" (a template rendered empty) means the default too
            get_job=lambda job_id: hook.get_job(self.instance_id, job_id, namespace=self.namespace),
            log=self.log,
        )
        if earlier is not None:
            self.log.info(
                "Job %s, started by an earlier try of this task instance, is still running: "
                "adopting it (if_running does not apply)",
                earlier.id,
            )
            return self._started(context, earlier, owned=True, adopted=True, deadline=deadline, description=description)
        return self._create_unless_running(context, description, deadline, newest_running(jobs))

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        *,
        phase: str = _JOB,
        job_id: str | None = None,
        owned: bool = False,
        adopted: bool = False,
        deadline: float | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: create after an ``if_running="wait"``, or finish (or replace) our job."""
        event = validate_event(event)
        if phase == _IDLE:
            if event["status"] == "timeout":
                raise self._timeout_error(event["job_id"], " (if_running='wait')")
            if event["status"] == "error":
                raise error_from_event(event)
            self.log.info("Job %s has ended; creating a new one", event["job_id"])
            description = description or self._description(context)
            return self._create_unless_running(context, description, deadline, None, waited_for=event["job_id"])
        job_id = job_id or event["job_id"]
        if owned:
            self._created_job_id = job_id
        if event["status"] == "timeout":
            items = event.get("items_pending")  # the job ended; its items were still in flight
            raise AISearchJobTimeoutError(event["message"]) if items else self._timed_out(job_id, owned)
        if event["status"] == "error":
            raise error_from_event(event)
        return self._outcome(
            context,
            Job.from_dict(event["job"]),
            event.get("followed_from", []),
            adopted=adopted,
            deadline=deadline,
            description=description,
            event=event,
        )

    # -- the job: keep, push, wait -----------------------------------------------------------

    def _started(
        self,
        context: Context,
        job: Job,
        *,
        owned: bool,
        adopted: bool,
        deadline: float | None,
        description: str | None,
    ) -> dict[str, Any]:
        """The job is known: keep and push its id, then wait for it (here or in the triggerer) if asked."""
        if owned:
            self._created_job_id = job.id
            store_job_id(context, job.id, self.log)
        ti = context["ti"]
        ti.xcom_push(key="job_id", value=job.id)
        ti.xcom_push(
            key=DASHBOARD_URL_XCOM_KEY, value=dashboard_url(self.hook.conn_info.account_id or "", self.instance_id)
        )
        if not self.wait_for_completion:
            return result_dict(job, [], self.policy)
        watch = self._new_watch(job.id)
        if self.deferrable:
            self._defer(watch, _JOB, owned=owned, adopted=adopted, deadline=deadline, description=description)
        result = self._wait_for_end(watch, self.poll_interval, deadline)  # (one last poll when time is up)
        if result is None:
            raise self._timed_out(job.id, owned)
        return self._outcome(
            context, result.job, result.followed_from, adopted=adopted, deadline=deadline, description=description
        )

    def _outcome(
        self,
        context: Context,
        job: Job,
        followed_from: Sequence[str],
        *,
        adopted: bool,
        deadline: float | None,
        description: str | None,
        event: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ended job's XCom value (and item stats, if asked); a cancelled job adopted by a retry is replaced."""
        if adopted and not followed_from and job.classify(self.policy) is JobStatus.CANCELLED:
            self.log.warning(
                "Job %s, adopted from an earlier try of this task instance, was cancelled (clearing a running "
                "task cancels the earlier try's job); starting a job of this try's own",
                job.id,
            )
            description = description or self._description(context)
            return self._create_unless_running(context, description, deadline, None, waited_for=job.id)
        value = self._finish(job, followed_from)
        return self.item_check.finish(
            job,
            value,
            event=event,
            timeout_error=AISearchJobTimeoutError,
            interval=self.poll_interval,
            deadline=deadline,
        )

    def _defer(
        self,
        watch: JobWatch,
        phase: str,
        *,
        owned: bool,
        adopted: bool,
        deadline: float | None,
        description: str | None,
    ) -> None:
        """Go on waiting for ``watch``'s job in the triggerer; returns (without deferring) only when time is up."""
        remaining = None if deadline is None else deadline - time.time()
        if remaining is not None and remaining <= 0:
            return
        self._warn_fast_polling(self.poll_interval)
        self.defer(
            trigger=self._trigger(
                watch,
                self.poll_interval,
                remaining,
                cancel_on_kill=owned,
                on_superseded="follow" if phase == _IDLE else None,
                items=phase == _JOB,
            ),
            method_name="execute_complete",
            kwargs={
                "phase": phase,
                "job_id": watch.job_id,
                "owned": owned,
                "adopted": adopted,
                "deadline": deadline,
                "description": description,
            },
            # A backstop only: the trigger reports the timeout itself after one last poll.
            timeout=None if remaining is None else timedelta(seconds=remaining + self.poll_interval + 60),
        )

    def _timeout_error(self, job_id: str, what: str = "") -> AISearchJobTimeoutError:
        return AISearchJobTimeoutError(
            f"AI Search job {job_id!r} on instance {self.instance_id!r} was still running after "
            f"timeout={self.timeout:g} s{what}"
        )

    def _timed_out(self, job_id: str, owned: bool) -> AISearchJobTimeoutError:
        """The wait for our job ran out: cancel it if this task instance started it (and may)."""
        error = self._timeout_error(job_id)
        if owned and self.cancel_on_timeout and self._cancel_if_running(job_id):
            error = AISearchJobTimeoutError(f"{error.message}; the job was cancelled (cancel_on_timeout=True)")
        return error

    # -- finding or creating -----------------------------------------------------------------

    def _wait_until_idle(self, running: Job, deadline: float | None, description: str) -> None:
        """Wait until the running job (or whatever superseded it) has ended; its outcome does not matter."""
        watch = JobWatch(self.hook.api, self.instance_id, running.id, namespace=self.namespace)
        if self.deferrable:
            self._defer(watch, _IDLE, owned=False, adopted=False, deadline=deadline, description=description)
        result = self._wait_for_end(watch, self.poll_interval, deadline)  # (one last poll when time is up)
        if result is None:
            raise self._timeout_error(watch.job_id, " (if_running='wait')")
        self.log.info("Job %s has ended (%s); creating a new one", result.job.id, result.status.value)

    def _description(self, context: Context) -> str:
        """The description to send: the operator's, or the default one (also when it rendered empty)."""
        return self.description or default_description(context)

    def _create_unless_running(
        self, context: Context, description: str, deadline: float | None, running: Job | None, *, waited_for: str = ""
    ) -> dict[str, Any]:
        """
        Apply ``if_running`` to ``running`` and start this task's job: the one place for both the worker and
        the resumed deferred task. ``waited_for``: a wait for that job just ended, so list again before the
        POST. A job found running then, or before a cooldown retry, gets ``if_running`` applied again.
        """
        create = SafeCreate(
            self.hook,
            self.instance_id,
            self.namespace,
            self.cooldown_timeout,
            self.ambiguity_recheck_delay,
            self.log,
            yield_to_running=self.if_running != "supersede",  # it lists again, and hands back a Busy
        )
        while True:
            if running is not None:
                self.log.info("Job %s is running on %s (if_running=%r)", running.id, self.instance_id, self.if_running)
                if self.if_running == "reuse":
                    return self._started(
                        context, running, owned=False, adopted=False, deadline=deadline, description=description
                    )
                if self.if_running == "fail":
                    raise AISearchError(
                        f"Job {running.id!r} is already running on instance {self.instance_id!r} and if_running='fail'"
                    )
                if self.if_running == "wait":
                    self._wait_until_idle(running, deadline, description)  # (deferrable: resumes in execute_complete)
                    waited_for = running.id
            if waited_for and self.wait_for_completion and deadline is not None and time.time() >= deadline:
                raise AISearchJobTimeoutError(  # nobody would wait for a job started now
                    f"timeout={self.timeout:g} s passed while waiting for job {waited_for!r} on instance "
                    f"{self.instance_id!r}; no job was started"
                )
            found = create.create(description, list_first=bool(waited_for))
            if not isinstance(found, Busy):
                return self._started(
                    context, found, owned=True, adopted=False, deadline=deadline, description=description
                )
            running, waited_for = found.job, ""

    # -- cancelling ----------------------------------------------------------------------------

    def _cancel_if_running(self, job_id: str) -> bool:
        """Cancel ``job_id`` if it still runs; whether it was cancelled. Errors are logged, never raised."""
        try:
            job = self.hook.get_job(self.instance_id, job_id, namespace=self.namespace)
            if not job.is_running:
                return False
            self.hook.cancel_job(self.instance_id, job_id, namespace=self.namespace)
        except AISearchError as exc:
            if not is_already_ended(exc):  # else it ended between the GET and the PATCH: nothing to cancel
                self.log.warning("Could not cancel job %s: %s", job_id, exc)
            return False
        self.log.info("Cancelled job %s", job_id)
        return True

    def on_kill(self) -> None:
        """Cancel the job this task instance started (never one reused with ``if_running``) if it still runs."""
        if self._created_job_id is not None:
            self._cancel_if_running(self._created_job_id)
