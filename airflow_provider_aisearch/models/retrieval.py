"""Retrieval metrics by item key: how well a search answered golden queries, and the verdict on them.

The unit is the item (the document), not the chunk: a search returns chunks, several of which may
come from one item, and an item counts once, at the rank of its best chunk. Callers hand in the
distinct keys in rank order (``SearchResult.item_keys()``, the one place chunks are folded into keys).

For one query with expected keys ``E`` and the top ``k`` distinct keys ``T``:

- ``rank``: the 1-based position in ``T`` of the first key that is in ``E``, or ``None``;
- ``recall``: ``|E ∩ T| / |E|`` (recall@k);
- ``reciprocal_rank``: ``1 / rank``, or 0.0 without a hit.

Over the queries: ``hit_rate`` (the share of queries with a rank), ``recall`` (mean recall@k) and
``mrr`` (mean reciprocal rank). :class:`RetrievalThresholds` judges them: each ``min_*`` is a floor,
``max_drop`` the largest fall of any metric against a baseline (the last good run). Every
comparison allows :data:`TOLERANCE` for floating point (0.7 against a floor of 0.7 passes, and a
fall from 0.8 to 0.7 is a drop of 0.1, not 0.10000000000000009).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "METRICS",
    "TOLERANCE",
    "Assertion",
    "QueryScore",
    "RetrievalMetrics",
    "RetrievalThresholds",
    "score_query",
    "validate_fraction",
]

#: The aggregate metrics, in the order they are reported.
METRICS = ("hit_rate", "recall", "mrr")
#: Slack of every threshold comparison (floating point).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class QueryScore:
    """
    One golden query's outcome.

    :param query: The query text.
    :param expected_keys: The item keys it must find.
    :param top_keys: The top ``k`` distinct item keys returned, best first.
    :param rank: 1-based rank of the first expected key within ``top_keys``, or ``None``.
    :param recall: Share of ``expected_keys`` within ``top_keys``.
    :param found: How many of ``expected_keys`` are within ``top_keys``.
    :param k: How many keys counted.
    """

    query: str
    expected_keys: tuple[str, ...]
    top_keys: tuple[str, ...]
    rank: int | None
    recall: float
    found: int
    k: int

    @property
    def reciprocal_rank(self) -> float:
        """``1 / rank``, or 0.0 without a hit."""
        return 0.0 if self.rank is None else 1.0 / self.rank

    @property
    def passed(self) -> bool:
        """
        Whether the query found all it could: every expected key, or ``k`` of them when it expects more
        than ``k`` (a query that passed is not re-sent in a consistency window, nor logged as missed).
        """
        return self.found >= min(len(self.expected_keys), self.k)

    def to_dict(self) -> dict[str, Any]:
        """The XCom entry: ``{"query", "rank", "recall", "top_keys"}``."""
        return {"query": self.query, "rank": self.rank, "recall": self.recall, "top_keys": list(self.top_keys)}


def score_query(query: str, expected_keys: Sequence[str], ranked_keys: Sequence[str], k: int) -> QueryScore:
    """
    Score one query.

    :param query: The query text.
    :param expected_keys: Distinct, non-empty keys it must find.
    :param ranked_keys: The distinct item keys the search returned, best first (``SearchResult.item_keys()``).
    :param k: How many of them count.
    """
    top = tuple(ranked_keys[:k])
    expected = set(expected_keys)
    rank = next((position for position, key in enumerate(top, 1) if key in expected), None)
    found = len(expected.intersection(top))
    return QueryScore(query, tuple(expected_keys), top, rank, found / len(expected) if expected else 0.0, found, k)


@dataclass(frozen=True)
class RetrievalMetrics:
    """
    The aggregates over every golden query.

    :param k: How many keys of each answer counted.
    :param scores: Each query's score, in the golden set's order.
    """

    k: int
    scores: tuple[QueryScore, ...]

    @property
    def hit_rate(self) -> float:
        """The share of queries with an expected key within the top ``k``."""
        return _mean([0.0 if s.rank is None else 1.0 for s in self.scores])

    @property
    def recall(self) -> float:
        """Mean recall@k."""
        return _mean([s.recall for s in self.scores])

    @property
    def mrr(self) -> float:
        """Mean reciprocal rank."""
        return _mean([s.reciprocal_rank for s in self.scores])

    def values(self) -> dict[str, float]:
        """``{"hit_rate", "recall", "mrr"}``."""
        return {name: getattr(self, name) for name in METRICS}

    def missed(self) -> list[QueryScore]:
        """The queries that did not find every expected key within the top ``k``."""
        return [s for s in self.scores if not s.passed]

    def to_dict(self, baseline: Mapping[str, Any] | None) -> dict[str, Any]:
        """
        The XCom value: ``{"k", "queries", "hit_rate", "recall", "mrr", "per_query", "baseline"}``.

        :param baseline: ``{"hit_rate", "recall", "mrr", "run_id"}`` of the last good run, or ``None``.
        """
        return {
            "k": self.k,
            "queries": len(self.scores),
            **self.values(),
            "per_query": [s.to_dict() for s in self.scores],
            "baseline": None if baseline is None else dict(baseline),
        }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def validate_fraction(name: str, value: object) -> float | None:
    """
    ``value`` as a float in [0, 1], or ``None``.

    :raises ValueError: naming ``name``: a bool, a non-number, NaN, or a value outside [0, 1].
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in [0, 1] or None, got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Assertion:
    """
    One threshold checked: ``hit_rate >= 0.8`` or ``mrr`` fell by at most ``max_drop``.

    :param name: ``min_hit_rate``, ``min_recall``, ``min_mrr`` or ``max_drop:<metric>``.
    :param metric: The metric it is about.
    :param expected: The floor (``min_*``) or the largest allowed fall (``max_drop``).
    :param actual: The metric (``min_*``) or its fall against the baseline (``max_drop``; negative: it rose).
    :param success: Whether it held.
    """

    name: str
    metric: str
    expected: float
    actual: float
    success: bool

    def describe(self) -> str:
        """The assertion in words, for the log and the error."""
        if self.name.startswith("max_drop"):
            return f"{self.metric} fell by {self.actual:.4f} (max_drop={self.expected:g})"
        return f"{self.metric}={self.actual:.4f} ({self.name}={self.expected:g})"


