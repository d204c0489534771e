"""A shareable link's files and credentials: copied under the link's own key when it is created
(the upload consumed), fetched for ten minutes after a view without counting one, and never
opened by anything the server keeps."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import httpx
import pytest

from realtime import crypto
from realtime.crypto import Keyring
from realtime.errors import CryptoError
from realtime.files import MAX_FILE_BYTES
from realtime.models import SealedKey
from tests.conftest import TEST_MASTER_KEY, MakeUser
from tests.messages_support import assert_error
from tests.test_links_api import create, link_body, open_link, token_of
from tests.vault_support import upload

PDF = b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024 + 17)  # four chunks, the last one short


async def fetch(
    http: httpx.AsyncClient, token: str, attachment_id: str, passphrase: str | None = None
) -> httpx.Response:
    return await http.post(f"/api/links/open/attachments/{attachment_id}",
                           json={"token": token, "passphrase": passphrase})


async def test_a_links_file_downloads_whole_after_a_view_without_counting_one(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """The upload becomes the link's (the upload itself is gone); the opener sees the file's
    name and size, downloads its exact bytes as an attachment, twice, and the link's last view
    still lets them do so, while its content opens no more."""
    alice = await make_user()
    uploaded = await upload(alice, PDF, name="contract.pdf", content_type="application/pdf")
    credential = {"kind": "credential", "title": "vpn", "username": "u", "password": "p"}
    created = await create(alice, passphrase="a long passphrase",
                           attachments=[{"kind": "file", "upload_id": uploaded["upload_id"]},
                                        credential])
    assert await raw_db.fetchval("select count(*) from files where id = $1::uuid",
                                 uploaded["upload_id"]) == 0
    token = token_of(created)
    opened = (await open_link(client, token, "a long passphrase")).json()
    assert opened["views_left"] == 0
    file, cred = opened["attachments"]
    assert (file["kind"], file["name"], file["size"], file["content_type"]) == (
        "file", "contract.pdf", len(PDF), "application/pdf"
    )
    for _ in range(2):
        answer = await fetch(client, token, file["id"], "a long passphrase")
        assert answer.status_code == 200
        assert answer.content == PDF
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert answer.headers["cache-control"] == "no-store"
    fetched = await fetch(client, token, cred["id"], "a long passphrase")
    assert fetched.json()["password"] == "p"
    assert (await open_link(client, token, "a long passphrase")).status_code == 404


async def test_downloads_need_a_view_in_the_last_ten_minutes_and_the_right_key(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """Before any view, with a wrong passphrase, another link's attachment id, or eleven
    minutes after the view, a download is not found."""
    alice = await make_user()
    uploaded = await upload(alice, b"plain words", name="a.txt")
    created = await create(alice, max_views=2, passphrase="a long passphrase",
                           attachments=[{"kind": "file", "upload_id": uploaded["upload_id"]}])
    other = await create(alice, attachments=[{"kind": "credential", "title": "x"}])
    token = token_of(created)
    (attachment_id,) = await raw_db.fetchval(
        "select array_agg(id) from link_attachments where link_id = $1::uuid", created["id"]
    )
    assert_error(await fetch(client, token, str(attachment_id), "a long passphrase"), 404,
                 "not_found")
    assert (await open_link(client, token, "a long passphrase")).status_code == 200
    assert (await fetch(client, token, str(attachment_id), "a long passphrase")).status_code \
        == 200
    assert_error(await fetch(client, token, str(attachment_id), "not the passphrase"), 401,
                 "passphrase_wrong")
    assert (await fetch(client, token_of(other), str(attachment_id))).status_code == 404
    await raw_db.execute(
        "update links set last_viewed_at = now() - interval '11 minutes' where id = $1::uuid",
        created["id"],
    )
    assert (await fetch(client, token, str(attachment_id), "a long passphrase")).status_code \
        == 404


async def test_after_the_last_view_a_link_with_files_is_due_when_its_window_ends(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """A one-view link with a file is kept for its download window after its view, and no
    longer, nor past its expiry."""
    alice = await make_user()
    uploaded = await upload(alice, b"plain words", name="a.txt")
    created = await create(alice, attachments=[{"kind": "file",
                                                "upload_id": uploaded["upload_id"]}])
    await open_link(client, token_of(created))
    row = await raw_db.fetchrow(
        "select due_at - last_viewed_at as kept, expires_at >= due_at as before_expiry "
        "from links where id = $1::uuid", created["id"],
    )
    assert row["kept"].total_seconds() == 600 and row["before_expiry"]


async def test_a_links_files_hold_at_most_the_file_limit_together(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Two uploads that pass the file limit together are refused (413) and nothing is kept,
    the uploads included; someone else's upload is not found."""
    alice, bob = await make_user(), await make_user()
    big = os.urandom(MAX_FILE_BYTES // 2 + 1)
    first, second = await upload(alice, big, name="1.bin"), await upload(alice, big, name="2.bin")
    files = [{"kind": "file", "upload_id": u["upload_id"]} for u in (first, second)]
    answer = await alice.http.post("/api/links", json=link_body(attachments=files))
    assert_error(answer, 413, "too_large")
    assert await raw_db.fetchval("select count(*) from links where creator_id = $1",
                                 alice.user.id) == 0
    assert await raw_db.fetchval("select count(*) from files where owner_id = $1",
                                 alice.user.id) == 2
    theirs = await upload(bob, b"bob's", name="b.txt")
    answer = await alice.http.post("/api/links", json=link_body(
        attachments=[{"kind": "file", "upload_id": theirs["upload_id"]}]))
    assert_error(answer, 404, "not_found")


async def test_nothing_kept_of_a_link_opens_without_its_token(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """With every row of a link (content, attachments, file chunks) and the master key, the
    content opens neither under the creator's key nor under a key from another token; the
    master key opens only what the creator's list shows."""
    alice = await make_user()
    uploaded = await upload(alice, b"the file's secret words", name="f.txt")
    created = await create(alice, attachments=[
        {"kind": "credential", "title": "t", "password": "the credential's secret"},
        {"kind": "file", "upload_id": uploaded["upload_id"]},
    ])
    link = await raw_db.fetchrow("select * from links where id = $1::uuid", created["id"])
    attachments = await raw_db.fetch(
        "select * from link_attachments where link_id = $1::uuid order by position", link["id"]
    )
    chunks = await raw_db.fetch(
        "select c.* from link_chunks c join link_attachments a on a.id = c.attachment_id "
        "where a.link_id = $1::uuid", link["id"]
    )
    row = crypto.row_name("links", link["id"])
    creator_key = Keyring([TEST_MASTER_KEY]).open_envelope(  # all the master key opens
        row, SealedKey(link["key_id"], bytes(link["wrapped_key"]))
    )
    assert creator_key.open_text("listed_subject", bytes(link["listed_subject"])) == "Wi-Fi"
    stranger = crypto.link_envelope(row, crypto.new_token())
    for envelope in (creator_key, stranger):
        sealed: list[tuple[str, Any]] = [("subject", link["subject"]), ("body", link["body"])]
        for a in attachments:
            sealed.append((f"attachment/{a['id']}/name", a["name"]))
            if a["content"] is not None:
                sealed.append((f"attachment/{a['id']}/content", a["content"]))
            if a["file_key"] is not None:
                sealed.append((f"attachment/{a['id']}/key", a["file_key"]))
        for field, value in sealed:
            with pytest.raises(CryptoError):
                envelope.open(field, bytes(value))
    stored = b"".join(bytes(v) for r in (link, *attachments, *chunks) for v in r.values()
                      if isinstance(v, bytes))
    for secret in (b"the file's secret words", b"the credential's secret", b"office network"):
        assert secret not in stored
    assert len(chunks) == 1
