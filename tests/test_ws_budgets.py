"""The websocket budgets: `resume` frames per socket, handshakes per user across nodes."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.api.http import Services
from realtime.config import Settings
from realtime.models import EventType
from realtime.store import events as event_store
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.timing import eventually
from tests.ws_support import Inbox, frames_until, next_frame, of_type, open_socket, send


async def test_a_socket_resuming_past_its_budget_is_closed_1013_while_others_receive(
    live: LiveServer, make_user: MakeUser, settings: Settings
) -> None:
    """A socket flooding `resume` is closed 1013 at one past the limit; others still receive."""
    alice, bob, carol = await make_user(on=live), await make_user(on=live), await make_user(on=live)
    await send(alice, bob, subject="backlog")
    async with await open_socket(live, carol) as calm, await open_socket(live, bob) as flood:
        await next_frame(calm)
        await next_frame(flood)
        inbox = Inbox(calm)
        for _ in range(settings.resumes_per_minute):
            await flood.send('{"type": "resume", "after_seq": 0}')
            await frames_until(flood, "resumed")
        await flood.send('{"type": "resume", "after_seq": 0}')
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(flood, "never")
        sent = await send(alice, carol, subject="still here")
        await eventually(lambda: sent in inbox.new_messages(), "the calm socket got the send")
        await inbox.stop()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_handshakes_past_the_budget_are_refused_429_while_another_user_connects(
    live: LiveServer, make_user: MakeUser, settings: Settings
) -> None:
    """Past its handshakes a minute a user's next handshake gets 429 with Retry-After."""
    bob, carol = await make_user(on=live), await make_user(on=live)
    refused: InvalidStatus | None = None
    accepted = 0
    for _ in range(settings.handshakes_per_minute + 10):
        try:
            async with await open_socket(live, bob) as ws:
                await next_frame(ws)
            accepted += 1
        except InvalidStatus as exc:
            refused = exc
            break
    assert refused is not None, "the handshakes were never refused"
    assert accepted >= settings.handshakes_per_minute
    assert refused.response.status_code == 429
    assert int(refused.response.headers["Retry-After"]) >= 1
    async with await open_socket(live, carol) as ws:
        assert (await next_frame(ws))["type"] == "hello"


LONG_REPLAY = 1000


@pytest.fixture
def small_pool(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server with the smallest pool: a replay holding a connection would starve it."""
    with live_server(dataclasses.replace(settings, db_pool_size=2)) as server:
        yield server


async def test_a_long_replay_arrives_whole_in_order_without_holding_the_pool(
    small_pool: LiveServer, make_user: MakeUser, services: Services
) -> None:
    """A resume over 1,000 events gets each once, in order; HTTP works while it is written."""
    bob = await make_user(on=small_pool)
    pad = "x" * 2000  # enough that the replays wait on the unread sockets
    async with services.db.transaction() as conn:
        await event_store.append_each(conn, [
            (uuid.UUID(bob.id), EventType.MESSAGE_DELETED,
             {"message_id": str(uuid.uuid4()), "reason": "deleted", "pad": pad})
            for _ in range(LONG_REPLAY)
        ])
    sockets = [await open_socket(small_pool, bob, max_queue=1) for _ in range(3)]
    try:
        for ws in sockets:
            assert (await next_frame(ws))["type"] == "hello"
            await ws.send('{"type": "resume", "after_seq": 0}')
        for _ in range(5):  # while the replays wait on sockets nobody reads
            assert (await bob.http.get("/api/me")).status_code == 200
        for ws in sockets:
            frames = await frames_until(ws, "resumed")
            seqs = [f["seq"] for f in of_type(frames, "message.deleted")]
            assert seqs == list(range(1, LONG_REPLAY + 1))
            assert frames[-1] == {"type": "resumed", "seq": LONG_REPLAY}
    finally:
        for ws in sockets:
            await ws.close()
