"""Each user's vault over HTTP on the real database: folders, entries, files, secrets sealed."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.crypto import Keyring, generate_master_key
from realtime.errors import CryptoError
from realtime.files import Files
from realtime.rotation import rotate_master_key
from realtime.vault import Vault
from tests.conftest import TEST_MASTER_KEY, MakeUser
from tests.messages_support import assert_error, assert_invalid
from tests.vault_support import new_entry, new_folder, stored_files, upload

SECRET_PASSWORD = "p4ss-w0rd-only-in-the-vault"


async def test_folders_and_entries_are_created_listed_changed_and_deleted(
    make_user: MakeUser,
) -> None:
    """A credential in a nested folder is listed without its secrets, read with them, changed,
    moved to the root, and deleted."""
    alice = await make_user()
    work = await new_folder(alice, "Work")
    servers = await new_folder(alice, "Servers", work)
    entry = await new_entry(
        alice, folder_id=servers, title="db", username="root", password=SECRET_PASSWORD,
        url="https://db.example", notes="rotate monthly",
    )
    assert entry["password"] == SECRET_PASSWORD and entry["folder_id"] == servers

    listing = (await alice.http.get("/api/vault")).json()
    assert {(f["name"], f["parent_id"]) for f in listing["folders"]} == {
        ("Work", None), ("Servers", work)
    }
    [listed] = listing["entries"]
    assert listed["has_password"] is True and listed["username"] == "root"
    assert "password" not in listed and "notes" not in listed

    changed = await alice.http.patch(
        f"/api/vault/entries/{entry['id']}",
        json={"title": "db-primary", "password": "new secret", "folder_id": None},
    )
    assert changed.status_code == 200, changed.text
    read = (await alice.http.get(f"/api/vault/entries/{entry['id']}")).json()
    assert (read["title"], read["password"]) == ("db-primary", "new secret")
    assert read["folder_id"] is None
    assert (read["username"], read["notes"]) == ("root", "rotate monthly")

    assert (await alice.http.delete(f"/api/vault/entries/{entry['id']}")).status_code == 204
    assert_error(await alice.http.get(f"/api/vault/entries/{entry['id']}"), 404, "not_found")


async def test_deleting_a_folder_deletes_everything_inside_it(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Sub-folders, their entries and the bytes of their files go with the folder."""
    alice = await make_user()
    top = await new_folder(alice, "Top")
    inner = await new_folder(alice, "Inner", top)
    note = await new_entry(alice, kind="note", title="n", notes="x", folder_id=inner)
    file = await upload(alice, b"kept nowhere else")
    await new_entry(alice, kind="file", title="f", upload_id=file["upload_id"], folder_id=inner)
    outside = await new_entry(alice, title="stays")
    assert (await alice.http.delete(f"/api/vault/folders/{top}")).status_code == 204
    listing = (await alice.http.get("/api/vault")).json()
    assert listing["folders"] == []
    assert [e["id"] for e in listing["entries"]] == [outside["id"]]
    assert_error(await alice.http.get(f"/api/vault/entries/{note['id']}"), 404, "not_found")
    assert await stored_files(raw_db) == (0, 0)


async def test_a_user_never_sees_or_touches_another_users_vault(make_user: MakeUser) -> None:
    """Every route answers 404 for another user's folder or entry, and nothing changes."""
    alice, mallory = await make_user(), await make_user()
    folder = await new_folder(alice, "Private")
    file = await upload(alice, b"secret bytes")
    entry = await new_entry(alice, kind="file", title="f", upload_id=file["upload_id"],
                            folder_id=folder)
    path = f"/api/vault/entries/{entry['id']}"
    http = mallory.http
    for answer in (
        await http.get(path),
        await http.patch(path, json={"title": "mine now"}),
        await http.delete(path),
        await http.get(f"{path}/file"),
        await http.delete(f"/api/vault/folders/{folder}"),
        await http.post("/api/vault/folders", json={"name": "x", "parent_id": folder}),
        await http.post("/api/vault/entries",
                        json={"kind": "note", "title": "x", "folder_id": folder}),
        await http.post("/api/vault/entries",
                        json={"kind": "file", "title": "x", "upload_id": file["upload_id"]}),
    ):
        assert_error(answer, 404, "not_found")
    assert (await http.get("/api/vault")).json() == {"folders": [], "entries": []}
    mine = (await alice.http.get(path)).json()
    assert (mine["title"], mine["folder_id"]) == ("f", folder)


async def test_a_file_entry_keeps_its_file_and_streams_it_back(make_user: MakeUser) -> None:
    """A file entry downloads byte for byte as an attachment; only a file entry takes an
    upload, and a file entry needs one."""
    alice = await make_user()
    data = bytes(range(256)) * 5000
    file = await upload(alice, data, name="dump.bin", content_type="application/octet-stream")
    entry = await new_entry(alice, kind="file", title="dump", upload_id=file["upload_id"])
    assert entry["file"] == {"name": "dump.bin", "size": len(data),
                             "content_type": "application/octet-stream"}
    answer = await alice.http.get(f"/api/vault/entries/{entry['id']}/file")
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert_invalid(
        await alice.http.post("/api/vault/entries", json={"kind": "file", "title": "no file"}),
        "upload_id",
    )
    assert_invalid(
        await alice.http.post("/api/vault/entries", json={
            "kind": "note", "title": "n", "upload_id": file["upload_id"]}),
        "upload_id",
    )


async def test_names_and_secrets_are_sealed_at_rest(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """No folder name, entry field, file name or file byte is stored in the clear."""
    alice = await make_user()
    folder = await new_folder(alice, "FolderNameInTheClear")
    await new_entry(alice, folder_id=folder, title="TitleInTheClear",
                    username="UsernameInTheClear", password=SECRET_PASSWORD)
    file = await upload(alice, b"FileBytesInTheClear" * 100, name="FileNameInTheClear.txt")
    await new_entry(alice, kind="file", title="t", upload_id=file["upload_id"])
    rows = await raw_db.fetch(
        """select name as data from vault_folders union all select fields from vault_entries
           union all select name from files union all select data from file_chunks"""
    )
    stored = b"".join(bytes(row["data"]) for row in rows)
    for clear in (b"FolderNameInTheClear", b"TitleInTheClear", b"UsernameInTheClear",
                  SECRET_PASSWORD.encode(), b"FileNameInTheClear", b"FileBytesInTheClear"):
        assert clear not in stored


async def test_rotation_rewraps_the_vault_and_files_too(
    make_user: MakeUser, services: Services
) -> None:
    """After a master key rotation the new key alone opens folders, entries and file bytes."""
    alice = await make_user()
    folder = await new_folder(alice, "Keys")
    file = await upload(alice, b"rotated bytes" * 1000, name="r.txt")
    entry = await new_entry(alice, kind="file", title="r", upload_id=file["upload_id"],
                            folder_id=folder)
    new_key = generate_master_key()
    rewrapped = await rotate_master_key(services.db, Keyring([new_key, TEST_MASTER_KEY]))
    assert rewrapped == 3  # the folder, the entry and the file
    keyring = Keyring([new_key])
    files = Files(services.db, keyring)
    vault = Vault(services.db, keyring, files)
    folders, entries = await vault.contents(alice.user)
    assert [f.name for f in folders] == ["Keys"] and [e.fields.title for e in entries] == ["r"]
    download = await vault.entry_file(alice.user, UUID(entry["id"]))
    assert b"".join([chunk async for chunk in download.chunks]) == b"rotated bytes" * 1000
    with pytest.raises(CryptoError):
        await Vault(services.db, Keyring([TEST_MASTER_KEY]), files).contents(alice.user)
