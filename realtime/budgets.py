"""Per-user budgets that hold across nodes: token buckets refilled over a minute or an hour."""

from __future__ import annotations

import math

from realtime.db import Database
from realtime.errors import RateLimited
from realtime.store import budgets as budget_store


class Budgets:
    """Spend units of a named budget, or be refused with the time until they are there."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def spend(self, key: str, *, per_minute: int, what: str, units: int = 1) -> None:
        """Take `units` (one, or at most all) from the bucket `key` (holding `per_minute`,
        refilled at that rate a minute); RateLimited naming `what` when it holds fewer."""
        await self._take(key, per_minute, 60, units, what, "a minute")

    async def spend_hourly(self, key: str, *, per_hour: int, what: str, units: int = 1) -> None:
        """As `spend`, for a bucket holding `per_hour`, refilled at that rate an hour."""
        await self._take(key, per_hour, 3600, units, what, "an hour")

    async def _take(
        self, key: str, capacity: int, seconds: int, units: int, what: str, period: str
    ) -> None:
        async with self._db.connection() as conn:
            wait = await budget_store.take_token(
                conn, key, capacity=capacity, per_second=capacity / seconds, units=units
            )
        if wait > 0:
            raise refusal(wait, limit=capacity, what=what, period=period)


def refusal(wait: float, *, limit: int, what: str, period: str = "a minute") -> RateLimited:
    """The answer to a spend the budget of `what` (`limit` a `period`) cannot cover for
    `wait` s."""
    return RateLimited(math.ceil(wait), f"too many {what}: at most {limit} {period}")
