"""Uploads on the real database: 25 MiB files streamed in and out, the limit, memory, hostile
names, types checked against content, and nothing left once unattached or expired."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator

import asyncpg

from realtime.api.http import Services
from realtime.expiry import purge_once
from realtime.files import CHUNK_BYTES, MAX_FILE_BYTES
from tests.conftest import LoggedInUser, MakeUser
from tests.live_server import LiveServer
from tests.messages_support import assert_error, send_ok
from tests.test_expiry import in_seconds
from tests.timing import eventually
from tests.vault_support import new_entry, stored_files, upload

PIECE = 64 * 1024


async def pieces(total: int, piece: bytes) -> AsyncIterator[bytes]:
    """`total` bytes as a stream of one reused piece: the client holds no copy of the file."""
    sent = 0
    while sent < total:
        chunk = piece[: total - sent]
        sent += len(chunk)
        yield chunk


async def post_upload(person: LoggedInUser, content: object, **headers: str) -> tuple[int, dict]:
    answer = await person.http.post(
        "/api/uploads", params={"name": "big.bin"}, content=content,  # type: ignore[arg-type]
        headers={"Content-Type": "application/octet-stream", **headers},
    )
    return answer.status_code, answer.json()


async def test_a_25_mib_file_round_trips_byte_for_byte(make_user: MakeUser) -> None:
    """The largest file allowed goes up, into a message, and down to its recipient unchanged."""
    alice, bob = await make_user(), await make_user()
    data = os.urandom(MAX_FILE_BYTES)
    status, body = await post_upload(alice, data)
    assert status == 201, body
    assert body["size"] == MAX_FILE_BYTES
    message_id = await send_ok(alice, bob, attachments=[
        {"kind": "file", "upload_id": body["upload_id"]}
    ])
    [attachment] = (await bob.http.get(f"/api/messages/{message_id}")).json()["attachments"]
    answer = await bob.http.get(f"/api/messages/{message_id}/attachments/{attachment['id']}")
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) == MAX_FILE_BYTES
    assert hashlib.sha256(answer.content).digest() == hashlib.sha256(data).digest()


async def test_one_byte_over_25_mib_is_refused_and_nothing_is_kept(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Streamed without a length, 25 MiB + 1 byte is 413 once the limit is passed; declared,
    it is 413 before any byte is read. No file and no chunk stays either way."""
    alice = await make_user()
    status, body = await post_upload(alice, pieces(MAX_FILE_BYTES + 1, os.urandom(PIECE)))
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert await stored_files(raw_db) == (0, 0)
    declared = await alice.http.post(
        "/api/uploads?name=big.bin", content=pieces(PIECE, bytes(PIECE)),
        headers={"Content-Length": str(MAX_FILE_BYTES + 1)},
    )
    assert_error(declared, 413, "too_large")
    assert await stored_files(raw_db) == (0, 0)


async def test_uploading_25_mib_holds_under_three_chunks_of_memory(make_user: MakeUser) -> None:
    """The server's peak of allocated memory while 25 MiB stream in stays under three times
    the chunk size above what it held before."""
    alice = await make_user()
    piece = os.urandom(PIECE)
    await post_upload(alice, pieces(CHUNK_BYTES, piece))  # warm up: pools, statements
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        status, body = await post_upload(alice, pieces(MAX_FILE_BYTES, piece))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 201, body
    above = peak - baseline
    print(f"peak while uploading 25 MiB: {above / 2**20:.2f} MiB above the baseline")
    assert above < 3 * CHUNK_BYTES, f"{above / 2**20:.2f} MiB"


async def test_hostile_filenames_are_tamed(make_user: MakeUser) -> None:
    """Path separators, CR/LF, 1,000 characters and non-UTF-8 escapes give a plain name, and
    the download's header carries it safely."""
    alice = await make_user()
    cases = {
        "name=..%2F..%2Fetc%2Fpasswd": "passwd",
        "name=C%3A%5Cwin%5Cboot.ini": "boot.ini",
        "name=a%0D%0ASet-Cookie%3A%20x%3Dy.txt": "aSet-Cookie: x=y.txt",
        "name=%FF%FEreport.txt": "report.txt",
        "name=%00%01": "file",
        "name=" + "n" * 1000 + ".pdf": "n" * 251 + ".pdf",
    }
    for query, expected in cases.items():
        answer = await alice.http.post(f"/api/uploads?{query}", content=b"x")
        assert answer.status_code == 201, (query, answer.text)
        assert answer.json()["name"] == expected, query
        entry = await new_entry(alice, kind="file", title="t",
                                upload_id=answer.json()["upload_id"])
        download = await alice.http.get(f"/api/vault/entries/{entry['id']}/file")
        disposition = download.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=")
        assert "\r" not in disposition and "\n" not in disposition
        assert disposition.count('"') == 2


async def test_a_stated_type_is_kept_only_when_the_bytes_bear_it_out(make_user: MakeUser) -> None:
    """PNG bytes stated as PNG stay image/png; HTML, SVG, or text claiming to be PNG are
    served as application/octet-stream, as downloads."""
    alice = await make_user()
    cases = [
        (b"\x89PNG\r\n\x1a\n" + bytes(50), "image/png", "image/png"),
        (b"plain words\n", "text/plain", "text/plain; charset=utf-8"),
        (b"<script>alert(1)</script>", "text/html", "application/octet-stream"),
        (b"<svg onload=alert(1)>", "image/svg+xml", "application/octet-stream"),
        (b"<html>not a png", "image/png", "application/octet-stream"),
        (b"\x00\x01binary", "text/plain", "application/octet-stream"),
    ]
    for data, stated, served in cases:
        file = await upload(alice, data, name="f", content_type=stated)
        entry = await new_entry(alice, kind="file", title="t", upload_id=file["upload_id"])
        download = await alice.http.get(f"/api/vault/entries/{entry['id']}/file")
        assert download.headers["content-type"] == served, stated
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.content == data


async def test_an_upload_never_attached_is_purged_after_an_hour(
    make_user: MakeUser, services: Services, raw_db: asyncpg.Connection
) -> None:
    """An upload an hour old that nothing refers to goes with its bytes; one kept in the vault
    stays, however old."""
    alice = await make_user()
    await upload(alice, b"forgotten")
    kept = await upload(alice, b"kept")
    await new_entry(alice, kind="file", title="k", upload_id=kept["upload_id"])
    await raw_db.execute("update files set created_at = created_at - interval '61 minutes'")
    purged = await purge_once(services.db, services.settings)
    assert purged.uploads == 1
    assert await stored_files(raw_db) == (1, 1)
    assert str(await raw_db.fetchval("select id from files")) == kept["upload_id"]
    await upload(alice, b"just now")
    assert (await purge_once(services.db, services.settings)).uploads == 0
    assert await stored_files(raw_db) == (2, 2)


async def test_an_expired_message_leaves_no_attachment_bytes(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Once the expirer deletes the message, its attachments and files are gone too."""
    alice, bob = await make_user(), await make_user()
    file = await upload(alice, os.urandom(3 * CHUNK_BYTES // 2), name="burn.bin")
    await send_ok(alice, bob, expires_at=in_seconds(1), attachments=[
        {"kind": "file", "upload_id": file["upload_id"]},
        {"kind": "credential", "title": "one-time", "password": "x"},
    ])

    async def nothing_left() -> bool:
        counts = (await stored_files(raw_db),
                  await raw_db.fetchval("select count(*) from message_attachments"))
        return counts == ((0, 0), 0)

    await eventually(nothing_left, "the files to be deleted", within=10)
    assert await raw_db.fetchval("select count(*) from message_files") == 0
