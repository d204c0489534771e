"""The audit trail: records of who did what, chained so that no one can quietly edit them.

Each action writes its record in its own statement or transaction, unchained. The chainer, one
node at a time, gives the committed records their places in the chain within about a second
(CHAIN_INTERVAL): each record's hash covers its fields and the hash of the record before it, so
that an edit, a removal or a reordering shows at the first record it touched. Until it is
chained a record has no hash: that short window is the trail's only unguarded one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from realtime import codec
from realtime.db import DATABASE_FAULTS, Connection, Database
from realtime.store import audit as audit_store
from realtime.store.audit import Filter, NewRecord, Record

log = logging.getLogger(__name__)
# Each audit record as a JSON line, with REALTIME_AUDIT_LOG=stdout (for a SIEM).
records_log = logging.getLogger("realtime.audit.records")

CHAIN_INTERVAL = 0.5  # seconds between the chainer's looks
CHAIN_BATCH = 5_000  # records chained by one transaction
PRUNE_INTERVAL = 3600.0
RETRY_DELAY = 2.0
# One chainer at a time across every node: the transaction-level advisory lock of this key.
CHAIN_LOCK = 0x61756469  # "audi"


@dataclass(frozen=True)
class Requester:
    """Who the request being served is from: the authenticated user (None before, or for the
    server's own work) and the client's address."""

    actor_id: UUID | None = None
    address: str | None = None


NOBODY = Requester()
_requester: ContextVar[Requester | None] = ContextVar("audit_requester", default=None)


def set_requester(actor_id: UUID | None, address: str | None) -> None:
    """Name who the current request (its task and what it awaits) is from: every record it
    writes without an actor or an address of its own gets these."""
    _requester.set(Requester(actor_id, address))


def requester() -> Requester:
    return _requester.get() or NOBODY


def as_json(record: Record) -> dict[str, object]:
    """A record as the API, the export and the log show it."""
    return {
        "id": str(record.id),
        "at": record.at,
        "actor": None if record.actor_id is None
        else {"id": record.actor_id, "username": record.actor_username},
        "action": record.action,
        "target": None if record.target_kind is None
        else {"kind": record.target_kind, "id": record.target_id},
        "address": record.address,
        "outcome": record.outcome,
        "detail": record.detail,
        "position": record.position,
        "prev_hash": None if record.prev_hash is None else record.prev_hash.hex(),
        "hash": None if record.hash is None else record.hash.hex(),
    }


def json_line(record: Record) -> bytes:
    return codec.encode(as_json(record)) + b"\n"


# Refusals (403, 404) recorded a minute for one user on one node; past it they are counted, and
# the next one recorded says how many were dropped. An account probing ids cannot flood the
# trail, and the trail still shows that it probed.
REFUSALS_PER_MINUTE = 30


class Audit:
    """Writes records, and reads them back for administrators."""

    def __init__(self, db: Database, *, enabled: bool = True) -> None:
        self._db = db
        self.enabled = enabled
        self._refusals: dict[UUID, tuple[float, int, int]] = {}  # window start, kept, dropped

    async def refused(self, status: int, route: str, target_id: UUID | None) -> None:
        """Record a refusal (403, or 404 of an id) of the current request's user, within
        REFUSALS_PER_MINUTE for that user on this node."""
        who = requester()
        if not self.enabled or who.actor_id is None:
            return
        now = asyncio.get_running_loop().time()
        started, kept, dropped = self._refusals.get(who.actor_id, (now, 0, 0))
        if now - started >= 60:
            started, kept = now, 0
        if kept >= REFUSALS_PER_MINUTE:
            self._refusals[who.actor_id] = (started, kept, dropped + 1)
            return
        self._refusals[who.actor_id] = (started, kept + 1, 0)
        if len(self._refusals) > 10_000:  # forget the oldest windows
            for user_id in list(self._refusals)[:5_000]:
                del self._refusals[user_id]
        detail: dict[str, object] = {"status": status, "route": route}
        if dropped:
            detail["dropped_before"] = dropped
        await self.record(self.new(
            "access.refused", "refused", target=None if target_id is None else ("id", target_id),
            detail=detail,
        ))

    @staticmethod
    def new(
        action: str, outcome: str = "ok", *, target: tuple[str, UUID] | None = None,
        detail: dict[str, object] | None = None, actor_id: UUID | None = None,
    ) -> NewRecord:
        """A record of the current request's address and user (or `actor_id`)."""
        who = requester()
        return NewRecord(
            action, outcome, actor_id=actor_id or who.actor_id,
            target_kind=None if target is None else target[0],
            target_id=None if target is None else target[1],
            address=who.address, detail=dict(detail or {}),
        )

    async def record(self, *records: NewRecord, conn: Connection | None = None) -> None:
        """Write the records: on `conn`, in its transaction, or in a statement of their own."""
        if not self.enabled or not records:
            return
        if conn is not None:
            await audit_store.insert_records(conn, records)
            return
        async with self._db.connection() as own:
            await audit_store.insert_records(own, records)

    async def records(self, wanted: Filter, limit: int) -> list[Record]:
        async with self._db.connection() as conn:
            return await audit_store.list_records(conn, wanted, limit)


@dataclass(frozen=True)
class Broken:
    """Where the chain stops verifying: the first record found edited, removed or reordered."""

    position: int
    record_id: int | None
    reason: str


@dataclass(frozen=True)
class Verified:
    checked: int
    broken: Broken | None


async def verify(db: Database) -> Verified:
    """Walk the chain from its start (after pruning, the oldest record kept) and recompute
    every hash: the first record whose position, link to the one before, or own hash is not
    what it should be is where the chain was edited, shortened or reordered. The walk reads
    one snapshot: records chained or pruned meanwhile by a running node are not mistaken for a
    gap."""
    async with db.unbounded() as conn, conn.transaction(
        isolation="repeatable_read", readonly=True
    ):
        position, prev_hash = await audit_store.chain_start(conn)
        head = await conn.fetchrow("select last_position, last_hash from audit_chain")
        checked = 0
        async for record in audit_store.chained_from(conn, position):
            if record.position != position:
                return Verified(checked, Broken(position, record.id, "missing: removed"))
            if record.prev_hash != prev_hash:
                return Verified(checked, Broken(position, record.id, "out of order"))
            if record.hash != record.chained_hash(position, prev_hash):
                return Verified(checked, Broken(position, record.id, "edited"))
            prev_hash = record.hash
            position += 1
            checked += 1
        if position - 1 != head["last_position"] or (
            checked and bytes(head["last_hash"]) != prev_hash
        ):
            return Verified(checked, Broken(position, None, "missing: removed at the end"))
        return Verified(checked, None)


async def export_since(db: Database, since: datetime) -> AsyncIterator[bytes]:
    """The chained records from `since` on, in chain order, as JSON lines, all of one
    snapshot."""
    async with db.unbounded() as conn, conn.transaction(
        isolation="repeatable_read", readonly=True
    ):
        async for record in audit_store.chained_since(conn, since):
            yield json_line(record)


class _StandardOutput(logging.Handler):
    """Each record's message alone on a line of whatever standard output is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(record.getMessage() + "\n")
            sys.stdout.flush()
        except Exception:  # a closed output must not stop the chainer
            self.handleError(record)


class Chainer:
    """The task that chains committed records, logs them when asked, and prunes old ones."""

    def __init__(
        self, db: Database, *, retention: timedelta, log_records: bool = False
    ) -> None:
        self._db = db
        self._retention = retention
        self._log_records = log_records
        if log_records and not records_log.handlers:  # JSON lines alone, on standard output
            records_log.addHandler(_StandardOutput())
            records_log.setLevel(logging.INFO)
            records_log.propagate = False

    async def chain_once(self) -> int:
        """Chain what is committed and unchained (unless another node is at it); return how
        many records were chained."""
        total = 0
        while True:
            async with self._db.transaction() as conn:
                if not await conn.fetchval("select pg_try_advisory_xact_lock($1)", CHAIN_LOCK):
                    return total
                chained = await audit_store.chain_next(conn, CHAIN_BATCH)
            self._log(chained)
            total += len(chained)
            if len(chained) < CHAIN_BATCH:
                return total

    async def prune_once(self) -> int:
        async with self._db.transaction() as conn:
            if not await conn.fetchval("select pg_try_advisory_xact_lock($1)", CHAIN_LOCK):
                return 0
            return await audit_store.prune_chained(conn, self._retention)

    def _log(self, chained: Sequence[Record]) -> None:
        if self._log_records:
            for record in chained:
                records_log.info("%s", json_line(record).decode().rstrip("\n"))

    async def run(self) -> None:
        """Chain every CHAIN_INTERVAL and prune every PRUNE_INTERVAL until cancelled."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while True:
            wait = CHAIN_INTERVAL
            try:
                await self.chain_once()
                if loop.time() >= next_prune:
                    await self.prune_once()
                    next_prune = loop.time() + PRUNE_INTERVAL
            except DATABASE_FAULTS as error:
                log.warning("audit: the database is unavailable (%s); retrying",
                            type(error).__name__)
                wait = RETRY_DELAY
            except Exception:  # the top of a background loop: log, wait a little, go on
                log.exception("audit chaining failed; retrying")
                wait = RETRY_DELAY
            await asyncio.sleep(wait)
