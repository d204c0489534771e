"""A load test spread over several processes, one core each, and their ledgers merged.

The parent makes the users and groups once, then starts `--processes` workers. Worker k holds
the sockets of the users whose index is k modulo n, and sends the sends whose number is k
modulo n, at its share of the rate. They start sending together, once every worker has
opened its sockets and heard who is online anywhere (a sender picks its recipients among
them). Each worker keeps what it sent and what arrived on its sockets; the parent replays
every part into one ledger, sends first, so a delivery is matched against the one send it
belongs to wherever it was sent from: each loss and each duplicate counts once.

Between the parent and a worker, a pipe carries these messages in this order:
worker `opened` (its users whose socket opened), parent `go` (everyone online, and when to
start), worker `progress` (each second), worker `sent` (its part of the sends), parent
`drain` (how many arrivals its sockets are owed, and every failed send), worker `done` (its
arrivals, counters and CPU). A worker that fails sends `error` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from realtime.loadtest.http import Deployment
from realtime.loadtest.ledger import Addressed, Ledger
from realtime.loadtest.loop import run as run_on_loop
from realtime.loadtest.options import LoadTestError, Options
from realtime.loadtest.population import Group, Member, log_in_admin, prepare_groups, prepare_users
from realtime.loadtest.report import Report
from realtime.loadtest.runner import (
    Run,
    allow_many_sockets,
    open_sockets,
    send_all,
)
from realtime.loadtest.sockets import Listener

Print = Callable[[str], None]
START_MARGIN = 0.5  # seconds between `go` and the first send, for every worker to hear it
STEP_TIMEOUT = 3600.0  # a worker silent this long is taken for dead


@dataclass(frozen=True)
class Share:
    """What one worker is given: the run, everyone, and which part is its own."""

    options: Options
    members: list[Member]
    groups: list[Group]
    subject_prefix: str
    part: int
    parts: int

    def mine(self, index: int) -> bool:
        return index % self.parts == self.part


@dataclass
class Part:
    """What one worker reports of its sends and of what reached its sockets."""

    online: frozenset[int] = frozenset()
    started: dict[int, float] = field(default_factory=dict)
    addressed: dict[int, Addressed] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    send_errors: Counter[str] = field(default_factory=Counter)
    recipients_mismatched: int = 0
    arrivals: list[tuple[int, int, float]] = field(default_factory=list)  # user, n, at
    counters: dict[str, int] = field(default_factory=dict)
    connect_errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0
    sending_seconds: float = 0.0


COUNTERS = ("connections_opened", "connections_failed", "reconnects", "resyncs")


class WorkerLedger(Ledger):
    """A worker's ledger: its own sends as usual, every arrival on its sockets kept as it came
    (its send may be another worker's), and the distinct ones counted for the drain."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[int, int, float]] = []
        self.distinct: set[tuple[int, int]] = set()
        self.failed_anywhere: frozenset[int] = frozenset()
        self.counted = 0  # distinct arrivals of sends that did not fail

    def arrive(self, user: int, n: int, at: float) -> None:
        self.arrivals.append((user, n, at))
        if (user, n) not in self.distinct:
            self.distinct.add((user, n))
            self.counted += n not in self.failed_anywhere

    def count_without(self, failed: frozenset[int]) -> None:
        """From now on, count only the arrivals of sends that did not fail anywhere."""
        self.failed_anywhere = failed
        self.counted = sum(n not in failed for _, n in self.distinct)


def merge(parts: Iterable[Part]) -> Ledger:
    """One ledger from every worker's part: all the sends first, then all the arrivals."""
    parts = list(parts)
    ledger = Ledger()
    ledger.online = frozenset().union(*(part.online for part in parts))
    for part in parts:
        ledger.started.update(part.started)
        ledger.failed |= part.failed
        ledger.send_errors += part.send_errors
        ledger.connect_errors += part.connect_errors
        ledger.recipients_mismatched += part.recipients_mismatched
        for name in COUNTERS:
            setattr(ledger, name, getattr(ledger, name) + part.counters.get(name, 0))
    for part in parts:
        for n, addressed in part.addressed.items():
            ledger.expect(n, addressed)
    for part in parts:
        for user, n, at in part.arrivals:
            ledger.arrive(user, n, at)
    return ledger


def owed_to(parts_count: int, ledger: Ledger) -> list[int]:
    """How many deliveries the sockets of each worker are owed, by the merged sends."""
    owed = [0] * parts_count
    for users in ledger.owed.values():
        for user in users:
            owed[user % parts_count] += 1
    return owed


# The parent.


async def run_in_processes(options: Options, processes: int, say: Print = print) -> Report:
    """Make the users once, run the test in `processes` workers, and merge what they saw."""
    async with Deployment(options.urls, connections=options.concurrency) as deployment:
        admin = await log_in_admin(deployment, options)
        members = await prepare_users(deployment, options, admin, lambda: None)
        groups = await prepare_groups(deployment, options, admin, members)
    prefix = f"loadtest {secrets.token_hex(4)} #"
    say(f"{len(members)} users ready; starting {processes} processes")
    context = multiprocessing.get_context("spawn")
    channels: list[Connection] = []
    workers = []
    for part in range(processes):
        mine, theirs = context.Pipe()
        share = Share(options, members, groups, prefix, part, processes)
        worker = context.Process(target=worker_main, args=(theirs, share), daemon=True,
                                 name=f"loadtest-{part}")
        worker.start()
        theirs.close()
        channels.append(mine)
        workers.append(worker)
    inbox = _Inbox(channels)
    try:
        return await _conduct(options, processes, channels, inbox, say)
    finally:
        for channel in channels:
            channel.close()
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()


class _Inbox:
    """Every worker's messages, read by a thread per pipe, handed to the event loop."""

    def __init__(self, channels: list[Connection]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self.progress: dict[int, tuple[int, int, int, int]] = {}
        self.finished = [False] * len(channels)  # its `done` came: its pipe may close
        self.socket_samples: list[tuple[float, int]] = []  # when, how many open in all
        for number, channel in enumerate(channels):
            threading.Thread(target=self._read, args=(number, channel), daemon=True).start()

    def _read(self, number: int, channel: Connection) -> None:
        while not self.finished[number]:
            try:
                message = channel.recv()
            except (EOFError, OSError, TypeError):  # TypeError: closed here meanwhile
                if not self.finished[number]:
                    gone = ("error", "the process ended before its part was done")
                    self._loop.call_soon_threadsafe(self._queue.put_nowait, (number, gone))
                return
            if message[0] == "done":
                self.finished[number] = True
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (number, message))

    async def one_each(self, kind: str, count: int) -> list[Any]:
        """The next `kind` message of every worker, in worker order."""
        got: dict[int, Any] = {}
        while len(got) < count:
            number, message = await asyncio.wait_for(self._queue.get(), STEP_TIMEOUT)
            if message[0] == "error":
                raise LoadTestError(f"load test process {number}: {message[1]}")
            if message[0] == "progress":
                self.progress[number] = message[1]
            elif message[0] == kind and number not in got:
                got[number] = message[1:]
        return [got[number] for number in range(count)]


async def _conduct(
    options: Options, processes: int, channels: list[Connection], inbox: _Inbox, say: Print
) -> Report:
    began = time.monotonic()
    printer = asyncio.create_task(_print_progress(inbox, options, began, say))
    try:
        opened = await inbox.one_each("opened", processes)
        online = frozenset().union(*(frozenset(indexes) for (indexes,) in opened))
        start_at = time.monotonic() + START_MARGIN
        for channel in channels:
            channel.send(("go", online, start_at))
        sent = await inbox.one_each("sent", processes)
        parts = [Part(online=online, started=started, addressed=addressed, failed=failed,
                      send_errors=errors, recipients_mismatched=mismatched,
                      sending_seconds=seconds)
                 for started, addressed, failed, errors, mismatched, seconds in sent]
        so_far = merge(parts)
        owed = owed_to(processes, so_far)
        for channel, count in zip(channels, owed, strict=True):
            channel.send(("drain", count, frozenset(so_far.failed)))
        done = await inbox.one_each("done", processes)
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
    for part, (arrivals, counters, connect_errors, cpu) in zip(parts, done, strict=True):
        part.arrivals, part.counters, part.cpu_seconds = arrivals, counters, cpu
        part.connect_errors = connect_errors
    ledger = merge(parts)
    ledger.socket_samples = inbox.socket_samples
    window = max(part.sending_seconds for part in parts)
    return Report.from_ledger(
        ledger, options=options, sending_seconds=window, processes=processes,
        tester_cpu=sum(part.cpu_seconds for part in parts),
        tester_window=time.monotonic() - start_at,
    )


async def _print_progress(inbox: _Inbox, options: Options, began: float, say: Print) -> None:
    while True:
        await asyncio.sleep(1.0)
        if not inbox.progress:
            continue
        figures = list(inbox.progress.values())
        sockets, sent, failed, arrived = (sum(f[i] for f in figures) for i in range(4))
        inbox.socket_samples.append((time.monotonic(), sockets))
        say(f"{time.monotonic() - began:6.0f}s {len(inbox.progress)} processes  sockets open "
            f"{sockets}/{options.users}  sent {sent} (failed {failed})  arrived {arrived}")


# A worker.


def worker_main(channel: Connection, share: Share) -> None:
    """A worker process: its part of the test, reported to the parent over `channel`."""
    try:
        run_on_loop(_work(channel, share))
    except Exception as exc:  # the parent reports it and stops the run
        with contextlib.suppress(OSError):
            channel.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        channel.close()


async def _receive(channel: Connection, kind: str) -> tuple[Any, ...]:
    message: tuple[Any, ...] = await asyncio.to_thread(channel.recv)
    if message[0] != kind:
        raise LoadTestError(f"expected {kind!r} from the parent, got {message[0]!r}")
    return message[1:]


async def _work(channel: Connection, share: Share) -> None:
    options = share.options
    mine = [member for member in share.members if share.mine(member.index)]
    allow_many_sockets(len(mine))
    ledger = WorkerLedger()
    connections = max(1, options.concurrency // share.parts)
    async with Deployment(options.urls, connections=connections) as deployment:
        run = Run(options, deployment, ledger, share.subject_prefix)
        listeners = [
            Listener(index=member.index, token=member.token, urls=deployment.websocket_url,
                     ledger=ledger, send_number=run.send_number)
            for member in mine
        ]
        reporter = asyncio.create_task(_report_progress(channel, ledger))
        try:
            opened = await open_sockets(run, listeners, ramp=options.ramp / share.parts)
            channel.send(("opened", [listener.index for listener in opened]))
            online, start_at = await _receive(channel, "go")
            ledger.online = online
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            cpu_began = time.process_time()
            seconds = await send_all(run, share.members, share.groups,
                                     share=(share.part, share.parts))
            channel.send(("sent", ledger.started, ledger.addressed, ledger.failed,
                          ledger.send_errors, ledger.recipients_mismatched, seconds))
            owed, failed = await _receive(channel, "drain")
            ledger.count_without(failed)
            deadline = time.monotonic() + options.drain
            # Frames are counted by every socket's task: a look every 50 ms is all it needs.
            while ledger.counted < owed and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            cpu = time.process_time() - cpu_began
            counters = {name: getattr(ledger, name) for name in COUNTERS}
            channel.send(("done", ledger.arrivals, counters, ledger.connect_errors, cpu))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            await asyncio.gather(*(listener.close() for listener in listeners))


async def _report_progress(channel: Connection, ledger: WorkerLedger) -> None:
    while True:
        await asyncio.sleep(1.0)
        channel.send(("progress", (ledger.sockets_open, ledger.sent, ledger.send_failed,
                                   len(ledger.arrivals))))
