"""The audit trail's records and their hash chain."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from realtime import codec


@dataclass(frozen=True)
class NewRecord:
    """What happened: who did it (None: the server itself), what, to what, from where, and how
    it ended. `detail` holds metadata only (counts, reasons), never content."""

    action: str
    outcome: str = "ok"
    actor_id: UUID | None = None
    target_kind: str | None = None
    target_id: UUID | None = None
    address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    id: int
    at: datetime
    actor_id: UUID | None
    actor_username: str | None
    action: str
    target_kind: str | None
    target_id: UUID | None
    address: str | None
    outcome: str
    detail: dict[str, Any]
    position: int | None
    prev_hash: bytes | None
    hash: bytes | None

    def chained_hash(self, position: int, prev_hash: bytes) -> bytes:
        """This record's hash at `position`, after the record whose hash is `prev_hash`."""
        fields = [
            position, self.at.isoformat(), str(self.actor_id or ""), self.action,
            self.target_kind or "", str(self.target_id or ""), self.address or "", self.outcome,
        ]
        canonical = codec.encode_canonical([*fields, self.detail])
        return hashlib.sha256(prev_hash + canonical).digest()


_COLUMNS = """r.id, r.at, r.actor_id, (select username from users where id = r.actor_id)
              as actor_username, r.action, r.target_kind, r.target_id, r.address, r.outcome,
              r.detail, r.position, r.prev_hash, r.hash"""


def _record(row: asyncpg.Record) -> Record:
    detail = row["detail"]  # text on a connection without the pool's codecs
    return Record(
        id=row["id"], at=row["at"], actor_id=row["actor_id"],
        actor_username=row["actor_username"], action=row["action"],
        target_kind=row["target_kind"], target_id=row["target_id"], address=row["address"],
        outcome=row["outcome"],
        detail=dict(codec.decode(detail) if isinstance(detail, str) else detail),
        position=row["position"],
        prev_hash=None if row["prev_hash"] is None else bytes(row["prev_hash"]),
        hash=None if row["hash"] is None else bytes(row["hash"]),
    )


def recording(select: str) -> str:
    """A common table expression (named `audited`) that writes one record per row of `select`,
    whose columns are, in order: actor_id, action, target_kind, target_id, address, outcome,
    detail (jsonb): for a statement that records what it does itself."""
    return f"""audited as (
               insert into audit_records
                   (actor_id, action, target_kind, target_id, address, outcome, detail)
               {select})"""


async def insert_records(conn: asyncpg.Connection, records: Sequence[NewRecord]) -> None:
    """Write the records (unchained), in one statement."""
    if not records:
        return
    await conn.execute(
        f"""with {recording('''select * from unnest($1::uuid[], $2::text[], $3::text[],
                                   $4::uuid[], $5::text[], $6::text[], $7::jsonb[])''')}
            select 1""",
        [r.actor_id for r in records], [r.action for r in records],
        [r.target_kind for r in records], [r.target_id for r in records],
        [r.address for r in records], [r.outcome for r in records],
        [r.detail for r in records],
    )


async def chain_next(conn: asyncpg.Connection, most: int) -> list[Record]:
    """Chain up to `most` committed unchained records, oldest first, after the chain's head:
    in a transaction that holds the head's lock until it commits. Return them chained."""
    head = await conn.fetchrow(
        "select last_position, last_hash from audit_chain for update"
    )
    rows = await conn.fetch(
        f"select {_COLUMNS} from audit_records r where r.position is null order by r.id"
        " limit $1", most,
    )
    if not rows:
        return []
    position, prev_hash = head["last_position"], bytes(head["last_hash"])
    chained = []
    for row in rows:
        record = _record(row)
        position += 1
        digest = record.chained_hash(position, prev_hash)
        chained.append(replace(record, position=position, prev_hash=prev_hash, hash=digest))
        prev_hash = digest
    await conn.execute(
        """update audit_records r set position = c.position, prev_hash = c.prev_hash,
                                      hash = c.hash
           from unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])
                as c(id, position, prev_hash, hash)
           where r.id = c.id""",
        [r.id for r in chained], [r.position for r in chained],
        [r.prev_hash for r in chained], [r.hash for r in chained],
    )
    await conn.execute(
        "update audit_chain set last_position = $1, last_hash = $2", position, prev_hash
    )
    return chained


async def chain_start(conn: asyncpg.Connection) -> tuple[int, bytes]:
    """Where the kept chain starts: the first position kept and the hash before it."""
    row = await conn.fetchrow("select first_position, first_prev_hash from audit_chain")
    return int(row["first_position"]), bytes(row["first_prev_hash"])


async def chained_from(
    conn: asyncpg.Connection, position: int, batch: int = 10_000
) -> AsyncIterator[Record]:
    """Every chained record from `position` on, in chain order, read a batch at a time."""
    while True:
        rows = await conn.fetch(
            f"select {_COLUMNS} from audit_records r where r.position >= $1"
            " order by r.position limit $2", position, batch,
        )
        for row in rows:
            yield _record(row)
        if len(rows) < batch:
            return
        position = rows[-1]["position"] + 1


async def chained_since(
    conn: asyncpg.Connection, since: datetime, batch: int = 10_000
) -> AsyncIterator[Record]:
    """Every chained record at or after `since`, in chain order."""
    first = await conn.fetchval(
        "select min(position) from audit_records where at >= $1 and position is not null", since
    )
    if first is None:
        return
    async for record in chained_from(conn, first, batch):
        if record.at >= since:
            yield record


async def prune_chained(conn: asyncpg.Connection, older_than: timedelta) -> int:
    """Delete the chained records older than `older_than`, the oldest first, and move the
    chain's start past them (its hash kept there), so that what is left still verifies."""
    row = await conn.fetchrow(
        """select max(position) as last from audit_records
           where position is not null and at < now() - $1::interval""", older_than,
    )
    if row["last"] is None:
        return 0
    last = int(row["last"])
    boundary = await conn.fetchval(
        "select hash from audit_records where position = $1", last
    )
    await conn.execute("select 1 from audit_chain for update")
    deleted = await conn.execute(
        "delete from audit_records where position is not null and position <= $1", last
    )
    await conn.execute(
        "update audit_chain set first_position = $1, first_prev_hash = $2", last + 1, boundary
    )
    return int(deleted.split()[-1])


@dataclass(frozen=True)
class Filter:
    """What an administrator looks for: by actor, action and time, newest first, after the
    record `before_id`."""

    actor_id: UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


async def list_records(conn: asyncpg.Connection, wanted: Filter, limit: int) -> list[Record]:
    rows = await conn.fetch(
        f"""select {_COLUMNS} from audit_records r
            where ($1::uuid is null or r.actor_id = $1)
              and ($2::text is null or r.action = $2)
              and ($3::timestamptz is null or r.at >= $3)
              and ($4::timestamptz is null or r.at < $4)
              and ($5::bigint is null or r.id < $5)
            order by r.id desc limit $6""",
        wanted.actor_id, wanted.action, wanted.since, wanted.until, wanted.before_id, limit,
    )
    return [_record(row) for row in rows]
