"""The expirer on a real PostgreSQL: on time, once each across nodes, in bursts, live."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from realtime.api.http import Services
from realtime.config import Settings
from realtime.db import EmbeddedPostgres
from realtime.events import EventLog
from realtime.expiry import BATCH, purge_once
from realtime.models import EventType
from realtime.store import events as event_store
from tests.conftest import PASSWORD, MakeUser, log_in
from tests.live_server import LiveServer, live_server
from tests.messages_support import count_rows, events_of, send_ok, stored_counts
from tests.timing import TIME_FACTOR, eventually
from tests.ws_support import frames_until, next_frame, of_type, open_socket, send

ON_TIME = 1.0  # the deadline the contract sets between expiry and deletion: never scaled


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def gone_at(raw_db: asyncpg.Connection, message_id: str, give_up: float) -> datetime:
    """Poll until the message's row is gone; return when (by the database's clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up
    query = "select count(*) from messages where id = $1"
    while await raw_db.fetchval(query, uuid.UUID(message_id)):
        assert loop.time() < deadline, "the message was not deleted"
        await asyncio.sleep(0.01)
    moment: datetime = await raw_db.fetchval("select clock_timestamp()")
    return moment


async def expired_events(raw_db: asyncpg.Connection) -> Counter[tuple[uuid.UUID, str]]:
    rows = await raw_db.fetch(
        """select user_id, payload->>'message_id' as message_id from events
           where type = 'message.deleted' and payload->>'reason' = 'expired'"""
    )
    return Counter((row["user_id"], row["message_id"]) for row in rows)


