"""The floor of files.py: PostgreSQL's own ingest and read of the same sealed 1 MiB chunks.

From this process (the benchmark's, on uvloop, one asyncpg connection of its own) to the
server's embedded PostgreSQL, into `file_chunks` itself, under `files` rows of its own
(incomplete, so that the server never shows them; deleted after each size). Each file is
sealed beforehand as the server seals an upload (`Envelope.seal_chunk`, 1 MiB chunks): only
PostgreSQL's work and the driver's are timed. Every way is tried on the same number of files
of the same size, the ways taking turns file by file; the floor of a step is its fastest way.

Ingest:
- `copy per file`: one binary `COPY file_chunks FROM STDIN` per file, every chunk a row, each
  chunk handed to the driver whole; one statement, one commit per file.
- `copy per chunk`: one such COPY per chunk (its own commit), each chunk handed whole.
- `copy per chunk, 64 KiB`: what the server does: one COPY per chunk, in 64 KiB pieces.

Read:
- `copy out per file`: `COPY (select data from file_chunks where file_id = ... order by n)
  TO STDOUT (format binary)`, one statement per file, its bytes counted as they come.
- `select per chunk`: what the server does: `select data from file_chunks where file_id = $1
  and n = $2` once per chunk, prepared once, on the same connection.
- `select per file`: `select data ... where file_id = $1 order by n`: every chunk in one answer.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import CpuWindow, Watched

from realtime.crypto import Envelope, row_name
from realtime.files import CHUNK_BYTES
from realtime.store.files import COPY_PIECE_BYTES

MB = 1_000_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_ROW = struct.Struct("!hi16siii")  # 3 fields: file_id (16 bytes), n (4), data (length)
_COPY_TRAILER = struct.pack("!h", -1)
_READ_CHUNK = "select data from file_chunks where file_id = $1 and n = $2"
_READ_FILE = "select data from file_chunks where file_id = $1 order by n"


class FloorError(RuntimeError):
    """PostgreSQL gave back other bytes than it was given: the floor's figures mean nothing."""


@dataclass(frozen=True)
class SealedFile:
    """A file as the server stores it: its id and its sealed chunks."""

    id: uuid.UUID
    size: int  # plaintext bytes, what a rate counts
    chunks: list[bytes]


@dataclass
class Way:
    """One way of moving every file of one size into or out of PostgreSQL, and what it cost."""

    size: int
    step: str  # "upload" or "download"
    way: str
    requests: list[tuple[int, float]]  # (bytes, wall seconds) per file
    cpu: dict[str, float]  # CPU seconds per role ("others": not ours)
    window: float

    @property
    def files(self) -> int:
        return len(self.requests)

    @property
    def moved(self) -> int:
        return sum(moved for moved, _ in self.requests)

    @property
    def mb_per_second(self) -> float:
        """As the server's figure: every byte over the sum of the files' times."""
        busy = sum(seconds for _, seconds in self.requests)
        return self.moved / MB / busy if busy > 0 else float("nan")

    @property
    def rates(self) -> list[float]:
        return sorted(moved / MB / seconds for moved, seconds in self.requests if seconds > 0)


def seal_files(size: int, count: int) -> list[SealedFile]:
    """`count` files of `size` random bytes, each sealed under a key of its own."""
    files = []
    for _ in range(count):
        file_id = uuid.uuid4()
        envelope = Envelope(row_name("files", file_id), AESGCM.generate_key(bit_length=256))
        plain = memoryview(os.urandom(size))
        chunks = [envelope.seal_chunk(n, plain[start:start + CHUNK_BYTES])
                  for n, start in enumerate(range(0, max(size, 1), CHUNK_BYTES))]
        files.append(SealedFile(file_id, size, chunks))
    return files


# --- ingest ------------------------------------------------------------------------------------


async def _copy_rows(file_id: uuid.UUID, chunks: Sequence[tuple[int, bytes]],
                     piece: int | None) -> AsyncIterator[bytes | memoryview]:
    """The binary COPY stream of these chunks: each whole, or in pieces of `piece` bytes."""
    yield _COPY_HEADER
    for n, data in chunks:
        yield _COPY_ROW.pack(3, 16, file_id.bytes, 4, n, len(data))
        if piece is None:
            yield data
        else:
            with memoryview(data) as view:
                for start in range(0, len(data), piece):
                    yield bytes(view[start:start + piece])
    yield _COPY_TRAILER


async def copy_per_file(conn: asyncpg.Connection, file: SealedFile) -> None:
    await conn.copy_to_table("file_chunks", source=_copy_rows(
        file.id, list(enumerate(file.chunks)), None), columns=["file_id", "n", "data"],
        format="binary")


async def _copy_per_chunk(conn: asyncpg.Connection, file: SealedFile, piece: int | None) -> None:
    for n, data in enumerate(file.chunks):
        await conn.copy_to_table("file_chunks", source=_copy_rows(file.id, [(n, data)], piece),
                                 columns=["file_id", "n", "data"], format="binary")


async def copy_per_chunk(conn: asyncpg.Connection, file: SealedFile) -> None:
    await _copy_per_chunk(conn, file, None)


async def copy_per_chunk_in_pieces(conn: asyncpg.Connection, file: SealedFile) -> None:
    await _copy_per_chunk(conn, file, COPY_PIECE_BYTES)


# --- read --------------------------------------------------------------------------------------


