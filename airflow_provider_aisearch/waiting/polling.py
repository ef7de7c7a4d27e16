"""Where a waiting trigger's job states come from: its own GETs, or one listing shared by many.

In the triggerer, every :class:`~airflow_provider_aisearch.triggers.AISearchJobTrigger` waiting on
jobs of the same instance (same base URL, account, credential, namespace, instance and request
settings) in one event loop shares a :class:`SharedJobPoller`. The poller sends one list request
per poll interval (newest jobs first, more pages only when waited-on jobs are missing from the
first) and hands the listing to every trigger that is due, or would be due before the next round
(so triggers of different intervals share rounds). A trigger whose job is not in the listing falls
back to its own GET through :class:`~airflow_provider_aisearch.waiting.watch.JobWatch`, so the outcome
rules stay in one place. The poller starts with its first waiter and stops, closing its HTTP
client, when its last waiter leaves. Its retry and rate-limit lines go to the log of each waiter,
and each waiter's errors name its own connection id. Rounds are at least :data:`MIN_ROUND_GAP`
apart and every round awaits, so no interval can starve the event loop.

:class:`OwnPolls` is the unshared source: it only waits, and every poll is the trigger's own GET.
Both sources answer :meth:`next_listing` the same way, so the trigger has one loop.

A waiter may wait on no job (``job_id=None``): an event watcher
(:class:`~airflow_provider_aisearch.events.event_trigger.AISearchJobEventTrigger`) reads every listing
for newly ended jobs; it is served by the same rounds, and asks for no page beyond the first (it
reads further pages itself when it must: :mod:`~airflow_provider_aisearch.events.watch_pages`).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_aisearch.api import UNSET, Backoff, ConnectionInfo, JobsAPI, Plan, _Unset, run_async
from airflow_provider_aisearch.clients.async_client import AISearchAsyncClient
from airflow_provider_aisearch.clients.client_options import log_backoff
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.instances import Item
from airflow_provider_aisearch.models.jobs import Job

__all__ = [
    "MIN_ROUND_GAP",
    "Listing",
    "OwnPolls",
    "SharedJobPoller",
    "SharedPolls",
    "active_pollers",
    "format_seconds",
    "shared_polls",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Most list pages one shared poll reads while looking for waited-on jobs (2,000 jobs).
MAX_SCAN_PAGES = 40
#: A waiter due within this share of its interval after a listing was taken is served by it.
COALESCE_FRACTION = 0.1
#: Shortest time from one poll round to the next (shared list request, or a trigger's own poll),
#: whatever the interval: every round awaits, so no interval can starve the triggerer's event loop.
MIN_ROUND_GAP = 0.01


def format_seconds(seconds: float) -> str:
    """Seconds for a log line: whole seconds from 10 s up, else two significant digits (``1.2``, ``0.05``)."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.2g}"


def relabel(text: str, conn_id: str, waiter_conn_id: str) -> str:
    """``text`` naming ``waiter_conn_id`` where it names the shared client's ``conn_id``."""
    if conn_id == waiter_conn_id:
        return text
    return text.replace(f"connection {conn_id!r}", f"connection {waiter_conn_id!r}")


def error_for_waiter(error: BaseException, conn_id: str, waiter_conn_id: str) -> BaseException:
    """A copy of a shared listing's error that names the waiter's own connection id (the same error if equal)."""
    if conn_id == waiter_conn_id or not isinstance(error, AISearchError):
        return error
    own = copy.copy(error)  # __reduce__ keeps every attribute (status, errors, transient...)
    own.message = relabel(error.message, conn_id, waiter_conn_id)
    own.args = (own.message,)
    return own


@dataclass(frozen=True)
class Listing:
    """
    What one poll round provides before the watched job is classified.

    :param taken_at: Epoch seconds when the list request was sent (or the wait ended).
    :param jobs: The newest jobs of the instance, or ``None`` (no listing: GET the job).
    :param error: Why the listing failed, if it did (the trigger handles it like a failed GET).
    :param server_time: The answer's ``Date`` (epoch seconds), if it sent one: the API's own time.
    """

    taken_at: float
    jobs: tuple[Job, ...] | None = None
    error: BaseException | None = None
    by_id: Mapping[str, Job] = field(default_factory=dict, repr=False)
    server_time: float | None = None
    #: The items of the waited-on keys a round listed (an items poller's listing), by key.
    items: Mapping[str, Item] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, taken_at: float, jobs: Sequence[Job], server_time: float | None = None) -> Listing:
        """A successful listing, indexed by job id (each of many waiters looks its job up)."""
        return cls(taken_at, tuple(jobs), by_id={j.id: j for j in jobs}, server_time=server_time)


