"""Item operations: the Items API (upload, create or update, get, sync, delete, logs, chunks, download) as plans.

:class:`ItemOperations` is mixed into ``JobsAPI`` like
:class:`~airflow_provider_aisearch.api.instance_operations.InstanceOperations`: the path and
namespace rules (``JobsAPI.instance_path``, namespaced only), the retry loop (``JobsAPI.request``),
the error mapping and the parsing are the jobs endpoints' own.

An upload changes state, so it is a ``create`` call (:class:`~airflow_provider_aisearch.api.plans.Call`):
it is re-sent only when the failure proves nothing was received (never sent, a 429, Cloudflare's
7017 "unable to connect"). Otherwise (a lost answer, a 5xx) the plan looks the key up in the items
list, as the create-job path looks a job up by description: the item found there, of the uploaded
size and carrying the uploaded metadata, is this upload's; none found raises
:class:`~airflow_provider_aisearch.exceptions.AISearchCreateAmbiguousError` (the upload is not sent twice).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api.parse import parse_item, parse_item_chunks, parse_item_logs, parse_item_page
from airflow_provider_aisearch.api.paths import UNSET, _Unset, item_path, validate_item_key
from airflow_provider_aisearch.api.plans import Call, Plan
from airflow_provider_aisearch.exceptions import AISearchCreateAmbiguousError
from airflow_provider_aisearch.models.instances import Item
from airflow_provider_aisearch.models.items import ItemChunk, ItemLog

__all__ = ["ITEM_PAGE_MAX", "UPLOAD_MAX_BYTES", "ItemOperations", "multipart_content_type", "validate_metadata"]

#: The largest file an upload takes ("max 4MB", Cloudflare's API reference for the upload).
UPLOAD_MAX_BYTES = 4 * 1024 * 1024
#: The largest ``limit`` sent for item logs and chunks (Cloudflare documents none; its lists cap at 100).
ITEM_PAGE_MAX = 100


def validate_metadata(metadata: object) -> str | None:
    """
    Check custom item metadata and encode it as the JSON string the upload sends.

    :param metadata: ``None``, or a mapping of string keys to string, number or boolean values (the
        shapes Cloudflare stores; NaN and infinities are not JSON).
    :raises ValueError: naming ``metadata``.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict of str -> str/number/bool, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metadata keys must be non-empty strings, got {key!r}")
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(
                f"metadata[{key!r}] must be a string, number or boolean (Cloudflare stores no nested values), "
                f"got {type(value).__name__}"
            )
    try:
        return json.dumps(dict(metadata), allow_nan=False)  # as json.dumps writes it for the SDK
    except ValueError as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None


def multipart_content_type(filename: str, content_type: str | None) -> str:
    """The file part's content type: as given, else guessed from the name as httpx (and so the SDK) does."""
    if content_type is not None:
        if not isinstance(content_type, str) or not content_type.strip() or any(c in content_type for c in "\r\n"):
            raise ValueError(f"content_type must be a non-empty one-line string or None, got {content_type!r}")
        return content_type
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean, got {value!r}")
    return value


def _limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ITEM_PAGE_MAX:
        raise ValueError(f"{name} must be an integer from 1 to {ITEM_PAGE_MAX}, got {value!r}")
    return value


