"""Rate limits per key (a client address, a team) with the `limits` library: moving window, in this process's
memory. Team creation, wrong join codes and uploads each keep one."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from server.errors import RateLimited


class RateLimit:
    """At most `rule` (e.g. "10/hour") hits of `action` per key; an empty rule allows everything. `per` says whose
    window it is in the refusal ("from this address", "from this team")."""

    def __init__(self, rule: str, *, action: str, per: str = "from this address") -> None:
        self.item = parse(rule) if rule.strip() else None
        self.action, self.per = action, per
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one hit for the key; 429 with Retry-After once its window is full."""
        if self.item is None or self.limiter.hit(self.item, self.action, key):
            return
        self._refuse(key)

    def check(self, key: str) -> None:
        """429 if the key's window is already full, counting nothing (for limits on failures only, or to check
        several limits before counting any)."""
        if self.item is None or self.limiter.test(self.item, self.action, key):
            return
        self._refuse(key)

    def _refuse(self, key: str) -> None:
        assert self.item is not None
        reset_at = self.limiter.get_window_stats(self.item, self.action, key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(
            f"Too many requests to {self.action} {self.per} (limit {self.item}); try again in {retry_after} s, or "
            "ask the organizer.", headers={"Retry-After": str(retry_after)},
            detail={"limit": str(self.item), "per": self.per, "retry_after": retry_after},
        )
