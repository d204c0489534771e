"""The hub's fan-out, and seq order under concurrent commits."""

from __future__ import annotations

import asyncio
import time
import uuid

from realtime.api.http import Services
from realtime.broker.memory import MemoryBroker
from realtime.events import EventLog
from realtime.live.connection import QUEUE_SIZE, Connection, Replayed
from realtime.live.hub import ENDS_REMEMBERED, Hub
from realtime.models import EventType
from realtime.protocol import (
    EndSessions,
    MessageNew,
    NewToMany,
    Published,
    Recipient,
    decode,
)
from realtime.store import events as event_store
from tests.conftest import MakeUser
from tests.timing import eventually


async def _nothing_to_replay(user_id: uuid.UUID, after_seq: int) -> Replayed:
    return Replayed([], after_seq)


async def _alive(session_id: uuid.UUID) -> bool:
    return True


async def test_a_socket_that_never_reads_is_closed_1013_while_others_keep_receiving() -> None:
    """A socket whose writes never complete is closed with 1013 once its queue is full; the
    user's other socket receives every frame, in order."""
    hub = Hub(
        broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
        max_sockets_per_user=20,
    )
    user = uuid.uuid4()
    stuck, closed = asyncio.Event(), asyncio.Event()
    received: list[str] = []
    codes: list[int] = []

    async def never_done(frame: str) -> None:
        await stuck.wait()

    async def record_close(code: int, reason: str) -> None:
        codes.append(code)
        closed.set()

    async def receive(frame: str) -> None:
        received.append(frame)

    async def ignore_close(code: int, reason: str) -> None:
        raise AssertionError("the reading socket must stay open")

    slow = Connection(user, uuid.uuid4(), send=never_done, close=record_close)
    fast = Connection(user, uuid.uuid4(), send=receive, close=ignore_close)
    for conn in (slow, fast):
        await hub.register(conn)
        hub.start(conn)
    total = QUEUE_SIZE + 20
    for seq in range(1, total + 1):
        hub.deliver(user, Published(seq, b'{"seq":%d}' % seq).pack())
        await asyncio.sleep(0)
    await asyncio.wait_for(closed.wait(), 5)
    assert codes == [1013]
    await asyncio.sleep(0)
    assert received == [f'{{"seq":{seq}}}' for seq in range(1, total + 1)]
    assert hub.connections == 1
    await hub.close_all()


async def test_a_socket_whose_write_fails_is_closed_1013_and_never_left_silent() -> None:
    """A write that fails (the replay's database gone, the transport broken) closes that socket
    with 1013, so its client reconnects and resumes, instead of leaving it open and deaf."""
    hub = Hub(
        broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
        max_sockets_per_user=20,
    )
    user, received, codes = uuid.uuid4(), asyncio.Queue[str](), asyncio.Queue[int]()

    async def broken(frame: str) -> None:
        raise ConnectionResetError("the transport is gone")

    async def record_close(code: int, reason: str) -> None:
        await codes.put(code)

    async def ignore_close(code: int, reason: str) -> None:
        raise AssertionError("the working socket must stay open")

    failing = Connection(user, uuid.uuid4(), send=broken, close=record_close)
    working = Connection(user, uuid.uuid4(), send=received.put, close=ignore_close)
    for conn in (failing, working):
        await hub.register(conn)
        hub.start(conn)
    for seq in (1, 2):
        hub.deliver(user, Published(seq, b'{"seq":%d}' % seq).pack())
    assert await asyncio.wait_for(codes.get(), 5) == 1013
    assert [await received.get(), await received.get()] == ['{"seq":1}', '{"seq":2}']
    assert hub.connections == 1
    hub.deliver(user, Published(3, b'{"seq":3}').pack())
    assert await asyncio.wait_for(received.get(), 5) == '{"seq":3}'
    assert codes.empty()
    await hub.close_all()


async def test_an_unread_count_older_than_the_sockets_is_never_sent() -> None:
    """An event frame, with the unread count it carries, for a seq the socket already has (a
    batch from another node arriving late) is dropped; a newer one is sent, and an older one
    after it is not: the count never goes back."""
    hub = Hub(
        broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
        max_sockets_per_user=20,
    )
    user, received = uuid.uuid4(), asyncio.Queue[str]()

    async def ignore_close(code: int, reason: str) -> None:
        raise AssertionError("the socket must stay open")

    conn = Connection(user, uuid.uuid4(), send=received.put, close=ignore_close)
    conn.last_seq = 6  # what its hello said
    await hub.register(conn)
    hub.start(conn)
    for seq, count in ((5, 1), (6, 2), (8, 4), (7, 3)):
        frame = b'{"seq":%d,"unread":%d}' % (seq, count)
        hub.deliver(user, Published(seq, frame).pack())
    hub.send_soon(conn, '{"type":"pong"}')
    assert await received.get() == '{"seq":8,"unread":4}'
    assert await received.get() == '{"type":"pong"}'
    await hub.close_all()


