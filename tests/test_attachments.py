"""Attachments of every kind on the real database: sent as copies, read by recipients only,
saved into the reader's vault, and gone with their message."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import LoggedInUser, MakeUser
from tests.messages_support import assert_error, count_rows, send, send_ok, user
from tests.vault_support import created, new_entry, new_folder, stored_files, upload

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


async def attachments_of(person: LoggedInUser, message_id: str) -> list[dict[str, Any]]:
    answer = await person.http.get(f"/api/messages/{message_id}")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["attachments"]
    return found


async def send_everything(alice: LoggedInUser, bob: LoggedInUser) -> tuple[str, dict[str, Any]]:
    """Alice sends Bob one attachment of each kind; return the message id and what she sent."""
    team = await new_folder(alice, "Team")
    sub = await new_folder(alice, "Sub", team)
    await new_entry(alice, folder_id=team, title="router", username="admin", password="r0uter")
    photo = await upload(alice, PNG, name="photo.png", content_type="image/png")
    await new_entry(alice, folder_id=sub, kind="file", title="photo", upload_id=photo["upload_id"])
    entry = await new_entry(alice, title="mail", username="alice", password="m4il",
                            url="https://mail.example", notes="2FA on")
    report = await upload(alice, b"quarterly figures\n" * 1000, name="report.txt")
    message_id = await send_ok(alice, bob, attachments=[
        {"kind": "credential", "title": "wifi", "username": "guest", "password": "w1f1"},
        {"kind": "entry", "entry_id": entry["id"]},
        {"kind": "folder", "folder_id": team},
        {"kind": "file", "upload_id": report["upload_id"]},
    ])
    return message_id, {"entry": entry, "report": report, "photo": photo}


async def test_every_kind_is_sent_and_read_by_the_recipient(make_user: MakeUser) -> None:
    """The summary lists the four attachments in order; each reads back as sent, the folder as
    a tree whose file entry downloads."""
    alice, bob = await make_user(), await make_user()
    message_id, _ = await send_everything(alice, bob)
    listed = await attachments_of(bob, message_id)
    assert [(a["kind"], a["name"]) for a in listed] == [
        ("credential", "wifi"), ("entry", "mail"), ("folder", "Team"), ("file", "report.txt"),
    ]
    assert listed[3]["size"] == 18_000
    inbox = (await bob.http.get("/api/messages")).json()["messages"]
    assert [a["name"] for a in inbox[0]["attachments"]] == ["wifi", "mail", "Team", "report.txt"]

    base = f"/api/messages/{message_id}/attachments"
    credential, entry, folder, file = [
        await bob.http.get(f"{base}/{a['id']}") for a in listed
    ]
    assert credential.json()["password"] == "w1f1"
    fields = ("title", "username", "password", "url", "notes")
    assert {k: entry.json()["entry"][k] for k in fields} == {
        "title": "mail", "username": "alice", "password": "m4il",
        "url": "https://mail.example", "notes": "2FA on",
    }
    tree = folder.json()["folder"]
    assert tree["name"] == "Team" and tree["entries"][0]["password"] == "r0uter"
    [photo] = tree["folders"][0]["entries"]
    assert photo["file"] == {"name": "photo.png", "size": len(PNG), "content_type": "image/png"}
    photo_bytes = await bob.http.get(f"{base}/{listed[2]['id']}/entries/{photo['id']}/file")
    assert photo_bytes.content == PNG
    assert photo_bytes.headers["content-type"] == "image/png"
    assert file.content == b"quarterly figures\n" * 1000
    assert file.headers["content-disposition"].startswith("attachment;")


async def test_copies_are_taken_at_send_time(make_user: MakeUser) -> None:
    """Changing or deleting the vault entry afterwards does not reach the message."""
    alice, bob = await make_user(), await make_user()
    entry = await new_entry(alice, title="vpn", password="before")
    message_id = await send_ok(alice, bob, attachments=[{"kind": "entry", "entry_id": entry["id"]}])
    await alice.http.patch(f"/api/vault/entries/{entry['id']}", json={"password": "after"})
    await alice.http.delete(f"/api/vault/entries/{entry['id']}")
    [listed] = await attachments_of(bob, message_id)
    read = await bob.http.get(f"/api/messages/{message_id}/attachments/{listed['id']}")
    assert read.json()["entry"]["password"] == "before"


async def test_saving_puts_copies_at_the_root_or_into_a_folder(make_user: MakeUser) -> None:
    """Save in user vault puts every attachment at the root; Save as into the chosen folder,
    the folder attachment arriving as a folder; the copies are the reader's own."""
    alice, bob = await make_user(), await make_user()
    message_id, _ = await send_everything(alice, bob)
    saved = await created(
        await bob.http.post(f"/api/messages/{message_id}/save", json={"folder_id": None})
    )
    vault = (await bob.http.get("/api/vault")).json()
    at_root = {e["title"] for e in vault["entries"] if e["folder_id"] is None}
    assert at_root == {"wifi", "mail", "report.txt"}
    assert {f["name"] for f in vault["folders"]} == {"Team", "Sub"}
    assert len(saved["entry_ids"]) == 5 and len(saved["folder_ids"]) == 2

    inbox = await new_folder(bob, "From Alice")
    saved_as = await created(
        await bob.http.post(f"/api/messages/{message_id}/save", json={"folder_id": inbox})
    )
    vault = (await bob.http.get("/api/vault")).json()
    team = next(f for f in vault["folders"] if f["name"] == "Team" and f["parent_id"] == inbox)
    sub = next(f for f in vault["folders"] if f["parent_id"] == team["id"])
    photo = next(e for e in vault["entries"] if e["folder_id"] == sub["id"])
    assert photo["file"]["name"] == "photo.png"
    download = await bob.http.get(f"/api/vault/entries/{photo['id']}/file")
    assert download.content == PNG
    report = next(e for e in vault["entries"]
                  if e["folder_id"] == inbox and e["kind"] == "file")
    assert (await bob.http.get(f"/api/vault/entries/{report['id']}/file")).content == \
        b"quarterly figures\n" * 1000
    assert set(saved_as["entry_ids"]).isdisjoint(saved["entry_ids"])
    assert_error(
        await alice.http.get(f"/api/vault/entries/{saved['entry_ids'][0]}"), 404, "not_found"
    )


