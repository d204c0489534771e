"""The Redis broker against a real Redis: routing, outages, half-open links, recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import pytest
from redis.asyncio import Redis

from realtime.broker.redis import (
    BACKOFF_MAX,
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    HEARTBEAT_DEADLINE,
    HEARTBEAT_INTERVAL,
    RedisBroker,
)
from tests.redis_support import (
    FreezableProxy,
    RedisServer,
    bounded,
    eventually,
    proxy_fixture,  # noqa: F401 (a fixture)
    redis_server_fixture,  # noqa: F401 (a fixture)
    redis_url_fixture,  # noqa: F401 (a fixture)
)

# How long a dead or silent link may take to be noticed, and a lost one to come back.
DETECTION = HEARTBEAT_DEADLINE + COMMAND_TIMEOUT + HEARTBEAT_INTERVAL + 1.0
RECONNECTION = BACKOFF_MAX + CONNECT_TIMEOUT + COMMAND_TIMEOUT + 1.0


class Node:
    """A broker as one node would run it, recording what it delivers and its recoveries."""

    def __init__(self, url: str, prefix: str) -> None:
        self.delivered: defaultdict[UUID, list[bytes]] = defaultdict(list)
        self.recoveries = 0
        self.broker = RedisBroker(
            url, deliver=self.deliver, recovered=self.recovered, prefix=prefix
        )

    def deliver(self, user_id: UUID, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("a faulty delivery handler")
        self.delivered[user_id].append(payload)

    async def recovered(self) -> None:
        self.recoveries += 1

    @property
    def healthy(self) -> bool:
        return self.broker.healthy


MakeNode = Callable[[str], Awaitable[Node]]


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test alone."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_node(prefix: str) -> AsyncIterator[MakeNode]:
    """Start brokers on a URL with the test's prefix; close them all at the end."""
    nodes: list[Node] = []

    async def make(url: str) -> Node:
        node = Node(url, prefix)
        nodes.append(node)
        async with bounded(CONNECT_TIMEOUT + 1):
            await node.broker.start()
        return node

    yield make
    for node in nodes:
        await node.broker.close()


async def test_publish_reaches_a_subscribed_user_on_another_node(
    redis_url: str, make_node: MakeNode
) -> None:
    """A publish on one node reaches another node's subscribed user, not an unsubscribed one."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    subscribed, other = uuid.uuid4(), uuid.uuid4()
    await b.broker.subscribe(subscribed)
    await a.broker.publish([(other, b"for the other"), (subscribed, b"for the subscriber")])
    await eventually(lambda: b.delivered[subscribed] == [b"for the subscriber"], "delivered")
    assert other not in b.delivered  # it was published first, so it would have come first
    assert subscribed not in a.delivered


async def test_many_payloads_for_several_users_arrive_in_order(
    redis_url: str, make_node: MakeNode
) -> None:
    """One publish of thousands of payloads for several users delivers each user's in order."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    users = [uuid.uuid4() for _ in range(3)]
    for user_id in users:
        await b.broker.subscribe(user_id)
    messages = [(users[i % 3], b"%d" % i) for i in range(3500)]
    await a.broker.publish(messages)
    expected = {u: [payload for user_id, payload in messages if user_id == u] for u in users}
    await eventually(lambda: sum(map(len, b.delivered.values())) == 3500, "all delivered")
    assert dict(b.delivered) == expected


async def test_subscribe_is_effective_when_it_returns(redis_url: str, make_node: MakeNode) -> None:
    """Many concurrent subscriptions, some twice, each receive a publish made right after."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    users = [uuid.uuid4() for _ in range(300)]
    await asyncio.gather(*(b.broker.subscribe(u) for u in users + users[:50]))
    await a.broker.publish([(u, b"hello") for u in users])
    await eventually(lambda: len(b.delivered) == 300, "every user delivered")
    assert all(b.delivered[u] == [b"hello"] for u in users)


async def test_unsubscribe_stops_delivery(redis_url: str, make_node: MakeNode, prefix: str) -> None:
    """After unsubscribe (twice: idempotent) nothing more is delivered and Redis drops it."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    leaving, staying = uuid.uuid4(), uuid.uuid4()
    await b.broker.subscribe(leaving)
    await b.broker.subscribe(staying)
    await a.broker.publish([(leaving, b"first")])
    await eventually(lambda: b.delivered[leaving] == [b"first"], "first delivered")
    await b.broker.unsubscribe(leaving)
    await b.broker.unsubscribe(leaving)
    await a.broker.publish([(leaving, b"second"), (staying, b"marker")])
    await eventually(lambda: b.delivered[staying] == [b"marker"], "marker delivered")
    assert b.delivered[leaving] == [b"first"]
    channel = f"{prefix}:user:{leaving}"

    async def unsubscribed() -> bool:
        [(_, count)] = await client.pubsub_numsub(channel)
        return count == 0

    async with Redis.from_url(redis_url) as client:
        await eventually(unsubscribed, "Redis has no subscriber left")


async def test_healthy_when_connected_without_recovery(redis_url: str, make_node: MakeNode) -> None:
    """A broker on a reachable Redis is healthy, and a clean start calls no recovery."""
    node = await make_node(redis_url)
    await eventually(lambda: node.healthy, "healthy")
    assert node.recoveries == 0


