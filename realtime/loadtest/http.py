"""The deployment's HTTP API as the load tester calls it: answers as JSON, over keep-alive
HTTP/1.1 connections of its own.

The tester's CPU is what bounds the load one process makes, so requests are written by hand and
answers parsed by httptools (llhttp, the C parser uvicorn serves with): a general client such
as httpx spent most of the tester's CPU per send in its own layers.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from realtime import codec
from realtime.errors import InvalidInput
from realtime.loadtest.options import LoadTestError

CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 30.0  # from the request written to the last byte of its answer
RATE_LIMIT_RETRIES = 20


class TransportError(Exception):
    """A request got no answer: the connection failed, closed, or timed out. Its text is the
    kind of failure, as the report counts them."""


class ConnectionClosed(TransportError):
    """The connection closed before the whole answer came."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded JSON, or None
    retry_after: float | None = None  # from a 429's Retry-After

    @property
    def problem(self) -> str:
        """The contract's error message, or the status alone."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            error = self.body["error"]
            fields = error.get("fields") or {}
            detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
            return f"{self.status} {error.get('message', '')}" + (f" ({detail})" if detail else "")
        return str(self.status)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, bytes, bytes | None]] | None = None
        self._body: list[bytes] = []
        self._retry_after: bytes | None = None
        self.heard = False  # whether any byte of the current answer came
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.reusable = True

    def data_received(self, data: bytes) -> None:
        self.heard = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(TransportError("BadAnswer"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionClosed("ConnectionClosed"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.reusable and self._parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(
                (self._parser.get_status_code(), b"".join(self._body), self._retry_after)
            )

    # the client's side
    async def exchange(self, request: bytes) -> tuple[int, bytes, bytes | None]:
        """Write `request` and wait for its whole answer: (status, body, Retry-After)."""
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._body, self._retry_after, self.heard = [], None, False
        self._transport.write(request)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await self._answer
        except TimeoutError:
            self.close()
            raise TransportError("ReadTimeout") from None
        finally:
            self._answer = None

    def _fail(self, error: TransportError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class _Node:
    """Up to `size` keep-alive connections to one URL, reused most recent first."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._port = parts.port or (443 if self._ssl else 80)
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc.encode()
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[_Connection] = deque()

    def request_bytes(
        self, method: str, path: str, token: str | None, body: bytes | None
    ) -> bytes:
        head = [f"{method} {self._prefix}{path} HTTP/1.1".encode(), b"Host: " + self._host_header]
        if token:
            head.append(b"Authorization: Bearer " + token.encode())
        if body is not None:
            head.append(b"Content-Type: application/json")
            head.append(b"Content-Length: %d" % len(body))
        elif method not in ("GET", "HEAD"):
            head.append(b"Content-Length: 0")
        return b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")

    async def exchange(self, request: bytes) -> tuple[int, bytes, bytes | None]:
        async with self._slots:
            while self._idle:
                connection = self._idle.pop()
                if not connection.reusable:
                    continue
                try:
                    return await self._over(connection, request)
                except ConnectionClosed:
                    if connection.heard:
                        raise
                    # Closed by the server while idle, as the request went out: it never read
                    # the request, so a new connection asks again.
            return await self._over(await self._connect(), request)

    async def _over(
        self, connection: _Connection, request: bytes
    ) -> tuple[int, bytes, bytes | None]:
        try:
            answer = await connection.exchange(request)
        except BaseException:
            connection.close()
            raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                )
        except TimeoutError:
            raise TransportError("ConnectTimeout") from None
        except OSError as error:
            raise TransportError(f"ConnectError: {error.strerror or error}") from None
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Deployment:
    """Keep-alive connections to every URL of the deployment; `node` picks one by a number,
    round-robin. Each URL has up to `connections` at once."""

    def __init__(self, urls: tuple[str, ...], *, connections: int) -> None:
        self.urls = tuple(url.rstrip("/") for url in urls)
        self._nodes = [_Node(url, connections) for url in self.urls]

    async def __aenter__(self) -> Deployment:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for node in self._nodes:
            node.close()

    def websocket_url(self, node: int) -> str:
        url = self.urls[node % len(self.urls)]
        scheme, rest = url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    async def call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None,
        node: int = 0,
    ) -> Answer:
        """One request; a request that got no answer raises `TransportError`."""
        target = self._nodes[node % len(self._nodes)]
        body = codec.encode(json) if json is not None else None
        status, content, retry_after = await target.exchange(
            target.request_bytes(method, path, token, body)
        )
        try:
            decoded = codec.decode(content) if content else None
        except InvalidInput:  # not JSON: a proxy's page, say
            decoded = None
        return Answer(status, decoded, _seconds(retry_after))

    async def setup_call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None,
        expect: int = 200, fields: tuple[str, ...] = (),
    ) -> Any:
        """A call of the set-up: waits out 429s, and stops the test on any other failure or an
        answer without the JSON `fields` it must have."""
        for _ in range(RATE_LIMIT_RETRIES):
            try:
                answer = await self.call(method, path, token=token, json=json)
            except TransportError as exc:
                raise LoadTestError(f"{method} {self.urls[0]}{path}: {exc}") from None
            if answer.status != 429:
                break
            await asyncio.sleep(min(max(answer.retry_after or 1.0, 0.1), 10.0))
        if answer.status != expect:
            raise LoadTestError(f"{method} {path} answered {answer.problem}")
        if fields and not (isinstance(answer.body, dict) and set(fields) <= answer.body.keys()):
            raise LoadTestError(
                f"{method} {path} answered without {', '.join(fields)}: is {self.urls[0]} a "
                "realtime server?"
            )
        return answer.body


def _seconds(header: bytes | None) -> float | None:
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None
