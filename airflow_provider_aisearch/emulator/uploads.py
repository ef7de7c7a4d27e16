"""Uploaded items: files pushed through the Items API, and how each one moves through its statuses.

An upload (``POST .../items``) stores the file under its name as key (replacing the item of that
key, which keeps its id and ``created_at``); the item is ``queued`` for the first third of
``upload_duration`` seconds (:meth:`UploadState.set_upload_duration`), ``running`` until it ends,
then ``completed``, ``error`` or ``skipped``, computed lazily from the clock like the jobs' items. A
sync (``PATCH``) or a ``PUT`` by key starts the same cycle again for the stored file.

One source of truth for content: an upload's text joins the instance's documents
(:class:`~.documents.DocumentStore`), so the search (:mod:`.search_endpoints`) reads it once the item
is ``completed``, and its chunks are the search's (:func:`~.search_index.chunk_text`). An instance
that holds documents lists them as its items, so a first upload replaces the generated
``docs/file-0001.md`` items of a built-in-storage instance (create those with ``items=0``).

Outcomes: an empty file is ``skipped``; a ``.pdf`` that does not start with ``%PDF`` fails with the
PDF parse error, any other file that is not UTF-8 text with ``Unsupported file type``; of the other
uploads to an instance, the shares of :meth:`ItemState.set_item_errors` and
:meth:`ItemState.set_item_skipped` fail / are skipped, exactly (the n-th upload fails when
``floor(n * share)`` grows), with the realistic error strings of :mod:`.items`;
:meth:`UploadState.set_upload_outcome` forces one key's outcome.

The checksum: Cloudflare does not document its algorithm (its API reference and the SDK type it as
a plain string); the emulator's is the SHA-256 hex digest of the file's bytes. Uploaded items are
listed with the source's items (``source_id: "builtin"``), counted in the stats, have logs, chunks
and a download. A deleted item of the source stays hidden.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aisearch.emulator.items import EMBED_ERRORS, PDF_ERROR, ItemState, ItemView
from airflow_provider_aisearch.emulator.search_index import chunk_text
from airflow_provider_aisearch.emulator.state import Instance

__all__ = ["UPLOAD_MAX_BYTES", "Upload", "UploadState", "UploadView", "chunk_spans", "item_id"]

#: Cloudflare's upload limit ("max 4MB", its API reference).
UPLOAD_MAX_BYTES = 4 * 1024 * 1024


def chunk_spans(text: str) -> list[tuple[str, int, int]]:
    """
    ``text`` cut by the search's chunker (:func:`~.search_index.chunk_text`, so what the chunks
    endpoint lists is what the search reads), with each chunk's UTF-8 byte span.
    """
    spans: list[tuple[str, int, int]] = []
    position = 0
    for piece in chunk_text(text):
        at = text.find(piece, position)
        start = len(text[:at].encode())
        spans.append((piece, start, start + len(piece.encode())))
        position = at + 1
    return spans


@dataclass
class Upload:
    """One uploaded file and its current processing cycle."""

    id: str
    key: str
    content: bytes
    content_type: str
    metadata: dict[str, Any]
    created_at: float
    stored_at: float
    duration: float
    outcome: str
    error: str | None
    #: Log entries of earlier cycles (as rendered), oldest first.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: A ``wait_for_completion`` cycle: processed at once (never ``queued``), as Cloudflare answers ``running``.
    waited: bool = False

    @property
    def checksum(self) -> str:
        """SHA-256 hex of the content (the emulator's choice; Cloudflare's algorithm is undocumented)."""
        return hashlib.sha256(self.content).hexdigest()

    def status(self, now: float) -> str:
        """``queued`` for a third of the cycle (unless waited for), ``running`` until it ends, then the outcome."""
        if not self.waited and now < self.stored_at + self.duration / 3:
            return "queued"
        if now < self.settles_at:
            return "running"
        return self.outcome

    @property
    def settles_at(self) -> float:
        """When the current cycle ends."""
        return self.stored_at + self.duration

    def chunks(self) -> list[tuple[str, int, int]]:
        """The file's chunks (its text through :func:`chunk_spans`; none for a file that is not UTF-8 text)."""
        try:
            return chunk_spans(self.content.decode("utf-8"))
        except UnicodeDecodeError:
            return []


@dataclass(frozen=True)
class UploadView(ItemView):
    """An uploaded item as it is at one moment (an :class:`ItemView` that carries its upload)."""

    upload: Upload | None = None


