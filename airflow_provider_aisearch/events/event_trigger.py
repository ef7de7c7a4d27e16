"""AISearchJobEventTrigger: event-driven DAGs, one asset event per indexing job that ends.

An ``AssetWatcher`` runs this trigger in the triggerer (Airflow 3.0+). It reads the instance's
newest jobs through the shared poller (:mod:`airflow_provider_aisearch.waiting.polling`: with job triggers
waiting on the same instance and settings, one list request per interval for all of them) and yields
one event per job that ended after it began watching, whoever started the job (Airflow, the
dashboard, wrangler, or Cloudflare's own scheduled sync). Which jobs were already considered is the
:class:`~airflow_provider_aisearch.events.watermark.Watermark`:

* **Airflow 3.3+**: kept in the watched asset's state store (``asset_state_store``, injected by the
  triggerer), so a rebuilt trigger (triggerer restart, failover to another triggerer, the DAG file
  parsed again) resumes where the last one stopped. It is written :data:`PERSIST_GRACE` seconds
  after the events it covers were yielded: the triggerer sends events to the metadata database about
  every second, so a triggerer that dies right after an event repeats it rather than dropping it;
  exactly once holds unless the triggerer dies within those seconds. Each event is recorded as the
  triggerer takes it (and written :data:`PERSIST_GRACE` seconds later), so that holds per event, not
  per round.
* **Airflow 3.0-3.2** (no state store; also when one trigger watches several assets): kept in the
  triggerer's memory, under the trigger's own identity (its classpath and kwargs, as Airflow tells
  triggers apart): two watchers never share it. A trigger rebuilt in the same triggerer process
  resumes; after a triggerer restart or failover the watcher takes a new baseline, so a job that
  ended while no triggerer watched (or whose event had not reached the database) is missed, and
  none is repeated.

When more jobs ended since the last round than the shared listing holds, the watcher reads the
older pages itself (:class:`~airflow_provider_aisearch.events.watch_pages.BoundaryScan`), a few per round.

Airflow 3.3's shared streams (``BaseEventTrigger.shared_stream_key``) are not used: they share a
poll among event triggers only, so job triggers on the same instance would poll separately; the
shared poller serves both.

On Airflow 2.11 the class imports (it is then a plain ``BaseTrigger``), but ``AssetWatcher`` does
not exist there: event-driven scheduling needs Airflow 3.0+.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_aisearch.api import ConnectionInfo, validate_instance_id, validate_namespace
from airflow_provider_aisearch.clients.async_client import load_connection_info
from airflow_provider_aisearch.clients.client_options import validate_timeout
from airflow_provider_aisearch.events.watch_pages import BoundaryScan, listing_time
from airflow_provider_aisearch.events.watcher_backoff import WatcherBackoff
from airflow_provider_aisearch.events.watermark import Watermark
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.jobs import TERMINAL_STATUSES, EndReasonPolicy, Job, JobStatus
from airflow_provider_aisearch.waiting.job_filter import SOURCES, JobFilter
from airflow_provider_aisearch.waiting.polling import MIN_ROUND_GAP, SharedPolls, format_seconds, shared_polls
from airflow_provider_aisearch.waiting.watch import validate_interval

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2.11: no event-driven scheduling; the class still imports
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]

__all__ = [
    "CLASSPATH",
    "EVENT_SOURCES",
    "EVENT_SPACING",
    "PERSIST_GRACE",
    "STATE_KEY_PREFIX",
    "AISearchJobEventTrigger",
]

#: The job sources the ``source`` filter accepts (the list operator's).
EVENT_SOURCES = SOURCES
#: Seconds between yielding events and writing the watermark that covers them to the asset state store.
PERSIST_GRACE = 5.0
#: Seconds between two events of one poll round (several jobs ended since the last one, e.g. after a
#: failover). Airflow 3.3.2's scheduler can leave an asset event that lands within milliseconds of
#: another, while it creates the run for the first, without any DAG run (seen in deploy-check scenario 9).
EVENT_SPACING = 1.0
#: The asset state store key's prefix (followed by a hash of what the watcher watches).
STATE_KEY_PREFIX = "aisearch_jobs_watermark"
#: The classpath the trigger serializes under: the module it lived in before ``events/`` (issue 22), which
#: ``airflow_provider_aisearch/event_trigger.py`` still re-exports. Airflow stores it with each asset watcher and
#: hashes it into the trigger's identity (and this module into the in-memory watermark's key), so it does not move.
CLASSPATH = "airflow_provider_aisearch.event_trigger.AISearchJobEventTrigger"

#: Watermarks of this triggerer process, by trigger identity (Airflow 3.0-3.2, or a store that failed).
_MEMORY: dict[str, dict[str, Any]] = {}


def _sorted_or_none(values: Iterable[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _ended_filter(source: str | None, statuses: Iterable[JobStatus | str] | None, policy: EndReasonPolicy) -> JobFilter:
    """The list operator's :class:`JobFilter`, for ended statuses only (a running job never fires)."""
    found = JobFilter.build(source=source, statuses=statuses, policy=policy)
    if found.statuses is not None:
        if not found.statuses:
            raise ValueError("statuses must not be empty (None: every ended status)")
        if not found.statuses <= TERMINAL_STATUSES:
            ended = ", ".join(sorted(s.value for s in TERMINAL_STATUSES))
            raise ValueError(
                f"statuses must hold ended statuses ({ended}); got {sorted(s.value for s in found.statuses)}"
            )
    return found


