"""Reading the item stats after a job ended, or waiting until no item is queued or running, as one plan.

The stats wait of the item quality gate (:mod:`~airflow_provider_aisearch.waiting.quality`, which re-exports
these names): :func:`read_item_stats` is a plan, so the worker drives it with the hook and the
trigger with the async client (in the triggerer when deferred); :func:`items_pending` and
:func:`items_timeout_message` say when it is over and why it timed out, on both sides alike.

A wait never outlives its bound: the task's timeout, or, when the task has none (the create
operator's ``timeout=None``, a trigger without ``deadline``), :data:`DEFAULT_ITEMS_TIMEOUT` from its
first read (:func:`items_deadline`). Stats that break the schema end it at their first read
(:class:`~airflow_provider_aisearch.models.instances.MalformedStatsError` is a permanent error).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_provider_aisearch.api import UNSET, Backoff, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.instances import InstanceStats

__all__ = [
    "DEFAULT_ITEMS_TIMEOUT",
    "MIN_STATS_GAP",
    "items_deadline",
    "items_pending",
    "items_timeout_message",
    "read_item_stats",
]

#: Shortest pause between two stats reads of an item wait, whatever the interval.
MIN_STATS_GAP = 0.01
#: Seconds an item wait may last when the task has no timeout (one hour): items still queued an hour
#: after their job ended are stuck, or are a later sync's (the stats are the instance's), and at the
#: default 60 s poll interval the wait costs at most 60 reads.
DEFAULT_ITEMS_TIMEOUT = 3600.0


def items_deadline(deadline: float | None) -> float:
    """An item wait's bound: ``deadline`` (epoch seconds), or :data:`DEFAULT_ITEMS_TIMEOUT` from now without one."""
    return time.time() + DEFAULT_ITEMS_TIMEOUT if deadline is None else deadline


def items_pending(stats: InstanceStats | None, wait: bool) -> bool:
    """Whether an item wait is not over: no stats yet, or (``wait``) items still queued or running."""
    if stats is None:
        return True
    return wait and (stats.in_flight or 0) > 0  # degraded (no counts): nothing to wait on


def items_timeout_message(where: str, stats: InstanceStats | None, *, unbounded: bool = False) -> str:
    """
    Why an item wait timed out (the trigger's ``timeout`` event and the worker's error say the same).

    :param unbounded: The task had no timeout, so :data:`DEFAULT_ITEMS_TIMEOUT` bounded the wait.
    """
    bound = f"the item wait's default bound ({DEFAULT_ITEMS_TIMEOUT:g} s, timeout=None)" if unbounded else "the timeout"
    if stats is None:
        return f"{where} ended, but its item stats could not be read before {bound} passed"
    return (
        f"{where} ended, but {stats.queued} item(s) were still queued and {stats.running} running "
        f"when {bound} passed (wait_for_items=True)"
    )


def read_item_stats(
    api: JobsAPI,
    instance_id: str,
    *,
    namespace: str | _Unset | None = UNSET,
    wait: bool,
    interval: float,
    deadline: float | None,
    log: Any,
) -> Plan[InstanceStats | None]:
    """
    Read the instance's item stats; with ``wait``, again every ``interval`` until nothing is queued or running.

    One implementation for every mode: the worker drives it with the hook, the trigger with the
    async client. Each read is one GET with the API's retries and rate-limit budget; a transient
    failure after those retries is logged and read again at the next interval; any other raises.
    Pauses stretch when the budget runs low and never pass ``deadline``.

    :param api: The connection's plans (``with_deadline`` bounds their retry waits too).
    :param instance_id: AI Search instance id.
    :param namespace: Namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param wait: Wait until ``queued + running == 0`` (degraded stats end the wait: no counts).
    :param interval: Seconds between reads (the task's poll interval).
    :param deadline: Epoch seconds after which it stops (``time.time()`` or earlier: one read); ``None``:
        :data:`DEFAULT_ITEMS_TIMEOUT` from now (:func:`items_deadline`).
    :param log: Where the wait's lines go (the task's or the trigger's log).
    :return: The stats, or the last ones read (or ``None``) when ``deadline`` passed first: check
        :func:`items_pending`.
    :raises AISearchError: a failure the retry policy would not retry (auth, not found, 400...), or
        stats that break the schema (a negative count, a wrong type: at the first such read).
    """
    deadline = items_deadline(deadline)
    stats: InstanceStats | None = None
    while True:
        try:
            stats = yield from api.get_instance_stats(instance_id, namespace=namespace)
        except AISearchError as exc:
            if not exc.transient:
                raise
            log.warning("Could not read the item stats of instance %r (will try again): %s", instance_id, exc)
        else:
            if not items_pending(stats, wait):
                return stats
            log.info(
                "Instance %r: %s item(s) still queued, %s running; reading its stats again (wait_for_items=True)",
                instance_id,
                stats.queued,
                stats.running,
            )
        now = time.time()
        if now >= deadline:
            return stats
        pause = min(api.budget.pace(interval), deadline - now)
        yield Backoff(max(pause, MIN_STATS_GAP), f"Next item stats read in {pause:.2g} s", level=logging.DEBUG)
