"""Retries: which failures are retried, how long to wait, and the loop that sends one call until it settles.

:class:`RetryPolicy` holds the waits (``Retry-After`` honoured, capped; exponential backoff with
jitter); :func:`with_retries` is the one retry loop every operation runs, and it also holds a
request while the credential's rate-limit budget is nearly spent (the budget gate).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_aisearch.api.errors import TransportFailure, evaluate
from airflow_provider_aisearch.api.plans import Backoff, Call, Plan
from airflow_provider_aisearch.api.ratelimit import RateBudget
from airflow_provider_aisearch.exceptions import (
    AISearchCooldownError,
    AISearchError,
    AISearchNotFoundError,
    AISearchRateLimitError,
)

__all__ = ["RetryPolicy", "with_retries"]


@dataclass(frozen=True)
class RetryPolicy:
    """
    Which failures are retried and how long to wait between attempts.

    Retried: connection errors, timeouts, 5xx, 429 and malformed 2xx answers. Never retried:
    other 4xx. ``create`` (POST of a job) is retried only when the answer proves no job was
    started: 429, a ``sync_in_cooldown`` (7020) body, or a request that was never sent (the cooldown
    not when the call leaves it to its caller, ``Call.retry_cooldown=False``).

    :param max_retries: Retries after the first attempt.
    :param backoff: First backoff in seconds; doubled each retry, with jitter, up to ``max_backoff``.
    :param max_backoff: Longest computed backoff.
    :param max_retry_after: Cap on a server-given ``Retry-After`` (Cloudflare's lockout is 300 s).
    """

    max_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """
        Seconds to wait before retry ``retry_number`` (0-based).

        A server ``Retry-After`` wins (capped at ``max_retry_after``); otherwise exponential
        backoff with jitter in ``[0.5, 1.0]`` of the step.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        step = min(self.max_backoff, self.backoff * (2**retry_number))
        return step * (0.5 + 0.5 * (rng or random).random())


def with_retries(
    call: Call,
    *,
    conn_id: str,
    policy: RetryPolicy,
    max_retries: int | None = None,
    rng: random.Random | None = None,
    deadline: float | None = None,
    budget: RateBudget | None = None,
) -> Plan[dict[str, Any]]:
    """
    The retry loop: send ``call`` until :func:`evaluate` gives a payload or a final error.

    :param call: The request.
    :param conn_id: Connection id, for messages.
    :param policy: Which waits to take.
    :param max_retries: Overrides ``policy.max_retries``.
    :param rng: Jitter source.
    :param deadline: Wall-clock epoch seconds; no wait may end after it (the error is raised instead).
    :param budget: The credential's rate-limit budget: every answer's headers are recorded, and
        no request is sent while only its reserve is left (the plan waits for the reset instead).
    :raises AISearchError: the final error (its message says how many attempts were made; its
        ``transient`` attribute says whether the policy would have retried it).
    """
    retries = policy.max_retries if max_retries is None else max_retries
    attempt = 0
    maybe_acted = False  # an attempt may have reached the API without its answer reaching us
    announced = False  # a held request says so once, at WARNING; later holds of it log at DEBUG
    while True:
        if budget is not None:
            announced = yield from _await_budget(budget, call, deadline, announced)
        try:
            answer = yield call
        except BaseException:  # the plan was abandoned mid-request (cancelled, closed)
            if budget is not None:
                budget.release(None)
            raise
        assert answer is not None
        if budget is not None:
            budget.release(answer.headers if answer.status is not None else None)
        verdict = evaluate(
            conn_id=conn_id,
            method=call.method,
            path=call.path,
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            failure=answer.failure,
            failure_detail=answer.failure_detail,
            create=call.create,
            description=call.description,
            raw=call.raw,
            resource=call.resource,
        )
        if verdict.payload is not None:
            return verdict.payload
        error = verdict.error
        assert error is not None
        if call.gone_after_retry and maybe_acted and _is_absent(error):
            return {"success": True, "result": None, "gone": True}  # an earlier attempt deleted it
        if answer.status is None:
            maybe_acted = maybe_acted or answer.failure is not TransportFailure.NOT_SENT
        else:
            maybe_acted = maybe_acted or answer.status >= 500
        error.transient = verdict.retryable  # the policy's verdict, for waits: poll again, or end the wait
        cooldown_is_callers = not call.retry_cooldown and isinstance(error, AISearchCooldownError)
        if not verdict.retryable or attempt >= retries or cooldown_is_callers:
            if attempt:
                error.message += f" (after {attempt + 1} attempts)"
                error.args = (error.message,)
            raise error
        delay = policy.delay(attempt, verdict.retry_after, rng)
        if deadline is not None and time.time() + delay > deadline:
            error.message += f" (not retried: waiting {delay:.1f} s would pass the deadline)"
            error.args = (error.message,)
            raise error
        yield Backoff(delay, f"{error.message}; retrying in {delay:.1f} s (retry {attempt + 1} of {retries})")
        attempt += 1


#: Cloudflare's "ai_search_not_found": the instance is absent, which no earlier attempt of a delete caused.
_INSTANCE_NOT_FOUND = 7002


def _is_absent(error: AISearchError) -> bool:
    """A 404 for the thing addressed (not for its instance)."""
    return isinstance(error, AISearchNotFoundError) and all(e.get("code") != _INSTANCE_NOT_FOUND for e in error.errors)


def _await_budget(
    budget: RateBudget, call: Call, deadline: float | None, announced: bool = False
) -> Generator[Backoff, Any, bool]:
    """
    Wait (as :class:`Backoff` steps) until the rate-limit budget lets ``call`` go.

    Each wait is at most :data:`~airflow_provider_aisearch.api.ratelimit.MAX_WAIT` and never ends
    after ``deadline`` (the error is raised instead). The first hold is logged at WARNING with
    what it waits for and until when; later ones (``announced``) at DEBUG.

    :return: Whether the hold has been announced.
    """
    while True:
        wait = budget.acquire()
        if wait <= 0:
            return announced
        now = time.time()
        if deadline is not None and now + wait > deadline:
            raise AISearchRateLimitError(
                f"{call.method} {call.path} was not sent: {budget.describe()}, and waiting {wait:.0f} s "
                "for the rate-limit window to reset would pass the deadline",
                method=call.method,
                path=call.path,
            )
        until = datetime.fromtimestamp(now + wait, tz=timezone.utc).strftime("%H:%M:%S UTC")
        yield Backoff(
            wait,
            f"{call.method} {call.path} held: Cloudflare rate-limit budget nearly spent ({budget.describe()}); "
            f"waiting {wait:.0f} s, until {until}, for the window to reset",
            logging.DEBUG if announced else logging.WARNING,
        )
        announced = True
