"""Per-user budgets that hold across nodes: token buckets refilled over a minute."""

from __future__ import annotations

import math

from realtime.db import Database
from realtime.errors import RateLimited
from realtime.store import budgets as budget_store


class Budgets:
    """Spend one unit of a named budget, or be refused with the time until one is there."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def spend(self, key: str, *, per_minute: int, what: str) -> None:
        """Take one unit from the bucket `key` (holding `per_minute`, refilled at that rate a
        minute); RateLimited naming `what` when it is empty."""
        async with self._db.connection() as conn:
            wait = await budget_store.take_token(
                conn, key, capacity=per_minute, per_second=per_minute / 60
            )
        if wait > 0:
            raise RateLimited(
                math.ceil(wait), f"too many {what}: at most {per_minute} a minute"
            )
