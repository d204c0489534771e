"""This node's sockets by user, and the fan-out of published events to them.

The fan-out never waits: each delivery is appended to a bounded per-socket queue, and a writer
task per socket sends what is queued, in seq order, exactly once. The writer runs only while its
queue holds something, so an idle socket costs no task. A socket whose queue overflows is closed
with 1013; its client reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from realtime import metrics, protocol
from realtime.broker.base import Broker
from realtime.protocol import CloseCode, EndSessions, Published

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
DRAIN_TIMEOUT = 5.0
RESYNC = protocol.encode(protocol.Resync()).decode()


@dataclass(frozen=True)
class Replayed:
    """What the log holds after a seq: frames to send and the seq they reach; or too old."""

    frames: list[tuple[int, bytes]]
    through_seq: int
    too_old: bool = False
    more: bool = False  # a page: the next one follows through_seq
    expires: Mapping[int, float] = field(default_factory=dict)  # seq -> its message's expiry


Replayer = Callable[[UUID, int], Awaitable[Replayed]]
SessionCheck = Callable[[UUID], Awaitable[bool]]
# When a session ends at the latest (seconds since the epoch), or None when it has ended.
SessionDeadline = Callable[[UUID], Awaitable[float | None]]
DEADLINE_MARGIN = 0.05  # past the deadline, so that the database sees it passed
SESSION_RECHECK = 5.0  # seconds until a session whose deadline could not be read is looked at


@dataclass(frozen=True)
class _Resume:
    after_seq: int
    answer: bool  # send `resumed`/`resync` to the client (False: a repair after a gap)


# A frame with its seq (0: none), commit time (0: not known) and its message's expiry (0:
# never), or a resume.
_Item = tuple[int, str, float, float] | _Resume


@dataclass(slots=True, eq=False)
class Connection:
    """One open socket: who it is, how to write to it, and what it has been sent."""

    user_id: UUID
    session_id: UUID
    send: Callable[[str], Awaitable[None]]
    close: Callable[[int, str], Awaitable[None]]
    last_seq: int = 0
    queued: list[_Item] = field(default_factory=list)  # what the writer has still to send
    started: bool = False  # hello has gone: the writer may send
    closing: bool = False
    writer: asyncio.Task[None] | None = None  # while it has something to send


class Hub:
    """The registry of this node's sockets and the fan-out to them."""

    def __init__(
        self, *, replay: Replayer, session_alive: SessionCheck, max_sockets_per_user: int,
        session_deadline: SessionDeadline | None = None,
    ) -> None:
        self._replay = replay
        self._session_alive = session_alive
        self._session_deadline = session_deadline
        self._deadlines: dict[UUID, asyncio.TimerHandle] = {}  # one timer per session here
        self._max_sockets = max_sockets_per_user
        self._sockets: dict[UUID, list[Connection]] = {}
        self._broker: Broker | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._tally = metrics.delivery_tally()

    def use(self, broker: Broker) -> None:
        self._broker = broker

    @property
    def connections(self) -> int:
        return sum(len(sockets) for sockets in self._sockets.values())

    async def register(self, conn: Connection) -> None:
        """Add a socket; its user's events reach this node from when this returns."""
        sockets = self._sockets.setdefault(conn.user_id, [])
        sockets.append(conn)
        metrics.open_websockets.inc()
        if len(sockets) == 1 and self._broker is not None:
            await self._broker.subscribe(conn.user_id)
        while len(sockets) > self._max_sockets:
            self._close_soon(sockets[0], CloseCode.POLICY, "too many open sockets for this user")
            self._forget(sockets[0])

    def watch_session(self, conn: Connection) -> None:
        """Check the socket's session now and again at its deadline: its sockets close 4401
        once it has ended, been idle too long or outlived its lifetime."""
        if self._session_deadline is not None:
            self._spawn(self._check_session(conn.user_id, conn.session_id))

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
                self._close_soon(conn, CloseCode.SESSION_ENDED, "the session has ended")
                self._forget(conn)
            return
        if not sockets or session_id in self._deadlines:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + max(0.0, deadline - time.time()) + DEADLINE_MARGIN
        self._deadlines[session_id] = loop.call_at(
            at, lambda: self._spawn(self._check_session(user_id, session_id))
        )

    def _session_sockets(self, user_id: UUID, session_id: UUID) -> list[Connection]:
        return [c for c in self._sockets.get(user_id, ()) if c.session_id == session_id]

    def start(self, conn: Connection) -> None:
        """Let the socket's writer send, after its `hello` has gone: what was queued first."""
        conn.started = True
        self._wake(conn)

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
            del self._sockets[conn.user_id]
            if self._broker is not None:
                self._spawn(self._broker.unsubscribe(conn.user_id))

    def deliver(self, user_id: UUID, payload: bytes) -> None:
        """Hand a published payload to the user's sockets here; never waits."""
        sockets = self._sockets.get(user_id)
        if not sockets:
            return
        message = protocol.unpack(payload)
        if isinstance(message, Published):  # decoded once for all of the user's tabs
            item = (message.seq, message.frame.decode(), message.committed_at, message.expires_at)
            for conn in list(sockets):
                self._offer(conn, item)
        elif isinstance(message, EndSessions):
            ended = set(message.session_ids)
            for conn in list(sockets):
                if not ended or conn.session_id in ended:
                    self._close_soon(conn, CloseCode.SESSION_ENDED, "the session has ended")
                    self._forget(conn)

    def send_soon(self, conn: Connection, frame: str) -> None:
        """Queue a frame without a seq (a pong) behind what the socket already has queued."""
        self._offer(conn, (0, frame, 0.0, 0.0))

    def request_resume(self, conn: Connection, after_seq: int) -> None:
        """The client asked to resume: replay in order with the live stream, then answer."""
        self._offer(conn, _Resume(after_seq, answer=True))

    async def resume_all(self) -> None:
        """After the broker may have lost events: every socket catches up from the log."""
        for sockets in list(self._sockets.values()):
            for conn in list(sockets):
                self._offer(conn, _Resume(conn.last_seq, answer=False))

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

    def _offer(self, conn: Connection, item: _Item) -> None:
        if conn.closing:
            return
        if len(conn.queued) >= QUEUE_SIZE:
            self._close_soon(conn, CloseCode.TRY_AGAIN_LATER, "the client reads too slowly")
            self._forget(conn)
            return
        conn.queued.append(item)
        self._wake(conn)

    def _wake(self, conn: Connection) -> None:
        if conn.writer is None and conn.started and conn.queued and not conn.closing:
            conn.writer = asyncio.create_task(self._write(conn))

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

    async def _write(self, conn: Connection) -> None:
        """Send the socket's queue in order, then end: each seq once, gaps repaired from the log.
        A write that fails closes the socket with 1013: its client reconnects and resumes."""
        try:
            while conn.queued:
                await self._send_item(conn, conn.queued.pop(0))
        except Exception as exc:
            log.debug("a socket's writer failed: %r", exc)
            conn.writer = None
            self._close_soon(conn, CloseCode.TRY_AGAIN_LATER, "try again")
            self._forget(conn)
        finally:
            conn.writer = None

    async def _send_item(self, conn: Connection, item: _Item) -> None:
        if isinstance(item, _Resume):
            await self._resume(conn, item)
            return
        seq, frame, committed_at, expires_at = item
        if seq and seq <= conn.last_seq:
            return
        if seq > conn.last_seq + 1:
            await self._resume(conn, _Resume(conn.last_seq, answer=False))
            if seq <= conn.last_seq:
                return
        if _expired(expires_at):  # queued before its message expired, due after: gone
            conn.last_seq = max(conn.last_seq, seq)
            return
        await conn.send(frame)
        if seq:
            self._tally.written(committed_at)
        conn.last_seq = max(conn.last_seq, seq)

    async def _resume(self, conn: Connection, request: _Resume) -> None:
        """Replay page by page (no pooled connection held while writing), then answer."""
        if not await self._session_alive(conn.session_id):
            self._close_soon(conn, CloseCode.SESSION_ENDED, "the session has ended")
            self._forget(conn)
            return
        after = request.after_seq
        while True:
            replayed = await self._replay(conn.user_id, after)
            if replayed.too_old:
                if request.answer:
                    await conn.send(RESYNC)
                conn.last_seq = max(conn.last_seq, replayed.through_seq)
                return
            for seq, frame in replayed.frames:
                if (seq > conn.last_seq or request.answer) and not _expired(
                    replayed.expires.get(seq, 0.0)
                ):
                    await conn.send(frame.decode())
                    self._tally.replayed += 1
            conn.last_seq = max(conn.last_seq, replayed.through_seq)
            if not replayed.more:
                break
            after = replayed.through_seq
        if request.answer:
            await conn.send(protocol.encode(protocol.Resumed(conn.last_seq)).decode())


def _expired(expires_at: float) -> bool:
    """Whether a frame's message has expired (0: it never does)."""
    return 0 < expires_at <= time.time()
