"""Master key rotation: data keys re-wrapped, content untouched; the library and the CLI."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from realtime.api.http import Services
from realtime.config import Settings
from realtime.crypto import Keyring, generate_master_key, master_key_id
from realtime.errors import ConfigError, CryptoError
from realtime.keyfile import (
    KeyFileWatch,
    load_keyring,
    read_key_file,
    rotation_lock,
    write_key_file,
)
from realtime.messaging import Messaging
from realtime.rotation import rotate_master_key
from tests.conftest import TEST_MASTER_KEY, LoggedInUser, MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import messaging_with

COMMAND_TIMEOUT = 60


async def send_some(
    make_user: MakeUser, count: int
) -> tuple[LoggedInUser, dict[UUID, tuple[str, str]]]:
    """Send `count` messages to one recipient; return them with their subject and body."""
    alice, bob = await make_user(), await make_user()
    sent = {}
    for n in range(count):
        subject, body = f"rotation subject {n}", f"rotation body {n}"
        answer = await alice.http.post(
            "/api/messages",
            json={"to": [{"kind": "user", "id": bob.id}], "subject": subject, "body": body},
        )
        assert answer.status_code == 201, answer.text
        sent[UUID(answer.json()["id"])] = (subject, body)
    return bob, sent


async def stored(raw_db: asyncpg.Connection) -> dict[UUID, asyncpg.Record]:
    rows = await raw_db.fetch("select id, key_id, wrapped_key, subject, body from messages")
    return {row["id"]: row for row in rows}


async def assert_readable(
    messaging: Messaging, reader: LoggedInUser, sent: dict[UUID, tuple[str, str]]
) -> None:
    for message_id, (subject, body) in sent.items():
        message = await messaging.get_message(reader.user, message_id)
        assert (message.subject, message.body) == (subject, body)


async def test_rotation_rewraps_every_key_and_counts_them(
    raw_db: asyncpg.Connection, services: Services, make_user: MakeUser
) -> None:
    """Every message's key moves to the new key id; the new key alone then reads them all."""
    bob, sent = await send_some(make_user, 4)
    old_id = master_key_id(TEST_MASTER_KEY)
    assert {row["key_id"] for row in (await stored(raw_db)).values()} == {old_id}
    new_key = generate_master_key()
    count = await rotate_master_key(services.db, Keyring([new_key, TEST_MASTER_KEY]))
    assert count == len(sent)
    assert {row["key_id"] for row in (await stored(raw_db)).values()} == {master_key_id(new_key)}
    await assert_readable(messaging_with(services.db, Keyring([new_key])), bob, sent)
    old_only = messaging_with(services.db, Keyring([TEST_MASTER_KEY]))
    for message_id in sent:
        with pytest.raises(CryptoError):
            await old_only.get_message(bob.user, message_id)


async def test_rotation_does_not_reencrypt_content(
    raw_db: asyncpg.Connection, services: Services, make_user: MakeUser
) -> None:
    """Subject and body ciphertexts are byte for byte the same; only wrapped keys change."""
    _, sent = await send_some(make_user, 3)
    before = await stored(raw_db)
    await rotate_master_key(services.db, Keyring([generate_master_key(), TEST_MASTER_KEY]))
    after = await stored(raw_db)
    assert set(after) == set(before) == set(sent)
    for message_id, row in after.items():
        assert row["subject"] == before[message_id]["subject"]
        assert row["body"] == before[message_id]["body"]
        assert row["wrapped_key"] != before[message_id]["wrapped_key"]


async def test_a_second_rotation_to_the_same_key_has_nothing_to_do(
    raw_db: asyncpg.Connection, services: Services, make_user: MakeUser
) -> None:
    """Rows already under the current key are left alone."""
    await send_some(make_user, 2)
    keyring = Keyring([generate_master_key(), TEST_MASTER_KEY])
    assert await rotate_master_key(services.db, keyring) == 2
    before = await stored(raw_db)
    assert await rotate_master_key(services.db, keyring) == 0
    assert await stored(raw_db) == before


async def test_rotation_of_an_empty_database_counts_nothing(
    raw_db: asyncpg.Connection, services: Services
) -> None:
    """With no message there is nothing to re-wrap."""
    assert await raw_db.fetchval("select count(*) from messages") == 0
    assert await rotate_master_key(services.db, Keyring([generate_master_key()])) == 0


async def test_rotation_without_the_old_key_fails_and_changes_nothing(
    raw_db: asyncpg.Connection, services: Services, make_user: MakeUser
) -> None:
    """A keyring lacking the key the rows are under raises, and no row is touched."""
    await send_some(make_user, 2)
    before = await stored(raw_db)
    with pytest.raises(CryptoError):
        await rotate_master_key(services.db, Keyring([generate_master_key()]))
    assert await stored(raw_db) == before


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
    env.update(extra)
    return env


