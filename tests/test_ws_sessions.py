"""Sessions end on the socket too: idle, outlived, or ended while the socket was opening."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from realtime.api.http import Services
from realtime.config import Settings
from realtime.models import AuthContext
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.ws_support import frames_until, next_frame, open_socket

IDLE = 3.0  # seconds of the short-lived server's idle timeout
GRACE = 1.0  # the contract: a socket closes within a second of its deadline (never scaled)


@pytest.fixture
def short_lived(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server whose sessions end after IDLE seconds without activity."""
    changed = dataclasses.replace(settings, session_idle_timeout=timedelta(seconds=IDLE))
    with live_server(changed) as server:
        yield server


async def closed_code(ws: Any, within: float) -> int:
    """The code the server closes the socket with, waiting at most `within` seconds."""
    with pytest.raises(ConnectionClosed) as closed:
        await frames_until(ws, "never", wait=within)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_an_idle_session_closes_its_socket_4401_even_while_it_pings(
    short_lived: LiveServer, make_user: MakeUser
) -> None:
    """A session idle past its timeout closes its socket 4401 soon after; pings do not count."""
    bob = await make_user(on=short_lived)
    logged_in = time.monotonic()
    async with await open_socket(short_lived, bob) as ws:
        await next_frame(ws)
        for _ in range(4):  # the client's own frames are not activity
            await ws.send('{"type": "ping"}')
            assert (await next_frame(ws))["type"] == "pong"
            await asyncio.sleep(IDLE / 5)
        remaining = IDLE - (time.monotonic() - logged_in)
        assert await closed_code(ws, max(remaining, 0) + GRACE) == 4401


async def test_a_session_active_over_http_keeps_its_socket_open(
    short_lived: LiveServer, make_user: MakeUser
) -> None:
    """While the session is used over HTTP its socket stays open past the idle timeout."""
    bob = await make_user(on=short_lived)
    async with await open_socket(short_lived, bob) as ws:
        await next_frame(ws)
        started = time.monotonic()
        while time.monotonic() - started < IDLE * 2:
            assert (await bob.http.get("/api/me")).status_code == 200
            await asyncio.sleep(IDLE / 6)
        await ws.send('{"type": "ping"}')
        assert (await next_frame(ws))["type"] == "pong"
        assert await closed_code(ws, IDLE + GRACE) == 4401  # once the activity stops


async def test_a_session_past_its_lifetime_closes_its_socket_4401(
    settings: Settings, services: Services, make_user: MakeUser
) -> None:
    """A session that reaches its lifetime closes its socket 4401, activity or not."""
    changed = dataclasses.replace(settings, session_lifetime=timedelta(seconds=IDLE))
    with live_server(changed) as node:
        bob = await make_user(on=node)
        async with await open_socket(node, bob) as ws:
            await next_frame(ws)
            assert await closed_code(ws, IDLE + GRACE) == 4401


async def test_a_logout_between_authenticating_and_registering_still_closes_the_socket(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A logout landing while the socket is being opened still closes it 4401."""
    bob = await make_user(on=live)
    accounts = live.app.state.services.accounts
    authenticate = accounts.authenticate_socket

    async def then_log_out(token: str, **budget: int) -> tuple[AuthContext, float]:
        del accounts.authenticate_socket  # once: later sockets authenticate as usual
        auth, wait = await authenticate(token, **budget)
        await accounts.logout(auth)
        return auth, wait

    accounts.authenticate_socket = then_log_out
    async with await open_socket(live, bob) as ws:
        assert await closed_code(ws, GRACE * 5) == 4401
