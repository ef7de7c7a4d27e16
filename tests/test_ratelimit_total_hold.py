"""One far rate-limit answer holds a credential for 300 s in all, not 300 s at a time (issue 11, point 4).

Against the emulator over real HTTP. The hook's sleeps are faked: each wait the gate asks for moves
the budget's clock on instead of sleeping, so the test reads the whole hold, not wall time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aisearch.api import Backoff
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import AISearchRateLimitError
from airflow_provider_aisearch.hooks import AISearchHook
from tests.test_ratelimit_caps import FAR_ANSWER_IDS, far_answers

MAX_WAIT = 300.0  # Cloudflare's lockout (a literal: the test must not follow the code's constant)
TWO_HOURS = 7200


@pytest.fixture
def hook(emulator: AISearchEmulator, connect: Any) -> Iterator[AISearchHook]:
    connect(emulator)
    h = AISearchHook(max_retries=0)
    yield h
    h.close()


@pytest.mark.parametrize("headers", far_answers(), ids=FAR_ANSWER_IDS)
def test_the_whole_hold_after_one_far_answer_is_at_most_300_s(
    hook: AISearchHook, emulator: AISearchEmulator, headers: dict[str, str]
) -> None:
    job = emulator.add_job("docs", duration=0)
    body = {"success": False, "errors": [{"code": 971, "message": "Please wait"}], "messages": [], "result": None}
    emulator.inject(Fault("status", status=429, body=body, headers=headers), method="GET")
    offset = 0.0
    waits: list[float] = []

    def clock() -> float:
        return time.time() + offset

    def sleep(backoff: Backoff) -> None:
        nonlocal offset
        waits.append(backoff.seconds)
        offset += backoff.seconds

    hook.api.budget.clock = clock
    hook._sleep = sleep  # type: ignore[method-assign]
    with pytest.raises(AISearchRateLimitError):
        hook.get_job("docs", job.id)
    assert hook.get_job("docs", job.id).id == job.id
    # Each wait capped at 300 s is not enough: 24 of them would still hold the credential two hours.
    assert 0 < sum(waits) <= MAX_WAIT + 1, waits
    assert len(waits) == 1, waits
    assert [r.status for r in emulator.requests] == [429, 200]
