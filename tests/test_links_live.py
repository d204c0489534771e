"""Shareable links and time: the creator hears of each view and of the end live, a link is gone
within a second of its expiry, one with files when its download window ends, and no log line
ever holds a link's token."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from realtime.api.http import Services
from realtime.config import Settings
from realtime.events import EventSink
from realtime.expiry import Expirer
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.test_links_api import create, creator_events, open_link, token_of
from tests.timing import TIME_FACTOR
from tests.vault_support import upload
from tests.ws_support import frames_until, next_frame, no_more_frames, open_socket

ON_TIME = 1.0  # the contract's deadline between a link's end and its deletion: never scaled


async def gone_at(raw_db: asyncpg.Connection, link_id: str, give_up: float) -> datetime:
    """Poll until the link's row is gone; return when (by the database's clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up
    while await raw_db.fetchval("select count(*) from links where id = $1::uuid", link_id):
        assert loop.time() < deadline, "the link was not deleted"
        await asyncio.sleep(0.01)
    moment: datetime = await raw_db.fetchval("select clock_timestamp()")
    return moment


async def test_the_creator_sees_each_view_and_the_end_live(
    live: LiveServer, make_user: MakeUser
) -> None:
    """The creator's open socket gets link.viewed for each view, with the views left and the
    time, then link.deleted (used) after the last, in seq order."""
    alice = await make_user(on=live)
    ws = await open_socket(live, alice)
    hello = await next_frame(ws)
    created = await create(alice, max_views=2)
    async with httpx.AsyncClient(base_url=live.url) as stranger:
        for _ in range(2):
            assert (await open_link(stranger, token_of(created))).status_code == 200
    frames = await frames_until(ws, "link.deleted")
    assert [f["type"] for f in frames] == ["link.viewed", "link.viewed", "link.deleted"]
    assert [f["views_left"] for f in frames[:2]] == [1, 0]
    assert all(f["link_id"] == created["id"] for f in frames)
    assert frames[2]["reason"] == "used"
    assert [f["seq"] for f in frames] == [hello["seq"] + n for n in (1, 2, 3)]
    await ws.close()


async def test_a_link_is_gone_within_a_second_of_its_expiry(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A link expiring in a second (with a file) is deleted, rows, attachments and chunks,
    within a second after, however long the expirer had planned to sleep; its creator's
    socket gets link.deleted (expired)."""
    alice = await make_user(on=live)
    await create(alice, expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    ws = await open_socket(live, alice)
    await next_frame(ws)
    await asyncio.sleep(0.2)  # the expirer sleeps until the hour is up
    uploaded = await upload(alice, b"words", name="w.txt")
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    created = await create(alice, expires_at=expires_at.isoformat(),
                           attachments=[{"kind": "file", "upload_id": uploaded["upload_id"]}])
    deleted_at = await gone_at(raw_db, created["id"], give_up=10 * TIME_FACTOR)
    assert deleted_at - expires_at < timedelta(seconds=ON_TIME)
    assert await raw_db.fetchval("select count(*) from link_chunks") == 0
    frame = await next_frame(ws)
    assert (frame["type"], frame["link_id"], frame["reason"]) == (
        "link.deleted", created["id"], "expired"
    )
    await ws.close()


async def test_a_revoked_link_ends_live_for_every_session_of_its_creator(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Revoking on one device tells the creator's other open session at once."""
    alice = await make_user(on=live)
    other_device = await open_socket(live, alice)
    await next_frame(other_device)
    created = await create(alice)
    assert (await alice.http.delete(f"/api/links/{created['id']}")).status_code == 204
    frame = await next_frame(other_device)
    assert (frame["type"], frame["reason"]) == ("link.deleted", "revoked")
    assert await no_more_frames(other_device) == []
    await other_device.close()


async def test_the_expirer_deletes_a_used_link_when_its_download_window_ends(
    settings: Settings, services: Services, make_user: MakeUser, client: httpx.AsyncClient,
    raw_db: asyncpg.Connection,
) -> None:
    """A link whose last view's window has ended is deleted with its chunks by the expirer,
    which tells its creator nothing more (the end was told at the view)."""
    alice = await make_user()
    uploaded = await upload(alice, b"words", name="w.txt")
    created = await create(alice, attachments=[{"kind": "file",
                                                "upload_id": uploaded["upload_id"]}])
    await open_link(client, token_of(created))
    told = await creator_events(raw_db, alice)
    await raw_db.execute("update links set due_at = now() where id = $1::uuid", created["id"])
    await Expirer(services.db, settings, EventSink()).expire_due()
    assert await raw_db.fetchval("select count(*) from links where id = $1::uuid",
                                 created["id"]) == 0
    assert await raw_db.fetchval("select count(*) from link_chunks") == 0
    assert await creator_events(raw_db, alice) == told


class Lines(logging.Handler):
    """Every line logged to the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_no_log_line_holds_a_links_token_or_passphrase(
    settings: Settings, services: Services, make_user: MakeUser
) -> None:
    """Creating, opening (wrongly and rightly), downloading and revoking a link, and a request
    cut short, on a server logging at debug level with uvicorn's access log on: neither the
    token nor the passphrase appears in any line."""
    with live_server(settings, log_level="debug", access_log=True) as live:
        heard = Lines()
        loggers = [logging.getLogger(name) for name in ("", "uvicorn.access", "uvicorn.error")]
        for logger in loggers:
            logger.addHandler(heard)
        try:
            token = await _use_a_link(live, make_user)
        finally:
            for logger in loggers:
                logger.removeHandler(heard)
    assert any("/api/links/open" in line for line in heard.lines), "no access log was heard"
    for line in heard.lines:
        assert token not in line and "the passphrase itself" not in line, line


async def _use_a_link(live: LiveServer, make_user: MakeUser) -> str:
    alice = await make_user(on=live)
    credential = {"kind": "credential", "title": "t", "password": "p"}
    created = await create(alice, passphrase="the passphrase itself", max_views=3,
                           attachments=[credential])
    token = token_of(created)
    async with httpx.AsyncClient(base_url=live.url) as stranger:
        await open_link(stranger, token)
        await open_link(stranger, token, "a wrong passphrase")
        opened = (await open_link(stranger, token, "the passphrase itself")).json()
        await stranger.post(f"/api/links/open/attachments/{opened['attachments'][0]['id']}",
                            json={"token": token, "passphrase": "the passphrase itself"})
        await stranger.post("/api/links/open", content=b'{"token": "' + token.encode())
        await stranger.get(f"/s/#{token}")
    await alice.http.delete(f"/api/links/{created['id']}")
    return token
