"""Helpers for websocket tests: sockets of logged-in users, a frame reader."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from tests.conftest import LoggedInUser
from tests.live_server import LiveServer
from tests.timing import TIME_FACTOR

FRAME_TIMEOUT = 5.0 * TIME_FACTOR
QUIET = 0.3 * TIME_FACTOR


async def open_socket(
    live: LiveServer, person: LoggedInUser, **options: Any
) -> ClientConnection:
    """A websocket authenticated by the bearer header."""
    return await connect(live.ws_url, additional_headers=person.headers(), **options)


async def next_frame(ws: ClientConnection, wait: float = FRAME_TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        raw = await ws.recv()
    frame: dict[str, Any] = orjson.loads(raw)
    return frame


async def frames_until(
    ws: ClientConnection, wanted: str, wait: float = FRAME_TIMEOUT
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type `wanted`."""
    seen = []
    while True:
        frame = await next_frame(ws, wait)
        seen.append(frame)
        if frame["type"] == wanted:
            return seen


async def no_more_frames(ws: ClientConnection) -> list[dict[str, Any]]:
    """Whatever arrives within a short quiet period (expected: nothing)."""
    seen = []
    try:
        while True:
            seen.append(await next_frame(ws, QUIET))
    except TimeoutError:
        return seen


async def send(sender: LoggedInUser, *to: LoggedInUser, **fields: Any) -> str:
    payload = {"to": [{"kind": "user", "id": p.id} for p in to], "subject": "live", **fields}
    answer = await sender.http.post("/api/messages", json=payload)
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def send_many(sender: LoggedInUser, recipient: LoggedInUser, count: int) -> list[str]:
    """Send `count` messages, a few at a time; return their ids (not in commit order)."""
    limit = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with limit:
            return await send(sender, recipient, subject=f"message {n} " + "x" * 200)

    ids = await asyncio.gather(*(one(n) for n in range(count)))
    return list(ids)


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


class Inbox:
    """Every frame one socket receives, read in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.frames: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while True:
                self.frames.append(await next_frame(ws, wait=3600))

    def new_messages(self) -> list[str]:
        return [f["message"]["id"] for f in of_type(self.frames, "message.new")]

    def unread(self) -> int | None:
        """The unread count the latest event received carries."""
        counted = [f for f in self.frames if "unread" in f and "seq" in f and f["type"] != "hello"]
        return max(counted, key=lambda f: f["seq"])["unread"] if counted else None

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if "seq" in f and f["type"] != "hello"]

    async def stop(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class RawSocket:
    """A websocket client on a bare socket with a small receive buffer, reading nothing after its
    `hello` until `drain()`, and sending text frames as any bytes, even invalid UTF-8.

    `drain()` reads everything the server managed to write before it closed, frames and close
    frame alike.
    """

    RECEIVE_BUFFER = 4096

    def __init__(self, live: LiveServer, person: LoggedInUser) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        self._sock.settimeout(FRAME_TIMEOUT)
        self._sock.connect(("127.0.0.1", int(live.url.rsplit(":", 1)[1])))
        self._protocol = ClientProtocol(parse_uri(live.ws_url))
        request = self._protocol.connect()
        request.headers["Authorization"] = f"Bearer {person.token}"
        self._protocol.send_request(request)
        self._flush()
        while not any(isinstance(e, Frame) for e in self._protocol.events_received()):
            self._protocol.receive_data(self._sock.recv(self.RECEIVE_BUFFER))

    def send(self, *texts: str | bytes) -> None:
        for text in texts:
            self._protocol.send_text(text.encode() if isinstance(text, str) else text)
        self._flush()

    def _flush(self) -> None:
        self._sock.sendall(b"".join(self._protocol.data_to_send()))

    async def drain(self) -> tuple[list[Frame], Close | None]:
        """Read until the server closes the connection: the text frames, and its close frame."""
        return await asyncio.to_thread(self._drain)

    def _drain(self) -> tuple[list[Frame], Close | None]:
        frames: list[Frame] = []
        with contextlib.closing(self._sock):
            while data := self._receive():
                self._protocol.receive_data(data)
                frames += [
                    event for event in self._protocol.events_received()
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT
                ]
                self._flush()  # the answer to the server's close frame, once it is read
        return frames, self._protocol.close_rcvd

    def _receive(self) -> bytes:
        """The next bytes, or none once the server has gone. A server that closed right after
        its close frame may reset the connection when our answer to it arrives: that is the
        end too, once its close frame has been read."""
        try:
            return self._sock.recv(1 << 20)
        except ConnectionResetError:
            if self._protocol.close_rcvd is None:
                raise
            return b""

    def close(self) -> None:
        self._sock.close()
