"""Users: accounts, their rights, and the directory of names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from realtime.errors import Conflict
from realtime.models import Credentials, ListedUser, User, UserSearch

USER_COLUMNS = (
    "id, username, display_name, is_admin, can_send, can_attach, can_share_links, disabled,"
    " created_at"
)


def user_from_row(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        is_admin=row["is_admin"],
        can_send=row["can_send"],
        can_attach=row["can_attach"],
        can_share_links=row["can_share_links"],
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


async def insert_user(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    username: str,
    display_name: str,
    password_hash: str,
    is_admin: bool,
    can_send: bool,
    can_attach: bool,
    can_share_links: bool = True,
) -> User:
    """Insert a user and its event counter; a taken username (any case) is a Conflict."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""insert into users (id, username, display_name, password_hash,
                                      is_admin, can_send, can_attach, can_share_links)
                    values ($1, $2, $3, $4, $5, $6, $7, $8) returning {USER_COLUMNS}""",
                user_id, username, display_name, password_hash, is_admin, can_send, can_attach,
                can_share_links,
            )
            await conn.execute("insert into event_counters (user_id) values ($1)", user_id)
    except asyncpg.UniqueViolationError:
        raise Conflict("this username is taken") from None
    return user_from_row(row)


async def get_user(conn: asyncpg.Connection, user_id: UUID) -> User | None:
    row = await conn.fetchrow(f"select {USER_COLUMNS} from users where id = $1", user_id)
    return None if row is None else user_from_row(row)


async def get_credentials(conn: asyncpg.Connection, login_name: str) -> Credentials | None:
    """The account whose username, in lower case, is `login_name` (already in that form)."""
    row = await conn.fetchrow(
        f"select {USER_COLUMNS}, password_hash from users where lower(username) = $1",
        login_name,
    )
    return None if row is None else Credentials(user_from_row(row), row["password_hash"])


async def ids_by_username(conn: asyncpg.Connection, usernames: Sequence[str]) -> dict[str, UUID]:
    """The id of each of these usernames that exists (matched in any case)."""
    rows = await conn.fetch(
        "select username, id from users where lower(username) = any($1::text[])",
        [name.lower() for name in usernames],
    )
    return {row["username"]: row["id"] for row in rows}


# When a user was last seen on a node whose entry still counts; null when on none.
_ONLINE_AT = """(select max(n.refreshed_at) from presence p
                 join presence_nodes n on n.node_id = p.node_id
                 where p.user_id = u.id and n.expires_at > now())"""


async def page_users(
    conn: asyncpg.Connection, search: UserSearch, limit: int
) -> list[ListedUser]:
    """One page of accounts in username order, with who is online and when each was last seen
    (on a socket, or using a session). Only the conditions asked for are in the statement."""
    conditions: list[str] = []
    values: list[Any] = []

    def value(given: Any) -> str:
        values.append(given)
        return f"${len(values)}"

    if search.prefix:
        pattern = value(like_prefix(search.prefix))
        conditions.append(
            f"(lower(u.username) like {pattern} or lower(u.display_name) like {pattern})"
        )
    for column in ("is_admin", "disabled", "can_send"):
        wanted = getattr(search, column)
        if wanted is not None:
            conditions.append(f"u.{column} = {value(wanted)}")
    if search.online is not None:
        conditions.append(f"({_ONLINE_AT} is not null) = {value(search.online)}")
    if search.after is not None:
        conditions.append(f"lower(u.username) > {value(search.after)}")
    where = f"where {' and '.join(conditions)}" if conditions else ""
    statement = f"""
        select {USER_COLUMNS}, online_at,
               greatest(online_at, u.last_seen_at,
                        (select max(s.last_seen_at) from sessions s where s.user_id = u.id))
                   as seen_at
        from (select u.*, {_ONLINE_AT} as online_at from users u {where}
              order by lower(u.username) limit {value(limit)}) u
        order by lower(u.username)"""
    async with conn.transaction():
        # Planned for the prefix given: a plan made for any prefix cannot use the prefix
        # indexes, and reads the whole table each time.
        await conn.execute("set local plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(statement, *values)
    return [
        ListedUser(user_from_row(row), row["online_at"] is not None, row["seen_at"])
        for row in rows
    ]


# Held while the first account is made, so that two nodes starting at once make only one.
_FIRST_ACCOUNT_LOCK = 0x61646D696E


async def count_users_exclusively(conn: asyncpg.Connection) -> int:
    """Count the users under a transaction lock that other first-start checks wait for."""
    await conn.execute("select pg_advisory_xact_lock($1)", _FIRST_ACCOUNT_LOCK)
    return int(await conn.fetchval("select count(*) from users"))


async def update_user(
    conn: asyncpg.Connection, user_id: UUID, changes: dict[str, Any]
) -> User | None:
    """Set the given columns (names from a fixed list, never from input) and return the user."""
    allowed = {
        "display_name", "password_hash", "is_admin", "can_send", "can_attach", "can_share_links",
        "disabled",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not columns of users: {sorted(unknown)}")
    if not changes:
        return await get_user(conn, user_id)
    names = list(changes)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"update users set {assignments} where id = $1 returning {USER_COLUMNS}",
        user_id,
        *(changes[name] for name in names),
    )
    return None if row is None else user_from_row(row)


async def lock_admins(conn: asyncpg.Connection) -> list[UUID]:
    """Lock and return the enabled admins, so that the last one cannot be removed by a race.

    FOR NO KEY UPDATE leaves the key-share locks of foreign-key checks (a send, a login) free.
    """
    rows = await conn.fetch(
        "select id from users where is_admin and not disabled order by id for no key update"
    )
    return [row["id"] for row in rows]


async def existing_user_ids(conn: asyncpg.Connection, user_ids: Sequence[UUID]) -> set[UUID]:
    rows = await conn.fetch("select id from users where id = any($1::uuid[])", list(user_ids))
    return {row["id"] for row in rows}


async def names_and_states(
    conn: asyncpg.Connection, user_ids: Sequence[UUID]
) -> dict[UUID, tuple[str, bool]]:
    """The display name of each existing user, and whether the account is enabled."""
    rows = await conn.fetch(
        "select id, display_name, not disabled as enabled from users where id = any($1::uuid[])",
        list(user_ids),
    )
    return {row["id"]: (row["display_name"], row["enabled"]) for row in rows}


def like_prefix(text: str) -> str:
    """A LIKE pattern matching what starts with `text`, its wildcards escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def search_users(conn: asyncpg.Connection, prefix: str, limit: int) -> list[User]:
    """Enabled users whose username or display name starts with `prefix`, any case."""
    rows = await conn.fetch(
        f"""select {USER_COLUMNS} from users
            where not disabled
              and (lower(username) like $1 or lower(display_name) like $1)
            order by lower(display_name), lower(username) limit $2""",
        like_prefix(prefix),
        limit,
    )
    return [user_from_row(row) for row in rows]