class AISearchJobEventTrigger(BaseEventTrigger):
    """
    Yield one event per indexing job of an instance that ends after the watcher began watching.

    For an ``AssetWatcher`` (Airflow 3.0+); see :mod:`airflow_provider_aisearch.events.event_trigger` for
    how each job fires once. The first successful listing is the baseline: jobs ended by then never
    fire. Transient API errors (5xx, 429, timeouts, resets, malformed answers) are logged and polled
    through; after a permanent one (auth, a missing instance or namespace, a bad connection) the
    watcher backs off (:mod:`airflow_provider_aisearch.events.watcher_backoff`: 5 s doubling to 60 s, one
    log line per step, the connection read again before each try) and fires again once it works.
    Every kwarg is JSON-safe and deterministic, as the trigger's identity (``hash(classpath,
    kwargs)``) must be.

    Event payload: the job's dict (as the sensor's XCom: ``id``, ``source``, ``description``,
    ``end_reason``, ``started_at``, ``ended_at``, ``last_seen_at``, ``status``) plus ``instance_id``
    and ``namespace``.

    :param instance_id: AI Search instance id.
    :param aisearch_conn_id: The Airflow connection id.
    :param namespace: Namespace (``None``: legacy un-namespaced paths).
    :param poll_interval: Seconds between list requests (> 0); stretched when the rate-limit budget runs low.
    :param source: Only jobs started by ``"user"`` or by the ``"schedule"`` (``None``: both).
    :param statuses: Only jobs that ended with one of these statuses (``None``: every ended status).
    :param success_end_reasons: Extra end reasons meaning success (as the sensor's).
    :param failure_end_reasons: Extra end reasons meaning failure.
    :param timeout: Request timeout: seconds, or ``[connect, read]``.
    :param max_retries: Retries per request after the first attempt.
    :param retry_backoff: First retry delay in seconds.
    """

    def __init__(
        self,
        *,
        instance_id: str,
        aisearch_conn_id: str = "aisearch_default",
        namespace: str | None = "default",
        poll_interval: float = 60.0,
        source: str | None = None,
        statuses: Sequence[JobStatus | str] | None = None,
        success_end_reasons: Sequence[str] | None = None,
        failure_end_reasons: Sequence[str] | None = None,
        timeout: float | Sequence[float] = (10.0, 60.0),
        max_retries: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        super().__init__()
        self.instance_id = validate_instance_id(instance_id)
        self.aisearch_conn_id = aisearch_conn_id
        self.namespace = None if namespace is None else validate_namespace(namespace)
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        self.policy = EndReasonPolicy.build(success_end_reasons, failure_end_reasons)
        self._filter = _ended_filter(source, statuses, self.policy)
        self.source = self._filter.source
        self.statuses = None if self._filter.statuses is None else sorted(s.value for s in self._filter.statuses)
        self.success_end_reasons = _sorted_or_none(success_end_reasons)
        self.failure_end_reasons = _sorted_or_none(failure_end_reasons)
        self.timeout = validate_timeout(tuple(timeout) if isinstance(timeout, list) else timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.state_key = self._state_key()
        self.memory_key = self._memory_key()
        self._saved_version = 0  # the newest watermark version written to the store

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-safe, deterministic kwargs (no clock, no run ids)."""
        own = type(self) is AISearchJobEventTrigger  # a subclass serializes under its own path
        return (
            CLASSPATH if own else f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "instance_id": self.instance_id,
                "aisearch_conn_id": self.aisearch_conn_id,
                "namespace": self.namespace,
                "poll_interval": self.poll_interval,
                "source": self.source,
                "statuses": None if self.statuses is None else list(self.statuses),
                "success_end_reasons": self.success_end_reasons,
                "failure_end_reasons": self.failure_end_reasons,
                "timeout": list(self.timeout) if isinstance(self.timeout, tuple) else self.timeout,
                "max_retries": self.max_retries,
                "retry_backoff": self.retry_backoff,
            },
        )

    def _state_key(self) -> str:
        """The watermark's key in the asset state store: a hash of what fires (not of how it polls)."""
        identity = {
            "conn": self.aisearch_conn_id,
            "namespace": self.namespace,
            "instance": self.instance_id,
            "source": self.source,
            "statuses": self.statuses,
            "success": self.success_end_reasons,
            "failure": self.failure_end_reasons,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
        return f"{STATE_KEY_PREFIX}:{digest}"

    def _memory_key(self) -> str:
        """
        The watermark's key in this process's memory: the trigger's own identity (classpath and
        kwargs, which Airflow hashes to tell triggers apart), so two watchers with the same filters
        (other poll settings, other assets) never share it.
        """
        digest = hashlib.sha256(json.dumps(self.serialize(), sort_keys=True).encode()).hexdigest()[:24]
        return f"{STATE_KEY_PREFIX}:trigger:{digest}"

    def fires_for(self, job: Job) -> bool:
        """Whether an ended ``job`` passes the ``source`` and ``statuses`` filters."""
        return self._filter.matches(job)

    def _event(self, job: Job) -> TriggerEvent:
        payload = job.to_dict(self.policy)
        payload.update(instance_id=self.instance_id, namespace=self.namespace)
        return TriggerEvent(payload)

    # -- the watermark's storage ------------------------------------------------------------

    def _store(self) -> Any:
        return getattr(self, "asset_state_store", None)

    async def _load(self) -> Watermark | None:
        """The stored watermark merged with this process's, or ``None`` (no baseline yet)."""
        marks = []
        key = self.state_key
        if self.memory_key in _MEMORY:
            marks.append(_MEMORY[self.memory_key])
        store = self._store()
        if store is not None:
            try:
                if hasattr(store, "aget"):  # Airflow 3.3.2+
                    stored = await store.aget(key, None)
                else:  # 3.3.0/3.3.1: only the blocking call, off the event loop
                    stored = await asyncio.to_thread(store.get, key, None)
            except ValueError as exc:  # one trigger watching several assets: no single store
                self.log.warning("Keeping the watermark in memory only (%s)", exc)
            else:
                if stored is not None:
                    marks.append(stored)
        loaded: Watermark | None = None
        for data in marks:
            try:
                mark = Watermark.from_json(data)
            except ValueError as exc:
                self.log.warning("Ignoring a stored watermark: %s", exc)
                continue
            loaded = mark if loaded is None else loaded.merge(mark)
        return loaded

    def _remember(self, mark: Watermark) -> dict[str, Any]:
        data = mark.to_json()
        _MEMORY[self.memory_key] = data
        return data

    async def _save(self, data: dict[str, Any], version: int, delay: float) -> None:
        """Write ``data`` to the asset state store after ``delay`` seconds, unless a newer version was written."""
        store = self._store()
        if store is None:
            return
        await asyncio.sleep(delay)
        if version <= self._saved_version:
            return
        try:
            if hasattr(store, "aset"):
                await store.aset(self.state_key, data)
            else:
                await asyncio.to_thread(store.set, self.state_key, data)
        except ValueError as exc:
            self.log.warning("Keeping the watermark in memory only (%s)", exc)
            return
        except Exception:  # the next save writes a newer state; never end the watcher for this
            self.log.exception("Could not write the watermark to the asset state store")
            return
        self._saved_version = max(self._saved_version, version)

    # -- the watch ------------------------------------------------------------------------

    async def _connection(self, backoff: WatcherBackoff) -> ConnectionInfo:
        """The connection, read again after each permanent error; one that cannot be read is backed off the same way."""
        while True:
            try:
                info = await load_connection_info(self.aisearch_conn_id)
                info.require_secret()
                return info
            except Exception as exc:  # missing, or unusable: Airflow would re-create an ended watcher at once
                step = await backoff.failed(time.time(), self._store())
                self.log.error(
                    "Could not read connection %r: %s; %s", self.aisearch_conn_id, exc, backoff.describe(step)
                )
                await asyncio.sleep(step)

    def _polls(self, info: ConnectionInfo) -> AbstractAsyncContextManager[SharedPolls]:
        """Membership of the shared poller for this connection's credential."""
        return shared_polls(
            info,
            instance_id=self.instance_id,
            job_id=None,
            namespace=self.namespace,
            interval=self.poll_interval,
            deadline=None,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            log_to=self.log,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until cancelled, yielding one event per newly ended job; a permanent error is backed off."""
        saves: set[asyncio.Task[None]] = set()
        version = 0

        def save_later(mark: Watermark, delay: float) -> None:
            nonlocal version
            version += 1
            task = asyncio.get_running_loop().create_task(self._save(self._remember(mark), version, delay))
            saves.add(task)
            task.add_done_callback(saves.discard)

        try:
            backoff = WatcherBackoff.for_watcher(self.memory_key)  # a re-created trigger goes on with it
            backoff.take_over()
            await backoff.wait_turn(self.log, f"Listing jobs of instance {self.instance_id!r}")
            info = await self._connection(backoff)
            mark = await self._load()
            async with AsyncExitStack() as polls:
                source = await polls.enter_async_context(self._polls(info))
                self.log.info(
                    "Watching instance %r for jobs that end%s: polling every %s s%s",
                    self.instance_id,
                    "" if self.statuses is None else f" {'/'.join(self.statuses)}",
                    format_seconds(self.poll_interval),
                    " (resuming from the stored watermark)" if mark is not None else "",
                )
                not_before = time.time() - self.poll_interval  # a listing this fresh serves the first poll
                scan = BoundaryScan(self.instance_id, self.log)
                while True:
                    if backoff.failures:  # after a permanent error: the connection may have been fixed since
                        await asyncio.sleep(max(0.0, not_before - time.time()))
                        fresh = await self._connection(backoff)
                        if fresh != info:  # e.g. a rotated token: join the poller of the new credential
                            await polls.aclose()
                            info, source = fresh, await polls.enter_async_context(self._polls(fresh))
                    listing = await source.next_listing(not_before, None)
                    if listing.error is None and mark is not None:  # on to the jobs already considered
                        mark.limit(listing_time(listing))  # (a floor stored past the API's time heals)
                        listing = await scan.extend(source, listing, mark.known)
                    if listing.error is None and (failures := await backoff.succeeded(self._store())):
                        self.log.info(
                            "Listing jobs of instance %r works again, after %d failure(s)", self.instance_id, failures
                        )
                    if listing.error is not None:
                        error = listing.error
                        if isinstance(error, AISearchError) and error.transient:
                            self.log.warning(
                                "Could not list jobs of instance %r (will poll again): %s", self.instance_id, error
                            )
                        else:  # permanent: back off rather than end (Airflow would re-create the trigger)
                            step = await backoff.failed(time.time(), self._store())
                            self.log.error(
                                "Could not list jobs of instance %r: %s; %s",
                                self.instance_id,
                                error,
                                backoff.describe(step),
                                exc_info=None if isinstance(error, AISearchError) else error,  # a bug: its traceback
                            )
                    elif mark is None:
                        mark = Watermark.baseline(listing.jobs or (), listing_time(listing))
                        self.log.info(
                            "Baseline: %d job(s) of instance %r had ended before watching; they never fire",
                            len(mark.seen),
                            self.instance_id,
                        )
                        save_later(mark, 0.0)  # no event rides on it
                    else:
                        bound, fired, unsaved = listing_time(listing), 0, False
                        for job in mark.new_jobs(listing.jobs or ()):
                            firing = self.fires_for(job)
                            if firing:
                                if fired:
                                    await asyncio.sleep(EVENT_SPACING)
                                fired += 1
                                self.log.info("Job %s ended: %s", job.id, self.policy.explain(job))
                                yield self._event(job)
                            # Recorded once the triggerer took the event (it asks for the next one only
                            # then): a cancel between two events repeats none of those it took.
                            mark.record(job, bound)
                            unsaved = not firing
                            if firing:
                                save_later(mark, PERSIST_GRACE)
                        if unsaved:
                            save_later(mark, PERSIST_GRACE)
                    # never without awaiting; while backing off, a step after the last failure's answer
                    interval = max(source.pace(self.poll_interval), MIN_ROUND_GAP, backoff.step)
                    not_before = max(listing.taken_at + interval, backoff.next_at)
        except AISearchError as exc:
            self.log.error("Stopped watching instance %r for ended jobs: %s", self.instance_id, exc)
            raise
        except Exception:  # never a silent stop
            self.log.exception("Stopped watching instance %r for ended jobs", self.instance_id)
            raise
        finally:
            for task in list(saves):  # not written: a rebuilt trigger repeats these rather than dropping them
                task.cancel()
