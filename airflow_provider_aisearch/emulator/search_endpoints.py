"""The search endpoint: ``POST .../namespaces/{ns}/instances/{id}/search`` on the instance's documents.

Only documents (:mod:`.documents`) whose item is ``completed`` now are searched (:mod:`.items`:
right after a job starts they are ``queued``, so a search then can miss them), and only those whose
metadata passes ``ai_search_options.retrieval.filters`` (:mod:`.search_filters`). Each is cut into
chunks and scored with BM25 (:mod:`.search_index`) whatever the ``retrieval_type`` (``keyword``,
``vector`` and ``hybrid`` all use BM25 here). ``keyword_match_mode`` ``"and"`` keeps the chunks holding
every query term; by default (``"or"``, as a vector search would) any chunk holding one counts.

The answer is the SDK 5.9 ``InstanceSearchResponse``: chunks best first (ties by key, then position),
at most ``max_num_results`` (default 10, 1-50), each with ``score`` = ``bm25 / (1 + bm25)`` (in
[0, 1), which ``match_threshold`` is compared with), its ``item`` (``key``, ``metadata`` with
``folder``, ``filename``, ``timestamp`` and custom fields, ``timestamp`` in milliseconds) and
``scoring_details`` ``keyword_rank`` (1-based) / ``keyword_score`` (the raw BM25 score). Invalid
options get a 400 (code 7001) with the offending field's ``path``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_provider_aisearch.emulator.envelopes import AUTH_ERROR, NOT_FOUND_INSTANCE, Reply, error, invalid, ok
from airflow_provider_aisearch.emulator.items import ItemState
from airflow_provider_aisearch.emulator.search_filters import FilterError, compile_filter
from airflow_provider_aisearch.emulator.search_index import bm25, chunk_text, tokenize

__all__ = ["MAX_NUM_RESULTS", "SearchEndpoints"]

MAX_NUM_RESULTS = 50
_RETRIEVAL = ("ai_search_options", "retrieval")


class _BadRequest(Exception):
    def __init__(self, message: str, *path: str) -> None:
        super().__init__(message)
        self.entry = invalid(message, *path)


def _query_of(body: dict[str, Any]) -> str:
    query = body.get("query")
    if query is None and isinstance(body.get("messages"), list):
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        query = content if isinstance(content, str) else None
    if not isinstance(query, str) or not query.strip():
        raise _BadRequest("query must be a non-empty string (or messages must end with a user message)", "query")
    return query


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("ai_search_options", {})
    if not isinstance(options, dict):
        raise _BadRequest("ai_search_options must be an object", "ai_search_options")
    retrieval = options.get("retrieval", {})
    if not isinstance(retrieval, dict):
        raise _BadRequest("retrieval must be an object", *_RETRIEVAL)
    count = retrieval.get("max_num_results", 10)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_NUM_RESULTS:
        raise _BadRequest(
            f"max_num_results must be an integer from 1 to {MAX_NUM_RESULTS}", *_RETRIEVAL, "max_num_results"
        )
    kind = retrieval.get("retrieval_type", "hybrid")
    if kind not in ("vector", "keyword", "hybrid"):
        raise _BadRequest("retrieval_type must be one of vector, keyword, hybrid", *_RETRIEVAL, "retrieval_type")
    threshold = retrieval.get("match_threshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise _BadRequest("match_threshold must be a number from 0 to 1", *_RETRIEVAL, "match_threshold")
    mode = retrieval.get("keyword_match_mode", "or")
    if mode not in ("and", "or"):
        raise _BadRequest("keyword_match_mode must be 'and' or 'or'", *_RETRIEVAL, "keyword_match_mode")
    return {
        "max_num_results": count,
        "match_threshold": float(threshold),
        "mode": mode,
        "filters": retrieval.get("filters"),
    }


def _chunk_id(namespace: str, instance_id: str, key: str, index: int) -> str:
    digest = hashlib.sha256(f"{namespace}/{instance_id}/{key}#{index}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class SearchEndpoints(ItemState):
    """The search route of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`."""

    account_id: str

    def _search_endpoint(self, method: str, segments: tuple[str, ...], body: Any) -> Reply:
        """Answer an authenticated request to the ``search`` route."""
        account, namespace, instance_id = segments[:3]
        if account != self.account_id:
            return error(403, AUTH_ERROR)
        if method != "POST":
            return error(405, {"code": 10405, "message": "Method not allowed"})
        try:
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            query = _query_of(body)
            options = _options(body)
            matches = None if options["filters"] is None else compile_filter(options["filters"])
        except _BadRequest as exc:
            return error(400, exc.entry)
        except FilterError as exc:
            return error(400, invalid(str(exc), *_RETRIEVAL, "filters"))
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                return error(404, NOT_FOUND_INSTANCE)
            completed = {view.key for view in self._item_views(inst) if view.status == "completed"}
            documents = [
                doc
                for doc in self._documents.documents(namespace, instance_id)
                if doc.key in completed and (matches is None or matches(doc.item_metadata()))
            ]
        pieces = [(doc, index, text) for doc in documents for index, text in enumerate(chunk_text(doc.text))]
        scores = bm25(query, [text for _, _, text in pieces])
        terms = set(tokenize(query))
        ranked = sorted(
            (
                (score, doc.key, index, doc, text)
                for score, (doc, index, text) in zip(scores, pieces, strict=True)
                if score > 0 and (options["mode"] == "or" or terms <= set(tokenize(text)))
            ),
            key=lambda entry: (-entry[0], entry[1], entry[2]),
        )
        chunks = []
        for rank, (score, key, index, doc, text) in enumerate(ranked, start=1):
            fused = round(score / (1.0 + score), 6)
            if fused < options["match_threshold"]:
                continue
            chunks.append(
                {
                    "id": _chunk_id(namespace, instance_id, key, index),
                    "score": fused,
                    "text": text,
                    "type": "text",
                    "item": {"key": key, "metadata": doc.item_metadata(), "timestamp": int(doc.timestamp * 1000)},
                    "scoring_details": {"keyword_rank": rank, "keyword_score": round(score, 6)},
                }
            )
            if len(chunks) == options["max_num_results"]:
                break
        return ok({"chunks": chunks, "search_query": query, "query_kind": "text"})
