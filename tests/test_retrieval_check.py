"""AISearchRetrievalCheckOperator over real HTTP against the emulator's BM25 search (issue 23).

The corpus is written so that the ranks can be worked out by hand: the query ``zebra`` finds the two
chunks of ``big.md`` (a 380-word document, cut into two chunks of 200 words, both full of "zebra"),
then ``c.md`` (two "zebra" in ten words), then ``b.md`` (one); ``yak`` finds ``d.md`` only. Each
test first asserts that premise on the raw answer, then the metrics.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import AISearchError, AISearchRetrievalCheckError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.operators import AISearchRetrievalCheckOperator
from airflow_provider_aisearch.tasks.retrieval_check import BASELINE_XCOM_KEY
from tests.operator_helpers import FAST

BIG = " ".join(["zebra stripes"] * 190)  # 380 words: chunks of words 0-199 and 180-379
CORPUS = {
    "big.md": BIG,
    "c.md": "zebra zebra one two three four five six seven eight",
    "b.md": "zebra one two three four five six seven eight nine",
    "d.md": "yak one two three four five six seven eight nine",
}
GOLDEN = [
    {"query": "zebra", "expected_keys": ["c.md"]},  # keys [big, c, b]: rank 2, not 3 (big counts once)
    {"query": "zebra", "expected_keys": ["b.md", "c.md"]},  # k=2: b is beyond k, recall 1/2
    {"query": "yak", "expected_keys": ["b.md"]},  # no expected key found
]
HIT_RATE, RECALL, MRR = 2 / 3, (1 + 0.5 + 0) / 3, (0.5 + 0.5 + 0) / 3


class TI:
    """A task instance as the operator sees it: its run id, map index and XComs (one dict per run)."""

    map_index = -1

    def __init__(self, run_id: str = "run-2", store: dict[str, dict[str, Any]] | None = None) -> None:
        self.run_id = run_id
        self.store = store if store is not None else {}
        self.pulls: list[dict[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.store.setdefault(self.run_id, {})[key] = value

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulls.append(kwargs)
        assert kwargs["include_prior_dates"] is True and kwargs["key"] == BASELINE_XCOM_KEY
        for run_id in sorted(self.store, reverse=True):  # the newest run first
            if kwargs["key"] in self.store[run_id]:
                return self.store[run_id][kwargs["key"]]
        return None


def check(**kwargs: Any) -> AISearchRetrievalCheckOperator:
    kwargs.setdefault("task_id", "check")
    kwargs.setdefault("instance_id", "kb")
    kwargs.setdefault("golden", GOLDEN)
    kwargs.setdefault("k", 2)
    kwargs.setdefault("hook_params", FAST)
    return AISearchRetrievalCheckOperator(**kwargs)


def run(op: AISearchRetrievalCheckOperator, ti: TI | None = None) -> dict[str, Any]:
    context: Any = {"ti": ti or TI()}
    result: dict[str, Any] = op.execute(context)
    return result


@pytest.fixture
def docs(emu: AISearchEmulator) -> AISearchEmulator:
    emu.add_instance("kb", documents=CORPUS)
    return emu


def logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """The task log: Airflow 2 logs through ``logging``, Airflow 3 through structlog to stdout."""
    return caplog.text + capsys.readouterr().out


def searches(emu: AISearchEmulator) -> list[Any]:
    return emu.requests_to(route="search", method="POST")


def test_the_premise_the_answers_rank_as_worked_out_by_hand(docs: AISearchEmulator, hook: AISearchHook) -> None:
    zebra = hook.search("kb", "zebra")
    assert [c.item_key for c in zebra.chunks] == ["big.md", "big.md", "c.md", "b.md"]
    assert zebra.item_keys() == ["big.md", "c.md", "b.md"]
    assert hook.search("kb", "yak").item_keys() == ["d.md"]


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_by_item_key_duplicates_count_once_hits_beyond_k_do_not_count(docs: AISearchEmulator) -> None:
    value = run(check())
    assert value == {
        "k": 2,
        "queries": 3,
        "hit_rate": pytest.approx(HIT_RATE),
        "recall": pytest.approx(RECALL),
        "mrr": pytest.approx(MRR),
        "per_query": [
            {"query": "zebra", "rank": 2, "recall": 1.0, "top_keys": ["big.md", "c.md"]},
            {"query": "zebra", "rank": 2, "recall": 0.5, "top_keys": ["big.md", "c.md"]},
            {"query": "yak", "rank": None, "recall": 0.0, "top_keys": ["d.md"]},
        ],
        "baseline": None,
    }
    assert len(searches(docs)) == 3  # each query once


def test_k_counts_keys_not_chunks(docs: AISearchEmulator) -> None:
    value = run(check(k=3))  # the 3 best keys span 4 chunks
    assert [q["top_keys"] for q in value["per_query"]][:2] == [["big.md", "c.md", "b.md"]] * 2
    assert (value["per_query"][1]["rank"], value["per_query"][1]["recall"]) == (2, 1.0)
    assert value["hit_rate"] == pytest.approx(2 / 3) and value["recall"] == pytest.approx(2 / 3)


def test_every_search_is_sent_uncached_unrewritten_with_the_entrys_filters(docs: AISearchEmulator) -> None:
    golden = [{"query": "zebra", "expected_keys": ["c.md"], "filters": {"filename": "c.md"}}]
    value = run(check(golden=golden, retrieval_type="keyword", k=1))
    assert value["per_query"][0]["top_keys"] == ["c.md"]  # the filter left c.md only
    (sent,) = searches(docs)
    options = sent.body["ai_search_options"]
    assert sent.body["query"] == "zebra"
    assert options["cache"]["enabled"] is False and options["query_rewrite"]["enabled"] is False
    assert options["retrieval"]["retrieval_type"] == "keyword"
    assert options["retrieval"]["max_num_results"] == 50  # the default: Cloudflare's most
    assert options["retrieval"]["filters"] == {"filename": "c.md"}
    run(check(golden=GOLDEN[:1], max_num_results=7))
    assert searches(docs)[-1].body["ai_search_options"]["retrieval"]["max_num_results"] == 7


# -- thresholds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "failing", "passing"),
    [("min_hit_rate", 0.67, 0.66), ("min_recall", 0.51, 0.5), ("min_mrr", 0.34, 1 / 3)],
)
def test_each_threshold_fails_just_above_the_metric_and_passes_at_it(
    docs: AISearchEmulator, threshold: str, failing: float, passing: float
) -> None:
    ti = TI()
    with pytest.raises(AISearchRetrievalCheckError, match=threshold) as raised:
        run(check(**{threshold: failing}), ti)
    assert isinstance(raised.value, AISearchError)
    assert raised.value.result is not None and raised.value.result["queries"] == 3
    assert [f.split("=")[0] for f in raised.value.failed] == [threshold.removeprefix("min_")]
    assert ti.store == {}  # a failed check is no baseline
    assert run(check(**{threshold: passing}), ti)["baseline"] is None
    assert ti.store["run-2"][BASELINE_XCOM_KEY]["run_id"] == "run-2"


def test_the_error_survives_pickling() -> None:
    error = AISearchRetrievalCheckError("failed", result={"k": 1}, failed=["mrr=0.1 (min_mrr=0.5)"])
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.result, again.failed) == ("failed", {"k": 1}, ["mrr=0.1 (min_mrr=0.5)"])


# -- baseline and max_drop (with a stand-in task instance; a real dag.test() twice is below) ---------


def test_the_baseline_is_the_last_passed_run_and_max_drop_fails_a_fall(docs: AISearchEmulator) -> None:
    store: dict[str, dict[str, Any]] = {}
    first = run(check(max_drop=0.1), TI("run-1", store))
    assert first["baseline"] is None
    assert store["run-1"][BASELINE_XCOM_KEY] == {
        "hit_rate": pytest.approx(HIT_RATE),
        "recall": pytest.approx(RECALL),
        "mrr": pytest.approx(MRR),
        "run_id": "run-1",
        "baseline": None,
    }
    # The same index: no fall.
    second = run(check(max_drop=0.1), TI("run-2", store))
    assert second["baseline"] == {
        "hit_rate": pytest.approx(HIT_RATE),
        "recall": pytest.approx(RECALL),
        "mrr": pytest.approx(MRR),
        "run_id": "run-1",
    }
    # k=1 drops c.md out of the top: hit_rate 2/3 -> 0, recall 1/2 -> 0, mrr 1/3 -> 0.
    with pytest.raises(AISearchRetrievalCheckError, match=r"hit_rate fell by 0.6667 \(max_drop=0.1\)"):
        run(check(k=1, max_drop=0.1), TI("run-3", store))
    assert "run-3" not in store
    assert run(check(k=1, max_drop=0.7), TI("run-4", store))["baseline"]["run_id"] == "run-2"


def test_a_runs_own_value_is_never_its_baseline(docs: AISearchEmulator) -> None:
    # A try that passed, then a retry of the same run that finds its XCom still there (Airflow normally
    # clears it): the baseline stays the earlier run's, never the run itself.
    store: dict[str, dict[str, Any]] = {}
    run(check(), TI("run-1", store))
    run(check(), TI("run-2", store))
    again = run(check(), TI("run-2", store))
    assert again["baseline"]["run_id"] == "run-1"
    first_again = run(check(), TI("run-1", {"run-1": dict(store["run-1"])}))
    assert first_again["baseline"] is None


def test_a_foreign_baseline_is_ignored_with_a_warning(
    docs: AISearchEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = {"run-1": {BASELINE_XCOM_KEY: {"hit_rate": "high", "run_id": "run-1"}}}
    with caplog.at_level(logging.WARNING):
        assert run(check(max_drop=0.0), TI("run-2", store))["baseline"] is None
    assert "Ignoring a baseline" in logged(caplog, capsys)


# -- consistency window -----------------------------------------------------------------------------


def test_missed_queries_are_asked_again_until_their_item_completes_and_passed_ones_are_not(
    make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    emu = make_emulator()
    connect(emu)
    emu.add_instance("kb", documents={"a.md": "alpha one two", "b.md": "bravo one two"})
    # A job that started 1000 s ago and runs 1000 s more: the items settle in key order over its
    # span, so a.md has completed and b.md is still running.
    job = emu.add_job("kb", started_at=time.time() - 1000, duration=2000)
    assert [i["status"] for i in emu.items("kb")] == ["completed", "running"]
    golden = [{"query": "alpha", "expected_keys": ["a.md"]}, {"query": "bravo", "expected_keys": ["b.md"]}]

    def finish_after_two_rounds() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(searches(emu)) < 3:  # the first round and one retry
            time.sleep(0.02)
        emu.finish_job("kb", job.id)  # b.md completes with the job

    finisher = threading.Thread(target=finish_after_two_rounds, daemon=True)
    finisher.start()
    value = run(check(golden=golden, k=1, consistency_window=60, poll_interval=0.1, min_hit_rate=1.0))
    finisher.join(5)
    assert value["hit_rate"] == 1.0 and [q["rank"] for q in value["per_query"]] == [1, 1]
    queries = [r.body["query"] for r in searches(emu)]
    assert queries.count("alpha") == 1  # passed at once: never re-sent
    assert queries.count("bravo") >= 3 and queries[0] == "alpha"


def test_without_a_window_a_query_is_asked_once_and_the_lag_fails_the_check(
    make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    emu = make_emulator()
    connect(emu)
    emu.add_instance("kb", documents={"a.md": "alpha one two", "b.md": "bravo one two"})
    emu.add_job("kb", started_at=time.time() - 1000, duration=2000)
    golden = [{"query": "alpha", "expected_keys": ["a.md"]}, {"query": "bravo", "expected_keys": ["b.md"]}]
    with pytest.raises(AISearchRetrievalCheckError, match=r"hit_rate=0.5000 \(min_hit_rate=1\)"):
        run(check(golden=golden, k=1, min_hit_rate=1.0))
    assert [r.body["query"] for r in searches(emu)] == ["alpha", "bravo"]
    # A window that ends with the query still missing: asked again each poll, then the same failure.
    with pytest.raises(AISearchRetrievalCheckError, match="min_hit_rate"):
        run(check(golden=golden, k=1, min_hit_rate=1.0, consistency_window=0.3, poll_interval=0.1))
    later = [r.body["query"] for r in searches(emu)][2:]
    assert later.count("alpha") == 1 and later.count("bravo") >= 2


# -- the failure log --------------------------------------------------------------------------------


def test_the_failure_log_lists_every_missed_query_first_then_the_metrics(
    docs: AISearchEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO), pytest.raises(AISearchRetrievalCheckError):
        run(check(min_recall=0.9))
    text = logged(caplog, capsys)
    assert "2 of 3 golden queries missed (top k=2 item keys)" in text
    assert "Missed query 2 'zebra': expected ['b.md', 'c.md']; rank 2, recall 0.50 (1 of 2 found)" in text
    assert "Missed query 3 'yak': expected ['b.md']; rank -, recall 0.00 (0 of 1 found)" in text
    assert "Missed query 1" not in text  # it found its key
    # Each top key with its best chunk's score and scoring details (big.md's first chunk, rank 1).
    assert "1. big.md score=" in text and 'scoring_details={"keyword_rank": 1, "keyword_score": ' in text
    assert "* 2. c.md score=" in text and '"keyword_rank": 3' in text  # big.md's second chunk was rank 2
    assert "1. d.md score=" in text
    assert text.index("Missed query 3") < text.index("Retrieval metrics over 3 queries, k=2 (no baseline)")
    assert "recall    0.5000   -        min_recall=0.9 FAILED" in text
    assert "hit_rate  0.6667   -        -" in text
    assert BIG[:40] not in text  # no chunk text in the log


def test_a_passed_check_logs_its_misses_as_warnings(
    docs: AISearchEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        run(check(min_hit_rate=0.5))
    text = logged(caplog, capsys)
    missed = [line for line in text.splitlines() if "Missed query" in line]
    assert missed and all("warning" in line.lower() and "error" not in line.lower() for line in missed)
    assert {line[line.index("Missed query") :][:15] for line in missed} == {"Missed query 2 ", "Missed query 3 "}
    assert "hit_rate  0.6667   -        min_hit_rate=0.5 ok" in text


# -- bad parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be an integer from 1 to 50"),
        ({"k": 51}, "k must be"),
        ({"k": True}, "k must be"),
        ({"min_hit_rate": 1.1}, "min_hit_rate must be in"),
        ({"min_recall": -0.1}, "min_recall must be in"),
        ({"min_mrr": "0.5"}, "min_mrr must be a number"),
        ({"max_drop": 2}, "max_drop must be in"),
        ({"consistency_window": -1}, "consistency_window"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"retrieval_type": "semantic"}, "retrieval_type"),
        ({"max_num_results": 1, "k": 2}, "max_num_results must be None or an integer from k=2 to 50"),
        ({"max_num_results": 51}, "max_num_results"),
        ({"golden": [{"query": "q"}]}, r"golden\[0\]: 'expected_keys'"),
        ({"golden": [{"expected_keys": ["a"]}]}, r"golden\[0\]: 'query'"),
        ({"golden": "golden.csv"}, "golden must be a list of entries or the path of a .json"),
        ({"golden": []}, "golden holds no query"),
        ({"instance_id": "Not An Id"}, "instance"),
        ({"hook_params": {"retries": 3}}, "hook_params"),
    ],
)
def test_bad_parameters_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check(**kwargs)


def test_templated_values_are_checked_at_render_time_before_any_request(docs: AISearchEmulator, tmp_path: Any) -> None:
    op = check(golden="{{ params.golden }}", instance_id="{{ params.instance }}")  # nothing to check yet
    op.golden, op.instance_id = [{"query": "zebra"}], "kb"  # what a render could give
    with pytest.raises(ValueError, match=r"golden\[0\]: 'expected_keys'"):
        run(op)
    op.golden = str(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="golden: cannot read"):
        run(op)
    assert docs.requests == []


def test_render_template_fields_checks_the_rendered_golden(docs: AISearchEmulator) -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG("retrieval", schedule=None):
        op = check(golden="{{ params.golden }}", params={"golden": "no-such-golden.json"})
    with pytest.raises(ValueError, match=r"golden: cannot read '.*no-such-golden.json'"):
        op.render_template_fields({"params": {"golden": "no-such-golden.json"}})
    assert docs.requests == []
