"""``AISearchHook.search`` over real HTTP against the emulator: auth schemes, body, validation, errors, retries.

The search body is built once (``api/search_operations.py``); these tests read it off the emulator's
request log. Body parity with the ``cloudflare`` SDK is in ``tests/test_search_parity.py``; the
emulator's own search (BM25, filters, only completed items) in ``tests/test_emulator_search.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RequestRecord
from airflow_provider_aisearch.exceptions import AISearchError, AISearchNotFoundError, AISearchResponseError
from airflow_provider_aisearch.hooks import AISearchAsyncClient, AISearchHook
from airflow_provider_aisearch.models.search import SearchChunk, SearchResult
from tests.conftest import Connect

DOCS = {
    "guides/tokens.md": "Rotate your API token every 90 days. A token that leaks must be revoked at once.",
    "guides/billing.md": "Invoices are sent monthly. You can pay by card or by bank transfer.",
    "faq/limits.md": "The rate limit is 1200 requests per five minutes for each API token.",
}
AUTHS = [pytest.param(False, "bearer", id="token"), pytest.param(True, "global_key", id="global-key")]


def _searches(emu: AISearchEmulator) -> list[RequestRecord]:
    """The search requests, by path: a scripted fault answers before the route is recorded."""
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith("/instances/kb/search")]


def _hook(emu: AISearchEmulator, connect: Connect, *, global_key: bool = False, **kwargs: Any) -> AISearchHook:
    connect(emu, global_key=global_key)
    kwargs.setdefault("retry_backoff", 0.001)
    return AISearchHook(**kwargs)


@pytest.fixture
def kb(emulator: AISearchEmulator) -> AISearchEmulator:
    emulator.add_instance("kb", documents=DOCS)
    return emulator


@pytest.mark.parametrize(("global_key", "auth"), AUTHS)
def test_search_in_both_auth_schemes_returns_parsed_chunks(
    kb: AISearchEmulator, connect: Connect, global_key: bool, auth: str
) -> None:
    hook = _hook(kb, connect, global_key=global_key)
    result = hook.search("kb", "rotate a leaked token")
    assert isinstance(result, SearchResult)
    assert result.search_query == "rotate a leaked token"
    assert result.query_kind == "text"
    assert result.item_keys() == ["guides/tokens.md", "faq/limits.md"]
    best = result.chunks[0]
    assert isinstance(best, SearchChunk)
    assert best.text == DOCS["guides/tokens.md"]
    assert best.item_metadata["folder"] == "guides/"
    assert best.scoring_details["keyword_rank"] == 1
    assert 0 < best.score < 1
    (request,) = kb.requests_to("search", "POST")
    assert request.auth == auth
    assert (
        request.path
        == "/client/v4/accounts/0123456789abcdef0123456789abcdef/ai-search/namespaces/default/instances/kb/search"
    )


def test_the_default_body_sends_cache_and_query_rewrite_off(kb: AISearchEmulator, connect: Connect) -> None:
    _hook(kb, connect).search("kb", "invoices")
    (request,) = kb.requests_to("search", "POST")
    assert request.body == {
        "query": "invoices",
        "ai_search_options": {
            "retrieval": {"max_num_results": 10},
            "query_rewrite": {"enabled": False},
            "cache": {"enabled": False},
        },
    }


def test_every_option_goes_into_the_body(kb: AISearchEmulator, connect: Connect) -> None:
    _hook(kb, connect).search(
        "kb",
        "invoices",
        max_num_results=3,
        retrieval_type="keyword",
        match_threshold=0.25,
        filters={"folder": "guides/"},
        rewrite_query=True,
        cache=True,
        reranking={"enabled": True, "model": "@cf/baai/bge-reranker-base"},
    )
    (request,) = kb.requests_to("search", "POST")
    assert request.body["ai_search_options"] == {
        "retrieval": {
            "max_num_results": 3,
            "retrieval_type": "keyword",
            "match_threshold": 0.25,
            "filters": {"folder": "guides/"},
        },
        "query_rewrite": {"enabled": True},
        "cache": {"enabled": True},
        "reranking": {"enabled": True, "model": "@cf/baai/bge-reranker-base"},
    }


def test_to_dict_is_json_safe_and_round_trips(kb: AISearchEmulator, connect: Connect) -> None:
    import json

    result = _hook(kb, connect).search("kb", "token")
    data = json.loads(json.dumps(result.to_dict()))
    assert SearchResult.from_dict(data) == result
    assert data["chunks"][0]["item_key"] == result.chunks[0].item_key


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        pytest.param({"namespace": None}, "namespace", id="legacy-namespace"),
        pytest.param({"namespace": "Bad_NS"}, "namespace", id="bad-namespace"),
        pytest.param({"instance_id": "Bad Id"}, "instance_id", id="instance-id"),
        pytest.param({"query": ""}, "query", id="empty-query"),
        pytest.param({"query": "   "}, "query", id="blank-query"),
        pytest.param({"query": None}, "query", id="query-none"),
        pytest.param({"max_num_results": 0}, "max_num_results", id="max-0"),
        pytest.param({"max_num_results": 51}, "max_num_results", id="max-51"),
        pytest.param({"max_num_results": True}, "max_num_results", id="max-bool"),
        pytest.param({"max_num_results": 5.0}, "max_num_results", id="max-float"),
        pytest.param({"retrieval_type": "semantic"}, "retrieval_type", id="retrieval-type"),
        pytest.param({"match_threshold": 1.5}, "match_threshold", id="threshold-high"),
        pytest.param({"match_threshold": -0.1}, "match_threshold", id="threshold-low"),
        pytest.param({"match_threshold": float("nan")}, "match_threshold", id="threshold-nan"),
        pytest.param({"match_threshold": "0.5"}, "match_threshold", id="threshold-str"),
        pytest.param({"filters": "folder=docs/"}, "filters", id="filters-str"),
        pytest.param({"filters": {}}, "filters", id="filters-empty"),
        pytest.param({"filters": {"folder": object()}}, "filters", id="filters-not-json"),
        pytest.param({"rewrite_query": "no"}, "rewrite_query", id="rewrite"),
        pytest.param({"cache": None}, "cache", id="cache"),
        pytest.param({"reranking": "on"}, "reranking", id="reranking-str"),
        pytest.param({"reranking": {"enable": True}}, "reranking", id="reranking-unknown-key"),
        pytest.param({"reranking": {"match_threshold": 2}}, "reranking", id="reranking-threshold"),
        pytest.param({"reranking": {"model": 3}}, "reranking", id="reranking-model-type"),
    ],
)
def test_bad_arguments_are_a_value_error_naming_them_before_any_request(
    kb: AISearchEmulator, connect: Connect, kwargs: dict[str, Any], name: str
) -> None:
    hook = _hook(kb, connect)
    call: dict[str, Any] = {"instance_id": "kb", "query": "token", **kwargs}
    with pytest.raises(ValueError, match=name):
        hook.search(call.pop("instance_id"), call.pop("query"), **call)
    assert kb.requests == []


def test_the_connection_namespace_none_is_refused_before_any_request(kb: AISearchEmulator, connect: Connect) -> None:
    connect(kb, namespace=None)
    with pytest.raises(ValueError, match="namespace must be set for the search endpoint"):
        AISearchHook().search("kb", "token")
    assert kb.requests == []


def test_an_unknown_instance_is_not_found_and_not_retried(kb: AISearchEmulator, connect: Connect) -> None:
    with pytest.raises(AISearchNotFoundError) as caught:
        _hook(kb, connect).search("nope", "token")
    assert caught.value.status_code == 404
    assert caught.value.codes == [7002]
    assert len(kb.requests) == 1


def test_a_400_from_cloudflare_is_our_error_with_its_code_and_not_retried(
    kb: AISearchEmulator, connect: Connect
) -> None:
    body = {
        "success": False,
        "errors": [{"code": 7001, "message": "unsupported filter operator", "path": ["filters"]}],
        "messages": [],
        "result": None,
    }
    kb.inject(Fault.http(400, body), method="POST", path="/search$")
    with pytest.raises(AISearchError) as caught:
        _hook(kb, connect).search("kb", "token")
    assert caught.value.status_code == 400
    assert caught.value.codes == [7001]
    assert "unsupported filter operator" in str(caught.value)
    assert caught.value.method == "POST"
    assert len(_searches(kb)) == 1


def test_the_emulator_s_own_filter_error_comes_back_as_our_error(kb: AISearchEmulator, connect: Connect) -> None:
    with pytest.raises(AISearchError) as caught:
        _hook(kb, connect).search("kb", "token", filters={"folder": {"$regex": "gui.*"}})
    assert caught.value.status_code == 400
    assert caught.value.codes == [7001]
    assert "$regex" in str(caught.value)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda: Fault.unavailable(), id="503-7017"),
        pytest.param(lambda: Fault.http(500), id="500"),
        pytest.param(lambda: Fault.rate_limited(retry_after=0), id="429"),
        pytest.param(lambda: Fault("reset_before"), id="reset-before"),
        pytest.param(lambda: Fault("reset_after"), id="lost-answer"),
        pytest.param(lambda: Fault("truncate"), id="truncated-answer"),
    ],
)
def test_a_search_is_retried_like_a_read_after_5xx_429_and_lost_answers(
    kb: AISearchEmulator, connect: Connect, fault: Any
) -> None:
    kb.inject(fault(), method="POST", path="/search$", times=2)
    result = _hook(kb, connect).search("kb", "invoices")
    assert result.item_keys() == ["guides/billing.md"]
    sent = _searches(kb)
    assert len(sent) == 3
    assert sent[-1].status == 200
    # The same body every time (a reset before the body was read leaves it unrecorded).
    assert all(r.body in (None, sent[-1].body) for r in sent)


def test_retries_stop_after_max_retries(kb: AISearchEmulator, connect: Connect) -> None:
    kb.inject(Fault.unavailable(), method="POST", path="/search$", times=10)
    with pytest.raises(AISearchError) as caught:
        _hook(kb, connect, max_retries=2).search("kb", "invoices")
    assert caught.value.status_code == 503
    assert caught.value.transient is True
    assert len(_searches(kb)) == 3


@pytest.mark.parametrize(
    ("result", "what"),
    [
        pytest.param({"chunks": "none"}, "'chunks' must be a list", id="chunks-not-list"),
        pytest.param({"chunks": [{"id": "c1", "text": "x"}]}, "'score' must be a number", id="no-score"),
        pytest.param({"chunks": [{"id": "c1", "score": 0.5, "text": "x", "item": []}]}, "'item'", id="item"),
        pytest.param([], "not an object", id="result-list"),
    ],
)
def test_a_malformed_answer_is_a_response_error(kb: AISearchEmulator, connect: Connect, result: Any, what: str) -> None:
    body = {"success": True, "errors": [], "messages": [], "result": result}
    kb.inject(Fault.http(200, body), method="POST", path="/search$", times=10)
    with pytest.raises(AISearchResponseError, match=what):
        _hook(kb, connect, max_retries=0).search("kb", "token")


def test_unknown_fields_are_ignored_and_absent_optional_ones_are_none(kb: AISearchEmulator, connect: Connect) -> None:
    chunk = {"id": "c1", "score": 1, "text": "t", "new_field": 1, "item": {"key": "a.md", "extra": True}}
    body = {"success": True, "errors": [], "messages": [], "result": {"chunks": [chunk], "future": "x"}}
    kb.inject(Fault.http(200, body), method="POST", path="/search$")
    result = _hook(kb, connect).search("kb", "token")
    assert result == SearchResult(chunks=[SearchChunk(id="c1", score=1.0, text="t", item_key="a.md")])
    assert result.search_query is None and result.query_kind is None


def test_item_keys_count_each_item_once_in_the_rank_of_its_best_chunk() -> None:
    def chunk(n: int, key: str) -> SearchChunk:
        return SearchChunk(id=f"c{n}", score=1.0 - n / 10, text="t", item_key=key)

    result = SearchResult(chunks=[chunk(1, "b"), chunk(2, "a"), chunk(3, "b"), chunk(4, ""), chunk(5, "c")])
    assert result.item_keys() == ["b", "a", "c"]
    assert result.item_keys(2) == ["b", "a"]
    assert result.item_keys(0) == []
    with pytest.raises(ValueError, match="k must be"):
        result.item_keys(-1)


def test_the_async_client_runs_the_same_plan(kb: AISearchEmulator, connect: Connect) -> None:
    connect(kb)

    async def scenario() -> tuple[SearchResult, BaseException | None]:
        async with AISearchAsyncClient(retry_backoff=0.001) as client:
            found = await client.search("kb", "invoices", max_num_results=1)
            try:
                await client.search("kb", "invoices", namespace=None)
                refused = None
            except ValueError as exc:
                refused = exc
            return found, refused

    kb.inject(Fault.http(502), method="POST", path="/search$")
    found, refused = asyncio.run(scenario())
    assert found.item_keys() == ["guides/billing.md"]
    assert isinstance(refused, ValueError) and "namespace" in str(refused)
    assert [r.status for r in _searches(kb)] == [502, 200]
    assert _searches(kb)[-1].body["ai_search_options"]["retrieval"] == {"max_num_results": 1}
