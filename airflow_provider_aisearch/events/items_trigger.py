"""AISearchItemsTrigger: wait in the triggerer until a folder sync's uploaded items are settled.

The deferred half of :class:`~airflow_provider_aisearch.tasks.sync_items_operator.AISearchSyncItemsOperator`'s
wait: it drives :func:`~airflow_provider_aisearch.waiting.item_outcomes.wait_items_settled` (one items
list per poll interval for every pending key of the sync, paged as needed; never one GET per item)
over one :class:`~airflow_provider_aisearch.clients.async_client.AISearchAsyncClient`, never a blocking
call, and yields exactly one event.

Event payload: ``{"status": "done"|"timeout"|"error", "instance_id", "items": {key: {"id", "key",
"status", "error"}}, "pending": [keys not settled], "message", "error"}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aisearch.clients.async_client import AISearchAsyncClient, load_connection_info
from airflow_provider_aisearch.clients.client_options import validate_timeout
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.waiting.item_outcomes import SETTLED, outcome_dict, wait_items_settled
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
            client = AISearchAsyncClient(
                self.aisearch_conn_id,
                namespace=self.namespace,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_backoff=self.retry_backoff,
                log=self.log,
            ).open(info)
            try:
                self.log.info(
                    "Waiting for %d item(s) on instance %r: one items list every %s s",
                    len(self.keys),
                    self.instance_id,
                    self.poll_interval,
                )
                latest = await client.run(
                    wait_items_settled(
                        client.api.with_deadline(self.deadline),
                        self.instance_id,
                        self.keys,
                        namespace=self.namespace,
                        interval=self.poll_interval,
                        deadline=self.deadline,
                        log=self.log,
                    )
                )
            finally:
                await client.aclose()
            items = {key: outcome_dict(item) for key, item in latest.items()}
            event = self._event("done", items, f"{len(self.keys)} item(s) settled")
            if event.payload["pending"]:
                left = len(event.payload["pending"])
                event = self._event("timeout", items, f"{left} item(s) were not settled when the timeout passed")
            yield event
        except Exception as exc:  # never die silently: report it as an event
            self.log.exception("AISearchItemsTrigger failed")
            info_ = {"type": type(exc).__name__, "status_code": getattr(exc, "status_code", None)}
            yield self._event("error", items, f"{type(exc).__name__}: {exc}", info_)
