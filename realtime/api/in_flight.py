"""How many HTTP requests each user (and each token) has in flight on this node."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager

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
