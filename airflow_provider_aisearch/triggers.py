"""AISearchJobTrigger: wait on an indexing job in the triggerer, without blocking its event loop."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aisearch import exceptions
from airflow_provider_aisearch.api import is_already_ended
from airflow_provider_aisearch.clients.async_client import AISearchAsyncClient, load_connection_info
from airflow_provider_aisearch.clients.client_options import validate_timeout
from airflow_provider_aisearch.events.event_trigger import AISearchJobEventTrigger
from airflow_provider_aisearch.events.items_trigger import AISearchItemsTrigger, validate_items_event
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.jobs import EndReasonPolicy
from airflow_provider_aisearch.waiting.item_stats import items_pending, items_timeout_message, read_item_stats
from airflow_provider_aisearch.waiting.polling import MIN_ROUND_GAP, OwnPolls, SharedPolls, format_seconds, shared_polls
from airflow_provider_aisearch.waiting.quality import ended_well
from airflow_provider_aisearch.waiting.watch import JobWatch, PollResult, validate_interval, validate_on_superseded

__all__ = [
    "EVENT_STATUSES",
    "AISearchItemsTrigger",
    "AISearchJobEventTrigger",
    "AISearchJobTrigger",
    "validate_event",
    "validate_items_event",
]

#: The ``status`` values an event can carry. Exactly one event is yielded per run.
EVENT_STATUSES = frozenset({"done", "timeout", "error"})


def _error_info(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AISearchError):
        return {
            "type": type(exc).__name__,
            "status_code": exc.status_code,
            "errors": exc.errors,
            "transient": exc.transient,
        }
    return {"type": type(exc).__name__, "status_code": None, "errors": [], "transient": False}


def _interval_changed(interval: float, logged: float, configured: float) -> bool:
    """Whether the poll interval changed enough to log: by a quarter or more, or back to the configured one."""
    if interval == logged:
        return False
    return interval == configured or abs(interval - logged) >= 0.25 * logged


def validate_event(event: Any) -> dict[str, Any]:
    """
    Check a trigger event payload and return it.

    :raises AISearchError: the payload is missing, not a dict, or has an unknown status or bad fields.
    """
    if not isinstance(event, Mapping):
        raise AISearchError(f"AISearchJobTrigger sent an invalid event: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AISearchError(f"AISearchJobTrigger sent an event with unknown status {status!r}")
    if status == "done" and not isinstance(event.get("job"), Mapping):
        raise AISearchError("AISearchJobTrigger sent a 'done' event without a job")
    followed = event.get("followed_from", [])
    if not isinstance(followed, list) or not all(isinstance(i, str) for i in followed):
        raise AISearchError("AISearchJobTrigger sent an event with an invalid 'followed_from'")
    return dict(event)


def error_from_event(event: Mapping[str, Any]) -> AISearchError:
    """Rebuild the exception a trigger reported (same class as the poke path raises)."""
    info = event.get("error") or {}
    cls = getattr(exceptions, str(info.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, AISearchError)) or cls is exceptions.AISearchCreateAmbiguousError:
        cls = AISearchError
    transient = info.get("transient")
    return cls(
        str(event.get("message") or "AISearchJobTrigger failed"),
        status_code=info.get("status_code"),
        errors=info.get("errors") or [],
        transient=transient if isinstance(transient, bool) else None,
    )


class AISearchJobTrigger(BaseTrigger):
    """
    Poll an AI Search job until it ends, then yield exactly one event.

    Uses one HTTP connection for the whole wait, the same retry policy, end-reason
    classification and ``on_superseded`` handling as :class:`~airflow_provider_aisearch.sensors.AISearchJobSensor`
    (both drive :class:`~airflow_provider_aisearch.waiting.watch.JobWatch`). Transient API errors (those
    the retry policy retries: 5xx, 429, timeouts, resets, malformed answers) are logged and polled
    again; any other error (auth, not found, 400, 3xx, 405/409/422, a fatal transport failure)
    ends the wait at once with an ``error`` event. When ``deadline`` passes it polls one last
    time, then yields a ``timeout`` event. Its log says what it waits for, when the rate limit
    slows it down and why, and its errors (also when it shares polling with other triggers).

    Event payload: ``{"status": "done"|"timeout"|"error", "instance_id", "job_id", "job",
    "followed_from", "message", "error"}``, plus ``"items"`` (the item stats, or ``None``) when it
    read them, and ``"items_pending": True`` on a timeout while items were still in flight.

    :param instance_id: AI Search instance id.
    :param job_id: Job to wait on.
    :param aisearch_conn_id: The Airflow connection id.
    :param namespace: Namespace (``None``: legacy un-namespaced paths).
    :param poll_interval: Seconds between polls (> 0).
    :param deadline: Wall-clock epoch seconds after which the wait times out (``None``: never).
    :param on_superseded: ``"follow"``, ``"fail"`` or ``"succeed"``.
    :param success_end_reasons: Extra end reasons meaning success.
    :param failure_end_reasons: Extra end reasons meaning failure.
    :param followed_from: Superseded job ids already followed before deferring.
    :param timeout: Request timeout: seconds, or ``[connect, read]``.
    :param max_retries: Retries per request after the first attempt.
    :param retry_backoff: First retry delay in seconds.
    :param cancel_on_kill: Cancel ``job_id`` when a user kills the deferred task (Airflow 3.3+ calls
        :meth:`on_kill`); set by the create operator for a job it started, never for a reused one.
    :param share_polling: Share one list request per poll interval with every other trigger in this
        triggerer waiting on jobs of the same instance (see :mod:`airflow_provider_aisearch.waiting.polling`);
        ``False``: one GET of this job per poll interval, over its own connection.
    :param read_item_stats: When the job ended successfully, read the instance's item stats
        (:func:`~airflow_provider_aisearch.waiting.item_stats.read_item_stats`) into the event.
    :param wait_for_items: Read them every ``poll_interval`` until nothing is queued or running
        (until ``deadline``, or without one for
        :data:`~airflow_provider_aisearch.waiting.item_stats.DEFAULT_ITEMS_TIMEOUT`; then a ``timeout`` event).

    Polls slow down when Cloudflare reports the rate-limit budget running low
    (:meth:`~airflow_provider_aisearch.api.ratelimit.RateBudget.pace`).
    """

    def __init__(
        self,
        *,
        instance_id: str,
        job_id: str,
        aisearch_conn_id: str = "aisearch_default",
        namespace: str | None = "default",
        poll_interval: float = 60.0,
        deadline: float | None = None,
        on_superseded: str = "follow",
        success_end_reasons: Sequence[str] | None = None,
        failure_end_reasons: Sequence[str] | None = None,
        followed_from: Sequence[str] = (),
        timeout: float | Sequence[float] = (10.0, 60.0),
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        cancel_on_kill: bool = False,
        share_polling: bool = True,
        read_item_stats: bool = False,
        wait_for_items: bool = False,
    ) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.job_id = job_id
        self.aisearch_conn_id = aisearch_conn_id
        self.namespace = namespace
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.on_superseded = validate_on_superseded(on_superseded)
        self.success_end_reasons = None if success_end_reasons is None else list(success_end_reasons)
        self.failure_end_reasons = None if failure_end_reasons is None else list(failure_end_reasons)
        self.policy = EndReasonPolicy.build(self.success_end_reasons, self.failure_end_reasons)
        self.followed_from = list(followed_from)
        self.timeout = validate_timeout(tuple(timeout) if isinstance(timeout, list) else timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.cancel_on_kill = bool(cancel_on_kill)
        self.share_polling = bool(share_polling)
        self.read_item_stats = bool(read_item_stats or wait_for_items)
        self.wait_for_items = bool(wait_for_items)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-safe kwargs; rebuilding from them resumes the same wait."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "instance_id": self.instance_id,
                "job_id": self.job_id,
                "aisearch_conn_id": self.aisearch_conn_id,
                "namespace": self.namespace,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "on_superseded": self.on_superseded,
                "success_end_reasons": self.success_end_reasons,
                "failure_end_reasons": self.failure_end_reasons,
                "followed_from": list(self.followed_from),
                "timeout": list(self.timeout) if isinstance(self.timeout, tuple) else self.timeout,
                "max_retries": self.max_retries,
                "retry_backoff": self.retry_backoff,
                "cancel_on_kill": self.cancel_on_kill,
                "share_polling": self.share_polling,
                "read_item_stats": self.read_item_stats,
                "wait_for_items": self.wait_for_items,
            },
        )

    def _event(
        self,
        status: str,
        watch: JobWatch | None,
        result: PollResult | None,
        message: str,
        error: Any = None,
        **extra: Any,
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "instance_id": self.instance_id,
                "job_id": watch.job_id if watch else self.job_id,
                "job": result.job.to_dict() if result else None,
                "followed_from": list(watch.followed_from) if watch else list(self.followed_from),
                "message": message,
                "error": error,
                **extra,
            }
        )

    async def _done_event(self, source: OwnPolls | SharedPolls, watch: JobWatch, result: PollResult) -> TriggerEvent:
        """The ``done`` event; after a successful end, with the item stats (read, or waited on, here)."""
        message = f"job {result.job.id!r} is {result.status.value}"
        if not self.read_item_stats or not ended_well(result.status, self.on_superseded):
            return self._event("done", watch, result, message)
        try:
            stats = await source.run(
                read_item_stats(
                    source.api,
                    self.instance_id,
                    namespace=self.namespace,
                    wait=self.wait_for_items,
                    interval=self.poll_interval,
                    deadline=self.deadline,
                    log=self.log,
                )
            )
        except AISearchError as exc:  # not transient (those are read again): reading again cannot help
            self.log.error("Stopped reading the item stats of instance %r: %s", self.instance_id, exc)
            return self._event("error", watch, result, str(exc), _error_info(exc))
        items = None if stats is None else stats.to_dict()
        if items_pending(stats, self.wait_for_items):
            where = f"AI Search job {result.job.id!r} on instance {self.instance_id!r}"
            message = items_timeout_message(where, stats, unbounded=self.deadline is None)
            return self._event("timeout", watch, result, message, items=items, items_pending=True)
        return self._event("done", watch, result, message, items=items)

    @asynccontextmanager
    async def _polls(self) -> AsyncIterator[OwnPolls | SharedPolls]:
        """Where this wait's job states come from: a shared listing, or its own GETs."""
        info = await load_connection_info(self.aisearch_conn_id)
        if self.share_polling:
            async with shared_polls(
                info,
                instance_id=self.instance_id,
                job_id=self.job_id,
                namespace=self.namespace,
                interval=self.poll_interval,
                deadline=self.deadline,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_backoff=self.retry_backoff,
                log_to=self.log,
            ) as shared:
                yield shared
            return
        client = AISearchAsyncClient(
            self.aisearch_conn_id,
            namespace=self.namespace,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            log=self.log,
        ).open(info)
        try:
            yield OwnPolls(client, self.deadline)  # retry waits never run past the deadline
        finally:
            await client.aclose()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends, the deadline passes, or a non-transient error occurs."""
        watch: JobWatch | None = None
        result: PollResult | None = None
        try:
            async with self._polls() as source:
                watch = JobWatch(
                    source.api,
                    self.instance_id,
                    self.job_id,
                    namespace=self.namespace,
                    policy=self.policy,
                    on_superseded=self.on_superseded,
                    followed_from=self.followed_from,
                )
                self.log.info(
                    "Waiting for job %s on instance %r: polling every %s s%s",
                    self.job_id,
                    self.instance_id,
                    format_seconds(self.poll_interval),
                    " (list requests shared with the other waiters on this instance)" if self.share_polling else "",
                )
                not_before = time.time() - self.poll_interval  # a listing this fresh serves the first poll
                logged_interval = self.poll_interval
                while True:
                    listing = await source.next_listing(not_before, watch.job_id)
                    try:
                        if listing.error is not None:
                            # One error object is shared by every waiter: raise it with only this one's frames.
                            raise listing.error.with_traceback(None)
                        result = await source.run(watch.poll(listing.jobs, listing.by_id))
                    except AISearchError as exc:
                        if not exc.transient:  # the retry policy would not retry it: polling cannot help
                            self.log.error("Stopped waiting for job %s: %s", watch.job_id, exc)
                            yield self._event("error", watch, result, str(exc), _error_info(exc))
                            return
                        self.log.warning("Could not poll job %s (will poll again): %s", watch.job_id, exc)
                    else:
                        if result.done:
                            yield await self._done_event(source, watch, result)
                            return
                    now = time.time()
                    if self.deadline is not None and now >= self.deadline:
                        state = result.status.value if result else "unknown"
                        yield self._event(
                            "timeout",
                            watch,
                            result,
                            f"job {watch.job_id!r} on instance {self.instance_id!r} was still {state} "
                            "when the sensor's timeout passed",
                        )
                        return
                    interval = source.pace(self.poll_interval)
                    if _interval_changed(interval, logged_interval, self.poll_interval):
                        logged_interval = interval
                        if interval > self.poll_interval:
                            self.log.warning(
                                "Polling job %s every %s s instead of %s s: %s",
                                watch.job_id,
                                format_seconds(interval),
                                format_seconds(self.poll_interval),
                                source.api.budget.describe(),
                            )
                        else:
                            self.log.info("Polling job %s every %s s again", watch.job_id, format_seconds(interval))
                    # Polls one interval apart, start to start; never without awaiting, whatever the interval.
                    not_before = listing.taken_at + max(interval, MIN_ROUND_GAP)
                    if self.deadline is not None:
                        not_before = min(not_before, self.deadline)  # poll once more at the deadline
        except Exception as exc:  # never die silently: report it as an event
            self.log.exception("AISearchJobTrigger failed")
            yield self._event("error", watch, result, f"{type(exc).__name__}: {exc}", _error_info(exc))

    async def on_kill(self) -> None:
        """When a user kills the deferred task: cancel the job this task started, if it still runs."""
        if not self.cancel_on_kill:
            return
        async with AISearchAsyncClient(
            self.aisearch_conn_id,
            namespace=self.namespace,
            timeout=self.timeout,
            max_retries=0,
            log=self.log,
        ) as client:
            job = await client.run(client.api.get_job(self.instance_id, self.job_id))
            if job.is_running:
                try:
                    await client.run(client.api.cancel_job(self.instance_id, self.job_id))
                except AISearchError as exc:
                    if not is_already_ended(exc):
                        raise
                    return  # it ended between the GET and the PATCH: nothing left to cancel
                self.log.info("Cancelled job %s", self.job_id)
