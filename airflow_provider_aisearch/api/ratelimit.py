"""Cloudflare's API rate limit, as the answers report it, and how pollers pace themselves.

Cloudflare allows 1200 requests per 5 minutes per user, across the dashboard, the API and every
tool, and blocks all calls for 5 minutes (HTTP 429, code 971) when the budget is exceeded. Its
answers carry ``x-ratelimit-limit``, ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (an RFC 1123
date) and, when limited, ``retry-after``.

Every answer's headers are recorded in one :class:`RateBudget` per credential (shared by all hooks
and triggers of a process that use it). Pollers ask :meth:`RateBudget.pace` for their next
interval: unchanged while the budget is healthy, stretched so the remaining requests last until
the window resets once it runs low, and held until the reset when only the reserve is left. A
429 itself is handled by the retry policy (``Retry-After`` honoured).

Every wait the headers ask for is read as seconds from the answer (``Retry-After`` and
``x-ratelimit-reset`` in seconds; an HTTP date compared with the answer's own ``Date`` header), so
a skewed local clock cannot inflate it, and capped at :data:`MAX_WAIT` (Cloudflare's 5-minute
lockout): one odd answer cannot hold a credential's requests for hours.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_WINDOW",
    "MAX_WAIT",
    "RateBudget",
    "RateLimitState",
    "budget_for",
    "http_date",
    "seconds_until",
]

#: Cloudflare's documented per-user limit and window.
DEFAULT_LIMIT = 1200
DEFAULT_WINDOW = 300.0
#: Below this share of the limit the budget counts as low and pollers stretch their intervals.
LOW_FRACTION = 0.2
#: This share of the limit is left for the dashboard and other tools: pollers wait for the reset.
RESERVE_FRACTION = 0.05
#: The longest wait any header can impose (Cloudflare's lockout is 5 minutes).
MAX_WAIT = 300.0
#: An ``x-ratelimit-reset`` number above this is an epoch time, not seconds from now.
_EPOCH_THRESHOLD = 10 * DEFAULT_WINDOW * 1000


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, case-insensitively (requests/httpx headers are; a plain dict may not be)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, val in headers.items():
            if key.lower() == lowered:
                return val
    return value


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().split(";")[0].split(",")[0])
    except ValueError:
        return None
    return number if number >= 0 else None


def http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as epoch seconds, or ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def seconds_until(value: str | None, headers: Mapping[str, str], now: float) -> float | None:
    """
    The wait a ``Retry-After`` / ``x-ratelimit-reset`` value asks for, in seconds, capped at :data:`MAX_WAIT`.

    Seconds are taken as they are. An HTTP date (whole seconds) is compared with the answer's
    ``Date`` header, so the local clock's skew does not count; without one, with ``now`` plus the
    second the date may have been rounded down by. An epoch number is compared the same way.

    :param value: The header value (``None``: not sent).
    :param headers: The answer's headers (for ``Date``).
    :param now: The local clock when the answer arrived (epoch seconds).
    :return: Seconds from ``now``, or ``None`` when ``value`` is absent or unreadable.
    """
    if not value:
        return None
    number = _number(value)
    server_now = http_date(header(headers, "date"))
    if number is not None and number <= _EPOCH_THRESHOLD:
        delay = number
    else:
        when = number if number is not None else http_date(value)
        if when is None:
            return None
        delay = when - server_now if server_now is not None else when - now + (0.0 if number is not None else 1.0)
    return min(max(delay, 0.0), MAX_WAIT)


@dataclass(frozen=True)
class RateLimitState:
    """
    The budget one answer reported.

    :param remaining: Requests left in the window.
    :param limit: Requests allowed per window (``None``: not reported).
    :param reset_at: Epoch seconds when the window resets (``None``: not reported).
    :param seen_at: Epoch seconds when the answer arrived.
    """

    remaining: int
    limit: int | None
    reset_at: float | None
    seen_at: float

    @property
    def window_end(self) -> float:
        """When the window resets: as reported, else a whole window after the answer."""
        return self.reset_at if self.reset_at is not None else self.seen_at + DEFAULT_WINDOW

    @property
    def allowed(self) -> int:
        """Requests per window: as reported, else Cloudflare's documented limit."""
        return self.limit or DEFAULT_LIMIT

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float) -> RateLimitState | None:
        """
        The state in an answer's headers, or ``None`` when it reports no ``x-ratelimit-remaining``.

        The reset is at most :data:`MAX_WAIT` after ``now``, read relative to the answer (:func:`seconds_until`).
        """
        remaining = _number(header(headers, "x-ratelimit-remaining"))
        if remaining is None:
            return None
        limit = _number(header(headers, "x-ratelimit-limit"))
        # Relative to the answer and capped (see seconds_until): never hours, whatever the clocks say.
        reset_in = seconds_until(header(headers, "x-ratelimit-reset"), headers, now)
        reset_at = None if reset_in is None else now + reset_in
        retry_after = seconds_until(header(headers, "retry-after"), headers, now)
        if retry_after is not None and remaining <= 0:
            reset_at = max(reset_at or 0.0, now + retry_after)
        return cls(int(remaining), None if limit is None else int(limit), reset_at, now)


