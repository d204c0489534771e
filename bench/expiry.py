"""Expiry: N messages expiring over a window, deleted on time by the real expirer.

For each N (and each `--pending` M), a fresh embedded PostgreSQL gets a few hundred users and
N + M messages, copied in bulk: N expire uniformly over a window (`--rate` per second, or
`--window` seconds) that starts once seeding is over, M expire in a year, beside them. The real
`realtime.expiry.Expirer` then runs on the bench's own event loop (uvloop, as the server's), with
a pool of 4 and a publish sink that only notes when each batch came; with `--server` it runs
inside a real `realtime serve` instead.

A message's lag runs from its expires_at to its deletion. The deletion time is read back from the
`message.deleted` events the expirer wrote: `events.created_at` is `now()`, the start of the
deleting transaction, the same for every event of a batch, and on the database's clock, which is
the machine's, as is the bench's. The commit comes later, once the batch's statements have run
and its WAL is flushed, so in process the bench also notes when the sink is handed each batch,
just after its commit: the `commit` columns.

Seeding is not measured with the expiry: the rows are copied in chunks, then VACUUM ANALYZE and
a CHECKPOINT settle the database before the window opens. Over the expiry phase the bench reads
the CPU of the expirer's process and of every PostgreSQL process (/proc), the WAL written and,
in process, its full-page images (pg_stat_wal), and the CPU of other work on the machine.

    .venv/bin/python bench/expiry.py 10000 100000 1000000
    .venv/bin/python bench/expiry.py 10000 --pending 0 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import logging
import math
import os
import pstats
import random
import signal
import sys
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import harness
import orjson
import uvloop
from harness import CpuWindow, Watched

from realtime.config import Settings
from realtime.db import Database, EmbeddedPostgres, create_pool
from realtime.events import EventSink
from realtime.expiry import Expirer
from realtime.loadtest.stats import percentile
from realtime.migrate import apply_migrations
from realtime.models import Event, EventType, Message
from realtime.store import expiry as expiry_store

DEFAULT_RATE = 8_000.0  # expiries per second when no --window is given
MIN_WINDOW = 2.0
PENDING_DELAY = 365 * 86_400.0  # the pending messages expire a year from the window's start
PENDING_SPREAD = 86_400.0  # ... over one day
CHUNK = 20_000  # messages per COPY transaction while seeding
SEED_CONNECTIONS = 2  # one builds the next chunk while the other's COPY runs
EXPIRER_POOL_SIZE = 4
# Seeding must end before the window starts; the default lead allows this much per message.
LEAD_BASE, LEAD_PER_MESSAGE = 8.0, 60e-6
READY_MARGIN = 1.0  # the expirer is running at least this long before the first expiry
CPU_LEAD = 0.2  # the CPU window opens this long before the first expiry
POLL_INTERVAL = 0.1  # --server: how often the database is asked whether all are gone
# Targets on the 2-core machine, with 10^6 messages pending (see the issue).
TARGET_P99 = 1.0
TARGET_RATE = 5_000.0
TARGET_DUE = 1_000_000
GROWTH_LIMIT = 1.5  # a cost "does not grow" when the larger case's is under 1.5x the smaller's
PROFILE_LINES = 30
PROBLEM_LINES = 40

# Placeholder ciphertexts the size of a real message's: the expirer never decrypts them.
WRAPPED_KEY = os.urandom(60)  # a 32-byte data key wrapped with AES-GCM: nonce + key + tag
SUBJECT = os.urandom(12 + 40 + 16)
BODY = os.urandom(12 + 400 + 16)
MESSAGE_COLUMNS = ("id", "sender_id", "sent_at", "expires_at", "high_priority", "key_id",
                   "wrapped_key", "subject", "body", "recipient_count")
ADDRESSEE_COLUMNS = ("message_id", "position", "kind", "target_id", "name")
RECIPIENT_COLUMNS = ("message_id", "user_id", "sent_at", "expires_at", "high_priority")


# --- what is run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One measurement: how many messages, expiring when, among how many users."""

    due: int
    pending: int
    window: float  # seconds over which the due messages expire; 0: all at one instant
    lead: float  # seconds from the start of seeding to the first expiry
    users: int
    recipients: int  # per message, besides the sender

    @property
    def rate(self) -> float:
        """Expiries per second asked of the expirer (inf when all are due at once)."""
        return self.due / self.window if self.window > 0 else math.inf

    @property
    def events_per_message(self) -> int:
        """One `message.deleted` for the sender and one for each recipient."""
        return 1 + self.recipients


