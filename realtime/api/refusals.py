"""Refusals answered slowly to a client that keeps asking past its budgets.

A client that retries the moment it is refused, from many connections, would make the node spend
its time writing 429s while everyone else waits. Each client (a user, or an address before it
has logged in) gets a few refusals at once; past them each refusal waits before it is written,
holding nothing pooled and no place among the requests in flight, so that a retry loop goes at
the pace of the pause and not of the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from enum import Enum

from realtime.api.buckets import Buckets

# Refusals a client gets at once, and how fast they come back (per second).
PROMPT_REFUSALS = 10
PROMPT_REFILL = 1.0


class Refusal(Enum):
    """How a refusal went: written at once; after the pause; or at once, its connection to
    be closed, with too many of the client's waiting already."""

    PROMPT = "prompt"
    HELD = "held"
    OVERFLOW = "overflow"


class Refusals:
    def __init__(self, pause: float, max_waiting: int) -> None:
        """`max_waiting`: one client's refusals held at once; past them a refusal is written at
        once and its connection closed, so that a client cannot park connections either."""
        self.pause = pause
        self.max_waiting = max_waiting
        self._prompt = Buckets(PROMPT_REFUSALS, PROMPT_REFILL)
        self._waiting: dict[Hashable, int] = {}

    async def hold(self, client: Hashable) -> Refusal:
        """Wait before a refusal of `client` is written, if it has used its prompt ones: how
        the refusal went."""
        if self.pause <= 0 or not self._prompt.take(client):
            return Refusal.PROMPT
        waiting = self._waiting.get(client, 0)
        if waiting >= self.max_waiting:
            return Refusal.OVERFLOW
        self._waiting[client] = waiting + 1
        try:
            await asyncio.sleep(self.pause)
        finally:
            if self._waiting[client] > 1:
                self._waiting[client] -= 1
            else:
                del self._waiting[client]
        return Refusal.HELD
