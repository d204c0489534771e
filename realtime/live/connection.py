"""One open socket: its queue, its writer, the order of what it is sent, and its resume.

A delivery never waits. A frame that is next in order for a socket with nothing queued is
written at once, in the fan-out's own step: the transport takes it without waiting, as it
nearly always does, and no task is made. Otherwise (the transport pushing back, a gap to
repair, a resume under way) it is appended to the socket's bounded queue, and a writer task
sends what is queued, in seq order, exactly once, then ends: an idle socket costs no task. A
gap in the seqs is repaired from the log before the frame after it goes. A socket whose queue
overflows or whose write fails is dropped with 1013; its client reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
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
    send: Callable[[str], Coroutine[Any, Any, None]]  # run eagerly: see `run_eagerly`
    close: Callable[[int, str], Awaitable[None]]
    # When (time.monotonic()) its authentication began: a session end heard later closes it.
    authenticated_at: float = field(default_factory=time.monotonic)
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
        if self.writer is None and self.started and not self.queued and self._write_now(
            item, writers
        ):
            return
        if len(self.queued) >= QUEUE_SIZE:
            writers.drop(self, CloseCode.TRY_AGAIN_LATER, "the client reads too slowly")
            return
        self.queued.append(item)
        self._wake(writers)

    def _write_now(self, item: _Item, writers: Writers) -> bool:
        """Write a frame that is next in order without a task, or drop one the socket has had;
        False when the writer must take it (a resume, or a gap to repair from the log first).
        A write the transport does not take at once goes on in a writer that the socket's
        later frames queue behind."""
        if isinstance(item, _Resume):
            return False
        seq, frame, committed_at, expires_at = item
        if seq > self.last_seq + 1:
            return False
        if self._passed(seq, expires_at):
            return True
        try:
            rest = run_eagerly(self.send(frame))
        except Exception as exc:
            log.debug("a socket's write failed: %r", exc)
            writers.drop(self, CloseCode.TRY_AGAIN_LATER, "try again")
            return True
        if rest is None:
            self._sent(seq, committed_at, writers)
        else:
            self.last_seq = max(self.last_seq, seq)  # what comes next queues behind it
            self.writer = asyncio.create_task(self._write(writers, rest, seq, committed_at))
        return True

    def _passed(self, seq: int, expires_at: float) -> bool:
        """Whether a frame is not to be written: its seq was sent already, or its message has
        expired (then its seq counts as sent)."""
        if (seq and seq <= self.last_seq) or _expired(expires_at):
            self.last_seq = max(self.last_seq, seq)
            return True
        return False

    def _sent(self, seq: int, committed_at: float, writers: Writers) -> None:
        """A frame was written: its seq is the last sent, and a live event's is counted."""
        if seq:
            writers.tally.written(committed_at)
        self.last_seq = max(self.last_seq, seq)

    def _wake(self, writers: Writers) -> None:
        if self.writer is None and self.started and self.queued and not self.closing:
            self.writer = asyncio.create_task(self._write(writers))

    async def _write(
        self, writers: Writers, unfinished: Awaitable[None] | None = None, seq: int = 0,
        committed_at: float = 0.0,
    ) -> None:
        """Finish a write begun at once (`unfinished`, of the frame of `seq` committed at
        `committed_at`), then send the queue in order, and end: each seq once, gaps repaired
        from the log. A write that fails closes the socket with 1013: its client reconnects
        and resumes."""
        try:
            if unfinished is not None:
                await unfinished
                self._sent(seq, committed_at, writers)
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
        if seq > self.last_seq + 1:  # a gap: what the socket missed goes first, from the log
            await self._resume(_Resume(self.last_seq, answer=False), writers)
        if self._passed(seq, expires_at):  # queued before its message expired, due after: gone
            return
        await self.send(frame)
        self._sent(seq, committed_at, writers)

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


def run_eagerly(write: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run a coroutine at once, up to its first wait: None when it finished there, else an
    awaitable that finishes it (whoever awaits it waits on what the coroutine waits on).

    A websocket write hands its bytes to the transport without waiting unless the transport
    pushes back; run this way, the common write costs no task and no trip through the loop.
    Its first step runs in the caller's task and the rest in the awaiting one, so it must not
    tie itself to the current task (no `asyncio.timeout` around a wait).
    """
    try:
        waiting_on = write.send(None)
    except StopIteration:
        return None
    return _Unfinished(write, waiting_on)


class _Unfinished:
    """A coroutine run eagerly up to a wait: awaiting this waits on the same thing, then goes on
    with the coroutine, passing in what the awaiting task is sent or thrown (a cancellation)."""

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as thrown:
                try:
                    waiting_on = coroutine.throw(thrown)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration:
                    return
