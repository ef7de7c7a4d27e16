"""The golden set of the retrieval check (a list or a JSON/YAML file) and the verdict of its thresholds.

Pure parts: no request is sent. The metrics on real search answers are in tests/test_retrieval_check.py.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aisearch.models.retrieval import (
    RetrievalMetrics,
    RetrievalThresholds,
    score_query,
    validate_fraction,
)
from airflow_provider_aisearch.tasks.golden import GoldenQuery, check_golden_path, load_golden, parse_golden

GOLDEN = [
    {"query": "rotate an API token", "expected_keys": ["guides/tokens.md"]},
    {"query": "limits", "expected_keys": ["ref/limits.md", "ref/quotas.md"], "filters": {"folder": "ref/"}},
]
PARSED = [
    GoldenQuery("rotate an API token", ("guides/tokens.md",)),
    GoldenQuery("limits", ("ref/limits.md", "ref/quotas.md"), {"folder": "ref/"}),
]


def test_a_list_parses_into_queries() -> None:
    assert parse_golden(GOLDEN) == PARSED
    assert load_golden(tuple(GOLDEN)) == PARSED


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".YAML"])
def test_a_file_is_read_by_its_suffix_relative_to_the_folder(tmp_path: Path, suffix: str) -> None:
    yaml: Any = importlib.import_module("yaml")
    text = json.dumps(GOLDEN) if suffix == ".json" else yaml.safe_dump(GOLDEN)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"golden{suffix}").write_text(text)
    assert load_golden(f"data/golden{suffix}", folder=tmp_path) == PARSED
    assert load_golden(tmp_path / "data" / f"golden{suffix}") == PARSED  # absolute: as is


@pytest.mark.parametrize(
    ("golden", "match"),
    [
        ([], r"golden holds no query"),
        ("golden.txt", r"golden must be .* \.json, \.yaml or \.yml file, got 'golden.txt'"),
        ({"query": "q", "expected_keys": ["a"]}, r"golden must be a list"),
        ([{"expected_keys": ["a"]}], r"golden\[0\]: 'query' must be a non-empty string, got None"),
        ([{"query": "  ", "expected_keys": ["a"]}], r"golden\[0\]: 'query' must be a non-empty string"),
        ([{"query": "q"}], r"golden\[0\]: 'expected_keys' must be a non-empty list"),
        ([{"query": "q", "expected_keys": []}], r"golden\[0\]: 'expected_keys' must be a non-empty list"),
        ([{"query": "q", "expected_keys": "a.md"}], r"golden\[0\]: 'expected_keys' must be a non-empty list"),
        ([GOLDEN[0], {"query": "q", "expected_keys": ["a", 3]}], r"golden\[1\]: 'expected_keys' holds 3"),
        ([{"query": "q", "expected_keys": ["a", ""]}], r"golden\[0\]: 'expected_keys' holds ''"),
        ([{"query": "q", "expected_keys": ["a", "a"]}], r"golden\[0\]: 'expected_keys' names \['a'\] more than once"),
        ([{"query": "q", "expected_keys": ["a"], "filters": "x"}], r"golden\[0\]: 'filters' must be a mapping"),
        ([{"query": "q", "expected_key": ["a"]}], r"golden\[0\] has unknown field\(s\) \['expected_key'\]"),
        (["q"], r"golden\[0\] must be a mapping"),
    ],
)
def test_bad_golden_sets_name_the_entry_and_field(golden: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_golden(golden)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "broken.yaml").write_text("- query: [unclosed")
    (tmp_path / "bad.yml").write_text("- query: q\n  expected_keys: []\n")
    with pytest.raises(ValueError, match=r"golden file '.*broken.json' is not valid JSON"):
        load_golden("broken.json", folder=tmp_path)
    with pytest.raises(ValueError, match=r"golden file '.*broken.yaml' is not valid YAML"):
        load_golden("broken.yaml", folder=tmp_path)
    with pytest.raises(ValueError, match=r"golden file '.*bad.yml'\[0\]: 'expected_keys'"):
        load_golden("bad.yml", folder=tmp_path)
    with pytest.raises(ValueError, match=r"golden: cannot read '.*missing.json'"):
        load_golden("missing.json", folder=tmp_path)
    with pytest.raises(ValueError, match="golden must be"):
        check_golden_path("")


# -- metrics on hand-made rankings (the same cases run over HTTP in test_retrieval_check.py) -------------


def test_a_query_scores_the_first_expected_key_within_k() -> None:
    score = score_query("q", ["b", "d"], ["a", "b", "c", "d"], k=3)
    assert (score.rank, score.recall, score.reciprocal_rank, score.top_keys) == (2, 0.5, 0.5, ("a", "b", "c"))
    assert not score.passed  # "d" is beyond k
    assert score_query("q", ["x"], ["a", "b"], k=5).rank is None
    assert score_query("q", ["x"], ["a", "b"], k=5).reciprocal_rank == 0.0
    # More expected keys than k: finding k of them is all it can do.
    assert score_query("q", ["a", "b", "c"], ["a", "b"], k=2).passed


def test_the_aggregates_are_means_over_the_queries() -> None:
    metrics = RetrievalMetrics(
        3,
        (
            score_query("q1", ["a"], ["a", "b"], 3),  # rank 1
            score_query("q2", ["c", "z"], ["a", "b", "c"], 3),  # rank 3, recall 1/2
            score_query("q3", ["z"], ["a"], 3),  # no hit
        ),
    )
    assert metrics.hit_rate == pytest.approx(2 / 3)
    assert metrics.recall == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics.mrr == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert [s.query for s in metrics.missed()] == ["q2", "q3"]


# -- thresholds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["min_hit_rate", "min_recall", "min_mrr", "max_drop"])
@pytest.mark.parametrize("value", [-0.1, 1.5, True, "0.5", float("nan"), float("inf")])
def test_thresholds_outside_0_1_name_the_parameter(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        RetrievalThresholds.build(**{name: value})


def test_thresholds_pass_at_the_floor_despite_floating_point() -> None:
    metrics = RetrievalMetrics(1, tuple(score_query(f"q{i}", ["a"], ["a" if i < 7 else "b"], 1) for i in range(10)))
    assert metrics.hit_rate == pytest.approx(0.7)
    checked = RetrievalThresholds.build(min_hit_rate=0.7, max_drop=0.1).assertions(
        metrics, {"hit_rate": 0.8, "recall": 0.7, "mrr": 0.7}
    )
    assert [(a.name, a.success) for a in checked] == [
        ("min_hit_rate", True),
        ("max_drop:hit_rate", True),  # 0.8 - 0.7 is 0.10000000000000009
        ("max_drop:recall", True),
        ("max_drop:mrr", True),
    ]
    below = RetrievalThresholds.build(min_mrr=0.71, max_drop=0.09).assertions(metrics, {"hit_rate": 0.8})
    assert [(a.name, a.success) for a in below] == [("min_mrr", False), ("max_drop:hit_rate", False)]
    assert RetrievalThresholds.build(max_drop=0.0).assertions(metrics, None) == []  # no baseline: no drop


def test_validate_fraction_accepts_the_bounds() -> None:
    assert (validate_fraction("x", 0), validate_fraction("x", 1), validate_fraction("x", None)) == (0.0, 1.0, None)
