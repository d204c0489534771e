"""Token buckets kept in this node's memory: for what is cheap to count and need not hold
across nodes (a client's requests a minute, its prompt refusals)."""

from __future__ import annotations

import time
from collections.abc import Hashable

# Buckets remembered before the full ones are forgotten (a full bucket is the same as none).
MAX_BUCKETS = 10_000


class Buckets:
    """One bucket per key, holding `capacity` tokens and refilled at `per_second`."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self._levels: dict[Hashable, tuple[float, float]] = {}  # key: (tokens, when)

    def take(self, key: Hashable) -> float:
        """Take a token of `key`'s bucket: 0 when taken, else the seconds until one is there
        (nothing is taken then)."""
        now = time.monotonic()
        found = self._levels.get(key)
        if found is None:
            self._forget_full(now)
            level = self.capacity
        else:
            level = min(self.capacity, found[0] + (now - found[1]) * self.per_second)
        if level < 1:
            self._levels[key] = (level, now)
            return (1 - level) / self.per_second
        self._levels[key] = (level - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        if len(self._levels) < MAX_BUCKETS:
            return
        refill = self.capacity / self.per_second
        for key in [k for k, (_, when) in self._levels.items() if now - when >= refill]:
            del self._levels[key]
