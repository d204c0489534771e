"""The expirer on a real PostgreSQL: on time, once each across nodes, in bursts, live."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from realtime.api.http import Services
from realtime.config import Settings
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import count_rows, send_ok, stored_counts
from tests.redis_support import TIME_FACTOR, eventually
from tests.ws_support import frames_until, next_frame, of_type, open_socket, send

ON_TIME = 1.0 * TIME_FACTOR  # the deadline the contract sets between expiry and deletion


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
    with live_server(settings), live_server(settings):
        expires_at = in_seconds(1.5)
        sent = await asyncio.gather(*(
            send_ok(people[n % 4], people[(n + 1) % 4], people[(n + 2) % 4],
                    expires_at=expires_at)
            for n in range(120)
        ))
        await eventually(
            lambda: _none_left(raw_db), "every message to be deleted", within=10 * TIME_FACTOR
        )
    told = await expired_events(raw_db)
    expected = Counter({
        (people[(n + shift) % 4].user.id, sent[n]): 1 for n in range(120) for shift in (0, 1, 2)
    })
    assert told == expected


async def _none_left(raw_db: asyncpg.Connection) -> bool:
    return await count_rows(raw_db, "messages") == 0


async def test_a_connected_recipient_is_told_at_once(
    live: LiveServer, people: Any, raw_db: asyncpg.Connection
) -> None:
    """A message expiring while its recipient is connected produces message.deleted (reason
    expired) on the socket, then the unread count without it."""
    alice, bob = await people(), await people()
    async with await open_socket(live, bob) as ws:
        await next_frame(ws)
        message_id = await send(alice, bob, expires_at=in_seconds(1))
        frames = await frames_until(ws, "message.deleted", wait=10 * TIME_FACTOR)
        assert of_type(frames, "message.new")[0]["message"]["id"] == message_id
        assert frames[-1]["message_id"] == message_id and frames[-1]["reason"] == "expired"
        later = await frames_until(ws, "unread")
        assert later[-1]["count"] == 0


async def test_a_burst_of_ten_thousand_expiring_in_one_second_is_deleted_within_five(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """10,000 messages expiring within the same second are all deleted within 5 s of it, each
    with its events."""
    alice, bob = await make_user(), await make_user()
    count = 10_000
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
        within=(expires_at - datetime.now(UTC)).total_seconds() + 5 * TIME_FACTOR,
    )
    told = await expired_events(raw_db)
    assert len(told) == 2 * count and set(told.values()) == {1}
