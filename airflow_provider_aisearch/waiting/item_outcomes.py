"""Waiting until uploaded items are settled (``completed``, ``error`` or ``skipped``), one list per round.

The folder sync's wait, as plans (so the worker drives them with the hook and the trigger with the
async client, like :func:`~airflow_provider_aisearch.waiting.item_stats.read_item_stats`):

- :func:`list_items_by_key`: one round, the instance's uploaded items (``source=builtin``) read page
  by page (100 a page) until every wanted key was seen or the list ended: never one GET per item,
  so 200 pending items cost two requests a round, not 200;
- :func:`wait_items_settled` (the worker's wait; the trigger's rounds are the shared poller's,
  :mod:`~airflow_provider_aisearch.waiting.item_polling`): a round every ``interval`` (stretched when
  the rate-limit budget runs low), asking only for the keys not settled yet, until none is left or
  ``deadline`` passes. A transient failure after the API's retries is logged and the round comes
  again at the next interval; any other error raises.

:func:`outcome_dict` / :func:`outcome_from_dict` are the JSON shape of an item's outcome in a
trigger event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_aisearch.api import ITEMS_MAX_PER_PAGE, UNSET, Backoff, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.instances import Item, ItemStatus

__all__ = [
    "MAX_SCAN_PAGES",
    "SETTLED",
    "UPLOAD_SOURCE",
    "list_items_by_key",
    "outcome_dict",
    "outcome_from_dict",
    "still_pending",
    "wait_items_settled",
]

#: The statuses that end an item's wait.
SETTLED = frozenset({ItemStatus.COMPLETED.value, ItemStatus.ERROR.value, ItemStatus.SKIPPED.value})
#: The ``source_id`` of uploaded items: the sync lists only those (keys are unique per source).
UPLOAD_SOURCE = "builtin"
#: Most list pages one round reads looking for its keys (10,000 items); keys not seen stay pending.
MAX_SCAN_PAGES = 100
#: Shortest pause between two rounds, whatever the interval.
MIN_ROUND_GAP = 0.01


def list_items_by_key(
    api: JobsAPI, instance_id: str, keys: Iterable[str], *, namespace: str | _Unset | None = UNSET
) -> Plan[dict[str, Item]]:
    """
    One round: the items of ``keys``, from the items list read until every one was seen (or its end).

    :param api: The connection's plans.
    :param instance_id: AI Search instance id.
    :param keys: The keys wanted.
    :param namespace: Namespace (``UNSET``: the connection's).
    :return: The items seen, by key (a key not listed is absent).
    """
    wanted = set(keys)
    found: dict[str, Item] = {}
    page = 1
    while wanted - found.keys() and page <= MAX_SCAN_PAGES:
        items, last = yield from api.items_page(
            instance_id, page=page, per_page=ITEMS_MAX_PER_PAGE, source=UPLOAD_SOURCE, namespace=namespace
        )
        found.update((item.key, item) for item in items if item.key in wanted)
        if last:
            break
        page += 1
    return found


def wait_items_settled(
    api: JobsAPI,
    instance_id: str,
    keys: Iterable[str],
    *,
    namespace: str | _Unset | None = UNSET,
    interval: float,
    deadline: float | None,
    log: Any,
) -> Plan[dict[str, Item]]:
    """
    List the items of ``keys`` every ``interval`` until each is settled, or ``deadline`` passes.

    :param api: The connection's plans (``with_deadline`` bounds their retry waits too).
    :param instance_id: AI Search instance id.
    :param keys: The keys waited on.
    :param namespace: Namespace (``UNSET``: the connection's).
    :param interval: Seconds between rounds.
    :param deadline: Epoch seconds; ``None``: no bound.
    :param log: Where the wait's lines go (the task's or the trigger's log).
    :return: The last item seen of each key (a key never listed is absent); check :data:`SETTLED`.
    :raises AISearchError: an error the retry policy would not retry (auth, not found, 400...).
    """
    latest: dict[str, Item] = {}
    pending = set(keys)
    while pending:
        try:
            seen = yield from list_items_by_key(api, instance_id, sorted(pending), namespace=namespace)
        except AISearchError as exc:
            if not exc.transient:
                raise
            log.warning("Could not list the items of instance %r (will try again): %s", instance_id, exc)
        else:
            latest.update(seen)
            pending = still_pending(pending, seen)
            if not pending:
                break
            log.info("Instance %r: %d item(s) of this sync not settled yet", instance_id, len(pending))
        now = time.time()
        if deadline is not None and now >= deadline:
            break
        pause = api.budget.pace(interval)
        if deadline is not None:
            pause = min(pause, deadline - now)
        yield Backoff(max(pause, MIN_ROUND_GAP), f"Next items list in {pause:.2g} s", level=logging.DEBUG)
    return latest


def still_pending(keys: Iterable[str], seen: Mapping[str, Item]) -> set[str]:
    """The keys of ``keys`` whose item was not listed in ``seen``, or is not settled yet."""
    return {key for key in keys if key not in seen or seen[key].status not in SETTLED}


def outcome_dict(item: Item) -> dict[str, Any]:
    """An item's outcome for a trigger event: ``{"id", "key", "status", "error"}``."""
    return {"id": item.id, "key": item.key, "status": item.status, "error": item.error}


def outcome_from_dict(data: Mapping[str, Any]) -> Item:
    """The inverse of :func:`outcome_dict`."""
    return Item.from_api(data)
