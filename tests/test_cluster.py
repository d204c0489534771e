"""Several nodes over one database and a real Redis: routing, and outages that lose nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from typing import Any
from uuid import UUID

import httpx
import pytest
from redis.asyncio import Redis

from realtime.api.http import Services
from realtime.broker.redis import (
    BACKOFF_MAX,
    HEARTBEAT_DEADLINE,
    HEARTBEAT_INTERVAL,
)
from realtime.config import Settings
from realtime.live.render import TO_EVERY_NODE_FROM
from realtime.metrics import REGISTRY
from realtime.protocol import EndSessions, NewToMany, Published, Recipient
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.live_server import LiveServer, live_server
from tests.loadtest_support import load_test, make_admin
from tests.redis_support import (
    FreezableProxy,
    RedisServer,
    proxy_fixture,  # noqa: F401 (a fixture)
    raw_subscriber,
    redis_server_fixture,  # noqa: F401 (a fixture)
    redis_url_fixture,  # noqa: F401 (a fixture)
)
from tests.timing import eventually
from tests.ws_support import (
    Inbox,
    frames_until,
    next_frame,
    no_more_frames,
    of_type,
    open_socket,
    send,
)

# Long enough for a dead or silent link to be noticed, a new one made, and the log replayed.
REDIS_TIMEOUT = Settings().redis_timeout.total_seconds()  # each Redis command's bound
RECOVERY = HEARTBEAT_DEADLINE + REDIS_TIMEOUT + HEARTBEAT_INTERVAL + 2 * BACKOFF_MAX + 10
BATCH = 5  # messages sent before, during and after an outage


StartNodes = Callable[[str, int], list[LiveServer]]


@pytest.fixture
def start_nodes(settings: Settings, services: Services) -> Iterator[StartNodes]:
    """Start nodes on the test database and a Redis URL, with a channel prefix of their own."""
    with ExitStack() as stack:

        def start(redis_url: str, count: int) -> list[LiveServer]:
            cluster = settings.with_overrides(
                redis_url=redis_url, redis_prefix=unique_name("cluster")
            )
            return [stack.enter_context(live_server(cluster)) for _ in range(count)]

        yield start


async def ready(node: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.url) as http:
        answer = await http.get("/readyz")
    checks: dict[str, Any] = answer.json()["checks"]
    return checks


async def test_a_message_sent_through_one_node_reaches_the_recipient_on_every_node(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """Sent through node A, a message reaches the recipient's sockets on B and on A, once each;
    the read receipt written through B reaches the sender's socket on A."""
    node_a, node_b = start_nodes(redis_url, 2)
    alice, bob = await make_user(on=node_a), await make_user(on=node_b)
    async with (
        await open_socket(node_a, bob) as bob_on_a,
        await open_socket(node_b, bob) as bob_on_b,
        await open_socket(node_a, alice) as alice_on_a,
    ):
        for ws in (bob_on_a, bob_on_b, alice_on_a):
            assert (await next_frame(ws))["type"] == "hello"
        message_id = await send(alice, bob, subject="across nodes", high_priority=True)
        for ws in (bob_on_a, bob_on_b):
            frames = await frames_until(ws, "message.new")
            assert [f["message"]["id"] for f in of_type(frames, "message.new")] == [message_id]
            assert frames[-1]["unread"] == 1
            assert await no_more_frames(ws) == []
        read = await bob.http.post(f"/api/messages/{message_id}/read")
        assert read.status_code == 200
        receipt = await frames_until(alice_on_a, "message.read")
        assert receipt[-1]["message_id"] == message_id
        assert receipt[-1]["reader"]["id"] == bob.id


