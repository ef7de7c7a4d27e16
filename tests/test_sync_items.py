"""AISearchSyncItemsOperator over real HTTP against the emulator, in the worker and deferred (the trigger runs
for real): new, changed, unchanged and removed files, per-file errors with their log lines, max_item_errors,
a retry after a crash mid-upload, one items list per poll round for 200 pending items, bad input, and an
``ObjectStoragePath`` (``file://``) source."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RequestRecord
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchError,
    AISearchIndexQualityError,
    AISearchSyncTimeoutError,
)
from airflow_provider_aisearch.operators import AISearchSyncItemsOperator
from airflow_provider_aisearch.tasks.sync_plan import HASH_METADATA_KEY, compile_pattern, content_hash
from airflow_provider_aisearch.triggers import AISearchItemsTrigger
from airflow_provider_aisearch.waiting.item_polling import SharedItemsPoller
from airflow_provider_aisearch.waiting.polling import active_pollers
from tests.conftest import Connect

FAST = {"retry_backoff": 0.001, "timeout": (2.0, 5.0)}
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])


@pytest.fixture
def emu(make_emulator: Callable[..., AISearchEmulator], connect: Connect) -> AISearchEmulator:
    """A built-in-storage instance ``kb`` without items; uploads take 0.2 s to settle."""
    emulator = make_emulator(instances=[])
    emulator.add_instance("kb", type=None, items=0)
    emulator.set_upload_duration(0.2)
    connect(emulator)
    return emulator


def write(folder: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def sync_op(source: Any, **kwargs: Any) -> AISearchSyncItemsOperator:
    kwargs.setdefault("task_id", "sync")
    kwargs.setdefault("instance_id", "kb")
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 60)
    return AISearchSyncItemsOperator(source=source, **kwargs)


def run_trigger(trigger: AISearchItemsTrigger, limit: float = 30) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), limit))


def run(op: AISearchSyncItemsOperator) -> dict[str, Any]:
    """One try: ``execute``; when it defers, the trigger for real, then ``execute_complete``."""
    try:
        return op.execute({})
    except TaskDeferred as exc:
        deferred = exc
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, AISearchItemsTrigger)
    classpath, kwargs = trigger.serialize()
    rebuilt = AISearchItemsTrigger(**kwargs)  # the triggerer rebuilds it from what was stored
    assert classpath == "airflow_provider_aisearch.triggers.AISearchItemsTrigger"
    (event,) = run_trigger(rebuilt)
    return op.execute_complete({}, event.payload, **(deferred.kwargs or {}))


def uploads(emu: AISearchEmulator) -> list[RequestRecord]:
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith("/items")]


def stored(emu: AISearchEmulator) -> dict[str, Any]:
    from airflow_provider_aisearch.hooks import AISearchHook

    with AISearchHook(retry_backoff=0.001) as hook:
        return {item.key: item for item in hook.iter_items("kb")}


@MODES
def test_new_changed_unchanged_and_removed_files(
    emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool
) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha text", "b.md": b"beta text", "sub/c.txt": b"gamma text"})
    first = run(sync_op(docs, deferrable=deferrable))
    assert sorted(first["uploaded"]) == ["a.md", "b.md", "sub/c.txt"]
    assert first["unchanged"] == first["deleted"] == first["failed"] == first["skipped"] == []
    assert first["items"]["completed"] == 3 and first["items"]["queued"] == first["items"]["running"] == 0
    items = stored(emu)
    assert items["b.md"].metadata[HASH_METADATA_KEY] == content_hash(b"beta text")
    assert len(uploads(emu)) == 3

    (docs / "b.md").write_bytes(b"beta text, changed")
    (docs / "sub/c.txt").unlink()
    write(docs, {"d.md": b"delta text"})
    second = run(sync_op(docs, deferrable=deferrable, delete_removed=True))
    assert sorted(second["uploaded"]) == ["b.md", "d.md"]
    assert second["unchanged"] == ["a.md"]
    assert second["deleted"] == ["sub/c.txt"]
    assert len(uploads(emu)) == 5  # a.md was not sent again
    items = stored(emu)
    assert sorted(items) == ["a.md", "b.md", "d.md"]
    assert items["b.md"].metadata[HASH_METADATA_KEY] == content_hash(b"beta text, changed")
    assert all(item.status == "completed" for item in items.values())


@MODES
def test_delete_removed_off_keeps_items_and_on_stays_under_prefix_and_pattern(
    emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool
) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "b.md": b"beta", "notes.txt": b"notes"})
    run(sync_op(docs, key_prefix="kb/", pattern="*.md", deferrable=deferrable))
    run(sync_op(docs, key_prefix="xy/", deferrable=deferrable))  # another prefix ("xy/b.md" is as long)
    (docs / "b.md").unlink()
    kept = run(sync_op(docs, key_prefix="kb/", pattern="*.md", deferrable=deferrable))
    assert kept["deleted"] == [] and "kb/b.md" in stored(emu)
    (docs / "notes.txt").unlink()
    result = run(sync_op(docs, key_prefix="kb/", pattern="*.md", delete_removed=True, deferrable=deferrable))
    assert result["deleted"] == ["kb/b.md"]
    assert sorted(stored(emu)) == ["kb/a.md", "xy/a.md", "xy/b.md", "xy/notes.txt"]


@MODES
def test_per_file_errors_with_their_log_lines(
    emu: AISearchEmulator,
    tmp_path: pathlib.Path,
    deferrable: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    docs = write(tmp_path / "docs", {"good.md": b"fine text", "broken.pdf": b"not a pdf", "empty.md": b""})
    result = run(sync_op(docs, deferrable=deferrable))
    assert [f["key"] for f in result["failed"]] == ["broken.pdf"]
    assert "parse" in result["failed"][0]["error"].lower()
    assert result["skipped"] == ["empty.md"]
    out = caplog.text + capsys.readouterr().out
    # The item's own log lines (from its logs endpoint, not only its error field) reach the task log.
    assert "[parse_error]" in out
    assert [r.route for r in emu.requests if r.route == "item_logs"] == ["item_logs"]


@MODES
@pytest.mark.parametrize(
    ("limit", "passes"), [(0, False), (1, True), (0.2, False), (0.5, True)], ids=["0", "1", "0.2", "0.5"]
)
def test_max_item_errors_counts_this_syncs_files(
    emu: AISearchEmulator, tmp_path: pathlib.Path, limit: float, passes: bool, deferrable: bool
) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "b.md": b"beta", "broken.pdf": b"nope"})
    op = sync_op(docs, max_item_errors=limit, deferrable=deferrable)
    if passes:
        assert [f["key"] for f in run(op)["failed"]] == ["broken.pdf"]
        return
    with pytest.raises(AISearchIndexQualityError, match=r"broken\.pdf"):
        run(op)


@MODES
def test_retry_after_a_crash_mid_upload_sends_nothing_twice(
    emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool
) -> None:
    docs = write(tmp_path / "docs", {f"f{i}.md": f"file {i}".encode() for i in range(6)})
    emu.set_upload_duration(0.5)  # try 1's items are still in flight when try 2 lists them
    emu.set_upload_outcome("f1.md", "error", "Failed to embed: upstream 500", instance_id="kb")
    calls: list[str] = []

    def crash_on_fourth(path: Any) -> dict[str, Any]:
        calls.append(path.name)
        if len(calls) == 4:
            raise RuntimeError("worker lost mid-upload")
        return {"team": "docs"}

    with pytest.raises(RuntimeError, match="mid-upload"):
        run(sync_op(docs, metadata=crash_on_fourth, max_upload_concurrency=1, deferrable=deferrable))
    assert len(uploads(emu)) == 3
    retry = run(sync_op(docs, metadata={"team": "docs"}, max_upload_concurrency=1, deferrable=deferrable))
    assert retry["unchanged"] == ["f0.md", "f1.md", "f2.md"]  # stored by try 1 (maybe still in flight)
    assert retry["uploaded"] == ["f3.md", "f4.md", "f5.md"]
    assert len(uploads(emu)) == 6  # each file sent once over both tries
    items = stored(emu)
    assert {k: items["f0.md"].metadata[k] for k in ("team", HASH_METADATA_KEY)} == {
        "team": "docs",
        HASH_METADATA_KEY: content_hash(b"file 0"),
    }
    assert sorted(items) == [f"f{i}.md" for i in range(6)]
    assert [item.status for key, item in sorted(items.items())] == ["completed", "error"] + ["completed"] * 4
    # Try 2 waited for what try 1 left in flight, so f1.md's outcome is in its report.
    assert retry["failed"] == [{"key": "f1.md", "error": "Failed to embed: upstream 500"}]
    assert (retry["items"]["completed"], retry["items"]["error"], retry["items"]["queued"]) == (5, 1, 0)


@MODES
def test_a_repeated_delete_is_success(emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "b.md": b"beta"})
    run(sync_op(docs, deferrable=deferrable))
    (docs / "b.md").unlink()
    op = sync_op(docs, deferrable=deferrable, delete_removed=True)
    item_id = stored(emu)["b.md"].id
    from airflow_provider_aisearch.hooks import AISearchHook

    real_delete = AISearchHook.delete_item

    def delete_twice(self: AISearchHook, instance_id: str, item: str, **kwargs: Any) -> Any:
        real_delete(self, instance_id, item, **kwargs)  # a first try deleted it, then crashed
        return real_delete(self, instance_id, item, **kwargs)  # the retry's own delete: 404

    op.hook.delete_item = delete_twice.__get__(op.hook)  # type: ignore[method-assign]
    result = run(op)
    assert result["deleted"] == ["b.md"] and result["failed"] == []
    deletes = [r for r in emu.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [200, 404]
    assert item_id not in {item.id for item in stored(emu).values()}


@MODES
def test_one_items_list_per_round_for_200_pending_items(
    emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool
) -> None:
    emu.set_upload_duration(1.0)
    docs = write(tmp_path / "docs", {f"doc{i:03}.md": f"document {i}".encode() for i in range(200)})
    result = run(sync_op(docs, deferrable=deferrable, max_upload_concurrency=8, poll_interval=0.2))
    assert len(result["uploaded"]) == 200 and result["items"]["completed"] == 200
    last_upload = max(i for i, r in enumerate(emu.requests) if r.method == "POST")
    waiting = emu.requests[last_upload + 1 :]
    lists = [r for r in waiting if r.method == "GET" and r.route == "items"]
    assert not [r for r in waiting if r.route == "item"]  # never one GET per item
    pages = [r.query["page"] for r in lists]
    # Each round is one listing, two pages of 100 (every key pending is on them): 1, 2, 1, 2, ...
    assert len(pages) >= 4 and pages == ["1", "2"] * (len(pages) // 2)
    assert {r.query["per_page"] for r in lists} == {"100"}
    # Uploads only: keys are unique per source, so an R2 or website item of the same key is never taken for ours.
    assert {r.query.get("source") for r in emu.requests if r.route == "items" and r.method == "GET"} == {"builtin"}


def test_bad_input_fails_before_any_request(emu: AISearchEmulator, tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="source .* does not exist"):
        run(sync_op(tmp_path / "missing"))
    (tmp_path / "plain.md").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="source .* is not a folder"):
        run(sync_op(tmp_path / "plain.md"))
    with pytest.raises(ValueError, match=r"source 'gcs://\*\*\*@bucket/docs': No filesystem registered") as error:
        run(sync_op("gcs://reader:sekrit@bucket/docs"))  # its provider is not installed; the secret never shown
    assert "sekrit" not in str(error.value)
    long = write(tmp_path / "long", {"ok.md": b"ok", "x" * 126 + ".md": b"too long a key"})
    with pytest.raises(ValueError, match="1 file.*cannot be uploaded under their keys.*128"):
        run(sync_op(long))
    for bad in ("", "/abs/*.md", "a**/b", "docs/../x", "[abc"):
        with pytest.raises(ValueError, match="pattern"):
            sync_op(tmp_path, pattern=bad)
    templated = sync_op(tmp_path, pattern="{{ params.glob }}")
    templated.pattern = "**b/*"  # as rendered
    with pytest.raises(ValueError, match="pattern"):
        run(templated)
    with pytest.raises(ValueError, match="metadata"):
        sync_op(tmp_path, metadata={HASH_METADATA_KEY: "mine"})
    with pytest.raises(ValueError, match="max_upload_concurrency"):
        sync_op(tmp_path, max_upload_concurrency=0)
    with pytest.raises(ValueError, match="max_item_errors"):
        sync_op(tmp_path, max_item_errors=1.5)
    assert emu.requests == []


def test_an_unreadable_file_is_reported_and_the_others_sync(
    emu: AISearchEmulator, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "locked.md": b"secret", "huge.md": b"x" * (4 * 1024 * 1024 + 1)})
    real = pathlib.Path.read_bytes

    def read_bytes(self: pathlib.Path) -> bytes:
        if self.name == "locked.md":  # as root, chmod 000 cannot make a file unreadable: fail its read
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    run(sync_op(docs))  # a first sync stores a.md only
    result = run(sync_op(docs, delete_removed=True))
    failed = {f["key"]: f["error"] for f in result["failed"]}
    assert sorted(failed) == ["huge.md", "locked.md"]
    assert "Permission denied" in failed["locked.md"] and "over the upload's limit" in failed["huge.md"]
    assert result["unchanged"] == ["a.md"] and result["deleted"] == []
    assert sorted(stored(emu)) == ["a.md"]


@MODES
def test_an_object_storage_path_source(emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool) -> None:
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "sub/b.md": b"beta"})
    result = run(sync_op(f"file://{docs}", deferrable=deferrable, pattern="**/*.md", key_prefix="fs/"))
    assert sorted(result["uploaded"]) == ["fs/a.md", "fs/sub/b.md"]
    again = run(sync_op(f"file://{docs}", deferrable=deferrable, pattern="**/*.md", key_prefix="fs/"))
    assert sorted(again["unchanged"]) == ["fs/a.md", "fs/sub/b.md"] and again["uploaded"] == []


def test_no_wait_returns_after_the_uploads(emu: AISearchEmulator, tmp_path: pathlib.Path) -> None:
    emu.set_upload_duration(30)
    docs = write(tmp_path / "docs", {"a.md": b"alpha"})
    result = run(sync_op(docs, wait_for_completion=False, deferrable=True))
    assert result["uploaded"] == ["a.md"] and result["items"]["queued"] + result["items"]["running"] == 1
    assert not [r for r in emu.requests if r.route == "items" and r.method == "GET" and r.query.get("page") == "2"]


@MODES
def test_the_timeout_bounds_the_wait(emu: AISearchEmulator, tmp_path: pathlib.Path, deferrable: bool) -> None:
    emu.set_upload_duration(60)
    docs = write(tmp_path / "docs", {"a.md": b"alpha", "b.md": b"beta"})
    with pytest.raises(AISearchSyncTimeoutError, match="2 item"):
        run(sync_op(docs, deferrable=deferrable, timeout=0.3))


def test_a_trigger_error_fails_the_task(emu: AISearchEmulator, tmp_path: pathlib.Path) -> None:
    trigger = AISearchItemsTrigger(instance_id="kb", keys=["a.md"], aisearch_conn_id="no_such_conn", poll_interval=0.05)
    (event,) = run_trigger(trigger)
    assert event.payload["status"] == "error" and event.payload["pending"] == ["a.md"]
    op = sync_op(tmp_path, deferrable=True)
    with pytest.raises(AISearchError, match="no_such_conn"):
        op.execute_complete(
            {}, event.payload, partial={"uploaded": ["a.md"], "unchanged": [], "deleted": [], "failed": []}
        )


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("**/*", ["a.md", "b.txt", "sub/c.md", "sub/deep/d.md"]),
        ("*.md", ["a.md"]),
        ("**/*.md", ["a.md", "sub/c.md", "sub/deep/d.md"]),
        ("sub/**", ["sub/c.md", "sub/deep/d.md"]),
        ("[ab].*", ["a.md", "b.txt"]),
        ("sub/?.md", ["sub/c.md"]),
    ],
)
def test_the_pattern_matches_relative_paths(pattern: str, matched: list[str]) -> None:
    regex = compile_pattern(pattern)
    paths = ["a.md", "b.txt", "sub/c.md", "sub/deep/d.md"]
    assert [p for p in paths if regex.match(p)] == matched


def test_syncs_waiting_on_one_instance_share_each_round(emu: AISearchEmulator, tmp_path: pathlib.Path) -> None:
    """Two deferred syncs (e.g. mapped over two folders) on one instance: one poller, one listing a round."""
    emu.set_upload_duration(1.0)
    deferred = []
    for part in ("x", "y"):
        docs = write(tmp_path / part, {f"{part}{i:03}.md": f"document {part} {i}".encode() for i in range(100)})
        with pytest.raises(TaskDeferred) as info:
            sync_op(docs, deferrable=True, key_prefix=f"{part}/", max_upload_concurrency=8, poll_interval=0.2).execute(
                {}
            )
        deferred.append(info.value)
    first_wait = len(emu.requests)
    pollers: set[int] = set()

    async def both() -> list[Any]:
        async def one(trigger: Any) -> Any:
            async for event in trigger.run():
                return event

        async def watch() -> None:
            while True:
                pollers.update(id(p) for p in active_pollers() if isinstance(p, SharedItemsPoller))
                await asyncio.sleep(0.05)

        watcher = asyncio.ensure_future(watch())
        try:
            return list(await asyncio.gather(*(one(d.trigger) for d in deferred)))
        finally:
            watcher.cancel()

    events = asyncio.run(asyncio.wait_for(both(), 30))
    assert [e.payload["status"] for e in events] == ["done", "done"]
    assert len(pollers) == 1  # both triggers joined one poller
    pages = [r.query["page"] for r in emu.requests[first_wait:] if r.route == "items"]
    # Every round is one listing for both syncs' 200 keys: two pages of 100, never a listing per trigger.
    assert len(pages) >= 4 and pages == ["1", "2"] * (len(pages) // 2)
    assert not [r for r in emu.requests[first_wait:] if r.route == "item"]


def test_lost_upload_answers_and_a_fatal_error_mid_sync(emu: AISearchEmulator, tmp_path: pathlib.Path) -> None:
    """Faults from the emulator: a lost answer is resolved by key (our hash makes it exact); a 401 on the third
    upload stops the try (nothing after it starts); the retry sends only what is not stored."""
    docs = write(tmp_path / "docs", {f"f{i}.md": f"file {i}".encode() for i in range(5)})
    emu.inject(Fault("reset_after"), method="POST", path="/items$")  # stored, but the answer is lost
    emu.inject(Fault("reset_after"), method="POST", path="/items$")
    first = run(sync_op(docs, max_upload_concurrency=1, pattern="f[01].md"))
    assert first["uploaded"] == ["f0.md", "f1.md"] and first["failed"] == []
    assert len(uploads(emu)) == 2  # each looked up by key, never re-sent
    emu.inject(Fault.http(401, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}))
    with pytest.raises(AISearchAuthError):
        run(sync_op(docs, max_upload_concurrency=1))  # its first request (the listing) is refused
    emu.inject(
        Fault.http(401, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}),
        method="POST",
        path="/items$",
    )
    with pytest.raises(AISearchAuthError):
        run(sync_op(docs, max_upload_concurrency=1))  # f2.md's upload is refused: the try stops there
    assert len(uploads(emu)) == 3  # f3.md and f4.md never started
    retry = run(sync_op(docs, max_upload_concurrency=1))
    assert (retry["unchanged"], retry["uploaded"]) == (["f0.md", "f1.md"], ["f2.md", "f3.md", "f4.md"])
    assert sorted(stored(emu)) == [f"f{i}.md" for i in range(5)] and len(uploads(emu)) == 6


def test_items_stored_without_our_hash_are_unchanged_by_checksum_else_resent_with_a_warning(
    emu: AISearchEmulator,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Items uploaded by hand (or on an instance whose custom_metadata schema drops airflow_sha256): no hash of
    # ours. The emulator's checksum is the content's SHA-256, one of the standard digests the sync compares.
    from airflow_provider_aisearch.hooks import AISearchHook

    caplog.set_level(logging.INFO)
    with AISearchHook(retry_backoff=0.001) as hook:
        hook.upload_item("kb", "same.md", b"same text")
        hook.upload_item("kb", "old.md", b"old text")
    assert all(HASH_METADATA_KEY not in (item.metadata or {}) for item in stored(emu).values())
    emu.clear_log()
    docs = write(tmp_path / "docs", {"same.md": b"same text", "old.md": b"new text"})
    result = run(sync_op(docs))
    assert result["unchanged"] == ["same.md"] and result["uploaded"] == ["old.md"]
    assert [[p.filename for p in (r.form or []) if p.name == "file"] for r in uploads(emu)] == [["old.md"]]
    out = caplog.text + capsys.readouterr().out
    assert "1 stored item(s) have no 'airflow_sha256' in their metadata (e.g. 'old.md')" in out
    assert "custom_metadata schema" in out
