"""The emulator's global rate limit: Cloudflare's ``limit`` requests per ``window``, then a lockout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["RateLimit"]


@dataclass
class RateLimit:
    """
    Cloudflare's global rate limit: ``limit`` requests per ``window`` seconds, then a lockout.

    Every answer carries ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``x-ratelimit-reset``
    (an RFC 1123 date). The request that exceeds the limit, and every request during the
    ``lockout`` after it, gets 429 with code 971 and ``retry-after``. The window is fixed (it
    starts at the first request and restarts when it has passed); all credentials share it.

    :param limit: Requests allowed per window.
    :param window: Window length in seconds (Cloudflare: 300).
    :param lockout: Seconds every call is refused after the limit was exceeded (Cloudflare: 300).
    """

    limit: int = 1200
    window: float = 300.0
    lockout: float = 300.0
    window_start: float | None = None
    count: int = 0
    locked_until: float = 0.0
    #: Requests refused with 429 (971) so far.
    refused: int = 0

    def admit(self, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request: whether it is served, and the headers its answer carries."""
        window_over = self.window_start is None or now >= self.window_start + self.window
        if window_over and now >= self.locked_until:
            self.window_start, self.count = now, 0
        locked = now < self.locked_until
        if not locked:
            self.count += 1
            if self.count > self.limit:
                self.locked_until = now + self.lockout
                locked = True
        assert self.window_start is not None
        reset_at = max(self.window_start + self.window, self.locked_until)
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": "0" if locked else str(max(self.limit - self.count, 0)),
            "x-ratelimit-reset": formatdate(math.ceil(reset_at), usegmt=True),  # rounded up, like retry-after
        }
        if locked:
            self.refused += 1
            headers["retry-after"] = str(max(1, int(-(-(self.locked_until - now) // 1))))
        return not locked, headers
