"""Presence: who has an open socket on any node, and when each user was last seen.

Each node writes the users it holds a socket of to PostgreSQL: a second after the set changes
(what changed only) and every REFRESH seconds at the latest, which also extends the node's
entry. An entry that is not extended for LIFETIME seconds (the node died or lost the database)
expires: it stops counting at once, and the next sweep, by any node, folds its users' last
sighting into their `last_seen_at`. Nothing is written per message or per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Collection
from datetime import timedelta
from uuid import UUID

from realtime.db import DATABASE_FAULTS, Database
from realtime.store import presence as presence_store

log = logging.getLogger(__name__)

SETTLE = 1.0  # seconds between looks at the node's set of users
REFRESH = 10.0  # seconds between writes when nothing changes
LIFETIME = 30.0  # seconds an entry counts without being refreshed


class Presence:
    """This node's part of who is online, kept in the database while the node runs."""

    def __init__(
        self, db: Database, online: Callable[[], Collection[UUID]], *,
        settle: float = SETTLE, refresh: float = REFRESH, lifetime: float = LIFETIME,
    ) -> None:
        self._db = db
        self._online = online
        self._settle = settle
        self._refresh = refresh
        self._lifetime = timedelta(seconds=lifetime)
        self.node_id = uuid.uuid4()
        self._written: frozenset[UUID] | None = None  # None: the database's copy is unknown
        self._written_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def write_once(self) -> None:
        """Write what changed since the last write (everything when that is unknown), then
        sweep the nodes that expired."""
        now = frozenset(self._online())
        loop = asyncio.get_running_loop()
        async with self._db.connection() as conn:
            written = self._written
            self._written = None  # unknown until this write commits
            if written is None or not await presence_store.refresh(
                conn, self.node_id, now - written, written - now, self._lifetime
            ):
                await presence_store.replace(conn, self.node_id, now, self._lifetime)
            self._written, self._written_at = now, loop.time()
            await presence_store.sweep_expired(conn)

    def _due(self) -> bool:
        if self._written is None:
            return True
        elapsed = asyncio.get_running_loop().time() - self._written_at
        return elapsed >= self._refresh or self._written != frozenset(self._online())

    async def _run(self) -> None:
        while True:
            try:
                if self._due():
                    await self.write_once()
            except DATABASE_FAULTS as error:
                log.warning("presence: the database is unavailable (%s); retrying",
                            type(error).__name__)
            except Exception:  # the top of a background loop: log, wait a little, go on
                log.exception("presence could not be written; retrying")
            await asyncio.sleep(self._settle)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence")

    async def close(self) -> None:
        """Stop writing and remove this node's entry: its users were last seen now."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with self._db.connection() as conn:
                await presence_store.leave(conn, self.node_id)
        except DATABASE_FAULTS as error:  # the entry expires on its own
            log.warning("presence: this node's entry could not be removed (%s)",
                        type(error).__name__)
