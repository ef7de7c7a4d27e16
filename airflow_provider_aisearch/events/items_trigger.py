"""AISearchItemsTrigger: wait in the triggerer until a folder sync's uploaded items are settled.

The deferred half of :class:`~airflow_provider_aisearch.tasks.sync_items_operator.AISearchSyncItemsOperator`'s
wait: it joins the shared items poller of its instance
(:mod:`~airflow_provider_aisearch.waiting.item_polling`: one items list per poll interval for the
pending keys of every sync waiting on the instance, paged as needed; never one GET per item), never
makes a blocking call, and yields exactly one event.

Event payload: ``{"status": "done"|"timeout"|"error", "instance_id", "items": {key: {"id", "key",
"status", "error"}}, "pending": [keys not settled], "message", "error"}``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aisearch.clients.async_client import load_connection_info
from airflow_provider_aisearch.clients.client_options import validate_timeout
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.waiting.item_outcomes import SETTLED, outcome_dict, still_pending
from airflow_provider_aisearch.waiting.item_polling import shared_item_polls
from airflow_provider_aisearch.waiting.polling import MIN_ROUND_GAP, format_seconds
from airflow_provider_aisearch.waiting.watch import validate_interval

__all__ = ["ITEMS_EVENT_STATUSES", "AISearchItemsTrigger", "validate_items_event"]

#: The ``status`` values an event can carry.
ITEMS_EVENT_STATUSES = frozenset({"done", "timeout", "error"})


def validate_items_event(event: Any) -> dict[str, Any]:
    """
    Check an :class:`AISearchItemsTrigger` event and return it.

    :raises AISearchError: not a dict, an unknown status, or ``items`` that is not a dict.
    """
    if not isinstance(event, Mapping) or event.get("status") not in ITEMS_EVENT_STATUSES:
        raise AISearchError(f"AISearchItemsTrigger sent an invalid event: {event!r}")
    if not isinstance(event.get("items", {}), Mapping):
        raise AISearchError("AISearchItemsTrigger sent an event whose 'items' is not a dict")
    return dict(event)


class AISearchItemsTrigger(BaseTrigger):
    """
    Poll an instance's items list until every key of ``keys`` is ``completed``, ``error`` or ``skipped``.

    :param instance_id: AI Search instance id.
    :param keys: The item keys waited on.
    :param aisearch_conn_id: The Airflow connection id.
    :param namespace: Namespace (resolved by the operator).
    :param poll_interval: Seconds between list rounds (> 0).
    :param deadline: Wall-clock epoch seconds after which it yields ``timeout`` (``None``: never).
    :param timeout: Request timeout: seconds, or ``[connect, read]``.
    :param max_retries: Retries per request after the first attempt.
    :param retry_backoff: First retry delay in seconds.
    """

    def __init__(
        self,
        *,
        instance_id: str,
        keys: Sequence[str],
        aisearch_conn_id: str = "aisearch_default",
        namespace: str | None = "default",
        poll_interval: float = 60.0,
        deadline: float | None = None,
        timeout: float | Sequence[float] = (10.0, 60.0),
        max_retries: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.keys = list(keys)
        self.aisearch_conn_id = aisearch_conn_id
        self.namespace = namespace
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.timeout = validate_timeout(tuple(timeout) if isinstance(timeout, list) else timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-safe kwargs."""
        return (
            "airflow_provider_aisearch.triggers.AISearchItemsTrigger",
            {
                "instance_id": self.instance_id,
                "keys": list(self.keys),
                "aisearch_conn_id": self.aisearch_conn_id,
                "namespace": self.namespace,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "timeout": list(self.timeout) if isinstance(self.timeout, tuple) else self.timeout,
                "max_retries": self.max_retries,
                "retry_backoff": self.retry_backoff,
            },
        )

    def _event(self, status: str, items: Mapping[str, Any], message: str, error: Any = None) -> TriggerEvent:
        pending = [key for key in self.keys if key not in items or items[key]["status"] not in SETTLED]
        return TriggerEvent(
            {
                "status": status,
                "instance_id": self.instance_id,
                "items": dict(items),
                "pending": pending,
                "message": message,
                "error": error,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every item is settled, the deadline passes, or a non-transient error occurs."""
        items: dict[str, Any] = {}
        try:
            info = await load_connection_info(self.aisearch_conn_id)
            async with shared_item_polls(
                info,
                instance_id=self.instance_id,
                keys=self.keys,
                namespace=self.namespace,
                interval=self.poll_interval,
                deadline=self.deadline,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_backoff=self.retry_backoff,
                log_to=self.log,
            ) as (source, poller):
                self.log.info(
                    "Waiting for %d item(s) on instance %r: one items list every %s s, shared with the other syncs "
                    "waiting on this instance",
                    len(self.keys),
                    self.instance_id,
                    format_seconds(self.poll_interval),
                )
                pending = set(self.keys)
                not_before = time.time()  # a listing taken before this trigger asked holds none of its keys
                while True:
                    listing = await source.next_listing(not_before, None)
                    if listing.error is not None:
                        error = listing.error
                        if not isinstance(error, AISearchError) or not error.transient:
                            raise error.with_traceback(None)  # polling again cannot help
                        self.log.warning("Could not list the items (will try again): %s", error)
                    else:
                        seen = {key: listing.items[key] for key in pending if key in listing.items}
                        items.update((key, outcome_dict(item)) for key, item in seen.items())
                        pending = still_pending(pending, seen)
                        if not pending:
                            yield self._event("done", items, f"{len(self.keys)} item(s) settled")
                            return
                        poller.want(source.waiter, pending)
                        self.log.info("Instance %r: %d item(s) not settled yet", self.instance_id, len(pending))
                    if self.deadline is not None and time.time() >= self.deadline:
                        left = len(pending)
                        yield self._event("timeout", items, f"{left} item(s) were not settled when the timeout passed")
                        return
                    not_before = listing.taken_at + max(source.pace(self.poll_interval), MIN_ROUND_GAP)
                    if self.deadline is not None:
                        not_before = min(not_before, self.deadline)  # list once more at the deadline
        except Exception as exc:  # never die silently: report it as an event
            self.log.exception("AISearchItemsTrigger failed")
            info_ = {"type": type(exc).__name__, "status_code": getattr(exc, "status_code", None)}
            yield self._event("error", items, f"{type(exc).__name__}: {exc}", info_)
