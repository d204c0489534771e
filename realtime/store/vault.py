"""Each user's vault: folders and entries, their names and fields sealed. Every call takes the
owner, so that one user's ids never reach another's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from realtime.errors import NotFound
from realtime.models import EntryKind, SealedEntry, SealedFolder, SealedKey

_FOLDER_COLUMNS = "id, owner_id, parent_id, key_id, wrapped_key, name"
_ENTRY_COLUMNS = """id, owner_id, folder_id, kind, key_id, wrapped_key, fields, file_id,
                    created_at, updated_at"""
# The folder $1 of the owner $2 and every folder under it.
_SUBTREE = """with recursive subtree as (
                  select id from vault_folders where id = $1 and owner_id = $2
                  union all
                  select f.id from vault_folders f join subtree s on f.parent_id = s.id)"""


@dataclass(frozen=True)
class TreeSize:
    """A folder's subtree measured without reading it: folders, entries, levels (the folder
    itself is 1; counted up to the cap given), and the bytes of its sealed names and fields."""

    folders: int
    entries: int
    depth: int
    sealed_bytes: int


def _folder(row: asyncpg.Record) -> SealedFolder:
    return SealedFolder(
        id=row["id"],
        owner_id=row["owner_id"],
        parent_id=row["parent_id"],
        key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
        name=bytes(row["name"]),
    )


def _entry(row: asyncpg.Record) -> SealedEntry:
    return SealedEntry(
        id=row["id"],
        owner_id=row["owner_id"],
        folder_id=row["folder_id"],
        kind=EntryKind(row["kind"]),
        key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
        fields=bytes(row["fields"]),
        file_id=row["file_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_folder(conn: asyncpg.Connection, folder: SealedFolder) -> None:
    await conn.execute(
        """insert into vault_folders (id, owner_id, parent_id, key_id, wrapped_key, name)
           values ($1, $2, $3, $4, $5, $6)""",
        folder.id, folder.owner_id, folder.parent_id, folder.key.key_id, folder.key.wrapped,
        folder.name,
    )


async def get_folder(
    conn: asyncpg.Connection, folder_id: UUID, owner_id: UUID
) -> SealedFolder | None:
    row = await conn.fetchrow(
        f"select {_FOLDER_COLUMNS} from vault_folders where id = $1 and owner_id = $2",
        folder_id, owner_id,
    )
    return None if row is None else _folder(row)


async def list_folders(conn: asyncpg.Connection, owner_id: UUID) -> list[SealedFolder]:
    rows = await conn.fetch(
        f"select {_FOLDER_COLUMNS} from vault_folders where owner_id = $1 order by created_at, id",
        owner_id,
    )
    return [_folder(row) for row in rows]


async def folder_tree(
    conn: asyncpg.Connection, folder_id: UUID, owner_id: UUID
) -> tuple[list[SealedFolder], list[SealedEntry]]:
    """The folder and every folder under it (parents before children), and their entries."""
    folders = await conn.fetch(
        f"""{_SUBTREE} select {_FOLDER_COLUMNS} from vault_folders
            where id in (select id from subtree) order by created_at, id""",
        folder_id, owner_id,
    )
    entries = await conn.fetch(
        f"""{_SUBTREE} select {_ENTRY_COLUMNS} from vault_entries
            where folder_id in (select id from subtree) order by created_at, id""",
        folder_id, owner_id,
    )
    return [_folder(row) for row in folders], [_entry(row) for row in entries]


async def delete_folder(
    conn: asyncpg.Connection, folder_id: UUID, owner_id: UUID
) -> list[UUID] | None:
    """Delete the folder with everything inside it; return the files its entries referred to,
    or None when the owner has no such folder."""
    files = await conn.fetch(
        f"""{_SUBTREE} select file_id from vault_entries
            where folder_id in (select id from subtree) and file_id is not null""",
        folder_id, owner_id,
    )
    deleted = await conn.fetchval(
        "delete from vault_folders where id = $1 and owner_id = $2 returning true",
        folder_id, owner_id,
    )
    return [row["file_id"] for row in files] if deleted else None


async def insert_entries(conn: asyncpg.Connection, entries: Sequence[SealedEntry]) -> None:
    """Insert entries; one whose file is gone meanwhile (its message deleted) is NotFound."""
    try:
        await _insert_entries(conn, entries)
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("a file of these entries is gone") from None


async def _insert_entries(conn: asyncpg.Connection, entries: Sequence[SealedEntry]) -> None:
    await conn.executemany(
        """insert into vault_entries (id, owner_id, folder_id, kind, key_id, wrapped_key, fields,
                                      file_id, created_at, updated_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)""",
        [
            (e.id, e.owner_id, e.folder_id, e.kind.value, e.key.key_id, e.key.wrapped, e.fields,
             e.file_id, e.created_at)
            for e in entries
        ],
    )


async def get_entry(
    conn: asyncpg.Connection, entry_id: UUID, owner_id: UUID
) -> SealedEntry | None:
    row = await conn.fetchrow(
        f"select {_ENTRY_COLUMNS} from vault_entries where id = $1 and owner_id = $2",
        entry_id, owner_id,
    )
    return None if row is None else _entry(row)


async def list_entries(conn: asyncpg.Connection, owner_id: UUID) -> list[SealedEntry]:
    rows = await conn.fetch(
        f"select {_ENTRY_COLUMNS} from vault_entries where owner_id = $1 order by created_at, id",
        owner_id,
    )
    return [_entry(row) for row in rows]


async def update_entry(conn: asyncpg.Connection, entry: SealedEntry) -> SealedEntry | None:
    """Write an entry's folder, fields sealed under a new data key, and file; None when the
    owner has no such entry."""
    row = await conn.fetchrow(
        f"""update vault_entries set folder_id = $3, fields = $4, file_id = $5, key_id = $6,
                                     wrapped_key = $7, updated_at = now()
            where id = $1 and owner_id = $2 returning {_ENTRY_COLUMNS}""",
        entry.id, entry.owner_id, entry.folder_id, entry.fields, entry.file_id,
        entry.key.key_id, entry.key.wrapped,
    )
    return None if row is None else _entry(row)


async def delete_entry(
    conn: asyncpg.Connection, entry_id: UUID, owner_id: UUID
) -> tuple[bool, UUID | None]:
    """Delete an entry; return whether it was there, and the file it referred to."""
    row = await conn.fetchrow(
        "delete from vault_entries where id = $1 and owner_id = $2 returning file_id",
        entry_id, owner_id,
    )
    return (False, None) if row is None else (True, row["file_id"])


async def count_owned(conn: asyncpg.Connection, owner_id: UUID) -> tuple[int, int]:
    """How many folders and entries the user's vault holds."""
    row = await conn.fetchrow(
        """select (select count(*) from vault_folders where owner_id = $1) as folders,
                  (select count(*) from vault_entries where owner_id = $1) as entries""",
        owner_id,
    )
    return int(row["folders"]), int(row["entries"])


