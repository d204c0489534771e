"""Token buckets kept in PostgreSQL, so that a budget holds across every node."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg

RACED = -1  # the wait of a taker that found no bucket and lost the race to create it


def taking(key: str, capacity: str, per_second: str, units: str) -> tuple[str, str]:
    """The common table expressions that take `units` tokens from the bucket `key` (SQL
    expressions, the key a text that may be null: then nothing is taken), and the expression
    of the seconds to wait (0 when taken; RACED when the bucket was new to this statement and
    another one made it first: nothing was taken, and taking again will find it): for a
    statement of its own, whose `now()` is its start. Concurrent takers queue on the row's
    lock, and each sees the level the one before left."""
    tables = f"""old as (
               select least({capacity}::float8, tokens + greatest(extract(epoch from
                          now() - updated_at)::float8, 0) * {per_second}::float8) as level
               from budget_buckets where key = {key} for update),
           spent as (
               update budget_buckets b set tokens = old.level - {units}, updated_at = now()
               from old where b.key = {key} and old.level >= {units} returning 1),
           created as (
               insert into budget_buckets (key, tokens, updated_at)
               select {key}, {capacity}::float8 - {units}, now()
               where {key} is not null and not exists (select 1 from old)
               on conflict (key) do nothing returning 1)"""
    wait = f"""case when not exists (select 1 from old) then
                        case when exists (select 1 from created) then 0::float8
                             else {RACED}::float8 end
                    when (select level from old) >= {units} then 0::float8
                    else ({units} - (select level from old)) / {per_second}::float8 end"""
    return tables, wait


async def take_token(
    conn: asyncpg.Connection, key: str, *, capacity: float, per_second: float, units: float = 1
) -> float:
    """Take `units` tokens (at most `capacity`) from the bucket `key` (full when new); return 0
    when taken, else the seconds until they are there (nothing is taken then). One statement,
    run on its own."""
    tables, wait = taking("$1::text", "$2", "$3", "$4::float8")
    while True:
        seconds: float = await conn.fetchval(
            f"with {tables} select {wait}",
            key, float(capacity), float(per_second), float(min(units, capacity)),
        )
        if seconds != RACED:  # else the bucket exists now: take from it
            return float(seconds)


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
