"""Login attempts, counted per key (a username, a client address) in fixed windows."""

from __future__ import annotations

from datetime import timedelta

import asyncpg


async def count_attempt(
    conn: asyncpg.Connection, keys: list[str], max_attempts: list[int], window: timedelta
) -> int:
    """Count one attempt against each key before its password is checked.

    Counting first makes simultaneous guesses queue on the row: each sees its own count. Return
    the seconds to wait when any key has gone over its limit, else 0. A window that has ended
    starts again from this attempt.
    """
    remaining = await conn.fetchval(
        """with counted as (
               insert into login_failures as f (key, failures, window_started_at)
               select key, 1, now() from unnest($1::text[]) as key
               on conflict (key) do update set
                   failures = case when f.window_started_at <= now() - $3::interval
                                   then 1 else f.failures + 1 end,
                   window_started_at = case when f.window_started_at <= now() - $3::interval
                                            then now() else f.window_started_at end
               returning f.key, f.failures, f.window_started_at)
           select coalesce(max(ceil(extract(epoch from
                      c.window_started_at + $3::interval - now()))), 0)::int
           from counted c
           join unnest($1::text[], $2::int[]) as limit_of(key, max_attempts)
             on limit_of.key = c.key
           where c.failures > limit_of.max_attempts""",
        keys, max_attempts, window,
    )
    return max(0, int(remaining))


async def forgive(conn: asyncpg.Connection, *, cleared: str, refunded: str) -> None:
    """After a successful login: forget the `cleared` key, take one attempt off `refunded`."""
    await conn.execute("delete from login_failures where key = $1", cleared)
    await conn.execute(
        "update login_failures set failures = greatest(failures - 1, 0) where key = $1", refunded
    )


async def purge_ended_windows(conn: asyncpg.Connection, window: timedelta) -> int:
    status = await conn.execute(
        "delete from login_failures where window_started_at <= now() - $1::interval", window
    )
    return int(status.split()[-1])
