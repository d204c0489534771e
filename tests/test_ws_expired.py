"""Expired means gone on the wire: no frame about an expired message, live, queued or replayed."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from realtime.broker.memory import MemoryBroker
from realtime.live.connection import Connection, Replayed
from realtime.live.hub import Hub
from realtime.protocol import Published
from tests.conftest import LoggedInUser, MakeUser
from tests.live_server import LiveServer
from tests.ws_support import frames_until, next_frame, open_socket, send


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def replayed_from_zero(live: LiveServer, member: LoggedInUser) -> list[dict[str, Any]]:
    async with await open_socket(live, member) as ws:
        await next_frame(ws)
        await ws.send('{"type": "resume", "after_seq": 0}')
        return await frames_until(ws, "resumed")


def about(frames: list[dict[str, Any]], kind: str) -> list[str]:
    """The ids of the messages the frames of one type are about."""
    return [
        f["message"]["id"] if kind == "message.new" else f["message_id"]
        for f in frames if f["type"] == kind
    ]


async def test_a_replay_leaves_out_the_new_message_and_receipts_of_an_expired_one(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """After a message expires, resuming sends neither its message.new nor its receipts."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    fleeting = await send(alice, bob, subject="fleeting", expires_at=in_an_hour())
    lasting = await send(alice, bob, subject="lasting")
    for message_id in (fleeting, lasting):
        answer = await bob.http.post(f"/api/messages/{message_id}/read")
        assert answer.status_code in (200, 204), answer.text
    await raw_db.execute(  # its hour has passed
        """with m as (update messages set expires_at = now() - interval '1 second'
                      where id = $1 returning id)
           update message_recipients set expires_at = now() - interval '1 second'
           where message_id = $1""",
        uuid.UUID(fleeting),
    )
    bobs = await replayed_from_zero(live, bob)
    assert about(bobs, "message.new") == [lasting]
    assert about(bobs, "message.read") == [lasting]
    alices = await replayed_from_zero(live, alice)
    assert about(alices, "message.read") == [lasting]


async def _nothing_to_replay(user_id: uuid.UUID, after_seq: int) -> Replayed:
    return Replayed([], after_seq)


async def _alive(session_id: uuid.UUID) -> bool:
    return True


async def test_a_frame_queued_before_its_message_expired_is_not_written_after() -> None:
    """A message.new or receipt waiting in a socket's queue past its expiry is dropped."""
    hub = Hub(
        broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
        max_sockets_per_user=20,
    )
    user = uuid.uuid4()
    received: list[str] = []

    async def receive(frame: str) -> None:
        received.append(frame)

    async def closed(code: int, reason: str) -> None:
        raise AssertionError("the socket must stay open")

    conn = Connection(user, uuid.uuid4(), send=receive, close=closed)
    await hub.register(conn)  # not started: its hello has not gone yet, frames wait
    soon = time.time() + 0.2
    hub.deliver(user, Published(1, b'{"seq":1,"type":"message.new"}', soon).pack())
    hub.deliver(user, Published(2, b'{"seq":2,"type":"message.new"}').pack())
    hub.deliver(user, Published(3, b'{"seq":3,"type":"message.read"}', soon).pack())
    later = time.time() + 3600
    hub.deliver(user, Published(4, b'{"seq":4,"type":"message.read"}', later).pack())
    await asyncio.sleep(0.3)
    hub.start(conn)
    for _ in range(10):
        await asyncio.sleep(0)
    assert received == ['{"seq":2,"type":"message.new"}', '{"seq":4,"type":"message.read"}']
    assert conn.last_seq == 4
    await hub.close_all()
