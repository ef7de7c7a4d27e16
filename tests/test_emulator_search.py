"""The emulator's documents and search: BM25 on a hand-checked corpus, only completed items, filters, limits, CLI.

Searches go through ``AISearchHook.search`` (real HTTP) or, for what the hook refuses before sending,
straight to the emulator with ``urllib``.
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.emulator.documents import load_documents
from airflow_provider_aisearch.emulator.search_index import bm25, chunk_text
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import TOKEN, Connect, MakeEmulator

ACCOUNT = "0123456789abcdef0123456789abcdef"
SEARCH = f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/kb/search"

#: A corpus whose BM25 scores were worked out by hand (k1 = 1.2, b = 0.75; one chunk each, average length 3):
#: "apple" and "cherry" are each in 2 of 3 chunks: idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6 = 0.470004.
#: - one.md, apple x2, length 3: norm = 1.2 * (0.25 + 0.75 * 3/3) = 1.2; apple = 0.470004 * 2 * 2.2 / 3.2 = 0.646255
#: - two.md, apple + cherry, length 2: norm = 1.2 * (0.25 + 0.75 * 2/3) = 0.9; each = 0.470004 * 2.2 / 1.9 = 0.544215
#: - three.md, cherry x3, length 4: norm = 1.2 * (0.25 + 0.75 * 4/3) = 1.5; cherry = 0.470004 * 3 * 2.2 / 4.5 = 0.689339
FRUIT = {
    "fruit/one.md": "Apple apple banana",
    "fruit/two.md": "apple, cherry!",
    "veg/three.md": "cherry cherry cherry durian",
}


class Clock:
    """A settable clock for the emulator (epoch seconds)."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def _post(emu: AISearchEmulator, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        emu.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def fruit(emulator: AISearchEmulator, connect: Connect) -> AISearchHook:
    emulator.add_instance("kb", documents=FRUIT)
    connect(emulator)
    return AISearchHook(retry_backoff=0.001)


def test_bm25_ranks_a_hand_checked_corpus(fruit: AISearchHook) -> None:
    result = fruit.search("kb", "apple cherry")
    assert result.item_keys() == ["fruit/two.md", "veg/three.md", "fruit/one.md"]
    details = [(c.scoring_details["keyword_rank"], c.scoring_details["keyword_score"]) for c in result.chunks]
    assert details == [
        (1, pytest.approx(2 * 0.544215, abs=2e-6)),
        (2, pytest.approx(0.689339, abs=1e-6)),
        (3, pytest.approx(0.646255, abs=1e-6)),
    ]
    # score = bm25 / (1 + bm25), in [0, 1), in the same order
    assert [c.score for c in result.chunks] == [pytest.approx(s / (1 + s), abs=1e-6) for _, s in details]
    assert fruit.search("kb", "apple").item_keys() == ["fruit/one.md", "fruit/two.md"]  # no apple in three.md
    assert fruit.search("kb", "kiwi").chunks == []


def test_the_bm25_function_matches_the_hand_computed_scores() -> None:
    scores = bm25("apple", list(FRUIT.values()))
    assert scores == [pytest.approx(0.646255, abs=1e-6), pytest.approx(0.544215, abs=1e-6), 0.0]
    assert math.isclose(bm25("cherry", list(FRUIT.values()))[2], 0.689339, abs_tol=1e-6)


def test_keyword_vector_and_hybrid_all_rank_with_bm25(fruit: AISearchHook) -> None:
    orders = {
        kind: fruit.search("kb", "apple cherry", retrieval_type=kind).item_keys()
        for kind in ("keyword", "vector", "hybrid")
    }
    assert set(map(tuple, orders.values())) == {("fruit/two.md", "veg/three.md", "fruit/one.md")}


def test_keyword_match_mode_and_keeps_chunks_holding_every_term(
    emulator: AISearchEmulator, fruit: AISearchHook
) -> None:
    body = {"query": "apple cherry", "ai_search_options": {"retrieval": {"keyword_match_mode": "and"}}}
    status, answer = _post(emulator, SEARCH, body)
    assert status == 200
    assert [c["item"]["key"] for c in answer["result"]["chunks"]] == ["fruit/two.md"]


def test_max_num_results_and_match_threshold_are_honoured(fruit: AISearchHook) -> None:
    assert fruit.search("kb", "apple cherry", max_num_results=2).item_keys() == ["fruit/two.md", "veg/three.md"]
    # 0.689339 / 1.689339 = 0.408053 passes 0.4; 0.646255 / 1.646255 = 0.392560 does not
    assert fruit.search("kb", "apple cherry", match_threshold=0.4).item_keys() == ["fruit/two.md", "veg/three.md"]
    assert fruit.search("kb", "apple cherry", match_threshold=0.99).chunks == []


