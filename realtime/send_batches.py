"""Concurrent one-to-one sends of this node written together: one statement and one commit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from realtime.db import Database
from realtime.store import message_batches
from realtime.store.messages import Inserted, NewMessage

# A statement writes at most this many messages; more wait for the next one.
MOST_PER_STATEMENT = 100
# At most this many statements are in flight at once (each on a pooled connection of its own).
# A send that arrives while they all are waits for the first to end, with the others that
# arrive meanwhile, and they are written together: the busier the node, the more each
# statement, its round trip and its commit are shared.
MOST_IN_FLIGHT = 2


@dataclass(frozen=True)
class _Waiting:
    new: NewMessage
    recipient_id: UUID
    written: asyncio.Future[Inserted | None]


class SendBatches:
    """Writes the one-to-one messages this node sends (no reply, no attachments) in batches.

    A send that finds a statement free is written at once, with whatever other sends arrived in
    the same turn of the event loop. What it waits for is bounded: by the statements in flight
    before it (each bounded by the pool's wait and the database's statement timeout), and a
    fault of its batch's statement fails every send of it, none half-written."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._start_scheduled = False
        self._writers: set[asyncio.Task[None]] = set()

    async def write(self, new: NewMessage, recipient_id: UUID) -> Inserted | None:
        """Write the message to its user, with the sends of this node at the same moment; what
        was written, or None (nothing of it) when the user does not exist or is disabled."""
        written: asyncio.Future[Inserted | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(new, recipient_id, written))
        self._schedule_start()
        return await written

    def _schedule_start(self) -> None:
        """Start a statement at the next turn of the loop (so that the sends of this turn join
        it), if one may start and none is about to."""
        if self._waiting and self._in_flight < MOST_IN_FLIGHT and not self._start_scheduled:
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._start_scheduled = False
        self._waiting = [waiting for waiting in self._waiting if not waiting.written.done()]
        if not self._waiting or self._in_flight >= MOST_IN_FLIGHT:
            return
        batch = self._waiting[:MOST_PER_STATEMENT]
        del self._waiting[:MOST_PER_STATEMENT]
        self._in_flight += 1
        writer = asyncio.get_running_loop().create_task(self._write(batch))
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self._db.connection() as conn:
                written = await message_batches.insert_one_to_one(
                    conn, [(waiting.new, waiting.recipient_id) for waiting in batch]
                )
        except Exception as error:  # each send of the batch fails with it, as if alone
            for waiting in batch:
                if not waiting.written.done():
                    waiting.written.set_exception(error)
        else:
            for waiting, inserted in zip(batch, written, strict=True):
                if not waiting.written.done():
                    waiting.written.set_result(inserted)
        finally:
            for waiting in batch:  # the node is stopping: its sends with it
                if not waiting.written.done():
                    waiting.written.cancel()
            self._in_flight -= 1
            self._schedule_start()
