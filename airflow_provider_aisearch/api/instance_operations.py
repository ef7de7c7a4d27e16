"""Instance operations: the instance, its item stats and its items list, as plans (mixed into ``JobsAPI``).

:class:`InstanceOperations` holds only the endpoint methods; the path and namespace rules
(``JobsAPI.instance_path``), the retry loop (``JobsAPI.request``) and the parsing (:mod:`.parse`) are
the jobs endpoints' own, so validation, retries, error mapping, the rate budget and both auth
schemes are the same. The items list exists only in the namespaced form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api.paging import is_last_page
from airflow_provider_aisearch.api.parse import parse_instance, parse_instance_stats, parse_item_page
from airflow_provider_aisearch.api.paths import (
    ITEMS_MAX_PER_PAGE,
    UNSET,
    _Unset,
    path_segment,
    validate_choice,
    validate_item_key,
    validate_page,
    validate_per_page,
)
from airflow_provider_aisearch.api.plans import Call, Plan
from airflow_provider_aisearch.models.instances import ITEM_SORT_KEYS, Instance, InstanceStats, Item, ItemStatus

__all__ = ["InstanceOperations"]


class InstanceOperations:
    """
    The instance endpoints of :class:`~airflow_provider_aisearch.api.operations.JobsAPI` (a mixin).

    Every method validates its arguments when called (before any request) and returns a plan.
    """

    if TYPE_CHECKING:  # provided by JobsAPI

        def instance_path(
            self, instance_id: str, endpoint: str | None = None, *, namespace: str | _Unset | None = UNSET
        ) -> str:
            """``JobsAPI.instance_path``."""
            ...

        def request(self, call: Call, max_retries: int | None = None) -> Plan[dict[str, Any]]:
            """``JobsAPI.request``."""
            ...

    def get_instance(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[Instance]:
        """The instance (``GET .../instances/{id}``; namespaced or legacy path)."""
        path = self.instance_path(instance_id, namespace=namespace)
        return self._get_instance(path)

    def _get_instance(self, path: str) -> Plan[Instance]:
        payload = yield from self.request(Call("GET", path))
        return parse_instance(payload, method="GET", path=path)

    def get_instance_stats(self, instance_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[InstanceStats]:
        """The instance's item counts (``GET .../instances/{id}/stats``; namespaced or legacy path)."""
        path = self.instance_path(instance_id, "stats", namespace=namespace)
        return self._get_instance_stats(path)

    def _get_instance_stats(self, path: str) -> Plan[InstanceStats]:
        payload = yield from self.request(Call("GET", path))
        return parse_instance_stats(payload, method="GET", path=path)

    def items_page(
        self,
        instance_id: str,
        *,
        page: int = 1,
        per_page: int = ITEMS_MAX_PER_PAGE,
        status: str | None = None,
        source: str | None = None,
        sort_by: str | None = None,
        key: str | None = None,
        item_id: str | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[tuple[list[Item], bool]]:
        """
        One page of the instance's items, and whether it is the last page.

        Namespaced only: ``namespace=None`` raises a ``ValueError`` naming ``namespace`` before any request.

        :param page: Page number, from 1.
        :param per_page: Items per page, 1-100.
        :param status: Only items with this status (an :class:`~airflow_provider_aisearch.instances.ItemStatus`).
        :param source: Only items of this ``source_id`` (``"builtin"``, ``"r2:<bucket>"``, ``"web-crawler:<url>"``).
        :param sort_by: ``"status"`` (Cloudflare's default) or ``"modified_at"``.
        :param key: Only the item with this exact key (per source).
        :param item_id: Only the item with this id.
        """
        validate_page(page)
        validate_per_page(per_page, ITEMS_MAX_PER_PAGE)
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        if status is not None:
            params["status"] = validate_choice(
                "status", str(status) if isinstance(status, ItemStatus) else status, {s.value for s in ItemStatus}
            )
        if source is not None:
            path_segment("source", source)  # a non-empty string of sane length (sent as a query parameter)
            params["source"] = source
        if sort_by is not None:
            params["sort_by"] = validate_choice("sort_by", sort_by, ITEM_SORT_KEYS)
        if key is not None:
            params["key"] = validate_item_key("key", key)
        if item_id is not None:
            path_segment("item_id", item_id)  # a non-empty string of sane length (sent as a query parameter)
            params["item_id"] = item_id
        path = self.instance_path(instance_id, "items", namespace=namespace)
        return self._items_page(path, params, page, per_page)

    def _items_page(self, path: str, params: dict[str, Any], page: int, per_page: int) -> Plan[tuple[list[Item], bool]]:
        payload = yield from self.request(Call("GET", path, params=params))
        items, total = parse_item_page(payload, method="GET", path=path)
        return items, is_last_page(len(items), page, per_page, total)
