"""Search: ``POST .../namespaces/{ns}/instances/{id}/search`` as a plan (mixed into ``JobsAPI``).

:func:`search_body` validates every option and builds the request body once, in the shape of the
``cloudflare`` SDK 5.9's ``InstanceSearchParams`` (``query`` and ``ai_search_options`` with
``retrieval``, ``query_rewrite``, ``cache`` and ``reranking``); :class:`SearchOperations` holds the
endpoint method. The path and namespace rules (``JobsAPI.instance_path``: namespaced only), the
retry loop (``JobsAPI.request``) and the parsing (:mod:`.parse`) are the other endpoints' own, so
validation, retries, error mapping, the rate budget and both auth schemes are the same. A search
changes nothing, so it is retried like a GET (it is no create).

``cache`` and ``query_rewrite`` are always sent, ``enabled: false`` by default: a cached answer or a
rewritten query must not hide a regression in a retrieval check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api.parse import parse_search_result
from airflow_provider_aisearch.api.paths import UNSET, _Unset, validate_choice
from airflow_provider_aisearch.api.plans import Call, Plan
from airflow_provider_aisearch.models.search import SearchResult

__all__ = [
    "RETRIEVAL_TYPES",
    "SEARCH_MAX_NUM_RESULTS",
    "SearchOperations",
    "search_body",
    "validate_filters",
]

#: Cloudflare's limit on ``max_num_results`` ("The maximum allowed value is 50", retrieval configuration docs).
SEARCH_MAX_NUM_RESULTS = 50
#: The SDK's ``AISearchOptionsRetrieval.retrieval_type``.
RETRIEVAL_TYPES = ("vector", "keyword", "hybrid")
#: The SDK's ``AISearchOptionsReranking`` fields, with the types each takes.
_RERANKING_FIELDS: dict[str, tuple[type, ...]] = {"enabled": (bool,), "match_threshold": (int, float), "model": (str,)}


def _validate_unit(name: str, value: object) -> float:
    """:raises ValueError: naming ``name`` unless ``value`` is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return value


def _validate_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def validate_filters(filters: object) -> dict[str, Any]:
    """
    ``filters`` as the search sends it (a JSON copy); the golden set of a retrieval check checks its entries with it.

    :raises ValueError: naming ``filters`` unless it is a non-empty JSON object with string keys.
    """
    if not isinstance(filters, Mapping) or not filters:
        raise ValueError(f"filters must be a non-empty dict (e.g. {{'folder': 'docs/'}}) or None, got {filters!r}")
    if not all(isinstance(key, str) and key for key in filters):
        raise ValueError(f"filters keys must be non-empty strings, got {sorted(map(repr, filters))}")
    try:
        text = json.dumps(dict(filters), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"filters must be JSON (strings, numbers, booleans, lists, objects): {exc}") from None
    return dict(json.loads(text))


def _validate_reranking(reranking: object) -> dict[str, Any] | None:
    """``None`` (left to the instance), ``True``/``False`` (``{"enabled": ...}``) or the SDK's reranking object."""
    if reranking is None:
        return None
    if isinstance(reranking, bool):
        return {"enabled": reranking}
    if not isinstance(reranking, Mapping):
        raise ValueError(
            "reranking must be None, True, False or a dict of enabled/match_threshold/model, "
            f"got {type(reranking).__name__}"
        )
    unknown = sorted(str(key) for key in reranking if key not in _RERANKING_FIELDS)
    if unknown:
        raise ValueError(f"reranking takes {', '.join(sorted(_RERANKING_FIELDS))}, got unknown {unknown}")
    for key, value in reranking.items():
        if isinstance(value, bool) and bool not in _RERANKING_FIELDS[key]:
            raise ValueError(f"reranking[{key!r}] must not be a boolean, got {value!r}")
        if not isinstance(value, _RERANKING_FIELDS[key]):
            raise ValueError(f"reranking[{key!r}] has the wrong type: {value!r}")
    if "match_threshold" in reranking:
        _validate_unit("reranking['match_threshold']", reranking["match_threshold"])
    return dict(reranking)


def search_body(
    query: object,
    *,
    max_num_results: object = 10,
    retrieval_type: object = None,
    match_threshold: object = None,
    filters: object = None,
    rewrite_query: object = False,
    cache: object = False,
    reranking: object = None,
) -> dict[str, Any]:
    """
    Validate the search options and build the request body (the SDK's ``InstanceSearchParams`` shape).

    :raises ValueError: naming the first invalid parameter.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, got {query!r}")
    if (
        isinstance(max_num_results, bool)
        or not isinstance(max_num_results, int)
        or not 1 <= max_num_results <= SEARCH_MAX_NUM_RESULTS
    ):
        raise ValueError(
            f"max_num_results must be an integer from 1 to {SEARCH_MAX_NUM_RESULTS} (Cloudflare's limit), "
            f"got {max_num_results!r}"
        )
    retrieval: dict[str, Any] = {"max_num_results": max_num_results}
    if retrieval_type is not None:
        retrieval["retrieval_type"] = validate_choice("retrieval_type", retrieval_type, RETRIEVAL_TYPES)
    if match_threshold is not None:
        retrieval["match_threshold"] = _validate_unit("match_threshold", match_threshold)  # NaN fails the range
    if filters is not None:
        retrieval["filters"] = validate_filters(filters)
    options: dict[str, Any] = {
        "retrieval": retrieval,
        "query_rewrite": {"enabled": _validate_flag("rewrite_query", rewrite_query)},
        "cache": {"enabled": _validate_flag("cache", cache)},
    }
    rerank = _validate_reranking(reranking)
    if rerank is not None:
        options["reranking"] = rerank
    return {"query": query, "ai_search_options": options}


class SearchOperations:
    """
    The search endpoint of :class:`~airflow_provider_aisearch.api.operations.JobsAPI` (a mixin).

    :meth:`search` validates its arguments when called (before any request) and returns a plan.
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

    def search(
        self,
        instance_id: str,
        query: str,
        *,
        namespace: str | _Unset | None = UNSET,
        max_num_results: int = 10,
        retrieval_type: str | None = None,
        match_threshold: float | None = None,
        filters: Mapping[str, Any] | None = None,
        rewrite_query: bool = False,
        cache: bool = False,
        reranking: bool | Mapping[str, Any] | None = None,
    ) -> Plan[SearchResult]:
        """
        Search the instance (``POST .../namespaces/{ns}/instances/{id}/search``; namespaced only).

        The body is built once (:func:`search_body`); see
        :meth:`~airflow_provider_aisearch.hooks.AISearchHook.search` for the parameters.
        """
        body = search_body(
            query,
            max_num_results=max_num_results,
            retrieval_type=retrieval_type,
            match_threshold=match_threshold,
            filters=filters,
            rewrite_query=rewrite_query,
            cache=cache,
            reranking=reranking,
        )
        path = self.instance_path(instance_id, "search", namespace=namespace)
        return self._search(path, body)

    def _search(self, path: str, body: dict[str, Any]) -> Plan[SearchResult]:
        payload = yield from self.request(Call("POST", path, json_body=body))
        return parse_search_result(payload, method="POST", path=path)
