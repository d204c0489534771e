"""One open socket: its queue, its writer, the order of what it is sent, and its resume.

A delivery is appended to the socket's bounded queue and never waits; a writer task sends what
is queued, in seq order, exactly once, and runs only while the queue holds something, so an idle
socket costs no task. A gap in the seqs is repaired from the log before the frame after it goes.
A socket whose queue overflows or whose write fails is dropped with 1013; its client reconnects
and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from realtime import protocol
from realtime.metrics import DeliveryTally
from realtime.protocol import CloseCode

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
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


@dataclass(frozen=True)
class _Resume:
    after_seq: int
    answer: bool  # send `resumed`/`resync` to the client (False: a repair after a gap)


# A frame with its seq (0: none), commit time (0: not known) and its message's expiry (0:
# never).
Frame = tuple[int, str, float, float]
_Item = Frame | _Resume


@dataclass(frozen=True)
class Writers:
    """What the writers of one hub's sockets share: the log they replay from, the check of a
    socket's session, the tally of frames written, and the hub's way to drop a socket (close
    it soon with a code and a reason, and forget it)."""

    replay: Replayer
    session_alive: SessionCheck
    tally: DeliveryTally
    drop: Callable[[Connection, int, str], None]


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

    def start(self, writers: Writers) -> None:
        """Let the writer send, after the socket's `hello` has gone: what was queued first."""
        self.started = True
        self._wake(writers)

    def offer(self, frame: Frame, writers: Writers) -> None:
        """Queue a frame behind what is queued already; never waits."""
        self._offer(frame, writers)

    def request_resume(self, after_seq: int, writers: Writers) -> None:
        """The client asked to resume: replay in order with the live stream, then answer."""
        self._offer(_Resume(after_seq, answer=True), writers)

    def repair(self, writers: Writers) -> None:
        """Catch up from the log after what was sent, without answering the client."""
        self._offer(_Resume(self.last_seq, answer=False), writers)

    def _offer(self, item: _Item, writers: Writers) -> None:
        if self.closing:
            return
        if len(self.queued) >= QUEUE_SIZE:
            writers.drop(self, CloseCode.TRY_AGAIN_LATER, "the client reads too slowly")
            return
        self.queued.append(item)
        self._wake(writers)

    def _wake(self, writers: Writers) -> None:
        if self.writer is None and self.started and self.queued and not self.closing:
            self.writer = asyncio.create_task(self._write(writers))

    async def _write(self, writers: Writers) -> None:
        """Send the queue in order, then end: each seq once, gaps repaired from the log.
        A write that fails closes the socket with 1013: its client reconnects and resumes."""
        try:
            while self.queued:
                await self._send_item(self.queued.pop(0), writers)
        except Exception as exc:
            log.debug("a socket's writer failed: %r", exc)
            self.writer = None
            writers.drop(self, CloseCode.TRY_AGAIN_LATER, "try again")
        finally:
            self.writer = None

    async def _send_item(self, item: _Item, writers: Writers) -> None:
        if isinstance(item, _Resume):
            await self._resume(item, writers)
            return
        seq, frame, committed_at, expires_at = item
        if seq and seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._resume(_Resume(self.last_seq, answer=False), writers)
            if seq <= self.last_seq:
                return
        if _expired(expires_at):  # queued before its message expired, due after: gone
            self.last_seq = max(self.last_seq, seq)
            return
        await self.send(frame)
        if seq:
            writers.tally.written(committed_at)
        self.last_seq = max(self.last_seq, seq)

    async def _resume(self, request: _Resume, writers: Writers) -> None:
        """Replay page by page (no pooled connection held while writing), then answer."""
        if not await writers.session_alive(self.session_id):
            writers.drop(self, CloseCode.SESSION_ENDED, "the session has ended")
            return
        after = request.after_seq
        while True:
            replayed = await writers.replay(self.user_id, after)
            if replayed.too_old:
                if request.answer:
                    await self.send(RESYNC)
                self.last_seq = max(self.last_seq, replayed.through_seq)
                return
            for seq, frame in replayed.frames:
                if (seq > self.last_seq or request.answer) and not _expired(
                    replayed.expires.get(seq, 0.0)
                ):
                    await self.send(frame.decode())
                    writers.tally.replayed += 1
            self.last_seq = max(self.last_seq, replayed.through_seq)
            if not replayed.more:
                break
            after = replayed.through_seq
        if request.answer:
            await self.send(protocol.encode(protocol.Resumed(self.last_seq)).decode())


def _expired(expires_at: float) -> bool:
    """Whether a frame's message has expired (0: it never does)."""
    return 0 < expires_at <= time.time()
