"""The websocket `/ws` over a real uvicorn: hello, live events, resume, and the close codes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.api.http import Services
from realtime.config import Settings
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.timing import eventually
from tests.ws_support import (
    Inbox,
    RawSocket,
    frames_until,
    next_frame,
    no_more_frames,
    of_type,
    open_socket,
    send,
    send_many,
)

# The stalled-reader test: a backlog to replay, resumes asking for it, a bound on live sends.
REPLAYED, RESUMES, MAX_LIVE = 300, 40, 1000


async def test_hello_tells_the_latest_seq_unread_count_and_high_priority_messages(
    live: LiveServer, make_user: MakeUser
) -> None:
    """The first frame is hello, with the seq, the unread count and the unread popups."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    urgent = await send(alice, bob, subject="urgent", high_priority=True)
    await send(alice, bob, subject="plain")
    async with await open_socket(live, bob) as ws:
        hello = await next_frame(ws)
    assert hello["type"] == "hello"
    assert hello["user"]["id"] == bob.id
    assert hello["seq"] == 2 and hello["unread"] == 2
    assert [m["id"] for m in hello["high_priority"]] == [urgent]
    assert hello["high_priority"][0]["subject"] == "urgent"


async def test_a_new_message_reaches_every_tab_once_with_the_unread_count(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Two tabs of the recipient both get message.new once, with the new unread count, and
    nothing else."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    async with await open_socket(live, bob) as tab1, await open_socket(live, bob) as tab2:
        await next_frame(tab1), await next_frame(tab2)
        message_id = await send(alice, bob, subject="hello", high_priority=True)
        for tab in (tab1, tab2):
            frames = await frames_until(tab, "message.new")
            new = of_type(frames, "message.new")
            assert len(new) == 1 and new[0]["seq"] == 1 and new[0]["unread"] == 1
            assert new[0]["message"]["id"] == message_id
            assert new[0]["message"]["high_priority"] is True
            assert new[0]["message"]["subject"] == "hello"
            assert await no_more_frames(tab) == []


async def test_the_live_summary_is_the_one_the_inbox_lists(
    live: LiveServer, make_user: MakeUser
) -> None:
    """The message a socket gets live (expiry in another time zone, a reply, attachments) is,
    field for field, the one the recipient's inbox then lists."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    first = await send(alice, bob, subject="first")
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        expires_at = (datetime.now(UTC) + timedelta(hours=2)).astimezone(
            timezone(timedelta(hours=5, minutes=30))
        ).isoformat()
        message_id = await send(
            alice, bob, subject="second", body="b", reply_to=first, expires_at=expires_at,
            attachments=[{"kind": "credential", "title": "vpn", "password": "p"}],
        )
        frames = await frames_until(ws, "message.new")
    live_summary = of_type(frames, "message.new")[0]["message"]
    inbox = (await bob.http.get("/api/messages")).json()["messages"]
    listed = next(m for m in inbox if m["id"] == message_id)
    assert live_summary == listed
    assert live_summary["reply_to"] == first and live_summary["attachments"]


async def test_closing_a_message_tells_the_readers_tabs_and_the_sender(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Close sends message.read to the reader's own tabs and to the sender as a receipt."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    message_id = await send(alice, bob)
    async with await open_socket(live, bob) as bob_ws, await open_socket(live, alice) as alice_ws:
        await next_frame(bob_ws), await next_frame(alice_ws)
        read = await bob.http.post(f"/api/messages/{message_id}/read")
        assert read.status_code == 200
        bob_frames = await frames_until(bob_ws, "message.read")
        bob_frames += await no_more_frames(bob_ws)
        assert [f["reader"]["id"] for f in of_type(bob_frames, "message.read")] == [bob.id]
        assert [f["unread"] for f in of_type(bob_frames, "message.read")] == [0]
        assert of_type(bob_frames, "unread") == []
        receipt = await frames_until(alice_ws, "message.read")
        assert receipt[-1]["message_id"] == message_id
        assert receipt[-1]["read_at"] == read.json()["read_at"]
        assert receipt[-1]["unread"] == 0  # the sender's own count, untouched by the receipt
        assert await no_more_frames(alice_ws) == []


async def test_a_recall_removes_the_message_from_the_recipients_view(
    live: LiveServer, make_user: MakeUser
) -> None:
    """The sender's recall reaches the recipient as message.deleted with reason recalled."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    message_id = await send(alice, bob)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        assert (await alice.http.delete(f"/api/messages/{message_id}")).status_code == 204
        frames = await frames_until(ws, "message.deleted")
        frames += await no_more_frames(ws)
        deleted = of_type(frames, "message.deleted")
        assert [(d["message_id"], d["reason"]) for d in deleted] == [(message_id, "recalled")]
        assert deleted[-1]["unread"] == 0


async def test_resume_replays_exactly_the_missed_events_in_order(
    live: LiveServer, make_user: MakeUser
) -> None:
    """After a disconnect, resume replays every missed event once, in order, then resumed."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    await send(alice, bob, subject="seen")
    async with await open_socket(live, bob) as ws:
        seen = (await next_frame(ws))["seq"]
    missed = [await send(alice, bob, subject=f"missed {n}") for n in range(3)]
    async with await open_socket(live, bob) as ws:
        hello = await next_frame(ws)
        assert hello["seq"] == seen + 3
        await ws.send(f'{{"type": "resume", "after_seq": {seen}}}')
        frames = await frames_until(ws, "resumed")
        new = of_type(frames, "message.new")
        assert [f["message"]["id"] for f in new] == missed
        assert [f["seq"] for f in new] == [seen + 1, seen + 2, seen + 3]
        assert frames[-1] == {"type": "resumed", "seq": seen + 3}
        assert await no_more_frames(ws) == []


async def test_resume_from_a_seq_the_server_never_gave_asks_for_a_resync(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A resume after a seq the log cannot serve is answered resync."""
    bob = await make_user(on=live)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        await ws.send('{"type": "resume", "after_seq": 99}')
        assert await next_frame(ws) == {"type": "resync"}


async def test_ping_is_answered_pong(live: LiveServer, make_user: MakeUser) -> None:
    """A ping frame gets a pong frame."""
    bob = await make_user(on=live)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        await ws.send('{"type": "ping"}')
        assert await next_frame(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:1", "null", "http://127.0.0.1.evil.example", "HTTP://127.0.0.1"]
)
async def test_a_cookie_handshake_from_a_foreign_origin_is_refused(
    live: LiveServer, make_user: MakeUser, origin: str
) -> None:
    """With the cookie, a foreign Origin (another port, null, look-alike, case) gets 403."""
    bob = await make_user(on=live)
    if origin == "HTTP://127.0.0.1":
        origin = live.url.upper()
    with pytest.raises(InvalidStatus) as refused:
        await connect(live.ws_url, additional_headers={"Cookie": f"session={bob.token}"},
                      origin=origin)
    assert refused.value.response.status_code == 403


async def test_a_cookie_handshake_needs_our_origin(live: LiveServer, make_user: MakeUser) -> None:
    """With the cookie, no Origin is refused 403 and our own origin is accepted."""
    bob = await make_user(on=live)
    cookie = {"Cookie": f"session={bob.token}"}
    with pytest.raises(InvalidStatus) as refused:
        await connect(live.ws_url, additional_headers=cookie)
    assert refused.value.response.status_code == 403
    async with connect(live.ws_url, additional_headers=cookie, origin=live.url) as ws:
        assert (await next_frame(ws))["type"] == "hello"


async def test_a_handshake_without_credentials_is_closed_4401(live: LiveServer) -> None:
    """No cookie and no bearer header: the socket is closed with 4401."""
    async with connect(live.ws_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.mark.parametrize("how", ["logout", "disable"])
async def test_logout_and_disabling_close_the_socket_4401(
    live: LiveServer, make_user: MakeUser, how: str
) -> None:
    """Logging out, or being disabled by an admin, closes open sockets with 4401."""
    bob = await make_user(on=live)
    admin = await make_user(on=live, is_admin=True)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        if how == "logout":
            assert (await bob.http.post("/api/auth/logout")).status_code == 204
        else:
            answer = await admin.http.patch(f"/api/admin/users/{bob.id}", json={"disabled": True})
            assert answer.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(ws, "never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.mark.parametrize(
    "frame", ['{"type": "ping", "pad": "%s"}' % ("x" * 70_000), "not json", '{"type": "what"}',
              b"binary"],
    ids=["over-64KiB", "not-json", "unknown-type", "binary"],
)
async def test_a_bad_frame_is_closed_1008(
    live: LiveServer, make_user: MakeUser, frame: str | bytes
) -> None:
    """Frames over 64 KiB, not JSON, of unknown type or binary close the socket with 1008."""
    bob = await make_user(on=live)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(ws, "never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_text_frame_of_invalid_utf8_is_closed_1007(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A text frame whose bytes are not UTF-8 closes the socket with 1007."""
    bob = await make_user(on=live)
    raw = RawSocket(live, bob)
    try:
        raw.send(b'{"type": "ping", "x": "\xff\xfe"}')
        frames, close = await raw.drain()
    finally:
        raw.close()
    assert close is not None and close.code == 1007
    assert frames == [], "nothing is answered to a frame that is not UTF-8"


async def test_a_flood_of_frames_is_closed_1008(live: LiveServer, make_user: MakeUser) -> None:
    """Hundreds of frames at once close the socket with 1008."""
    bob = await make_user(on=live)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(500):
                await ws.send('{"type": "ping"}')
            await frames_until(ws, "never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.fixture
def resumable(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server whose sockets may resume RESUMES times a minute."""
    with live_server(
        dataclasses.replace(settings, resumes_per_minute=RESUMES, sends_per_minute=1000)
    ) as server:
        yield server


async def test_a_client_that_never_reads_is_closed_1013_while_the_others_keep_receiving(
    resumable: LiveServer, make_user: MakeUser
) -> None:
    """A socket whose client stops reading is closed with 1013 once its queue is full; the
    user's other tab gets every message once, in order, and stays open."""
    live = resumable
    alice, bob = await make_user(on=live), await make_user(on=live)
    await send_many(alice, bob, REPLAYED)
    stalled = RawSocket(live, bob)
    async with await open_socket(live, bob) as tab:
        assert (await next_frame(tab))["type"] == "hello"
        inbox = Inbox(tab)
        try:
            # Each resume replays the whole backlog into the stalled socket until its buffers
            # are full; from then on its frames wait in its queue, which the live ones overflow.
            stalled.send(*['{"type": "resume", "after_seq": 0}'] * RESUMES)
            live_ones: list[str] = []
            while live.app.state.live.hub.connections > 1 and len(live_ones) < MAX_LIVE:
                live_ones += await send_many(alice, bob, 10)
            frames, close = await stalled.drain()
            assert close is not None and close.code == 1013, close
            assert len(frames) > REPLAYED  # it was sent what it could take, then closed
            await eventually(lambda: len(inbox.new_messages()) == len(live_ones), "the tab")
            assert sorted(inbox.new_messages()) == sorted(live_ones)  # each once
            assert inbox.seqs() == sorted(set(inbox.seqs()))  # in the order of their seqs
            assert not tab.close_code
        finally:
            await inbox.stop()
            stalled.close()


async def test_too_many_sockets_close_the_oldest(live: LiveServer, make_user: MakeUser) -> None:
    """Past the per-user cap, opening a socket closes that user's oldest one."""
    bob = await make_user(on=live)
    cap = live.app.state.settings.max_sockets_per_user
    sockets = [await open_socket(live, bob) for _ in range(cap)]
    for ws in sockets:
        await next_frame(ws)
    async with await open_socket(live, bob) as newest:
        await next_frame(newest)
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(sockets[0], "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await newest.send('{"type": "ping"}')
        assert await next_frame(newest) == {"type": "pong"}
    await asyncio.gather(*(ws.close() for ws in sockets))


async def test_shutdown_closes_sockets_1001_after_queued_frames(
    settings: Any, make_user: MakeUser, live: LiveServer
) -> None:
    """When the server stops, an open socket first gets what was queued, then close 1001."""
    bob = await make_user(on=live)
    alice = await make_user(on=live)
    ws = await open_socket(live, bob)
    await next_frame(ws)
    await send(alice, bob, subject="last words")
    await asyncio.to_thread(live.stop)
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(await next_frame(ws))
    assert "message.new" in [frame["type"] for frame in frames]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
