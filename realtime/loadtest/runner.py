"""The load test's phases: set up, open the sockets at the ramp, send at the rate, drain."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from realtime import codec
from realtime.loadtest.http import Deployment, TransportError
from realtime.loadtest.ledger import Addressed, Ledger
from realtime.loadtest.options import Options
from realtime.loadtest.population import (
    Group,
    Member,
    log_in_admin,
    prepare_groups,
    prepare_users,
)
from realtime.loadtest.report import Report, progress_line
from realtime.loadtest.sockets import Listener
from realtime.loadtest.stages import send_offsets

Print = Callable[[str], None]
FILES_BESIDES_SOCKETS = 256  # HTTP connections, the event loop, standard streams


@dataclass
class Run:
    """One run's state, shared by its phases and its progress line."""

    options: Options
    deployment: Deployment
    ledger: Ledger
    subject_prefix: str
    phase: str = "setup"
    prepared: int = 0

    def count_prepared(self) -> None:
        self.prepared += 1

    def send_number(self, message: dict[str, object]) -> int | None:
        subject = message.get("subject")
        if isinstance(subject, str) and subject.startswith(self.subject_prefix):
            tail = subject[len(self.subject_prefix):]
            if tail.isdigit():
                return int(tail)
        return None


async def run_loadtest(options: Options, say: Print = print) -> Report:
    """Run the whole test against the deployment and return its figures."""
    allow_many_sockets(options.users)
    ledger = Ledger()
    seconds = cpu = window = 0.0
    async with Deployment(options.urls, connections=options.concurrency) as deployment:
        run = Run(options, deployment, ledger, f"loadtest {secrets.token_hex(4)} #")
        async with _progress(run, say):
            admin = await log_in_admin(deployment, options)
            members = await prepare_users(deployment, options, admin, run.count_prepared)
            groups = await prepare_groups(deployment, options, admin, members)
            listeners = [
                Listener(index=member.index, token=member.token, urls=deployment.websocket_url,
                         ledger=ledger, send_number=run.send_number)
                for member in members
            ]
            try:
                run.phase = "ramp"
                opened = await open_sockets(run, listeners)
                ledger.online = frozenset(listener.index for listener in opened)
                run.phase = "sending"
                cpu_began, window_began = time.process_time(), time.monotonic()
                seconds = await send_all(run, members, groups)
                run.phase = "draining"
                await drain(run)
                cpu = time.process_time() - cpu_began
                window = time.monotonic() - window_began
            finally:
                await asyncio.gather(*(listener.close() for listener in listeners))
    return Report.from_ledger(ledger, options=options, sending_seconds=seconds,
                              tester_cpu=cpu, tester_window=window)


def allow_many_sockets(users: int) -> None:
    """Raise the open-files limit as far as the system allows when the sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = users + FILES_BESIDES_SOCKETS
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextlib.asynccontextmanager
async def _progress(run: Run, say: Print) -> AsyncIterator[None]:
    """A line every second while the test runs."""
    began = time.monotonic()

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            elapsed = time.monotonic() - began
            run.ledger.socket_samples.append((time.monotonic(), run.ledger.sockets_open))
            if run.phase == "setup":
                say(f"{elapsed:6.0f}s setup     users ready {run.prepared}/{run.options.users}")
            else:
                say(progress_line(elapsed, run.phase, run.ledger, run.options.users))

    task = asyncio.create_task(report(), name="loadtest-progress")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def open_sockets(
    run: Run, listeners: list[Listener], ramp: float | None = None
) -> list[Listener]:
    """Open the sockets, `ramp` (default --ramp) handshakes started a second; return those
    that opened."""
    interval = 1.0 / (ramp or run.options.ramp)
    began = time.monotonic()

    async def open_at(number: int, listener: Listener) -> bool:
        await asyncio.sleep(max(0.0, began + number * interval - time.monotonic()))
        return await listener.open()

    opened = await asyncio.gather(
        *(open_at(number, listener) for number, listener in enumerate(listeners))
    )
    return [listener for listener, ok in zip(listeners, opened, strict=True) if ok]


async def send_all(
    run: Run, members: list[Member], groups: list[Group], share: tuple[int, int] = (0, 1)
) -> float:
    """Send at the rate asked (--rate for --duration, or --stages); return how long it took.

    `share` (k, n): of the sends, only those whose number is k modulo n (a process's part of
    a test spread over n processes)."""
    options = run.options
    connected = sorted(run.ledger.online)
    if len(connected) < 2:
        return 0.0
    part, parts = share
    seed = options.seed if parts == 1 or options.seed is None else f"{options.seed}/{part}"
    chooser = random.Random(seed)  # noqa: S311 (a mix of messages, not a secret)
    gate = asyncio.Semaphore(options.concurrency)
    pending: set[asyncio.Task[None]] = set()
    start_rate, stages = options.profile()
    began = time.monotonic()
    for number, due in enumerate(send_offsets(stages, start_rate)):
        if number % parts != part:
            continue
        await asyncio.sleep(max(0.0, began + due - time.monotonic()))
        await gate.acquire()
        sender_at = chooser.randrange(len(connected))
        sender = members[connected[sender_at]]
        high = chooser.random() < options.high_priority_share
        if groups and chooser.random() < options.share_to_groups:
            group = chooser.choice(groups)
            target = {"kind": "group", "id": group.id}
            addressed = Addressed(group.members, sender.index)
        else:
            other_at = chooser.randrange(len(connected) - 1)  # anyone but the sender
            receiver = members[connected[other_at + (other_at >= sender_at)]]
            target = {"kind": "user", "id": receiver.id}
            addressed = Addressed(frozenset({receiver.index}), sender.index)
        draft = {"to": [target], "subject": f"{run.subject_prefix}{number}",
                 "body": "A message of the load test.", "high_priority": high}
        if options.expires_in is not None:
            expires = datetime.now(UTC) + timedelta(seconds=options.expires_in)
            draft["expires_at"] = codec.format_time(expires)
        task = asyncio.create_task(_send(run, number, sender, draft, addressed))
        pending.add(task)
        task.add_done_callback(pending.discard)
        task.add_done_callback(lambda _: gate.release())
    if pending:
        await asyncio.wait(pending)
    return time.monotonic() - began


async def _send(
    run: Run, number: int, sender: Member, draft: dict[str, object], addressed: Addressed
) -> None:
    """One send; the users it names with an open socket then expect its `message.new`."""
    ledger = run.ledger
    ledger.sending(number, time.monotonic())
    try:
        answer = await run.deployment.call(
            "POST", "/api/messages", token=sender.token, json=draft, node=number
        )
    except TransportError as exc:
        ledger.send_failed_with(number, str(exc))
        return
    if answer.status != 201 or not isinstance(answer.body, dict):
        ledger.send_failed_with(number, str(answer.status))
        return
    if answer.body.get("recipients") != ledger.expect(number, addressed):
        ledger.recipients_mismatched += 1


async def drain(run: Run) -> None:
    """Wait for the events still on their way, at most `drain` seconds."""
    deadline = time.monotonic() + run.options.drain
    # Frames are counted by every socket's task: a look every 50 ms is all the drain needs.
    while run.ledger.outstanding > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
