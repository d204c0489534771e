"""The vault's budgets on a live server with small limits: entries, folders and levels of
folders, by every way in (create, move, save from a message), simultaneous creations, and the
size of the folder copies a message takes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.config import Settings
from realtime.crypto import Keyring
from realtime.files import Files
from realtime.vault import Vault
from realtime.vault_limits import VaultLimits
from tests.conftest import TEST_MASTER_KEY, MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import assert_error, assert_invalid, send, user
from tests.vault_support import new_entry, new_folder

ENTRIES, FOLDERS, DEPTH, COPY_BYTES = 3, 3, 2, 4096
SEAL_BYTES = 28  # the nonce and tag around a sealed value


@pytest.fixture(scope="module")
async def node(settings: Settings, raw_db: asyncpg.Connection) -> AsyncIterator[LiveServer]:
    # A key made by an earlier test under another master key would stop the start.
    await raw_db.execute("delete from server_keys")
    small = dataclasses.replace(
        settings, vault_max_entries=ENTRIES, vault_max_folders=FOLDERS,
        vault_max_depth=DEPTH, folder_copy_max_bytes=COPY_BYTES, requests_in_flight_per_user=50,
    )
    with live_server(small) as server:
        yield server


async def vault_rows(raw_db: asyncpg.Connection, member: Any) -> tuple[int, int]:
    """How many folders and entries the member's vault holds."""
    row = await raw_db.fetchrow(
        """select (select count(*) from vault_folders where owner_id = $1::uuid) as folders,
                  (select count(*) from vault_entries where owner_id = $1::uuid) as entries""",
        member.id,
    )
    return int(row["folders"]), int(row["entries"])


