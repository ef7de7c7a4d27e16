"""The item gate under real stats answers: absent and null counts, no count at all, malformed counts, no timeout.

Every stats field is optional in Cloudflare's schema (SDK 5.9 ``InstanceStatsResponse``), and whether it
omits zero counts is undocumented. Over real HTTP against the emulator (``set_stats_fields``), in every
mode: the sensor poking and deferred (its trigger run here), the create operator in the worker and deferred.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import (
    AISearchIndexQualityError,
    AISearchJobTimeoutError,
    AISearchResponseError,
)
from airflow_provider_aisearch.models.instances import STATS_COUNT_FIELDS
from airflow_provider_aisearch.waiting import item_stats
from tests.test_quality_gate import MODES, stats_reads, wait


@pytest.fixture
def emu(make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]) -> AISearchEmulator:
    """Instance ``docs`` with 20 items, 2 of which end in error."""
    emulator = make_emulator(instances=[])
    emulator.add_instance("docs", items=20)
    emulator.set_item_errors(0.1)
    connect(emulator)
    return emulator


ABSENT = [
    ({"omit": ["queued", "running", "outdated", "skipped"]}, 2),  # zeros left out
    ({"omit": ["error"]}, 0),  # none failed: "error" left out
    ({"replace": {"queued": None, "running": None, "error": None}}, 0),  # null
    ({"omit": ["queued", "error", "degraded"]}, 0),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fields", "errors"), ABSENT, ids=["zeros-absent", "error-absent", "null", "no-degraded"])
def test_an_absent_or_null_count_is_zero(emu: AISearchEmulator, mode: str, fields: dict[str, Any], errors: int) -> None:
    """
    Before: "queued" absent made wait_for_items read until the timeout; "error" absent failed the gate
    as "degraded (no counts)". Now an absent count is 0: one read, and the gate judges the counts.
    """
    emu.set_stats_fields(**fields)
    result = wait(emu, mode, timeout=5, wait_for_items=True, max_item_errors=2)
    items = result["items"]
    assert items["degraded"] is False
    assert (items["queued"], items["running"], items["error"]) == (0, 0, errors)
    assert items["completed"] == 18
    assert all(isinstance(items[name], int) for name in STATS_COUNT_FIELDS)
    assert len(stats_reads(emu)) == 1  # nothing in flight at the first read: no second one


@pytest.mark.parametrize("mode", MODES)
def test_an_error_count_left_out_passes_a_zero_gate(emu: AISearchEmulator, mode: str) -> None:
    emu.set_item_errors(0.0)
    emu.set_stats_fields(omit=["error"], replace={"degraded": False})
    assert wait(emu, mode, timeout=5, max_item_errors=0)["items"]["error"] == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("allowed", [False, True], ids=["gate-fails", "allowed"])
def test_an_answer_without_any_count_is_degraded_and_ends_the_item_wait(
    emu: AISearchEmulator, mode: str, allowed: bool
) -> None:
    """
    No count at all (``degraded`` false or absent) says nothing about the items: judged as degraded,
    never as zeros, and the item wait ends at once (before: it read until the timeout).
    """
    emu.set_stats_fields(omit=list(STATS_COUNT_FIELDS), replace={"degraded": False})
    gate: dict[str, Any] = {"wait_for_items": True, "max_item_errors": 0, "allow_degraded_stats": allowed}
    if allowed:
        items = wait(emu, mode, timeout=5, **gate)["items"]
        assert items["degraded"] is True
        assert [items[name] for name in STATS_COUNT_FIELDS] == [None] * 6
    else:
        with pytest.raises(AISearchIndexQualityError, match="degraded"):
            wait(emu, mode, timeout=5, **gate)
    assert len(stats_reads(emu)) == 1


MALFORMED = [{"queued": -1}, {"error": "3"}, {"running": True}, {"completed": 1.5}, {"degraded": "no"}]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("replace", MALFORMED, ids=["negative", "string", "bool", "fraction", "degraded-string"])
def test_stats_that_can_never_become_valid_fail_within_three_reads(
    emu: AISearchEmulator, mode: str, replace: dict[str, Any]
) -> None:
    """Before: a malformed answer was transient, read again until the timeout. Now it fails at its first read."""
    emu.set_stats_fields(replace=replace)
    with pytest.raises(AISearchResponseError, match="malformed instance stats") as info:
        wait(emu, mode, timeout=5, wait_for_items=True, max_item_errors=2)
    (field,) = replace
    assert repr(field) in str(info.value)
    assert info.value.transient is False
    assert 1 <= len(stats_reads(emu)) <= 3
    assert len(stats_reads(emu)) == 1  # (fail at once: a schema break is no glitch to ride out)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["create", "create_deferred"])
def test_an_item_wait_without_a_timeout_is_bounded(
    emu: AISearchEmulator, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    timeout=None: the item phase gets DEFAULT_ITEMS_TIMEOUT (1 h; here 1 s), in the worker and in the
    triggerer alike. Before: both read the stats without end.
    """
    monkeypatch.setattr(item_stats, "DEFAULT_ITEMS_TIMEOUT", 1.0)
    emu.set_item_lag(3600)  # the items never settle
    with pytest.raises(AISearchJobTimeoutError, match=r"default bound \(1 s, timeout=None\)") as info:
        wait(emu, mode, duration=0.3, timeout=None, wait_for_items=True)
    assert "still queued" in str(info.value)
    assert len(stats_reads(emu)) >= 2  # it waited (at the poll interval), then stopped
    assert emu.requests_to(method="PATCH") == []  # the job had ended: nothing to cancel