async def test_the_rotate_key_command_rewrites_the_key_file(
    raw_db: asyncpg.Connection,
    services: Services,
    make_user: MakeUser,
    database_url: str,
    tmp_path: Path,
    repo_root: Path,
) -> None:
    """`realtime rotate-key` leaves one new key in the file, mode 0600, opening every message."""
    bob, sent = await send_some(make_user, 3)
    key_file = tmp_path / "keys" / "master.key"
    write_key_file(key_file, [TEST_MASTER_KEY])
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "realtime", "rotate-key"],
        env=clean_environment(
            REALTIME_DATABASE_URL=database_url, REALTIME_MASTER_KEY_FILE=str(key_file)
        ),
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "re-wrapped 3 data keys" in done.stdout
    keys = read_key_file(key_file)
    assert len(keys) == 1 and keys[0] != TEST_MASTER_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    left = sorted(p.name for p in key_file.parent.iterdir())
    assert left == ["master.key", "master.key.lock"]  # no temporary file left behind
    rows = await stored(raw_db)
    assert {row["key_id"] for row in rows.values()} == {master_key_id(keys[0])}
    await assert_readable(messaging_with(services.db, Keyring(keys)), bob, sent)
    with pytest.raises(CryptoError):
        await services.messaging.get_message(bob.user, next(iter(sent)))


def test_rotate_key_with_the_key_in_the_environment_needs_a_new_key_file(
    database_url: str, repo_root: Path
) -> None:
    """With REALTIME_MASTER_KEY and no --new-key-file, rotate-key refuses and says why."""
    done = subprocess.run(
        [sys.executable, "-m", "realtime", "rotate-key"],
        env=clean_environment(
            REALTIME_DATABASE_URL=database_url,
            REALTIME_MASTER_KEY="dGVzdCBtYXN0ZXIga2V5IG9mIDMyIGJ5dGVzIGxvbmc=",
        ),
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "--new-key-file" in done.stderr
    assert "Traceback" not in done.stderr


async def test_rotate_key_from_the_environment_prepares_a_key_file_and_rewraps_nothing(
    raw_db: asyncpg.Connection, make_user: MakeUser, database_url: str, tmp_path: Path,
    repo_root: Path,
) -> None:
    """With REALTIME_MASTER_KEY, rotate-key writes the new and the current key to the given
    file and leaves the rows alone, since running nodes could not open re-wrapped ones yet."""
    await send_some(make_user, 2)
    before = await stored(raw_db)
    key_file = tmp_path / "next.key"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "realtime", "rotate-key", "--new-key-file", str(key_file)],
        env=clean_environment(
            REALTIME_DATABASE_URL=database_url,
            REALTIME_MASTER_KEY=base64.b64encode(TEST_MASTER_KEY).decode(),
        ),
        cwd=repo_root, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    keys = read_key_file(key_file)
    assert len(keys) == 2 and keys[1] == TEST_MASTER_KEY and keys[0] != TEST_MASTER_KEY
    assert "REALTIME_MASTER_KEY_FILE" in done.stdout
    assert await stored(raw_db) == before


async def test_a_node_reading_the_key_file_follows_a_rotation(
    services: Services, make_user: MakeUser, tmp_path: Path
) -> None:
    """A running node whose key file is rotated under it reads re-wrapped messages and wraps
    new ones under the new key, once its watch has seen the file change."""
    key_file = tmp_path / "master.key"
    write_key_file(key_file, [TEST_MASTER_KEY])
    node_settings = Settings(database_url="postgresql://unused", master_key_file=key_file)
    node_keyring = load_keyring(node_settings)
    watch = KeyFileWatch(key_file)
    node = messaging_with(services.db, node_keyring)
    bob, sent = await send_some(make_user, 2)
    assert watch() is None

    new_key = generate_master_key()
    write_key_file(key_file, [new_key, TEST_MASTER_KEY])
    node_keyring.replace(watch() or [])
    await rotate_master_key(services.db, Keyring([new_key, TEST_MASTER_KEY]))
    write_key_file(key_file, [new_key])
    node_keyring.replace(watch() or [])

    await assert_readable(node, bob, sent)
    assert node_keyring.current_id == master_key_id(new_key)
    assert node_keyring.new_envelope("messages/any")[1].key_id == master_key_id(new_key)


async def test_a_second_rotation_cannot_run_beside_the_first(tmp_path: Path) -> None:
    """While one rotation holds the key file, another is refused with a clear error."""
    key_file = tmp_path / "master.key"
    write_key_file(key_file, [TEST_MASTER_KEY])
    with rotation_lock(key_file), pytest.raises(ConfigError, match="another key rotation"):
        with rotation_lock(key_file):
            pass


async def test_a_retry_after_a_rotation_gets_the_first_answer(
    live: LiveServer, make_user: MakeUser, services: Services,
    settings: Settings,
) -> None:
    """A send retried with its Idempotency-Key after `rotate-key`, through a node holding only
    the new master key, gets the first answer; another request under that key still gets 409."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    request = {"to": [{"kind": "user", "id": bob.id}], "subject": "once", "body": "only once"}
    key = {"Idempotency-Key": "retry-across-a-rotation"}
    first = await alice.http.post("/api/messages", json=request, headers=key)
    assert first.status_code == 201, first.text
    new_key = generate_master_key()
    await rotate_master_key(services.db, Keyring([new_key, TEST_MASTER_KEY]))
    with live_server(settings.with_overrides(master_key=new_key)) as rotated:
        async with httpx.AsyncClient(base_url=rotated.url, headers=alice.headers()) as http:
            retry = await http.post("/api/messages", json=request, headers=key)
            changed = {**request, "body": "something else"}
            other = await http.post("/api/messages", json=changed, headers=key)
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert other.status_code == 409, other.text
