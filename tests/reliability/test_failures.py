"""No duplicates, throttling and fail-fast, measured through the operators and the sensor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import CHAOS_KINDS, AISearchEmulator, Chaos, Fault
from airflow_provider_aisearch.exceptions import AISearchAuthError, AISearchNotFoundError, AISearchRateLimitError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.operators import AISearchCreateJobOperator
from airflow_provider_aisearch.sensors import AISearchJobSensor

HOOK_PARAMS = {"max_retries": 3, "retry_backoff": 0.001, "timeout": (1.0, 0.2)}


class FakeTI:
    dag_id, task_id, run_id, try_number, map_index = "dup", "create", "run", 1, -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.fixture
def emu(make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]) -> AISearchEmulator:
    emulator = make_emulator()
    connect(emulator)
    return emulator


@pytest.mark.parametrize("kind", sorted(CHAOS_KINDS))
def test_every_way_a_post_can_break_leaves_exactly_one_job(
    emu: AISearchEmulator, kind: str, figures: dict[str, dict[str, Any]]
) -> None:
    emu.seed_jobs("docs", 3)
    before = len(emu.jobs("docs"))
    # Break only the first POST, in this way; afterwards the API behaves.
    emu.chaos = Chaos(rate=1.0, kinds={kind: 1}, methods=frozenset({"POST"}), slow_delay=0.3)
    original_pick = emu.chaos.pick
    state = {"used": False}

    def pick_once(method: str, route: str | None) -> Any:
        if state["used"]:
            return None
        picked = original_pick(method, route)
        state["used"] = picked is not None
        return picked

    emu.chaos.pick = pick_once  # type: ignore[method-assign]
    op = AISearchCreateJobOperator(task_id="create", instance_id="docs", hook_params=HOOK_PARAMS, deferrable=False)
    op.ambiguity_recheck_delay = 0.05
    context: Any = {"ti": FakeTI()}
    result = op.execute(context)
    jobs = emu.jobs("docs")
    assert len(jobs) == before + 1
    assert result["id"] == jobs[0]["id"]
    figures.setdefault("no duplicates", {"post_break_points": 0, "extra_jobs": 0})
    figures["no duplicates"]["post_break_points"] += 1


def test_sustained_throttling_waits_as_told(
    emu: AISearchEmulator, mocker: Any, figures: dict[str, dict[str, Any]]
) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emu.inject(Fault.rate_limited(retry_after=40), times=1000)
    with pytest.raises(AISearchRateLimitError):
        AISearchHook(max_retries=3).list_jobs("docs")
    waits = [c.args[0] for c in sleep.call_args_list]
    assert waits == [40, 40, 40]
    assert len(emu.requests) == 4
    sleep.reset_mock()
    emu.clear_log()
    emu.clear_faults()
    emu.inject(Fault.rate_limited(retry_after=3600), times=1000)
    with pytest.raises(AISearchRateLimitError):
        AISearchHook(max_retries=2).list_jobs("docs")
    assert [c.args[0] for c in sleep.call_args_list] == [300, 300]  # capped at Cloudflare's 5-minute lockout
    figures["throttling"] = {"requests_per_call_under_sustained_429": len(emu.requests), "max_wait_s": 300}


@pytest.mark.parametrize(
    ("setup", "error", "code"),
    [
        ({"password": "wrong-token-aaaa"}, AISearchAuthError, 10000),
        ({"account_id": "ffffffffffffffffffffffffffffffff"}, AISearchAuthError, 10000),
        ({"instance": "missing"}, AISearchNotFoundError, 7002),
    ],
    ids=["401", "403", "404"],
)
def test_fail_fast_in_one_request(
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    setup: dict[str, Any],
    error: type[Exception],
    code: int,
    figures: dict[str, dict[str, Any]],
) -> None:
    emu = make_emulator()
    instance = setup.pop("instance", "docs")
    connect(emu, "cf_prod", **setup)
    job = emu.add_job("docs", duration=3600)
    sensor = AISearchJobSensor(
        task_id="wait", instance_id=instance, job_id=job.id, aisearch_conn_id="cf_prod", poke_interval=0.01, timeout=30
    )
    with pytest.raises((AISearchAuthError, AISearchNotFoundError)) as info:
        sensor.execute({})
    assert isinstance(info.value, error)
    assert len(emu.requests) == 1
    message = str(info.value)
    assert "cf_prod" in message
    assert f"[{code}]" in message
    assert "wrong-token-aaaa" not in message
    figures.setdefault("fail fast", {})[f"http_{info.value.status_code}_requests"] = len(emu.requests)
