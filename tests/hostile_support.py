"""Helpers shared by the hostile tests: the contract's error shape, and another user's world."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.vault_support import created, new_entry, new_folder, upload

UNKNOWN_ID = "0b5e7a1c-1111-4222-8333-444455556666"
FILE_BYTES = b"the owner's file, not for anyone else\n"


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is the contract's error with this status and code; return its `error`."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    payload = answer.json()
    assert list(payload) == ["error"], payload
    error: dict[str, Any] = payload["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert set(error) <= {"code", "message", "fields"}, error
    return error


def assert_not_echoed(answer: httpx.Response, *values: str) -> None:
    """None of the submitted values comes back in the answer, raw or JSON-escaped."""
    for value in values:
        if len(value) < 4:
            continue
        spellings = (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])
        for spelling in spellings:
            assert spelling not in answer.text, "the answer echoes a submitted value"


@dataclass(frozen=True)
class OwnersWorld:
    """Objects of an owner (alice), one recipient of her message (carol), and their ids.

    `ids` names: `message` (alice to carol, with a credential and a folder attachment),
    `attachment` (its credential), `folder_attachment`, `copied_entry` (the file entry inside
    the folder copy), `folder`, `entry` (a file entry in `folder`), `upload`, `user` (alice),
    `group` (alice and carol), `link` and `link_attachment` (alice's), `system_message` (the
    admin's, everyone's to see).
    """

    owner: LoggedInUser
    recipient: LoggedInUser
    ids: dict[str, str]


async def owners_world(
    make_user: MakeUser, admin: LoggedInUser, *, system_message: bool = True
) -> OwnersWorld:
    """Alice's vault, upload and message to Carol, a group of the two, and (unless told not
    to) a system message of the admin's."""
    alice, carol = await make_user(), await make_user()
    folder = await new_folder(alice, "alice's folder")
    kept = await upload(alice, FILE_BYTES, name="kept.txt")
    entry = await new_entry(alice, kind="file", title="alice's file", folder_id=folder,
                            upload_id=kept["upload_id"])
    loose = await upload(alice, FILE_BYTES, name="loose.txt")
    attachments = [
        {"kind": "credential", "title": "alice's login", "username": "alice",
         "password": "alice's secret"},
        {"kind": "folder", "folder_id": folder},
    ]
    sent = await created(await alice.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": carol.id}], "subject": "for carol only",
        "attachments": attachments}))
    message = await carol.http.get(f"/api/messages/{sent['id']}")
    assert message.status_code == 200, message.text
    credential, folder_copy = message.json()["attachments"]
    opened = await carol.http.get(f"/api/messages/{sent['id']}/attachments/{folder_copy['id']}")
    assert opened.status_code == 200, opened.text
    [copied] = opened.json()["folder"]["entries"]
    group = await created(await admin.http.post("/api/admin/groups", json={
        "name": unique_name("group"), "member_ids": [alice.id, carol.id]}))
    link = await created(await alice.http.post("/api/links", json={
        "subject": "alice's link", "max_views": 100,
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "attachments": [{"kind": "credential", "title": "alice's", "password": "secret"}]}))
    token = link["url"].split("#", 1)[1]
    shown = await alice.http.post("/api/links/open", json={"token": token, "passphrase": None})
    assert shown.status_code == 200, shown.text
    ids = {
        "message": sent["id"], "attachment": credential["id"],
        "folder_attachment": folder_copy["id"], "copied_entry": copied["id"],
        "folder": folder, "entry": entry["id"], "upload": loose["upload_id"],
        "user": alice.id, "group": group["id"],
        "link": link["id"], "link_attachment": shown.json()["attachments"][0]["id"],
    }
    if system_message:
        posted = await created(await admin.http.post("/api/admin/system-messages", json={
            "subject": "for everyone", "mode": "dismissible"}))
        ids["system_message"] = posted["id"]
    return OwnersWorld(alice, carol, ids)


def ws_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One websocket frame as a client sends it, built by hand so that it can break any rule:
    `length` may claim another size than the payload has."""
    size = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
