"""The Redis broker against a real Redis: routing, outages, half-open links, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio import Redis

from realtime import metrics
from realtime.broker.redis import (
    BACKOFF_MAX,
    CONNECT_TIMEOUT,
    HEARTBEAT_DEADLINE,
    HEARTBEAT_INTERVAL,
    RedisBroker,
)
from realtime.config import Settings
from realtime.crypto import BrokerSeal, Keyring, generate_master_key
from tests.redis_support import (
    FreezableProxy,
    RedisServer,
    free_port,
    proxy_fixture,  # noqa: F401 (a fixture)
    raw_subscriber,
    redis_server_binary,
    redis_server_fixture,  # noqa: F401 (a fixture)
    redis_url_fixture,  # noqa: F401 (a fixture)
)
from tests.timing import TIME_FACTOR, bounded, eventually

# How long a dead or silent link may take to be noticed, and a lost one to come back.
KEYRING = Keyring([generate_master_key()])  # the deployment's master key, on every node
REDIS_TIMEOUT = Settings().redis_timeout.total_seconds()  # each Redis command's bound
DETECTION = HEARTBEAT_DEADLINE + REDIS_TIMEOUT + HEARTBEAT_INTERVAL + 1.0
RECONNECTION = BACKOFF_MAX + CONNECT_TIMEOUT + REDIS_TIMEOUT + 1.0


class Node:
    """A broker as one node would run it, recording what it delivers and its recoveries."""

    def __init__(self, url: str, prefix: str, keyring: Keyring = KEYRING) -> None:
        self.delivered: defaultdict[UUID | None, list[bytes]] = defaultdict(list)
        self.arrivals: list[bytes] = []  # every payload, in the order it came
        self.recoveries = 0
        self.broker = RedisBroker(
            url, deliver=self.deliver, recovered=self.recovered, seal=BrokerSeal(keyring),
            prefix=prefix,
        )

    def deliver(self, user_id: UUID | None, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("a faulty delivery handler")
        self.delivered[user_id].append(payload)
        self.arrivals.append(payload)

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


async def test_a_payload_for_every_node_reaches_each_once_in_order_with_the_users(
    redis_url: str, make_node: MakeNode
) -> None:
    """A payload for every node (a send to many) is one publish that reaches each node once,
    subscribed users or not, in order with the per-user payloads around it; the counters show
    one payload published and one received per node."""
    a, b, c = [await make_node(redis_url) for _ in range(3)]
    user = uuid.uuid4()
    await b.broker.subscribe(user)
    published_before, received_before = _every_node_payloads()
    await a.broker.publish([(user, b"before"), (None, b"to every node"), (user, b"after")])
    await eventually(lambda: len(b.arrivals) == 3 and c.arrivals and a.arrivals, "delivered")
    assert b.arrivals == [b"before", b"to every node", b"after"]
    assert b.delivered[None] == c.delivered[None] == a.delivered[None] == [b"to every node"]
    published, received = _every_node_payloads()
    assert published - published_before == 1
    assert received - received_before == 3  # one per node (all three in this process)


def _every_node_payloads() -> tuple[float, float]:
    """The payloads for every node published and received so far, by this process's nodes."""
    sample = metrics.REGISTRY.get_sample_value
    labels = {"audience": "every_node"}
    return (sample("realtime_broker_payloads_published_total", labels) or 0.0,
            sample("realtime_broker_payloads_received_total", labels) or 0.0)


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
    async with bounded(REDIS_TIMEOUT):
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
    async with bounded(REDIS_TIMEOUT):
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
    async with bounded(REDIS_TIMEOUT):
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


def rejected() -> float:
    """How many payloads from Redis this process refused to open."""
    return metrics.REGISTRY.get_sample_value("realtime_broker_rejected_payloads_total") or 0.0


async def test_redis_carries_only_sealed_payloads(
    redis_url: str, make_node: MakeNode, prefix: str
) -> None:
    """A subscriber reading Redis directly sees neither the payload nor any part of it; the
    subscribed node receives it exactly."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    user_id = uuid.uuid4()
    await b.broker.subscribe(user_id)
    secret = b'{"type":"message.new","message":{"subject":"the vault is open"}}'
    async with raw_subscriber(redis_url, f"{prefix}:*") as seen:
        await a.broker.publish([(user_id, secret)])
        await eventually(lambda: b.delivered[user_id] == [secret], "delivered")
        await eventually(lambda: any(b":user:" in channel for channel, _ in seen), "seen raw")
    for _, payload in seen:
        assert b"vault" not in payload and b"subject" not in payload and secret not in payload


async def test_a_forged_payload_is_dropped_and_counted(
    redis_url: str, make_node: MakeNode, prefix: str
) -> None:
    """Payloads published into a user's channel by anyone but a node (plain, or sealed under
    another key) are never delivered, and each is counted."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    stranger = BrokerSeal(Keyring([generate_master_key()]))
    user_id = uuid.uuid4()
    channel = f"{prefix}:user:{user_id}".encode()
    await b.broker.subscribe(user_id)
    before = rejected()
    async with Redis.from_url(redis_url) as client:
        await client.publish(channel, b"\x01forged frame")
        await client.publish(channel, stranger.seal(channel, b"forged frame"))
        await client.publish(channel, b"")
    await a.broker.publish([(user_id, b"genuine")])
    await eventually(lambda: b.delivered[user_id] == [b"genuine"], "the genuine one delivered")
    assert rejected() - before == 3
    assert b.healthy


