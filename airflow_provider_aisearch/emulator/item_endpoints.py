"""The Items API endpoints: upload, create or update, get, sync, delete, logs, chunks and download.

``POST .../items`` takes ``multipart/form-data`` (``file`` with a filename of at most 128 characters
and at most 4 MB, ``metadata`` a JSON object of string/number/boolean values, ``wait_for_completion``
``true``/``false``) on an instance with built-in storage (``type`` absent) only; ``PUT .../items``
(``{"key", "next_action": "INDEX"}``) and ``PATCH .../items/{id}`` index a stored item again;
``wait_for_completion`` holds the answer until the item settles, at most ``max_completion_wait``
seconds (then it answers ``running``, as Cloudflare does after 40 s). An absent item is 404
``item_not_found`` (code 7006, the emulator's). The logs page by ``cursor``/``limit`` (the next
cursor in ``result_info.cursor``), the chunks by ``offset``/``limit``; the download answers the bytes
with their content type. The state and the lifecycle are :mod:`.uploads`'.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.emulator.envelopes import (
    AUTH_ERROR,
    NOT_FOUND_INSTANCE,
    NOT_FOUND_ITEM,
    Reply,
    error,
    invalid,
    ok,
)
from airflow_provider_aisearch.emulator.state import Instance
from airflow_provider_aisearch.emulator.uploads import UPLOAD_MAX_BYTES, Upload, UploadState, UploadView, item_id

if TYPE_CHECKING:
    from airflow_provider_aisearch.emulator.multipart import FormPart

__all__ = ["ITEM_KEY_MAX", "ITEM_ROUTES", "ItemEndpoints"]

#: The routes answered here besides ``POST``/``PUT`` on ``items`` (see :mod:`.routes`).
ITEM_ROUTES = frozenset({"item", "item_logs", "item_chunks", "item_download"})
#: "Filename must not exceed 128 characters."
ITEM_KEY_MAX = 128
_NOT_ALLOWED = {"code": 10405, "message": "Method not allowed"}
_BUILTIN_ONLY = {"code": 7001, "message": "Uploads are only supported on instances with built-in storage", "path": []}


class ItemEndpoints(UploadState):
    """The Items API routes of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`."""

    account_id: str

    def _item_endpoint(
        self,
        method: str,
        route: str,
        segments: tuple[str, ...],
        query: dict[str, str],
        body: Any,
        form: list[FormPart] | None,
    ) -> Reply:
        """Answer an authenticated Items API request (``POST``/``PUT`` on ``items``, or one of :data:`ITEM_ROUTES`)."""
        account, namespace, instance_id = segments[:3]
        if account != self.account_id:
            return error(403, AUTH_ERROR)
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                return error(404, NOT_FOUND_INSTANCE)
            if route == "items":
                if method == "POST":
                    answer = self._upload(inst, form)
                elif method == "PUT":
                    answer = self._put(inst, body)
                else:
                    return error(405, _NOT_ALLOWED)
            else:
                answer = self._one_item(inst, method, route, segments[3], query, body)
        if isinstance(answer, Upload):  # waited for outside the lock, then rendered
            return self._answer_when_settled(inst, answer)
        return answer

    def _upload(self, inst: Instance, form: list[FormPart] | None) -> Reply | Upload:
        if form is None:
            return error(400, invalid("the body must be multipart/form-data", "file"))
        parts = {part.name: part for part in form}
        file = parts.get("file")
        if file is None or file.filename is None:
            return error(400, invalid("a file part named 'file' with a filename is required", "file"))
        if not file.filename or len(file.filename) > ITEM_KEY_MAX:
            return error(400, invalid(f"Filename must not exceed {ITEM_KEY_MAX} characters", "file"))
        if len(file.content) > UPLOAD_MAX_BYTES:
            return error(400, invalid("The file exceeds the 4MB limit", "file"))
        metadata: dict[str, Any] = {}
        if "metadata" in parts:
            try:
                metadata = json.loads(parts["metadata"].text)
            except ValueError:
                metadata = None  # type: ignore[assignment]
            if not isinstance(metadata, dict) or not all(
                isinstance(v, (str, int, float, bool)) for v in metadata.values()
            ):
                return error(
                    400, invalid("metadata must be a JSON object of string, number or boolean values", "metadata")
                )
        wait = parts["wait_for_completion"].text if "wait_for_completion" in parts else "false"
        if wait not in ("true", "false"):
            return error(400, invalid("wait_for_completion must be true or false", "wait_for_completion"))
        if inst.type is not None:
            return error(400, _BUILTIN_ONLY)
        ctype = file.content_type or "application/octet-stream"
        upload = self.store_upload(inst, file.filename, file.content, ctype, metadata, waited=wait == "true")
        return upload if wait == "true" else ok(self._render(inst, upload))

    def _put(self, inst: Instance, body: Any) -> Reply | Upload:
        if not isinstance(body, dict):
            return error(400, invalid("the body must be a JSON object"))
        key = body.get("key")
        if not isinstance(key, str) or not key or len(key) > ITEM_KEY_MAX:
            return error(400, invalid(f"key must be a string of 1-{ITEM_KEY_MAX} characters", "key"))
        if body.get("next_action") != "INDEX":
            return error(400, invalid("next_action must be 'INDEX'", "next_action"))
        wait = body.get("wait_for_completion", False)
        if not isinstance(wait, bool):
            return error(400, invalid("wait_for_completion must be a boolean", "wait_for_completion"))
        upload = self.uploads_of(inst).get(key)
        if upload is not None:
            self.restart_upload(upload, waited=wait)
            return upload if wait else ok(self._render(inst, upload))
        view = next((v for v in self._item_views(inst) if v.key == key), None)
        if view is None:
            return error(404, NOT_FOUND_ITEM)
        return ok({**self._item_json(inst, view), "status": "queued", "next_action": "INDEX", "error": None})

    def _one_item(
        self, inst: Instance, method: str, route: str, wanted: str, query: dict[str, str], body: Any
    ) -> Reply | Upload:
        view = self.find_view(inst, wanted)
        if view is None:
            return error(404, NOT_FOUND_ITEM)
        upload = view.upload if isinstance(view, UploadView) else None
        if route != "item" and method != "GET":
            return error(405, _NOT_ALLOWED)
        if route == "item_logs":
            return self._logs_page(self.item_logs(inst, view), query)
        if route == "item_chunks":
            return self._chunks_page(self.item_chunks(inst, view), query)
        if route == "item_download":
            if upload is None:
                return error(404, {"code": 7006, "message": "item_not_found: no stored file to download"})
            return 200, upload.content, {"Content-Type": upload.content_type}
        if method == "GET":
            return ok(self._item_json(inst, view))
        if method == "DELETE":
            self.remove_item(inst, view.key)
            return ok({"key": view.key})
        if method == "PATCH":
            if not isinstance(body, dict) or body.get("next_action") != "INDEX":
                return error(400, invalid("next_action must be 'INDEX'", "next_action"))
            wait = body.get("wait_for_completion", False)
            if not isinstance(wait, bool):
                return error(400, invalid("wait_for_completion must be a boolean", "wait_for_completion"))
            if upload is None:  # a source's item: queued again (the emulator does not re-read sources)
                return ok({**self._item_json(inst, view), "status": "queued", "next_action": "INDEX", "error": None})
            self.restart_upload(upload, waited=wait)
            return upload if wait else ok(self._render(inst, upload))
        return error(405, _NOT_ALLOWED)

    def _render(self, inst: Instance, upload: Upload) -> dict[str, Any]:
        view = next(v for v in self._item_views(inst) if isinstance(v, UploadView) and v.upload is upload)
        return self._item_json(inst, view)

    def _answer_when_settled(self, inst: Instance, upload: Upload) -> Reply:
        """``wait_for_completion``: answer once the item settled, or after ``max_completion_wait`` s (``running``)."""
        started = time.monotonic()
        while self.clock() < upload.settles_at and time.monotonic() - started < self.max_completion_wait:
            time.sleep(min(0.02, max(self.max_completion_wait - (time.monotonic() - started), 0.0)))
        with self._lock:
            if self.uploads_of(inst).get(upload.key) is not upload:  # deleted or replaced meanwhile
                return error(404, NOT_FOUND_ITEM)
            return ok(self._render(inst, upload))

    def _logs_page(self, entries: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            limit = int(query.get("limit", "50"))
            start = int(query.get("cursor", "0") or "0")
        except ValueError:
            return error(400, invalid("limit must be a number and cursor one this API returned", "cursor"))
        if not 1 <= limit <= 100 or start < 0:
            return error(400, invalid("limit must be 1-100", "limit"))
        page = entries[start : start + limit]
        info: dict[str, Any] = {"count": len(page)}
        if start + limit < len(entries):
            info["cursor"] = str(start + limit)
        return ok(page, result_info=info)

    def _chunks_page(self, chunks: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return error(400, invalid("limit and offset must be numbers", "limit"))
        if not 1 <= limit <= 100 or offset < 0:
            return error(400, invalid("limit must be 1-100 and offset >= 0", "limit"))
        return ok(chunks[offset : offset + limit])


def upload_id(namespace: str, instance_id: str, key: str) -> str:
    """The id an upload of ``key`` gets (for tests that address an item before listing it)."""
    return item_id(namespace, instance_id, key)
