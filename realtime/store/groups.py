"""Groups and their members."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from realtime.errors import Conflict
from realtime.models import Group, GroupMember
from realtime.store.users import like_prefix

_SELECT = """select g.id, g.name,
                    coalesce(array_agg(u.id order by u.id)
                             filter (where u.id is not null), '{}') as member_ids,
                    coalesce(array_agg(u.username order by u.id)
                             filter (where u.id is not null), '{}') as member_usernames,
                    coalesce(array_agg(u.display_name order by u.id)
                             filter (where u.id is not null), '{}') as member_names
             from groups g left join group_members m on m.group_id = g.id
                  left join users u on u.id = m.user_id"""


def _group(row: asyncpg.Record) -> Group:
    return Group(id=row["id"], name=row["name"], members=tuple(
        GroupMember(*member) for member in
        zip(row["member_ids"], row["member_usernames"], row["member_names"], strict=True)
    ))


async def insert_group(conn: asyncpg.Connection, group_id: UUID, name: str) -> None:
    try:
        async with conn.transaction():
            await conn.execute("insert into groups (id, name) values ($1, $2)", group_id, name)
    except asyncpg.UniqueViolationError:
        raise Conflict("a group of this name exists") from None


async def set_members(conn: asyncpg.Connection, group_id: UUID, user_ids: Sequence[UUID]) -> None:
    await conn.execute("delete from group_members where group_id = $1", group_id)
    await conn.execute(
        """insert into group_members (group_id, user_id)
           select $1, user_id from unnest($2::uuid[]) as user_id on conflict do nothing""",
        group_id, list(user_ids),
    )


async def get_group(conn: asyncpg.Connection, group_id: UUID) -> Group | None:
    row = await conn.fetchrow(f"{_SELECT} where g.id = $1 group by g.id", group_id)
    return None if row is None else _group(row)


async def lock_group(conn: asyncpg.Connection, group_id: UUID) -> bool:
    return bool(await conn.fetchval(
        "select true from groups where id = $1 for update", group_id
    ))


async def list_groups(conn: asyncpg.Connection) -> list[Group]:
    rows = await conn.fetch(f"{_SELECT} group by g.id order by lower(g.name)")
    return [_group(row) for row in rows]


async def delete_group(conn: asyncpg.Connection, group_id: UUID) -> bool:
    return bool(await conn.fetchval("delete from groups where id = $1 returning true", group_id))


async def group_names(conn: asyncpg.Connection, group_ids: Sequence[UUID]) -> dict[UUID, str]:
    rows = await conn.fetch(
        "select id, name from groups where id = any($1::uuid[])", list(group_ids)
    )
    return {row["id"]: row["name"] for row in rows}


async def enabled_members(conn: asyncpg.Connection, group_ids: Sequence[UUID]) -> set[UUID]:
    """The enabled users in any of the groups."""
    rows = await conn.fetch(
        """select distinct m.user_id from group_members m join users u on u.id = m.user_id
           where m.group_id = any($1::uuid[]) and not u.disabled""",
        list(group_ids),
    )
    return {row["user_id"] for row in rows}


async def search_groups(
    conn: asyncpg.Connection, prefix: str, limit: int
) -> list[tuple[UUID, str, int]]:
    """Groups whose name starts with `prefix`, any case, with their count of enabled members."""
    rows = await conn.fetch(
        """select g.id, g.name, count(u.id) as members
           from groups g
           left join group_members m on m.group_id = g.id
           left join users u on u.id = m.user_id and not u.disabled
           where lower(g.name) like $1
           group by g.id order by lower(g.name) limit $2""",
        like_prefix(prefix), limit,
    )
    return [(row["id"], row["name"], int(row["members"])) for row in rows]
