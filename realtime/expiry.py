"""Expiry on time: the expirer deletes each message when its expiry passes, each shareable
link when it falls due and each system message when it ends, on every node, and purges what
the server no longer needs (ended sessions, old events, idempotency keys, ended login windows,
uploads never attached, refilled budgets), each on its own schedule.

The expirer sleeps until the earliest pending expiry (never a fixed poll). A send with a sooner
expiry wakes it early: in process directly, on other nodes through PostgreSQL NOTIFY. Due
messages are deleted in batches locked with SKIP LOCKED, so nodes share the work and none is
deleted twice; each batch commits with one `message.deleted` (reason `expired`) for the sender
and every recipient who still had the message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from realtime import metrics
from realtime.audit import Audit
from realtime.config import Settings
from realtime.db import CONTENDED, DATABASE_FAULTS, Connection, Database
from realtime.events import EventSink
from realtime.links import ended_payload
from realtime.models import DeleteReason, EventType, LinkEnd, SystemEnd
from realtime.store import budgets as budget_store
from realtime.store import events as event_store
from realtime.store import expiry as expiry_store
from realtime.store import files as file_store
from realtime.store import idempotency, throttle
from realtime.store import links as link_store
from realtime.store import sessions as session_store
from realtime.store import system_messages as system_store
from realtime.store import uploads as upload_store
from realtime.store.audit import NewRecord
from realtime.system_messages import to_every_user, withdrawn_payload

log = logging.getLogger(__name__)

BATCH = 1_000  # messages deleted per transaction
# Transactions deleting at once (SKIP LOCKED keeps them apart): while the database deletes one
# batch, this process builds and publishes the events of another.
BATCHES_AT_ONCE = 2
SYSTEM_BATCH = 20  # system messages ended per transaction: each is an event for every user
PURGE_INTERVAL = 60.0
PURGE_BATCH = 10_000  # events purged per statement
UNATTACHED_UPLOAD_LIFETIME = timedelta(hours=1)
FILE_PURGE_BATCH = 100  # files purged per statement: up to 25 MiB each
RETRY_DELAY = 0.5  # after the database failed; a lost lock race is retried at once
IDLE_WAIT = 3600.0  # with nothing to expire, the longest sleep (a wake-up comes first)
LATE_MARGIN = 0.001  # wake just after the expiry, never just before
HELD_ELSEWHERE_WAIT = 0.05  # an overdue row another node is deleting: look again after this
BUDGET_REFILL = timedelta(hours=1)  # every budget's bucket is full again well before this
BACKLOG_TIMEOUT = 1.0  # how long a scrape of /metrics waits for the expiry backlog


@dataclass(frozen=True)
class Purged:
    sessions: int
    events: int
    idempotency_keys: int
    login_windows: int
    uploads: int
    budget_buckets: int
    upload_reservations: int = 0


async def purge_once(db: Database, settings: Settings) -> Purged:
    """Delete what has ended; safe to run on any number of nodes at once."""
    async with db.connection() as conn:
        events = 0
        while True:
            purged = await event_store.purge_old_events(conn, settings.event_retention, PURGE_BATCH)
            events += purged
            if purged < PURGE_BATCH:
                break
        return Purged(
            sessions=await session_store.purge_expired_sessions(
                conn, settings.session_idle_timeout, audited=settings.audit
            ),
            events=events,
            idempotency_keys=await idempotency.purge_old_keys(conn),
            login_windows=await throttle.purge_ended_windows(conn, settings.login_lockout),
            uploads=await _purge_unattached_uploads(conn),
            budget_buckets=await budget_store.purge_full_buckets(conn, BUDGET_REFILL),
            upload_reservations=await upload_store.purge_lapsed(conn),
        )


async def measure_backlog(db: Database) -> None:
    """Set the expiry backlog gauges from the database now: the messages past their expiry
    not deleted yet and how overdue the oldest is (NaN when the database does not answer)."""
    overdue, oldest = math.nan, math.nan
    try:
        async with asyncio.timeout(BACKLOG_TIMEOUT), db.connection() as conn:
            until_next = await expiry_store.seconds_until_next_expiry(conn)
            late = 0.0 if until_next is None else max(0.0, -until_next)
            overdue = await expiry_store.count_overdue(conn) if late else 0
            oldest = late
    except DATABASE_FAULTS as error:
        log.debug("the expiry backlog is unknown: %s", type(error).__name__)
    metrics.overdue_messages.set(overdue)
    metrics.oldest_overdue.set(oldest)


async def _purge_unattached_uploads(conn: Connection) -> int:
    total = 0
    while True:
        purged = await file_store.purge_unattached(
            conn, UNATTACHED_UPLOAD_LIFETIME, FILE_PURGE_BATCH
        )
        total += purged
        if purged < FILE_PURGE_BATCH:
            return total


class Expirer:
    """The task that deletes messages as they expire and runs the purges."""

    def __init__(
        self, db: Database, settings: Settings, sink: EventSink, audit: Audit | None = None
    ) -> None:
        """`sink` takes the events of each batch it commits."""
        self._db = db
        self._audit = audit or Audit(db, enabled=settings.audit)
        self._settings = settings
        self._sink = sink
        self._wakeup = asyncio.Event()
        self._planned = 0.0  # the monotonic time of the next planned wake-up

    def expiry_scheduled(self, expires_at: datetime) -> None:
        """A message expiring at `expires_at` was sent: wake up if that is sooner than planned."""
        due = time.monotonic() + (expires_at - datetime.now(UTC)).total_seconds()
        if due < self._planned:
            self._wakeup.set()

    def _notified(self, payload: str) -> None:
        try:
            self.expiry_scheduled(datetime.fromisoformat(payload))
        except ValueError:  # not ours to judge: look again
            self._wakeup.set()

    async def run(self) -> None:
        """Expire and purge until cancelled; a database outage is waited out, then caught up."""
        listener = asyncio.create_task(
            self._db.run_listener(expiry_store.CHANNEL, self._notified, self._wakeup.set),
            name="expiry-listener",
        )
        next_purge = time.monotonic() + PURGE_INTERVAL
        try:
            while True:
                self._wakeup.clear()  # a wake-up from now on means: look again
                try:
                    wait = await self.expire_due()
                    if time.monotonic() >= next_purge:
                        log.debug("purged %s", await purge_once(self._db, self._settings))
                        next_purge = time.monotonic() + PURGE_INTERVAL
                except DATABASE_FAULTS as error:
                    log.warning("expiry: the database is unavailable (%s); retrying",
                                type(error).__name__)
                    wait = RETRY_DELAY
                except Exception:  # the top of a background loop: log, wait a little, go on
                    log.exception("expiry failed; retrying")
                    wait = RETRY_DELAY
                wait = min(wait, max(0.0, next_purge - time.monotonic()))
                self._planned = time.monotonic() + wait
                try:
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            listener.cancel()

    async def expire_due(self) -> float:
        """Delete every message and link due now, batch after batch; return the seconds until
        the next."""
        deleting = await asyncio.gather(
            *(self._expire_until_few() for _ in range(BATCHES_AT_ONCE)), return_exceptions=True
        )
        for outcome in deleting:  # each ran to its end: none is left running on its own
            if isinstance(outcome, BaseException):
                raise outcome
        deleted = sum(outcome for outcome in deleting if isinstance(outcome, int))
        while (links := await self._delete_links_batch()) == BATCH:
            pass
        while (ended := await self._end_system_messages()) == SYSTEM_BATCH:
            pass
        async with self._db.connection() as conn:
            next_message = await expiry_store.seconds_until_next_expiry(conn)
            next_link = await link_store.seconds_until_next_due(conn)
            next_system = await system_store.seconds_until_next_end(conn)
        waits = [_wait(next_message, deleted), _wait(next_link, links),
                 _wait(next_system, ended)]
        known = [wait for wait in waits if wait is not None]
        return min(known) if known else IDLE_WAIT

    async def _expire_until_few(self) -> int:
        """Delete expired messages batch after batch until one is not full; return its count."""
        while True:
            try:
                deleted = await self._expire_batch()
            except CONTENDED:
                continue  # a reader or a recall held a row: this batch gave way; run it again
            if deleted < BATCH:
                return deleted

    async def _delete_links_batch(self) -> int:
        """Delete the links due now: expired (their creators told), or at the end of their
        last view's download window (told at that view)."""
        async with self._db.transaction() as conn:
            due = await link_store.delete_due(conn, BATCH)
            expired = [link for link in due if not link.ended]
            events = await event_store.append_each(conn, [
                (link.creator_id, EventType.LINK_DELETED,
                 ended_payload(link.id, LinkEnd.EXPIRED))
                for link in expired
            ]) if expired else []
            await self._audit.record(*(
                NewRecord("link.expired", target_kind="link", target_id=link.id)
                for link in expired
            ), conn=conn)
        if due:
            metrics.links_deleted.inc(len(due))
            await self._sink.committed(events)
        return len(due)

    async def _end_system_messages(self) -> int:
        """Delete the system messages whose end has come, telling every enabled user
        (`system.withdrawn`, reason `ended`): one statement of events for each."""
        async with self._db.transaction() as conn:
            ended = await system_store.delete_ended(conn, SYSTEM_BATCH)
            events = []
            for message_id in ended:
                payload = withdrawn_payload(message_id, SystemEnd.ENDED)
                appended = await event_store.append_to_every_user(
                    conn, EventType.SYSTEM_WITHDRAWN, payload
                )
                events += to_every_user(EventType.SYSTEM_WITHDRAWN, payload, appended)
        if events:
            await self._sink.committed(events)
        return len(ended)

    async def _expire_batch(self) -> int:
        async with self._db.transaction() as conn:
            expired = await expiry_store.delete_expired(conn, BATCH)
            told = [(message, user_id) for message in expired for user_id in _told_of(message)]
            entries = [
                (user_id, EventType.MESSAGE_DELETED,
                 {"message_id": str(message.message_id), "reason": DeleteReason.EXPIRED.value})
                for message, user_id in told
            ]
            unread_changes = [
                -1 if user_id in message.unread_holders else 0 for message, user_id in told
            ]
            events = await event_store.append_each(conn, entries, unread_changes=unread_changes)
            await file_store.release_files(
                conn, [file_id for message in expired for file_id in message.file_ids]
            )
            await self._audit.record(*(
                NewRecord("message.expired", target_kind="message", target_id=m.message_id,
                          detail={"holders": len(m.holders)})
                for m in expired
            ), conn=conn)
        for message in expired:
            lag = (message.deleted_at - message.expires_at).total_seconds()
            metrics.expiry_lag.observe(max(0.0, lag))
        if expired:
            metrics.messages_expired.inc(len(expired))
            log.debug("expired %d messages", len(expired))
            await self._sink.committed(events)
        return len(expired)


def _wait(until_next: float | None, deleted: int) -> float | None:
    """How long to sleep for the next due row: just past its time, or, when it is overdue yet
    this pass deleted nothing (another node holds it, deleting it), a little while."""
    if until_next is None:
        return None
    if until_next <= 0 and not deleted:
        return HELD_ELSEWHERE_WAIT
    return max(0.0, until_next) + LATE_MARGIN


def _told_of(message: expiry_store.Expired) -> list[UUID]:
    """The sender and every recipient who still had the message, once each."""
    return list(dict.fromkeys([message.sender_id, *message.holders]))
