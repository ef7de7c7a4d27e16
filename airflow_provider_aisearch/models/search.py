"""Value objects for a search answer: the chunks Cloudflare found for a query, best first.

:class:`SearchResult` is ``POST .../namespaces/{ns}/instances/{id}/search``'s ``result``;
:class:`SearchChunk` is one of its ``chunks``. Shapes follow the ``cloudflare`` SDK 5.9 type
``InstanceSearchResponse`` (``chunks[]``: ``id``, ``score``, ``text``, ``type``, ``item {key, metadata,
timestamp}``, ``scoring_details``; ``query_kind``; ``search_query``). Unknown extra fields are
ignored; a field of the wrong type raises :class:`MalformedSearchError` (a
:class:`~airflow_provider_aisearch.models.jobs.MalformedJobError`, which the core turns into
:class:`~airflow_provider_aisearch.exceptions.AISearchResponseError`).

Like :mod:`~airflow_provider_aisearch.models.jobs`, this module imports nothing from Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aisearch.models.jobs import MalformedJobError

__all__ = ["MalformedSearchError", "SearchChunk", "SearchResult"]


class MalformedSearchError(MalformedJobError):
    """A search answer that does not have the shape Cloudflare documents."""


def _number(raw: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedSearchError(f"chunk field {name!r} must be a number, got {value!r}")
    return float(value)


def _string(raw: Mapping[str, Any], name: str, *, required: bool, where: str = "chunk") -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MalformedSearchError(f"{where} field {name!r} must be a string, got {value!r}")
    return value


def _object(raw: Mapping[str, Any], name: str, where: str = "chunk") -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedSearchError(f"{where} field {name!r} must be an object, got {value!r}")
    return dict(value)


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """A copy that ``json.dumps`` accepts (metadata is free-form: anything else becomes its ``str``)."""
    return dict(json.loads(json.dumps(value, default=str)))


@dataclass(frozen=True)
class SearchChunk:
    """
    One chunk of a search answer: a piece of an indexed item, with its score.

    :param id: The chunk's id.
    :param score: Its score (higher is better; Cloudflare's fused score in hybrid search).
    :param text: The chunk's text.
    :param type: The chunk's type (``"text"``, ...; ``None`` when not sent).
    :param item_key: The key of the item (file or page) the chunk belongs to (``""`` when not sent).
    :param item_metadata: The item's metadata (``folder``, ``filename``, custom fields).
    :param item_timestamp: The item's ``timestamp`` as sent (a number; ``None`` when not sent).
    :param scoring_details: ``vector_rank``/``vector_score``, ``keyword_rank``/``keyword_score``,
        ``reranking_score``, ``fusion_method``, as sent.
    """

    id: str
    score: float
    text: str
    type: str | None = None
    item_key: str = ""
    item_metadata: dict[str, Any] = field(default_factory=dict)
    item_timestamp: float | None = None
    scoring_details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: Any) -> SearchChunk:
        """
        Build a chunk from one entry of the answer's ``chunks``.

        :raises MalformedSearchError: a field of the wrong type, or ``id``/``score``/``text`` missing.
        """
        if not isinstance(raw, Mapping):
            raise MalformedSearchError(f"a chunk must be an object, got {raw!r}")
        item = _object(raw, "item")
        score = _number(raw, "score", required=True)
        assert score is not None
        return cls(
            id=str(_string(raw, "id", required=True)),
            score=score,
            text=str(_string(raw, "text", required=True)),
            type=_string(raw, "type", required=False),
            item_key=_string(item, "key", required=False, where="chunk item") or "",
            item_metadata=_object(item, "metadata", "chunk item"),
            item_timestamp=_number(item, "timestamp", required=False),
            scoring_details=_object(raw, "scoring_details"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The chunk as JSON-safe values (XCom, logs)."""
        return {
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "type": self.type,
            "item_key": self.item_key,
            "item_metadata": _json_safe(self.item_metadata),
            "item_timestamp": self.item_timestamp,
            "scoring_details": _json_safe(self.scoring_details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchChunk:
        """The inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            score=float(data["score"]),
            text=data["text"],
            type=data.get("type"),
            item_key=data.get("item_key", ""),
            item_metadata=dict(data.get("item_metadata") or {}),
            item_timestamp=data.get("item_timestamp"),
            scoring_details=dict(data.get("scoring_details") or {}),
        )


@dataclass(frozen=True)
class SearchResult:
    """
    A search answer: the chunks found, best first, and how Cloudflare read the query.

    :param chunks: The chunks, in the order Cloudflare ranked them.
    :param search_query: The query Cloudflare searched with (the rewritten one when rewriting is on).
    :param query_kind: ``"text"``, ``"image"`` or ``"multimodal"`` (``None`` when not sent).
    """

    chunks: list[SearchChunk] = field(default_factory=list)
    search_query: str | None = None
    query_kind: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> SearchResult:
        """
        Build a result from the answer's ``result`` object.

        :raises MalformedSearchError: ``chunks`` is not a list, or a chunk or field is malformed.
        """
        if not isinstance(raw, Mapping):
            raise MalformedSearchError(f"a search result must be an object, got {raw!r}")
        chunks = raw.get("chunks")
        if chunks is None:
            chunks = []
        if not isinstance(chunks, list):
            raise MalformedSearchError(f"'chunks' must be a list, got {chunks!r}")
        return cls(
            chunks=[SearchChunk.from_api(chunk) for chunk in chunks],
            search_query=_string(raw, "search_query", required=False, where="search result"),
            query_kind=_string(raw, "query_kind", required=False, where="search result"),
        )

    def item_keys(self, k: int | None = None) -> list[str]:
        """
        The distinct item keys, each in the rank of its best (first) chunk.

        Chunks without an item key are skipped.

        :param k: Only the first ``k`` keys (``None``: all).
        """
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ValueError(f"k must be an integer >= 0 or None, got {k!r}")
        keys: list[str] = []
        seen: set[str] = set()
        for chunk in self.chunks:
            if chunk.item_key and chunk.item_key not in seen:
                seen.add(chunk.item_key)
                keys.append(chunk.item_key)
        return keys if k is None else keys[:k]

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe values (XCom, logs)."""
        return {
            "chunks": [chunk.to_dict() for chunk in self.chunks],
            "search_query": self.search_query,
            "query_kind": self.query_kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        """The inverse of :meth:`to_dict`."""
        return cls(
            chunks=[SearchChunk.from_dict(chunk) for chunk in data.get("chunks") or []],
            search_query=data.get("search_query"),
            query_kind=data.get("query_kind"),
        )