async def test_entries_up_to_the_limit_then_400_naming_it(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A vault takes its limit of entries; one more is 400 naming `entries` and writes
    nothing, while another user still creates theirs."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    for n in range(ENTRIES):
        await new_entry(alice, title=f"entry {n}")
    answer = await alice.http.post("/api/vault/entries", json={"kind": "note", "title": "one more"})
    assert_invalid(answer, "entries")
    assert str(ENTRIES) in answer.json()["error"]["fields"]["entries"]
    assert await vault_rows(raw_db, alice) == (0, ENTRIES)
    await new_entry(bob, title="bob's")


async def test_folders_up_to_the_limit_then_400_naming_it(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A vault takes its limit of folders; one more is 400 naming `folders`."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    for n in range(FOLDERS):
        await new_folder(alice, f"folder {n}")
    answer = await alice.http.post("/api/vault/folders", json={"name": "one more"})
    assert_invalid(answer, "folders")
    assert await vault_rows(raw_db, alice) == (FOLDERS, 0)
    await new_folder(bob, "bob's")


async def test_folders_nest_down_to_the_limit_then_400_on_parent_id(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Folders nest as deep as the limit; one level more is 400 naming `parent_id`."""
    alice = await make_user(on=node)
    parent = None
    for level in range(DEPTH):
        parent = await new_folder(alice, f"level {level + 1}", parent)
    answer = await alice.http.post(
        "/api/vault/folders", json={"name": "deeper", "parent_id": parent}
    )
    assert_invalid(answer, "parent_id")
    assert str(DEPTH) in answer.json()["error"]["fields"]["parent_id"]
    assert await vault_rows(raw_db, alice) == (DEPTH, 0)


async def test_simultaneous_creations_never_pass_the_limit(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Ten entries and ten folders created at once: exactly the limits are made, the rest
    refused with 400."""
    alice = await make_user(on=node)
    entries = [alice.http.post("/api/vault/entries", json={"kind": "note", "title": f"n{n}"})
               for n in range(10)]
    folders = [alice.http.post("/api/vault/folders", json={"name": f"f{n}"}) for n in range(10)]
    answers = await asyncio.gather(*entries, *folders)
    statuses = [a.status_code for a in answers]
    assert statuses[:10].count(201) == ENTRIES and statuses[:10].count(400) == 10 - ENTRIES
    assert statuses[10:].count(201) == FOLDERS and statuses[10:].count(400) == 10 - FOLDERS
    assert await vault_rows(raw_db, alice) == (FOLDERS, ENTRIES)


async def test_moving_an_entry_into_the_deepest_folder_of_a_full_vault_is_allowed(
    node: LiveServer, make_user: MakeUser
) -> None:
    """A move adds nothing: a full vault still moves an entry into its deepest folder."""
    alice = await make_user(on=node)
    deepest = await new_folder(alice, "inner", await new_folder(alice, "outer"))
    entries = [await new_entry(alice, title=f"e{n}") for n in range(ENTRIES)]
    moved = await alice.http.patch(
        f"/api/vault/entries/{entries[0]['id']}", json={"folder_id": deepest}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["folder_id"] == deepest


async def test_saving_a_message_holds_the_entry_folder_and_depth_limits(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Saving a folder attachment that would pass the reader's entries, folders or depth is
    400 naming the limit and saves nothing; one that fits is saved."""
    alice, bob, carol, dave = [await make_user(on=node) for _ in range(4)]
    team = await new_folder(alice, "team")
    await new_entry(alice, folder_id=team, title="router")
    await new_entry(alice, folder_id=team, title="printer")
    sent = await send(alice, [user(bob), user(carol), user(dave)],
                      attachments=[{"kind": "folder", "folder_id": team}])
    assert sent.status_code == 201, sent.text
    save = f"/api/messages/{sent.json()['id']}/save"

    await new_entry(bob, title="already there")
    await new_entry(bob, title="and this one")
    assert_invalid(await bob.http.post(save, json={}), "entries")
    assert await vault_rows(raw_db, bob) == (0, 2)

    for n in range(FOLDERS):
        await new_folder(carol, f"folder {n}")
    assert_invalid(await carol.http.post(save, json={}), "folders")
    assert await vault_rows(raw_db, carol) == (FOLDERS, 0)

    outer = await new_folder(dave, "outer")
    inner = await new_folder(dave, "inner", outer)
    assert_invalid(await dave.http.post(save, json={"folder_id": inner}), "folder_id")
    assert await vault_rows(raw_db, dave) == (2, 0)
    saved = await dave.http.post(save, json={"folder_id": outer})
    assert saved.status_code == 201, saved.text
    assert await vault_rows(raw_db, dave) == (3, 2)


async def copy_size(raw_db: asyncpg.Connection, message_id: str) -> int:
    """The bytes of a message's one attachment copy, as sealed, less the seal itself."""
    sealed = await raw_db.fetchval(
        "select octet_length(content) from message_attachments where message_id = $1::uuid",
        message_id,
    )
    return int(sealed) - SEAL_BYTES


async def test_a_folder_copy_up_to_its_size_goes_and_one_byte_more_is_413(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A folder whose copy is exactly the limit is sent; one byte more is 413 naming
    `folder_id` and sends nothing."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    team = await new_folder(alice, "team")
    entry = await new_entry(alice, folder_id=team, kind="note", title="notes", notes="")
    attach = [{"kind": "folder", "folder_id": team}]
    first = await send(alice, [user(bob)], attachments=attach)
    room = COPY_BYTES - await copy_size(raw_db, first.json()["id"])
    await alice.http.patch(f"/api/vault/entries/{entry['id']}", json={"notes": "n" * room})
    full = await send(alice, [user(bob)], attachments=attach)
    assert full.status_code == 201, full.text
    assert await copy_size(raw_db, full.json()["id"]) == COPY_BYTES
    await alice.http.patch(f"/api/vault/entries/{entry['id']}", json={"notes": "n" * (room + 1)})
    over = await send(alice, [user(bob)], attachments=attach)
    error = assert_error(over, 413, "too_large")
    assert "folder_id" in error["fields"] and str(COPY_BYTES) in error["message"]
    assert await raw_db.fetchval("select count(*) from messages") == 2
    assert (await send(bob, [user(alice)], attachments=attach[:0])).status_code == 201


async def test_a_folder_far_over_the_size_is_refused_before_it_is_read(
    node: LiveServer, make_user: MakeUser
) -> None:
    """A folder whose sealed entries alone pass the limit is 413 naming `folder_id`."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    team = await new_folder(alice, "team")
    await new_entry(alice, folder_id=team, kind="note", title="big", notes="n" * 3 * COPY_BYTES)
    over = await send(alice, [user(bob)], attachments=[{"kind": "folder", "folder_id": team}])
    assert "folder_id" in assert_error(over, 413, "too_large")["fields"]


async def test_the_attachments_of_one_send_together_hold_at_most_one_copys_size(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Credentials that each fit but together pass the copy size are 413 naming
    `attachments`; nothing is sent."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    credential = {"kind": "credential", "title": "wifi", "notes": "n" * (COPY_BYTES // 3)}
    two = await send(alice, [user(bob)], attachments=[credential] * 2)
    assert two.status_code == 201, two.text
    three = await send(alice, [user(bob)], attachments=[credential] * 3)
    assert "attachments" in assert_error(three, 413, "too_large")["fields"]
    assert await raw_db.fetchval("select count(*) from messages") == 1


async def test_a_folder_attached_twice_past_the_copy_size_is_413_naming_attachments(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A folder of over half the copy size goes once; attached twice it is 413 naming
    `attachments`, and nothing is sent."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    team = await new_folder(alice, "team")
    await new_entry(alice, folder_id=team, kind="note", title="half", notes="n" * (COPY_BYTES // 2))
    attach = {"kind": "folder", "folder_id": team}
    once = await send(alice, [user(bob)], attachments=[attach])
    assert once.status_code == 201, once.text
    twice = await send(alice, [user(bob)], attachments=[attach, attach])
    assert set(assert_error(twice, 413, "too_large")["fields"]) == {"attachments"}
    assert await raw_db.fetchval("select count(*) from messages") == 1


async def test_a_chain_of_130_nested_folders_attached_is_400_naming_the_depth(
    node: LiveServer, make_user: MakeUser, services: Services, raw_db: asyncpg.Connection
) -> None:
    """130 nested folders (made where the depth limit was raised), attached to a message: a
    400 naming the depth limit on `folder_id`, never a 500; nothing is sent."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    owner = (await services.accounts.authenticate(alice.token)).user
    keyring = Keyring([TEST_MASTER_KEY])
    roomy = Vault(services.db, keyring, Files(services.db, keyring), VaultLimits(max_depth=200))
    chain = [(await roomy.create_folder(owner, "level 1", None)).id]
    for level in range(2, 131):
        chain.append((await roomy.create_folder(owner, f"level {level}", chain[-1])).id)
    top = {"kind": "folder", "folder_id": str(chain[0])}
    answer = await send(alice, [user(bob)], attachments=[top])
    assert_invalid(answer, "folder_id")
    assert f"{DEPTH} levels" in answer.json()["error"]["fields"]["folder_id"]
    assert await raw_db.fetchval("select count(*) from messages") == 0
