"""The upload budgets on a live server with small limits: bytes kept per user, bytes uploading
at once, and hostile bodies (lying lengths, slow bodies, aborts) that keep nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.config import Settings
from realtime.expiry import purge_once
from realtime.files import MAX_FILE_BYTES
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import assert_error
from tests.timing import eventually

MIB = 1024 * 1024
STORED = 3 * MIB
IN_FLIGHT = MAX_FILE_BYTES + MIB
IDLE = 1.0


@pytest.fixture(scope="module")
def node(settings: Settings) -> Iterator[LiveServer]:
    small = dataclasses.replace(
        settings, stored_bytes_per_user=STORED, upload_bytes_in_flight=IN_FLIGHT,
        upload_idle_timeout=timedelta(seconds=IDLE),
    )
    with live_server(small) as server:
        yield server


async def kept(raw_db: asyncpg.Connection, member: Any) -> tuple[int, int, int]:
    """The member's files, their chunks, and their uploads in flight."""
    row = await raw_db.fetchrow(
        """select (select count(*) from files where owner_id = $1::uuid) as files,
                  (select count(*) from file_chunks c join files f on f.id = c.file_id
                   where f.owner_id = $1::uuid) as chunks,
                  (select count(*) from upload_reservations where user_id = $1::uuid) as held""",
        member.id,
    )
    return int(row["files"]), int(row["chunks"]), int(row["held"])


async def upload(member: Any, content: Any, **headers: str) -> Any:
    return await member.http.post(
        "/api/uploads", params={"name": "data.bin"}, content=content,
        headers={"Content-Type": "application/octet-stream", **headers},
    )


class RawUpload:
    """An upload over a bare socket: the test says what the body does, byte by byte."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, chunked: bool
    ) -> None:
        self.reader, self.writer, self.chunked = reader, writer, chunked

    async def send(self, data: bytes) -> None:
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, Any]:
        """The status and body of the server's answer (JSON when it is)."""
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, json.loads(body) if body.startswith(b"{") else body


@contextlib.asynccontextmanager
async def raw_upload(
    node: LiveServer, member: Any, length: int | None
) -> AsyncIterator[RawUpload]:
    """Open an upload declaring `length` bytes (None: chunked, no length); the socket is
    closed at the end."""
    url = urlsplit(node.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"POST /api/uploads?name=raw.bin HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {member.token}\r\nContent-Type: application/octet-stream\r\n"
        + ("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
        + "\r\n\r\n"
    )
    writer.write(head.encode())
    try:
        yield RawUpload(reader, writer, chunked=length is None)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def nothing_kept(raw_db: asyncpg.Connection, member: Any) -> None:
    """Wait until the member keeps no file, no chunk and no upload in flight."""
    async def clean() -> bool:
        return await kept(raw_db, member) == (0, 0, 0)
    await eventually(clean, "nothing kept of the upload")


async def test_stored_bytes_up_to_the_limit_then_413_naming_it(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A user keeps files up to the stored bytes limit; one byte more is 413 naming the limit,
    declared or streamed, and keeps nothing; another user still uploads."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    assert (await upload(alice, os.urandom(STORED - 1000))).status_code == 201
    assert (await upload(alice, os.urandom(1000))).status_code == 201
    error = assert_error(await upload(alice, b"x"), 413, "too_large")
    assert "stored bytes" in error["message"] and str(STORED) in error["message"]

    async def one_byte() -> AsyncIterator[bytes]:
        yield b"x"

    assert_error(await upload(alice, one_byte()), 413, "too_large")
    assert await kept(raw_db, alice) == (2, 4, 0)  # 3 MiB in 3 chunks, and 1,000 bytes
    assert (await upload(bob, os.urandom(STORED))).status_code == 201


async def trickle(upload: RawUpload, stop: asyncio.Event) -> None:
    """Keep an upload alive with a byte now and then, until told to stop."""
    while not stop.is_set():
        await upload.send(b"x")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), IDLE / 4)