async def test_a_send_to_many_crosses_redis_once_and_reaches_each_socket_once_on_every_node(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """A send to many recipients is one sealed payload on the channel every node hears, not
    one per recipient; each recipient's sockets, on either node, get their own `message.new`
    once, with their own seq and count; one offline finds it at login."""
    node_a, node_b = start_nodes(redis_url, 2)
    alice = await make_user(on=node_a)
    recipients = [await make_user(on=node_a if i % 2 else node_b)
                  for i in range(TO_EVERY_NODE_FROM + 1)]
    online, offline = recipients[:-1], recipients[-1]
    earlier = await send(alice, online[0], subject="one before, for a count of two")
    subject = unique_name("to many")
    async with AsyncExitStack() as stack:
        sockets = [(user, await stack.enter_async_context(await open_socket(node, user)))
                   for i, user in enumerate(online) for node in (node_a, node_b)[: 1 + i % 2]]
        for _, ws in sockets:
            assert (await next_frame(ws))["type"] == "hello"
        async with raw_subscriber(redis_url, "*") as seen:
            message_id = await send(alice, *recipients, subject=subject, high_priority=True)
            for user, ws in sockets:
                frames = of_type(await frames_until(ws, "message.new"), "message.new")
                assert [f["message"]["id"] for f in frames] == [message_id]
                assert frames[0]["message"]["subject"] == subject
                assert frames[0]["seq"] == (2 if user is online[0] else 1)
                assert frames[0]["unread"] == (2 if user is online[0] else 1)
            for _, ws in sockets:
                assert await no_more_frames(ws) == []
    crossed = [(channel, payload) for channel, payload in seen if b":node:" not in channel]
    assert [channel.rsplit(b":", 1)[-1] for channel, _ in crossed] == [b"nodes"]
    assert subject.encode() not in crossed[0][1] and message_id.encode() not in crossed[0][1]
    assert earlier != message_id
    async with await open_socket(node_a, offline) as ws:
        hello = await next_frame(ws)
    assert [m["id"] for m in hello["high_priority"]] == [message_id]
    assert hello["unread"] == 1


async def test_a_system_message_crosses_redis_once_and_reaches_every_socket_on_every_node(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """Posted through node A, a system message is one sealed payload on the channel every node
    hears, and so is its withdrawal; each socket of every user, on either node, gets both with
    its user's seqs."""
    node_a, node_b = start_nodes(redis_url, 2)
    admin = await make_user(is_admin=True, on=node_a)
    users = [await make_user(on=node_a) for _ in range(TO_EVERY_NODE_FROM)]
    subject = unique_name("notice")
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(await open_socket(node, user))
                   for i, user in enumerate(users) for node in (node_a, node_b)[: 1 + i % 2]]
        hellos = [await next_frame(ws) for ws in sockets]
        async with raw_subscriber(redis_url, "*") as seen:
            posted = await admin.http.post("/api/admin/system-messages", json={
                "subject": subject, "mode": "dismissible"})
            assert posted.status_code == 201, posted.text
            message_id = posted.json()["id"]
            withdrawn = await admin.http.delete(f"/api/admin/system-messages/{message_id}")
            assert withdrawn.status_code == 204, withdrawn.text
            for ws, hello in zip(sockets, hellos, strict=True):
                first, second = await next_frame(ws), await next_frame(ws)
                assert (first["type"], first["seq"]) == ("system.message", hello["seq"] + 1)
                assert first["message"]["subject"] == subject
                assert second == {"type": "system.withdrawn", "seq": hello["seq"] + 2,
                                  "id": message_id, "reason": "withdrawn"}
            for ws in sockets:
                assert await no_more_frames(ws) == []
    crossed = [(channel, payload) for channel, payload in seen if b":node:" not in channel]
    assert [channel.rsplit(b":", 1)[-1] for channel, _ in crossed] == [b"nodes", b"nodes"]
    assert all(subject.encode() not in payload and message_id.encode() not in payload
               for _, payload in crossed)


async def test_a_user_connected_to_no_node_costs_no_delivery(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """A node delivers only to the users connected to it: a message to someone offline is kept
    in the log and reaches their first socket through hello, on whichever node."""
    node_a, node_b = start_nodes(redis_url, 2)
    alice, bob = await make_user(on=node_a), await make_user(on=node_b)
    await send(alice, bob, subject="while away", high_priority=True)
    async with await open_socket(node_b, bob) as ws:
        hello = await next_frame(ws)
    assert hello["unread"] == 1 and hello["seq"] == 1
    assert [m["subject"] for m in hello["high_priority"]] == ["while away"]


async def send_through_an_outage(
    sender: LoggedInUser,
    recipient: LoggedInUser,
    inbox: Inbox,
    watched: list[LiveServer],
    break_link: Callable[[], None],
    mend_link: Callable[[], Awaitable[None]],
) -> None:
    """Send batches before, during and after an outage: the ones sent during it reach the
    recipient once the link is back, with the unread count, before anything else is sent;
    nothing arrives twice."""
    sent = [await send(sender, recipient, subject=f"before {i}") for i in range(BATCH)]
    break_link()
    await eventually(
        lambda: _all_down(watched), "every node to notice the outage", within=RECOVERY
    )
    sent += [await send(sender, recipient, subject=f"during {i}") for i in range(BATCH)]
    await mend_link()
    await eventually(lambda: _all_up(watched), "every node to reconnect", within=RECOVERY)
    await assert_every_message_arrives_once_in_order(inbox, sent)
    assert inbox.unread() == len(sent), "the count caught up with what was replayed"
    sent += [await send(sender, recipient, subject=f"after {i}") for i in range(BATCH)]
    await assert_every_message_arrives_once_in_order(inbox, sent)


async def _all_down(nodes: list[LiveServer]) -> bool:
    return all([not (await ready(node))["broker"] for node in nodes])


async def _all_up(nodes: list[LiveServer]) -> bool:
    return all([(await ready(node))["broker"] for node in nodes])


async def assert_every_message_arrives_once_in_order(inbox: Inbox, sent: list[str]) -> None:
    await eventually(
        lambda: set(inbox.new_messages()) >= set(sent),
        "every message to reach the socket, live or replayed",
        within=RECOVERY,
    )
    await asyncio.sleep(0.3)  # time for a duplicate to show
    assert inbox.new_messages() == sent
    seqs = inbox.seqs()
    assert seqs == sorted(set(seqs)), "each seq once, in increasing order"


async def test_redis_killed_while_messages_are_sent_loses_nothing(
    start_nodes: StartNodes, make_user: MakeUser, redis_server: RedisServer
) -> None:
    """With Redis stopped mid-stream and started again, the recipient's socket on the other
    node still gets every message once, in order, live or replayed; HTTP keeps working."""
    node_a, node_b = start_nodes(redis_server.url, 2)
    alice, bob = await make_user(on=node_a), await make_user(on=node_b)
    async with await open_socket(node_b, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        inbox = Inbox(ws)
        try:
            await send_through_an_outage(
                alice, bob, inbox, [node_a, node_b], redis_server.stop, redis_server.start
            )
        finally:
            await inbox.stop()


async def test_a_send_to_many_while_redis_is_down_reaches_every_socket_once_after(
    start_nodes: StartNodes, make_user: MakeUser, redis_server: RedisServer
) -> None:
    """A send to many made while Redis is down (its one payload for every node lost) reaches
    every recipient's socket, on either node, from the log once the link is back: each socket
    has every message once, in order, with the sends before and after it."""
    node_a, node_b = start_nodes(redis_server.url, 2)
    nodes = [node_a, node_b]
    alice = await make_user(on=node_a)
    recipients = [await make_user(on=nodes[i % 2]) for i in range(TO_EVERY_NODE_FROM)]
    async with AsyncExitStack() as stack:
        inboxes = []
        for i, user in enumerate(recipients):
            ws = await stack.enter_async_context(await open_socket(nodes[i % 2], user))
            assert (await next_frame(ws))["type"] == "hello"
            inbox = Inbox(ws)
            stack.push_async_callback(inbox.stop)
            inboxes.append(inbox)
        sent = [await send(alice, *recipients, subject="before the outage")]
        redis_server.stop()
        await eventually(lambda: _all_down(nodes), "every node to notice", within=RECOVERY)
        sent.append(await send(alice, *recipients, subject="during the outage"))
        await redis_server.start()
        await eventually(lambda: _all_up(nodes), "every node to reconnect", within=RECOVERY)
        sent.append(await send(alice, *recipients, subject="after the outage"))
        for inbox in inboxes:
            await assert_every_message_arrives_once_in_order(inbox, sent)
            assert inbox.unread() == len(sent)


async def test_redis_frozen_half_open_while_messages_are_sent_loses_nothing(
    start_nodes: StartNodes, make_user: MakeUser, proxy: FreezableProxy
) -> None:
    """With the link to Redis silent but open, each node's heartbeat notices, it reconnects once
    the link flows, and the recipient's socket gets every message once, in order."""
    node_a, node_b = start_nodes(proxy.url, 2)
    alice, bob = await make_user(on=node_a), await make_user(on=node_b)

    async def thaw() -> None:
        proxy.thaw()

    async with await open_socket(node_b, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        inbox = Inbox(ws)
        try:
            await send_through_an_outage(
                alice, bob, inbox, [node_a, node_b], proxy.freeze, thaw
            )
        finally:
            await inbox.stop()


async def test_a_node_started_while_redis_is_down_serves_and_catches_up(
    start_nodes: StartNodes, make_user: MakeUser, redis_server: RedisServer
) -> None:
    """A node whose Redis is down at start still serves HTTP and sockets, answers not ready,
    and delivers what was sent meanwhile once Redis is back."""
    redis_server.stop()
    (node,) = start_nodes(redis_server.url, 1)
    assert (await ready(node))["broker"] is False
    alice, bob = await make_user(on=node), await make_user(on=node)
    async with await open_socket(node, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        inbox = Inbox(ws)
        try:
            sent = [await send(alice, bob, subject=f"down {i}") for i in range(BATCH)]
            await redis_server.start()
            await eventually(lambda: _all_up([node]), "the node to connect", within=RECOVERY)
            await assert_every_message_arrives_once_in_order(inbox, sent)
            sent.append(await send(alice, bob, subject="up"))
            await assert_every_message_arrives_once_in_order(inbox, sent)
        finally:
            await inbox.stop()


async def test_a_load_test_across_two_nodes_loses_nothing(
    start_nodes: StartNodes, services: Services, redis_url: str
) -> None:
    """`realtime loadtest` given both nodes (sockets and sends spread over them): every event
    arrives once, one-to-one and to groups spanning the two nodes."""
    node_a, node_b = start_nodes(redis_url, 2)
    admin = await make_admin(services)
    report, _ = await load_test(
        admin, node_a.url, node_b.url, users=10, rate=30.0, duration=2.0, group_size=5
    )
    assert report.ok and report.send_failed == 0 and report.connections_failed == 0
    assert report.delivered == report.expected > report.sent == 60


async def test_a_node_shut_down_during_a_load_test_loses_nothing(
    start_nodes: StartNodes, services: Services, redis_url: str
) -> None:
    """A node stopped mid-run closes its sockets with 1001; they reconnect to the other node and
    resume, and every event committed still arrives once."""
    node_a, node_b = start_nodes(redis_url, 2)
    admin = await make_admin(services)
    sending = asyncio.Event()

    def progress(line: str) -> None:
        if "sending" in line:
            sending.set()

    run = asyncio.create_task(load_test(
        admin, node_a.url, node_b.url, users=10, rate=30.0, duration=4.0, group_size=5,
        say=progress,
    ))
    await asyncio.wait_for(sending.wait(), 60)
    await asyncio.to_thread(node_b.stop)
    report, _ = await run
    assert report.lost == 0 and report.duplicated == 0
    assert report.reconnects >= 5  # every socket that was on the stopped node
    assert report.delivered == report.expected > 0
    # Sends to the stopped node's address fail; those are not events anyone should get.
    assert report.sent + report.send_failed == 120 and report.send_failed > 0


async def test_redis_sees_no_subject_body_or_name_of_a_send(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """Subscribed to every channel, a reader of Redis finds no subject, body or name of a
    send and its read receipt, while the users on the other node read them all."""
    node_a, node_b = start_nodes(redis_url, 2)
    names = {"sender": unique_name("Sender Name"), "reader": unique_name("Reader Name")}
    alice = await make_user(on=node_a, display_name=names["sender"])
    bob = await make_user(on=node_b, display_name=names["reader"])
    subject, body = unique_name("subject in clear"), unique_name("body in clear")
    async with raw_subscriber(redis_url, "*") as seen:
        async with (
            await open_socket(node_b, bob) as bob_ws, await open_socket(node_b, alice) as alice_ws
        ):
            for ws in (bob_ws, alice_ws):
                assert (await next_frame(ws))["type"] == "hello"
            message_id = await send(alice, bob, subject=subject, body=body, high_priority=True)
            new = of_type(await frames_until(bob_ws, "message.new"), "message.new")[0]
            assert new["message"]["subject"] == subject
            assert (await bob.http.post(f"/api/messages/{message_id}/read")).status_code == 200
            read = (await frames_until(alice_ws, "message.read"))[-1]
            assert read["reader"]["display_name"] == names["reader"]
    user_channels = [payload for channel, payload in seen if b":user:" in channel]
    assert len(user_channels) >= 3, "the send and the receipt crossed Redis"
    clear = [subject, body, *names.values(), alice.username, bob.username, message_id]
    for payload in user_channels:
        assert not [text for text in clear if text.encode() in payload]


async def test_a_frame_forged_into_redis_is_not_delivered_and_is_counted(
    start_nodes: StartNodes, make_user: MakeUser, redis_url: str
) -> None:
    """A message.new, or an order to end every session, published on a user's channel by
    someone with access to Redis reaches no socket and is counted; real sends still arrive."""
    (node,) = start_nodes(redis_url, 1)
    alice, bob = await make_user(on=node), await make_user(on=node)
    channel = f"{node.app.state.settings.redis_prefix}:user:{bob.id}"
    forged_frame = b'{"type":"message.new","seq":1,"message":{"subject":"forged"}}'
    before = REGISTRY.get_sample_value("realtime_broker_rejected_payloads_total") or 0.0
    async with await open_socket(node, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        async with Redis.from_url(redis_url) as client:
            every_node = f"{node.app.state.settings.redis_prefix}:nodes"
            await client.publish(channel, Published(1, forged_frame).pack())
            await client.publish(every_node, EndSessions(UUID(bob.id)).pack())
            await client.publish(every_node, NewToMany.of(forged_frame, [
                Recipient(UUID(bob.id), 1, 1)]).pack())  # the frame as a summary: it is sealed
        message_id = await send(alice, bob, subject="genuine")
        frames = await frames_until(ws, "message.new")
        assert [f["message"]["id"] for f in of_type(frames, "message.new")] == [message_id]
    after = REGISTRY.get_sample_value("realtime_broker_rejected_payloads_total") or 0.0
    assert after - before == 3