async def folder_depth(
    conn: asyncpg.Connection, folder_id: UUID, owner_id: UUID, cap: int
) -> int:
    """The folder's level in the vault (1 at the root), walking up at most `cap` levels."""
    depth: int = await conn.fetchval(
        """with recursive up as (
               select parent_id, 1 as depth from vault_folders where id = $1 and owner_id = $2
               union all
               select f.parent_id, u.depth + 1 from vault_folders f join up u on f.id = u.parent_id
               where u.depth < $3)
           select coalesce(max(depth), 0) from up""",
        folder_id, owner_id, cap,
    )
    return depth


async def measure_tree(
    conn: asyncpg.Connection, folder_id: UUID, owner_id: UUID, depth_cap: int
) -> TreeSize:
    """Measure the folder's subtree down to `depth_cap` levels, in one statement."""
    row = await conn.fetchrow(
        """with recursive subtree as (
               select id, 1 as depth from vault_folders where id = $1 and owner_id = $2
               union all
               select f.id, s.depth + 1 from vault_folders f join subtree s on f.parent_id = s.id
               where s.depth < $3)
           select (select count(*) from subtree) as folders,
                  (select coalesce(max(depth), 0) from subtree) as depth,
                  (select count(*) from vault_entries
                   where folder_id in (select id from subtree)) as entries,
                  (select coalesce(sum(octet_length(fields)), 0) from vault_entries
                   where folder_id in (select id from subtree))
                  + (select coalesce(sum(octet_length(name)), 0) from vault_folders
                     where id in (select id from subtree)) as sealed_bytes""",
        folder_id, owner_id, depth_cap,
    )
    return TreeSize(int(row["folders"]), int(row["entries"]), int(row["depth"]),
                    int(row["sealed_bytes"]))