async def test_seqs_follow_commit_order_whatever_order_the_sends_started_in(
    services: Services, make_user: MakeUser
) -> None:
    """A send that drew its seq first holds the user's counter until it commits: a second send
    that started meanwhile waits, commits after it and gets the next seq, and a client that
    resumed after the first seq still receives the second."""
    bob = await make_user()
    payload = {"message_id": str(uuid.uuid4())}
    async with services.db.pool.acquire() as conn_a, services.db.pool.acquire() as conn_b:
        first = conn_a.transaction()
        await first.start()
        [event_a] = await event_store.append_events(
            conn_a, [bob.user.id], EventType.MESSAGE_NEW, payload
        )
        second = conn_b.transaction()
        await second.start()
        drawing = asyncio.create_task(
            event_store.append_events(conn_b, [bob.user.id], EventType.MESSAGE_NEW, payload)
        )
        done, _ = await asyncio.wait([drawing], timeout=0.3)
        assert not done, "the second send must wait for the first to commit"
        await first.commit()
        [event_b] = await drawing
        await second.commit()
    assert event_b.seq == event_a.seq + 1
    backlog = await EventLog(services.db).after(bob.user.id, event_a.seq)
    assert [event.seq for event in backlog.events] == [event_b.seq]


async def test_a_send_to_many_reaches_the_tabs_held_here_each_with_its_own_frame() -> None:
    """A payload for every node writes `message.new` to every tab here of each user it names,
    with that user's seq and count around the one summary; users it names that hold no socket
    here, and sockets of users it does not name, get nothing."""
    hub = Hub(broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
              max_sockets_per_user=20)
    two_tabs, one_tab, bystander, elsewhere = (uuid.uuid4() for _ in range(4))
    received: dict[uuid.UUID, list[list[str]]] = {two_tabs: [[], []], one_tab: [[]],
                                                  bystander: [[]]}

    async def ignore_close(code: int, reason: str) -> None:
        raise AssertionError("no socket is closed")

    for user, tabs in received.items():
        for tab in tabs:
            async def receive(frame: str, into: list[str] = tab) -> None:
                into.append(frame)

            conn = Connection(user, uuid.uuid4(), send=receive, close=ignore_close)
            await hub.register(conn)
            hub.start(conn)
    summary = b'{"id":"m","subject":"to many \xc3\xa9"}'
    recipients = [Recipient(elsewhere, 4, 1), Recipient(two_tabs, 7, 3), Recipient(one_tab, 1, 1)]
    hub.deliver(None, NewToMany.of(summary, recipients).pack())
    for _ in range(3):
        await asyncio.sleep(0)
    expected = {two_tabs: MessageNew(7, 3, summary), one_tab: MessageNew(1, 1, summary)}
    for user, frame in expected.items():
        for tab in received[user]:
            assert [decode(text) for text in tab] == [frame]
    assert received[bystander] == [[]]
    await hub.close_all()


async def test_a_session_ended_between_authenticating_and_registering_closes_its_socket() -> None:
    """A socket whose session ended after its authentication began, but before it was
    registered, is closed 4401 at once without asking the database; a socket of another
    session, or authenticated after the end, stays open; one authenticated longer ago than the
    ends are remembered is checked in the database."""
    asked: list[uuid.UUID] = []

    async def deadline_of(session_id: uuid.UUID) -> float | None:
        asked.append(session_id)
        return None  # ended, as far as the database knows

    hub = Hub(broker=MemoryBroker, replay=_nothing_to_replay, session_alive=_alive,
              max_sockets_per_user=20, session_deadline=deadline_of)
    user = uuid.uuid4()
    ended, other, fresh, stale = (uuid.uuid4() for _ in range(4))
    closes: dict[str, list[int]] = {"ended": [], "other": [], "fresh": [], "stale": []}

    def socket(name: str, session_id: uuid.UUID, authenticated_at: float) -> Connection:
        async def send(frame: str) -> None:
            return None

        async def close(code: int, reason: str) -> None:
            closes[name].append(code)

        return Connection(user, session_id, send=send, close=close,
                          authenticated_at=authenticated_at)

    began = time.monotonic()
    early = [socket("ended", ended, began), socket("other", other, began),
             socket("stale", stale, began - ENDS_REMEMBERED - 1)]
    hub.deliver(None, EndSessions(user, (ended,)).pack())  # heard before they registered
    await asyncio.sleep(0.01)
    late = socket("fresh", fresh, time.monotonic())  # logged in again after the end
    far = time.time() + 3600
    for conn in [*early, late]:
        await hub.register(conn)
        hub.watch_session(conn, far)
    await eventually(lambda: closes["ended"] == [4401] and closes["stale"] == [4401], "closed")
    assert asked == [stale]  # only for the socket authenticated too long ago to tell
    await asyncio.sleep(0.05)
    assert closes["other"] == closes["fresh"] == []
    assert hub.connections == 2
    await hub.close_all()