class OwnPolls:
    """Unshared polling: wait until the poll is due, then the trigger GETs its own job."""

    def __init__(self, client: AISearchAsyncClient, deadline: float | None) -> None:
        self.client = client
        self.api: JobsAPI = client.api.with_deadline(deadline)

    async def next_listing(self, not_before: float, job_id: str) -> Listing:
        """Sleep until ``not_before`` (always suspending, even when it has passed); no listing."""
        await asyncio.sleep(max(0.0, not_before - time.time()))
        return Listing(time.time())

    def pace(self, interval: float) -> float:
        """The wait before the next poll: ``interval``, stretched when the rate-limit budget runs low."""
        return self.api.budget.pace(interval)

    async def run(self, plan: Plan[T]) -> T:
        """Drive a plan over the trigger's own client."""
        return await self.client.run(plan)


@dataclass(eq=False)
class _Waiter:
    job_id: str | None  # None: an event watcher, served by any round
    interval: float
    deadline: float | None
    conn_id: str = ""  # the waiter's own connection id (named in its errors)
    log: Any = None  # the waiter's own logger (its trigger's log)
    want_at: float = 0.0
    future: asyncio.Future[Listing] | None = None


class _WaitersLog:
    """The shared client's log: its retry and rate-limit lines go to the log of every waiter."""

    def __init__(self, poller: SharedJobPoller) -> None:
        self.poller = poller

    def _emit(self, level: str, msg: str, *args: Any) -> None:
        conn_id = self.poller.client.aisearch_conn_id
        for waiter in list(self.poller.waiters):
            own = tuple(relabel(a, conn_id, waiter.conn_id) if isinstance(a, str) else a for a in args)
            getattr(waiter.log or log, level)(msg, *own)

    def debug(self, msg: str, *args: Any) -> None:
        """Log at DEBUG to every waiter (a request held again by the rate-limit budget)."""
        self._emit("debug", msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        """Log at INFO to every waiter."""
        self._emit("info", msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        """Log at WARNING to every waiter."""
        self._emit("warning", msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        """Log at ERROR to every waiter."""
        self._emit("error", msg, *args)


class SharedJobPoller:
    """
    One list request per poll interval for every trigger waiting on jobs of one instance.

    Created and stopped by :func:`shared_polls`; not meant to be built directly.

    :param key: The registry key (event loop and settings).
    :param client: An opened async client, owned (and closed) by the poller.
    :param instance_id: AI Search instance id.
    :param namespace: Namespace as the triggers gave it.
    """

    def __init__(
        self, key: tuple[Any, ...], client: AISearchAsyncClient, instance_id: str, namespace: str | _Unset | None
    ) -> None:
        self.key = key
        self.client = client
        self.instance_id = instance_id
        self.namespace = namespace
        self.waiters: list[_Waiter] = []
        #: The newest listing taken (served at once to a waiter that joins soon after it).
        self.latest: Listing | None = None
        #: No list round before this epoch time (the rate-limit budget is low).
        self.hold_until = 0.0
        #: While the budget is low: seconds between list rounds (else 0).
        self.round_gap = 0.0
        #: When the last list round was sent (the next one comes at least MIN_ROUND_GAP later).
        self.last_round_at = float("-inf")
        self._wake = asyncio.Event()
        self._sleeping_until = 0.0  # while the poll loop sleeps: when it will wake by itself
        self._task: asyncio.Task[None] | None = None
        self._stopped = False  # the poll loop has ended: no listing will come any more
        self._failure: BaseException | None = None  # why it ended, if it died

    def join(
        self,
        job_id: str | None,
        interval: float,
        deadline: float | None,
        *,
        conn_id: str | None = None,
        log: Any = None,
    ) -> _Waiter:
        """
        Register a waiter (starting the poll loop with the first one).

        :param conn_id: The waiter's connection id (default: the shared client's), named in its errors.
        :param log: The waiter's logger: its retry, rate-limit and error lines go there.
        """
        waiter = _Waiter(job_id, interval, deadline, conn_id or self.client.aisearch_conn_id, log)
        self.waiters.append(waiter)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"aisearch-poller-{self.instance_id}")
        return waiter

    def leave(self, waiter: _Waiter) -> None:
        """Unregister a waiter; the last one to leave stops the poller and unregisters it."""
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        if waiter.future is not None and not waiter.future.done():
            waiter.future.cancel()
        if not self.waiters:
            if _POLLERS.get(self.key) is self:
                del _POLLERS[self.key]  # a trigger joining from now on starts a new poller
            self._wake.set()  # the loop sees no waiters, closes the client and ends

    async def next_listing(self, waiter: _Waiter, not_before: float, job_id: str | None) -> Listing:
        """A listing sent at or after ``not_before`` (the newest one, if recent enough and it lists the job)."""
        waiter.job_id = job_id
        if self._stopped:  # it died (its waiters never all left): waiting would never end
            raise RuntimeError(f"the shared poller of {self.instance_id!r} stopped: {self._failure!r}")
        latest = self.latest
        if latest is not None and latest.taken_at >= not_before and (job_id is None or job_id in latest.by_id):
            await asyncio.sleep(0)  # served at once: still let the event loop run other tasks
            return latest
        waiter.want_at = not_before
        waiter.future = asyncio.get_running_loop().create_future()
        if not_before < self._sleeping_until:
            self._wake.set()  # due before the poller planned to wake
        try:
            return await waiter.future
        finally:
            waiter.future = None

    def _pending(self) -> list[_Waiter]:
        return [w for w in self.waiters if w.future is not None and not w.future.done()]

    def _due_at(self, waiter: _Waiter) -> float:
        due = max(waiter.want_at, self.hold_until)
        if waiter.deadline is not None:  # a round held for the budget still comes at a waiter's deadline
            due = min(due, max(waiter.want_at, waiter.deadline))
        return max(due, self.last_round_at + MIN_ROUND_GAP)  # whatever the intervals, the loop awaits

    def _serves(self, waiter: _Waiter, listing: Listing, want: set[str], next_round_in: float) -> bool:
        """Whether a round hands its listing to a pending waiter."""
        if waiter.job_id is not None and waiter.job_id not in want and waiter.job_id not in listing.by_id:
            return False  # it joined during the request and was not looked for: the next round
        early = COALESCE_FRACTION * waiter.interval
        if waiter.deadline is None or waiter.want_at < waiter.deadline:
            # A waiter due before the next round (the fastest waiter's interval from now) is served
            # now rather than costing a round of its own: waiters of different intervals share rounds.
            early = max(early, next_round_in)
        return waiter.want_at <= listing.taken_at + early

    async def _run(self) -> None:
        try:
            while self.waiters:
                pending = self._pending()
                now = time.time()
                due = min((self._due_at(w) for w in pending), default=None)
                if due is None or due > now:
                    self._wake.clear()
                    self._sleeping_until = float("inf") if due is None else due
                    try:
                        await asyncio.wait_for(self._wake.wait(), None if due is None else due - now)
                    except asyncio.TimeoutError:
                        pass
                    self._sleeping_until = 0.0
                    continue
                await self._poll_once(now)
        except BaseException as exc:  # never leave a waiter hanging
            self._stopped, self._failure = True, exc
            for waiter in self._pending():
                assert waiter.future is not None
                if isinstance(exc, asyncio.CancelledError):
                    waiter.future.cancel()
                else:
                    waiter.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            log.exception("AI Search shared poller for %s stopped", self.instance_id)
        finally:
            self._stopped = True
            if _POLLERS.get(self.key) is self:
                del _POLLERS[self.key]
            await self.client.aclose()

    async def _take(self, api: JobsAPI, want: set[str], taken_at: float) -> Listing:
        """One round's listing (a subclass lists something else: ``waiting/item_polling.py``)."""
        # Pages are read, newest first, until every waited-on job was seen (usually page 1: an
        # instance runs one job at a time), up to MAX_SCAN_PAGES. A job further back is read
        # with its own GET; it has long ended, so its waiter is then done.
        jobs = await self.client.run(
            api.newest_jobs(self.instance_id, namespace=self.namespace, want=want, max_pages=MAX_SCAN_PAGES)
        )
        return Listing.of(taken_at, jobs, self.client.server_time)

    async def _poll_once(self, now: float) -> None:
        want = {w.job_id for w in self.waiters if w.job_id is not None}
        deadlines = [w.deadline for w in self._pending() if w.deadline is not None and w.want_at <= now]
        api = self.client.api.with_deadline(min(deadlines, default=None))
        taken_at = self.last_round_at = time.time()
        try:
            listing = await self._take(api, want, taken_at)
        except Exception as exc:  # delivered to each waiter, which handles it like its own failed poll
            listing = Listing(taken_at, error=exc)
        self.latest = listing
        next_round_in = min((w.interval for w in self.waiters), default=0.0)
        for waiter in self._pending():
            if self._serves(waiter, listing, want, next_round_in):
                assert waiter.future is not None
                waiter.future.set_result(listing)
        budget = self.client.api.budget
        if budget.is_low() and self.waiters:
            # Each waiter logs the slowdown itself (AISearchJobTrigger.run, through SharedPolls.pace).
            self.round_gap = budget.pace(next_round_in)
            self.hold_until = time.time() + self.round_gap
        else:
            self.round_gap = self.hold_until = 0.0


_POLLERS: dict[tuple[Any, ...], SharedJobPoller] = {}


def active_pollers() -> list[SharedJobPoller]:
    """The shared pollers of the running event loop (for tests and benchmarks)."""
    loop = asyncio.get_running_loop()
    return [p for key, p in _POLLERS.items() if key[0] is loop]


class SharedPolls:
    """One trigger's membership of a :class:`SharedJobPoller` (the source :func:`shared_polls` yields)."""

    def __init__(self, poller: SharedJobPoller, waiter: _Waiter, deadline: float | None) -> None:
        self.poller = poller
        self.waiter = waiter
        shared = poller.client.api
        info = shared.info
        if info.conn_id != waiter.conn_id:  # same credential, another connection id: its errors name its own
            info = dataclasses.replace(info, conn_id=waiter.conn_id)
        self.api: JobsAPI = JobsAPI(info, shared.policy, shared.namespace).with_deadline(deadline)

    async def next_listing(self, not_before: float, job_id: str | None) -> Listing:
        """The shared listing sent at or after ``not_before`` (its error names this waiter's connection)."""
        listing = await self.poller.next_listing(self.waiter, not_before, job_id)
        if listing.error is None:
            return listing
        own = error_for_waiter(listing.error, self.poller.client.aisearch_conn_id, self.waiter.conn_id)
        return listing if own is listing.error else dataclasses.replace(listing, error=own)

    def pace(self, interval: float) -> float:
        """``interval``, or the spacing of the poller's list rounds when the budget runs low, if longer."""
        return max(interval, self.poller.round_gap)

    async def run(self, plan: Plan[T]) -> T:
        """Drive a plan (a fallback GET) over the poller's client; its retry waits go to this waiter's log."""
        return await run_async(plan, self.poller.client._send, self._sleep)

    async def _sleep(self, backoff: Backoff) -> None:
        log_backoff(self.waiter.log or log, backoff)  # at its level, as every client logs it
        await asyncio.sleep(backoff.seconds)


@asynccontextmanager
async def shared_polls(
    info: ConnectionInfo,
    *,
    instance_id: str,
    job_id: str | None,
    namespace: str | _Unset | None = UNSET,
    interval: float,
    deadline: float | None,
    timeout: float | tuple[float, float],
    max_retries: int,
    retry_backoff: float,
    log_to: Any = None,
    poller_class: type[SharedJobPoller] | None = None,
) -> AsyncIterator[SharedPolls]:
    """
    Join the poller for this instance in the running event loop (starting one if needed).

    :param info: The trigger's connection, already read.
    :param instance_id: AI Search instance id.
    :param job_id: The job waited on (``None``: an event watcher, reading every listing).
    :param namespace: Namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param interval: The trigger's poll interval.
    :param deadline: The trigger's deadline (epoch seconds), if any.
    :param timeout: Request timeout (part of the key: only triggers with equal settings share).
    :param max_retries: Retries per request (part of the key).
    :param retry_backoff: First retry delay (part of the key).
    :param log_to: The trigger's logger: the shared rounds' retry, rate-limit and error lines for
        this waiter go there.
    :param poller_class: What the rounds list (default :class:`SharedJobPoller`, the jobs; part of the key).
    """
    loop = asyncio.get_running_loop()
    resolved = namespace if namespace is not UNSET else info.namespace
    credential = hashlib.sha256(f"{info.email or ''}\0{info.secret}".encode()).hexdigest()
    kind = poller_class or SharedJobPoller
    key: tuple[Any, ...] = (loop, info.base_url, info.account_id, resolved, instance_id, credential, timeout)
    key += (max_retries, retry_backoff) + ((kind,) if kind is not SharedJobPoller else ())
    poller = _POLLERS.get(key)
    if poller is None:
        client = AISearchAsyncClient(
            info.conn_id,
            namespace=namespace,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
        ).open(info)
        poller = _POLLERS[key] = kind(key, client, instance_id, namespace)
        client.log = _WaitersLog(poller)
    waiter = poller.join(job_id, interval, deadline, conn_id=info.conn_id, log=log_to)
    try:
        yield SharedPolls(poller, waiter, deadline)
    finally:
        poller.leave(waiter)
