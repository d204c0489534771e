"""The websocket budgets: `resume` frames per socket, handshakes per user across nodes."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.config import Settings
from tests.live_server import LiveServer
from tests.redis_support import eventually
from tests.ws_support import Inbox, frames_until, next_frame, open_socket, send

People = Any


async def test_a_socket_resuming_past_its_budget_is_closed_1013_while_others_receive(
    live: LiveServer, people: People, settings: Settings
) -> None:
    """A socket flooding `resume` is closed 1013 at one past the limit; others still receive."""
    alice, bob, carol = await people(), await people(), await people()
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
    live: LiveServer, people: People, settings: Settings
) -> None:
    """Past its handshakes a minute a user's next handshake gets 429 with Retry-After."""
    bob, carol = await people(), await people()
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
