"""Shareable links: their rows, the views they give (one statement each, so that no more are
given than a link allows, whatever number of nodes asks), their wrong passphrases, their end."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from realtime.models import LinkEnd, ListedLink, SealedKey, SealedLink, TakenView

WRONG_PASSPHRASES_ALLOWED = 5  # the fifth wrong passphrase ends the link

# A link that may still be opened: not ended, not expired, a view left.
_OPENABLE = """ended_at is null and expires_at > statement_timestamp() and views < max_views"""


async def insert_link(
    conn: asyncpg.Connection, *, link_id: UUID, creator_id: UUID, token_hash: bytes,
    expires_at: datetime, max_views: int, has_passphrase: bool, key: SealedKey,
    listed_subject: bytes, subject: bytes, body: bytes,
) -> datetime:
    """Store a new link; return when it was created."""
    created_at: datetime = await conn.fetchval(
        """insert into links (id, creator_id, token_hash, expires_at, max_views, has_passphrase,
                              key_id, wrapped_key, listed_subject, subject, body)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           returning created_at""",
        link_id, creator_id, token_hash, expires_at, max_views, has_passphrase,
        key.key_id, key.wrapped, listed_subject, subject, body,
    )
    return created_at


async def find_openable(conn: asyncpg.Connection, token_hash: bytes) -> SealedLink | None:
    """The link of a token's hash, if it may still be opened."""
    row = await conn.fetchrow(
        f"""select id, creator_id, expires_at, max_views, views, has_passphrase, subject, body
            from links where token_hash = $1 and {_OPENABLE}""",
        token_hash,
    )
    if row is None:
        return None
    return SealedLink(
        id=row["id"], creator_id=row["creator_id"], expires_at=row["expires_at"],
        max_views=row["max_views"], views=row["views"], has_passphrase=row["has_passphrase"],
        subject=bytes(row["subject"]), body=bytes(row["body"]),
    )


async def take_view(conn: asyncpg.Connection, link_id: UUID) -> TakenView | None:
    """Count one view of the link, if it may still be opened; the last one ends it (used).
    One statement: concurrent takers queue on the row, and each sees what the one before left,
    so a link of N views gives exactly N."""
    row = await conn.fetchrow(
        f"""update links set views = views + 1, last_viewed_at = statement_timestamp(),
                   ended_at = case when views + 1 = max_views
                                   then statement_timestamp() end,
                   end_reason = case when views + 1 = max_views then $2 end
            where id = $1 and {_OPENABLE}
            returning max_views - views as views_left""",
        link_id, LinkEnd.USED.value,
    )
    if row is None:
        return None
    return TakenView(views_left=int(row["views_left"]))


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


async def revoke(conn: asyncpg.Connection, link_id: UUID, creator_id: UUID) -> bool:
    """End a live link of this creator's at once; False when there is none such."""
    return bool(await conn.fetchval(
        f"""update links set ended_at = statement_timestamp(), end_reason = $3
            where id = $1 and creator_id = $2 and {_OPENABLE}
            returning true""",
        link_id, creator_id, LinkEnd.REVOKED.value,
    ))


async def list_live(conn: asyncpg.Connection, creator_id: UUID) -> list[ListedLink]:
    """The creator's links that may still be opened, newest first."""
    rows = await conn.fetch(
        f"""select id, created_at, expires_at, max_views, views, last_viewed_at,
                   has_passphrase, key_id, wrapped_key, listed_subject
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
        )
        for row in rows
    ]
