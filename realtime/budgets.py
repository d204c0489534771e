"""Per-user budgets that hold across nodes: token buckets refilled over a minute."""

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
        async with self._db.connection() as conn:
            wait = await budget_store.take_token(
                conn, key, capacity=per_minute, per_second=per_minute / 60, units=units
            )
        if wait > 0:
            raise refusal(wait, per_minute=per_minute, what=what)


def refusal(wait: float, *, per_minute: int, what: str) -> RateLimited:
    """The answer to a spend the budget of `what` (`per_minute`) cannot cover for `wait` s."""
    return RateLimited(math.ceil(wait), f"too many {what}: at most {per_minute} a minute")
