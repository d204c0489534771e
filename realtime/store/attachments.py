"""Messages' attachments, sealed under their message's data key, and the files they refer to."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from realtime.errors import NotFound
from realtime.models import AttachmentKind, SealedAttachment


def _sealed(row: asyncpg.Record, *, with_content: bool) -> SealedAttachment:
    content = row["content"] if with_content else None
    return SealedAttachment(
        id=row["id"],
        message_id=row["message_id"],
        kind=AttachmentKind(row["kind"]),
        name=bytes(row["name"]),
        size=row["size"],
        content=None if content is None else bytes(content),
        file_id=row["file_id"],
    )


async def insert_attachments(
    conn: asyncpg.Connection,
    attachments: Sequence[SealedAttachment],
    file_ids: Sequence[UUID],
) -> None:
    """Write a message's attachments in order, and every file they refer to."""
    if not attachments:
        return
    message_id = attachments[0].message_id
    try:
        await conn.execute(
            """with attached as (
                   insert into message_attachments
                       (id, message_id, position, kind, name, size, content, file_id)
                   select id, $1, position - 1, kind, name, size, content, file_id
                   from unnest($2::uuid[], $3::text[], $4::bytea[], $5::bigint[], $6::bytea[],
                               $7::uuid[]) with ordinality
                        as a(id, kind, name, size, content, file_id, position))
               insert into message_files (message_id, file_id)
               select $1, file_id from unnest($8::uuid[]) as file_id""",
            message_id,
            [a.id for a in attachments],
            [a.kind.value for a in attachments],
            [a.name for a in attachments],
            [a.size for a in attachments],
            [a.content for a in attachments],
            [a.file_id for a in attachments],
            list(dict.fromkeys(file_ids)),
        )
    except asyncpg.ForeignKeyViolationError:  # a file deleted since it was looked up
        raise NotFound("an attached file was not found") from None


async def headers_of(
    conn: asyncpg.Connection, message_ids: Sequence[UUID]
) -> dict[UUID, list[SealedAttachment]]:
    """Each message's attachments in order, without their content."""
    rows = await conn.fetch(
        """select id, message_id, kind, name, size, null::bytea as content, file_id
           from message_attachments where message_id = any($1::uuid[])
           order by message_id, position""",
        list(message_ids),
    )
    found: dict[UUID, list[SealedAttachment]] = {}
    for row in rows:
        found.setdefault(row["message_id"], []).append(_sealed(row, with_content=False))
    return found


async def get_attachments(
    conn: asyncpg.Connection, message_id: UUID, attachment_id: UUID | None = None
) -> list[SealedAttachment]:
    """A message's attachments in order with their content; only one with `attachment_id`."""
    rows = await conn.fetch(
        """select id, message_id, kind, name, size, content, file_id from message_attachments
           where message_id = $1 and ($2::uuid is null or id = $2) order by position""",
        message_id, attachment_id,
    )
    return [_sealed(row, with_content=True) for row in rows]


async def files_of(conn: asyncpg.Connection, message_ids: Sequence[UUID]) -> list[UUID]:
    """The files the messages refer to: to release once they are deleted."""
    rows = await conn.fetch(
        "select distinct file_id from message_files where message_id = any($1::uuid[])",
        list(message_ids),
    )
    return [row["file_id"] for row in rows]
