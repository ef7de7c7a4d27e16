"""The instance models (``Instance``, ``InstanceStats``, ``Item``): reading the API's shapes, the XCom shape."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_aisearch.models.instances import (
    STATS_COUNT_FIELDS,
    Instance,
    InstanceStats,
    Item,
    ItemStatus,
    MalformedInstanceError,
    MalformedStatsError,
)
from airflow_provider_aisearch.models.jobs import MalformedJobError

# Shapes as the cloudflare SDK 5.9 types describe them (InstanceReadResponse, InstanceStatsResponse, ItemListResponse).
INSTANCE = {
    "id": "docs",
    "created_at": "2026-07-16 19:29:59",
    "modified_at": "2026-07-16 19:29:59",
    "type": "r2",
    "source": "docs-bucket",
    "namespace": "default",
    "paused": False,
    "status": "active",
    "sync_interval": 3600,
    "source_params": {"prefix": "docs/"},
    "chunk_size": 256,
}
STATS = {
    "completed": 17,
    "queued": 1,
    "running": 1,
    "error": 2,
    "skipped": 1,
    "outdated": 0,
    "last_activity": "2026-07-16T19:29:59Z",
    "file_embed_errors": {"Failed to embed": 2},
    "index_source_errors": {},
    "engine": {"vectorize": {"dimensions": 1024, "vectorsCount": 50}},
}
ITEM = {
    "id": "7656392c-cb8b-b492-dde5-7f2992866916",
    "checksum": "abc",
    "chunks_count": None,
    "created_at": "2026-07-16 19:00:00",
    "file_size": 2048.0,
    "key": "docs/file-0003.md",
    "last_seen_at": "2026-07-16 19:29:59",
    "metadata": {"folder": "docs/"},
    "namespace": "default",
    "next_action": None,
    "source_id": "r2:docs-bucket",
    "status": "error",
    "error": "Failed to embed: document exceeds maximum token length (8192 tokens)",
}
MOMENT = datetime(2026, 7, 16, 19, 29, 59, tzinfo=timezone.utc)


def test_item_status_values_are_the_sdk_literals() -> None:
    assert [s.value for s in ItemStatus] == ["queued", "running", "completed", "error", "skipped", "outdated"]
    assert str(ItemStatus.ERROR) == "error"
    assert ItemStatus("skipped") is ItemStatus.SKIPPED


def test_instance_reads_the_fields_the_provider_uses_and_ignores_the_rest() -> None:
    inst = Instance.from_api(INSTANCE)
    assert inst == Instance("docs", "r2", "docs-bucket", "default", False, "active", 3600)
    assert inst.to_dict() == {
        "id": "docs",
        "type": "r2",
        "source": "docs-bucket",
        "namespace": "default",
        "paused": False,
        "status": "active",
        "sync_interval": 3600,
    }
    assert Instance.from_api({"id": "up"}) == Instance("up")  # managed storage: no type, no source
    json.dumps(inst.to_dict())


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "object"),
        ({}, "'id'"),
        ({"id": ""}, "'id'"),
        ({"id": "d", "type": 3}, "'type'"),
        ({"id": "d", "paused": "no"}, "'paused'"),
        ({"id": "d", "sync_interval": "1h"}, "'sync_interval'"),
        ({"id": "d", "sync_interval": -5}, "'sync_interval'"),
        ({"id": "d", "source": ["b"]}, "'source'"),
    ],
)
def test_a_malformed_instance_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(MalformedInstanceError, match=field) as caught:
        Instance.from_api(raw)
    assert isinstance(caught.value, MalformedJobError)  # the core maps these to AISearchResponseError


def test_stats_read_counts_and_derive_in_flight_and_processed() -> None:
    stats = InstanceStats.from_api(STATS)
    assert (stats.completed, stats.queued, stats.running, stats.error, stats.skipped, stats.outdated) == (
        17,
        1,
        1,
        2,
        1,
        0,
    )
    assert stats.degraded is False
    assert stats.last_activity == MOMENT
    assert stats.file_embed_errors == {"Failed to embed": 2}
    assert stats.index_source_errors == {}
    assert stats.in_flight == 2
    assert stats.processed == 20


def test_stats_xcom_shape_has_exactly_the_documented_keys() -> None:
    shape = InstanceStats.from_api(STATS).to_dict()
    assert list(shape) == [*STATS_COUNT_FIELDS, "last_activity", "degraded"]
    assert shape == {
        "completed": 17,
        "queued": 1,
        "running": 1,
        "error": 2,
        "skipped": 1,
        "outdated": 0,
        "last_activity": "2026-07-16T19:29:59+00:00",
        "degraded": False,
    }
    assert json.loads(json.dumps(shape)) == shape
    again = InstanceStats.from_dict(shape)
    assert again.to_dict() == shape


def test_degraded_stats_have_no_counts() -> None:
    stats = InstanceStats.from_api({"degraded": True, "last_activity": None})
    assert stats.degraded is True
    assert [getattr(stats, name) for name in STATS_COUNT_FIELDS] == [None] * 6
    assert stats.in_flight is None
    assert stats.processed is None
    assert stats.to_dict()["degraded"] is True


@pytest.mark.parametrize(
    "raw",
    [{}, {"last_activity": None}, {"degraded": False}, dict.fromkeys(STATS_COUNT_FIELDS), {"engine": {}}],
    ids=["empty", "no-count", "degraded-false", "all-null", "engine-only"],
)
def test_an_answer_without_any_count_is_degraded(raw: dict[str, Any]) -> None:
    """It says nothing about the items: judged like Cloudflare's degraded answer, never as zeros."""
    stats = InstanceStats.from_api(raw)
    assert stats.degraded is True
    assert [getattr(stats, name) for name in STATS_COUNT_FIELDS] == [None] * 6
    assert (stats.in_flight, stats.processed) == (None, None)


