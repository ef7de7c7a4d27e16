"""Body parity: ``AISearchHook.search`` sends, field for field, the body the ``cloudflare`` 5.9.0 SDK sends.

Both clients search the same emulator with the same options (each case spells the SDK call out by hand,
as a user of the SDK would write it); the emulator records both JSON bodies, which must be equal. Both
auth schemes; the SDK is a test dependency only (``pyproject.toml``'s ``test`` extra).
"""

from __future__ import annotations

from typing import Any, cast

import cloudflare
import pytest
from cloudflare.types.aisearch.namespaces.instance_search_params import AISearchOptions

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import EMAIL, GLOBAL_KEY, TOKEN, Connect

DOCS = {
    "guides/tokens.md": "Rotate your API token every 90 days.",
    "guides/billing.md": "Invoices are sent monthly.",
}
OFF = {"query_rewrite": {"enabled": False}, "cache": {"enabled": False}}

#: (our keyword arguments, the SDK's ``aisearch_options``)
CASES = [
    pytest.param({}, {"retrieval": {"max_num_results": 10}, **OFF}, id="defaults"),
    pytest.param(
        {"filters": {"folder": "guides/"}},
        {"retrieval": {"max_num_results": 10, "filters": {"folder": "guides/"}}, **OFF},
        id="filters",
    ),
    pytest.param(
        {"filters": {"type": "and", "filters": [{"type": "eq", "key": "folder", "value": "guides/"}]}},
        {
            "retrieval": {
                "max_num_results": 10,
                "filters": {"type": "and", "filters": [{"type": "eq", "key": "folder", "value": "guides/"}]},
            },
            **OFF,
        },
        id="legacy-compound-filters",
    ),
    pytest.param(
        {"retrieval_type": "keyword", "max_num_results": 3},
        {"retrieval": {"max_num_results": 3, "retrieval_type": "keyword"}, **OFF},
        id="keyword",
    ),
    pytest.param(
        {"reranking": True},
        {"retrieval": {"max_num_results": 10}, "reranking": {"enabled": True}, **OFF},
        id="reranking-on",
    ),
    pytest.param(
        {"reranking": False},
        {"retrieval": {"max_num_results": 10}, "reranking": {"enabled": False}, **OFF},
        id="reranking-off",
    ),
    pytest.param(
        {"reranking": {"enabled": True, "model": "@cf/baai/bge-reranker-base", "match_threshold": 0.4}},
        {
            "retrieval": {"max_num_results": 10},
            "reranking": {"enabled": True, "model": "@cf/baai/bge-reranker-base", "match_threshold": 0.4},
            **OFF,
        },
        id="reranking-object",
    ),
    pytest.param(
        {"match_threshold": 0.35, "retrieval_type": "hybrid"},
        {"retrieval": {"max_num_results": 10, "match_threshold": 0.35, "retrieval_type": "hybrid"}, **OFF},
        id="match-threshold",
    ),
    pytest.param(
        {"rewrite_query": True, "cache": True, "max_num_results": 50, "retrieval_type": "vector"},
        {
            "retrieval": {"max_num_results": 50, "retrieval_type": "vector"},
            "query_rewrite": {"enabled": True},
            "cache": {"enabled": True},
        },
        id="rewrite-and-cache-on",
    ),
]


def _sdk(emu: AISearchEmulator, *, global_key: bool) -> cloudflare.Cloudflare:
    # The SDK's base URL ends in /client/v4, as the emulator's does.
    if global_key:
        return cloudflare.Cloudflare(api_email=EMAIL, api_key=GLOBAL_KEY, base_url=emu.url, max_retries=0)
    return cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.url, max_retries=0)


@pytest.mark.parametrize("global_key", [False, True], ids=["token", "global-key"])
@pytest.mark.parametrize(("ours", "sdk_options"), CASES)
def test_the_hook_sends_the_sdk_s_body_field_for_field(
    emulator: AISearchEmulator,
    connect: Connect,
    ours: dict[str, Any],
    sdk_options: dict[str, Any],
    global_key: bool,
) -> None:
    emulator.add_instance("kb", documents=DOCS)
    connect(emulator, global_key=global_key)
    query = "how often must I rotate my token?"
    with _sdk(emulator, global_key=global_key) as client:
        theirs = client.aisearch.namespaces.instances.search(
            "kb",
            account_id=emulator.account_id,
            name="default",
            query=query,
            aisearch_options=cast(AISearchOptions, sdk_options),
        )
    hook = AISearchHook()
    mine = hook.search("kb", query, **ours)
    sdk_request, hook_request = emulator.requests_to("search", "POST")
    assert sdk_request.path == hook_request.path
    assert sdk_request.auth == hook_request.auth == ("global_key" if global_key else "bearer")
    assert hook_request.body == sdk_request.body
    # And both read the same answer: the same chunks, in the same order.
    assert [c.id for c in theirs.chunks] == [c.id for c in mine.chunks]
    assert [c.item.key for c in theirs.chunks if c.item] == [c.item_key for c in mine.chunks]
