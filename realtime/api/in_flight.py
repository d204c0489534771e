"""Each user's (and each token's) HTTP requests on this node: how many are in flight at once,
and how many a minute."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from realtime.api.buckets import Buckets
from realtime.errors import RateLimited


class InFlight:
    """The requests in flight on this node, counted by whom they speak for (a user, a token):
    one more than `limit` at once is refused with 429, so that one client cannot take every
    pooled connection and every worker from the others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[Hashable, int] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        count = self._counts.get(key, 0)
        if count >= self.limit:
            raise RateLimited(1, f"at most {self.limit} requests at once: wait for an answer")
        self._counts[key] = count + 1
        try:
            yield
        finally:
            if self._counts[key] > 1:
                self._counts[key] -= 1
            else:
                del self._counts[key]

    def count(self, key: Hashable) -> int:
        """How many requests of `key` are in flight now."""
        return self._counts.get(key, 0)


class RequestRate:
    """Each user's requests a minute on this node, a token bucket holding `per_minute`: past
    it, 429 until one is back. Cheap calls that no other budget counts (a directory search,
    a read) cannot keep the node busy for one user."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets = Buckets(per_minute, per_minute / 60)

    def take(self, key: Hashable) -> None:
        wait = self._buckets.take(key)
        if wait:
            raise RateLimited(
                math.ceil(wait), f"too many requests: at most {self.per_minute} a minute"
            )
