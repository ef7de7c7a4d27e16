"""The shared poller's item rounds: one items list per interval for every sync waiting on an instance.

:class:`SharedItemsPoller` is a :class:`~airflow_provider_aisearch.waiting.polling.SharedJobPoller` whose
rounds list items instead of jobs: every :class:`~airflow_provider_aisearch.events.items_trigger.AISearchItemsTrigger`
waiting on items of the same instance (same base URL, account, credential, namespace and request
settings) in one event loop registers its pending keys, and each round is one
:func:`~airflow_provider_aisearch.waiting.item_outcomes.list_items_by_key` for the union of them (paged
until every key was seen), handed to every due waiter in
:attr:`~airflow_provider_aisearch.waiting.polling.Listing.items`. Everything else (when rounds run, how
waiters of different intervals share them, the rate-limit pacing, errors naming each waiter's
connection, starting with the first waiter and closing with the last) is the shared poller's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from airflow_provider_aisearch.api import ConnectionInfo, JobsAPI
from airflow_provider_aisearch.waiting.item_outcomes import list_items_by_key
from airflow_provider_aisearch.waiting.polling import Listing, SharedJobPoller, SharedPolls, _Waiter, shared_polls

__all__ = ["SharedItemsPoller", "shared_item_polls"]


class SharedItemsPoller(SharedJobPoller):
    """A shared poller whose rounds list the items of every waiter's pending keys (one listing, paged)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Each waiter's keys not settled yet.
        self.keys: dict[_Waiter, set[str]] = {}

    def want(self, waiter: _Waiter, keys: Iterable[str]) -> None:
        """Set the keys ``waiter`` still waits on (the next rounds list them)."""
        self.keys[waiter] = set(keys)

    def leave(self, waiter: _Waiter) -> None:
        """Unregister a waiter and its keys."""
        self.keys.pop(waiter, None)
        super().leave(waiter)

    async def _take(self, api: JobsAPI, want: set[str], taken_at: float) -> Listing:
        keys = set().union(*self.keys.values())
        items = await self.client.run(list_items_by_key(api, self.instance_id, keys, namespace=self.namespace))
        return Listing(taken_at, items=items, server_time=self.client.server_time)


@asynccontextmanager
async def shared_item_polls(
    info: ConnectionInfo, *, instance_id: str, keys: Iterable[str], **options: Any
) -> AsyncIterator[tuple[SharedPolls, SharedItemsPoller]]:
    """
    Join the items poller of this instance in the running event loop (starting one if needed), waiting on ``keys``.

    :param info: The trigger's connection, already read.
    :param instance_id: AI Search instance id.
    :param keys: The keys waited on (update them with :meth:`SharedItemsPoller.want`).
    :param options: :func:`~airflow_provider_aisearch.waiting.polling.shared_polls`'s ``namespace``,
        ``interval``, ``deadline``, ``timeout``, ``max_retries``, ``retry_backoff`` and ``log_to``.
    """
    async with shared_polls(
        info, instance_id=instance_id, job_id=None, poller_class=SharedItemsPoller, **options
    ) as source:
        poller = source.poller
        assert isinstance(poller, SharedItemsPoller)
        poller.want(source.waiter, keys)
        yield source, poller
