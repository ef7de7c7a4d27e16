"""The Items API's guards that the first tests left unchecked (found by a mutation pass over the hook's methods).

Over real HTTP against the emulator: the upload's key lookup takes only the item of that key (a list
that ignores the ``key`` filter must not hand back another file), a delete answered 5xx after deleting
succeeds on its retry, the cursor, offset and content-type checks run before any request, chunks carry
the item's metadata, and a log cursor that repeats ends the paging instead of looping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import AISearchCreateAmbiguousError
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import Connect
from tests.test_items_hook import builtin as builtin  # the fixtures: instance "kb" on built-in storage
from tests.test_items_hook import hook as hook

TEXT = b"# Tokens\n\nRotate your API token every 90 days."


def _envelope(result: Any, **result_info: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result, "result_info": result_info}


def test_the_lookup_after_a_lost_upload_takes_only_the_item_of_that_key(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    hook.upload_item("kb", "other.md", TEXT)  # same size, no metadata: only its key tells it apart
    listed = builtin.items("kb")
    builtin.inject(Fault.http(502), method="POST", path="/items$")  # not stored; the client cannot tell
    builtin.inject(Fault.http(200, body=_envelope(listed, page=1, per_page=20, count=1, total_count=1)), method="GET")
    with pytest.raises(AISearchCreateAmbiguousError, match=r"looked up key 'a.md': none is listed"):
        hook.upload_item("kb", "a.md", TEXT)
    assert [r.query.get("key") for r in builtin.requests if r.method == "GET"] == ["a.md"]
    assert [i["key"] for i in builtin.items("kb")] == ["other.md"]


def test_a_delete_answered_5xx_after_deleting_succeeds_on_its_retry(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    item = hook.upload_item("kb", "a.md", TEXT)
    builtin.inject(Fault("status_after", status=502, body="<html>bad gateway</html>"), method="DELETE")
    assert hook.delete_item("kb", item.id) is None  # the first attempt deleted it
    assert [r.status for r in builtin.requests_to("item", "DELETE")] == [502, 404]
    assert builtin.items("kb") == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: h.api.item_logs_page("kb", "x", cursor=" "), "cursor must be a non-empty string"),
        (lambda h: h.api.item_chunks_page("kb", "x", offset=-1), "offset must be an integer >= 0"),
        (lambda h: h.api.item_chunks_page("kb", "x", offset=True), "offset must be an integer >= 0"),
        (
            lambda h: h.upload_item("kb", "a.md", b"a", content_type="text/plain\r\nX-Injected: 1"),
            "content_type must be a non-empty one-line string",
        ),
        (  # a bare carriage return ends a header line for some readers too
            lambda h: h.upload_item("kb", "a.md", b"a", content_type="text/plain\rX-Injected: 1"),
            "content_type must be a non-empty one-line string",
        ),
    ],
)
def test_cursor_offset_and_content_type_are_checked_before_any_request(
    hook: AISearchHook, builtin: AISearchEmulator, call: Callable[[AISearchHook], Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        call(hook)
    assert builtin.requests == []


def test_chunks_carry_the_item_s_metadata(hook: AISearchHook) -> None:
    item = hook.upload_item("kb", "a.md", TEXT, metadata={"team": "ops", "rev": 3})
    chunks = list(hook.iter_item_chunks("kb", item.id))
    assert chunks
    assert [(c.metadata or {}).get("team") for c in chunks] == ["ops"] * len(chunks)
    assert [(c.metadata or {}).get("rev") for c in chunks] == [3] * len(chunks)


def test_a_repeated_log_cursor_ends_the_paging(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    item = hook.upload_item("kb", "a.md", TEXT)
    entry = {"action": "index", "fileKey": "a.md", "timestamp": "2026-12-07T06:00:00Z"}
    page = _envelope([entry], count=1, cursor="again")  # a server that hands back the same cursor every time
    builtin.inject(Fault.http(200, body=page), method="GET", path="/logs$", times=3)
    logs = list(hook.iter_item_logs("kb", item.id))
    assert [e.action for e in logs] == ["index", "index"]  # the first page, and the repeat that shows the loop
    assert [r.query.get("cursor") for r in builtin.requests if r.path.endswith("/logs")] == [None, "again"]


def test_the_download_asks_for_the_file_as_the_sdk_does(
    hook: AISearchHook, builtin: AISearchEmulator, connect: Connect
) -> None:
    """``Accept: application/octet-stream`` on the download (the SDK's header), ``application/json`` elsewhere."""
    import asyncio

    import cloudflare

    from airflow_provider_aisearch.hooks import AISearchAsyncClient
    from tests.conftest import TOKEN

    item = hook.upload_item("kb", "a.md", TEXT)
    assert hook.download_item("kb", item.id) == TEXT

    async def download_async() -> bytes:
        async with AISearchAsyncClient() as client:
            return await client.run(client.api.download_item("kb", item.id))

    assert asyncio.run(download_async()) == TEXT
    with cloudflare.Cloudflare(api_token=TOKEN, base_url=builtin.url, max_retries=0) as sdk:
        answer = sdk.aisearch.namespaces.instances.items.download(
            item.id, account_id=builtin.account_id, name="default", id="kb"
        )
        assert answer.read() == TEXT
    hook_request, async_request, sdk_request = builtin.requests_to("item_download")
    assert sdk_request.accept == hook_request.accept == async_request.accept == "application/octet-stream"
    assert [r.accept for r in builtin.requests if r.route != "item_download"] == ["application/json"]  # the upload