class RateBudget:
    """
    The latest rate-limit state seen for one credential, and the poll pacing it implies.

    Thread-safe: the worker's hook threads and the triggerer's event loop may share one.

    :param clock: Time source (epoch seconds).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._state: RateLimitState | None = None
        self._next_slot = 0.0
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def state(self) -> RateLimitState | None:
        """The newest state reported, or ``None``."""
        return self._state

    def acquire(self) -> float:
        """
        Ask to send one request now: ``0`` means go (it counts as in flight until :meth:`release`),
        else the seconds to wait before asking again.

        The hard stop: requests are held back once the reported remaining budget, less the requests
        already in flight, is down to the 5 % reserve. They go again when the window resets; no
        single wait is longer than :data:`MAX_WAIT`.
        """
        with self._lock:
            state = self._state
            if state is not None:
                now = self.clock()
                reset_at = state.window_end
                if reset_at > now and state.remaining - self._in_flight <= state.allowed * RESERVE_FRACTION:
                    return min(reset_at - now, MAX_WAIT)
            self._in_flight += 1
            return 0.0

    def release(self, headers: Mapping[str, str] | None) -> None:
        """An acquired request got an answer (``headers``) or none (``None``)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
        if headers is not None:
            self.observe(headers)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Record an answer's rate-limit headers (answers without them change nothing)."""
        state = RateLimitState.from_headers(headers, self.clock())
        if state is None:
            return
        with self._lock:
            current = self._state
            # Concurrent answers arrive out of order: within one window the smaller remaining is newer.
            # (Resets are read relative to each answer, so one window's may differ by a second or two.)
            same_window = current is not None and (
                current.reset_at == state.reset_at
                or (
                    current.reset_at is not None
                    and state.reset_at is not None
                    and abs(current.reset_at - state.reset_at) <= 2.0
                )
            )
            if current is None or not same_window or state.remaining <= current.remaining:
                self._state = state

    def pace(self, interval: float) -> float:
        """
        Seconds a poller should wait before its next request, instead of ``interval``.

        * healthy budget (more than 20 % of the limit left), or a window that has already reset:
          ``interval``;
        * low: the remaining requests, less a 5 % reserve, spread evenly until the reset. Each call
          claims the next free slot, so pollers sharing the credential take turns instead of
          all spending the same remainder (no turn is claimed past the reset: a poller whose
          turn would come later waits for the reset instead);
        * only the reserve left: wait until the reset.
        """
        with self._lock:
            state = self._state
            if state is None:
                return interval
            now = self.clock()
            reset_at = min(state.window_end, now + MAX_WAIT)
            if reset_at <= now or state.remaining > state.allowed * LOW_FRACTION:
                return interval
            spendable = state.remaining - state.allowed * RESERVE_FRACTION
            if spendable < 1:
                return max(interval, reset_at - now)
            slot = max(now + interval, self._next_slot)
            if slot >= reset_at:  # the remainder is spoken for: wait for the reset, not past it
                return max(interval, reset_at - now)
            self._next_slot = slot + (reset_at - now) / spendable
            return slot - now

    def is_low(self) -> bool:
        """Whether the budget is low now (pollers are being slowed down)."""
        state = self._state
        if state is None:
            return False
        return state.window_end > self.clock() and state.remaining <= state.allowed * LOW_FRACTION

    def describe(self) -> str:
        """A short account of the state, for log lines."""
        state = self._state
        if state is None:
            return "no rate-limit headers seen"
        limit = state.limit if state.limit is not None else "?"
        return f"{state.remaining}/{limit} requests left in the rate-limit window"


_budgets: dict[str, RateBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(base_url: str, credential: str) -> RateBudget:
    """
    The process-wide budget of one credential at one API (the limit is per user).

    :param base_url: API base URL.
    :param credential: The auth secret plus email, hashed here and never stored.
    """
    key = hashlib.sha256(f"{base_url}\0{credential}".encode()).hexdigest()
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RateBudget()
        return budget
