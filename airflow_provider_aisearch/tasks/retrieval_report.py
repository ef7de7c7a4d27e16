"""The task log of a retrieval check: first every missed query and what it got, then the metrics table.

A missed query (one that did not find every expected key, or ``k`` of them, within the top ``k``) is
logged with its expected keys, its rank and recall, and each of the top ``k`` keys it got with the
score and ``scoring_details`` of that item's best chunk. The table has one row per metric: the value,
the baseline's, and each threshold on it with whether it held. Chunk text never reaches the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_aisearch.models.retrieval import METRICS, Assertion, RetrievalMetrics
from airflow_provider_aisearch.models.search import SearchChunk, SearchResult

__all__ = ["log_metrics", "log_missed"]


def _best_chunk(result: SearchResult, key: str) -> SearchChunk | None:
    """The first (best) chunk of item ``key`` in the answer (``SearchResult.item_keys`` ranks keys by it)."""
    return next((chunk for chunk in result.chunks if chunk.item_key == key), None)


def _details(chunk: SearchChunk | None) -> str:
    if chunk is None:
        return "score=? scoring_details={}"
    return f"score={chunk.score:.4f} scoring_details={json.dumps(chunk.scoring_details, sort_keys=True, default=str)}"


def log_missed(log: Any, metrics: RetrievalMetrics, results: Sequence[SearchResult], *, failed: bool) -> None:
    """
    Every missed query, with the top keys it got (at ERROR level when the check failed, else WARNING).

    :param log: The task log.
    :param metrics: The scores, one per query.
    :param results: The search answers, in the same order.
    :param failed: Whether the check failed.
    """
    emit = log.error if failed else log.warning
    missed = [(index, score) for index, score in enumerate(metrics.scores) if not score.passed]
    if not missed:
        return
    emit("%d of %d golden queries missed (top k=%d item keys):", len(missed), len(metrics.scores), metrics.k)
    for index, score in missed:
        emit(
            "Missed query %d %r: expected %s; rank %s, recall %.2f (%d of %d found)",
            index + 1,
            score.query,
            list(score.expected_keys),
            score.rank if score.rank is not None else "-",
            score.recall,
            score.found,
            len(score.expected_keys),
        )
        if not score.top_keys:
            emit("    (no item found)")
        for position, key in enumerate(score.top_keys, 1):
            mark = "*" if key in score.expected_keys else " "
            emit("  %s %d. %s %s", mark, position, key, _details(_best_chunk(results[index], key)))


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def log_metrics(
    log: Any, metrics: RetrievalMetrics, baseline: Mapping[str, Any] | None, assertions: Sequence[Assertion]
) -> None:
    """
    The metrics table: value, baseline and the thresholds on each metric (ERROR when one failed).

    :param log: The task log.
    :param metrics: This run's metrics.
    :param baseline: The baseline, or ``None``.
    :param assertions: Every threshold checked.
    """
    failed = any(not a.success for a in assertions)
    emit = log.error if failed else log.info
    where = f" (baseline: run {baseline.get('run_id')})" if baseline else " (no baseline)"
    emit("Retrieval metrics over %d queries, k=%d%s:", len(metrics.scores), metrics.k, where)
    emit("  %-9s %-8s %-8s %s", "metric", "value", "baseline", "thresholds")
    values = metrics.values()
    for metric in METRICS:
        checks = [
            f"{a.name.split(':')[0]}={a.expected:g} {'ok' if a.success else 'FAILED'}"
            for a in assertions
            if a.metric == metric
        ]
        emit(
            "  %-9s %-8s %-8s %s",
            metric,
            _fmt(values[metric]),
            _fmt(baseline.get(metric) if baseline else None),
            ", ".join(checks) or "-",
        )
