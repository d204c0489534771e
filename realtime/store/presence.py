"""Presence: which node holds an open socket of which user, and when each node last said so."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from uuid import UUID

import asyncpg


async def replace(
    conn: asyncpg.Connection, node_id: UUID, online: Collection[UUID], lifetime: timedelta
) -> None:
    """Write the node's whole set of users afresh, valid for `lifetime`."""
    async with conn.transaction():
        await conn.execute(
            """insert into presence_nodes (node_id, refreshed_at, expires_at)
               values ($1, now(), now() + $2::interval)
               on conflict (node_id) do update
               set refreshed_at = excluded.refreshed_at, expires_at = excluded.expires_at""",
            node_id, lifetime,
        )
        await conn.execute("delete from presence where node_id = $1", node_id)
        await conn.execute(
            "insert into presence (node_id, user_id) select $1, unnest($2::uuid[])",
            node_id, list(online),
        )


async def refresh(
    conn: asyncpg.Connection,
    node_id: UUID,
    arrived: Collection[UUID],
    departed: Collection[UUID],
    lifetime: timedelta,
) -> bool:
    """Extend the node's row and apply what changed since the last write; the departed were
    last seen now. False, with nothing written, when the node's row is gone (swept while the
    node was silent, or lost in a crash): the caller writes the whole set instead."""
    async with conn.transaction():
        kept = await conn.fetchval(
            """update presence_nodes set refreshed_at = now(), expires_at = now() + $2::interval
               where node_id = $1 returning true""",
            node_id, lifetime,
        )
        if not kept:
            return False
        if departed:
            await conn.execute(
                """with gone as (
                       delete from presence where node_id = $1 and user_id = any($2::uuid[])
                       returning user_id)
                   update users set last_seen_at = now() where id in (select user_id from gone)""",
                node_id, list(departed),
            )
        if arrived:
            await conn.execute(
                """insert into presence (node_id, user_id) select $1, unnest($2::uuid[])
                   on conflict do nothing""",
                node_id, list(arrived),
            )
    return True


async def leave(conn: asyncpg.Connection, node_id: UUID) -> None:
    """Remove the node: its users were last seen now."""
    async with conn.transaction():
        await conn.execute(
            """with gone as (delete from presence where node_id = $1 returning user_id)
               update users set last_seen_at = now() where id in (select user_id from gone)""",
            node_id,
        )
        await conn.execute("delete from presence_nodes where node_id = $1", node_id)


async def sweep_expired(conn: asyncpg.Connection) -> int:
    """Remove the nodes that stopped refreshing; their users were last seen at the nodes' last
    refresh. Returns how many nodes were removed."""
    async with conn.transaction():
        ended = await conn.fetch(
            """delete from presence_nodes where expires_at <= now()
               returning node_id, refreshed_at"""
        )
        if not ended:
            return 0
        await conn.execute(
            """with ended as (
                   select * from unnest($1::uuid[], $2::timestamptz[]) as e(node_id, refreshed_at)),
               gone as (
                   delete from presence p using ended e where p.node_id = e.node_id
                   returning p.user_id, e.refreshed_at),
               latest as (select user_id, max(refreshed_at) as at from gone group by user_id)
               update users u set last_seen_at = greatest(u.last_seen_at, latest.at)
               from latest where u.id = latest.user_id""",
            [row["node_id"] for row in ended], [row["refreshed_at"] for row in ended],
        )
    return len(ended)