def make_plans(args: argparse.Namespace) -> list[Plan]:
    """Every N with every pending count, in the order given."""
    plans = []
    for pending in args.pending:
        for due in args.due:
            window = args.window if args.window is not None else max(MIN_WINDOW, due / args.rate)
            lead = (args.lead if args.lead is not None
                    else LEAD_BASE + (due + pending) * LEAD_PER_MESSAGE)
            plans.append(Plan(due, pending, window, lead, args.users, args.recipients))
    return plans


# --- seeding -----------------------------------------------------------------------------------


@dataclass
class Schedule:
    """The due messages, their ids (as the events' payloads spell them) and expiry times."""

    first: float  # epoch seconds of the first expiry: the window's start
    last: float  # of the last
    ids: list[str]
    expires: array[float]  # epoch seconds, in the order of `ids`


@dataclass(frozen=True)
class Seeding:
    """What seeding took."""

    rows: int  # messages, recipients and addressees
    seconds: float  # users and messages, copied
    prepare_seconds: float  # VACUUM ANALYZE and CHECKPOINT after the copy


class Seeder:
    """Builds the messages chunk by chunk: ids, senders, recipients and expiry times.

    Due and pending messages are interleaved at random, and the expiry times of the due ones are
    shuffled too, so that neither the heap nor the primary key is in expiry order (as with real
    sends, whose expiry delays vary).
    """

    def __init__(self, plan: Plan, start: float, user_ids: list[uuid.UUID], seed: int) -> None:
        self._plan = plan
        self._start = start
        self._users = user_ids
        self._names = [f"bench{i:05d}" for i in range(len(user_ids))]
        self._rng = random.Random(seed)
        step = plan.window / plan.due if plan.due else 0.0
        offsets = [(slot + self._rng.random()) * step for slot in range(plan.due)]
        offsets += [PENDING_DELAY + self._rng.random() * PENDING_SPREAD
                    for _ in range(plan.pending)]
        self._rng.shuffle(offsets)
        self._offsets = offsets
        self.schedule = Schedule(start, start + plan.window, [], array("d"))

    def chunks(self) -> Iterator[range]:
        total = len(self._offsets)
        return (range(lo, min(lo + CHUNK, total)) for lo in range(0, total, CHUNK))

    def build(self, positions: range) -> tuple[list[tuple[Any, ...]], ...]:
        """The rows of messages, message_addressees and message_recipients for these positions;
        the due ones are noted in the schedule."""
        rng, users, names = self._rng, self._users, self._names
        sent_at = datetime.now(UTC)
        messages, addressees, recipients = [], [], []
        for position in positions:
            offset = self._offsets[position]
            expires = self._start + offset
            expires_at = datetime.fromtimestamp(expires, UTC)
            message_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            people = rng.sample(range(len(users)), 1 + self._plan.recipients)
            messages.append((message_id, users[people[0]], sent_at, expires_at, False, "bench",
                             WRAPPED_KEY, SUBJECT, BODY, self._plan.recipients))
            for index, person in enumerate(people[1:]):
                addressees.append((message_id, index, "user", users[person], names[person]))
                recipients.append((message_id, users[person], sent_at, expires_at, False))
            if offset < PENDING_DELAY:
                self.schedule.ids.append(str(message_id))
                self.schedule.expires.append(expires)
        return messages, addressees, recipients


