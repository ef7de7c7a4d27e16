"""The instance endpoints: what get instance, its stats and its items list answer, on the emulated state.

``GET .../instances/{id}`` and ``GET .../instances/{id}/stats`` in both path forms;
``GET .../namespaces/{ns}/instances/{id}/items`` only namespaced (Cloudflare has no legacy form: the
emulator answers 404 "No route" for it). The items list is paginated with ``result_info`` like the
jobs list (``per_page`` at most 100) and filters by ``status``, ``source`` (``source_id``) and
``sort_by`` (``status``: status priority, then ``last_seen_at``; ``modified_at``: most recent first).
An unknown instance gets the jobs endpoints' 404 (code 7002), another account 403; credentials,
rate limit and faults apply before these run, as for the jobs routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.emulator.envelopes import (
    AUTH_ERROR,
    NOT_FOUND_INSTANCE,
    Reply,
    error,
    invalid,
    ok,
    present,
)
from airflow_provider_aisearch.emulator.items import ITEM_STATUSES, ItemState
from airflow_provider_aisearch.emulator.state import Instance

__all__ = ["INSTANCE_ROUTES", "ITEMS_MAX_PER_PAGE", "InstanceEndpoints"]

#: The routes answered here (see :mod:`.routes`).
INSTANCE_ROUTES = frozenset({"instance", "legacy_instance", "instance_stats", "legacy_instance_stats", "items"})
ITEMS_MAX_PER_PAGE = 100
_SORT_KEYS = ("status", "modified_at")


class InstanceEndpoints(ItemState):
    """The instance routes of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`."""

    account_id: str

    if TYPE_CHECKING:  # provided by JobEndpoints: the jobs list's pagination, shared

        def _paginate(
            self,
            items: list[Any],
            query: dict[str, str],
            *,
            max_per_page: int,
            render: Callable[[Any], Any] | None = None,
        ) -> Reply: ...

    def _instance_endpoint(self, method: str, route: str, segments: tuple[str, ...], query: dict[str, str]) -> Reply:
        """Answer an authenticated request to one of :data:`INSTANCE_ROUTES`."""
        if route.startswith("legacy_"):
            account, instance_id = segments[:2]
            namespace = "default"
        else:
            account, namespace, instance_id = segments[:3]
        if account != self.account_id:
            return error(403, AUTH_ERROR)
        if method != "GET":
            return error(405, {"code": 10405, "message": "Method not allowed"})
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                return error(404, NOT_FOUND_INSTANCE)
            if route.endswith("instance_stats"):
                # last_activity is optional, not nullable, in the stats schema (unlike the instance's).
                return ok(present(self._stats_json(inst), ("last_activity",)))
            if route == "items":
                return self._items_list(inst, query)
            return ok(self._instance_json(inst))

    def _instance_json(self, inst: Instance) -> dict[str, Any]:
        """The instance as ``InstanceReadResponse`` (the fields the emulator models, plus common defaults)."""
        job = self._latest_job(inst)
        created = min([inst.created_at, *(j.started_at for j in inst.jobs)])
        return {
            "id": inst.id,
            "created_at": self._ts(created),
            "modified_at": self._ts(inst.created_at),
            "type": inst.type,
            "source": inst.source,
            "namespace": inst.namespace,
            "paused": inst.paused,
            "status": "active" if job is None or job.ended_at is not None else "syncing",
            "sync_interval": None if inst.sync_interval is None else max(1, round(inst.sync_interval)),
            "enable": True,
            "embedding_model": "@cf/baai/bge-m3",
            "chunk_size": 256,
            "chunk_overlap": 10,
            "max_num_results": 10,
            "last_activity": self._ts(job.started_at) if job is not None else None,
        }

    def _items_list(self, inst: Instance, query: dict[str, str]) -> Reply:
        status = query.get("status")
        if status is not None and status not in ITEM_STATUSES:
            return error(400, invalid(f"status must be one of {', '.join(ITEM_STATUSES)}", "status"))
        sort_by = query.get("sort_by", "status")
        if sort_by not in _SORT_KEYS:
            return error(400, invalid("sort_by must be 'status' or 'modified_at'", "sort_by"))
        views = self._item_views(inst)
        if status is not None:
            views = [view for view in views if view.status == status]
        source = query.get("source")
        if source is not None:
            views = [view for view in views if self._view_source(inst, view) == source]
        key = query.get("key")
        if key is not None:
            views = [view for view in views if view.key == key]
        wanted = query.get("item_id")
        if wanted is not None:
            views = [view for view in views if self._view_id(inst, view) == wanted]
        if sort_by == "status":
            # Status priority, then last_seen_at (oldest first), then key: a stable order across pages.
            views.sort(key=lambda view: (ITEM_STATUSES.index(view.status), view.last_seen_at, view.key))
        else:
            views.sort(key=lambda view: (-view.last_seen_at, view.key))
        return self._paginate(
            views, query, max_per_page=ITEMS_MAX_PER_PAGE, render=lambda view: self._item_json(inst, view)
        )
