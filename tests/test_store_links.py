"""Shareable links in PostgreSQL: a link gives exactly the views it allows to any number of
openers at once, the fifth wrong passphrase ends it, and only its creator revokes it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from realtime import crypto
from realtime.api.http import Services
from realtime.errors import CryptoError
from realtime.models import SealedKey, TakenView
from realtime.store import links as link_store
from tests.conftest import MakeUser


async def new_link(
    services: Services, creator_id: UUID, *, max_views: int = 1,
    expires_in: timedelta = timedelta(hours=1), passphrase: str | None = None,
) -> tuple[UUID, str]:
    """Store a link of `creator_id`'s, its content sealed under its token; return its id and
    token."""
    link_id, token = uuid.uuid4(), crypto.new_token()
    envelope = crypto.link_envelope(crypto.row_name("links", link_id), token, passphrase)
    async with services.db.connection() as conn:
        await link_store.insert_link(
            conn, link_id=link_id, creator_id=creator_id, token_hash=crypto.token_digest(token),
            expires_at=datetime.now(UTC) + expires_in, max_views=max_views,
            has_passphrase=passphrase is not None, key=SealedKey("k", b"wrapped"),
            listed_subject=b"sealed for the creator", subject=envelope.seal("subject", "s"),
            body=envelope.seal("body", "the secret"),
        )
    return link_id, token


async def take(services: Services, link_id: UUID) -> TakenView | None:
    async with services.db.connection() as conn:
        return await link_store.take_view(conn, link_id)


async def find(services: Services, token: str) -> UUID | None:
    async with services.db.connection() as conn:
        found = await link_store.find_openable(conn, crypto.token_digest(token))
    return None if found is None else found.id


@pytest.mark.parametrize("max_views", [1, 3])
async def test_simultaneous_openers_get_exactly_the_views_a_link_allows(
    services: Services, make_user: MakeUser, max_views: int
) -> None:
    """Twenty opens of a link at once, each on its own pooled connection, give exactly its
    views; the last ends it, and the link is then found no more."""
    creator = await make_user()
    link_id, token = await new_link(services, creator.user.id, max_views=max_views)
    taken = await asyncio.gather(*(take(services, link_id) for _ in range(20)))
    given = sorted((view.views_left for view in taken if view is not None), reverse=True)
    assert given == list(range(max_views - 1, -1, -1))
    assert [view.last for view in taken if view is not None].count(True) == 1
    assert await find(services, token) is None


async def test_the_fifth_wrong_passphrase_ends_the_link(
    services: Services, make_user: MakeUser
) -> None:
    """Four wrong passphrases leave 4, 3, 2, 1 attempts; the fifth ends the link (burned), and
    no view is given after it."""
    creator = await make_user()
    link_id, token = await new_link(services, creator.user.id, passphrase="correct horse")
    async with services.db.connection() as conn:
        left = [await link_store.count_wrong_passphrase(conn, link_id) for _ in range(6)]
    assert left == [4, 3, 2, 1, 0, None]
    assert await find(services, token) is None
    assert await take(services, link_id) is None


async def test_only_the_creator_revokes_a_link_and_it_opens_no_more(
    services: Services, make_user: MakeUser
) -> None:
    """Another user's revoke changes nothing; the creator's ends the link at once and leaves it
    out of their list."""
    creator, other = await make_user(), await make_user()
    link_id, token = await new_link(services, creator.user.id)
    kept_id, _ = await new_link(services, creator.user.id)
    async with services.db.connection() as conn:
        assert not await link_store.revoke(conn, link_id, other.user.id)
        assert await find(services, token) == link_id
        assert await link_store.revoke(conn, link_id, creator.user.id)
        assert not await link_store.revoke(conn, link_id, creator.user.id)
        listed = await link_store.list_live(conn, creator.user.id)
    assert await find(services, token) is None
    assert await take(services, link_id) is None
    assert [link.id for link in listed] == [kept_id]


async def test_an_expired_link_is_not_found_nor_viewed(
    services: Services, make_user: MakeUser
) -> None:
    """A link past its expiry opens no more, before the expirer has deleted it."""
    creator = await make_user()
    link_id, token = await new_link(services, creator.user.id, expires_in=timedelta(0))
    assert await find(services, token) is None
    assert await take(services, link_id) is None


async def test_nothing_the_database_keeps_of_a_link_opens_it(
    services: Services, make_user: MakeUser
) -> None:
    """No value stored in a link's row (its token's hash among them) is the key of its
    content; its token is."""
    creator = await make_user()
    link_id, token = await new_link(services, creator.user.id)
    async with services.db.connection() as conn:
        row = await conn.fetchrow("select * from links where id = $1", link_id)
    assert row is not None
    row_name = crypto.row_name("links", link_id)
    stored = [bytes(value) for value in row.values() if isinstance(value, bytes)]
    assert crypto.token_digest(token) in stored
    for value in stored:
        key = value[: crypto.DATA_KEY_BYTES].ljust(crypto.DATA_KEY_BYTES, b"\0")
        with pytest.raises(CryptoError):
            crypto.Envelope(row_name, key).open("body", bytes(row["body"]))
    opened = crypto.link_envelope(row_name, token).open_text("body", bytes(row["body"]))
    assert opened == "the secret"
