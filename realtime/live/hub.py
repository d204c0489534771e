"""This node's sockets by user, and the fan-out of published events to them.

The fan-out never waits: each delivery is handed to the socket (`realtime.live.connection`),
which writes it at once or queues it for its writer. A new message to many users arrives once
for every node, and each node writes it to the users it holds. The hub keeps the registry, the
broker's subscriptions that follow it, each session's deadline, the session ends heard lately,
and the closing of sockets: too many for a user, a session ended, a queue overflowed, the
server shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol
from uuid import UUID

from realtime import metrics, protocol
from realtime.broker.base import Broker, DeliveryHandler, RecoveryHandler
from realtime.live.connection import Connection, Replayer, SessionCheck, Writers
from realtime.protocol import CloseCode, EndSessions, EventToMany, NewToMany, Published

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 5.0

# When a session ends at the latest (seconds since the epoch), or None when it has ended.
SessionDeadline = Callable[[UUID], Awaitable[float | None]]
DEADLINE_MARGIN = 0.05  # past the deadline, so that the database sees it passed
SESSION_RECHECK = 5.0  # seconds until a session whose deadline could not be read is looked at
# How long (seconds) a node remembers the sessions it heard had ended: a socket authenticated
# within that time and registered after the end is closed without asking the database.
ENDS_REMEMBERED = 60.0


class BrokerFactory(Protocol):
    """Builds the broker that hands this node's published payloads to `deliver`, and calls
    `recovered` after it may have lost some."""

    def __call__(self, *, deliver: DeliveryHandler, recovered: RecoveryHandler) -> Broker: ...


class Hub:
    """The registry of this node's sockets and the fan-out to them."""

    def __init__(
        self, *, broker: BrokerFactory, replay: Replayer, session_alive: SessionCheck,
        max_sockets_per_user: int, session_deadline: SessionDeadline | None = None,
    ) -> None:
        self._session_deadline = session_deadline
        self._deadlines: dict[UUID, asyncio.TimerHandle] = {}  # one timer per session here
        # The session ends heard lately: when, whose, which sessions (none: all of them).
        self._recent_ends: deque[tuple[float, UUID, frozenset[UUID]]] = deque()
        self._max_sockets = max_sockets_per_user
        self._sockets: dict[UUID, list[Connection]] = {}
        self._by_raw_id: dict[bytes, list[Connection]] = {}  # the same lists, by the id's bytes
        self._background: set[asyncio.Future[None]] = set()
        self._writers = Writers(
            replay=replay, session_alive=session_alive, tally=metrics.delivery_tally(),
            drop=self._drop,
        )
        self._broker = broker(deliver=self.deliver, recovered=self.resume_all)

    @property
    def broker(self) -> Broker:
        """The broker this node's sockets are subscribed through (to start and close)."""
        return self._broker

    @property
    def connections(self) -> int:
        return sum(len(sockets) for sockets in self._sockets.values())

    def online_users(self) -> Collection[UUID]:
        """The users with an open socket on this node (a live view: copy it to keep it)."""
        return self._sockets.keys()

    async def register(self, conn: Connection) -> None:
        """Add a socket; its user's events reach this node from when this returns."""
        sockets = self._sockets.get(conn.user_id)
        if sockets is None:
            sockets = self._sockets[conn.user_id] = self._by_raw_id[conn.user_id.bytes] = []
        sockets.append(conn)
        metrics.open_websockets.inc()
        if len(sockets) == 1:
            await self._broker.subscribe(conn.user_id)
        while len(sockets) > self._max_sockets:
            self._drop(sockets[0], CloseCode.POLICY, "too many open sockets for this user")

    def watch_session(self, conn: Connection, deadline: float) -> None:
        """Close the socket 4401 if its session ended since it was authenticated (as this node
        heard, or, authenticated too long ago to tell, as the database says), and check the
        session again at its deadline (seconds since the epoch, as authenticating read it):
        its sockets close once it has ended, been idle too long or outlived its lifetime."""
        ended = self._ended_since_authenticated(conn)
        if ended:
            self._drop(conn, CloseCode.SESSION_ENDED, "the session has ended")
        elif ended is None:
            self._spawn(self._check_session(conn.user_id, conn.session_id))
        elif conn.session_id not in self._deadlines:
            self._check_at(conn.user_id, conn.session_id, deadline)

    def _ended_since_authenticated(self, conn: Connection) -> bool | None:
        """Whether an end of the socket's session reached this node after the socket was
        authenticated; None when that was longer ago than the ends are remembered."""
        now = time.monotonic()
        self._forget_old_ends(now)
        if now - conn.authenticated_at >= ENDS_REMEMBERED:
            return None
        return any(
            at >= conn.authenticated_at and user_id == conn.user_id
            and (not session_ids or conn.session_id in session_ids)
            for at, user_id, session_ids in self._recent_ends
        )

    def _forget_old_ends(self, now: float) -> None:
        while self._recent_ends and now - self._recent_ends[0][0] >= ENDS_REMEMBERED:
            self._recent_ends.popleft()

    def _end_sessions(self, ended: EndSessions) -> None:
        """Close the ended sessions' sockets here, and remember the end a while: a socket
        authenticated before it and registered after it is closed too."""
        now = time.monotonic()
        self._forget_old_ends(now)
        session_ids = frozenset(ended.session_ids)
        self._recent_ends.append((now, ended.user_id, session_ids))
        for conn in list(self._sockets.get(ended.user_id, ())):
            if not session_ids or conn.session_id in session_ids:
                self._drop(conn, CloseCode.SESSION_ENDED, "the session has ended")

    async def _check_session(self, user_id: UUID, session_id: UUID) -> None:
        assert self._session_deadline is not None
        timer = self._deadlines.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        if not self._session_sockets(user_id, session_id):
            return
        try:
            deadline: float | None = await self._session_deadline(session_id)
        except Exception as exc:  # the database did not answer: look again a little later
            log.debug("a session's deadline could not be read: %r", exc)
            deadline = time.time() + SESSION_RECHECK
        sockets = self._session_sockets(user_id, session_id)
        if deadline is None:
            for conn in sockets:
                self._drop(conn, CloseCode.SESSION_ENDED, "the session has ended")
            return
        if sockets and session_id not in self._deadlines:
            self._check_at(user_id, session_id, deadline)

    def _check_at(self, user_id: UUID, session_id: UUID, deadline: float) -> None:
        """Look at the session again just after `deadline` (seconds since the epoch)."""
        loop = asyncio.get_running_loop()
        at = loop.time() + max(0.0, deadline - time.time()) + DEADLINE_MARGIN
        self._deadlines[session_id] = loop.call_at(
            at, lambda: self._spawn(self._check_session(user_id, session_id))
        )

    def _session_sockets(self, user_id: UUID, session_id: UUID) -> list[Connection]:
        return [c for c in self._sockets.get(user_id, ()) if c.session_id == session_id]

    def start(self, conn: Connection) -> None:
        """Let the socket's writer send, after its `hello` has gone: what was queued first."""
        conn.start(self._writers)

    async def unregister(self, conn: Connection) -> None:
        """Remove a socket whose client has gone, and stop its writer."""
        self._forget(conn)
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer

    def _forget(self, conn: Connection) -> None:
        sockets = self._sockets.get(conn.user_id)
        if not sockets or conn not in sockets:
            return
        sockets.remove(conn)
        metrics.open_websockets.dec()
        if not any(c.session_id == conn.session_id for c in sockets):
            timer = self._deadlines.pop(conn.session_id, None)
            if timer is not None:
                timer.cancel()
        if not sockets:
            del self._sockets[conn.user_id], self._by_raw_id[conn.user_id.bytes]
            self._spawn(self._broker.unsubscribe(conn.user_id))

    def deliver(self, audience: UUID | None, payload: bytes) -> None:
        """Hand a published payload to its user's sockets here, or, a payload for every node,
        act on it here (a new message to many, session ends); never waits."""
        if audience is None:
            self._deliver_to_every_node(payload)
            return
        sockets = self._sockets.get(audience)
        if not sockets:
            return
        message = protocol.unpack(payload)
        if isinstance(message, Published):  # decoded once for all of the user's tabs
            item = (message.seq, message.frame.decode(), message.committed_at, message.expires_at)
            for conn in list(sockets):
                conn.offer(item, self._writers)

    def _deliver_to_every_node(self, payload: bytes) -> None:
        message = protocol.unpack(payload)
        if isinstance(message, NewToMany):
            self._deliver_to_many(message)
        elif isinstance(message, EventToMany):
            self._deliver_event_to_many(message)
        elif isinstance(message, EndSessions):
            self._end_sessions(message)

    def _deliver_to_many(self, many: NewToMany) -> None:
        """A new message for many users: the summary decoded once, each user's frame made from
        it and their seq and count, for the users held here; the others are skipped."""
        held, summary, writers = self._by_raw_id, None, self._writers
        for raw_id, seq, unread in many.addressed():
            sockets = held.get(raw_id)
            if not sockets:
                continue
            if summary is None:
                summary = many.message.decode()
            item = (seq, protocol.message_new_text(seq, unread, summary), many.committed_at,
                    many.expires_at)
            for conn in list(sockets):
                conn.offer(item, writers)

    def _deliver_event_to_many(self, many: EventToMany) -> None:
        """One event for many users (a system message): each user's frame is the one frame
        with their seq, for the users held here."""
        held, writers = self._by_raw_id, self._writers
        head = tail = ""
        for raw_id, seq in many.addressed():
            sockets = held.get(raw_id)
            if not sockets:
                continue
            if not head:
                head, tail = many.head.decode(), many.tail.decode()
            item = (seq, f"{head}{seq}{tail}", many.committed_at, many.expires_at)
            for conn in list(sockets):
                conn.offer(item, writers)

    def send_soon(self, conn: Connection, frame: str) -> None:
        """Queue a frame without a seq (a pong) behind what the socket already has queued."""
        conn.offer((0, frame, 0.0, 0.0), self._writers)

    def request_resume(self, conn: Connection, after_seq: int) -> None:
        """The client asked to resume: replay in order with the live stream, then answer."""
        conn.request_resume(after_seq, self._writers)

    async def resume_all(self) -> None:
        """After the broker may have lost events: every socket catches up from the log."""
        for sockets in list(self._sockets.values()):
            for conn in list(sockets):
                conn.repair(self._writers)

    async def close_all(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Shut down: let queued frames drain (bounded), then close every socket with `code`."""
        conns = [conn for sockets in self._sockets.values() for conn in sockets]
        writers = [conn.writer for conn in conns if conn.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=DRAIN_TIMEOUT)
        for conn in conns:
            self._forget(conn)
            if conn.writer is not None:
                conn.writer.cancel()
            with contextlib.suppress(Exception):
                await conn.close(code, "the server is shutting down")
        for timer in self._deadlines.values():
            timer.cancel()
        self._deadlines.clear()
        for task in list(self._background):
            task.cancel()

    def _drop(self, conn: Connection, code: int, reason: str) -> None:
        """Close a socket soon and forget it: its writer cannot go on."""
        self._close_soon(conn, code, reason)
        self._forget(conn)

    def _close_soon(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        if conn.writer is not None:
            conn.writer.cancel()
        self._spawn(conn.close(code, reason))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a socket task failed: %s", task.exception())