async def test_a_non_recipient_gets_404_on_every_attachment_route(make_user: MakeUser) -> None:
    """Someone who neither sent nor received the message learns nothing of its attachments."""
    alice, bob, eve = await make_user(), await make_user(), await make_user()
    message_id, _ = await send_everything(alice, bob)
    listed = await attachments_of(bob, message_id)
    base = f"/api/messages/{message_id}/attachments"
    for attachment in listed:
        assert_error(await eve.http.get(f"{base}/{attachment['id']}"), 404, "not_found")
    folder = (await bob.http.get(f"{base}/{listed[2]['id']}")).json()["folder"]
    photo_id = folder["folders"][0]["entries"][0]["id"]
    assert_error(
        await eve.http.get(f"{base}/{listed[2]['id']}/entries/{photo_id}/file"), 404, "not_found"
    )
    assert_error(
        await eve.http.post(f"/api/messages/{message_id}/save", json={}), 404, "not_found"
    )
    assert (await eve.http.get("/api/vault")).json() == {"folders": [], "entries": []}


async def test_only_the_senders_own_items_can_be_attached(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Another user's entry, folder or upload is 404, and nothing is sent; without can_attach
    any attachment is 403 while a plain message still goes."""
    alice, bob, mallory = await make_user(), await make_user(), await make_user()
    entry = await new_entry(alice, title="not yours")
    folder = await new_folder(alice, "not yours either")
    file = await upload(alice, b"alice's")
    for attachment in ({"kind": "entry", "entry_id": entry["id"]},
                       {"kind": "folder", "folder_id": folder},
                       {"kind": "file", "upload_id": file["upload_id"]}):
        assert_error(await send(mallory, [user(bob)], attachments=[attachment]), 404, "not_found")
    assert await count_rows(raw_db, "messages") == 0
    barred = await make_user(can_attach=False)
    own = await upload(barred, b"mine")
    answer = await send(barred, [user(bob)], attachments=[{"kind": "file",
                                                            "upload_id": own["upload_id"]}])
    assert_error(answer, 403, "forbidden")
    assert (await send(barred, [user(bob)])).status_code == 201


async def test_a_recalled_message_leaves_no_attachment_bytes(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Recalling deletes the attachments and the bytes of files nothing else refers to; a file
    the sender's vault still holds stays for the vault."""
    alice, bob = await make_user(), await make_user()
    message_id, _ = await send_everything(alice, bob)
    before = await stored_files(raw_db)
    assert (await alice.http.delete(f"/api/messages/{message_id}")).status_code == 204
    assert await raw_db.fetchval("select count(*) from message_attachments") == 0
    files, chunks = await stored_files(raw_db)
    assert (files, chunks) == (before[0] - 1, before[1] - 1)  # the report was only attached
    photo = next(e for e in (await alice.http.get("/api/vault")).json()["entries"]
                 if e["kind"] == "file")
    assert (await alice.http.get(f"/api/vault/entries/{photo['id']}/file")).content == PNG
