"""The hook's Items API calls: upload, create or update, get, sync, delete, logs, chunks, download (a mixin).

:class:`ItemCalls` drives the core's item plans
(:class:`~airflow_provider_aisearch.api.item_operations.ItemOperations`) with the hook's own ``run``,
so validation (before any request), retries, the upload's retry safety, error mapping, the rate
budget, both auth schemes and the path rules are the other endpoints'. Namespaced only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_aisearch.api import UNSET, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.api.item_operations import ITEM_PAGE_MAX
from airflow_provider_aisearch.models.instances import Item
from airflow_provider_aisearch.models.items import ItemChunk, ItemLog

__all__ = ["ItemCalls"]

T = TypeVar("T")


class ItemCalls:
    """
    The Items API of :class:`~airflow_provider_aisearch.hooks.AISearchHook` (a mixin).

    Every method validates its arguments when called, before any request; ``namespace=None`` (the
    legacy path form, which has no items) raises a ``ValueError`` naming ``namespace``.
    """

    if TYPE_CHECKING:  # provided by AISearchHook

        @property
        def api(self) -> JobsAPI:
            """``AISearchHook.api``."""
            ...

        def run(self, plan: Plan[T]) -> T:
            """``AISearchHook.run``."""
            ...

    def upload_item(
        self,
        instance_id: str,
        filename: str,
        content: bytes,
        *,
        metadata: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        wait_for_completion: bool | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Item:
        """
        Upload a file into a built-in-storage instance (multipart ``POST .../items``), as the SDK sends it.

        Never uploaded twice for one call: after a failure that does not prove the upload was not
        received (a lost answer, a 5xx), the item is looked up by key instead, and returned when it is
        this upload; otherwise :class:`~airflow_provider_aisearch.exceptions.AISearchCreateAmbiguousError`.

        :param instance_id: AI Search instance id.
        :param filename: The item's key (at most 128 characters).
        :param content: The file's bytes.
        :param metadata: Custom metadata: string keys, string/number/boolean values.
        :param content_type: The file part's type (default: guessed from ``filename``).
        :param wait_for_completion: Let Cloudflare answer once indexed (up to about 40 s, then ``running``).
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(
            self.api.upload_item(
                instance_id,
                filename,
                content,
                metadata=metadata,
                content_type=content_type,
                wait_for_completion=wait_for_completion,
                namespace=namespace,
            )
        )

    def create_or_update_item(
        self,
        instance_id: str,
        key: str,
        *,
        wait_for_completion: bool | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Item:
        """
        Create or update the item ``key`` and queue it for indexing (``PUT .../items``, ``next_action: INDEX``).

        :param instance_id: AI Search instance id.
        :param key: The item's key (at most 128 characters).
        :param wait_for_completion: As for :meth:`upload_item`.
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(
            self.api.create_or_update_item(
                instance_id, key, wait_for_completion=wait_for_completion, namespace=namespace
            )
        )

    def get_item(self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET) -> Item:
        """
        Get one item; an absent one raises :class:`~airflow_provider_aisearch.exceptions.AISearchNotFoundError`.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(self.api.get_item(instance_id, item_id, namespace=namespace))

    def find_item(
        self, instance_id: str, key: str, *, source: str | None = None, namespace: str | _Unset | None = UNSET
    ) -> Item | None:
        """
        The item stored under ``key`` (one items-list request filtered by ``key``), or ``None``.

        :param instance_id: AI Search instance id.
        :param key: The item's key.
        :param source: Only of this ``source_id`` (keys are unique per source; ``"builtin"`` for uploads).
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(self.api.find_item(instance_id, key, source=source, namespace=namespace))

    def sync_item(
        self,
        instance_id: str,
        item_id: str,
        *,
        wait_for_completion: bool | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Item:
        """
        Re-index one item now (``PATCH .../items/{item_id}``), e.g. one file of an R2 or website source.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param wait_for_completion: As for :meth:`upload_item`.
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(
            self.api.sync_item(instance_id, item_id, wait_for_completion=wait_for_completion, namespace=namespace)
        )

    def delete_item(self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET) -> str | None:
        """
        Delete one item and its indexed data.

        An absent item raises :class:`~airflow_provider_aisearch.exceptions.AISearchNotFoundError`; a
        delete whose answer was lost and whose retry finds the item gone has succeeded.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param namespace: Overrides the hook's namespace.
        :return: The deleted item's key (``None`` when the unanswered first attempt deleted it).
        """
        return self.run(self.api.delete_item(instance_id, item_id, namespace=namespace))

    def iter_item_logs(
        self,
        instance_id: str,
        item_id: str,
        *,
        limit: int = ITEM_PAGE_MAX,
        namespace: str | _Unset | None = UNSET,
    ) -> Iterator[ItemLog]:
        """
        Iterate over an item's processing logs, fetching pages (by cursor) lazily.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param limit: Entries per page, 1-100.
        :param namespace: Overrides the hook's namespace.
        """
        first = self.api.item_logs_page(instance_id, item_id, limit=limit, namespace=namespace)  # validates now
        return self._iter_logs_pages(first, instance_id, item_id, limit, namespace)

    def _iter_logs_pages(
        self,
        first: Plan[tuple[list[ItemLog], str | None]],
        instance_id: str,
        item_id: str,
        limit: int,
        namespace: str | _Unset | None,
    ) -> Iterator[ItemLog]:
        entries, cursor = self.run(first)
        seen: set[str] = set()
        while True:
            yield from entries
            if cursor is None or not entries or cursor in seen:  # a repeated cursor would loop forever
                return
            seen.add(cursor)
            entries, cursor = self.run(
                self.api.item_logs_page(instance_id, item_id, cursor=cursor, limit=limit, namespace=namespace)
            )

    def iter_item_chunks(
        self,
        instance_id: str,
        item_id: str,
        *,
        limit: int = ITEM_PAGE_MAX,
        namespace: str | _Unset | None = UNSET,
    ) -> Iterator[ItemChunk]:
        """
        Iterate over an item's indexed chunks (with their text), fetching pages lazily by offset.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param limit: Chunks per page, 1-100.
        :param namespace: Overrides the hook's namespace.
        """
        first = self.api.item_chunks_page(instance_id, item_id, limit=limit, namespace=namespace)  # validates now
        return self._iter_chunk_pages(first, instance_id, item_id, limit, namespace)

    def _iter_chunk_pages(
        self,
        first: Plan[list[ItemChunk]],
        instance_id: str,
        item_id: str,
        limit: int,
        namespace: str | _Unset | None,
    ) -> Iterator[ItemChunk]:
        chunks, offset = self.run(first), 0
        while True:
            yield from chunks
            if len(chunks) < limit:
                return
            offset += len(chunks)
            chunks = self.run(
                self.api.item_chunks_page(instance_id, item_id, offset=offset, limit=limit, namespace=namespace)
            )

    def download_item(self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET) -> bytes:
        """
        Download the item's stored file.

        :param instance_id: AI Search instance id.
        :param item_id: The item's id.
        :param namespace: Overrides the hook's namespace.
        """
        return self.run(self.api.download_item(instance_id, item_id, namespace=namespace))
