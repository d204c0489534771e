"""The websocket endpoint `GET /ws`: authenticate, say hello, stream events, answer the client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime import protocol
from realtime.api.headers import security_headers
from realtime.api.http import (
    SESSION_COOKIE,
    Services,
    as_error,
    check_origin,
    credentials,
    error_response,
)
from realtime.budgets import refusal
from realtime.db import DATABASE_FAULTS
from realtime.errors import Forbidden, RealtimeError, Unauthenticated
from realtime.live.connection import Connection
from realtime.live.hub import Hub
from realtime.live.render import Renderer
from realtime.models import AuthContext, User
from realtime.protocol import CloseCode, Ping, Resume, close_code

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# Inbound flood control: a bucket of FLOOD_BURST frames refilled at FLOOD_RATE a second.
FLOOD_BURST = 50
FLOOD_RATE = 20.0
PONG = protocol.encode(protocol.Pong()).decode()
HANDSHAKES = "websocket handshakes"  # the budget's name in its refusal
# The scope's key of the server's own send, which the app puts there for the socket's frames.
SERVER_SEND = "realtime.server_send"


@dataclass(frozen=True)
class Live:
    """What the endpoint needs besides the services: the hub and the renderer."""

    hub: Hub
    renderer: Renderer


async def websocket_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    live: Live = websocket.app.state.live
    try:
        check_origin(websocket, services.settings, required=_by_cookie(websocket))
    except Forbidden as exc:  # before accept: the handshake gets the contract's 403
        await _deny(websocket, exc)
        return
    authenticated_at = time.monotonic()  # before: a session end heard since closes it
    authenticated = await _authenticated(websocket, services)
    if authenticated is None:
        return
    auth, wait = authenticated
    if wait > 0:  # the contract's 429 and `Retry-After`, slowly to a retry loop
        await services.refusals.hold(auth.user.id)
        per_minute = services.settings.handshakes_per_minute
        await _deny(websocket, refusal(wait, limit=per_minute, what=HANDSHAKES))
        return
    await websocket.accept()
    conn = Connection(
        user_id=auth.user.id,
        session_id=auth.session_id,
        send=_frame_writer(websocket),
        close=lambda code, reason: websocket.close(code=code, reason=reason),
        authenticated_at=authenticated_at,
    )
    await live.hub.register(conn)  # subscribed before the snapshot: nothing falls between
    live.hub.watch_session(conn, auth.deadline)  # a logout since authenticating closes it
    try:
        await _greet(websocket, conn, auth.user, live)
        del auth  # an open socket keeps only its connection
        live.hub.start(conn)
        await _read(websocket, conn, live.hub, services.settings.resumes_per_minute)
    except WebSocketDisconnect:
        pass
    except DATABASE_FAULTS as exc:  # the database did not answer the greeting: 1013, come back
        await websocket.close(code=close_code(as_error(exc)), reason="try again later")
    finally:
        await live.hub.unregister(conn)


async def _authenticated(
    websocket: WebSocket, services: Services
) -> tuple[AuthContext, float] | None:
    """The socket's user and session, with one of their handshakes a minute spent (or the
    seconds to wait for one), in one statement; None once the socket is closed 4401 for want
    of a live session, or 1013 when the database did not answer."""
    try:
        token, _ = credentials(websocket)
        if token is None:
            raise Unauthenticated("log in first")
        return await services.accounts.authenticate_socket(
            token, handshakes_per_minute=services.settings.handshakes_per_minute
        )
    except Unauthenticated as exc:
        await websocket.accept()
        await websocket.close(code=close_code(exc), reason=exc.message)
        return None
    except DATABASE_FAULTS as exc:  # 1013: try again later
        await websocket.accept()
        await websocket.close(code=close_code(as_error(exc)), reason="try again later")
        return None


async def _greet(websocket: WebSocket, conn: Connection, user: User, live: Live) -> None:
    """Send `hello`; nothing of it stays referenced while the socket lives."""
    seq, hello = await live.renderer.hello(user, conn.session_id)
    conn.last_seq = seq  # hello holds the events and count up to seq
    await websocket.send_text(hello.decode())


async def _deny(websocket: WebSocket, error: RealtimeError) -> None:
    """Refuse the handshake with the contract's error as an HTTP answer, with the headers every
    HTTP answer carries (set here, so that the sockets let in pay no wrapper on their writes)."""
    response = error_response(error)
    for name, value in security_headers(websocket.scope["scheme"]):
        response.headers.setdefault(name.decode(), value.decode())
    await websocket.send_denial_response(response)


def _frame_writer(websocket: WebSocket) -> Callable[[str], Coroutine[Any, Any, None]]:
    """How the socket's frames are written once it is open: straight to the server's send
    when the app put it in the scope (the fan-out's cost per socket is then the server's
    own), else through the framework's."""
    server_send = websocket.scope.get(SERVER_SEND)
    if server_send is None:
        return websocket.send_text

    def write(text: str) -> Coroutine[Any, Any, None]:
        return server_send({"type": "websocket.send", "text": text})  # type: ignore[no-any-return]

    return write


def _by_cookie(websocket: WebSocket) -> bool:
    """A handshake carrying the cookie (and no bearer header) must come from an allowed page."""
    return "authorization" not in websocket.headers and SESSION_COOKIE in websocket.cookies


async def _read(
    websocket: WebSocket, conn: Connection, hub: Hub, resumes_per_minute: int
) -> None:
    """Answer the client's frames until it goes; a bad or flooding client is closed 1008, one
    resuming more than `resumes_per_minute` times a minute 1013."""
    tokens, refilled = float(FLOOD_BURST), time.monotonic()
    resumes = ResumeBucket(resumes_per_minute)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.close(code=CloseCode.POLICY, reason="frames are JSON text")
            return
        now = time.monotonic()
        tokens = min(FLOOD_BURST, tokens + (now - refilled) * FLOOD_RATE) - 1
        refilled = now
        if tokens < 0:
            await websocket.close(code=CloseCode.POLICY, reason="too many frames")
            return
        # A character is 1 to 4 bytes: only a long text needs encoding to be measured.
        if len(text) * 4 > MAX_FRAME_BYTES and len(text.encode()) > MAX_FRAME_BYTES:
            await websocket.close(code=CloseCode.POLICY, reason="frame over 64 KiB")
            return
        try:
            frame = protocol.decode_client(text)
        except RealtimeError as exc:
            await websocket.close(code=close_code(exc), reason=exc.message[:120])
            return
        if isinstance(frame, Ping):
            hub.send_soon(conn, PONG)
        elif isinstance(frame, Resume):
            if not resumes.take():
                await websocket.close(
                    code=CloseCode.TRY_AGAIN_LATER, reason="too many resumes, wait a minute"
                )
                return
            hub.request_resume(conn, frame.after_seq)
        if conn.closing:
            return


class ResumeBucket:
    """A socket's `resume` budget: a token bucket of `per_minute`, refilled over a minute."""

    def __init__(self, per_minute: int) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._tokens = self._capacity
        self._refilled = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

