"""Operators: turn job lists into downstream work, and start indexing safely."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowSkipException, Asset, BaseOperator, conf

from airflow_provider_aisearch.api import (
    DESCRIPTION_MAX_LENGTH,
    JOBS_MAX_PER_PAGE,
    UNSET,
    ListOrder,
    _Unset,
    is_already_ended,
    validate_description,
    validate_instance_id,
)
from airflow_provider_aisearch.exceptions import (
    AISearchCooldownError,
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchJobTimeoutError,
    AISearchNotFoundError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.jobs import EndReasonPolicy, Job, JobStatus
from airflow_provider_aisearch.links import DASHBOARD_URL_XCOM_KEY, AISearchJobsLink, dashboard_url
from airflow_provider_aisearch.sensors import AISearchJobWaitMixin, end_reason_settings, validate_hook_params
from airflow_provider_aisearch.triggers import error_from_event, validate_event
from airflow_provider_aisearch.watch import SUCCESSOR_TOLERANCE, JobWatch, result_dict, validate_interval

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["IF_RUNNING", "AISearchCreateJobOperator", "AISearchListJobsOperator", "JobFilter"]

_SOURCES = ("user", "schedule")
#: What :class:`AISearchCreateJobOperator` does when a job is already running.
IF_RUNNING = ("reuse", "wait", "supersede", "fail")
#: Wait between create attempts during the cooldown when Cloudflare gives no ``Retry-After``.
COOLDOWN_WAIT = 30.0
#: Shortest wait between create attempts during the cooldown (even with ``Retry-After: 0``).
MIN_COOLDOWN_WAIT = 1.0
#: Slack for the difference between this machine's clock and Cloudflare's.
CLOCK_SKEW = timedelta(minutes=2)


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------


def parse_bound(name: str, value: Any) -> datetime | None:
    """
    A time bound: a datetime, or a string pendulum parses; naive values are UTC.

    :raises ValueError: naming the parameter.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            parsed = pendulum.parse(value.strip(), tz="UTC")
        except Exception as exc:
            raise ValueError(f"{name} is not a date/time: {value[:64]!r} ({exc})") from None
        if not isinstance(parsed, datetime):
            raise ValueError(f"{name} must be a date/time, got {value[:64]!r}")
        moment = parsed
    else:
        raise ValueError(f"{name} must be a datetime or a string, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _statuses(value: Iterable[JobStatus | str] | None) -> frozenset[JobStatus] | None:
    if value is None:
        return None
    if isinstance(value, (str, JobStatus)):
        value = [value]
    out = set()
    for item in value:
        try:
            out.add(JobStatus(item))
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise ValueError(f"statuses: {item!r} is not a job status ({allowed})") from None
    return frozenset(out)


@dataclass(frozen=True)
class JobFilter:
    """
    Which jobs a list keeps: every given condition must hold. ``*_after`` bounds are inclusive,
    ``*_before`` exclusive; ``ended_*`` bounds match only jobs that have ended.
    """

    source: str | None = None
    statuses: frozenset[JobStatus] | None = None
    policy: EndReasonPolicy = field(default_factory=EndReasonPolicy)
    started_after: datetime | None = None
    started_before: datetime | None = None
    ended_after: datetime | None = None
    ended_before: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        source: str | None = None,
        statuses: Iterable[JobStatus | str] | None = None,
        started_after: Any = None,
        started_before: Any = None,
        ended_after: Any = None,
        ended_before: Any = None,
        policy: EndReasonPolicy | None = None,
    ) -> JobFilter:
        """:raises ValueError: naming the bad parameter."""
        if source in (None, ""):
            source = None
        elif source not in _SOURCES:
            raise ValueError(f"source must be 'user', 'schedule' or None, got {source!r}")
        return cls(
            source=source,
            statuses=_statuses(statuses),
            policy=policy or EndReasonPolicy(),
            started_after=parse_bound("started_after", started_after),
            started_before=parse_bound("started_before", started_before),
            ended_after=parse_bound("ended_after", ended_after),
            ended_before=parse_bound("ended_before", ended_before),
        )

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes every condition."""
        if self.source is not None and job.source != self.source:
            return False
        if self.statuses is not None and job.classify(self.policy) not in self.statuses:
            return False
        if not _within(job.started_at, self.started_after, self.started_before):
            return False
        return _within(job.ended_at, self.ended_after, self.ended_before)

    def older_cannot_match(self, started_at: datetime) -> bool:
        """In a newest-first list, whether jobs started before ``started_at`` can no longer match."""
        if self.started_after is not None and started_at < self.started_after:
            return True
        # Jobs of one instance do not overlap (a new job ends the running one), so every older job
        # ended before this one started.
        return self.ended_after is not None and started_at + SUCCESSOR_TOLERANCE < self.ended_after

    def newer_cannot_match(self, started_at: datetime) -> bool:
        """In an oldest-first list, whether jobs started at or after ``started_at`` can no longer match."""
        bounds = [b for b in (self.started_before, self.ended_before) if b is not None]
        return bool(bounds) and started_at >= min(bounds)


def _within(value: datetime | None, after: datetime | None, before: datetime | None) -> bool:
    if after is None and before is None:
        return True
    if value is None:
        return False
    return (after is None or value >= after) and (before is None or value < before)


def _newest_first_key(job: Job) -> tuple[bool, datetime]:
    return (job.started_at is not None, job.started_at or datetime.min.replace(tzinfo=timezone.utc))


class AISearchListJobsOperator(BaseOperator):
    """
    List an instance's indexing jobs and return those matching every filter, newest first.

    The return value feeds ``.expand()`` directly (for example
    ``AISearchJobSensor.partial(...).expand(job_id=list_task.output)`` with ``ids_only=True``).
    Each job is returned once, even when jobs start while the pages are read. Paging stops between
    pages as soon as no later page can match, once every job read proves the list ordered by
    ``started_at`` (see :class:`~airflow_provider_aisearch.api.ListOrder`: the order is checked, never
    assumed); a list with no proven order is read to its end. With ``outlets`` holding an ``Asset``,
    each run that found jobs attaches ``{"job_ids": [...], "instance_id": ..., "namespace": ...}`` to the asset
    event's ``extra``; combine with ``skip_if_empty=True`` so that runs finding nothing emit no event.

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
        self.statuses = None if statuses is None else sorted(s.value for s in _statuses(statuses) or ())
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
        matched.sort(key=_newest_first_key, reverse=True)
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


