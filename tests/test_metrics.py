"""What /metrics tells an operator: sends, deliveries and their latency, the broker, HTTP, expiry.

The registry is one per process, shared by the app in process and every live server, so the
tests compare scrapes taken before and after, never absolute counts (gauges measured at the
scrape excepted).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from realtime import metrics
from realtime.broker.memory import MemoryBroker
from realtime.broker.redis import BACKOFF_MAX, HEARTBEAT_DEADLINE
from realtime.config import Settings
from realtime.db import Database, create_pool
from realtime.expiry import measure_backlog
from realtime.live.connection import Connection, Replayed
from realtime.live.hub import Hub
from realtime.protocol import Published, event_key, time_frames
from tests.conftest import MakeUser, unique_name
from tests.live_server import LiveServer, live_server
from tests.redis_support import (
    RedisServer,
    redis_server_fixture,  # noqa: F401 (a fixture)
    redis_url_fixture,  # noqa: F401 (a fixture)
)
from tests.timing import TIME_FACTOR, eventually
from tests.ws_support import frames_until, next_frame, open_socket, send

# Long enough for a dead link to be noticed and a new one made.
REDIS_TIMEOUT = Settings().redis_timeout.total_seconds()  # each Redis command's bound
RECOVERY = HEARTBEAT_DEADLINE + REDIS_TIMEOUT + 2 * BACKOFF_MAX + 10

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    return parse(answer.text)


async def scrape_node(node: LiveServer) -> Samples:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await scrape(http)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` that carry these labels (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_a_message_sent_to_an_open_socket_is_counted_from_send_to_delivery(
    live: LiveServer, make_user: MakeUser
) -> None:
    """After a socket opens and a message is sent to it, /metrics shows one more open websocket,
    one more message sent, one more event published and delivered, and one more observation in
    the delivery latency histogram."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    before = await scrape_node(live)
    async with await open_socket(live, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        await send(alice, bob, subject="measured")
        await frames_until(ws, "message.new")
        await ws.send('{"type":"ping"}')
        await frames_until(ws, "pong")  # written after the message's frame was counted
        during = await scrape_node(live)
    assert grew(before, during, "realtime_open_websockets") == 1
    assert grew(before, during, "realtime_messages_sent_total") == 1
    assert grew(before, during, "realtime_events_published_total") == 1
    assert grew(before, during, "realtime_events_delivered_total", via="live") == 1
    assert grew(before, during, "realtime_events_delivered_total", via="replay") == 0
    assert grew(before, during, "realtime_delivery_latency_seconds_count") == 1
    assert 0 <= grew(before, during, "realtime_delivery_latency_seconds_sum") < 5 * TIME_FACTOR
    assert grew(before, during, "realtime_delivery_latency_seconds_bucket", le="+Inf") == 1

    async def closed() -> bool:
        return grew(before, await scrape_node(live), "realtime_open_websockets") == 0

    await eventually(closed, "the closed socket to leave the open websockets")


async def test_a_message_through_redis_is_timed_from_its_commit_on_the_sending_node(
    settings: Settings, make_user: MakeUser, redis_url: str
) -> None:
    """Sent through node A to a socket on node B over Redis, a message is counted as published
    and delivered once, and its latency is observed, from A's commit to B's write."""
    cluster = settings.with_overrides(redis_url=redis_url, redis_prefix=unique_name("metrics"))
    with live_server(cluster) as node_a, live_server(cluster) as node_b:
        alice, bob = await make_user(on=node_a), await make_user(on=node_b)
        before = await scrape_node(node_a)
        async with await open_socket(node_b, bob) as ws:
            assert (await next_frame(ws))["type"] == "hello"
            await send(alice, bob, subject="across nodes")
            await frames_until(ws, "message.new")
            await ws.send('{"type":"ping"}')
            await frames_until(ws, "pong")  # written after the message's frame was counted
            after = await scrape_node(node_b)
    assert grew(before, after, "realtime_events_published_total") == 1
    assert grew(before, after, "realtime_events_delivered_total", via="live") == 1
    assert grew(before, after, "realtime_delivery_latency_seconds_count") == 1
    assert 0 <= grew(before, after, "realtime_delivery_latency_seconds_sum") < 5 * TIME_FACTOR
    assert value(after, "realtime_broker_connected") == 1


async def test_frames_replayed_on_resume_are_counted_apart_and_not_timed(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A message that reaches a socket from the event log (a resume) is counted as delivered
    via replay, not live, and adds nothing to the latency histogram."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    await send(alice, bob, subject="while away")
    before = await scrape_node(live)
    async with await open_socket(live, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        await ws.send(orjson.dumps({"type": "resume", "after_seq": 0}).decode())
        frames = await frames_until(ws, "resumed")
        after = await scrape_node(live)
    assert [f["type"] for f in frames if "seq" in f][:1] == ["message.new"]
    assert grew(before, after, "realtime_events_delivered_total", via="replay") == 1
    assert grew(before, after, "realtime_events_delivered_total", via="live") == 0
    assert grew(before, after, "realtime_delivery_latency_seconds_count") == 0


async def test_latency_is_measured_from_the_commit_time_the_payload_carries() -> None:
    """A frame whose event committed 1.5 s before it is written lands between the 1 s and the
    2.5 s buckets; a pong written to the same socket is not counted as an event delivered."""

    async def nothing_to_replay(user_id: uuid.UUID, after_seq: int) -> Replayed:
        return Replayed([], after_seq)

    async def alive(session_id: uuid.UUID) -> bool:
        return True

    async def no_close(code: int, reason: str) -> None:
        raise AssertionError("the socket must stay open")

    hub = Hub(
        broker=MemoryBroker, replay=nothing_to_replay, session_alive=alive,
        max_sockets_per_user=20,
    )
    user, written = uuid.uuid4(), asyncio.Queue[str]()
    conn = Connection(user, uuid.uuid4(), send=written.put, close=no_close)
    await hub.register(conn)
    hub.start(conn)
    before = parse(generate_latest(metrics.REGISTRY).decode())
    payloads = [(user, Published(1, b'{"seq":1}').pack())]
    assert time_frames(payloads, {event_key(user, 1): time.time() - 1.5}) == 1
    hub.deliver(user, payloads[0][1])
    hub.send_soon(conn, '{"type":"pong"}')
    assert [await written.get(), await written.get()] == ['{"seq":1}', '{"type":"pong"}']
    after = parse(generate_latest(metrics.REGISTRY).decode())
    await hub.close_all()
    bucket = "realtime_delivery_latency_seconds_bucket"
    assert grew(before, after, bucket, le="1.0") == 0
    assert grew(before, after, bucket, le="2.5") == 1
    assert grew(before, after, "realtime_delivery_latency_seconds_sum") >= 1.5
    assert grew(before, after, "realtime_events_delivered_total", via="live") == 1


async def test_requests_to_unknown_paths_are_counted_under_one_route_label(
    client: httpx.AsyncClient,
) -> None:
    """Requests to paths no route serves are counted, and timed, under the one route label
    'unmatched' with status 404: the raw paths never become labels."""
    token = uuid.uuid4().hex
    paths = [f"/nowhere-{token}", f"/api/nowhere/{token}", f"/static-{token}/x.js"]
    before = await scrape(client)
    for path in paths:
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)
    assert grew(
        before, after, "realtime_http_requests_total", route="unmatched", method="GET",
        status="404",
    ) == len(paths)
    assert grew(
        before, after, "realtime_http_request_seconds_count", route="unmatched", method="GET",
        status_class="4xx",
    ) == len(paths)
    assert not [labels for _, labels in after if any(token in v for _, v in labels)]


async def test_requests_are_counted_and_timed_by_route_template_and_status(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A request for one message is counted and timed under the route template
    /api/messages/{id} with its status, never under the message's id."""
    alice, bob = await make_user(), await make_user()
    before = await scrape(client)
    sent = await alice.http.post(
        "/api/messages", json={"to": [{"kind": "user", "id": bob.id}], "subject": "templated"}
    )
    assert sent.status_code == 201
    message_id = sent.json()["id"]
    assert (await bob.http.get(f"/api/messages/{message_id}")).status_code == 200
    assert (await bob.http.get(f"/api/messages/{uuid.uuid4()}")).status_code == 404
    after = await scrape(client)
    route = "/api/messages/{id}"
    assert grew(before, after, "realtime_http_requests_total", route=route, status="200") == 1
    assert grew(before, after, "realtime_http_requests_total", route=route, status="404") == 1
    seconds = "realtime_http_request_seconds_count"
    assert grew(before, after, seconds, route=route, method="GET", status_class="2xx") == 1
    assert grew(before, after, seconds, route=route, method="GET", status_class="4xx") == 1
    assert grew(
        before, after, seconds, route="/api/messages", method="POST", status_class="2xx"
    ) == 1
    assert not [labels for _, labels in after if any(message_id in v for _, v in labels)]


async def test_a_redis_restart_under_a_node_counts_one_broker_reconnect(
    settings: Settings, make_user: MakeUser, redis_server: RedisServer
) -> None:
    """After the Redis server is restarted under a node, broker reconnects goes up by one;
    during the outage /metrics shows the broker disconnected and what it could not publish."""
    cluster = settings.with_overrides(
        redis_url=redis_server.url, redis_prefix=unique_name("metrics")
    )
    with live_server(cluster) as node:
        alice, bob = await make_user(on=node), await make_user(on=node)
        before = await scrape_node(node)
        assert value(before, "realtime_broker_connected") == 1
        redis_server.stop()

        async def disconnected() -> bool:
            return value(await scrape_node(node), "realtime_broker_connected") == 0

        await eventually(disconnected, "the node to notice Redis is gone", within=RECOVERY)
        await send(alice, bob, subject="during the outage")

        async def dropped() -> bool:
            now = await scrape_node(node)
            return grew(before, now, "realtime_broker_dropped_payloads_total") >= 1

        await eventually(dropped, "the publish to count as dropped")
        await redis_server.start()

        async def connected() -> bool:
            return value(await scrape_node(node), "realtime_broker_connected") == 1

        await eventually(connected, "the node to connect again", within=RECOVERY)
        after = await scrape_node(node)
    assert grew(before, after, "realtime_broker_reconnects_total") == 1


async def test_an_expired_message_is_counted_in_the_expiry_lag_histogram(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A message deleted at its expiry counts one more message expired and one more observation
    of the expiry lag, within the second the contract allows; no backlog remains."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    before = await scrape_node(live)
    await send(alice, bob, subject="brief", expires_at=in_seconds(0.3))

    async def expired() -> bool:
        return grew(before, await scrape_node(live), "realtime_messages_expired_total") >= 1

    await eventually(expired, "the message to expire")
    after = await scrape_node(live)
    assert grew(before, after, "realtime_messages_expired_total") == 1
    assert grew(before, after, "realtime_expiry_lag_seconds_count") == 1
    assert grew(before, after, "realtime_expiry_lag_seconds_bucket", le="1.0") == 1
    assert value(after, "realtime_overdue_messages") == 0
    assert value(after, "realtime_expiry_oldest_overdue_seconds") == 0


async def test_a_message_past_its_expiry_not_deleted_yet_shows_as_backlog(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """With no expirer running, a message past its expiry shows in /metrics as one overdue
    message, and the oldest overdue as expired that long ago."""
    alice, bob = await make_user(), await make_user()
    before = await scrape(client)
    assert value(before, "realtime_overdue_messages") == 0
    assert value(before, "realtime_expiry_oldest_overdue_seconds") == 0
    sent = await alice.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": bob.id}], "subject": "left behind",
        "expires_at": in_seconds(0.2),
    })
    assert sent.status_code == 201
    await asyncio.sleep(0.5)
    after = await scrape(client)
    assert value(after, "realtime_overdue_messages") == 1
    assert value(after, "realtime_expiry_oldest_overdue_seconds") >= 0.3


async def test_an_unreachable_database_makes_the_expiry_backlog_unknown() -> None:
    """When the database does not answer, the expiry backlog reads NaN (unknown), never a stale
    number, and the measurement returns within its timeout."""
    url = f"postgresql://nobody@127.0.0.1:{closed_port()}/none"
    pool = await create_pool(url, size=2, min_size=0)
    try:
        async with asyncio.timeout(5 * TIME_FACTOR):
            await measure_backlog(Database(pool, url))
    finally:
        await pool.close()
    samples = parse(generate_latest(metrics.REGISTRY).decode())
    assert math.isnan(value(samples, "realtime_overdue_messages"))
    assert math.isnan(value(samples, "realtime_expiry_oldest_overdue_seconds"))