@dataclass(frozen=True)
class RetrievalThresholds:
    """
    The floors and the largest allowed fall, validated when the operator is built.

    :param min_hit_rate: ``None`` or a floor in [0, 1].
    :param min_recall: ``None`` or a floor in [0, 1].
    :param min_mrr: ``None`` or a floor in [0, 1].
    :param max_drop: ``None`` or, in [0, 1], the largest allowed fall of any metric against the baseline.
    """

    min_hit_rate: float | None = None
    min_recall: float | None = None
    min_mrr: float | None = None
    max_drop: float | None = None

    @classmethod
    def build(
        cls,
        *,
        min_hit_rate: float | None = None,
        min_recall: float | None = None,
        min_mrr: float | None = None,
        max_drop: float | None = None,
    ) -> RetrievalThresholds:
        """
        Validate the operator's thresholds.

        :raises ValueError: naming the parameter that is not ``None`` or a number in [0, 1].
        """
        return cls(
            validate_fraction("min_hit_rate", min_hit_rate),
            validate_fraction("min_recall", min_recall),
            validate_fraction("min_mrr", min_mrr),
            validate_fraction("max_drop", max_drop),
        )

    def assertions(self, metrics: RetrievalMetrics, baseline: Mapping[str, Any] | None) -> list[Assertion]:
        """
        Every threshold set, checked: the floors, then (with a baseline) ``max_drop`` for each metric.

        :param metrics: This run's metrics.
        :param baseline: The last good run's ``{"hit_rate", "recall", "mrr", ...}``, or ``None``
            (then ``max_drop`` is not checked).
        """
        values = metrics.values()
        checked: list[Assertion] = []
        for metric in METRICS:
            floor: float | None = getattr(self, f"min_{metric}")
            if floor is not None:
                checked.append(
                    Assertion(f"min_{metric}", metric, floor, values[metric], values[metric] >= floor - TOLERANCE)
                )
        if self.max_drop is not None and baseline is not None:
            for metric in METRICS:
                before = baseline.get(metric)
                if isinstance(before, bool) or not isinstance(before, (int, float)):
                    continue  # a baseline without this metric: nothing to compare
                drop = float(before) - values[metric]
                checked.append(
                    Assertion(f"max_drop:{metric}", metric, self.max_drop, drop, drop <= self.max_drop + TOLERANCE)
                )
        return checked