# --------------------------------------------------------------------------------------------
# Creating
# --------------------------------------------------------------------------------------------

#: Key under which the create operator keeps its job id in the task state store (Airflow 3.3+).
STATE_STORE_KEY = "aisearch_job_id"
#: Room left in a default description for ``:try<n>`` (try numbers up to 999,999).
_TRY_SUFFIX_ROOM = len(":try") + 6
#: ``execute_complete`` phases: waiting for someone else's job to end (``if_running="wait"``), or for ours.
_IDLE, _JOB = "idle", "job"


def _task_instance_prefix(context: Context) -> str:
    """``airflow:<dag>:<task>[<map index>]:<run id>``, shortened (ending in its hash) to leave room for ``:try<n>``."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    mapped = f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else ""
    text = f"airflow:{ti.dag_id}:{ti.task_id}{mapped}:{ti.run_id}"
    room = DESCRIPTION_MAX_LENGTH - _TRY_SUFFIX_ROOM
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text[: room - 17] + "~" + digest


def default_description(context: Context) -> str:
    """
    ``airflow:<dag>:<task>[<map index>]:<run id>:try<n>``, at most 255 characters.

    A long task-instance part is shortened to end in its hash, and every try of one task instance
    shares everything before ``:try<n>``: that is how a retry recognises the job an earlier try started.
    """
    return f"{_task_instance_prefix(context)}:try{context['ti'].try_number}"


def _earlier_try_number(description: str | None, prefix: str, try_number: int) -> int | None:
    """The try that wrote ``description`` (a default one with ``prefix``), if it is earlier than ``try_number``."""
    if description is None or not description.startswith(prefix + ":try"):
        return None
    number = description[len(prefix) + len(":try") :]
    if not number.isdigit() or int(number) >= try_number:
        return None
    return int(number)


def _newest_running(jobs: Iterable[Job]) -> Job | None:
    running = [j for j in jobs if j.is_running]
    return max(running, key=_newest_first_key) if running else None


class AISearchCreateJobOperator(AISearchJobWaitMixin, BaseOperator):
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
    (``Retry-After``, else 30 s) and retries until ``cooldown_timeout``. An ambiguous create failure
    is resolved by finding the job by its ``description``, so one task try never starts two jobs.

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
    """

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
        )
        self._created_job_id: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Adopt an earlier try's running job, or apply ``if_running`` and start one; optionally wait."""
        description = self.description or default_description(context)
        validate_description(description)
        hook = self.hook
        where = hook.api.path(self.instance_id, namespace=self.namespace)  # validate before any request
        deadline = None if self.timeout is None else time.time() + self.timeout
        self.log.info("Starting an indexing job on %s with description %r", where, description)
        jobs = hook.run(hook.api.newest_jobs(self.instance_id, namespace=self.namespace))
        earlier = self._earlier_try_job(context, jobs)
        if earlier is not None:
            self.log.info(
                "Job %s, started by an earlier try of this task instance, is still running: "
                "adopting it (if_running does not apply)",
                earlier.id,
            )
            return self._started(context, earlier, owned=True, adopted=True, deadline=deadline, description=description)
        running = _newest_running(jobs)
        if running is not None:
            self.log.info(
                "Job %s is already running on instance %s (if_running=%r)",
                running.id,
                self.instance_id,
                self.if_running,
            )
            if self.if_running == "reuse":
                return self._started(
                    context, running, owned=False, adopted=False, deadline=deadline, description=description
                )
            if self.if_running == "fail":
                raise AISearchError(
                    f"Job {running.id!r} is already running on instance {self.instance_id!r} and if_running='fail'"
                )
            if self.if_running == "wait":
                self._wait_until_idle(running, deadline, description)
        job = self._create(description)
        return self._started(context, job, owned=True, adopted=False, deadline=deadline, description=description)

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
            description = description or self.description or default_description(context)
            job = self._create(description)
            return self._started(context, job, owned=True, adopted=False, deadline=deadline, description=description)
        job_id = job_id or event["job_id"]
        if owned:
            self._created_job_id = job_id
        if event["status"] == "timeout":
            raise self._timed_out(job_id, owned)
        if event["status"] == "error":
            raise error_from_event(event)
        return self._outcome(
            context,
            Job.from_dict(event["job"]),
            event.get("followed_from", []),
            adopted=adopted,
            deadline=deadline,
            description=description,
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
            self._store_job_id(context, job.id)
        ti = context["ti"]
        ti.xcom_push(key="job_id", value=job.id)
        ti.xcom_push(
            key=DASHBOARD_URL_XCOM_KEY, value=dashboard_url(self.hook.conn_info.account_id or "", self.instance_id)
        )
        if not self.wait_for_completion:
            return result_dict(job, [], self.policy)
        watch = self._new_watch(job.id)
        if self.deferrable:
            remaining = None if deadline is None else deadline - time.time()
            if remaining is not None and remaining <= 0:
                raise self._timed_out(job.id, owned)
            self._defer(
                watch,
                remaining,
                _JOB,
                job_id=job.id,
                owned=owned,
                adopted=adopted,
                deadline=deadline,
                description=description,
            )
        result = self._wait_for_end(watch, self.poll_interval, deadline)
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
    ) -> dict[str, Any]:
        """The ended job's XCom value; a cancelled job adopted from an earlier try is replaced, once."""
        if adopted and not followed_from and job.classify(self.policy) is JobStatus.CANCELLED:
            self.log.warning(
                "Job %s, adopted from an earlier try of this task instance, was cancelled (clearing a running "
                "task cancels the earlier try's job); starting a job of this try's own",
                job.id,
            )
            description = description or self.description or default_description(context)
            new = self._create(description)
            return self._started(context, new, owned=True, adopted=False, deadline=deadline, description=description)
        return self._finish(job, followed_from)

    def _defer(
        self,
        watch: JobWatch,
        remaining: float | None,
        phase: str,
        *,
        job_id: str,
        owned: bool,
        adopted: bool,
        deadline: float | None,
        description: str | None,
    ) -> None:
        self._warn_fast_polling(self.poll_interval)
        self.defer(
            trigger=self._trigger(
                watch,
                self.poll_interval,
                remaining,
                cancel_on_kill=owned,
                on_superseded="follow" if phase == _IDLE else None,
            ),
            method_name="execute_complete",
            kwargs={
                "phase": phase,
                "job_id": job_id,
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

    def _earlier_try_job(self, context: Context, jobs: Sequence[Job]) -> Job | None:
        """A running job an earlier try of this task instance started (task state store, or default description)."""
        stored = self._stored_job_id(context)
        running = sorted((j for j in jobs if j.is_running), key=_newest_first_key, reverse=True)
        for job in running:
            if stored is not None and job.id == stored:
                return job
        if self.description is None:
            prefix = _task_instance_prefix(context)
            try_number = context["ti"].try_number
            for job in running:
                if _earlier_try_number(job.description, prefix, try_number) is not None:
                    return job
        if stored is not None and stored not in {j.id for j in jobs}:
            try:  # not among the newest jobs listed: look it up
                job = self.hook.get_job(self.instance_id, stored, namespace=self.namespace)
            except AISearchNotFoundError:
                return None
            return job if job.is_running else None
        return None

    def _stored_job_id(self, context: Context) -> str | None:
        store = context.get("task_state_store")
        if store is None:
            return None
        try:
            value = store.get(STATE_STORE_KEY)
        except Exception as exc:  # the store is an aid, never a reason to fail
            self.log.warning("Could not read the task state store: %s", exc)
            return None
        return value if isinstance(value, str) and value else None

    def _store_job_id(self, context: Context, job_id: str) -> None:
        store = context.get("task_state_store")
        if store is None:
            return
        try:
            store.set(STATE_STORE_KEY, job_id)
        except Exception as exc:
            self.log.warning("Could not keep job id %s in the task state store: %s", job_id, exc)

    def _wait_until_idle(self, running: Job, deadline: float | None, description: str) -> None:
        """Wait until the running job (or whatever superseded it) has ended; its outcome does not matter."""
        watch = JobWatch(self.hook.api, self.instance_id, running.id, namespace=self.namespace)
        if self.deferrable:
            remaining = None if deadline is None else deadline - time.time()
            if remaining is None or remaining > 0:
                self._defer(
                    watch,
                    remaining,
                    _IDLE,
                    job_id=running.id,
                    owned=False,
                    adopted=False,
                    deadline=deadline,
                    description=description,
                )
        result = self._wait_for_end(watch, self.poll_interval, deadline)  # (one last poll when time is up)
        if result is None:
            raise self._timeout_error(watch.job_id, " (if_running='wait')")
        self.log.info("Job %s has ended (%s); creating a new one", result.job.id, result.status.value)

    def _create(self, description: str) -> Job:
        """POST through the cooldown; resolve ambiguous failures by description, never creating twice."""
        deadline = time.monotonic() + self.cooldown_timeout
        sent_at = time.time()  # (wall clock) any job of ours started after this
        maybe_created: AISearchCreateAmbiguousError | None = None
        ambiguous_rounds = 0
        api = self.hook.api
        api.deadline = time.time() + self.cooldown_timeout  # the hook's own retry waits stay inside it
        try:
            while True:
                try:
                    return self.hook.create_job(self.instance_id, description=description, namespace=self.namespace)
                except AISearchCooldownError as exc:
                    if maybe_created is not None:
                        # The job an earlier, ambiguous POST of ours started may be what holds the cooldown.
                        job, _ = self._find_by_description(description, sent_at)
                        if job is not None:
                            return job
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if maybe_created is not None:
                            raise maybe_created from None
                        raise AISearchCooldownError(
                            f"Instance {self.instance_id!r} was still in its sync cooldown after "
                            f"cooldown_timeout={self.cooldown_timeout:g} s: {exc.message}",
                            status_code=exc.status_code,
                            errors=exc.errors,
                            method=exc.method,
                            path=exc.path,
                        ) from None
                    wait = exc.retry_after if exc.retry_after is not None else COOLDOWN_WAIT
                    wait = min(max(wait, MIN_COOLDOWN_WAIT), remaining)
                    self.log.info("Instance %s is in its sync cooldown; trying again in %.1f s", self.instance_id, wait)
                    time.sleep(wait)
                except AISearchCreateAmbiguousError as exc:
                    self.log.warning("%s; looking for the job by its description", exc.message)
                    job, covered = self._find_by_description(description, sent_at)
                    if job is not None:
                        self.log.info("Found job %s started by the ambiguous request", job.id)
                        return job
                    ambiguous_rounds += 1
                    if (
                        not covered
                        or ambiguous_rounds > self.hook.retry_policy.max_retries
                        or time.monotonic() >= deadline
                    ):
                        # Absence is not proven (the listing does not reach back to our POST), or the
                        # retry budget is spent: raising is safer than risking a second job.
                        raise
                    maybe_created = exc
                    self.log.info("No job has description %r: the create did not happen; sending it again", description)
        finally:
            api.deadline = None

    def _find_by_description(self, description: str, since: float) -> tuple[Job | None, bool]:
        """
        The job with ``description`` started after ``since`` (epoch seconds, less clock-skew slack),
        and whether the listing reaches back before ``since`` (so that absence means "not created").
        """
        earliest = datetime.fromtimestamp(since, tz=timezone.utc) - CLOCK_SKEW
        covered = False
        for attempt in range(2):
            jobs = self.hook.run(self.hook.api.newest_jobs(self.instance_id, namespace=self.namespace))
            mine = [
                j for j in jobs if j.description == description and (j.started_at is None or j.started_at >= earliest)
            ]
            if mine:
                return max(mine, key=_newest_first_key), True
            covered = len(jobs) < JOBS_MAX_PER_PAGE or any(
                j.started_at is not None and j.started_at < earliest for j in jobs
            )
            if attempt == 0:
                time.sleep(self.ambiguity_recheck_delay)
        return None, covered

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