def test_a_long_document_is_several_chunks_each_a_result(emulator: AISearchEmulator, connect: Connect) -> None:
    words = [f"w{i}" for i in range(450)]
    words[10] = words[300] = "needle"
    emulator.add_instance("kb", documents={"long.md": " ".join(words), "short.md": "needle"})
    connect(emulator)
    result = AISearchHook().search("kb", "needle", max_num_results=50)
    assert sorted(c.item_key for c in result.chunks) == ["long.md", "long.md", "short.md"]
    assert result.item_keys() == ["short.md", "long.md"]  # each key once, at its best chunk
    assert len({c.id for c in result.chunks}) == 3
    assert AISearchHook().search("kb", "needle", max_num_results=2).chunks[1].item_key == "long.md"


def test_chunk_text_cuts_exact_overlapping_slices() -> None:
    text = "  " + "\n".join(f"w{i}" for i in range(450)) + "\n"
    chunks = chunk_text(text)
    assert [len(c.split()) for c in chunks] == [200, 200, 90]
    assert chunks[0].split()[-20:] == chunks[1].split()[:20]  # 20 words of overlap
    assert chunks[1].split()[0] == "w180" and chunks[2].split()[0] == "w360"
    assert all(c in text for c in chunks)  # exact slices of the text
    assert chunk_text("one two") == ("one two",)
    assert chunk_text("  \n ") == ()
    with pytest.raises(ValueError):
        chunk_text("x", 10, 10)


def test_only_completed_items_are_searchable(make_emulator: MakeEmulator, connect: Connect) -> None:
    clock = Clock()
    emu = make_emulator(clock=clock)
    emu.add_instance("kb", documents=FRUIT)
    connect(emu)
    hook = AISearchHook()
    assert len(hook.search("kb", "apple cherry").chunks) == 3  # before any job, every item has settled
    emu.start_job("kb", duration=30.0)  # moves the items in key order: fruit/one, fruit/two, veg/three
    assert hook.search("kb", "apple cherry").chunks == []  # right after the start, none is completed
    clock.now += 10.0  # fruit/one.md settled (at 10 s), fruit/two.md running
    assert hook.search("kb", "apple cherry").item_keys() == ["fruit/one.md"]
    statuses = {i.key: i.status for i in hook.iter_items("kb")}
    assert statuses == {"fruit/one.md": "completed", "fruit/two.md": "running", "veg/three.md": "queued"}
    clock.now += 20.0  # the job's end: every item completed
    assert hook.search("kb", "apple cherry").item_keys() == ["fruit/two.md", "veg/three.md", "fruit/one.md"]


def test_the_instance_s_items_are_its_documents(emulator: AISearchEmulator, connect: Connect) -> None:
    emulator.add_instance("kb", documents=FRUIT, items=99)
    connect(emulator)
    hook = AISearchHook()
    assert [i.key for i in hook.iter_items("kb")] == sorted(FRUIT)
    assert hook.get_instance_stats("kb").completed == 3
    emulator.add_documents("kb", {"veg/four.md": "kale"})
    assert hook.get_instance_stats("kb").completed == 4
    assert hook.search("kb", "kale").item_keys() == ["veg/four.md"]
    assert [i["key"] for i in emulator.items("docs")][:1] == ["docs/file-0001.md"]  # others keep generated items


