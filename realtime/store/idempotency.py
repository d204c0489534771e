"""Idempotency keys: the first answer to a sender's key, kept for a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

KEEP_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ours to use, or the earlier request's."""

    claimed: bool
    request_hash: bytes
    response: dict[str, Any] | None


async def claim_key(
    conn: asyncpg.Connection, sender_id: UUID, key: str, request_hash: bytes
) -> Claim:
    """Claim `key` inside the sending transaction; a concurrent claim waits for ours to end.

    A key older than a day is taken over as if it were new.
    """
    row = await conn.fetchrow(
        """insert into idempotency_keys (sender_id, key, request_hash)
           values ($1, $2, $3)
           on conflict (sender_id, key) do update
               set request_hash = excluded.request_hash, response = null, created_at = now()
               where idempotency_keys.created_at <= now() - $4::interval
           returning true""",
        sender_id, key, request_hash, KEEP_FOR,
    )
    if row is not None:
        return Claim(True, request_hash, None)
    earlier = await conn.fetchrow(
        "select request_hash, response from idempotency_keys where sender_id = $1 and key = $2",
        sender_id, key,
    )
    return Claim(False, bytes(earlier["request_hash"]), earlier["response"])


async def answered(conn: asyncpg.Connection, sender_id: UUID, key: str) -> bool:
    """Whether the sender's `key` holds an answer of the last day (a retry sends nothing)."""
    found: bool = await conn.fetchval(
        """select exists (select 1 from idempotency_keys
                          where sender_id = $1 and key = $2 and response is not null
                            and created_at > now() - $3::interval)""",
        sender_id, key, KEEP_FOR,
    )
    return found


async def store_response(
    conn: asyncpg.Connection, sender_id: UUID, key: str, response: dict[str, Any]
) -> None:
    await conn.execute(
        "update idempotency_keys set response = $3 where sender_id = $1 and key = $2",
        sender_id, key, response,
    )


async def purge_old_keys(conn: asyncpg.Connection) -> int:
    status = await conn.execute(
        "delete from idempotency_keys where created_at <= now() - $1::interval", KEEP_FOR
    )
    return int(status.split()[-1])