async def test_a_failing_delivery_handler_does_not_stop_the_reader(
    redis_url: str, make_node: MakeNode
) -> None:
    """A delivery handler that raises is logged, and the next messages still arrive."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    user_id = uuid.uuid4()
    await b.broker.subscribe(user_id)
    await a.broker.publish([(user_id, b"boom"), (user_id, b"after")])
    await eventually(lambda: b.delivered[user_id] == [b"after"], "delivered after the fault")
    assert b.healthy


async def test_redis_stopped_then_restarted(redis_server: RedisServer, make_node: MakeNode) -> None:
    """With Redis down a node is unhealthy and drops publishes; back up, it recovers once."""
    a, b = await make_node(redis_server.url), await make_node(redis_server.url)
    user_id, later = uuid.uuid4(), uuid.uuid4()
    await b.broker.subscribe(user_id)
    redis_server.stop()
    await eventually(lambda: not a.healthy and not b.healthy, "unhealthy", within=DETECTION)
    async with bounded(COMMAND_TIMEOUT):
        await a.broker.publish([(user_id, b"lost")])
        await b.broker.subscribe(later)
    await redis_server.start()
    await eventually(lambda: a.healthy and b.healthy, "healthy again", within=RECONNECTION)
    await eventually(lambda: a.recoveries == b.recoveries == 1, "recovered")
    await a.broker.publish([(user_id, b"back"), (later, b"new")])
    await eventually(lambda: b.delivered[later] == [b"new"], "subscribed while down")
    assert b.delivered[user_id] == [b"back"]
    assert a.recoveries == b.recoveries == 1


async def test_dropped_connections_are_restored(
    redis_server: RedisServer, make_node: MakeNode
) -> None:
    """Pub/sub connections killed by the server are reopened, resubscribed and recovered."""
    a, b = await make_node(redis_server.url), await make_node(redis_server.url)
    user_id = uuid.uuid4()
    await b.broker.subscribe(user_id)
    async with Redis.from_url(redis_server.url) as client:
        assert await client.client_kill_filter(_type="pubsub") == 2
    await eventually(lambda: a.recoveries == b.recoveries == 1, "recovered", within=DETECTION)
    await a.broker.publish([(user_id, b"again")])
    await eventually(lambda: b.delivered[user_id] == [b"again"], "delivered again")


async def test_half_open_link_is_detected_and_recovered(
    redis_server: RedisServer, proxy: FreezableProxy, make_node: MakeNode
) -> None:
    """A frozen link is found silent by the heartbeat; thawed, the node recovers and delivers."""
    a, b = await make_node(redis_server.url), await make_node(proxy.url)
    user_id = uuid.uuid4()
    await b.broker.subscribe(user_id)
    await a.broker.publish([(user_id, b"before")])
    await eventually(lambda: b.delivered[user_id] == [b"before"], "delivered before")
    proxy.freeze()
    await eventually(lambda: not b.healthy, "silence detected", within=DETECTION)
    assert a.healthy
    async with bounded(COMMAND_TIMEOUT):
        await b.broker.publish([(user_id, b"dropped")])
    proxy.thaw()
    await eventually(lambda: b.healthy, "healthy again", within=RECONNECTION)
    await eventually(lambda: b.recoveries == 1, "recovered")
    await a.broker.publish([(user_id, b"after")])
    await eventually(lambda: b.delivered[user_id][-1] == b"after", "delivered after")
    assert (a.recoveries, b.recoveries) == (0, 1)


async def test_start_with_redis_down(redis_server: RedisServer, make_node: MakeNode) -> None:
    """Started while Redis is down, a node is unhealthy, then recovers once Redis is up."""
    redis_server.stop()
    node = await make_node(redis_server.url)
    assert not node.healthy
    user_id = uuid.uuid4()
    async with bounded(COMMAND_TIMEOUT):
        await node.broker.subscribe(user_id)
        await node.broker.publish([(user_id, b"dropped")])
    await redis_server.start()
    await eventually(lambda: node.healthy, "healthy", within=RECONNECTION)
    await eventually(lambda: node.recoveries == 1, "recovered")
    publisher = await make_node(redis_server.url)
    await publisher.broker.publish([(user_id, b"delivered")])
    await eventually(lambda: node.delivered[user_id] == [b"delivered"], "delivered")


async def test_close_is_idempotent_and_bounded_while_frozen(
    redis_server: RedisServer, proxy: FreezableProxy, make_node: MakeNode
) -> None:
    """Closing a node whose link is frozen, with a publish in flight, ends; twice is fine."""
    node = await make_node(proxy.url)
    await eventually(lambda: node.healthy, "healthy")
    user_id = uuid.uuid4()
    await node.broker.subscribe(user_id)
    proxy.freeze()
    in_flight = asyncio.create_task(node.broker.publish([(user_id, b"stuck")]))
    await asyncio.sleep(0)  # let the publish begin
    async with bounded(CONNECT_TIMEOUT + 1):
        await node.broker.close()
        await node.broker.close()
        await in_flight
    assert not node.healthy