async def copy_out_per_file(conn: asyncpg.Connection, file: SealedFile) -> None:
    received = 0

    async def count(data: bytes) -> None:
        nonlocal received
        received += len(data)

    # A UUID's text is safe in a literal; a parameter would cost asyncpg a round trip more.
    query = f"select data from file_chunks where file_id = '{file.id}' order by n"  # noqa: S608
    await conn.copy_from_query(query, output=count, format="binary")
    sealed = sum(len(chunk) for chunk in file.chunks)
    if received < sealed:
        raise FloorError(f"COPY gave {received:,} bytes of file {file.id}, {sealed:,} stored")


async def select_per_chunk(conn: asyncpg.Connection, file: SealedFile) -> None:
    statement = await conn.prepare(_READ_CHUNK)  # asyncpg's cache: prepared once per connection
    for n, chunk in enumerate(file.chunks):
        data = await statement.fetchval(file.id, n)
        if data is None or len(data) != len(chunk):
            raise FloorError(f"chunk {n} of file {file.id} came back unlike it went in")


async def select_per_file(conn: asyncpg.Connection, file: SealedFile) -> None:
    rows = await conn.fetch(_READ_FILE, file.id)
    if [len(row[0]) for row in rows] != [len(chunk) for chunk in file.chunks]:
        raise FloorError(f"file {file.id} came back unlike it went in")


Move = Callable[[asyncpg.Connection, SealedFile], Awaitable[None]]
INGEST: dict[str, Move] = {
    "copy per file": copy_per_file,
    "copy per chunk": copy_per_chunk,
    "copy per chunk, 64 KiB": copy_per_chunk_in_pieces,
}
READ: dict[str, Move] = {
    "copy out per file": copy_out_per_file,
    "select per chunk": select_per_chunk,
    "select per file": select_per_file,
}


# --- one size ----------------------------------------------------------------------------------


async def _add_files(conn: asyncpg.Connection, owner_id: uuid.UUID,
                     files: Sequence[SealedFile]) -> None:
    """Their `files` rows: incomplete, so that no request of the server's can see them."""
    await conn.executemany(
        """insert into files (id, owner_id, key_id, wrapped_key, name, content_type)
           values ($1, $2, 'bench-floor', ''::bytea, ''::bytea, 'application/octet-stream')""",
        [(file.id, owner_id) for file in files])


class _Tally:
    """One way's files as they are timed, each in a CPU window of its own."""

    def __init__(self, size: int, step: str, way: str, move: Move) -> None:
        self.way = Way(size, step, way, [], {}, 0.0)
        self._move = move

    async def time(self, conn: asyncpg.Connection, file: SealedFile,
                   watched: Sequence[Watched]) -> None:
        window = CpuWindow(watched)
        started = time.perf_counter()
        await self._move(conn, file)
        self.way.requests.append((file.size, time.perf_counter() - started))
        cpu = window.stop()
        for role, seconds in dict(cpu.seconds, others=cpu.others()).items():
            self.way.cpu[role] = self.way.cpu.get(role, 0.0) + seconds
        self.way.window += cpu.wall


async def _interleaved(conn: asyncpg.Connection, tallies: Sequence[_Tally],
                       files: Sequence[Sequence[SealedFile]], watched: Sequence[Watched]) -> None:
    """File i of every way, then file i + 1 of every way, each round starting one way later:
    whatever drifts meanwhile (a checkpoint, other work on the machine) falls on all alike."""
    for i in range(len(files[0])):
        for k in range(len(tallies)):
            turn = (i + k) % len(tallies)
            await tallies[turn].time(conn, files[turn][i], watched)


async def measure_floor(database_url: str, owner_id: uuid.UUID, watched: Sequence[Watched],
                        size: int, count: int, warmup: int) -> list[Way]:
    """Every way of ingest, then every way of reading, of `count` sealed files of `size`, the
    ways taking turns file by file.

    `warmup` files per way go first, not counted. Each ingest way writes files of its own; the
    reads read those of the first way. Every file of the floor is deleted at the end.
    """
    conn = await asyncpg.connect(database_url)
    written: list[SealedFile] = []
    try:
        batches = [seal_files(size, warmup + count) for _ in INGEST]
        for batch in batches:
            await _add_files(conn, owner_id, batch)
            written.extend(batch)
        for move, batch in zip(INGEST.values(), batches, strict=True):
            for file in batch[:warmup]:
                await move(conn, file)
        ingest = [_Tally(size, "upload", way, move) for way, move in INGEST.items()]
        await _interleaved(conn, ingest, [batch[warmup:] for batch in batches], watched)
        for move in READ.values():
            for file in batches[0][:warmup]:
                await move(conn, file)
        read = [_Tally(size, "download", way, move) for way, move in READ.items()]
        await _interleaved(conn, read, [batches[0][warmup:]] * len(read), watched)
        return [tally.way for tally in [*ingest, *read]]
    finally:
        if written and not conn.is_closed():
            await conn.execute("delete from files where id = any($1::uuid[])",
                               [file.id for file in written])
        await conn.close()


def fastest(ways: Sequence[Way], size: int, step: str) -> Way | None:
    """The floor of a step: its fastest way at this size."""
    candidates = [w for w in ways if w.size == size and w.step == step]
    return max(candidates, key=lambda w: w.mb_per_second, default=None)


def way_json(way: Way) -> dict[str, Any]:
    return {"size": way.size, "step": way.step, "way": way.way, "files": way.files,
            "moved": way.moved, "mb_per_second": way.mb_per_second, "rates": way.rates,
            "requests": way.requests, "cpu": way.cpu, "window": way.window}