async def test_bytes_in_flight_up_to_the_limit_then_429_and_an_abort_frees_them_at_once(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """While one upload without a length holds 25 MiB in flight, another of 1 MiB fits the
    limit exactly and one of a byte more is 429 with Retry-After; another user still uploads.
    Aborting the first keeps nothing of it and frees its bytes at once."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    stop = asyncio.Event()
    async with raw_upload(node, alice, None) as held:
        keeper = asyncio.create_task(trickle(held, stop))

        async def holding() -> bool:
            return (await kept(raw_db, alice))[2] == 1
        await eventually(holding, "the first upload holds its bytes")
        room = IN_FLIGHT - MAX_FILE_BYTES
        assert (await upload(alice, os.urandom(room))).status_code == 201
        refused = await upload(alice, os.urandom(room + 1))
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert (await upload(bob, b"x")).status_code == 201
        stop.set()
        await keeper
    async def freed() -> bool:
        return await kept(raw_db, alice) == (1, 1, 0)
    await eventually(freed, "the aborted upload is gone with its reservation")
    assert (await upload(alice, os.urandom(room + 1))).status_code == 201


async def test_an_upload_aborted_after_a_chunk_keeps_nothing(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A client that disconnects after sending a chunk and a half leaves no file, no chunk
    and no bytes in flight."""
    alice = await make_user(on=node)
    async with raw_upload(node, alice, 2 * MIB) as cut:
        await cut.send(os.urandom(MIB + MIB // 2))

        async def chunk_stored() -> bool:
            return (await kept(raw_db, alice))[1] >= 1
        await eventually(chunk_stored, "a chunk is stored")
    await nothing_kept(raw_db, alice)


async def test_a_body_shorter_than_its_length_keeps_nothing(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A body that ends (the client stops writing) before its Content-Length keeps nothing."""
    alice = await make_user(on=node)
    async with raw_upload(node, alice, 1000) as short:
        await short.send(b"x" * 500)
        short.writer.write_eof()
        await nothing_kept(raw_db, alice)


async def test_a_body_longer_than_its_length_keeps_nothing(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A body that runs on past its Content-Length is answered 400 and keeps nothing."""
    alice = await make_user(on=node)
    async with raw_upload(node, alice, 500) as long:
        await long.send(b"x" * 1000)
        status, _ = await long.answer()
    assert status == 400
    await nothing_kept(raw_db, alice)


async def test_a_body_that_stalls_is_abandoned_with_400_and_keeps_nothing(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A body that sends nothing for the idle timeout is answered 400 naming `body`, and
    nothing of it is kept; the user uploads again at once."""
    alice = await make_user(on=node)
    async with raw_upload(node, alice, 1000) as slow:
        await slow.send(b"x" * 500)
        status, body = await asyncio.wait_for(slow.answer(), 10 * IDLE)
    assert (status, body["error"]["code"]) == (400, "invalid")
    assert "body" in body["error"]["fields"]
    await nothing_kept(raw_db, alice)
    assert (await upload(alice, b"x")).status_code == 201


async def test_simultaneous_uploads_cannot_pass_the_stored_limit_together(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Two uploads that each fit the stored bytes limit but not together, sent at once: one is
    kept and the other is 413, keeping nothing."""
    alice = await make_user(on=node)
    answers = await asyncio.gather(*(upload(alice, os.urandom(STORED // 2 + 1)) for _ in "ab"))
    assert sorted(a.status_code for a in answers) == [201, 413]
    assert await kept(raw_db, alice) == (1, 2, 0)


async def test_the_bytes_of_a_node_that_died_mid_upload_are_freed_when_its_lease_ends(
    node: LiveServer, make_user: MakeUser, services: Services, raw_db: asyncpg.Connection
) -> None:
    """An upload in flight left behind by a dead node holds the user's bytes until its lease
    ends; then they are free again, and the hourly purge forgets it."""
    alice = await make_user(on=node)
    await raw_db.execute(
        """insert into upload_reservations (id, user_id, bytes, expires_at)
           values (gen_random_uuid(), $1::uuid, $2, now() + interval '1 minute')""",
        alice.id, IN_FLIGHT,
    )
    assert_error(await upload(alice, b"x"), 429, "rate_limited")
    await raw_db.execute(
        "update upload_reservations set expires_at = now() - interval '1 second'"
    )
    assert (await upload(alice, b"x")).status_code == 201
    await raw_db.execute(
        """insert into upload_reservations (id, user_id, bytes, expires_at)
           values (gen_random_uuid(), $1::uuid, 1, now() - interval '1 second')""",
        alice.id,
    )
    assert (await purge_once(services.db, services.settings)).upload_reservations == 1
    assert await kept(raw_db, alice) == (1, 1, 0)