async def seed(url: str, plan: Plan, start: float, *, seed: int) -> tuple[Schedule, Seeding]:
    """Copy in the users (each with its event counter) and the messages, then VACUUM ANALYZE
    and CHECKPOINT, so that the expiry phase starts from a settled database.

    The copying sessions run with `session_replication_role = replica`: the rows are consistent
    by construction, and checking each foreign key would only slow the copy down.
    """
    began = time.monotonic()
    user_ids = [uuid.uuid4() for _ in range(plan.users)]
    connections: list[asyncpg.Connection] = []
    try:
        for _ in range(SEED_CONNECTIONS):
            connections.append(await asyncpg.connect(url, server_settings={
                "session_replication_role": "replica", "synchronous_commit": "off"}))
        conn = connections[0]
        async with conn.transaction():
            await conn.copy_records_to_table(
                "users", columns=["id", "username", "display_name", "password_hash"],
                records=[(user_id, f"bench{i:05d}", f"Bench user {i}", "-")
                         for i, user_id in enumerate(user_ids)],
            )
            await conn.copy_records_to_table(
                "event_counters", columns=["user_id"], records=[(u,) for u in user_ids]
            )
        seeder = Seeder(plan, start, user_ids, seed)
        chunks = seeder.chunks()
        await asyncio.gather(*(_copy_chunks(conn, seeder, chunks) for conn in connections))
    finally:
        for conn in connections:
            await conn.close()
    copied = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("vacuum (analyze) users, event_counters, messages, "
                           "message_addressees, message_recipients")
        await conn.execute("checkpoint")
    finally:
        await conn.close()
    rows = (plan.due + plan.pending) * (1 + 2 * plan.recipients)
    return seeder.schedule, Seeding(rows, copied - began, time.monotonic() - copied)


async def _copy_chunks(conn: asyncpg.Connection, seeder: Seeder, chunks: Iterator[range]) -> None:
    """Take chunks from the shared iterator until none is left; each is one transaction."""
    for positions in chunks:
        messages, addressees, recipients = seeder.build(positions)
        async with conn.transaction():
            await conn.copy_records_to_table("messages", columns=MESSAGE_COLUMNS,
                                             records=messages)
            await conn.copy_records_to_table("message_addressees", columns=ADDRESSEE_COLUMNS,
                                             records=addressees)
            await conn.copy_records_to_table("message_recipients", columns=RECIPIENT_COLUMNS,
                                             records=recipients)


# --- the expiry phase --------------------------------------------------------------------------


class CountingSink:
    """The consumer of the expirer's event sink: notes when each batch of events came, and
    nothing else.

    Only the message ids are kept, not the events: holding millions of Event objects would
    make the collector's full passes, pauses of the expirer's loop, grow with the run.
    """

    def __init__(self, events: EventSink, expected_events: int) -> None:
        self.batches: list[tuple[float, list[str]]] = []
        self._events = 0
        self._expected = expected_events
        self.all_in = asyncio.Event()
        events.attach(self)

    async def publish(
        self, events: list[Event], arrivals: Mapping[uuid.UUID, Message] | None = None
    ) -> None:
        self.batches.append((time.time(), [event.payload["message_id"] for event in events]))
        self._events += len(events)
        if self._events >= self._expected:
            self.all_in.set()

    async def end_sessions(
        self, user_id: uuid.UUID, session_ids: Sequence[uuid.UUID] | None
    ) -> None:
        """The expirer ends no session."""

    def commit_times(self) -> dict[str, float]:
        """When each message's batch was handed over, just after its commit (epoch seconds)."""
        return {message_id: at for at, message_ids in self.batches for message_id in message_ids}


@dataclass(frozen=True)
class Phase:
    """What the expiry phase measured, before the events are read back."""

    cpu: dict[str, float]  # CPU seconds of "expirer" and "postgres" over the phase
    others: float  # CPU seconds of the rest of the machine meanwhile: other work
    wall: float
    commit_times: dict[str, float] | None  # in process only
    profile: str | None  # the top of the cProfile report, with --profile
    wal_bytes: int  # WAL written by the whole server over the phase
    wal_fpi: int | None  # full-page images among it (in process only: see WalMeter)