def item_id(namespace: str, instance_id: str, key: str) -> str:
    """The id of the item ``key`` (the same for a source's item and an upload of that key)."""
    digest = hashlib.sha256(f"{namespace}/{instance_id}/{key}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class UploadState(ItemState):
    """
    The uploaded items of the instances (a mixin of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`).

    The emulator's constructor creates the state below (empty).
    """

    #: Seconds an upload takes from ``queued`` to its outcome (emulator-wide).
    upload_duration: float = 1.0
    #: The longest ``wait_for_completion`` holds an answer (Cloudflare: "up to 40s").
    max_completion_wait: float = 40.0
    #: Uploads by (namespace, instance) then key.
    _uploads: dict[tuple[str, str], dict[str, Upload]]
    #: Keys of the source's items deleted through the API, by (namespace, instance).
    _hidden: dict[tuple[str, str], set[str]]
    #: Uploads counted for the error and skipped shares, by (namespace, instance): [all, not failed].
    _upload_counts: dict[tuple[str, str], list[int]]
    #: Forced outcomes, by (namespace, instance, key).
    _forced: dict[tuple[str, str, str], tuple[str, str | None]]

    def _hidden_keys(self, inst: Instance) -> set[str]:
        return self._hidden.setdefault((inst.namespace, inst.id), set())

    def uploads_of(self, inst: Instance) -> dict[str, Upload]:
        """The instance's uploads by key (callers hold the lock)."""
        return self._uploads.setdefault((inst.namespace, inst.id), {})

    # -- settings --------------------------------------------------------------------------

    def set_upload_duration(self, seconds: float) -> None:
        """Let uploads take ``seconds`` from ``queued`` to their outcome (0: settled at once)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        with self._lock:
            self.upload_duration = float(seconds)

    def set_upload_outcome(
        self, key: str, status: str, error: str | None = None, *, instance_id: str, namespace: str = "default"
    ) -> None:
        """
        Force the outcome of the next uploads of ``key``: ``completed``, ``error`` (with ``error``) or ``skipped``.

        :param instance_id: The instance.
        """
        if status not in ("completed", "error", "skipped"):
            raise ValueError(f"status must be 'completed', 'error' or 'skipped', got {status!r}")
        with self._lock:
            self._forced[(namespace, instance_id, key)] = (status, error if status == "error" else None)

    # -- writes ------------------------------------------------------------------------------

    def store_upload(
        self,
        inst: Instance,
        key: str,
        content: bytes,
        content_type: str,
        metadata: dict[str, Any],
        *,
        waited: bool = False,
    ) -> Upload:
        """Store (or replace) the file ``key`` and start its processing cycle (callers hold the lock)."""
        now = self.clock()
        uploads = self.uploads_of(inst)
        old = uploads.get(key)
        status, error = self._upload_outcome(inst, key, content, content_type)
        upload = Upload(
            id=item_id(inst.namespace, inst.id, key),
            key=key,
            content=content,
            content_type=content_type,
            metadata=metadata,
            created_at=old.created_at if old is not None else now,
            stored_at=now,
            duration=self.upload_duration,
            outcome=status,
            error=error,
            history=[] if old is None else [*old.history, *self._cycle_logs(old, now)],
            waited=waited,
        )
        uploads[key] = upload
        self._hidden_keys(inst).discard(key)
        try:  # the text joins the instance's documents: searchable once the item is completed
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            self._documents.remove(inst.namespace, inst.id, key)
        else:
            self._documents.put(inst.namespace, inst.id, key, text, metadata=metadata, timestamp=now)
        return upload

    def restart_upload(self, upload: Upload, *, waited: bool = False) -> None:
        """Index the stored file again (a sync, or a ``PUT`` by key): a new cycle from now (callers hold the lock)."""
        now = self.clock()
        upload.history = [*upload.history, *self._cycle_logs(upload, now)]
        upload.stored_at, upload.duration, upload.waited = now, self.upload_duration, waited

    def remove_item(self, inst: Instance, key: str) -> None:
        """Delete the item ``key``: an upload is dropped, a source's item hidden (callers hold the lock)."""
        self.uploads_of(inst).pop(key, None)
        self._documents.remove(inst.namespace, inst.id, key)
        self._hidden_keys(inst).add(key)

    def _upload_outcome(self, inst: Instance, key: str, content: bytes, content_type: str) -> tuple[str, str | None]:
        if (inst.namespace, inst.id, key) in self._forced:
            return self._forced[(inst.namespace, inst.id, key)]
        if not content:
            return "skipped", None
        if key.lower().endswith(".pdf") and not content.startswith(b"%PDF"):
            return "error", PDF_ERROR
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            if not content.startswith(b"%PDF"):
                return "error", f"Unsupported file type: {content_type}"
        count = self._upload_counts.setdefault((inst.namespace, inst.id), [0, 0])
        count[0] += 1
        n = count[0]
        share = self._setting(inst, "item_error_share")
        if math.floor(n * share) > math.floor((n - 1) * share):
            embed = [message for message in EMBED_ERRORS if message.startswith("Failed to embed")]
            return "error", embed[n % len(embed)]
        count[1] += 1
        m = count[1]
        skipped = self._setting(inst, "item_skipped_share")
        if math.floor(m * skipped) > math.floor((m - 1) * skipped):
            return "skipped", None
        return "completed", None

    # -- reads ---------------------------------------------------------------------------------

    def _item_views(self, inst: Instance) -> list[ItemView]:
        """The source's items (minus deleted ones and keys since uploaded), then the uploads, in key order."""
        uploads = self.uploads_of(inst)
        hidden = self._hidden_keys(inst)
        views = [v for v in super()._item_views(inst) if v.key not in hidden and v.key not in uploads]
        now = self.clock()
        for key in sorted(uploads):
            upload = uploads[key]
            status = upload.status(now)
            seen = min(now, upload.settles_at) if status not in ("queued",) else upload.stored_at
            error = upload.error if status == "error" else None
            views.append(UploadView(len(views), key, status, error, seen, upload.created_at, upload))
        return views

    def _item_json(self, inst: Instance, view: ItemView) -> dict[str, Any]:
        if not isinstance(view, UploadView) or view.upload is None:
            return super()._item_json(inst, view)
        upload = view.upload
        return {
            "id": upload.id,
            "checksum": upload.checksum,
            "chunks_count": len(upload.chunks()) if view.status == "completed" else None,
            "created_at": self._ts(upload.created_at),
            "file_size": float(len(upload.content)),
            "key": upload.key,
            "last_seen_at": self._ts(view.last_seen_at),
            "metadata": {"folder": upload.key.rsplit("/", 1)[0] + "/" if "/" in upload.key else "", **upload.metadata},
            "namespace": inst.namespace,
            "next_action": None if view.status in ("completed", "error", "skipped") else "INDEX",
            "source_id": "builtin",
            "status": view.status,
            "error": view.error,
        }

    def _view_source(self, inst: Instance, view: ItemView) -> str:
        return "builtin" if isinstance(view, UploadView) else super()._view_source(inst, view)

    def _has_activity(self, inst: Instance) -> bool:
        return super()._has_activity(inst) or bool(self.uploads_of(inst))

    def find_view(self, inst: Instance, item_id_: str) -> ItemView | None:
        """The item with id ``item_id_`` now (callers hold the lock)."""
        return next(
            (v for v in self._item_views(inst) if self._view_id(inst, v) == item_id_),
            None,
        )

    def item_logs(self, inst: Instance, view: ItemView) -> list[dict[str, Any]]:
        """The item's processing logs now, oldest first (``ItemLogsResponseItem``, camelCase)."""
        if isinstance(view, UploadView) and view.upload is not None:
            return [*view.upload.history, *self._cycle_logs(view.upload, self.clock())]
        entry = self._log(view.last_seen_at, "index", view.key, f"Indexed from the source ({view.status})")
        return [] if view.status in ("queued", "running") else [entry]

    def item_chunks(self, inst: Instance, view: ItemView) -> list[dict[str, Any]]:
        """The item's chunks now (``ItemChunksResponseItem``); none until it is ``completed``."""
        if view.status != "completed":
            return []
        if isinstance(view, UploadView) and view.upload is not None:
            pieces = view.upload.chunks()
            metadata = self._item_json(inst, view)["metadata"]
        else:
            count = 3 + view.index % 7
            pieces = [(f"{view.key}: part {i + 1} of {count}.", i * 100, i * 100 + 50) for i in range(count)]
            metadata = {"folder": view.key.rsplit("/", 1)[0] + "/"}
        base = item_id(inst.namespace, inst.id, view.key)
        return [
            {
                "id": f"{base}-{i:04d}",
                "item": {"key": view.key, "metadata": metadata, "timestamp": view.last_seen_at},
                "text": text,
                "start_byte": start,
                "end_byte": end,
            }
            for i, (text, start, end) in enumerate(pieces)
        ]

    def _cycle_logs(self, upload: Upload, now: float) -> list[dict[str, Any]]:
        """The log entries of the upload's current cycle that have happened by ``now``."""
        logs = [self._log(upload.stored_at, "upload", upload.key, f"Stored {len(upload.content)} bytes")]
        if now < upload.settles_at:
            return logs
        took = int(upload.duration * 1000)
        if upload.outcome == "completed":
            count = len(upload.chunks())
            logs.append(self._log(upload.settles_at, "index", upload.key, f"Indexed {count} chunks", chunks=count))
        elif upload.outcome == "error":
            kind = "parse_error" if upload.error == PDF_ERROR else "embed_error"
            logs.append(self._log(upload.settles_at, "error", upload.key, upload.error, error_type=kind))
        else:
            logs.append(self._log(upload.settles_at, "skip", upload.key, "Skipped: empty or unsupported file"))
        logs[-1]["processingTimeMs"] = took
        return logs

    def _log(
        self,
        at: float,
        action: str,
        key: str,
        message: str | None,
        *,
        chunks: int | None = None,
        error_type: str | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"action": action, "fileKey": key, "message": message, "timestamp": self._ts(at)}
        if chunks is not None:
            entry["chunkCount"] = chunks
        if error_type is not None:
            entry["errorType"] = error_type
        return entry