@pytest.mark.parametrize(
    "raw",
    [
        {"completed": 18, "error": 2},  # the others left out
        {"completed": 18, "error": 2, "queued": None, "running": None, "skipped": None, "outdated": None},
        {"completed": 18, "error": 2, "degraded": None},
    ],
    ids=["absent", "null", "degraded-null"],
)
def test_an_absent_or_null_count_is_zero(raw: dict[str, Any]) -> None:
    stats = InstanceStats.from_api(raw)
    assert stats.degraded is False
    assert stats.to_dict() | {"last_activity": None} == {
        "completed": 18,
        "queued": 0,
        "running": 0,
        "error": 2,
        "skipped": 0,
        "outdated": 0,
        "last_activity": None,
        "degraded": False,
    }
    assert (stats.in_flight, stats.processed) == (0, 20)
    assert InstanceStats.from_api({"completed": 5}).error == 0  # "error" absent: none failed, not unknown


def test_degraded_stats_keep_the_counts_they_carry() -> None:
    stats = InstanceStats.from_api({"degraded": True, "completed": 3})
    assert (stats.degraded, stats.completed, stats.error) == (True, 3, None)
    assert stats.in_flight is None


def test_stats_built_directly_count_a_missing_count_as_zero() -> None:
    assert InstanceStats(queued=3).in_flight == 3
    assert InstanceStats(queued=3, running=0).in_flight == 3
    assert InstanceStats(completed=1, error=1).processed == 2
    assert InstanceStats(completed=1.0, error=0, skipped=0).processed == 1  # type: ignore[arg-type]
    assert InstanceStats(queued=3, degraded=True).in_flight is None


def test_stats_accept_integral_floats_as_counts() -> None:
    assert InstanceStats.from_api({"completed": 4.0}).completed == 4


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("x", "object"),
        ({"completed": "4"}, "'completed'"),
        ({"error": -1}, "'error'"),
        ({"queued": 1.5}, "'queued'"),
        ({"running": True}, "'running'"),
        ({"degraded": "yes"}, "'degraded'"),
        ({"file_embed_errors": [1]}, "'file_embed_errors'"),
    ],
)
def test_malformed_stats_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(MalformedInstanceError, match=field) as caught:
        InstanceStats.from_api(raw)
    # Every one but the timestamp can never become valid (MalformedStatsError: a permanent error).
    assert isinstance(caught.value, MalformedStatsError) is (field != "last_activity")


def test_item_reads_the_sdk_shape() -> None:
    item = Item.from_api(ITEM)
    assert item.key == "docs/file-0003.md"
    assert item.status == "error"
    assert item.error is not None and item.error.startswith("Failed to embed")
    assert item.source_id == "r2:docs-bucket"
    assert item.last_seen_at == MOMENT
    assert item.next_action is None
    data = item.to_dict()
    assert data == {
        "id": ITEM["id"],
        "key": "docs/file-0003.md",
        "status": "error",
        "error": ITEM["error"],
        "source_id": "r2:docs-bucket",
        "last_seen_at": "2026-07-16T19:29:59+00:00",
        "next_action": None,
        "checksum": "abc",
        "chunks_count": None,
        "file_size": 2048,  # an integral number is read as an int (the SDK types it as a float)
        "created_at": "2026-07-16T19:00:00+00:00",
        "metadata": {"folder": "docs/"},
    }
    assert isinstance(data["file_size"], int)
    json.dumps(data)
    # A status this provider does not know yet is kept, not refused.
    assert Item.from_api({**ITEM, "status": "archived"}).status == "archived"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"checksum": 5}, "'checksum'"),
        ({"chunks_count": -1}, "'chunks_count'"),
        ({"file_size": "2k"}, "'file_size'"),
        ({"file_size": -1.5}, "'file_size'"),
        ({"metadata": ["a"]}, "'metadata'"),
    ],
)
def test_malformed_item_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(MalformedInstanceError, match=field):
        Item.from_api({**ITEM, **change})


def test_item_optional_fields_may_be_absent_or_null() -> None:
    bare = {k: ITEM[k] for k in ("id", "key", "status")}
    item = Item.from_api({**bare, "checksum": None, "created_at": None})
    assert (item.checksum, item.chunks_count, item.file_size, item.created_at, item.metadata) == (None,) * 5
    assert Item.from_api({**ITEM, "file_size": 10.5}).file_size == 10.5


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (None, "object"),
        ({**ITEM, "id": None}, "'id'"),
        ({**ITEM, "key": 5}, "'key'"),
        ({**ITEM, "status": None}, "'status'"),
        ({**ITEM, "error": 500}, "'error'"),
        ({**ITEM, "next_action": False}, "'next_action'"),
    ],
)
def test_a_malformed_item_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(MalformedInstanceError, match=field):
        Item.from_api(raw)


def test_an_unreadable_timestamp_is_kept_not_refused() -> None:
    stats = InstanceStats.from_api({"completed": 1, "last_activity": "yesterday"})
    assert stats.last_activity is None and stats.to_dict()["last_activity"] == "yesterday"
    item = Item.from_api({**ITEM, "last_seen_at": [12]})
    assert item.last_seen_at is None and item.unparsed_timestamps == {"last_seen_at": [12]}
    assert Item.from_api({**ITEM, "last_seen_at": 1784230199}).last_seen_at == MOMENT  # epoch seconds
