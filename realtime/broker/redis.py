"""The Redis broker: a channel per user on one pub/sub connection, a heartbeat through it.

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
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from realtime.broker.base import Broker, DeliveryHandler, RecoveryHandler

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0  # seconds between pings through the pub/sub path
HEARTBEAT_DEADLINE = 3.0  # a link whose last ping came back longer ago than this is silent
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
CHUNK = 1000  # publishes per round trip, channels per SUBSCRIBE
MAX_CONNECTIONS = 64  # publishing connections; more publishes at once wait for one

# What a lost, refused or frozen link raises: redis wraps most socket errors, not all.
LINK_ERRORS = (RedisError, OSError, TimeoutError)


class LinkDown(Exception):
    """The link failed or went silent."""


class _Link:
    """One connection attempt: the publishing client and the pub/sub connection."""

    def __init__(self, url: str, name: str) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # the broker reconnects, never redis-py behind it
            protocol=2,  # pub/sub replies as plain arrays; a URL may still ask for 3
            client_name=name,
        )
        self.client = Redis.from_pool(pool)
        self.pubsub = pool.connection_class(**pool.connection_kwargs)
        self.subscribed: set[UUID] = set()  # users whose SUBSCRIBE this link has sent
        self.barriers: dict[bytes, asyncio.Future[None] | None] = {}  # PINGs not yet answered
        self.pings = 0
        self.fresh = True
        self.last_beat = asyncio.get_running_loop().time()
        self.was_healthy = False
        self.broken = asyncio.Event()
        self.reason = ""
        self.publishing = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def fail(self, reason: str) -> None:
        if not self.broken.is_set():
            self.reason = reason
            self.broken.set()

    def barrier(self, waiters: asyncio.Future[None] | None) -> bytes:
        """Register the waiters released when the server answers the next PING."""
        self.pings += 1
        token = b"%d" % self.pings
        self.barriers[token] = waiters
        return token

    async def close(self) -> None:
        """Close both connections, bounded even on a frozen link."""
        await _quietly(self.pubsub.disconnect(nowait=True))
        await _quietly(self.client.connection_pool.disconnect())  # in-flight publishes fail
        await _quietly(self.idle.wait())
        await _quietly(self.client.aclose())


class RedisBroker(Broker):
    """Route each user's payloads through the Redis channel `{prefix}:user:{user_id}`."""

    def __init__(
        self,
        url: str,
        *,
        deliver: DeliveryHandler,
        recovered: RecoveryHandler,
        prefix: str = "realtime",
    ) -> None:
        parse_url(url)  # a malformed URL stops the start here, not in a retry loop
        self._url = url
        self._deliver = deliver
        self._recovered = recovered
        self._user_prefix = f"{prefix}:user:"
        node_id = secrets.token_hex(8)
        self._name = f"{prefix}-node-{node_id}"
        self._node_channel = f"{prefix}:node:{node_id}".encode()
        self._wanted: set[UUID] = set()
        self._users: dict[bytes, UUID] = {}  # the channel of every wanted user
        self._changed: set[UUID] = set()  # users (un)subscribed since the last flush
        self._dirty = asyncio.Event()
        self._waiters: asyncio.Future[None] | None = None  # released by the next flush
        self._link: _Link | None = None
        self._healthy = False
        self._lost = False  # messages may have been lost since the last recovery
        self._settled = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._recoveries: set[asyncio.Task[None]] = set()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = asyncio.create_task(self._run(), name=self._name)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._settled.wait()
        except TimeoutError:
            self._lost = True  # sockets may be served before their users are subscribed

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        tasks = [task for task in (runner, *self._recoveries) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._healthy = False
        error = runner.exception() if runner is not None and not runner.cancelled() else None
        if error is not None:
            raise error

    async def subscribe(self, user_id: UUID) -> None:
        if user_id not in self._wanted:
            self._wanted.add(user_id)
            self._users[self._channel(user_id)] = user_id
            self._changed.add(user_id)
        link = self._link
        if link is None:
            return  # the next link subscribes every user, and recovery follows
        if user_id in link.subscribed and user_id not in self._changed and not link.barriers:
            return
        if self._waiters is None:
            self._waiters = asyncio.get_running_loop().create_future()
        waiter = self._waiters
        self._dirty.set()
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await asyncio.shield(waiter)
        except TimeoutError:
            link.fail("a subscription was not confirmed in time")

    async def unsubscribe(self, user_id: UUID) -> None:
        if user_id in self._wanted:
            self._wanted.discard(user_id)
            del self._users[self._channel(user_id)]
            self._changed.add(user_id)
            self._dirty.set()

    async def publish(self, messages: Sequence[tuple[UUID, bytes]]) -> None:
        link = self._link
        if not messages:
            return
        if link is None or not self._healthy:
            log.debug("Redis is unavailable: %d messages dropped", len(messages))
            return
        link.publishing += 1
        link.idle.clear()
        try:
            await self._send(link, messages)
        except LINK_ERRORS as error:
            log.debug("Publish failed, %d messages dropped: %s", len(messages), _describe(error))
            link.fail(f"a publish failed: {_describe(error)}")
        finally:
            link.publishing -= 1
            if link.publishing == 0:
                link.idle.set()

    async def _send(self, link: _Link, messages: Sequence[tuple[UUID, bytes]]) -> None:
        async with link.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(messages), CHUNK):
                for user_id, payload in messages[start : start + CHUNK]:
                    pipe.publish(self._channel(user_id), payload)
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await pipe.execute()

    def _channel(self, user_id: UUID) -> bytes:
        return f"{self._user_prefix}{user_id}".encode()

    async def _run(self) -> None:
        """Keep a link up for as long as the broker runs, reconnecting with backoff."""
        delay = BACKOFF_MIN
        while True:
            link: _Link | None = None
            try:
                link = _Link(self._url, self._name)
                await self._run_link(link)
            except Exception as error:  # the top of a background loop: log and go on
                quiet = self._lost and not (link is not None and link.was_healthy)
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "Redis link down: %s",
                    _describe(error),
                )
            finally:
                await self._drop(link)
            if link is not None and link.was_healthy:
                delay = BACKOFF_MIN
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 (jitter)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _run_link(self, link: _Link) -> None:
        """Connect, subscribe every user, then serve until something fails."""
        async with asyncio.timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT):
            await link.client.ping()
            self._link = link
            await self._flush(link)  # its write opens the pub/sub connection
        link.last_beat = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._run_reader(link))
            tasks.create_task(self._run_heartbeat(link))
            tasks.create_task(self._run_sync(link))

    async def _drop(self, link: _Link | None) -> None:
        """Mark the broker unhealthy, release the subscribers waiting on the link, close it."""
        self._healthy = False
        self._lost = True
        self._link = None
        self._settled.set()
        waiters = [*link.barriers.values()] if link is not None else []
        waiters.append(self._waiters)
        self._waiters = None
        for waiter in waiters:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if link is not None:
            await link.close()

    async def _run_sync(self, link: _Link) -> None:
        """Send the (un)subscriptions as they come, many in one write."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._flush(link)

    async def _flush(self, link: _Link) -> None:
        """Send the subscription changes, then a PING whose answer releases the waiters."""
        waiters, self._waiters = self._waiters, None
        commands = self._take_changes(link)
        if not commands and waiters is None:
            return
        commands.append(("PING", link.barrier(waiters)))
        packed = link.pubsub.pack_commands(commands)
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await link.pubsub.send_packed_command(packed, check_health=False)

    def _take_changes(self, link: _Link) -> list[tuple[str | bytes, ...]]:
        """The commands that bring the link's subscriptions to the wanted users."""
        if link.fresh:
            add, remove = set(self._wanted), set[UUID]()
        else:
            add = {u for u in self._changed if u in self._wanted and u not in link.subscribed}
            remove = {u for u in self._changed if u not in self._wanted and u in link.subscribed}
        self._changed.clear()
        link.subscribed |= add
        link.subscribed -= remove
        commands: list[tuple[str | bytes, ...]]
        commands = [("SUBSCRIBE", *chunk) for chunk in self._channels(add)]
        commands += [("UNSUBSCRIBE", *chunk) for chunk in self._channels(remove)]
        if link.fresh:  # last: a heartbeat back means every user before it is subscribed
            commands.append(("SUBSCRIBE", self._node_channel))
            link.fresh = False
        return commands

    def _channels(self, users: Iterable[UUID]) -> list[list[bytes]]:
        channels = [self._channel(user_id) for user_id in users]
        return [channels[start : start + CHUNK] for start in range(0, len(channels), CHUNK)]

    async def _run_heartbeat(self, link: _Link) -> None:
        """Ping this node's own channel through Redis; raise when the pings stop coming back."""
        loop = asyncio.get_running_loop()
        while True:
            silent = loop.time() - link.last_beat
            if silent > HEARTBEAT_DEADLINE:
                raise LinkDown(f"no heartbeat came back for {silent:.1f} s")
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await link.client.publish(self._node_channel, b"beat")
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
            user_id = self._users.get(reply[1])
            if user_id is not None:
                self._deliver(user_id, reply[2])
            elif reply[1] == self._node_channel:
                self._beat(link)
            return
        token = reply[1] if isinstance(reply, list) and reply[0] == b"pong" else reply
        if isinstance(token, bytes) and token in link.barriers:
            waiters = link.barriers.pop(token)
            if waiters is not None and not waiters.done():
                waiters.set_result(None)

    def _beat(self, link: _Link) -> None:
        link.last_beat = asyncio.get_running_loop().time()
        if self._healthy:
            return
        self._healthy = link.was_healthy = True
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


async def _quietly(step: Awaitable[object]) -> None:
    """Await one closing step for a bounded time, ignoring the link's errors."""
    with contextlib.suppress(*LINK_ERRORS):
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await step


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
