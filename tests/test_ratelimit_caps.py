"""Every wait a header asks for has a bound (issue 11, point 4), against the emulator over real HTTP.

The waits are read from the plans' :class:`~airflow_provider_aisearch.api.Backoff` steps and from
``RateBudget.acquire()``, never from wall time: a fake sleep records each wait and moves the
budget's clock on instead of sleeping.
"""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Any

import pytest

from airflow_provider_aisearch.api import Backoff
from airflow_provider_aisearch.clients.client_options import log_backoff
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault, RateLimit
from airflow_provider_aisearch.exceptions import AISearchRateLimitError
from airflow_provider_aisearch.hooks import AISearchHook

MAX_WAIT = 300.0  # Cloudflare's lockout (a literal: the test must not follow the code's constant)

TWO_HOURS = 7200


FAR_ANSWER_IDS = ["retry-after", "reset-date", "reset-seconds", "reset-epoch"]


def far_answers() -> list[dict[str, str]]:
    """Rate-limit answers that ask for a two-hour wait, in each form Cloudflare (or a proxy) may use."""
    return [
        {"Retry-After": str(TWO_HOURS), "x-ratelimit-remaining": "0", "x-ratelimit-limit": "1200"},
        {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-limit": "1200",
            "x-ratelimit-reset": formatdate(time.time() + TWO_HOURS, usegmt=True),
        },
        {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "1200", "x-ratelimit-reset": str(TWO_HOURS)},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + TWO_HOURS)},  # epoch form
    ]


def _locked(headers: dict[str, str]) -> Fault:
    """Cloudflare's global rate-limit 429 (code 971) with the given headers."""
    body = {
        "success": False,
        "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}],
        "messages": [],
        "result": None,
    }
    return Fault("status", status=429, body=body, headers=headers)


class FakeTime:
    """A clock for the hook's rate-limit budget, moved on by the waits the hook asks for."""

    def __init__(self, hook: AISearchHook, *, skew: float = 0.0, first_step: float = 1.0) -> None:
        self.logged: list[tuple[str, str]] = []  # (level, line) as the hook's _sleep logs them
        self.offset = skew
        self.first_step = first_step
        self.waits: list[Backoff] = []
        hook.api.budget.clock = self.clock
        hook._sleep = self.sleep  # type: ignore[method-assign]
        self.hook = hook

    def warning(self, fmt: str, *args: Any) -> None:
        self.logged.append(("WARNING", fmt % args))

    def debug(self, fmt: str, *args: Any) -> None:
        self.logged.append(("DEBUG", fmt % args))

    def clock(self) -> float:
        return time.time() + self.offset

    def sleep(self, backoff: Backoff) -> None:
        log_backoff(self, backoff)
        step = self.first_step if not self.waits else 1.0
        self.waits.append(backoff)
        self.offset += backoff.seconds * step


@pytest.mark.parametrize("headers", far_answers(), ids=FAR_ANSWER_IDS)
def test_one_far_answer_holds_the_credential_at_most_300_s(
    hook: AISearchHook, emulator: AISearchEmulator, headers: dict[str, str]
) -> None:
    job = emulator.add_job("docs", duration=0)
    emulator.inject(_locked(headers), method="GET")
    fake = FakeTime(hook)
    with pytest.raises(AISearchRateLimitError):
        hook.get_job("docs", job.id, namespace="default")  # no retry budget used: see the gate below
    first_wait = hook.api.budget.acquire()
    hook.api.budget.release(None)
    assert 0 < first_wait <= MAX_WAIT  # held, but for Cloudflare's 5-minute lockout at most, not 2 hours

    # The next request on the credential waits at most 300 s, then goes.
    assert hook.get_job("docs", job.id).id == job.id
    assert fake.waits and all(w.seconds <= MAX_WAIT for w in fake.waits)
    assert [r.status for r in emulator.requests] == [429, 200]


@pytest.fixture
def hook(emulator: AISearchEmulator, connect: Any) -> Any:
    connect(emulator)
    h = AISearchHook(max_retries=0)
    yield h
    h.close()


def test_retry_after_of_two_hours_is_retried_after_300_s(emulator: AISearchEmulator, connect: Any) -> None:
    connect(emulator)
    hook = AISearchHook(max_retries=1)
    job = emulator.add_job("docs", duration=0)
    emulator.inject(_locked({"Retry-After": str(TWO_HOURS)}), method="GET")
    fake = FakeTime(hook)
    assert hook.get_job("docs", job.id).id == job.id
    assert [w.seconds for w in fake.waits] == [MAX_WAIT]
    assert [r.status for r in emulator.requests] == [429, 200]


@pytest.mark.parametrize("skew", [-3600.0, 3600.0], ids=["clock-behind", "clock-ahead"])
def test_a_skewed_clock_does_not_change_the_gate_wait(make_emulator: Any, connect: Any, skew: float) -> None:
    """The reset date is read against the answer's Date header, not the local clock."""
    emu = make_emulator()
    emu.rate_limit = RateLimit(limit=2, window=60.0, lockout=60.0)
    connect(emu)
    hook = AISearchHook(max_retries=0)
    job = emu.add_job("docs", duration=0)
    FakeTime(hook, skew=skew)
    hook.get_job("docs", job.id)
    hook.get_job("docs", job.id)  # the window's last request: remaining 0, reset about 60 s away
    wait = hook.api.budget.acquire()
    # 60 s, plus up to 2 s of whole-second rounding (never the hour of skew, never 0)
    assert 55 <= wait <= 63
    assert [r.status for r in emu.requests] == [200, 200]


def test_a_gate_wait_never_runs_past_the_deadline(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    job = emulator.add_job("docs", duration=0)
    emulator.inject(_locked({"Retry-After": "120", "x-ratelimit-remaining": "0"}), method="GET")
    fake = FakeTime(hook)
    with pytest.raises(AISearchRateLimitError):
        hook.get_job("docs", job.id)
    api = hook.api.with_deadline(time.time() + 30)
    with pytest.raises(AISearchRateLimitError, match="would pass the deadline"):
        hook.run(api.get_job("docs", job.id))
    assert fake.waits == []
    assert len(emulator.requests) == 1  # the held request was not sent


def test_a_held_request_logs_once_at_warning(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    job = emulator.add_job("docs", duration=0)
    emulator.inject(_locked({"Retry-After": "120", "x-ratelimit-remaining": "0"}), method="GET")
    fake = FakeTime(hook, first_step=0.5)  # the first wait ends early: the request is held twice
    with pytest.raises(AISearchRateLimitError):
        hook.get_job("docs", job.id)
    assert hook.get_job("docs", job.id).id == job.id
    assert len(fake.waits) == 2
    assert [w.level for w in fake.waits] == [logging.WARNING, logging.DEBUG]
    assert [level for level, line in fake.logged if " held: " in line] == ["WARNING", "DEBUG"]
    first = fake.logged[0][1]
    assert "rate-limit" in first and "until" in first and first.endswith("for the window to reset")
    assert [r.status for r in emulator.requests] == [429, 200]