async def test_a_payload_copied_to_another_channel_is_refused(
    redis_url: str, make_node: MakeNode, prefix: str
) -> None:
    """A sealed payload taken from one user's channel and published on another user's is not
    delivered to that user, and is counted."""
    a, b = await make_node(redis_url), await make_node(redis_url)
    owner, other = uuid.uuid4(), uuid.uuid4()
    await b.broker.subscribe(owner)
    await b.broker.subscribe(other)
    async with raw_subscriber(redis_url, f"{prefix}:user:{owner}") as seen:
        await a.broker.publish([(owner, b"for the owner only")])
        await eventually(lambda: len(seen) == 1, "the sealed payload seen")
    before = rejected()
    async with Redis.from_url(redis_url) as client:
        await client.publish(f"{prefix}:user:{other}", seen[0][1])
    await a.broker.publish([(other, b"marker")])
    await eventually(lambda: b.delivered[other] == [b"marker"], "marker delivered")
    assert b.delivered[owner] == [b"for the owner only"]
    assert rejected() - before == 1


async def test_payloads_open_across_a_key_rotation(
    redis_url: str, prefix: str, make_node: MakeNode
) -> None:
    """During a rotation a node holding the new and the old key opens payloads sealed under
    either; a node lacking the sealing key drops them until its keyring follows the rotation."""
    old, new = generate_master_key(), generate_master_key()
    rotated = await _started(Node(redis_url, prefix, Keyring([new, old])))
    behind_keyring = Keyring([old])
    behind = await _started(Node(redis_url, prefix, behind_keyring))
    following = await _started(Node(redis_url, prefix, Keyring([old, new])))
    user_id = uuid.uuid4()
    for node in (rotated, behind, following):
        await node.broker.subscribe(user_id)
    try:
        before = rejected()
        await behind.broker.publish([(user_id, b"under the old key")])
        await rotated.broker.publish([(user_id, b"under the new key")])
        both = [b"under the old key", b"under the new key"]
        await eventually(lambda: following.delivered[user_id] == both, "both opened")
        await eventually(lambda: rotated.delivered[user_id] == both, "both opened")
        await eventually(lambda: rejected() - before >= 1, "the new one refused behind")
        assert behind.delivered[user_id] == [b"under the old key"]
        behind_keyring.replace([new])  # what its key file watch does once the file changed
        await rotated.broker.publish([(user_id, b"after the rotation")])
        await eventually(
            lambda: behind.delivered[user_id][-1:] == [b"after the rotation"], "opened behind"
        )
    finally:
        for node in (rotated, behind, following):
            await node.broker.close()


async def _started(node: Node) -> Node:
    async with bounded(CONNECT_TIMEOUT + 1):
        await node.broker.start()
    await eventually(lambda: node.healthy, "healthy")
    return node



def write_certificate(directory: Path) -> Path:
    """A self-signed certificate and key for 127.0.0.1, written as cert.pem and key.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return directory / "cert.pem"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server speaking TLS only and asking for a password: its rediss:// URL."""
    binary = redis_server_binary()
    # Without a certificate a server built with TLS stops at once, saying so; one built
    # without it stops at the unknown directive.
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", str(free_port())],
        capture_output=True, text=True, check=False, timeout=10,
    )
    if "tls-cert-file" not in probe.stdout + probe.stderr:
        pytest.skip("this redis-server is built without TLS")
    certificate, port = write_certificate(tmp_path), free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certificate), "--tls-key-file", str(tmp_path / "key.pem"),
         "--tls-ca-cert-file", str(certificate), "--tls-auth-clients", "no",
         "--requirepass", "a redis password", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10 * TIME_FACTOR
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.02)
        assert process.poll() is None, "redis-server with TLS did not start"
        yield f"rediss://:a%20redis%20password@127.0.0.1:{port}/0?ssl_ca_certs={certificate}"
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_rediss_with_a_password_carries_payloads(tls_redis: str, make_node: MakeNode) -> None:
    """Over rediss:// (TLS, the server's certificate checked) with a password in the URL, a
    publish on one node reaches a subscribed user on another."""
    a, b = await make_node(tls_redis), await make_node(tls_redis)
    await eventually(lambda: a.healthy and b.healthy, "both nodes connected over TLS")
    user_id = uuid.uuid4()
    await b.broker.subscribe(user_id)
    await a.broker.publish([(user_id, b"over TLS")])
    await eventually(lambda: b.delivered[user_id] == [b"over TLS"], "delivered over TLS")
