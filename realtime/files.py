"""Files: uploads sealed chunk by chunk as they arrive, and read back one chunk at a time.

Neither way holds a whole file in memory: an upload keeps at most one chunk of plaintext and
one sealed, a download two chunks (the one being sent, and the next one read meanwhile). A
file's content never becomes active in a browser: its type is kept only when its first bytes
agree with it and it is one a browser shows inertly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import unicodedata
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from realtime.budgets import Budgets
from realtime.crypto import Envelope, Keyring, row_name
from realtime.db import DATABASE_FAULTS, Connection, Database
from realtime.errors import CryptoError, InvalidInput, NotFound, RateLimited, TooLarge
from realtime.models import LARGEST_FILE_MB, MIB, FileInfo, SealedFile, User
from realtime.store import budgets as budget_store
from realtime.store import files as file_store
from realtime.store import uploads as upload_store
from realtime.turns import Turns

CHUNK_BYTES = 1024 * 1024
MAX_FILE_BYTES = LARGEST_FILE_MB * MIB  # the largest the organisation may allow
# Chunks one user's uploads write at once on a node, and how long a chunk waits for its turn.
CHUNK_WRITERS_PER_USER = 2
CHUNK_WRITER_WAIT = 30.0
MAX_NAME_CHARS = 255
NEUTRAL_TYPE = "application/octet-stream"
SNIFF_BYTES = 512
# An upload holds its bytes in flight for this long after it last showed progress (a node that
# dies mid-upload frees them then); a refused upload is told to try again after a few seconds.
RESERVATION_LEASE = timedelta(minutes=5)
RETRY_UPLOAD_SECONDS = 5
# Types kept when the file's first bytes agree: none of them runs script in a browser.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "application/zip": (b"PK\x03\x04", b"PK\x05\x06"),
}


@dataclass(frozen=True)
class Download:
    """A file ready to be streamed: what it is, and its bytes chunk by chunk."""

    info: FileInfo
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class UploadLimits:
    """One user's upload budgets: bytes being uploaded at once and bytes uploaded a minute (on
    every node together), bytes of the files they keep, and how long a body may go without
    sending anything."""

    in_flight_bytes: int = 100 * 1024 * 1024
    stored_bytes: int = 1024 * 1024 * 1024
    idle_timeout: float = 30.0
    bytes_per_minute: int = 256 * 1024 * 1024


class Files:
    """Storing and reading files; who may read one is decided by whoever refers to it."""

    def __init__(
        self, db: Database, keyring: Keyring, limits: UploadLimits = UploadLimits()
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._limits = limits
        self._budgets = Budgets(db)
        # One user's uploads write a few chunks at once, so that they never take the pool.
        self._chunk_writers = Turns(CHUNK_WRITERS_PER_USER, CHUNK_WRITER_WAIT)

    async def upload(
        self, owner: User, name: str, stated_type: str | None, body: AsyncIterable[bytes],
        *, declared: int | None = None, left: Callable[[], Awaitable[bool]] | None = None,
    ) -> FileInfo:
        """Store a file as its body arrives, within the owner's budgets; a body past the
        largest file the organisation allows (at most MAX_FILE_BYTES), shorter or longer than
        `declared`, silent for too long or cut off keeps nothing, and its reservation of the
        bytes in flight goes at once. `left` tells whether the client went away (bytes past its
        length end the connection): asked once the body is stored, before the file is kept."""
        largest = owner.organisation.max_file_bytes
        if declared is not None and declared > largest:
            raise too_large_file(largest)
        async with self._db.connection() as conn:
            stored = await file_store.stored_bytes(conn, owner.id)
        if stored + (declared or 0) > self._limits.stored_bytes:
            raise over_stored(self._limits.stored_bytes)
        await self._budgets.spend(
            f"upload-bytes:{owner.id}", per_minute=self._limits.bytes_per_minute,
            units=largest if declared is None else declared, what="bytes uploaded",
        )
        reservation = await self._reserve(owner, largest if declared is None else declared)
        try:
            upload = _Upload(
                self._db, self._keyring, self._limits, self._chunk_writers, owner=owner,
                reservation=reservation,
                stated_type=stated_type, declared=declared, stored=stored, left=left,
            )
            return await upload.store(file_name(name), _paced(body, self._limits.idle_timeout))
        finally:
            with contextlib.suppress(*DATABASE_FAULTS):  # else its lease runs out by itself
                await asyncio.shield(self._release(reservation))

    async def _reserve(self, owner: User, size: int) -> UUID:
        """Hold `size` bytes of the owner's uploads in flight; RateLimited past the budget."""
        reservation = uuid.uuid4()
        async with self._db.transaction() as conn:
            await budget_store.lock_owner(conn, "uploads", owner.id)
            held = await upload_store.reserved_bytes(conn, owner.id)
            if held + size > self._limits.in_flight_bytes:
                raise RateLimited(
                    RETRY_UPLOAD_SECONDS,
                    f"too many bytes uploading at once: at most {self._limits.in_flight_bytes}"
                    " bytes (the uploads in flight limit)",
                )
            await upload_store.reserve(conn, reservation, owner.id, size, RESERVATION_LEASE)
        return reservation

    async def _release(self, reservation: UUID) -> None:
        async with self._db.connection() as conn:
            await upload_store.release(conn, reservation)

    async def own_upload(self, conn: Connection, owner: User, upload_id: UUID) -> SealedFile:
        """An upload of this user's, to attach, read on the caller's connection; anyone else's
        is not found."""
        found = await file_store.get_file(conn, upload_id, owner_id=owner.id)
        if found is None:
            raise NotFound("the upload was not found")
        return found

    def describe(self, sealed: SealedFile) -> FileInfo:
        envelope = self._keyring.open_envelope(row_name("files", sealed.id), sealed.key)
        name = envelope.open_text("name", sealed.name)
        return FileInfo(sealed.id, name, sealed.content_type, sealed.size)

    async def download(self, file_id: UUID) -> Download:
        """The file's description and its bytes, read and opened one chunk at a time."""
        async with self._db.connection() as conn:
            sealed = await file_store.get_file(conn, file_id)
        if sealed is None:
            raise NotFound("not found")
        return Download(self.describe(sealed), self._chunks(sealed))

    async def _chunks(self, sealed: SealedFile) -> AsyncIterator[bytes]:
        """The file's chunks opened in order, each next one read from the database while the
        one before is being sent."""
        envelope = self._keyring.open_envelope(row_name("files", sealed.id), sealed.key)
        if not sealed.chunk_count:
            return
        reading = self._read_chunk(sealed.id, 0)
        try:
            for n in range(sealed.chunk_count):
                data = await reading
                if n + 1 < sealed.chunk_count:
                    reading = self._read_chunk(sealed.id, n + 1)
                if data is None:
                    raise CryptoError(f"chunk {n} of files/{sealed.id} is missing")
                yield envelope.open_chunk(n, data)
        finally:
            reading.cancel()  # the download stopped early: its read-ahead with it

    def _read_chunk(self, file_id: UUID, n: int) -> asyncio.Task[bytes | None]:
        """Start reading the sealed chunk; a fault nobody waits for any more is dropped."""
        async def read() -> bytes | None:
            async with self._db.connection() as conn:
                return await file_store.read_chunk(conn, file_id, n)

        task = asyncio.get_running_loop().create_task(read())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task


