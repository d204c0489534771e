"""Sessions: only the hash of each token is kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from realtime.models import User, under_organisation
from realtime.store.audit import recording
from realtime.store.budgets import taking
from realtime.store.organisation import ORGANISATION_COLUMNS, settings_from_row
from realtime.store.users import USER_COLUMNS, user_from_row

# How stale `last_seen_at` may get before a request writes it again (at most a quarter of the
# idle timeout).
TOUCH_INTERVAL = timedelta(seconds=60)


async def insert_session(
    conn: asyncpg.Connection,
    *,
    session_id: UUID,
    token_hash: bytes,
    user_id: UUID,
    password_hash: str,
    lifetime: timedelta,
) -> datetime | None:
    """Open a session if the user is still enabled with the password that was checked.

    Return when it ends at the latest, or None when the account changed in the meantime (a
    password change or disabling that committed while the password was being verified). The
    share lock makes such a change wait for this session, and then end it.
    """
    expires_at: datetime | None = await conn.fetchval(
        """insert into sessions (id, token_hash, user_id, expires_at)
           select $1, $2, id, now() + $5 from users
           where id = $3 and password_hash = $4 and not disabled
           for share
           returning expires_at""",
        session_id, token_hash, user_id, password_hash, lifetime,
    )
    return expires_at


# The live session of the token hash $1 (neither expired nor idle longer than $2), seen now:
# `last_seen_at` moves on, written at most once every $3 (or a quarter of the idle timeout,
# when that is shorter); and when it ends at the latest unless seen again.
_LIVE_SESSION = """live as (
                select s.id as session_id, s.user_id, s.last_seen_at, s.expires_at
                from sessions s
                where s.token_hash = $1 and s.expires_at > now()
                  and s.last_seen_at > now() - $2::interval),
            touched as (
                update sessions set last_seen_at = now()
                from live where sessions.id = live.session_id
                  and live.last_seen_at < now() - least($3::interval, $2::interval / 4)
                returning sessions.last_seen_at)"""
_DEADLINE = """extract(epoch from least(live.expires_at, coalesce(
                   (select last_seen_at from touched), live.last_seen_at) + $2::interval))"""


@dataclass(frozen=True)
class Spending:
    """One token to take, in the same statement, from the user's bucket `{prefix}{user id}`
    (holding `per_minute`, refilled over a minute)."""

    prefix: str
    per_minute: int


async def find_live_session(
    conn: asyncpg.Connection, token_hash: bytes, idle_timeout: timedelta,
    spending: Spending | None = None,
) -> tuple[UUID, User, float, float] | None:
    """Return the session id and enabled user (with their effective rights under the
    organisation's settings) of a session neither expired nor idle too long, when it ends at
    the latest unless seen again (seconds since the epoch), and, `spending` a token, the
    seconds to wait for it (0: taken, or none asked). Seeing the session counts as activity."""
    tables, wait = "", "0::float8"
    budget: tuple[str, float] | tuple[()] = ()
    if spending is not None:
        cte, wait = taking("($4::text || (select user_id from live)::text)", "$5::float8",
                           "($5::float8 / 60)", "1::float8")
        tables, budget = f", {cte}", (spending.prefix, float(spending.per_minute))
    row = await conn.fetchrow(
        f"""with {_LIVE_SESSION}{tables}
            select live.session_id, {USER_COLUMNS}, {ORGANISATION_COLUMNS},
                   {_DEADLINE} as deadline, {wait} as wait
            from live join users on users.id = live.user_id
                 cross join organisation_settings o
            where not users.disabled""",
        token_hash, idle_timeout, TOUCH_INTERVAL, *budget,
    )
    if row is None:
        return None
    user = under_organisation(user_from_row(row), settings_from_row(row))
    return row["session_id"], user, float(row["deadline"]), float(row["wait"])


async def session_exists(conn: asyncpg.Connection, session_id: UUID) -> bool:
    """Whether the session is still live (not ended, not expired)."""
    return bool(await conn.fetchval(
        "select true from sessions where id = $1 and expires_at > now()", session_id
    ))


async def session_deadline(
    conn: asyncpg.Connection, session_id: UUID, idle_timeout: timedelta
) -> float | None:
    """When the live session ends at the latest (seconds since the epoch): its lifetime, or its
    idle timeout after it was last seen; None when it has ended or its user is disabled."""
    value = await conn.fetchval(
        """select extract(epoch from least(s.expires_at, s.last_seen_at + $2::interval))
           from sessions s join users u on u.id = s.user_id
           where s.id = $1 and not u.disabled and s.expires_at > now()
             and s.last_seen_at > now() - $2::interval""",
        session_id, idle_timeout,
    )
    return None if value is None else float(value)


async def delete_session(conn: asyncpg.Connection, session_id: UUID) -> bool:
    return bool(await conn.fetchval(
        "delete from sessions where id = $1 returning true", session_id
    ))


async def delete_user_sessions(conn: asyncpg.Connection, user_id: UUID) -> list[UUID]:
    rows = await conn.fetch("delete from sessions where user_id = $1 returning id", user_id)
    return [row["id"] for row in rows]


_ENDED_RECORDS = recording(
    """select user_id, 'session.ended', 'session', id, null::text, 'ok',
              jsonb_build_object('reason', case when past_lifetime then 'lifetime'
                                                else 'idle' end)
       from ended where $2"""
)


async def purge_expired_sessions(
    conn: asyncpg.Connection, idle_timeout: timedelta, *, audited: bool = True
) -> int:
    """Delete the sessions past their lifetime or idle timeout, each with its audit record
    (`session.ended`, by the server, with the reason) unless `audited` is off."""
    purged: int = await conn.fetchval(
        f"""with ended as (
                delete from sessions
                where expires_at <= now() or last_seen_at <= now() - $1::interval
                returning id, user_id, expires_at <= now() as past_lifetime),
            {_ENDED_RECORDS}
            select count(*) from ended""",
        idle_timeout, audited,
    )
    return purged