class WalMeter:
    """WAL written over a phase: bytes from the insert position (exact, at once), full-page
    images from pg_stat_wal, which a backend updates when its transaction ends, at most once a
    second: the expirer's count is complete once its connections have closed."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._lsn = self._fpi = 0

    async def start(self) -> None:
        self._lsn, self._fpi = await self._position(), await self._images()

    async def written(self) -> int:
        return await self._position() - self._lsn

    async def images(self) -> int:
        await self._conn.execute("select pg_stat_clear_snapshot()")
        return await self._images() - self._fpi

    async def _position(self) -> int:
        return int(await self._conn.fetchval("select pg_current_wal_lsn() - '0/0'::pg_lsn"))

    async def _images(self) -> int:
        return int(await self._conn.fetchval("select wal_fpi from pg_stat_wal"))


async def run_expirer_in_process(
    url: str, watched: Sequence[Watched], schedule: Schedule, plan: Plan, deadline: float,
    profile: Path | None,
) -> Phase:
    """Run the real Expirer on this loop until every due message is deleted (or `deadline`)."""
    meter_conn = await asyncpg.connect(url)
    db = Database(await create_pool(url, size=EXPIRER_POOL_SIZE), url)
    events = EventSink()
    sink = CountingSink(events, plan.due * plan.events_per_message)
    expirer = Expirer(db, Settings(), events)
    task = asyncio.create_task(expirer.run(), name="expirer")
    profiler = cProfile.Profile() if profile is not None else None
    wal = WalMeter(meter_conn)
    try:
        await _sleep_until(schedule.first - CPU_LEAD)
        window = CpuWindow(watched)
        await wal.start()
        if profiler is not None:
            profiler.enable()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                await sink.all_in.wait()
        if profiler is not None:
            profiler.disable()
        used = window.stop()
        wal_bytes = await wal.written()
        if task.done():  # it never ends by itself: an error escaped it
            task.result()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.pool.close()
    try:
        await asyncio.sleep(0.5)  # the closed backends' statistics reach pg_stat_wal
        wal_fpi = await wal.images()
    finally:
        await meter_conn.close()
    report = None
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(PROFILE_LINES)
        report = text.getvalue()
    return Phase(used.seconds, used.others(), used.wall, sink.commit_times(), report,
                 wal_bytes, wal_fpi)


async def watch_server_expirer(
    url: str, watched: Sequence[Watched], schedule: Schedule, deadline: float
) -> Phase:
    """Tell the server's expirer of the first expiry (as a send does), and wait until no due
    message is left, asking the database every POLL_INTERVAL (or until `deadline`)."""
    conn = await asyncpg.connect(url)
    try:
        await expiry_store.announce(conn, datetime.fromtimestamp(schedule.first, UTC))
        await _sleep_until(schedule.first - CPU_LEAD)
        window = CpuWindow(watched)
        wal = WalMeter(conn)
        await wal.start()
        last_due = datetime.fromtimestamp(schedule.last, UTC)
        while time.time() < deadline:
            if not await conn.fetchval(
                "select exists (select 1 from messages where expires_at <= $1)", last_due
            ):
                break
            await asyncio.sleep(POLL_INTERVAL)
        used = window.stop()
        wal_bytes = await wal.written()
    finally:
        await conn.close()
    return Phase(used.seconds, used.others(), used.wall, None, None, wal_bytes, None)


async def _sleep_until(moment: float) -> None:
    """Sleep until the epoch time `moment` (at once if it has passed)."""
    await asyncio.sleep(max(0.0, moment - time.time()))


# --- figures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """The messages expiring in one slice of the window, and how late they were deleted."""

    start: float  # seconds from the first expiry
    deleted: int
    p50: float  # seconds, to the commit when known, else to the transaction's start
    p99: float
    worst: float


def timeline(lags_by_expiry: Sequence[tuple[float, float]], step: float) -> list[Slice]:
    """The lags of (seconds from the first expiry, lag) pairs, in slices of `step` seconds."""
    slices: dict[int, list[float]] = {}
    for offset, lag in lags_by_expiry:
        slices.setdefault(int(offset // step), []).append(lag)
    found = []
    for index in sorted(slices):
        lags = sorted(slices[index])
        found.append(Slice(index * step, len(lags), percentile(lags, 0.50, empty=math.nan),
                           percentile(lags, 0.99, empty=math.nan), lags[-1]))
    return found


@dataclass
class Run:
    """One N (with M pending): seeding, then expiry, and what it cost."""

    due: int
    pending: int
    window: float
    rate: float  # expiries per second asked
    recipients: int
    rows: int
    seed_seconds: float
    prepare_seconds: float
    lead: float
    deleted: int
    left: int  # due messages not deleted by the deadline
    deletions_per_second: float  # deleted / (last deletion - first expiry)
    transactions: int  # deleting transactions (distinct events.created_at)
    lag_p50: float  # seconds from expires_at to events.created_at (the transaction's start)
    lag_p99: float
    lag_max: float
    commit_p50: float  # seconds from expires_at to the batch handed over after commit
    commit_p99: float
    commit_max: float
    expirer_cpu: float  # the bench process (in process) or the server process (--server)
    postgres_cpu: float  # the postmaster and all its children, the autovacuum included
    others_cpu: float  # the rest of the machine: other work, which makes the figures noisy
    wall: float
    events: int  # message.deleted events written: one per message and person told
    wal_bytes: int  # WAL written over the phase, by the whole server
    wal_fpi: int | None  # full-page images among it (in process only)
    profile: str | None = None
    timeline: list[Slice] = field(default_factory=list)  # with --timeline

    @property
    def cpu_per_expiry(self) -> float:
        """Seconds of CPU, the expirer's and PostgreSQL's, per message deleted."""
        return (self.expirer_cpu + self.postgres_cpu) / self.deleted if self.deleted else math.nan

    @property
    def judged_p99(self) -> float:
        """The p99 the target is judged on: to the commit when known, else to the start."""
        return self.commit_p99 if not math.isnan(self.commit_p99) else self.lag_p99


async def read_deletions(url: str) -> tuple[dict[str, float], int]:
    """Each deleted message's `events.created_at` (epoch seconds), and the events' count."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select payload->>'message_id' as id,
                      extract(epoch from min(created_at))::float8 as at, count(*) as events
               from events where type = $1 group by 1""",
            EventType.MESSAGE_DELETED.value,
        )
    finally:
        await conn.close()
    return {row["id"]: row["at"] for row in rows}, sum(row["events"] for row in rows)


def summarise(
    plan: Plan, schedule: Schedule, seeding: Seeding, phase: Phase,
    created: dict[str, float], events: int, timeline_step: float | None,
) -> Run:
    """Match every due message with its deletion and compute the run's figures."""
    lags, commit_lags = [], []
    commits = phase.commit_times
    by_expiry = []  # (seconds from the first expiry, lag), the judged lag
    for message_id, expires in zip(schedule.ids, schedule.expires, strict=True):
        at = created.get(message_id)
        if at is not None:
            lags.append(at - expires)
        if commits is not None and (committed := commits.get(message_id)) is not None:
            commit_lags.append(committed - expires)
            at = committed
        if timeline_step and at is not None:
            by_expiry.append((expires - schedule.first, at - expires))
    lags.sort()
    commit_lags.sort()
    finished = (max(commits.values()) if commits else
                max((created[i] for i in schedule.ids if i in created), default=math.nan))
    span = finished - schedule.first
    return Run(
        due=plan.due, pending=plan.pending, window=plan.window, rate=plan.rate,
        recipients=plan.recipients, rows=seeding.rows, seed_seconds=seeding.seconds,
        prepare_seconds=seeding.prepare_seconds, lead=plan.lead,
        deleted=len(lags), left=plan.due - len(lags),
        deletions_per_second=len(lags) / span if span > 0 else math.nan,
        transactions=len({created[i] for i in schedule.ids if i in created}),
        lag_p50=percentile(lags, 0.50, empty=math.nan),
        lag_p99=percentile(lags, 0.99, empty=math.nan),
        lag_max=lags[-1] if lags else math.nan,
        commit_p50=percentile(commit_lags, 0.50, empty=math.nan),
        commit_p99=percentile(commit_lags, 0.99, empty=math.nan),
        commit_max=commit_lags[-1] if commit_lags else math.nan,
        expirer_cpu=phase.cpu.get("expirer", 0.0),
        postgres_cpu=phase.cpu.get("postgres", 0.0), others_cpu=phase.others,
        wall=phase.wall, events=events, wal_bytes=phase.wal_bytes, wal_fpi=phase.wal_fpi,
        profile=phase.profile,
        timeline=timeline(by_expiry, timeline_step) if timeline_step else [],
    )


