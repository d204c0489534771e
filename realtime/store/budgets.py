"""Token buckets kept in PostgreSQL, so that a budget holds across every node."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg


async def take_token(
    conn: asyncpg.Connection, key: str, *, capacity: float, per_second: float, units: float = 1
) -> float:
    """Take `units` tokens (at most `capacity`) from the bucket `key` (full when new); return 0
    when taken, else the seconds until they are there (nothing is taken then).

    One statement: concurrent takers queue on the row's lock, and each sees the level the one
    before left. The statement runs on its own, so `now()` is its own start."""
    wait: float = await conn.fetchval(
        """with old as (
               select least($2::float8, tokens + greatest(extract(epoch from
                          now() - updated_at)::float8, 0) * $3::float8) as level
               from budget_buckets where key = $1 for update),
           spent as (
               update budget_buckets b set tokens = old.level - $4, updated_at = now()
               from old where b.key = $1 and old.level >= $4 returning 1),
           created as (
               insert into budget_buckets (key, tokens, updated_at)
               select $1, $2::float8 - $4, now() where not exists (select 1 from old)
               on conflict (key) do nothing returning 1)
           select case when not exists (select 1 from old) then 0::float8
                       when (select level from old) >= $4 then 0::float8
                       else ($4 - (select level from old)) / $3::float8 end""",
        key, float(capacity), float(per_second), float(min(units, capacity)),
    )
    return float(wait)


async def purge_full_buckets(conn: asyncpg.Connection, refill: timedelta) -> int:
    """Forget buckets untouched for longer than `refill` (they are full again: same as none)."""
    status = await conn.execute(
        "delete from budget_buckets where updated_at < now() - $1::interval", refill
    )
    return int(status.split()[-1])


async def lock_owner(conn: asyncpg.Connection, scope: str, owner_id: UUID) -> None:
    """Hold the lock of `scope` for this user until the transaction ends: a check of one of
    their budgets and the write it allows then run alone, on every node."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended($1 || ':' || $2::uuid::text, 0))",
        scope, owner_id,
    )