class _Upload:
    """One upload: its body sealed chunk by chunk as it arrives, at most one chunk held."""

    def __init__(
        self, db: Database, keyring: Keyring, limits: UploadLimits, writers: Turns, *,
        owner: User, reservation: UUID, stated_type: str | None, declared: int | None, stored: int,
        left: Callable[[], Awaitable[bool]] | None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._limits = limits
        self._writers = writers
        self._owner = owner
        self._reservation = reservation
        self._stated_type = stated_type
        self._declared = declared
        self._room = limits.stored_bytes - stored  # of the owner's stored bytes
        self._left = left
        self._extended = time.monotonic()
        self.file_id = uuid.uuid4()

    async def store(self, name: str, body: AsyncIterable[bytes]) -> FileInfo:
        envelope, key = self._keyring.new_envelope(row_name("files", self.file_id))
        async with self._db.connection() as conn:
            await file_store.create_file(
                conn, file_id=self.file_id, owner_id=self._owner.id, key=key,
                name=envelope.seal("name", name), content_type=NEUTRAL_TYPE,
            )
        try:
            size, chunks, head = await self._receive(envelope, body)
            if self._declared is not None and size != self._declared:
                raise InvalidInput(
                    "the body is not as long as its Content-Length", {"body": "cut short"}
                )
            if self._left is not None and await self._left():
                raise InvalidInput("the client went away before the upload ended")
            content_type = checked_type(self._stated_type, head)
            await self._finish(size=size, chunk_count=chunks, content_type=content_type)
        except BaseException:
            with contextlib.suppress(*DATABASE_FAULTS):  # else the hourly purge takes it
                await asyncio.shield(self._discard())
            raise
        return FileInfo(self.file_id, name, content_type, size)

    async def _receive(
        self, envelope: Envelope, body: AsyncIterable[bytes]
    ) -> tuple[int, int, bytes]:
        """Seal and store the body; return its size, its number of chunks and its head."""
        size, chunks, head = 0, 0, b""
        pending = bytearray()
        async for part in body:
            size += len(part)
            await self._check(size)
            if len(head) < SNIFF_BYTES:
                head += part[:SNIFF_BYTES - len(head)]
            pending += part
            while len(pending) >= CHUNK_BYTES:
                with memoryview(pending) as view, view[:CHUNK_BYTES] as chunk:
                    sealed = envelope.seal_chunk(chunks, chunk)
                pending = pending[CHUNK_BYTES:]  # the full buffer goes before the write
                await self._put(chunks, sealed)
                del sealed
                chunks += 1
        if pending or not chunks:
            await self._put(chunks, envelope.seal_chunk(chunks, pending))
            chunks += 1
        return size, chunks, head

    async def _check(self, size: int) -> None:
        """Refuse a body past its limits as soon as it passes them; keep the reservation alive."""
        if size > self._owner.organisation.max_file_bytes:
            raise too_large_file(self._owner.organisation.max_file_bytes)
        if self._declared is not None and size > self._declared:
            raise InvalidInput("the body is longer than its Content-Length", {"body": "too long"})
        if size > self._room:
            raise over_stored(self._limits.stored_bytes)
        if time.monotonic() - self._extended > RESERVATION_LEASE.total_seconds() / 5:
            self._extended = time.monotonic()
            async with self._db.connection() as conn:
                await upload_store.extend(conn, self._reservation, RESERVATION_LEASE)

    async def _put(self, n: int, sealed: bytes) -> None:
        async with self._writers.turn(self._owner.id), self._db.connection() as conn:
            await file_store.put_chunk(conn, self.file_id, n, sealed)

    async def _discard(self) -> None:
        async with self._db.connection() as conn:
            await file_store.delete_file(conn, self.file_id)

    async def _finish(self, *, size: int, chunk_count: int, content_type: str) -> None:
        """Mark the file complete if the owner's stored bytes stay within the budget, checked
        under their lock so that simultaneous uploads cannot pass it together."""
        limit = self._limits.stored_bytes
        async with self._db.transaction() as conn:
            await budget_store.lock_owner(conn, "stored", self._owner.id)
            if await file_store.stored_bytes(conn, self._owner.id) + size > limit:
                raise over_stored(limit)
            await file_store.finish_file(
                conn, self.file_id, size=size, chunk_count=chunk_count, content_type=content_type
            )


def too_large_file(largest: int) -> TooLarge:
    """The refusal of a file past the largest allowed (the organisation's setting, at most
    MAX_FILE_BYTES)."""
    return TooLarge(f"a file is at most {largest} bytes")


def over_stored(limit: int) -> TooLarge:
    return TooLarge(
        f"over the stored bytes limit: the files one user keeps hold at most {limit} bytes"
    )


async def _paced(body: AsyncIterable[bytes], idle_timeout: float) -> AsyncIterator[bytes]:
    """The body's parts; InvalidInput when none comes for `idle_timeout` seconds."""
    parts = aiter(body)
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                part = await anext(parts)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise InvalidInput(
                f"the body sent nothing for {idle_timeout:g} s: the upload is abandoned",
                {"body": "too slow"},
            ) from None
        yield part


def file_name(raw: str) -> str:
    """A name safe to store and to send back in a header: no directories, no control or
    format characters, no leading dots, at most MAX_NAME_CHARS characters (the extension kept)."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        ch for ch in unicodedata.normalize("NFC", base)
        if unicodedata.category(ch)[0] != "C" and ch != "\ufffd"
    )
    kept = " ".join(kept.split()).lstrip(".").strip()
    if len(kept) > MAX_NAME_CHARS:
        stem, dot, extension = kept.rpartition(".")
        if dot and stem and len(extension) <= 16:
            kept = stem[:MAX_NAME_CHARS - len(extension) - 1] + "." + extension
        else:
            kept = kept[:MAX_NAME_CHARS]
    return kept or "file"


def checked_type(stated: str | None, head: bytes) -> str:
    """The stated type when the first bytes bear it out and it is inert in a browser; else the
    neutral one."""
    media_type = (stated or "").split(";")[0].strip().lower()
    if media_type == "text/plain":
        try:
            head.decode()
        except UnicodeDecodeError as exc:  # a character cut at the end of the sample is fine
            if exc.start < len(head) - 3:
                return NEUTRAL_TYPE
        return media_type if b"\x00" not in head else NEUTRAL_TYPE
    signatures = _SIGNATURES.get(media_type, ())
    return media_type if any(head.startswith(s) for s in signatures) else NEUTRAL_TYPE
