"""The hook's search: one query against an instance's index (a mixin of ``AISearchHook``).

:class:`SearchReads` drives the core's search plan
(:class:`~airflow_provider_aisearch.api.search_operations.SearchOperations`) with the hook's own ``run``,
so validation, retries, error mapping, the rate budget, both auth schemes and the path rules are
the other endpoints'. The async client runs the same plan: ``await client.run(client.api.search(...))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_aisearch.api import UNSET, JobsAPI, Plan, _Unset
from airflow_provider_aisearch.models.search import SearchResult

__all__ = ["SearchReads"]

T = TypeVar("T")


class SearchReads:
    """
    The search endpoint of :class:`~airflow_provider_aisearch.hooks.AISearchHook` (a mixin).

    Every argument is validated when called, before any request.
    """

    if TYPE_CHECKING:  # provided by AISearchHook

        @property
        def api(self) -> JobsAPI:
            """``AISearchHook.api``."""
            ...

        def run(self, plan: Plan[T]) -> T:
            """``AISearchHook.run``."""
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
    ) -> SearchResult:
        """
        Search the instance's index (``POST .../namespaces/{ns}/instances/{id}/search``), best chunks first.

        A search changes nothing, so it is retried like a read. The search exists only in the
        namespaced form: ``namespace=None`` raises a ``ValueError`` naming ``namespace`` before any
        request (as does any other invalid argument). ``cache`` and ``rewrite_query`` are sent
        explicitly (``enabled: false`` by default), so that neither a cached answer nor a rewritten
        query can hide a regression.

        :param instance_id: AI Search instance id.
        :param query: The text to search for (non-empty).
        :param namespace: Overrides the hook's namespace.
        :param max_num_results: The most chunks returned, 1-50 (Cloudflare's limit).
        :param retrieval_type: ``"vector"``, ``"keyword"`` or ``"hybrid"`` (``None``: the instance's setting).
        :param match_threshold: The lowest score a chunk may have, 0-1 (``None``: the instance's setting).
        :param filters: A metadata filter, as Cloudflare takes it (e.g. ``{"folder": "docs/"}``), or ``None``.
        :param rewrite_query: Let Cloudflare rewrite the query before searching.
        :param cache: Let Cloudflare answer from its similarity cache.
        :param reranking: ``None`` (the instance's setting), ``True``/``False`` (``{"enabled": ...}``), or a
            dict of ``enabled``, ``match_threshold``, ``model``.
        :return: The chunks found, in Cloudflare's order, with ``search_query`` and ``query_kind``.
        """
        plan = self.api.search(
            instance_id,
            query,
            namespace=namespace,
            max_num_results=max_num_results,
            retrieval_type=retrieval_type,
            match_threshold=match_threshold,
            filters=filters,
            rewrite_query=rewrite_query,
            cache=cache,
            reranking=reranking,
        )
        return self.run(plan)
