"""WatcherBackoff: how an event watcher waits out a permanent error instead of ending.

A permanent error (a revoked or narrowed token: 401/403; a deleted instance or namespace: 404; a bad
connection: 400; a connection that cannot be read) used to end
:class:`~airflow_provider_aisearch.events.event_trigger.AISearchJobEventTrigger`. Airflow 3.3's triggerer
re-creates an asset watcher's trigger that ended (its row stays assigned to the triggerer), so a revoked
token meant one refused request every few seconds, forever. The watcher now keeps watching:

* after the n-th permanent error in a row it waits ``min(MAX_WAIT, FIRST_WAIT * 2 ** (n - 1))`` seconds
  (5, 10, 20, 40, 60, 60, ... s; never less than its poll interval or the rate-limit budget's pace)
  before the next request: after the first minute at most one request a minute. The step is
  :class:`~airflow_provider_aisearch.api.RetryPolicy`'s, without its jitter (which would shorten it);
* it logs the error once per step (one line per refused request), and once when listing works again;
* it re-reads its connection before each new try, so a token rotated in the connection is picked up;
* the first successful listing resets it; jobs that ended meanwhile then fire (the watermark).

The back-off is one watcher's own, never the shared poller's: triggers with working credentials keep
their pace (another credential is another poller; with the same credential they fail as well).

The state (failures in a row, when the next try may go) is kept under the watcher's key in this process's
memory and, on Airflow 3.3+, in the watched asset's state store, so a trigger Airflow re-creates goes on with
the back-off instead of starting it over: in the same triggerer it waits out the step before its first
request; in another one (a failover) its first request goes at once (the store is not read before it, so a
healthy watcher's start costs no extra round trip), and if it fails the count goes on from the stored one.
A state whose next try is long past (:data:`STALE_AFTER_STEPS`) is stale (no watcher kept it): dropped.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aisearch.api import RetryPolicy
from airflow_provider_aisearch.waiting.polling import format_seconds

__all__ = ["FIRST_WAIT", "MAX_WAIT", "STATE_KEY_PREFIX", "WatcherBackoff"]

#: Seconds a watcher waits after its first permanent error in a row (doubled per further error).
FIRST_WAIT = 5.0
#: The longest wait between two tries while the error persists (<= 30 s would allow more than 2 a minute).
MAX_WAIT = 60.0
#: A kept state whose next try is this many ``MAX_WAIT`` past is stale (no watcher kept it): dropped.
STALE_AFTER_STEPS = 10
#: The asset state store key's prefix (followed by the hash of the watcher's watermark key).
STATE_KEY_PREFIX = "aisearch_jobs_backoff"

#: Back-off states of this triggerer process, by state key.
_MEMORY: dict[str, dict[str, float]] = {}


class _FullStep(random.Random):
    """A jitter source that always picks the whole step: a shorter wait would break the per-minute bound."""

    def random(self) -> float:
        return 1.0


_FULL_STEP = _FullStep()


@dataclass
class WatcherBackoff:
    """
    One watcher's back-off after permanent errors: how many in a row, and when the next try may go.

    :param key: The state key (:data:`STATE_KEY_PREFIX` and the watcher's hash).
    :param failures: Permanent errors in a row (0: not backing off).
    :param next_at: Epoch seconds before which the watcher sends no request.
    """

    key: str
    failures: int = 0
    next_at: float = 0.0
    _store_read: bool = field(default=False, repr=False)

    @classmethod
    def for_watcher(cls, watcher_key: str) -> WatcherBackoff:
        """
        The back-off of the watcher known by ``watcher_key`` (its trigger identity's hash is the last
        ``:``-separated part; memory only, not loaded).
        """
        return cls(f"{STATE_KEY_PREFIX}:{watcher_key.rsplit(':', 1)[-1]}")

    @property
    def step(self) -> float:
        """The wait after the latest failure (0 while not backing off)."""
        if not self.failures:
            return 0.0
        policy = RetryPolicy(max_retries=0, backoff=FIRST_WAIT, max_backoff=MAX_WAIT)
        return policy.delay(self.failures - 1, None, _FULL_STEP)

    def take_over(self) -> None:
        """Take over the state a trigger of the same watcher left in this process (no I/O)."""
        self._merge(_MEMORY.get(self.key))

    def _merge(self, state: Any) -> None:
        try:
            failures, next_at = int(state["failures"]), float(state["next_at"])
        except (TypeError, KeyError, ValueError):
            return
        if failures > self.failures and next_at + STALE_AFTER_STEPS * MAX_WAIT >= time.time():
            self.failures, self.next_at = failures, max(next_at, self.next_at)

    async def _read_store(self, store: Any) -> None:
        """Once per trigger, at its first failure: the state another triggerer's trigger left in ``store``."""
        if store is None or self._store_read:
            return
        self._store_read = True
        try:
            if hasattr(store, "aget"):
                self._merge(await store.aget(self.key, None))
            else:
                self._merge(await asyncio.to_thread(store.get, self.key, None))
        except Exception:  # a store for several assets, or an unreachable one: memory only
            return

    async def failed(self, at: float, store: Any) -> float:
        """
        Record a permanent error answered at ``at``; the wait until the next try (also kept as ``next_at``).

        :param at: Epoch seconds when the failure was known (the step counts from there, not from the send).
        :param store: The asset state store, if any (the state goes there as well).
        """
        await self._read_store(store)
        self.failures += 1
        step = self.step
        self.next_at = at + step
        await self._keep(store)
        return step

    async def succeeded(self, store: Any) -> int:
        """Reset after a successful try; the failures in a row there had been (0: it was not backing off)."""
        failures = self.failures
        if failures:
            self.failures, self.next_at = 0, 0.0
            await self._keep(store)
        return failures

    async def wait_turn(self, log: Any, what: str) -> None:
        """Sleep until the next try may go (a re-created trigger goes on with its predecessor's back-off)."""
        wait = self.next_at - time.time()
        if wait > 0:
            log.info(
                "%s failed %d time(s) in a row before this trigger started: next try in %s s",
                what,
                self.failures,
                format_seconds(wait),
            )
            await asyncio.sleep(wait)

    def describe(self, step: float) -> str:
        """How the watcher goes on after a failure, for its log line."""
        return f"still watching: next try in {format_seconds(step)} s (failure {self.failures} in a row)"

    async def _keep(self, store: Any) -> None:
        data = {"failures": self.failures, "next_at": self.next_at}
        if self.failures:
            _MEMORY[self.key] = data
        else:
            _MEMORY.pop(self.key, None)
        if store is None:
            return
        try:
            if hasattr(store, "aset"):
                await store.aset(self.key, data)
            else:
                await asyncio.to_thread(store.set, self.key, data)
        except Exception:  # memory still holds it; never end the watcher for this
            return
