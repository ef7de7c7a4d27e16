"""Value objects for one item's processing logs and indexed chunks (the Items API's per-item reads).

:class:`ItemLog` is one entry of ``GET .../items/{item_id}/logs`` (SDK 5.9 ``ItemLogsResponseItem``,
camelCase on the wire: ``chunkCount``, ``errorType``, ``fileKey``, ``processingTimeMs``);
:class:`ItemChunk` is one entry of ``GET .../items/{item_id}/chunks`` (``ItemChunksResponseItem``).
The item itself is :class:`~airflow_provider_aisearch.models.instances.Item`. Unknown extra fields
are ignored; a field of the wrong type raises
:class:`~airflow_provider_aisearch.models.instances.MalformedInstanceError`. Imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_aisearch.models.instances import (
    MalformedInstanceError,
    _object,
    _optional_count,
    _optional_mapping,
    _optional_size,
    _optional_str,
    _required_str,
)
from airflow_provider_aisearch.models.timestamps import format_timestamp, read_timestamps

__all__ = ["ItemChunk", "ItemLog"]


@dataclass(frozen=True)
class ItemLog:
    """
    One processing log entry of an item.

    :param action: What happened (e.g. ``"index"``, ``"error"``; Cloudflare's values are undocumented).
    :param timestamp: When (``None`` if absent or unreadable; then kept in ``unparsed_timestamps``).
    :param file_key: The item's key (``fileKey``).
    :param message: A human-readable line.
    :param error_type: The error's kind (``errorType``), on failures.
    :param chunk_count: Chunks produced (``chunkCount``).
    :param processing_time_ms: Processing time (``processingTimeMs``).
    """

    action: str
    timestamp: datetime | None = None
    file_key: str | None = None
    message: str | None = None
    error_type: str | None = None
    chunk_count: int | None = None
    processing_time_ms: int | None = None
    unparsed_timestamps: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_api(cls, raw: Any) -> ItemLog:
        """
        Build a log entry from the API's JSON object.

        :raises MalformedInstanceError: not an object, no string ``action``, or a field of the wrong type.
        """
        what = "an item log entry"
        data = _object(raw, what)
        times, unparsed = read_timestamps(data, ("timestamp",))
        return cls(
            action=_required_str(data, "action", what),
            timestamp=times["timestamp"],
            file_key=_optional_str(data, "fileKey", what),
            message=_optional_str(data, "message", what),
            error_type=_optional_str(data, "errorType", what),
            chunk_count=_optional_count(data, "chunkCount", what),
            processing_time_ms=_optional_count(data, "processingTimeMs", what),
            unparsed_timestamps=unparsed,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (snake_case keys, ISO 8601 timestamp)."""
        return {
            "action": self.action,
            "timestamp": format_timestamp(self.timestamp, self.unparsed_timestamps, "timestamp"),
            "file_key": self.file_key,
            "message": self.message,
            "error_type": self.error_type,
            "chunk_count": self.chunk_count,
            "processing_time_ms": self.processing_time_ms,
        }

    def line(self) -> str:
        """One log line: ``timestamp action [error_type] message``."""
        parts = [format_timestamp(self.timestamp, self.unparsed_timestamps, "timestamp") or "-", self.action]
        if self.error_type:
            parts.append(f"[{self.error_type}]")
        if self.message:
            parts.append(self.message)
        return " ".join(str(p) for p in parts)


@dataclass(frozen=True)
class ItemChunk:
    """
    One indexed chunk of an item.

    :param id: Chunk id.
    :param text: The chunk's text.
    :param key: The item's key (``item.key``).
    :param start_byte: Where the chunk starts in the file.
    :param end_byte: Where it ends.
    :param metadata: The item's metadata as stored with the chunk (``item.metadata``).
    """

    id: str
    text: str
    key: str | None = None
    start_byte: int | float | None = None
    end_byte: int | float | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)

    @classmethod
    def from_api(cls, raw: Any) -> ItemChunk:
        """
        Build a chunk from the API's JSON object.

        :raises MalformedInstanceError: not an object, no string ``id``, ``text`` not a string, or a
            field of the wrong type.
        """
        what = "an item chunk"
        data = _object(raw, what)
        text = data.get("text")
        if not isinstance(text, str):
            raise MalformedInstanceError(f"{what} has no string 'text'")
        item = _optional_mapping(data, "item", what) or {}
        return cls(
            id=_required_str(data, "id", what),
            text=text,
            key=_optional_str(item, "key", what + "'s item"),
            start_byte=_optional_size(data, "start_byte", what),
            end_byte=_optional_size(data, "end_byte", what),
            metadata=_optional_mapping(item, "metadata", what + "'s item"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "id": self.id,
            "text": self.text,
            "key": self.key,
            "start_byte": self.start_byte,
            "end_byte": self.end_byte,
            "metadata": None if self.metadata is None else dict(self.metadata),
        }