class ItemOperations:
    """
    The item endpoints of :class:`~airflow_provider_aisearch.api.operations.JobsAPI` (a mixin).

    Every method validates its arguments when called (before any request) and returns a plan.
    Namespaced only: ``namespace=None`` raises a ``ValueError`` naming ``namespace``.
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

    def _items_path(self, instance_id: str, namespace: str | _Unset | None) -> str:
        return self.instance_path(instance_id, "items", namespace=namespace)

    # -- writes ------------------------------------------------------------------------------

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
    ) -> Plan[Item]:
        """
        Upload a file (``POST .../items``, ``multipart/form-data``: ``file``, ``metadata``, ``wait_for_completion``).

        :param filename: The item's key, at most 128 characters.
        :param content: The file's bytes (at most 4 MB).
        :param metadata: Custom metadata (see :func:`validate_metadata`).
        :param content_type: The file part's type (default: guessed from ``filename``, as the SDK does).
        :param wait_for_completion: Let Cloudflare answer once the item is indexed (up to about 40 s;
            then it answers ``running``). ``None``: not sent (Cloudflare's default, ``False``).
        """
        validate_item_key("filename", filename)
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise ValueError(f"content must be bytes, got {type(content).__name__}")
        body = bytes(content)
        if len(body) > UPLOAD_MAX_BYTES:
            raise ValueError(
                f"content is {len(body)} bytes; Cloudflare takes uploads of at most 4 MB ({UPLOAD_MAX_BYTES})"
            )
        encoded = validate_metadata(metadata)
        ctype = multipart_content_type(filename, content_type)
        data: dict[str, str] = {}
        if encoded is not None:
            data["metadata"] = encoded
        if wait_for_completion is not None:
            data["wait_for_completion"] = "true" if _flag("wait_for_completion", wait_for_completion) else "false"
        path = self._items_path(instance_id, namespace)
        call = Call("POST", path, files=(("file", (filename, body, ctype)),), data=data, create=True, resource="item")
        return self._item_upload(call, filename, len(body), metadata)

    def _item_upload(self, call: Call, key: str, size: int, metadata: Mapping[str, Any] | None) -> Plan[Item]:
        try:
            payload = yield from self.request(call)
        except AISearchCreateAmbiguousError as exc:
            # The upload may have been stored: look the key up instead of sending it again.
            found = yield from self._find_by_key(call.path, key, "builtin")  # uploads are the built-in source
            if found is not None and _is_this_upload(found, size, metadata):
                return found
            state = "none is listed" if found is None else "the item listed under it is not this upload"
            raise AISearchCreateAmbiguousError(
                f"{exc.message}; looked up key {key!r}: {state}, so the upload was not re-sent (retry it)",
                status_code=exc.status_code,
                errors=exc.errors,
                method=call.method,
                path=call.path,
            ) from None
        return parse_item(payload, method=call.method, path=call.path)

    def _find_by_key(self, items_path: str, key: str, source: str | None = None) -> Plan[Item | None]:
        params: dict[str, Any] = {"key": key, "page": 1, "per_page": 20}
        if source is not None:
            params["source"] = source
        payload = yield from self.request(Call("GET", items_path, params=params))
        items, _ = parse_item_page(payload, method="GET", path=items_path)
        return next((item for item in items if item.key == key), None)

    def find_item(
        self, instance_id: str, key: str, *, source: str | None = None, namespace: str | _Unset | None = UNSET
    ) -> Plan[Item | None]:
        """
        The item stored under ``key`` (the items list filtered by ``key``), or ``None``.

        :param source: Only of this ``source_id`` (keys are unique per source; ``"builtin"`` for uploads).
        """
        validate_item_key("key", key)
        if source is not None:
            validate_item_key("source", source)
        return self._find_by_key(self._items_path(instance_id, namespace), key, source)

    def create_or_update_item(
        self,
        instance_id: str,
        key: str,
        *,
        wait_for_completion: bool | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[Item]:
        """
        Create or update the item ``key`` and index it (``PUT .../items``, ``next_action: INDEX``).

        Idempotent (by key), so it is retried like a read.

        :param key: The item's key, at most 128 characters.
        :param wait_for_completion: As for :meth:`upload_item`.
        """
        validate_item_key("key", key)
        body: dict[str, Any] = {"key": key, "next_action": "INDEX"}
        if wait_for_completion is not None:
            body["wait_for_completion"] = _flag("wait_for_completion", wait_for_completion)
        return self._item_call(Call("PUT", self._items_path(instance_id, namespace), json_body=body))

    def sync_item(
        self,
        instance_id: str,
        item_id: str,
        *,
        wait_for_completion: bool | None = None,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[Item]:
        """
        Re-index one item (``PATCH .../items/{item_id}``, ``next_action: INDEX``); retried like a read.

        :param wait_for_completion: As for :meth:`upload_item`.
        """
        body: dict[str, Any] = {"next_action": "INDEX"}
        if wait_for_completion is not None:
            body["wait_for_completion"] = _flag("wait_for_completion", wait_for_completion)
        path = item_path(self._items_path(instance_id, namespace), item_id)
        return self._item_call(Call("PATCH", path, json_body=body))

    def delete_item(
        self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET
    ) -> Plan[str | None]:
        """
        Delete one item and its indexed data (``DELETE .../items/{item_id}``).

        A 404 is :class:`~airflow_provider_aisearch.exceptions.AISearchNotFoundError`, except when it
        answers a retry after an attempt whose answer was lost: that attempt deleted the item.

        :return: The deleted item's key (``None`` when an earlier, unanswered attempt deleted it).
        """
        path = item_path(self._items_path(instance_id, namespace), item_id)
        return self._item_delete(Call("DELETE", path, gone_after_retry=True))

    def _item_delete(self, call: Call) -> Plan[str | None]:
        payload = yield from self.request(call)
        result = payload.get("result")
        key = result.get("key") if isinstance(result, Mapping) else None
        return key if isinstance(key, str) else None

    # -- reads --------------------------------------------------------------------------------

    def get_item(self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[Item]:
        """One item (``GET .../items/{item_id}``; 404: ``AISearchNotFoundError``)."""
        return self._item_call(Call("GET", item_path(self._items_path(instance_id, namespace), item_id)))

    def _item_call(self, call: Call) -> Plan[Item]:
        payload = yield from self.request(call)
        return parse_item(payload, method=call.method, path=call.path)

    def item_logs_page(
        self,
        instance_id: str,
        item_id: str,
        *,
        cursor: str | None = None,
        limit: int = ITEM_PAGE_MAX,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[tuple[list[ItemLog], str | None]]:
        """
        One page of an item's processing logs (``GET .../items/{item_id}/logs``), and the next page's cursor.

        :param cursor: The cursor a previous page returned (``None``: the first page).
        :param limit: Entries per page, 1-100.
        """
        params: dict[str, Any] = {"limit": _limit("limit", limit)}
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.strip():
                raise ValueError(f"cursor must be a non-empty string or None, got {cursor!r}")
            params["cursor"] = cursor
        path = item_path(self._items_path(instance_id, namespace), item_id, "logs")
        return self._item_logs_page(Call("GET", path, params=params))

    def _item_logs_page(self, call: Call) -> Plan[tuple[list[ItemLog], str | None]]:
        payload = yield from self.request(call)
        return parse_item_logs(payload, method=call.method, path=call.path)

    def item_chunks_page(
        self,
        instance_id: str,
        item_id: str,
        *,
        offset: int = 0,
        limit: int = ITEM_PAGE_MAX,
        namespace: str | _Unset | None = UNSET,
    ) -> Plan[list[ItemChunk]]:
        """
        One page of an item's chunks (``GET .../items/{item_id}/chunks``); a page shorter than ``limit`` is the last.

        :param offset: Chunks to skip, from 0.
        :param limit: Chunks per page, 1-100.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
        params = {"offset": offset, "limit": _limit("limit", limit)}
        path = item_path(self._items_path(instance_id, namespace), item_id, "chunks")
        return self._item_chunks_page(Call("GET", path, params=params))

    def _item_chunks_page(self, call: Call) -> Plan[list[ItemChunk]]:
        payload = yield from self.request(call)
        return parse_item_chunks(payload, method=call.method, path=call.path)

    def download_item(self, instance_id: str, item_id: str, *, namespace: str | _Unset | None = UNSET) -> Plan[bytes]:
        """The item's stored file, as bytes (``GET .../items/{item_id}/download``)."""
        path = item_path(self._items_path(instance_id, namespace), item_id, "download")
        return self._item_download(Call("GET", path, raw=True, accept="application/octet-stream"))  # as the SDK

    def _item_download(self, call: Call) -> Plan[bytes]:
        payload = yield from self.request(call)
        body = payload["result"]
        assert isinstance(body, bytes)
        return body


def _is_this_upload(item: Item, size: int, metadata: Mapping[str, Any] | None) -> bool:
    """Whether the item listed under the key can be the upload: its size and the metadata sent match."""
    if item.file_size is not None and item.file_size != size:
        return False
    stored = item.metadata or {}
    return all(stored.get(k) == v for k, v in (metadata or {}).items())
