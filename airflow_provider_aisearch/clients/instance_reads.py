"""The hook's instance reads: the instance, its item stats and its items list (a mixin of ``AISearchHook``).

:class:`InstanceReads` drives the core's instance plans
(:class:`~airflow_provider_aisearch.api.instance_operations.InstanceOperations`) with the hook's own
``run``, so validation, retries, error mapping, both auth schemes and the path rules are the jobs
endpoints'. ``get_instance`` also reports the instance's source as hook lineage
(:func:`~airflow_provider_aisearch.lineage.job_lineage.record_source_input`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow_provider_aisearch.api import ITEMS_MAX_PER_PAGE, UNSET, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.clients.compat import mask_secret
from airflow_provider_aisearch.models.instances import Instance, InstanceStats, Item, url_secrets

if TYPE_CHECKING:
    from airflow_provider_aisearch.hooks import AISearchHook

__all__ = ["InstanceReads"]

T = TypeVar("T")


class InstanceReads:
    """
    The instance endpoints of :class:`~airflow_provider_aisearch.hooks.AISearchHook` (a mixin).

    Every method validates its arguments when called, before any request.
    """

    if TYPE_CHECKING:  # provided by AISearchHook

        @property
        def api(self) -> JobsAPI:
            """``AISearchHook.api``."""
            ...

        def run(self, plan: Plan[T]) -> T:
            """``AISearchHook.run``."""
            ...

    def get_instance(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> Instance:
        """
        Get the instance: its source type (``r2`` / ``web-crawler``), source, ``paused``, status and sync interval.

        :param instance_id: AI Search instance id.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        from airflow_provider_aisearch.lineage import (
            job_lineage as lineage,  # imported on use: not every hook user needs it
        )

        instance = self.run(self.api.get_instance(instance_id, namespace=namespace))
        for secret in url_secrets(instance.source):  # a crawled URL's credentials never reach a task log
            mask_secret(secret)
        lineage.record_source_input(
            cast("AISearchHook", self), instance
        )  # hook lineage: the source is an input (no request)
        return instance

    def get_instance_stats(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> InstanceStats:
        """
        Get the instance's item counts by status (``degraded`` when Cloudflare cannot count them).

        :param instance_id: AI Search instance id.
        :param namespace: Overrides the hook's namespace (``None`` = legacy path).
        """
        return self.run(self.api.get_instance_stats(instance_id, namespace=namespace))

    def iter_items(
        self,
        instance_id: str,
        *,
        status: str | None = None,
        source: str | None = None,
        sort_by: str | None = None,
        per_page: int = ITEMS_MAX_PER_PAGE,
        key: str | None = None,
        item_id: str | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Iterator[Item]:
        """
        Iterate over the instance's items, fetching pages lazily (stop iterating to stop paging).

        The items list exists only in the namespaced form: ``namespace=None`` raises a ``ValueError``
        naming ``namespace`` when called, before any request (as does any other invalid argument).

        :param instance_id: AI Search instance id.
        :param status: Only items with this status (``"error"``, ``"queued"``, ...; see
            :class:`~airflow_provider_aisearch.models.instances.ItemStatus`).
        :param source: Only items of this ``source_id`` (e.g. ``"builtin"``).
        :param sort_by: ``"status"`` (Cloudflare's default) or ``"modified_at"``.
        :param per_page: Items per page, 1-100.
        :param key: Only the item with this exact key.
        :param item_id: Only the item with this id.
        :param namespace: Overrides the hook's namespace.
        """
        options: dict[str, Any] = {
            "per_page": per_page,
            "status": status,
            "source": source,
            "sort_by": sort_by,
            "key": key,
            "item_id": item_id,
            "namespace": namespace,
        }
        first = self.api.items_page(instance_id, page=1, **options)  # validates now
        return self._iter_items(first, instance_id, options)

    def _iter_items(
        self, first: Plan[tuple[list[Item], bool]], instance_id: str, options: dict[str, Any]
    ) -> Iterator[Item]:
        page = 1
        items, last = self.run(first)
        while True:
            yield from items
            if last:
                return
            page += 1
            items, last = self.run(self.api.items_page(instance_id, page=page, **options))
