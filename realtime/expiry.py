"""What expiring means for what the server keeps: ended sessions, old idempotency keys, ended
login windows, each purged on a schedule by a background task on every node."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from realtime.config import Settings
from realtime.db import Database
from realtime.store import idempotency, throttle
from realtime.store import sessions as session_store

log = logging.getLogger(__name__)
PURGE_INTERVAL = 60.0


@dataclass(frozen=True)
class Purged:
    sessions: int
    idempotency_keys: int
    login_windows: int


async def purge_once(db: Database, settings: Settings) -> Purged:
    """Delete what has ended; safe to run on any number of nodes at once."""
    async with db.connection() as conn:
        return Purged(
            sessions=await session_store.purge_expired_sessions(
                conn, settings.session_idle_timeout
            ),
            idempotency_keys=await idempotency.purge_old_keys(conn),
            login_windows=await throttle.purge_ended_windows(conn, settings.login_lockout),
        )


async def run_purges(db: Database, settings: Settings) -> None:
    """Purge every PURGE_INTERVAL seconds until cancelled."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL)
        try:
            purged = await purge_once(db, settings)
        except Exception:  # a background loop logs and goes on
            log.exception("the purge failed; it will run again")
            continue
        log.debug("purged %s", purged)
