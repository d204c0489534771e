"""Failed login attempts, counted per key in fixed windows."""

from __future__ import annotations

from datetime import timedelta

import asyncpg


async def seconds_locked(
    conn: asyncpg.Connection, keys: list[str], max_failures: list[int], window: timedelta
) -> int:
    """How many seconds remain before any of `keys` may try again (0: it may now)."""
    remaining = await conn.fetchval(
        """select coalesce(max(ceil(extract(epoch from
                      (f.window_started_at + $3::interval) - now()))), 0)::int
           from login_failures f
           join unnest($1::text[], $2::int[]) as limit_of(key, max_failures)
             on limit_of.key = f.key
           where f.failures >= limit_of.max_failures
             and f.window_started_at > now() - $3::interval""",
        keys, max_failures, window,
    )
    return max(0, int(remaining))


async def record_failure(conn: asyncpg.Connection, keys: list[str], window: timedelta) -> None:
    """Count one failure against each key, starting a new window where the old one ended."""
    await conn.execute(
        """insert into login_failures (key, failures, window_started_at)
           select key, 1, now() from unnest($1::text[]) as key
           on conflict (key) do update set
               failures = case when login_failures.window_started_at <= now() - $2::interval
                               then 1 else login_failures.failures + 1 end,
               window_started_at = case
                               when login_failures.window_started_at <= now() - $2::interval
                               then now() else login_failures.window_started_at end""",
        keys, window,
    )


async def clear_failures(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("delete from login_failures where key = $1", key)
