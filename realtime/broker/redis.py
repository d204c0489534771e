"""The Redis broker: a channel per user and one every node hears, on one pub/sub connection, a
heartbeat through it.

A link is one connection attempt: a publishing client and a pub/sub connection. Any failure (an
error, a timeout, a heartbeat that does not come back) drops the whole link; the supervisor makes
a new one with backoff, subscribes every user again, and once the heartbeat flows calls the
recovery handler, because anything published meanwhile may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from realtime import metrics
from realtime.broker.base import Audience, Broker, DeliveryHandler, RecoveryHandler
from realtime.crypto import BrokerSeal
from realtime.errors import CryptoError

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0  # seconds between pings through the pub/sub path
HEARTBEAT_DEADLINE = 3.0  # a link whose last ping came back longer ago than this is silent
CONNECT_TIMEOUT = 2.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
CHUNK = 1000  # publishes per round trip, channels per SUBSCRIBE
SUBSCRIBE_INTERVAL = 0.002  # seconds between two writes of subscription changes
MAX_CONNECTIONS = 64  # publishing connections; more publishes at once wait for one

# What a lost, refused or frozen link raises: redis wraps most socket errors, not all.
LINK_ERRORS = (RedisError, OSError, TimeoutError)


class LinkDown(Exception):
    """The link failed or went silent."""


class _Link:
    """One connection attempt: the publishing client and the pub/sub connection."""

    def __init__(self, url: str, name: str, timeout: float) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,  # to wait for a free connection
            socket_connect_timeout=CONNECT_TIMEOUT,
            # None: with a socket_timeout redis-py writes under asyncio.wait_for, which in Python
            # 3.11 can swallow a cancellation and hang a TaskGroup; asyncio.timeout bounds all.
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),  # the broker reconnects, never redis-py behind it
            protocol=2,  # pub/sub replies as plain arrays; a URL may still ask for 3
            client_name=name,
        )
        self.client = Redis.from_pool(pool)
        self.pubsub = pool.connection_class(**pool.connection_kwargs)
        self.fresh = True  # nothing subscribed yet
        self.barriers: dict[bytes, asyncio.Future[None] | None] = {}  # PINGs not yet answered
        self.pings = 0
        self.last_beat = asyncio.get_running_loop().time()
        self.was_healthy = False
        self.broken = asyncio.Event()
        self.reason = ""
        self.publishing = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def fail(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.broken.set()

    async def close(self) -> None:
        """Close both connections within CONNECT_TIMEOUT, even on a frozen link."""
        deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT
        await _quietly(self.pubsub.disconnect(nowait=True), deadline)
        await _quietly(self.client.connection_pool.disconnect(), deadline)  # publishes fail
        await _quietly(self.idle.wait(), deadline)
        await _quietly(self.client.aclose(), deadline)


class RedisBroker(Broker):
    """Route each user's payloads through the Redis channel `{prefix}:user:{user_id}`, and
    payloads for every node through `{prefix}:nodes`.

    Every payload crosses Redis sealed for its channel (`seal`); one that does not open there
    (forged, altered, copied from another channel, under an unknown key) is counted and dropped.
    `timeout` bounds each Redis command, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        deliver: DeliveryHandler,
        recovered: RecoveryHandler,
        seal: BrokerSeal,
        prefix: str = "realtime",
        timeout: float = 2.0,
    ) -> None:
        parse_url(url)  # a malformed URL stops the start here, not in a retry loop
        self._url = url
        self._seal = seal
        self._timeout = timeout
        self._deliver = deliver
        self._recovered = recovered
        self._user_prefix = f"{prefix}:user:"
        node_id = secrets.token_hex(8)
        self._name = f"{prefix}-node-{node_id}"
        self._node_channel = f"{prefix}:node:{node_id}".encode()
        self._every_node_channel = f"{prefix}:nodes".encode()
        self._wanted: dict[UUID, bytes] = {}  # the subscribed users and their channels
        self._users: dict[bytes, UUID] = {}
        self._changed: set[UUID] = set()  # users (un)subscribed since the last flush
        self._dirty = asyncio.Event()
        self._waiters: asyncio.Future[None] | None = None  # released by the next flush
        self._link: _Link | None = None
        self._healthy = False
        self._was_connected = False  # a link was healthy once: the next healthy one reconnects
        self._lost = False  # messages may have been lost since the last recovery
        self._settled = asyncio.Event()  # the first link is up, or failed
        self._runner: asyncio.Task[None] | None = None
        self._recoveries: set[asyncio.Task[None]] = set()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=self._name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._settled.wait()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        tasks = [task for task in (runner, *self._recoveries) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks and (await asyncio.wait(tasks, timeout=CONNECT_TIMEOUT + 1))[1]:
            log.error("The Redis broker's tasks did not stop in time")
        self._healthy = False
        error = runner.exception() if runner and runner.done() and not runner.cancelled() else None
        if error is not None:
            raise error

    async def subscribe(self, user_id: UUID) -> None:
        if user_id not in self._wanted:
            channel = self._wanted[user_id] = f"{self._user_prefix}{user_id}".encode()
            self._users[channel] = user_id
            self._changed.add(user_id)
        link = self._link
        if link is None:
            self._lost = True  # the next link subscribes the user; until then, it may miss some
            return
        if self._waiters is None:
            self._waiters = asyncio.get_running_loop().create_future()
        waiter = self._waiters
        self._dirty.set()
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            link.fail("a subscription was not confirmed in time")

    async def unsubscribe(self, user_id: UUID) -> None:
        channel = self._wanted.pop(user_id, None)
        if channel is not None:
            del self._users[channel]
            self._changed.add(user_id)
            self._dirty.set()

    async def publish(self, messages: Sequence[tuple[Audience, bytes]]) -> None:
        link = self._link
        if link is None or not self._healthy:
            log.debug("Redis is unavailable: %d messages dropped", len(messages))
            metrics.broker_dropped.inc(len(messages))
            return
        link.publishing += 1
        link.idle.clear()
        try:
            await self._send(link, messages)
        except LINK_ERRORS as error:
            log.debug("Publish failed, %d messages dropped: %s", len(messages), _describe(error))
            metrics.broker_dropped.inc(len(messages))
            link.fail(f"a publish failed: {_describe(error)}")
        finally:
            link.publishing -= 1
            if link.publishing == 0:
                link.idle.set()

    async def _send(self, link: _Link, messages: Sequence[tuple[Audience, bytes]]) -> None:
        prefix, seal, every_node = self._user_prefix, self._seal.seal, self._every_node_channel
        to_everyone = 0
        async with link.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(messages), CHUNK):
                for audience, payload in messages[start : start + CHUNK]:
                    if audience is None:
                        channel = every_node
                        to_everyone += 1
                    else:
                        channel = f"{prefix}{audience}".encode()
                    pipe.publish(channel, seal(channel, payload))
                async with asyncio.timeout(self._timeout):
                    await pipe.execute()
        metrics.payloads_published_to_every_node.inc(to_everyone)
        metrics.payloads_published_to_user.inc(len(messages) - to_everyone)

    async def _run(self) -> None:
        """Keep a link up for as long as the broker runs, reconnecting with backoff."""
        delay = BACKOFF_MIN
        while True:
            link = _Link(self._url, self._name, self._timeout)
            try:
                await self._run_link(link)
            except Exception as error:  # the top of a background loop: log and go on
                level = logging.WARNING if link.was_healthy or not self._lost else logging.DEBUG
                log.log(level, "Redis link down: %s", _describe(error))
            finally:
                await self._drop(link)
            delay = BACKOFF_MIN if link.was_healthy else delay
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 (jitter)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _run_link(self, link: _Link) -> None:
        """Connect, subscribe every user, then serve until something fails."""
        async with asyncio.timeout(CONNECT_TIMEOUT + self._timeout):
            await link.client.ping()
            self._link = link
            await self._flush(link)  # its write opens the pub/sub connection
        link.last_beat = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._run_reader(link))
            tasks.create_task(self._run_heartbeat(link))
            tasks.create_task(self._run_sync(link))

    async def _drop(self, link: _Link) -> None:
        """Mark the broker unhealthy, release the subscribers waiting on the link, close it."""
        self._healthy = False
        self._lost = True
        self._link = None
        self._settled.set()
        for waiter in (*link.barriers.values(), self._waiters):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._waiters = None
        await link.close()

    async def _run_sync(self, link: _Link) -> None:
        """Send the (un)subscriptions as they come, many in one write: the first after a quiet
        spell at once, those of a burst (sockets opening by the thousand) gathered, at most
        one write every SUBSCRIBE_INTERVAL."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._flush(link)
            await asyncio.sleep(SUBSCRIBE_INTERVAL)

    async def _flush(self, link: _Link) -> None:
        """Send the subscription changes, then a PING whose answer releases the waiters."""
        waiters, self._waiters = self._waiters, None
        commands = self._take_changes(link)
        if not commands and waiters is None:
            return
        link.pings += 1
        token = b"%d" % link.pings
        link.barriers[token] = waiters
        commands.append(("PING", token))
        packed = link.pubsub.pack_commands(commands)
        async with asyncio.timeout(self._timeout):
            await link.pubsub.send_packed_command(packed, check_health=False)

    def _take_changes(self, link: _Link) -> list[tuple[str | bytes, ...]]:
        """The commands that bring the link's subscriptions to the wanted users."""
        changed, self._changed = (self._wanted if link.fresh else self._changed), set()
        add = [self._wanted[u] for u in changed if u in self._wanted]
        remove = [f"{self._user_prefix}{u}" for u in changed if u not in self._wanted]
        commands: list[tuple[str | bytes, ...]]
        commands = [("SUBSCRIBE", *chunk) for chunk in _chunks(add)]
        commands += [("UNSUBSCRIBE", *chunk) for chunk in _chunks(remove)]
        if link.fresh:  # last: a heartbeat back means every channel before it is subscribed
            commands.append(("SUBSCRIBE", self._every_node_channel, self._node_channel))
            link.fresh = False
        return commands

    async def _run_heartbeat(self, link: _Link) -> None:
        """Ping this node's own channel through Redis; raise when the pings stop coming back."""
        loop = asyncio.get_running_loop()
        while True:
            silent = loop.time() - link.last_beat
            if silent > HEARTBEAT_DEADLINE:
                raise LinkDown(f"no heartbeat came back for {silent:.1f} s")
            try:
                async with asyncio.timeout(self._timeout):
                    beat = self._seal.seal(self._node_channel, b"beat")
                    await link.client.publish(self._node_channel, beat)
            except TimeoutError:
                raise LinkDown("a heartbeat could not be published in time") from None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_INTERVAL):
                    await link.broken.wait()
            if link.broken.is_set():
                raise LinkDown(link.reason)

    async def _run_reader(self, link: _Link) -> None:
        """Hand each message to the delivery handler; the heartbeat bounds every read."""
        read = link.pubsub.read_response
        while True:
            reply = await read(timeout=math.inf, disconnect_on_error=False, push_request=True)
            try:
                self._dispatch(link, reply)
            except Exception:  # the top of the reader's loop: a faulty handler must not stop it
                log.exception("Could not deliver a message from Redis")

    def _dispatch(self, link: _Link, reply: Any) -> None:
        if isinstance(reply, list) and reply[0] == b"message":
            channel = reply[1]
            user_id = self._users.get(channel)
            to_everyone = channel == self._every_node_channel
            if user_id is None and not to_everyone and channel != self._node_channel:
                return
            try:
                payload = self._seal.open(channel, reply[2])
            except CryptoError as error:
                metrics.broker_rejected.inc()
                log.debug("Dropped a payload on %s: %s", channel.decode(errors="replace"), error)
                return
            if user_id is not None or to_everyone:
                if to_everyone:
                    metrics.payloads_received_by_every_node.inc()
                else:
                    metrics.payloads_received_by_user.inc()
                self._deliver(user_id, payload)
            else:
                self._beat(link)
            return
        token = reply[1] if isinstance(reply, list) and reply[0] == b"pong" else reply
        waiters = link.barriers.pop(token, None) if isinstance(token, bytes) else None
        if waiters is not None and not waiters.done():
            waiters.set_result(None)

    def _beat(self, link: _Link) -> None:
        link.last_beat = asyncio.get_running_loop().time()
        if not self._healthy:
            self._healthy = link.was_healthy = True
            if self._was_connected:
                metrics.broker_reconnects.inc()
            self._was_connected = True
            self._settled.set()
            if self._lost:
                self._lost = False
                log.info("Redis link is up again")
                task = asyncio.create_task(self._recover())
                self._recoveries.add(task)
                task.add_done_callback(self._recoveries.discard)

    async def _recover(self) -> None:
        try:
            await self._recovered()
        except Exception:  # the top of a background task: the handler's fault is logged
            log.exception("The broker's recovery handler failed")


def _chunks(items: Sequence[str | bytes]) -> list[Sequence[str | bytes]]:
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]


async def _quietly(step: Awaitable[object], deadline: float) -> None:
    """Await one closing step until the deadline, ignoring the link's errors."""
    with contextlib.suppress(*LINK_ERRORS):
        async with asyncio.timeout_at(deadline):
            await step


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
