"""The hook's Items API over real HTTP against the emulator: every call in both auth schemes, 404s,
validation before any request, retry safety of the upload and the delete, and ``wait_for_completion``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RequestRecord
from airflow_provider_aisearch.exceptions import (
    AISearchCreateAmbiguousError,
    AISearchError,
    AISearchNotFoundError,
)
from airflow_provider_aisearch.hooks import AISearchAsyncClient, AISearchHook
from airflow_provider_aisearch.instances import Item
from tests.conftest import Connect


def _posts(emu: AISearchEmulator) -> list[RequestRecord]:
    """Every upload request (a faulted one is answered before routing, so it carries no route)."""
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith("/items")]


TEXT = b"# Tokens\n\nRotate your API token every 90 days.\n\nRevoke a leaked token at once."


@pytest.fixture
def builtin(make_emulator: Callable[..., AISearchEmulator]) -> AISearchEmulator:
    """An emulator with one built-in-storage instance, ``kb``, without items; uploads settle at once."""
    emu = make_emulator(instances=[])
    emu.add_instance("kb", type=None, items=0)
    emu.set_upload_duration(0)
    return emu


@pytest.fixture
def hook(builtin: AISearchEmulator, connect: Connect) -> Iterator[AISearchHook]:
    connect(builtin)
    with AISearchHook(retry_backoff=0.001) as h:
        yield h


@pytest.mark.parametrize("global_key", [False, True], ids=["token", "global-key"])
def test_every_item_call_in_both_auth_schemes(builtin: AISearchEmulator, connect: Connect, global_key: bool) -> None:
    connect(builtin, global_key=global_key)
    with AISearchHook(retry_backoff=0.001) as hook:
        item = hook.upload_item("kb", "guides/tokens.md", TEXT, metadata={"team": "ops"})
        assert (item.key, item.source_id, item.file_size) == ("guides/tokens.md", "builtin", len(TEXT))
        assert item.metadata is not None and item.metadata["team"] == "ops"
        assert item.checksum and item.created_at is not None
        got = hook.get_item("kb", item.id)
        assert (got.id, got.status, got.chunks_count) == (item.id, "completed", 1)
        assert hook.find_item("kb", "guides/tokens.md") == got
        assert hook.find_item("kb", "nothing.md") is None
        assert hook.find_item("kb", "guides/tokens.md", source="r2:bucket") is None
        assert hook.create_or_update_item("kb", "guides/tokens.md").id == item.id
        assert hook.sync_item("kb", item.id).id == item.id
        logs = list(hook.iter_item_logs("kb", item.id))
        assert [entry.action for entry in logs] == ["upload", "index"] * 3  # upload, PUT, PATCH: three cycles
        assert logs[1].chunk_count == 1 and logs[1].file_key == "guides/tokens.md"
        chunks = list(hook.iter_item_chunks("kb", item.id))
        assert [c.text for c in chunks] == [TEXT.decode().strip()]
        assert (chunks[0].key, chunks[0].start_byte, chunks[0].end_byte) == ("guides/tokens.md", 0, len(TEXT))
        assert hook.download_item("kb", item.id) == TEXT
        assert hook.delete_item("kb", item.id) == "guides/tokens.md"
        with pytest.raises(AISearchNotFoundError, match="item_not_found"):
            hook.get_item("kb", item.id)
    wanted = "global_key" if global_key else "bearer"
    assert {r.auth for r in builtin.requests} == {wanted}
    routes = {(r.method, r.route) for r in builtin.requests}
    assert routes == {
        ("POST", "items"),
        ("GET", "items"),
        ("PUT", "items"),
        ("GET", "item"),
        ("PATCH", "item"),
        ("DELETE", "item"),
        ("GET", "item_logs"),
        ("GET", "item_chunks"),
        ("GET", "item_download"),
    }
    put = builtin.requests_to("items", "PUT")[0]
    assert put.body == {"key": "guides/tokens.md", "next_action": "INDEX"}
    assert builtin.requests_to("item", "PATCH")[0].body == {"next_action": "INDEX"}


def test_logs_and_chunks_are_read_page_by_page(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    long_text = " ".join(f"word{i}" for i in range(1000)).encode()  # 1000 words: 6 chunks of the search's chunker
    item = hook.upload_item("kb", "long.txt", long_text)
    for _ in range(4):
        hook.sync_item("kb", item.id)
    builtin.clear_log()
    assert len(list(hook.iter_item_chunks("kb", item.id, limit=4))) == 6
    assert [r.query.get("offset") for r in builtin.requests_to("item_chunks")] == ["0", "4"]
    assert len(list(hook.iter_item_logs("kb", item.id, limit=3))) == 10  # five cycles of two entries
    assert [r.query.get("cursor") for r in builtin.requests_to("item_logs")] == [None, "3", "6", "9"]


def test_an_absent_item_is_a_clear_404_on_every_call(hook: AISearchHook) -> None:
    for call in (hook.get_item, hook.delete_item, hook.sync_item, hook.download_item):
        with pytest.raises(AISearchNotFoundError, match=r"HTTP 404: \[7006\] item_not_found") as caught:
            call("kb", "no-such-item")
        assert caught.value.status_code == 404
    with pytest.raises(AISearchNotFoundError):
        list(hook.iter_item_logs("kb", "no-such-item"))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: h.upload_item("kb", "x" * 129, b"a"), "filename is 129 characters long"),
        (lambda h: h.upload_item("kb", "", b"a"), "filename must not be empty"),
        (lambda h: h.upload_item("kb", "a.md", "text"), "content must be bytes"),
        (lambda h: h.upload_item("kb", "a.md", b"a" * (4 * 1024 * 1024 + 1)), "content is 4194305 bytes"),
        (lambda h: h.upload_item("kb", "a.md", b"a", metadata={"n": [1]}), r"metadata\['n'\] must be"),
        (lambda h: h.upload_item("kb", "a.md", b"a", metadata={"n": float("nan")}), "metadata is not JSON"),
        (lambda h: h.upload_item("kb", "a.md", b"a", metadata="{}"), "metadata must be a dict"),
        (lambda h: h.upload_item("kb", "a.md", b"a", wait_for_completion="yes"), "wait_for_completion must be"),
        (lambda h: h.upload_item("kb", "a.md", b"a", namespace=None), "namespace must be set"),
        (lambda h: h.upload_item("KB!", "a.md", b"a"), "instance_id"),
        (lambda h: h.get_item("kb", ".."), "item_id must not be"),
        (lambda h: h.delete_item("kb", ""), "item_id must not be empty"),
        (lambda h: h.sync_item("kb", "x", wait_for_completion=1), "wait_for_completion must be"),
        (lambda h: h.create_or_update_item("kb", "k" * 129), "key is 129 characters long"),
        (lambda h: h.iter_item_logs("kb", "x", limit=0), "limit must be"),
        (lambda h: h.iter_item_chunks("kb", "x", limit=101), "limit must be"),
        (lambda h: h.download_item("kb", "x", namespace=None), "namespace must be set"),
        (lambda h: h.find_item("kb", "k" * 129), "key is 129"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    hook: AISearchHook, builtin: AISearchEmulator, call: Callable[[AISearchHook], Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        call(hook)
    assert builtin.requests == []


def test_an_upload_whose_answer_is_lost_is_looked_up_not_sent_again(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    builtin.inject(Fault("reset_after"), method="POST", path="/items$")  # stored, then the connection drops
    item = hook.upload_item("kb", "guides/tokens.md", TEXT, metadata={"team": "ops"})
    assert len(_posts(builtin)) == 1  # never a second upload
    lookup = builtin.requests_to("items", "GET")
    assert [(r.query.get("key"), r.query.get("source")) for r in lookup] == [("guides/tokens.md", "builtin")]
    stored = builtin.items("kb")
    assert [i["key"] for i in stored] == ["guides/tokens.md"]  # exactly one item
    assert item.id == stored[0]["id"] and item.file_size == len(TEXT)


def test_an_upload_answered_502_after_storing_is_resolved_by_key(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    builtin.inject(Fault("status_after", status=502, body="<html>bad gateway</html>"), method="POST", path="/items$")
    item = hook.upload_item("kb", "a.md", TEXT)
    assert len(_posts(builtin)) == 1
    assert item.key == "a.md" and len(builtin.items("kb")) == 1


@pytest.mark.parametrize("fault", [Fault.http(500), Fault("reset_before")], ids=["500", "reset-before"])
def test_an_ambiguous_upload_that_did_not_land_is_an_error_not_a_second_upload(
    hook: AISearchHook, builtin: AISearchEmulator, fault: Fault
) -> None:
    builtin.inject(fault, method="POST", path="/items$")  # maybe stored (here not): the client cannot tell
    with pytest.raises(AISearchCreateAmbiguousError, match=r"looked up key 'a.md': none is listed") as caught:
        hook.upload_item("kb", "a.md", TEXT)
    assert "an item may or may not have been stored" in str(caught.value)
    assert len(_posts(builtin)) == 1
    assert builtin.items("kb") == []


def test_an_older_item_under_the_key_is_not_taken_for_the_lost_upload(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    hook.upload_item("kb", "a.md", b"old, longer content")
    builtin.inject(Fault.http(503), method="POST", path="/items$")
    with pytest.raises(AISearchCreateAmbiguousError, match="the item listed under it is not this upload"):
        hook.upload_item("kb", "a.md", TEXT)
    assert len(_posts(builtin)) == 2  # the first upload, and the new one once


@pytest.mark.parametrize(
    "fault",
    [Fault.rate_limited(retry_after=0), Fault.unavailable()],
    ids=["429", "7017"],
)
def test_an_upload_is_re_sent_when_the_failure_proves_nothing_was_received(
    hook: AISearchHook, builtin: AISearchEmulator, fault: Fault
) -> None:
    builtin.inject(fault, method="POST", path="/items$")
    item = hook.upload_item("kb", "a.md", TEXT)
    posts = _posts(builtin)
    assert len(posts) == 2 and posts[-1].status == 200
    assert builtin.requests_to("items", "GET") == []  # no lookup needed
    assert [i["key"] for i in builtin.items("kb")] == [item.key]


def test_a_delete_repeated_after_a_lost_answer_is_success(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    item = hook.upload_item("kb", "a.md", TEXT)
    builtin.inject(Fault("reset_after"), method="DELETE")  # deleted, then the connection drops
    assert hook.delete_item("kb", item.id) is None  # the retry found it gone: the first attempt deleted it
    assert [r.status for r in builtin.requests_to("item", "DELETE")] == [None, 404]
    assert builtin.items("kb") == []
    with pytest.raises(AISearchNotFoundError):  # a plain second delete is still a clear 404
        hook.delete_item("kb", item.id)


def test_a_delete_of_an_absent_instance_after_a_lost_answer_is_not_success(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    builtin.inject(Fault("reset_before"), method="DELETE")
    builtin.inject(Fault("reset_after"), method="DELETE")
    with pytest.raises(AISearchNotFoundError, match="ai_search_not_found"):
        hook.delete_item("nope", "x")


def test_wait_for_completion_holds_the_answer_until_the_item_settles(
    hook: AISearchHook, builtin: AISearchEmulator
) -> None:
    builtin.set_upload_duration(0.6)
    quick = hook.upload_item("kb", "quick.md", TEXT)
    assert quick.status == "queued" and quick.next_action == "INDEX"
    waited = hook.upload_item("kb", "waited.md", TEXT, wait_for_completion=True)
    assert waited.status == "completed" and waited.chunks_count == 1
    assert _posts(builtin)[-1].form[0].content == b"true"  # type: ignore[index]


def test_wait_for_completion_gives_up_at_its_cap_with_running(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    builtin.set_upload_duration(3600)
    builtin.max_completion_wait = 0.3  # Cloudflare's is 40 s
    item = hook.upload_item("kb", "slow.md", TEXT, wait_for_completion=True)
    assert item.status == "running"


def test_errors_of_the_emulator_arrive_as_our_exceptions(hook: AISearchHook, builtin: AISearchEmulator) -> None:
    builtin.add_instance("r2docs", type="r2", items=3)
    with pytest.raises(AISearchError, match=r"HTTP 400: \[7001\] Uploads are only supported") as caught:
        hook.upload_item("r2docs", "a.md", TEXT)
    assert caught.value.status_code == 400 and not isinstance(caught.value, AISearchNotFoundError)
    with pytest.raises(AISearchError, match="built-in storage have no sync jobs"):
        hook.create_job("kb")


def test_the_async_client_drives_the_same_item_plans(builtin: AISearchEmulator, connect: Connect) -> None:
    connect(builtin)

    async def scenario() -> tuple[Item, bytes, Item, str | None]:
        async with AISearchAsyncClient(retry_backoff=0.001) as client:
            item = await client.run(client.api.upload_item("kb", "a.md", TEXT, wait_for_completion=True))
            body = await client.run(client.api.download_item("kb", item.id))
            got = await client.run(client.api.get_item("kb", item.id))
            builtin.inject(Fault("reset_after"), method="DELETE")
            gone = await client.run(client.api.delete_item("kb", item.id))
            return item, body, got, gone

    item, body, got, gone = asyncio.run(scenario())
    assert item.status == "completed" and body == TEXT and got.id == item.id
    assert gone is None  # deleted by the unanswered attempt: the retry's 404 is success
    assert builtin.items("kb") == []
    assert [r.status for r in builtin.requests_to("item_download")] == [200]