# --- one run -----------------------------------------------------------------------------------


@asynccontextmanager
async def embedded_database(workdir: Path, name: str) -> AsyncIterator[tuple[str, int]]:
    """A private embedded PostgreSQL, migrated; yields its URL and the postmaster's pid.

    It is stopped and its directory deleted at the end, also on an error or Ctrl-C; should the
    handle be lost mid-start, the postmaster under the directory is stopped all the same.
    """
    pgdata = workdir / name
    embedded = EmbeddedPostgres(pgdata, delete_on_stop=True)
    try:
        url = await asyncio.to_thread(embedded.start)
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        yield url, _postmaster_pid(pgdata)
    finally:
        await asyncio.to_thread(embedded.stop)
        await asyncio.to_thread(_stop_leftover_postgres, pgdata)


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _stop_leftover_postgres(pgdata: Path) -> None:
    """Fast shutdown (SIGINT) of a PostgreSQL still running under `pgdata`, if any; waits."""
    try:
        pid = _postmaster_pid(pgdata)
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return
        os.kill(pid, signal.SIGINT)
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return
    for _ in range(int(harness.STOP_TIMEOUT / 0.1)):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)


async def run_plan(workdir: Path, plan: Plan, args: argparse.Namespace, index: int) -> Run:
    """Seed a fresh database with the plan's messages, let them expire, and measure."""
    label = f"N={plan.due:,}, pending {plan.pending:,}"
    _progress(f"{label}: window {plan.window:g} s ({plan.rate:,.0f}/s), lead {plan.lead:.0f} s")
    async with contextlib.AsyncExitStack() as stack:
        server: harness.Server | None = None
        if args.server:
            server = await stack.enter_async_context(
                harness.realtime_server(workdir, redis=False, ws=harness.SERVER_WS))
            url = server.database_url
            watched = [Watched("expirer" if w.role == "server" else w.role, w.pid, w.tree)
                       for w in server.watched]
        else:
            url, postmaster = await stack.enter_async_context(
                embedded_database(workdir, f"postgres-{index}"))
            watched = [Watched("expirer", os.getpid()), Watched("postgres", postmaster, tree=True)]
        start = time.time() + plan.lead
        schedule, seeding = await seed(url, plan, start, seed=args.seed + index)
        _progress(f"{label}: {seeding.rows:,} rows copied in {seeding.seconds:.1f} s, "
                  f"vacuum and checkpoint {seeding.prepare_seconds:.1f} s; first expiry in "
                  f"{schedule.first - time.time():.1f} s")
        if time.time() > schedule.first - READY_MARGIN:
            raise RuntimeError(
                f"seeding ended {time.time() - schedule.first + READY_MARGIN:.1f} s too late "
                f"for the window planned; run again with a --lead above {plan.lead:.0f} s")
        gc.collect()  # the seeding's garbage, not the expirer's
        gc.freeze()  # as `realtime serve` does, the survivors leave the collector's scans
        deadline = schedule.last + args.timeout
        if server is not None:
            phase = await watch_server_expirer(url, watched, schedule, deadline)
        else:
            profile = (args.profile.with_name(f"{args.profile.name}.{plan.due}-{plan.pending}")
                       if args.profile else None)
            phase = await run_expirer_in_process(url, watched, schedule, plan, deadline, profile)
        gc.unfreeze()
        created, events = await read_deletions(url)
        if server is not None:
            for line in server.problems()[:PROBLEM_LINES]:
                _progress(f"server log: {line}")
    run = summarise(plan, schedule, seeding, phase, created, events, args.timeline)
    _progress(f"{label}: {run.deleted:,} deleted, {run.left:,} left, "
              f"p99 {run.lag_p99 * 1e3:,.1f} ms, {run.deletions_per_second:,.0f}/s")
    return run


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- report ------------------------------------------------------------------------------------


