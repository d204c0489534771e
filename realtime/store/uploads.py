"""Uploads in progress: the bytes each one holds of its user's budget, across every node."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg


async def reserved_bytes(conn: asyncpg.Connection, user_id: UUID) -> int:
    """The bytes the user's live uploads hold; those of a node that died are forgotten."""
    await conn.execute(
        "delete from upload_reservations where user_id = $1 and expires_at < now()", user_id
    )
    held: int = await conn.fetchval(
        "select coalesce(sum(bytes), 0) from upload_reservations where user_id = $1", user_id
    )
    return held


async def reserve(
    conn: asyncpg.Connection, reservation_id: UUID, user_id: UUID, size: int, lease: timedelta
) -> None:
    await conn.execute(
        """insert into upload_reservations (id, user_id, bytes, expires_at)
           values ($1, $2, $3, now() + $4::interval)""",
        reservation_id, user_id, size, lease,
    )


async def extend(conn: asyncpg.Connection, reservation_id: UUID, lease: timedelta) -> None:
    await conn.execute(
        "update upload_reservations set expires_at = now() + $2::interval where id = $1",
        reservation_id, lease,
    )


async def release(conn: asyncpg.Connection, reservation_id: UUID) -> None:
    await conn.execute("delete from upload_reservations where id = $1", reservation_id)


async def purge_lapsed(conn: asyncpg.Connection) -> int:
    """Forget the uploads in flight of nodes that died: their lease ran out."""
    status = await conn.execute("delete from upload_reservations where expires_at < now()")
    return int(status.split()[-1])