def test_filters_equality_on_item_metadata(emulator: AISearchEmulator, connect: Connect) -> None:
    emulator.add_instance(
        "kb", documents=FRUIT, document_metadata={"fruit/two.md": {"lang": "fr"}, "veg/three.md": {"lang": "en"}}
    )
    connect(emulator)
    hook = AISearchHook()

    def keys(filters: dict[str, Any]) -> list[str]:
        return sorted(hook.search("kb", "apple cherry", filters=filters).item_keys())

    assert keys({"folder": "fruit/"}) == ["fruit/one.md", "fruit/two.md"]
    assert keys({"folder": {"$eq": "veg/"}}) == ["veg/three.md"]
    assert keys({"folder": "fruit/", "lang": "fr"}) == ["fruit/two.md"]  # several fields: all must match
    assert keys({"lang": {"$in": ["fr", "en"]}}) == ["fruit/two.md", "veg/three.md"]
    assert keys({"lang": {"$ne": "fr"}}) == ["fruit/one.md", "veg/three.md"]
    assert keys({"filename": "one.md"}) == ["fruit/one.md"]
    assert keys({"type": "eq", "key": "folder", "value": "veg/"}) == ["veg/three.md"]  # the legacy AutoRAG shape
    legacy_and = {
        "type": "and",
        "filters": [{"type": "eq", "key": "folder", "value": "fruit/"}, {"type": "eq", "key": "lang", "value": "fr"}],
    }
    assert keys(legacy_and) == ["fruit/two.md"]
    assert keys({"folder": "nowhere/"}) == []
    chunk = hook.search("kb", "cherry", filters={"lang": "en"}).chunks[0]
    assert chunk.item_metadata["lang"] == "en" and chunk.item_metadata["folder"] == "veg/"


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({"folder": {"$regex": "fr.*"}}, id="unknown-operator"),
        pytest.param({"$or": [{"folder": "fruit/"}]}, id="top-level-operator"),
        pytest.param({"type": "contains", "key": "folder", "value": "fr"}, id="legacy-unknown-type"),
        pytest.param({"type": "and", "filters": []}, id="legacy-empty-compound"),
        pytest.param({"lang": {"$in": "fr"}}, id="in-without-list"),
    ],
)
def test_unsupported_filters_get_a_cloudflare_like_400(fruit: AISearchHook, filters: dict[str, Any]) -> None:
    with pytest.raises(AISearchError) as caught:
        fruit.search("kb", "apple", filters=filters)
    assert caught.value.status_code == 400
    assert caught.value.codes == [7001]
    assert caught.value.errors[0]["path"] == ["ai_search_options", "retrieval", "filters"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "query", id="no-query"),
        pytest.param({"query": " "}, "query", id="blank-query"),
        pytest.param({"query": "a", "ai_search_options": {"retrieval": {"max_num_results": 51}}}, "max_num_results"),
        pytest.param({"query": "a", "ai_search_options": {"retrieval": {"retrieval_type": "x"}}}, "retrieval_type"),
        pytest.param({"query": "a", "ai_search_options": {"retrieval": {"match_threshold": 2}}}, "match_threshold"),
        pytest.param({"query": "a", "ai_search_options": []}, "ai_search_options", id="options-not-object"),
    ],
)
def test_invalid_search_bodies_get_a_400_naming_the_field(
    emulator: AISearchEmulator, fruit: AISearchHook, body: dict[str, Any], field: str
) -> None:
    status, answer = _post(emulator, SEARCH, body)
    assert status == 400
    assert answer["errors"][0]["code"] == 7001
    assert answer["errors"][0]["path"][-1] == field


def test_messages_stand_for_the_query(emulator: AISearchEmulator, fruit: AISearchHook) -> None:
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "durian"}]}
    status, answer = _post(emulator, SEARCH, body)
    assert status == 200
    assert [c["item"]["key"] for c in answer["result"]["chunks"]] == ["veg/three.md"]


def test_search_routes_unknown_instance_other_account_and_method(
    emulator: AISearchEmulator, fruit: AISearchHook
) -> None:
    assert _post(emulator, SEARCH.replace("/kb/", "/nope/"), {"query": "a"})[0] == 404
    assert _post(emulator, SEARCH.replace(ACCOUNT, "f" * 32), {"query": "a"})[0] == 403
    legacy = f"/accounts/{ACCOUNT}/ai-search/instances/kb/search"
    status, answer = _post(emulator, legacy, {"query": "a"})
    assert (status, answer["errors"][0]["code"]) == (404, 7003)  # no legacy form
    request = urllib.request.Request(emulator.url + SEARCH, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 405


def test_load_documents_reads_md_and_txt_with_posix_relative_keys(tmp_path: pathlib.Path) -> None:
    (tmp_path / "guides" / "deep").mkdir(parents=True)
    (tmp_path / "guides" / "deep" / "tokens.md").write_text("Rotate tokens.", encoding="utf-8")
    (tmp_path / "notes.TXT").write_text("Plain notes.", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")
    assert load_documents(tmp_path) == {"guides/deep/tokens.md": "Rotate tokens.", "notes.TXT": "Plain notes."}
    with pytest.raises(ValueError, match="not a directory"):
        load_documents(tmp_path / "missing")


def test_the_command_line_documents_option_serves_a_searchable_folder(tmp_path: pathlib.Path) -> None:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "tokens.md").write_text("Rotate your API token every 90 days.", encoding="utf-8")
    (tmp_path / "billing.txt").write_text("Invoices are sent monthly.", encoding="utf-8")
    (tmp_path / "skip.json").write_text('{"token": "rotate"}', encoding="utf-8")
    args = ["--port", "0", "--token", TOKEN, "--instance", "kb", "--seed-jobs", "1", "--documents", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
        assert proc.stdout.readline().startswith("export AIRFLOW_CONN_AISEARCH_DEFAULT=")
        assert proc.stdout.readline().startswith("# 2 documents from ")
        request = urllib.request.Request(
            url + SEARCH,
            data=json.dumps({"query": "rotate token"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            chunks = json.loads(answer.read())["result"]["chunks"]
        assert [c["item"]["key"] for c in chunks] == ["guides/tokens.md"]
        items = urllib.request.Request(
            url + SEARCH.replace("/search", "/items"), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(items, timeout=30) as answer:
            listed = json.loads(answer.read())["result"]
        assert sorted(i["key"] for i in listed) == ["billing.txt", "guides/tokens.md"]
        assert {i["status"] for i in listed} == {"completed"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_command_line_refuses_a_documents_path_that_is_no_folder(tmp_path: pathlib.Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", "--documents", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "--documents" in run.stderr and "not a directory" in run.stderr