def print_runs(runs: Sequence[Run], server: bool) -> None:
    print(f"Seeding (COPY in chunks of {CHUNK:,} messages on {SEED_CONNECTIONS} connections, "
          "then VACUUM ANALYZE and CHECKPOINT):")
    harness.print_table(
        ["N due", "pending", "rows", "copy s", "rows/s", "vacuum+ckpt s", "lead s"],
        [(r.due, r.pending, r.rows, r.seed_seconds, r.rows / r.seed_seconds, r.prepare_seconds,
          r.lead) for r in runs],
    )
    print()
    print("Expiry ({}):".format("inside `realtime serve`" if server else
                                "the Expirer in the bench process, on uvloop, pool of 4"))
    ms = 1e3
    harness.print_table(
        ["N due", "pending", "window s", "asked/s", "deletions/s", "left", "txns", "msgs/txn",
         "lag p50 ms", "lag p99 ms", "lag max ms", "commit p99 ms", "commit max ms",
         "expirer CPU s", "postgres CPU s", "µs CPU/expiry", "WAL MB", "WAL kB/expiry",
         "FPI/expiry", "others %"],
        [(r.due, r.pending, r.window, r.rate, r.deletions_per_second, r.left, r.transactions,
          r.deleted / r.transactions if r.transactions else math.nan,
          r.lag_p50 * ms, r.lag_p99 * ms, r.lag_max * ms, r.commit_p99 * ms, r.commit_max * ms,
          r.expirer_cpu, r.postgres_cpu, r.cpu_per_expiry * 1e6, r.wal_bytes / 1e6,
          r.wal_bytes / 1e3 / r.deleted if r.deleted else math.nan,
          r.wal_fpi / r.deleted if r.wal_fpi is not None and r.deleted else math.nan,
          100 * r.others_cpu / r.wall if r.wall > 0 else math.nan)
         for r in runs],
    )
    print("  lag: events.created_at (now(), the start of the deleting transaction) - expires_at;"
          "\n  commit: the batch's events handed to the publish sink, just after the commit,"
          " - expires_at (in process only);"
          "\n  deletions/s: deleted / (last deletion - first expiry); txns: deleting transactions;"
          "\n  CPU: over the phase, from just before the first expiry to the last deletion;"
          "\n  expirer: the {} (all threads); postgres: postmaster and every child;"
          "\n  WAL: written by the server over the phase; FPI: full-page images (the first"
          " change\n  to a page after a checkpoint logs all of it), in process only;"
          "\n  others: the machine's busy time minus the bench's and PostgreSQL's, as a share of"
          " one core:\n  other work running meanwhile; above a few per cent, the run is noisy."
          .format("server process" if server else "bench process"))
    for run in runs:
        wrong = run.deleted * (1 + run.recipients)
        if run.events != wrong:
            print(f"  N={run.due:,}: {run.events:,} message.deleted events where "
                  f"{wrong:,} were due: some message was told of twice or not at all")
    print()


