"""One websocket per user, kept open like a client keeps it: reconnecting, resuming by seq."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from realtime import codec
from realtime.errors import InvalidInput
from realtime.loadtest.ledger import Ledger
from realtime.loadtest.sequence import SeqTracker

OPEN_TIMEOUT = 10.0
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0
# Failures of a handshake or a connection that a client meets and reconnects after.
CONNECT_ERRORS = (
    OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI, InvalidInput, ConnectionClosed,
)

# The send number of a frame's message, or None for a message of no send of this run.
SendNumber = Callable[[dict[str, object]], int | None]


class NotHello(InvalidHandshake):
    """The first frame was not the contract's `hello`."""


class Listener:
    """The socket of one user: counts each `message.new` of the run into the ledger.

    When the server closes it (1001 at a node's shutdown, 1013 for a slow reader) or the link
    breaks, it reconnects (to the next URL, so to another node where there are several) and
    sends `resume` with the last seq it has without gaps, as every client must.
    """

    def __init__(
        self, *, index: int, token: str, urls: Callable[[int], str], ledger: Ledger,
        send_number: SendNumber,
    ) -> None:
        self.index = index
        self._token = token
        self._urls = urls
        self._attempt = index  # which URL the next connection goes to
        self._ledger = ledger
        self._send_number = send_number
        self._seqs = SeqTracker()
        self._hello_seq = 0
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> bool:
        """Connect and wait for `hello`; False (the reason counted) when that fails."""
        try:
            self._socket = await self._connect()
        except CONNECT_ERRORS as exc:
            self._ledger.connections_failed += 1
            self._ledger.connect_errors[_reason(exc)] += 1
            return False
        self._ledger.connections_opened += 1
        self._task = asyncio.create_task(self._run(), name=f"listener-{self.index}")
        return True

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            with contextlib.suppress(*CONNECT_ERRORS):
                await asyncio.wait_for(self._socket.close(), OPEN_TIMEOUT)

    async def _connect(self) -> ClientConnection:
        url = self._urls(self._attempt)
        self._attempt += 1
        socket = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {self._token}"},
            compression=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,  # the server pings; its pings are answered all the same
            max_size=1024 * 1024,
        )
        try:
            hello = codec.decode(await asyncio.wait_for(socket.recv(), OPEN_TIMEOUT))
            seq = hello.get("seq") if isinstance(hello, dict) else None
            if not isinstance(seq, int) or hello.get("type") != "hello":
                raise NotHello("the first frame was not hello")
            after = self._seqs.hello(seq)
            if after is not None:
                await socket.send(codec.encode({"type": "resume", "after_seq": after}).decode())
        except BaseException:
            await socket.close()
            raise
        self._hello_seq = seq
        self._ledger.sockets_open += 1
        return socket

    async def _run(self) -> None:
        while not self._closing:
            assert self._socket is not None
            try:
                async for text in self._socket:
                    self._receive(text, time.monotonic())
            except ConnectionClosed:
                pass
            finally:
                self._ledger.sockets_open -= 1
            if not self._closing:
                await self._reconnect()

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closing:
            try:
                self._socket = await self._connect()
            except CONNECT_ERRORS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self._ledger.reconnects += 1
            return

    def _receive(self, text: str | bytes, at: float) -> None:
        try:
            frame = codec.decode(text)
        except InvalidInput:
            return
        if not isinstance(frame, dict):
            return
        kind, seq = frame.get("type"), frame.get("seq")
        if kind == "resumed" and isinstance(seq, int):
            self._seqs.resumed(seq)
        elif kind == "resync":
            self._ledger.resyncs += 1  # what was not replayed counts as lost
            self._seqs.resumed(self._hello_seq)
        elif isinstance(seq, int) and self._seqs.receive(seq) and kind == "message.new":
            message = frame.get("message")
            number = self._send_number(message) if isinstance(message, dict) else None
            if number is not None:
                self._ledger.arrive(self.index, number, at)


def _reason(error: BaseException) -> str:
    """A short name for why a socket did not open."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__
