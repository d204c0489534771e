"""One-to-one sends that arrive together are written together, each as if it were alone."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from realtime.app import Services
from realtime.drafts import Draft, Target
from realtime.errors import InvalidInput
from realtime.models import AddresseeKind, SendReceipt
from tests.conftest import LoggedInUser, MakeUser
from tests.messages_support import disable, events_of, send, send_ok, unread, user


def draft_to(recipient_id: uuid.UUID, subject: str, **fields: object) -> Draft:
    return Draft(
        to=(Target(AddresseeKind.USER, recipient_id),), subject=subject, body=f"{subject} body",
        **fields,  # type: ignore[arg-type]
    )


async def send_together(
    services: Services, sends: list[tuple[LoggedInUser, Draft]]
) -> list[SendReceipt | BaseException]:
    """Start every send in the same turn of the event loop (their budget already spent, as
    the authentication does), so that they reach the database together."""
    return await asyncio.gather(
        *(services.messaging.send(sender.user, draft, None, spent=True)
          for sender, draft in sends),
        return_exceptions=True,
    )


async def test_sends_to_one_user_at_once_get_consecutive_seqs_and_counts(
    services: Services, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Forty messages sent to one user at the same moment, from four senders: each is stored
    whole, the user's events number 1 to 40 without a gap, each `message.new` carries the
    unread count right after it, and all forty were written by one statement (one instant)."""
    bob = await make_user()
    senders = [await make_user() for _ in range(4)]
    sends = [(senders[n % 4], draft_to(bob.user.id, f"together {n}")) for n in range(40)]
    receipts = await send_together(services, sends)
    assert all(isinstance(r, SendReceipt) for r in receipts), receipts
    ids = [str(r.id) for r in receipts if isinstance(r, SendReceipt)]
    assert len({r.sent_at for r in receipts if isinstance(r, SendReceipt)}) == 1
    events = await events_of(raw_db, bob)
    assert [e["seq"] for e in events] == list(range(1, 41))
    assert [e["payload"]["unread"] for e in events] == list(range(1, 41))
    assert sorted(e["payload"]["message_id"] for e in events) == sorted(ids)
    assert (await unread(bob))["count"] == 40
    for (sender, draft), message_id in zip(sends, ids, strict=True):
        stored = await raw_db.fetchrow(
            """select m.sender_id, m.recipient_count, a.kind, a.target_id, a.name
               from messages m join message_addressees a on a.message_id = m.id
               where m.id = $1::uuid""", message_id,
        )
        assert stored["sender_id"] == sender.user.id and stored["recipient_count"] == 1
        assert (stored["kind"], stored["target_id"]) == ("user", bob.user.id)
        assert stored["name"] == bob.user.display_name
        opened = await services.messaging.get_message(bob.user, uuid.UUID(message_id))
        assert opened.subject == draft.subject and opened.body == draft.body


async def test_a_refused_send_among_others_fails_alone(
    services: Services, make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Sends to an unknown user and to a disabled one, in the same moment as good ones, are
    refused as they are when sent alone, write nothing, and the others are delivered."""
    alice, bob, carol, gone = [await make_user() for _ in range(4)]
    await disable(admin, gone)
    unknown = uuid.UUID("00000000-0000-4000-8000-000000000000")
    alone = [
        (await send(alice, [{"kind": "user", "id": str(unknown)}])).json()["error"],
        (await send(carol, [user(gone)])).json()["error"],
    ]
    sends = [
        (alice, draft_to(bob.user.id, "to bob")),
        (alice, draft_to(unknown, "to nobody")),
        (carol, draft_to(gone.user.id, "to a disabled user")),
        (carol, draft_to(bob.user.id, "to bob again")),
    ]
    outcomes = await send_together(services, sends)
    assert isinstance(outcomes[0], SendReceipt) and isinstance(outcomes[3], SendReceipt)
    refused = [outcomes[1], outcomes[2]]
    assert all(isinstance(error, InvalidInput) for error in refused), refused
    assert [{"code": "invalid", "message": str(error), "fields": error.fields}
            for error in refused if isinstance(error, InvalidInput)] == alone
    assert [e["seq"] for e in await events_of(raw_db, bob)] == [1, 2]
    assert await events_of(raw_db, gone) == []
    written = await raw_db.fetchval(
        "select count(*) from messages where sender_id = any($1)", [alice.user.id, carol.user.id]
    )
    assert written == 2


async def test_batched_and_single_sends_share_one_user_seqs(
    services: Services, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Sends written together, sends to a group of users and replies, to the same user at
    the same moment, still give that user one gapless order of events."""
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    first = await send_ok(alice, bob)
    sends: list[tuple[LoggedInUser, Draft]] = []
    for n in range(10):
        sends.append((alice, draft_to(bob.user.id, f"one {n}")))
        sends.append((carol, Draft(
            to=(Target(AddresseeKind.USER, bob.user.id), Target(AddresseeKind.USER, alice.user.id)),
            subject=f"two {n}", body="b",
        )))
        sends.append((alice, draft_to(bob.user.id, f"reply {n}", reply_to=uuid.UUID(first))))
    outcomes = await send_together(services, sends)
    assert all(isinstance(o, SendReceipt) for o in outcomes), outcomes
    events = await events_of(raw_db, bob)
    assert [e["seq"] for e in events] == list(range(1, 32))
    assert [e["payload"]["unread"] for e in events] == list(range(1, 32))


@pytest.mark.parametrize("count", [150])
async def test_more_sends_than_one_statement_holds_are_all_written(
    services: Services, make_user: MakeUser, raw_db: asyncpg.Connection, count: int
) -> None:
    """More sends at once than one statement writes (100) are written by the next ones."""
    alice, bob = await make_user(), await make_user()
    outcomes = await send_together(
        services, [(alice, draft_to(bob.user.id, f"many {n}")) for n in range(count)]
    )
    assert all(isinstance(o, SendReceipt) for o in outcomes)
    assert [e["seq"] for e in await events_of(raw_db, bob)] == list(range(1, count + 1))
    assert len({o.sent_at for o in outcomes if isinstance(o, SendReceipt)}) > 1