def print_targets(runs: Sequence[Run]) -> None:
    """The issue's targets, on the runs that show them."""
    print("Targets:")
    big = [r for r in runs if r.due >= TARGET_DUE or r.pending + r.due >= TARGET_DUE]
    if not big:
        print(f"  (judged with {TARGET_DUE:,} messages or more, due or pending: none here)")
    for run in big:
        shown = f"N={run.due:,} due, {run.pending:,} pending"
        sustained = run.rate >= TARGET_RATE
        checks = [
            (f"p99 lag < {TARGET_P99:.0f} s", f"{run.judged_p99 * 1e3:,.0f} ms "
             f"(to the commit when known), {run.left:,} left",
             run.judged_p99 < TARGET_P99 and run.left == 0),
            (f">= {TARGET_RATE:,.0f} deletions/s sustained",
             f"{run.deletions_per_second:,.0f}/s at {run.rate:,.0f}/s asked" if sustained else
             f"not shown: only {run.rate:,.0f}/s asked",
             sustained and run.deletions_per_second >= TARGET_RATE),
        ]
        for what, measured, met in checks:
            print(f"  [{'met' if met else 'MISSED'}] {shown}: {what}: {measured}")
    for small, large, what in _comparisons(runs):
        for name, value in (("p99 lag", lambda r: r.judged_p99),
                            ("CPU per expiry", lambda r: r.cpu_per_expiry)):
            ratio = value(large) / value(small)
            print(f"  [{'met' if ratio < GROWTH_LIMIT else 'MISSED'}] {name} does not grow "
                  f"with {what}: {value(small) * 1e3:,.3f} ms -> {value(large) * 1e3:,.3f} ms "
                  f"(x{ratio:.2f}, limit x{GROWTH_LIMIT})")
    print()


