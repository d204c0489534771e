"""Wrapped data keys, wherever they are kept: read and rewritten by key rotation."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from realtime.models import SealedKey

# The tables whose rows carry a wrapped data key (columns id, key_id, wrapped_key).
# A link's row holds the key of what its creator's list shows (its content's key is the token's).
KEYED_TABLES = (
    "messages", "files", "vault_folders", "vault_entries", "server_keys", "links",
    "system_messages",
)


async def keys_not_under(
    conn: asyncpg.Connection, table: str, key_id: str, limit: int
) -> list[tuple[UUID, SealedKey]]:
    """Lock and return up to `limit` rows of `table` whose key is not wrapped under `key_id`."""
    _check_table(table)
    rows = await conn.fetch(
        f"""select id, key_id, wrapped_key from {table} where key_id <> $1
            order by id limit $2 for update skip locked""",
        key_id, limit,
    )
    return [(row["id"], SealedKey(row["key_id"], bytes(row["wrapped_key"]))) for row in rows]


async def replace_keys(
    conn: asyncpg.Connection, table: str, rows: list[tuple[UUID, SealedKey]]
) -> None:
    _check_table(table)
    await conn.execute(
        f"""update {table} t set key_id = k.key_id, wrapped_key = k.wrapped
            from unnest($1::uuid[], $2::text[], $3::bytea[]) as k(id, key_id, wrapped)
            where t.id = k.id""",
        [row_id for row_id, _ in rows],
        [key.key_id for _, key in rows],
        [key.wrapped for _, key in rows],
    )


async def count_keys_not_under(conn: asyncpg.Connection, table: str, key_id: str) -> int:
    _check_table(table)
    return int(await conn.fetchval(
        f"select count(*) from {table} where key_id <> $1", key_id
    ))


def _check_table(table: str) -> None:
    """Table names go into the SQL text: only the known ones pass."""
    if table not in KEYED_TABLES:
        raise ValueError(f"{table} holds no wrapped keys")


async def server_key(conn: asyncpg.Connection, purpose: str) -> tuple[UUID, SealedKey] | None:
    """The row id and wrapped key of the deployment's key for `purpose`, if it has one."""
    row = await conn.fetchrow(
        "select id, key_id, wrapped_key from server_keys where purpose = $1", purpose
    )
    return None if row is None else (row["id"], SealedKey(row["key_id"], bytes(row["wrapped_key"])))


async def add_server_key(
    conn: asyncpg.Connection, row_id: UUID, purpose: str, key: SealedKey
) -> None:
    """Keep a key for `purpose` unless another node kept one first."""
    await conn.execute(
        """insert into server_keys (id, purpose, key_id, wrapped_key) values ($1, $2, $3, $4)
           on conflict (purpose) do nothing""",
        row_id, purpose, key.key_id, key.wrapped,
    )
