"""``AISearchHook.search`` over real HTTP against the emulator: auth schemes, body, validation, errors, retries.

The search body is built once (``api/search_operations.py``); these tests read it off the emulator's
request log. Body parity with the ``cloudflare`` SDK is in ``tests/test_search_parity.py``; the
emulator's own search (BM25, filters, only completed items) in ``tests/test_emulator_search.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.search import SearchChunk, SearchResult
from tests.conftest import Connect

DOCS = {
    "guides/tokens.md": "Rotate your API token every 90 days. A token that leaks must be revoked at once.",
    "guides/billing.md": "Invoices are sent monthly. You can pay by card or by bank transfer.",
    "faq/limits.md": "The rate limit is 1200 requests per five minutes for each API token.",
}
AUTHS = [pytest.param(False, "bearer", id="token"), pytest.param(True, "global_key", id="global-key")]


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