def _comparisons(runs: Sequence[Run]) -> list[tuple[Run, Run, str]]:
    """Pairs that show whether a cost grows: the smallest and the largest N at the same pending
    count, and the fewest and the most pending at the same N."""
    pairs = []
    for pending in sorted({r.pending for r in runs}):
        same = sorted((r for r in runs if r.pending == pending), key=lambda r: r.due)
        if len(same) > 1:
            pairs.append((same[0], same[-1], f"N ({same[0].due:,} -> {same[-1].due:,} due)"))
    for due in sorted({r.due for r in runs}):
        same = sorted((r for r in runs if r.due == due), key=lambda r: r.pending)
        if len(same) > 1:
            pairs.append((same[0], same[-1],
                          f"pending ({same[0].pending:,} -> {same[-1].pending:,}, N={due:,})"))
    return pairs


def print_timelines(runs: Sequence[Run]) -> None:
    for run in runs:
        if run.timeline:
            print(f"Lag by expiry time, N={run.due:,}, pending {run.pending:,} (to the commit "
                  "when known, else to the transaction's start):")
            harness.print_table(
                ["from s", "deleted", "p50 ms", "p99 ms", "max ms"],
                [(s.start, s.deleted, s.p50 * 1e3, s.p99 * 1e3, s.worst * 1e3)
                 for s in run.timeline],
            )
            print()


def print_profiles(runs: Sequence[Run]) -> None:
    for run in runs:
        if run.profile:
            print(f"cProfile of the bench process over the expiry phase, N={run.due:,}, "
                  f"pending {run.pending:,} (sorted by own time):")
            print(run.profile)


# --- main --------------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace) -> tuple[dict[str, Any], list[Run]]:
    harness.cancel_on_sigterm()
    header = {
        "benchmark": "expiry",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "version": await harness.project_version(),
        "options": {name: str(value) if isinstance(value, Path) else value
                    for name, value in vars(args).items()},
    }
    if not args.json:
        print(f"expiry: {header['started']}, {header['cores']} cores, load {header['load']:.2f}, "
              f"code {header['version']}, {'--server' if args.server else 'in process'}, "
              f"{args.users} users, {args.recipients} recipient(s) per message\n", flush=True)
    runs = []
    async with harness.work_directory() as workdir:
        for index, plan in enumerate(make_plans(args)):
            runs.append(await run_plan(workdir, plan, args, index))
    return header, runs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("due", type=int, nargs="+",
                        help="numbers of messages expiring in the window, one run each")
    parser.add_argument("--pending", type=int, nargs="+", default=[0],
                        help="messages expiring in a year, beside the due ones; several values "
                             "make one run per N and value (default: 0)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"expiries per second: window = N / rate, at least {MIN_WINDOW:g} s "
                             f"(default: {DEFAULT_RATE:,.0f})")
    parser.add_argument("--window", type=float,
                        help="seconds over which the N messages expire, instead of --rate; "
                             "0: all at one instant (a backlog: the expirer's full speed)")
    parser.add_argument("--users", type=int, default=500,
                        help="users sending and receiving the messages (default: 500)")
    parser.add_argument("--recipients", type=int, default=1,
                        help="recipients of each message, besides its sender (default: 1)")
    parser.add_argument("--lead", type=float,
                        help="seconds from the start of seeding to the first expiry (default: "
                             f"{LEAD_BASE:g} + {LEAD_PER_MESSAGE * 1e6:g} µs per message)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds after the last expiry before giving up (default: 120)")
    parser.add_argument("--server", action="store_true",
                        help="run the expirer inside a real `realtime serve` (default: in the "
                             "bench process)")
    parser.add_argument("--profile", type=Path,
                        help="cProfile the bench process over each expiry phase, to PATH.N-M "
                             "(in process only; the profiler slows the expirer down)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--timeline", type=float, metavar="SECONDS",
                        help="also print the lag of the messages expiring in each slice of "
                             "the window this long")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.server and args.profile:
        parser.error("--profile profiles the bench process: it cannot go with --server")
    if min(args.due) < 1 or min(args.pending) < 0 or args.recipients < 1:
        parser.error("N must be positive, --pending at least 0, --recipients at least 1")
    if args.users < args.recipients + 1:
        parser.error("--users must exceed --recipients")
    return args


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            header, runs = runner.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        print(orjson.dumps({
            **header,
            "runs": [{**asdict(run), "cpu_per_expiry": run.cpu_per_expiry} for run in runs],
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        print_runs(runs, args.server)
        print_targets(runs)
        print_timelines(runs)
        print_profiles(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
