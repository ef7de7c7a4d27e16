"""Reading the item stats after a job ended, or waiting until no item is queued or running, as one plan.

The stats wait of the item quality gate (:mod:`~airflow_provider_aisearch.quality`, which re-exports
these names): :func:`read_item_stats` is a plan, so the worker drives it with the hook and the
trigger with the async client (in the triggerer when deferred); :func:`items_pending` and
:func:`items_timeout_message` say when it is over and why it timed out, on both sides alike.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_provider_aisearch.api import UNSET, Backoff, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.instances import InstanceStats

__all__ = ["MIN_STATS_GAP", "items_pending", "items_timeout_message", "read_item_stats"]

#: Shortest pause between two stats reads of an item wait, whatever the interval.
MIN_STATS_GAP = 0.01


def items_pending(stats: InstanceStats | None, wait: bool) -> bool:
    """Whether an item wait is not over: no stats yet, or (``wait``) items still queued or running."""
    if stats is None:
        return True
    return wait and not stats.degraded and stats.in_flight != 0


def items_timeout_message(where: str, stats: InstanceStats | None) -> str:
    """Why an item wait timed out (the trigger's ``timeout`` event and the worker's error say the same)."""
    if stats is None:
        return f"{where} ended, but its item stats could not be read before the timeout passed"
    return (
        f"{where} ended, but {stats.queued} item(s) were still queued and {stats.running} running "
        "when the timeout passed (wait_for_items=True)"
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
    :param deadline: Epoch seconds after which it stops (``time.time()`` or earlier: one read); ``None``: never.
    :param log: Where the wait's lines go (the task's or the trigger's log).
    :return: The stats, or the last ones read (or ``None``) when ``deadline`` passed first: check
        :func:`items_pending`.
    :raises AISearchError: a failure the retry policy would not retry (auth, not found, 400...).
    """
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
        if deadline is not None and now >= deadline:
            return stats
        pause = api.budget.pace(interval)
        if deadline is not None:
            pause = min(pause, deadline - now)
        yield Backoff(max(pause, MIN_STATS_GAP), f"Next item stats read in {pause:.2g} s", level=logging.DEBUG)
