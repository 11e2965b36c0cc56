"""What one team or one address may make the server do with uploads: rate limits, a bounded dry-run queue and the
model failure budget.

- `UploadRateLimits`: uploads per team and per client address (`server.rate_limit.RateLimit`), 429 with
  Retry-After once a window is full. Organizers uploading for a team are not limited.
- `DryRunQueue`: an uploaded model's one-batch dry run (a child process with up to ARENA_MODEL_MEMORY_BYTES) waits
  for one of `slots` places of this process, at most `per_team` of them for one team; up to `waiting` uploads wait
  (each at most `wait_s`), the rest get 429 with Retry-After at once. So 45 concurrent uploads start at most `slots`
  processes, not 45.
- The model failure budget (`check_model_failures`): a model that fails while the worker samples it gives its quota
  back (not the team's submission slot to lose), but it held a worker up to ARENA_MODEL_SAMPLING_SECONDS; a team whose
  models failed that way `budget` times in a UTC day may upload no more models that day (429 until midnight).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

from server.errors import RateLimited
from server.rate_limit import RateLimit


class UploadRateLimits:
    """One server process's upload limits: per team and per client address."""

    def __init__(self, *, team_rule: str, client_rule: str) -> None:
        self.team = RateLimit(team_rule, action="upload", per="from this team")
        self.client = RateLimit(client_rule, action="upload", per="from this address")

    def hit(self, *, team_id: int, client: str) -> None:
        """Count one upload for the team and the address; 429 (counting nothing) when either is over its limit."""
        self.client.check(client)
        self.team.check(str(team_id))
        self.client.hit(client)
        self.team.hit(str(team_id))


class DryRunQueue:
    """A bounded queue in front of model dry runs (see the module docstring)."""

    def __init__(self, *, slots: int, per_team: int, waiting: int, wait_s: float) -> None:
        self.slots, self.per_team, self.waiting, self.wait_s = slots, per_team, waiting, wait_s
        self._changed = threading.Condition()
        self._running: Counter[int] = Counter()
        self._queued: Counter[int] = Counter()
        self.most_running = 0  # the high-water mark, for tests and benchmarks

    @contextmanager
    def slot(self, team_id: int) -> Iterator[None]:
        """Hold one dry-run place for the block; 429 when the queue is full or the wait runs out."""
        with self._changed:
            if not self._free(team_id):
                self._wait(team_id)
            self._running[team_id] += 1
            self.most_running = max(self.most_running, self._running.total())
        try:
            yield
        finally:
            with self._changed:
                self._running[team_id] -= 1
                self._changed.notify_all()

    def _free(self, team_id: int) -> bool:
        return self._running.total() < self.slots and self._running[team_id] < self.per_team

    def _wait(self, team_id: int) -> None:
        if self._queued.total() >= self.waiting or self._queued[team_id] >= self.per_team:
            raise self._busy("the queue of model dry runs is full")
        self._queued[team_id] += 1
        try:
            if not self._changed.wait_for(lambda: self._free(team_id), timeout=self.wait_s):
                raise self._busy(f"no dry-run slot came free within {self.wait_s:g} s")
        finally:
            self._queued[team_id] -= 1

    def _busy(self, why: str) -> RateLimited:
        retry_after = max(1, math.ceil(self.wait_s))
        return RateLimited(
            f"The server is checking other models ({why}: at most {self.slots} at once, {self.per_team} per team). "
            f"Nothing was stored and your quota is unchanged; upload again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)}, detail={"retry_after": retry_after, "slots": self.slots,
                                                               "per_team": self.per_team},
        )


@lru_cache
def dry_run_queue(*, slots: int, per_team: int, waiting: int, wait_s: float) -> DryRunQueue:
    """The one queue of this process for these settings (every upload path shares it)."""
    return DryRunQueue(slots=slots, per_team=per_team, waiting=waiting, wait_s=wait_s)


def model_failure_error(*, used: int, budget: int, resets_at: datetime, now: datetime) -> RateLimited:
    retry_after = max(1, math.ceil((resets_at - now).total_seconds()))
    return RateLimited(
        f"{used} of your team's models failed while being sampled today (UTC), the budget is {budget}: no more model "
        f"uploads until {resets_at:%Y-%m-%d %H:%M} UTC. Check a model with `arena submission check` before uploading "
        "it; image zips are still accepted.",
        headers={"Retry-After": str(retry_after)},
        detail={"model_failures": {"used": used, "limit": budget, "resets_at": resets_at.isoformat()}},
    )