async def test_a_message_is_hidden_at_its_expiry_and_deleted_within_a_second(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A message expiring in 1 s disappears from every endpoint at that instant and from the
    database within 1 s after, with its recipients, To field and ciphertexts; the sender and
    the recipient each get one message.deleted with reason expired."""
    alice, bob = await make_user(), await make_user()
    expires_at = in_seconds(1)
    fleeting = await send_ok(alice, bob, expires_at=expires_at, body="burn after reading")
    assert (await bob.http.get(f"/api/messages/{fleeting}")).status_code == 200
    deleted_at = await gone_at(raw_db, fleeting, give_up=10 * TIME_FACTOR)
    lateness = deleted_at - datetime.fromisoformat(expires_at)
    assert lateness < timedelta(seconds=ON_TIME), lateness
    assert await stored_counts(raw_db) == {
        "messages": 0, "message_recipients": 0, "message_addressees": 0, "events": 3,
    }
    assert (await bob.http.get(f"/api/messages/{fleeting}")).status_code == 404
    assert await expired_events(raw_db) == Counter(
        {(alice.user.id, fleeting): 1, (bob.user.id, fleeting): 1}
    )


async def test_a_message_expiring_sooner_than_any_other_wakes_the_expirer(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """With a message pending for an hour, one sent on another node to expire in a second is
    still deleted on time: the send wakes the sleeping expirer through the database."""
    alice, bob = await make_user(), await make_user()
    await send_ok(alice, bob, expires_at=in_seconds(3600))
    await asyncio.sleep(0.2)  # the expirer is asleep until the hour is up
    expires_at = in_seconds(1)
    soon = await send_ok(alice, bob, expires_at=expires_at)
    deleted_at = await gone_at(raw_db, soon, give_up=10 * TIME_FACTOR)
    assert deleted_at - datetime.fromisoformat(expires_at) < timedelta(seconds=ON_TIME)
    assert await count_rows(raw_db, "messages") == 1


async def test_nodes_sharing_a_database_delete_each_message_once(
    settings: Settings, services: Services, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Two nodes' expirers over one database delete every message exactly once and write
    exactly one expired event per user and message."""
    people = [await make_user() for _ in range(4)]
    gate = asyncio.Semaphore(8)  # within the requests one user may have in flight at once

    async def send(n: int) -> str:
        async with gate:
            return await send_ok(people[n % 4], people[(n + 1) % 4], people[(n + 2) % 4],
                                 expires_at=expires_at)

    with live_server(settings), live_server(settings):
        # Room for 120 sends on a busy machine: all of them before any expires.
        expires_at = in_seconds(3 * TIME_FACTOR)
        sent = await asyncio.gather(*(send(n) for n in range(120)))
        await eventually(
            lambda: _none_left(raw_db), "every message to be deleted", within=10
        )
    told = await expired_events(raw_db)
    expected = Counter({
        (people[(n + shift) % 4].user.id, sent[n]): 1 for n in range(120) for shift in (0, 1, 2)
    })
    assert told == expected


async def _none_left(raw_db: asyncpg.Connection) -> bool:
    return await count_rows(raw_db, "messages") == 0


async def test_a_connected_recipient_is_told_at_once(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A message expiring while its recipient is connected produces message.deleted (reason
    expired) on the socket, with the unread count without it."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        message_id = await send(alice, bob, expires_at=in_seconds(1))
        frames = await frames_until(ws, "message.deleted", wait=10 * TIME_FACTOR)
        assert of_type(frames, "message.new")[0]["message"]["id"] == message_id
        assert of_type(frames, "message.new")[0]["unread"] == 1
        assert frames[-1]["message_id"] == message_id and frames[-1]["reason"] == "expired"
        assert frames[-1]["unread"] == 0


async def test_frames_hello_and_the_unread_endpoint_agree_on_the_unread_count(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Through sends, a read, deletes of a read and an unread message, a recall and an expiry,
    each event frame carries the count right after it; then a new tab's hello, its replay of
    the whole log and GET /api/unread all say the same count, for the recipient and the
    sender."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    async with await open_socket(live, bob) as bob_ws, await open_socket(live, alice) as alice_ws:
        await next_frame(bob_ws), await next_frame(alice_ws)
        first, second, recalled = [await send(alice, bob) for _ in range(3)]
        assert (await bob.http.post(f"/api/messages/{first}/read")).status_code == 200
        assert (await bob.http.delete(f"/api/messages/{first}")).status_code == 204
        assert (await bob.http.delete(f"/api/messages/{second}")).status_code == 204
        assert (await alice.http.delete(f"/api/messages/{recalled}")).status_code == 204
        await send(alice, bob)
        fleeting = await send(alice, bob, expires_at=in_seconds(1))
        frames = await frames_until(bob_ws, "message.deleted", wait=10 * TIME_FACTOR)
        while (frames[-1]["message_id"], frames[-1]["reason"]) != (fleeting, "expired"):
            frames += await frames_until(bob_ws, "message.deleted", wait=10 * TIME_FACTOR)
        assert [(f["type"], f["unread"]) for f in frames] == [
            ("message.new", 1), ("message.new", 2), ("message.new", 3),
            ("message.read", 2),  # first, read
            ("message.deleted", 2),  # first, deleted once read: no change
            ("message.deleted", 1),  # second, deleted unread
            ("message.deleted", 0),  # recalled
            ("message.new", 1), ("message.new", 2),
            ("message.deleted", 1),  # fleeting, expired
        ]
        assert of_type(frames, "unread") == []
        alice_frames = await frames_until(alice_ws, "message.deleted")
        assert [(f["type"], f["unread"]) for f in alice_frames] == [
            ("message.read", 0), ("message.deleted", 0)
        ]
    for person, count in ((bob, 1), (alice, 0)):
        assert (await person.http.get("/api/unread")).json()["count"] == count
        async with await open_socket(live, person) as ws:
            hello = await next_frame(ws)
            assert hello["unread"] == count
            await ws.send('{"type":"resume","after_seq":0}')
            replayed = await frames_until(ws, "resumed")
        events = [f for f in replayed if f["type"] != "resumed"]
        assert events[-1]["seq"] == hello["seq"] and events[-1]["unread"] == count
        assert of_type(replayed, "unread") == []


async def test_a_burst_of_several_batches_expiring_at_once_is_deleted_within_five_seconds(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Three batches' worth of messages expiring at the same moment are all deleted within 5 s
    of it, batch after batch without a pause, each with its events once. (How many a second the
    expirer deletes is bench/expiry.py's to measure: 100,000 at once there.)"""
    alice, bob = await make_user(), await make_user()
    count = 3 * BATCH
    expires_at = datetime.now(UTC) + timedelta(seconds=2)
    ids = [uuid.uuid4() for _ in range(count)]
    await raw_db.copy_records_to_table(
        "messages",
        records=[
            (message_id, alice.user.id, datetime.now(UTC), expires_at, "k", os.urandom(60),
             os.urandom(40), os.urandom(40), 1)
            for message_id in ids
        ],
        columns=["id", "sender_id", "sent_at", "expires_at", "key_id", "wrapped_key", "subject",
                 "body", "recipient_count"],
    )
    await raw_db.copy_records_to_table(
        "message_recipients",
        records=[(message_id, bob.user.id, datetime.now(UTC), expires_at, False)
                 for message_id in ids],
        columns=["message_id", "user_id", "sent_at", "expires_at", "high_priority"],
    )
    await raw_db.execute("select pg_notify('realtime_expiry', $1)", expires_at.isoformat())
    await eventually(
        lambda: _none_left(raw_db), "the burst to be deleted",
        within=(expires_at - datetime.now(UTC)).total_seconds() + 5,
    )
    told = await expired_events(raw_db)
    assert len(told) == 2 * count and set(told.values()) == {1}


async def test_events_older_than_the_retention_are_purged_and_resume_asks_for_resync(
    services: Services, settings: Settings, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Events older than REALTIME_EVENT_RETENTION are purged, newer ones kept; resuming from
    before the purged ones is answered resync, from after them replays."""
    alice, bob = await make_user(), await make_user()
    for _ in range(3):
        await send_ok(alice, bob)
    await raw_db.execute(
        "update events set created_at = now() - interval '8 days' where user_id = $1 and seq < 3",
        bob.user.id,
    )
    purged = await purge_once(services.db, settings)
    assert purged.events == 2
    assert [e["seq"] for e in await events_of(raw_db, bob)] == [3]
    log = EventLog(services.db)
    assert (await log.after(bob.user.id, 0)).too_old
    kept = await log.after(bob.user.id, 2)
    assert not kept.too_old and [e.seq for e in kept.events] == [3]


async def test_the_expirer_survives_a_database_restart(settings: Settings) -> None:
    """With its database stopped and started again, a node's expirer reconnects and deletes
    what expired meanwhile, and what expires afterwards on time."""
    root = Path(tempfile.mkdtemp(prefix="realtime-test-restart-"))
    database = EmbeddedPostgres(root / "data")
    try:
        url = await asyncio.to_thread(database.start)
        restarted = settings.with_overrides(database_url=url)
        with live_server(restarted) as node:
            async with httpx.AsyncClient(base_url=node.url) as http:
                await log_in(http, "admin", "first-admin-password")
                answer = await http.post("/api/admin/users", json={
                    "username": "bob", "password": PASSWORD})
                assert answer.status_code == 201, answer.text
                bob = answer.json()["id"]
                during = await _send_expiring(http, bob, in_seconds=3)
                await asyncio.to_thread(database.stop)
                with pytest.raises(OSError):
                    await asyncpg.connect(url, timeout=2)
                await asyncio.sleep(4 * TIME_FACTOR)  # it expires while the database is down
                assert await asyncio.to_thread(database.start) == url
                conn = await asyncpg.connect(url)
                try:
                    await gone_at(conn, during, give_up=15 * TIME_FACTOR)
                    after = await _send_expiring(http, bob, in_seconds=1)
                    await gone_at(conn, after, give_up=10 * TIME_FACTOR)
                    told = await expired_events(conn)
                    assert told[(uuid.UUID(bob), during)] == 1
                    assert told[(uuid.UUID(bob), after)] == 1
                finally:
                    await conn.close()
    finally:
        await asyncio.to_thread(database.stop)
        shutil.rmtree(root, ignore_errors=True)


async def _send_expiring(http: httpx.AsyncClient, to: str, in_seconds: float) -> str:
    answer = await http.post("/api/messages", json={
        "to": [{"kind": "user", "id": to}], "subject": "brief",
        "expires_at": (datetime.now(UTC) + timedelta(seconds=in_seconds)).isoformat(),
    })
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def test_a_batch_of_events_gives_each_user_consecutive_seqs_in_the_order_given(
    services: Services, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Several events for one user in one batch (as an expiry batch writes them) take that
    user's next seqs in the order given, and each keeps its own payload."""
    alice, bob = await make_user(), await make_user()
    await send_ok(alice, bob)  # bob's counter is at 1 already
    deleted = EventType.MESSAGE_DELETED
    entries = [
        (bob.user.id, deleted, {"message_id": "first", "reason": "expired"}),
        (alice.user.id, deleted, {"message_id": "first", "reason": "expired"}),
        (bob.user.id, deleted, {"message_id": "second", "reason": "expired"}),
    ]
    async with services.db.transaction() as conn:
        events = await event_store.append_each(conn, entries)
    assert [(e.user_id, e.seq, e.payload["message_id"]) for e in events] == [
        (bob.user.id, 2, "first"), (alice.user.id, 1, "first"), (bob.user.id, 3, "second"),
    ]
    stored = [(e["seq"], e["payload"]["message_id"]) for e in await events_of(raw_db, bob)]
    assert stored[1:] == [(2, "first"), (3, "second")]
