"""Per-client rate limits with the `limits` library (moving window, in this process's memory)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from server.errors import RateLimited


class ClientRateLimit:
    """At most `rule` (e.g. "10/hour") hits per client address; an empty rule allows everything."""

    def __init__(self, rule: str, *, action: str) -> None:
        self.item = parse(rule) if rule.strip() else None
        self.action = action
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, client: str) -> None:
        """Count one hit for the client; 429 with Retry-After once its window is full."""
        if self.item is None or self.limiter.hit(self.item, self.action, client):
            return
        self._refuse(client)

    def check(self, client: str) -> None:
        """429 if the client's window is already full, counting nothing (for limits on failures only)."""
        if self.item is None or self.limiter.test(self.item, self.action, client):
            return
        self._refuse(client)

    def _refuse(self, client: str) -> None:
        assert self.item is not None
        reset_at = self.limiter.get_window_stats(self.item, self.action, client).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(
            f"Too many requests to {self.action} from this address (limit {self.item}); try again in "
            f"{retry_after} s, or ask the organizer.", headers={"Retry-After": str(retry_after)},
            detail={"limit": str(self.item), "retry_after": retry_after},
        )
