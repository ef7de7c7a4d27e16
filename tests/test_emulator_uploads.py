"""The emulator's uploaded items: status progression over time, outcomes and their shares, checksums,
the items list and stats, the search reading completed uploads, built-in storage without sync jobs,
and the multipart reader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import requests

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.emulator.multipart import MultipartError, parse_form
from airflow_provider_aisearch.emulator.server import DEFAULT_ACCOUNT_ID
from airflow_provider_aisearch.emulator.uploads import chunk_spans
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import TOKEN, Connect


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(make_emulator: Callable[..., AISearchEmulator], connect: Connect, clock: Clock) -> AISearchEmulator:
    emulator = make_emulator(instances=[], clock=clock)
    emulator.add_instance("kb", type=None, items=0)
    emulator.set_upload_duration(30)
    connect(emulator)
    return emulator


@pytest.fixture
def hook(emu: AISearchEmulator) -> AISearchHook:
    return AISearchHook(retry_backoff=0.001)


def test_an_upload_moves_queued_running_completed_over_its_duration(
    emu: AISearchEmulator, hook: AISearchHook, clock: Clock
) -> None:
    item = hook.upload_item("kb", "a.md", b"alpha beta")
    seen = [item.status]
    for step in (9.9, 0.2, 19.8, 0.2):  # 9.9 s: queued; 10.1: running; 29.9: running; 30.1: completed
        clock.now += step
        seen.append(hook.get_item("kb", item.id).status)
    assert seen == ["queued", "queued", "running", "running", "completed"]
    done = hook.get_item("kb", item.id)
    assert done.next_action is None and done.chunks_count == 1
    assert [entry.action for entry in hook.iter_item_logs("kb", item.id)] == ["upload", "index"]
    assert next(hook.iter_item_logs("kb", item.id)).timestamp is not None


def test_stats_and_the_items_list_count_uploads_with_their_filters(
    emu: AISearchEmulator, hook: AISearchHook, clock: Clock
) -> None:
    first = hook.upload_item("kb", "a.md", b"alpha")
    clock.now += 31
    hook.upload_item("kb", "b.md", b"beta")
    stats = hook.get_instance_stats("kb")
    assert (stats.completed, stats.queued, stats.error) == (1, 1, 0)
    assert stats.last_activity is not None
    assert [i.key for i in hook.iter_items("kb", status="queued")] == ["b.md"]
    assert [i.key for i in hook.iter_items("kb", key="a.md")] == ["a.md"]
    assert [i.key for i in hook.iter_items("kb", item_id=first.id)] == ["a.md"]
    assert sorted(i.key for i in hook.iter_items("kb", source="builtin")) == ["a.md", "b.md"]
    assert list(hook.iter_items("kb", source="r2:elsewhere")) == []


def test_a_re_upload_keeps_the_id_and_created_at_and_changes_the_checksum(
    emu: AISearchEmulator, hook: AISearchHook, clock: Clock
) -> None:
    first = hook.upload_item("kb", "a.md", b"version one")
    clock.now += 100
    second = hook.upload_item("kb", "a.md", b"version two")
    assert second.id == first.id and second.created_at == first.created_at
    assert second.checksum != first.checksum
    same = hook.upload_item("kb", "a.md", b"version two")
    assert same.checksum == second.checksum  # the checksum is of the content only
    assert len(list(hook.iter_items("kb"))) == 1


def test_a_share_of_uploads_fails_with_realistic_errors_and_logs(
    emu: AISearchEmulator, hook: AISearchHook, clock: Clock
) -> None:
    emu.set_item_errors(0.25, instance_id="kb")
    items = [hook.upload_item("kb", f"doc-{i}.md", f"text {i}".encode()) for i in range(8)]
    clock.now += 31
    settled = [hook.get_item("kb", item.id) for item in items]
    failed = [item for item in settled if item.status == "error"]
    assert len(failed) == 2  # exactly a quarter
    assert all(item.error and item.error.startswith("Failed to embed") for item in failed)
    log = list(hook.iter_item_logs("kb", failed[0].id))[-1]
    assert (log.action, log.error_type, log.message) == ("error", "embed_error", failed[0].error)
    assert log.processing_time_ms == 30000
    assert list(hook.iter_item_chunks("kb", failed[0].id)) == []  # nothing indexed


def test_realistic_outcomes_by_content_and_forced_ones(emu: AISearchEmulator, hook: AISearchHook, clock: Clock) -> None:
    emu.set_upload_outcome("forced.md", "error", "Failed to embed: upstream model returned 503", instance_id="kb")
    ids = {
        "empty.md": hook.upload_item("kb", "empty.md", b"").id,
        "fake.pdf": hook.upload_item("kb", "fake.pdf", b"not a pdf").id,
        "blob.bin": hook.upload_item("kb", "blob.bin", b"\xff\xfe\x00binary").id,
        "forced.md": hook.upload_item("kb", "forced.md", b"fine text").id,
    }
    clock.now += 31
    got = {key: hook.get_item("kb", item_id) for key, item_id in ids.items()}
    assert got["empty.md"].status == "skipped"
    assert got["fake.pdf"].status == "error" and got["fake.pdf"].error is not None
    assert got["fake.pdf"].error.startswith("Could not parse PDF")
    assert got["blob.bin"].error == "Unsupported file type: application/octet-stream"
    assert got["forced.md"].error == "Failed to embed: upstream model returned 503"
    assert hook.download_item("kb", ids["blob.bin"]) == b"\xff\xfe\x00binary"  # bytes kept as sent


def test_uploads_become_searchable_once_completed(emu: AISearchEmulator, hook: AISearchHook, clock: Clock) -> None:
    text = b"Rotate your API token every 90 days."
    hook.upload_item("kb", "guides/tokens.md", text, metadata={"team": "security"})
    assert hook.search("kb", "rotate token").chunks == []  # queued: not searchable yet
    clock.now += 31
    found = hook.search("kb", "rotate token")
    assert [c.item_key for c in found.chunks] == ["guides/tokens.md"]
    assert found.chunks[0].text == text.decode()
    item = next(hook.iter_items("kb"))
    assert [c.text for c in hook.iter_item_chunks("kb", item.id)] == [found.chunks[0].text]  # one chunker
    hook.delete_item("kb", item.id)
    assert hook.search("kb", "rotate token").chunks == []


def test_a_failed_upload_is_not_searchable(emu: AISearchEmulator, hook: AISearchHook, clock: Clock) -> None:
    emu.set_upload_outcome("a.md", "error", "Failed to embed: x", instance_id="kb")
    hook.upload_item("kb", "a.md", b"rotate the token")
    clock.now += 31
    assert hook.search("kb", "rotate").chunks == []


def test_built_in_storage_has_no_sync_jobs_and_other_sources_take_no_uploads(
    emu: AISearchEmulator, hook: AISearchHook
) -> None:
    assert hook.list_jobs("kb").jobs == ()
    emu.add_instance("bucket", type="r2", items=2)
    r2_item = next(hook.iter_items("bucket"))
    assert hook.sync_item("bucket", r2_item.id).status == "queued"  # one file of a source, re-indexed
    hook.delete_item("bucket", r2_item.id)
    assert [i.key for i in hook.iter_items("bucket")] == ["docs/file-0002.md"]  # a source's deleted item stays gone
    statuses = [r.status for r in emu.requests if r.method in ("POST", "PATCH", "DELETE")]
    assert statuses == [200, 200]


def test_the_multipart_reader_keeps_bytes_and_refuses_broken_bodies() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{"a": 1}\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="q\\"x.md"\r\n'
        b"Content-Type: text/markdown\r\n\r\nline\r\n\r\n-- XyZ\r\n--XyZ--\r\n"
    )
    parts = parse_form("multipart/form-data; boundary=XyZ", body)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("metadata", None, None),
        ("file", 'q"x.md', "text/markdown"),
    ]
    assert parts[1].content == b"line\r\n\r\n-- XyZ"  # CRLFs kept; not a delimiter
    with pytest.raises(MultipartError, match="boundary"):
        parse_form("multipart/form-data", body)
    with pytest.raises(MultipartError, match="closing"):
        parse_form("multipart/form-data; boundary=XyZ", body[: body.rindex(b"--XyZ--")])


def test_chunk_spans_are_utf8_byte_offsets() -> None:
    text = "é " * 150 + "end"  # 151 words: one chunk of at most 200 words
    [(piece, start, end)] = chunk_spans(text)
    assert piece == text.strip()
    assert (start, end) == (0, len(text.encode()))
    long = " ".join(["wörd"] * 450)
    spans = chunk_spans(long)
    assert len(spans) == 3
    assert all(long.encode()[s:e].decode() == piece for piece, s, e in spans)


def test_the_control_channel_sets_the_upload_duration() -> None:
    with AISearchEmulator(control=True) as emulator:
        url = f"http://{emulator.host}:{emulator.port}/_emulator/settings"
        headers = {"Authorization": f"Bearer {emulator.token}"}
        assert requests.put(url, json={"upload_duration": 7}, headers=headers, timeout=10).status_code == 200
        assert emulator.upload_duration == 7.0
        assert requests.put(url, json={"upload_duration": -1}, headers=headers, timeout=10).status_code == 400
        assert emulator.upload_duration == 7.0


def test_the_command_line_serves_a_built_in_storage_instance() -> None:
    args = ["--port", "0", "--token", TOKEN, "--builtin", "kb", "--upload-duration", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
        items = f"{url}/accounts/{DEFAULT_ACCOUNT_ID}/ai-search/namespaces/default/instances/kb/items"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = requests.post(items, files={"file": ("a.md", b"alpha")}, headers=headers, timeout=30)
        assert answer.status_code == 200 and answer.json()["result"]["source_id"] == "builtin"
        listed = requests.get(items, headers=headers, timeout=30).json()["result"]
        assert [(i["key"], i["status"]) for i in listed] == [("a.md", "completed")]
        jobs = requests.post(items.replace("/items", "/jobs"), json={}, headers=headers, timeout=30)
        assert jobs.status_code == 400 and jobs.json()["errors"][0]["code"] == 7024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
