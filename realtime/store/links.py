"""Shareable links: their rows, the views they give (one statement each, so that no more are
given than a link allows, whatever number of nodes asks), their wrong passphrases, their end,
their attachments and file chunks, and their deletion when due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from realtime.models import (
    AttachmentKind,
    DueLink,
    LinkEnd,
    ListedLink,
    SealedKey,
    SealedLink,
    SealedLinkAttachment,
    TakenView,
)
from realtime.store.files import copy_chunk

WRONG_PASSPHRASES_ALLOWED = 5  # the fifth wrong passphrase ends the link

# A link that may still be opened: not ended, not expired, a view left.
_OPENABLE = """ended_at is null and expires_at > statement_timestamp() and views < max_views"""
# A link whose files may be downloaded: viewed within the window ($2), not expired, and not
# ended but by its last view.
_DOWNLOADABLE = """(ended_at is null or end_reason = 'used')
                   and expires_at > statement_timestamp()
                   and last_viewed_at > statement_timestamp() - $2::interval"""
_LINK_COLUMNS = "id, creator_id, expires_at, max_views, views, has_passphrase, subject, body"


async def insert_link(
    conn: asyncpg.Connection, *, link_id: UUID, creator_id: UUID, token_hash: bytes,
    expires_at: datetime, max_views: int, has_passphrase: bool, key: SealedKey,
    listed_subject: bytes, subject: bytes, body: bytes, file_bytes: int = 0,
    emailed_to: bytes | None = None,
) -> datetime:
    """Store a new link, due for deletion at its expiry; return when it was created."""
    created_at: datetime = await conn.fetchval(
        """insert into links (id, creator_id, token_hash, expires_at, due_at, max_views,
                              has_passphrase, key_id, wrapped_key, listed_subject, subject, body,
                              file_bytes, emailed_to)
           values ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           returning created_at""",
        link_id, creator_id, token_hash, expires_at, max_views, has_passphrase,
        key.key_id, key.wrapped, listed_subject, subject, body, file_bytes, emailed_to,
    )
    return created_at


async def insert_attachments(
    conn: asyncpg.Connection, link_id: UUID, attachments: Sequence[SealedLinkAttachment]
) -> None:
    """Store a new link's attachments, in order (a file's chunks go by `put_chunk`)."""
    await conn.executemany(
        """insert into link_attachments (id, link_id, position, kind, name, content, size,
                                         content_type, chunk_count, file_key)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [
            (a.id, link_id, position, a.kind.value, a.name, a.content, a.size, a.content_type,
             a.chunk_count, a.file_key)
            for position, a in enumerate(attachments)
        ],
    )


async def put_chunk(conn: asyncpg.Connection, attachment_id: UUID, n: int, data: bytes) -> None:
    """Store one sealed chunk of a link's file."""
    await copy_chunk(conn, "link_chunks", "attachment_id", attachment_id, n, data)


async def read_chunk(conn: asyncpg.Connection, attachment_id: UUID, n: int) -> bytes | None:
    value = await conn.fetchval(
        "select data from link_chunks where attachment_id = $1 and n = $2", attachment_id, n
    )
    return None if value is None else bytes(value)


async def get_attachments(
    conn: asyncpg.Connection, link_id: UUID, attachment_id: UUID | None = None
) -> list[SealedLinkAttachment]:
    """A link's attachments in order, or just the one named (none when it is not the link's)."""
    rows = await conn.fetch(
        """select id, kind, name, content, size, content_type, chunk_count, file_key
           from link_attachments
           where link_id = $1 and ($2::uuid is null or id = $2)
           order by position""",
        link_id, attachment_id,
    )
    return [
        SealedLinkAttachment(
            id=row["id"], kind=AttachmentKind(row["kind"]), name=bytes(row["name"]),
            content=None if row["content"] is None else bytes(row["content"]),
            size=row["size"], content_type=row["content_type"],
            chunk_count=row["chunk_count"],
            file_key=None if row["file_key"] is None else bytes(row["file_key"]),
        )
        for row in rows
    ]


async def find_openable(conn: asyncpg.Connection, token_hash: bytes) -> SealedLink | None:
    """The link of a token's hash, if it may still be opened."""
    row = await conn.fetchrow(
        f"select {_LINK_COLUMNS} from links where token_hash = $1 and {_OPENABLE}", token_hash
    )
    return None if row is None else _sealed_link(row)


async def find_downloadable(
    conn: asyncpg.Connection, token_hash: bytes, window: timedelta
) -> SealedLink | None:
    """The link of a token's hash, if it was viewed within `window` and has not ended since
    but by that view."""
    row = await conn.fetchrow(
        f"select {_LINK_COLUMNS} from links where token_hash = $1 and {_DOWNLOADABLE}",
        token_hash, window,
    )
    return None if row is None else _sealed_link(row)


