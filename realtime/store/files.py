"""Stored files and their sealed chunks; a file is deleted with the last thing referring to it."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from uuid import UUID

import asyncpg

from realtime.models import SealedFile, SealedKey

COPY_PIECE_BYTES = 64 * 1024
# PostgreSQL's binary COPY format: a signature, flags and extension length; then one row of
# three fields (file_id: 16 bytes, n: a 4-byte integer, data: its length, then its bytes).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_ROW = struct.Struct("!hi16siii")
_COPY_TRAILER = struct.pack("!h", -1)
_COLUMNS = "id, owner_id, key_id, wrapped_key, name, content_type, size, chunk_count, complete"
# Nothing refers to the file `f`: no vault entry, no message.
_UNREFERENCED = """not exists (select 1 from vault_entries e where e.file_id = f.id)
                   and not exists (select 1 from message_files m where m.file_id = f.id)"""


def _sealed(row: asyncpg.Record) -> SealedFile:
    return SealedFile(
        id=row["id"],
        owner_id=row["owner_id"],
        key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
        name=bytes(row["name"]),
        content_type=row["content_type"],
        size=row["size"],
        chunk_count=row["chunk_count"],
        complete=row["complete"],
    )


async def create_file(
    conn: asyncpg.Connection,
    *,
    file_id: UUID,
    owner_id: UUID,
    key: SealedKey,
    name: bytes,
    content_type: str,
) -> None:
    """Start a file: incomplete, and so invisible, until `finish_file`."""
    await conn.execute(
        """insert into files (id, owner_id, key_id, wrapped_key, name, content_type)
           values ($1, $2, $3, $4, $5, $6)""",
        file_id, owner_id, key.key_id, key.wrapped, name, content_type,
    )


async def put_chunk(conn: asyncpg.Connection, file_id: UUID, n: int, data: bytes) -> None:
    """Store one sealed chunk of a file."""
    await copy_chunk(conn, "file_chunks", "file_id", file_id, n, data)


async def copy_chunk(
    conn: asyncpg.Connection, table: str, id_column: str, row_id: UUID, n: int, data: bytes
) -> None:
    """Store one sealed chunk as the row (`id_column`, n, data) of `table` (a name of ours,
    never input). It goes through COPY in small pieces: a bytes parameter would be copied whole
    into the driver's buffers, about three times over."""

    async def rows() -> AsyncIterator[bytes]:
        yield _COPY_HEADER + _COPY_ROW.pack(3, 16, row_id.bytes, 4, n, len(data))
        with memoryview(data) as view:
            for start in range(0, len(data), COPY_PIECE_BYTES):
                yield bytes(view[start:start + COPY_PIECE_BYTES])
        yield _COPY_TRAILER

    await conn.copy_to_table(
        table, source=rows(), columns=[id_column, "n", "data"], format="binary"
    )


async def finish_file(
    conn: asyncpg.Connection, file_id: UUID, *, size: int, chunk_count: int, content_type: str
) -> None:
    await conn.execute(
        """update files set size = $2, chunk_count = $3, content_type = $4, complete = true
           where id = $1""",
        file_id, size, chunk_count, content_type,
    )


async def stored_bytes(conn: asyncpg.Connection, owner_id: UUID) -> int:
    """The bytes the user keeps: every complete file they uploaded that something still keeps,
    and the files of their shareable links."""
    total: int = await conn.fetchval(
        """select ((select coalesce(sum(size), 0) from files where owner_id = $1 and complete)
                   + (select coalesce(sum(file_bytes), 0) from links where creator_id = $1)
                  )::bigint""",
        owner_id,
    )
    return total


async def delete_file(conn: asyncpg.Connection, file_id: UUID) -> None:
    """Delete a file nothing refers to yet (an upload that failed), chunks and all."""
    await conn.execute(f"delete from files f where f.id = $1 and {_UNREFERENCED}", file_id)


async def get_file(
    conn: asyncpg.Connection, file_id: UUID, *, owner_id: UUID | None = None
) -> SealedFile | None:
    """A complete file; with `owner_id`, only if that user uploaded it."""
    row = await conn.fetchrow(
        f"""select {_COLUMNS} from files
            where id = $1 and complete and ($2::uuid is null or owner_id = $2)""",
        file_id, owner_id,
    )
    return None if row is None else _sealed(row)


async def get_files(conn: asyncpg.Connection, file_ids: Sequence[UUID]) -> dict[UUID, SealedFile]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from files where id = any($1::uuid[]) and complete", list(file_ids)
    )
    return {row["id"]: _sealed(row) for row in rows}


async def read_chunk(conn: asyncpg.Connection, file_id: UUID, n: int) -> bytes | None:
    value = await conn.fetchval(
        "select data from file_chunks where file_id = $1 and n = $2", file_id, n
    )
    return None if value is None else bytes(value)


async def release_files(conn: asyncpg.Connection, file_ids: Sequence[UUID]) -> int:
    """Delete those of the files that nothing refers to any more; return how many went."""
    if not file_ids:
        return 0
    status = await conn.execute(
        f"delete from files f where f.id = any($1::uuid[]) and f.complete and {_UNREFERENCED}",
        list(set(file_ids)),
    )
    return int(status.split()[-1])


async def purge_unattached(conn: asyncpg.Connection, older_than: timedelta, limit: int) -> int:
    """Delete up to `limit` files begun more than `older_than` ago that nothing refers to:
    uploads never attached, and uploads that never finished."""
    status = await conn.execute(
        f"""delete from files where id in (
                select f.id from files f
                where f.created_at < now() - $1::interval and {_UNREFERENCED}
                limit $2 for update skip locked)""",
        older_than, limit,
    )
    return int(status.split()[-1])
