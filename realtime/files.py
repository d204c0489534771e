"""Files: uploads sealed chunk by chunk as they arrive, and read back one chunk at a time.

Neither way holds a whole file in memory: an upload keeps at most one chunk of plaintext and
one sealed, a download one chunk. A file's content never becomes active in a browser: its
type is kept only when its first bytes agree with it and it is one a browser shows inertly.
"""

from __future__ import annotations

import asyncio
import contextlib
import unicodedata
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from uuid import UUID

from realtime.crypto import Keyring, row_name
from realtime.db import DATABASE_FAULTS, Connection, Database
from realtime.errors import CryptoError, NotFound, TooLarge
from realtime.models import FileInfo, SealedFile, User
from realtime.store import files as file_store

CHUNK_BYTES = 1024 * 1024
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_NAME_CHARS = 255
NEUTRAL_TYPE = "application/octet-stream"
SNIFF_BYTES = 512
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


class Files:
    """Storing and reading files; who may read one is decided by whoever refers to it."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self._db = db
        self._keyring = keyring

    async def upload(
        self, owner: User, name: str, stated_type: str | None, body: AsyncIterable[bytes]
    ) -> FileInfo:
        """Store a file as its body arrives; past MAX_FILE_BYTES stop reading and keep nothing."""
        file_id = uuid.uuid4()
        envelope, key = self._keyring.new_envelope(row_name("files", file_id))
        clean_name = file_name(name)
        async with self._db.connection() as conn:
            await file_store.create_file(
                conn, file_id=file_id, owner_id=owner.id, key=key,
                name=envelope.seal("name", clean_name), content_type=NEUTRAL_TYPE,
            )
        try:
            size, chunks, head = 0, 0, b""
            pending = bytearray()
            async for part in body:
                size += len(part)
                if size > MAX_FILE_BYTES:
                    raise TooLarge(f"a file is at most {MAX_FILE_BYTES} bytes")
                if len(head) < SNIFF_BYTES:
                    head += part[:SNIFF_BYTES - len(head)]
                pending += part
                while len(pending) >= CHUNK_BYTES:
                    with memoryview(pending) as view, view[:CHUNK_BYTES] as chunk:
                        sealed = envelope.seal_chunk(chunks, chunk)
                    pending = pending[CHUNK_BYTES:]  # the full buffer goes before the write
                    await self._put(file_id, chunks, sealed)
                    del sealed
                    chunks += 1
            if pending or not chunks:
                await self._put(file_id, chunks, envelope.seal_chunk(chunks, pending))
                chunks += 1
            content_type = checked_type(stated_type, head)
            async with self._db.connection() as conn:
                await file_store.finish_file(
                    conn, file_id, size=size, chunk_count=chunks, content_type=content_type
                )
        except BaseException:
            with contextlib.suppress(*DATABASE_FAULTS):  # else the hourly purge takes it
                await asyncio.shield(self._discard(file_id))
            raise
        return FileInfo(file_id, clean_name, content_type, size)

    async def _put(self, file_id: UUID, n: int, sealed: bytes) -> None:
        async with self._db.connection() as conn:
            await file_store.put_chunk(conn, file_id, n, sealed)

    async def _discard(self, file_id: UUID) -> None:
        async with self._db.connection() as conn:
            await file_store.delete_file(conn, file_id)

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
        envelope = self._keyring.open_envelope(row_name("files", sealed.id), sealed.key)
        for n in range(sealed.chunk_count):
            async with self._db.connection() as conn:
                data = await file_store.read_chunk(conn, sealed.id, n)
            if data is None:
                raise CryptoError(f"chunk {n} of files/{sealed.id} is missing")
            yield envelope.open_chunk(n, data)


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