def _sealed_link(row: asyncpg.Record) -> SealedLink:
    return SealedLink(
        id=row["id"], creator_id=row["creator_id"], expires_at=row["expires_at"],
        max_views=row["max_views"], views=row["views"], has_passphrase=row["has_passphrase"],
        subject=bytes(row["subject"]), body=bytes(row["body"]),
    )


async def take_view(
    conn: asyncpg.Connection, link_id: UUID, keep_for: timedelta = timedelta(0)
) -> TakenView | None:
    """Count one view of the link, if it may still be opened; the last one ends it (used), and
    makes it due `keep_for` later (its files' download window) or at its expiry if sooner.
    One statement: concurrent takers queue on the row, and each sees what the one before left,
    so a link of N views gives exactly N."""
    row = await conn.fetchrow(
        f"""update links set views = views + 1, last_viewed_at = statement_timestamp(),
                   ended_at = case when views + 1 = max_views
                                   then statement_timestamp() end,
                   end_reason = case when views + 1 = max_views then $2 end,
                   due_at = case when views + 1 = max_views
                                 then least(expires_at, statement_timestamp() + $3::interval)
                                 else due_at end
            where id = $1 and {_OPENABLE}
            returning max_views - views as views_left, last_viewed_at, due_at""",
        link_id, LinkEnd.USED.value, keep_for,
    )
    if row is None:
        return None
    return TakenView(
        views_left=int(row["views_left"]), viewed_at=row["last_viewed_at"], due_at=row["due_at"]
    )


async def count_wrong_passphrase(conn: asyncpg.Connection, link_id: UUID) -> int | None:
    """Count a wrong passphrase against a link that may still be opened; return the attempts
    left (0: this one ended it, burned), or None when the link opens no more."""
    left = await conn.fetchval(
        f"""update links set wrong_passphrases = wrong_passphrases + 1,
                   ended_at = case when wrong_passphrases + 1 >= $2
                                   then statement_timestamp() end,
                   end_reason = case when wrong_passphrases + 1 >= $2 then $3 end
            where id = $1 and {_OPENABLE}
            returning $2 - wrong_passphrases""",
        link_id, WRONG_PASSPHRASES_ALLOWED, LinkEnd.BURNED.value,
    )
    return None if left is None else int(left)


async def revoke(conn: asyncpg.Connection, link_id: UUID, creator_id: UUID) -> bool | None:
    """Delete a link of this creator's at once, with everything it holds (a link in its last
    view's download window too); return whether it was still live (its creator not told of its
    end yet), None when there is no such link."""
    live: bool | None = await conn.fetchval(
        f"""delete from links where id = $1 and creator_id = $2
            returning ({_OPENABLE}) as live""",
        link_id, creator_id,
    )
    return live


async def delete_link(conn: asyncpg.Connection, link_id: UUID) -> None:
    """Delete a link with everything it holds."""
    await conn.execute("delete from links where id = $1", link_id)


async def delete_due(conn: asyncpg.Connection, limit: int) -> list[DueLink]:
    """Delete up to `limit` links due now that no one else is deleting; call in a transaction.
    Locked with SKIP LOCKED, so that nodes share the work and none is deleted twice."""
    rows = await conn.fetch(
        """with due as (
               select id from links where due_at <= statement_timestamp()
               order by due_at limit $1 for update skip locked)
           delete from links l using due where l.id = due.id
           returning l.id, l.creator_id, l.ended_at is not null as ended""",
        limit,
    )
    return [DueLink(row["id"], row["creator_id"], row["ended"]) for row in rows]


async def seconds_until_next_due(conn: asyncpg.Connection) -> float | None:
    """How long until the next link is due by the database's clock (negative when overdue), or
    None when there is none."""
    value = await conn.fetchval(
        "select extract(epoch from min(due_at) - clock_timestamp()) from links"
    )
    return None if value is None else float(value)


async def list_live(conn: asyncpg.Connection, creator_id: UUID) -> list[ListedLink]:
    """The creator's links that may still be opened, newest first."""
    rows = await conn.fetch(
        f"""select id, created_at, expires_at, max_views, views, last_viewed_at,
                   has_passphrase, key_id, wrapped_key, listed_subject, emailed_to
            from links where creator_id = $1 and {_OPENABLE}
            order by created_at desc, id desc""",
        creator_id,
    )
    return [
        ListedLink(
            id=row["id"], created_at=row["created_at"], expires_at=row["expires_at"],
            max_views=row["max_views"], views=row["views"],
            last_viewed_at=row["last_viewed_at"], has_passphrase=row["has_passphrase"],
            key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
            listed_subject=bytes(row["listed_subject"]),
            emailed_to=None if row["emailed_to"] is None else bytes(row["emailed_to"]),
        )
        for row in rows
    ]
