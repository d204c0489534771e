"""Sustained: one-to-one sends at a fixed rate between random pairs of connected users.

A fresh `realtime serve` (embedded PostgreSQL; `--redis`: through a private redis-server) gets
1,000 seeded users, each holding one websocket from a separate client process. For each rate, a
sender process sends `POST /api/messages` from a random user to another random user, as that
sender (its bearer token), over keep-alive connections, on an open-loop schedule: send i is due
at start + i / rate whatever the answers, and waits for a free connection if all are busy. A
message's latency runs from its due time to the arrival of its `message.new` on the recipient's
socket (matched by message id), so a server falling behind shows in full.

With `--search`, the highest rate keeping p99 under 100 ms is then bisected between the highest
passing and the lowest failing rate, in shorter steps (`--search-seconds`), until they are
`--search-step` apart.

    .venv/bin/python bench/sustained.py --rate 500 1000 2000 --seconds 30 [--redis] [--search]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
import httpx
import orjson
from harness import CpuWindow, Server, SocketClients

from realtime.loadtest.stats import percentile

HERE = Path(__file__).resolve()
LATENCY_LIMIT = 0.100  # the p99 a rate must keep to pass
TARGET_RATE = 2000
TARGET_CPU_PER_MESSAGE = 500e-6
PROBLEM_LINES = 40  # of the server's log shown
SENDER_LEAD = 0.05  # seconds between "go" and the first due send


@dataclass
class Step:
    """One rate held for some seconds, and what it did."""

    rate: int
    seconds: float
    purpose: str  # "asked" (a --rate) or "search"
    sent: int
    statuses: dict[str, int]  # HTTP status (0: no answer) of every send
    achieved: float  # successful sends per second, from the first due time to the last answer
    delivered: int
    p50: float  # seconds from due time to arrival
    p99: float
    p999: float
    worst: float
    answer_p99: float  # seconds from due time to the HTTP answer
    queued_p99: float  # seconds from due time to the request going out
    cpu: dict[str, float]  # CPU seconds per role over the step
    window: float  # wall seconds of that window
    closed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses.get("201", 0)

    @property
    def missing(self) -> int:
        return self.ok - self.delivered

    @property
    def passed(self) -> bool:
        """p99 under the limit, with every send answered 201 and delivered."""
        return self.p99 < LATENCY_LIMIT and self.ok == self.sent and self.missing == 0

    @property
    def cpu_per_message(self) -> float:
        """CPU seconds per message across the server, PostgreSQL and Redis."""
        used = sum(self.cpu.get(role, 0.0) for role in ("server", "postgres", "redis"))
        return used / self.ok if self.ok else float("nan")


async def run_step(
    workdir: Path,
    args: argparse.Namespace,
    server: Server,
    clients: SocketClients,
    *,
    rate: int,
    seconds: float,
    purpose: str,
    send_timeout: float | None = None,
) -> Step:
    """Send at `rate` for `seconds` from a fresh sender process, and wait for the deliveries.

    A send unanswered after `send_timeout` seconds (None: no limit) counts as unanswered."""
    config = {"host": harness.HOST, "port": int(server.url.rsplit(":", 1)[1]),
              "users": str(workdir / "users.json"), "rate": rate, "seconds": seconds,
              "connections": args.connections, "seed": rate, "timeout": send_timeout}
    log = workdir / f"sender-{rate}-{purpose}.log"
    sender = await harness.spawn(harness.child_command(HERE, "sender", config), log, pipes=True)
    try:
        await harness.read_report(sender, log)  # its connections are open
        window = CpuWindow([*server.watched, *clients.watched])
        await harness.send_command(sender, {"cmd": "go"})
        report = await harness.read_report(sender, log)
        received = Counter(s[5] for s in report["sends"] if s[3] == 201)
        expected = clients.split([received[i] for i in range(args.users)])
        arrivals = await clients.collect(expected, args.wait)
        cpu = window.stop()
    finally:
        await harness.stop_process(sender)
    return summarise(report, arrivals.new, arrivals.closed, cpu, rate, seconds, purpose)


def summarise(
    report: dict[str, Any],
    arrivals: Sequence[tuple[float, str]],
    closed: dict[str, int],
    cpu: harness.CpuUse,
    rate: int,
    seconds: float,
    purpose: str,
) -> Step:
    """Match each successful send to its arrival and compute the step's figures."""
    arrived = {message_id: t for t, message_id in arrivals}
    sends = report["sends"]  # [due, started, answered, status, message id, recipient index]
    latencies = sorted(arrived[s[4]] - s[0] for s in sends if s[3] == 201 and s[4] in arrived)
    answered = sorted(s[2] - s[0] for s in sends)
    queued = sorted(s[1] - s[0] for s in sends)
    ok = [s for s in sends if s[3] == 201]
    span = max(s[2] for s in sends) - min(s[0] for s in sends) if sends else 0.0
    cpu_seconds = dict(cpu.seconds, sender=report["cpu"], others=cpu.others(report["cpu"]))
    return Step(
        rate=rate, seconds=seconds, purpose=purpose, sent=len(sends),
        statuses=dict(Counter(str(s[3]) for s in sends)),
        achieved=len(ok) / span if span > 0 else 0.0,
        delivered=len(latencies),
        p50=percentile(latencies, 0.50, empty=math.nan),
        p99=percentile(latencies, 0.99, empty=math.nan),
        p999=percentile(latencies, 0.999, empty=math.nan),
        worst=latencies[-1] if latencies else float("nan"),
        answer_p99=percentile(answered, 0.99, empty=math.nan),
        queued_p99=percentile(queued, 0.99, empty=math.nan),
        cpu=cpu_seconds, window=cpu.wall, closed=closed,
    )


async def search(
    workdir: Path, args: argparse.Namespace, server: Server, clients: SocketClients,
    steps: list[Step],
) -> None:
    """Bisect between the highest passing and the lowest failing rate, appending to `steps`."""
    while True:
        passing = [s.rate for s in steps if s.passed]
        low = max(passing, default=0)
        failing = [s.rate for s in steps if not s.passed and s.rate > low]
        if not failing:
            return
        high = min(failing)
        if high - low <= args.search_step:
            return
        rate = (low + high) // 2 // args.search_step * args.search_step or args.search_step
        if rate in (low, high):
            return
        await pause_and_run(workdir, args, server, clients, steps, rate, args.search_seconds,
                            "search")


async def pause_and_run(
    workdir: Path, args: argparse.Namespace, server: Server, clients: SocketClients,
    steps: list[Step], rate: int, seconds: float, purpose: str,
) -> None:
    """Rest after the previous step, run this one, add it to `steps` and say how it went."""
    if steps:
        await asyncio.sleep(args.pause)
    step = await run_step(workdir, args, server, clients, rate=rate, seconds=seconds,
                          purpose=purpose)
    steps.append(step)
    if not args.json:
        print(f"{rate:,}/s for {seconds:.0f} s ({purpose}): p99 {step.p99 * 1e3:,.1f} ms, "
              f"{step.cpu_per_message * 1e6:,.0f} µs CPU/message, "
              f"{'passed' if step.passed else 'failed'}", flush=True)


async def run_all(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[Step], list[str], harness.Connected]:
    """One server and its sockets for every step: the asked rates, then the search."""
    harness.cancel_on_sigterm()
    header = await harness.run_header(
        "sustained", args, f"{args.users:,} users, {args.connections} sender connections, "
        f"{args.processes} client process(es)"
    )
    steps: list[Step] = []
    async with (
        harness.work_directory() as workdir,
        harness.realtime_server(workdir, redis=args.redis, ws=args.ws) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60.0) as http,
    ):
        seeded = await harness.seed_users(server.database_url, args.users, group=False)
        await harness.check_seeded_session(http, seeded)
        users = [[token, str(user_id)] for token, user_id in zip(
            seeded.tokens, seeded.user_ids, strict=True)]
        (workdir / "users.json").write_bytes(orjson.dumps(users))
        async with harness.socket_clients(
            workdir, server.ws_url, seeded.tokens, processes=args.processes,
            concurrency=args.concurrency,
        ) as clients:
            connected = await clients.connect()
            if not args.json:
                print(f"{connected.opened:,} sockets opened at {connected.per_second:,.0f}/s, "
                      f"{connected.failed} failed {connected.failures or ''}\n")
            for rate in args.rate:
                await pause_and_run(workdir, args, server, clients, steps, rate, args.seconds,
                                    "asked")
            if args.search:
                await search(workdir, args, server, clients, steps)
    return header, steps, server.problems(), connected


def print_steps(steps: Sequence[Step]) -> None:
    headers = ["rate/s", "s", "step", "sent", "not 201", "achieved/s", "p50 ms", "p99 ms",
               "p99.9 ms", "max ms", "missing", "answer p99", "queued p99", "µs CPU/msg",
               "server %", "pg %", "redis %", "sender %", "clients %", "others %", "p99<100ms"]
    rows = [[s.rate, s.seconds, s.purpose, s.sent, s.sent - s.ok, s.achieved, s.p50 * 1e3,
             s.p99 * 1e3, s.p999 * 1e3, s.worst * 1e3, s.missing, s.answer_p99 * 1e3,
             s.queued_p99 * 1e3, s.cpu_per_message * 1e6,
             *(100 * s.cpu.get(role, 0.0) / s.window
               for role in ("server", "postgres", "redis", "sender", "clients", "others")),
             "yes" if s.passed else "no"] for s in steps]
    harness.print_table(headers, rows)


def print_summary(steps: Sequence[Step], problems: Sequence[str]) -> None:
    passing = [s.rate for s in steps if s.passed]
    failing = [s.rate for s in steps if not s.passed]
    print()
    print_steps(steps)
    print()
    if passing:
        above = [r for r in failing if r > max(passing)]
        bound = f", below {min(above):,}/s" if above else " (no higher rate was tried)"
        print(f"Highest rate with p99 < 100 ms: {max(passing):,}/s{bound}")
    else:
        print("No rate kept p99 under 100 ms")
    for s in steps:
        if s.statuses.keys() - {"201"} or s.closed:
            print(f"  at {s.rate}/s: statuses {s.statuses}, sockets closed {s.closed}")
    for line in problems[:PROBLEM_LINES]:
        print(f"  server log: {line}")
    at_target = [s for s in steps if s.rate == TARGET_RATE and s.purpose == "asked"]
    if at_target:
        step = at_target[-1]
        print(f"Targets, at {TARGET_RATE:,}/s:")
        print(f"  [{'met' if step.passed else 'MISSED'}] p99 send-to-deliver < 100 ms: "
              f"{step.p99 * 1e3:,.1f} ms ({step.achieved:,.0f}/s achieved, "
              f"{step.missing} missing, {step.sent - step.ok} not 201)")
        met = step.cpu_per_message <= TARGET_CPU_PER_MESSAGE
        print(f"  [{'met' if met else 'MISSED'}] <= 500 µs CPU per message (server + PostgreSQL"
              f" + Redis): {step.cpu_per_message * 1e6:,.0f} µs")


# --- the sender process ------------------------------------------------------------------------


async def send_at_rate(config: dict[str, Any], users: list[list[str]]) -> None:
    """The `sender` program: report ready, wait for go, send on schedule, report every send."""
    links = [harness.KeepAlive(config["host"], config["port"])
             for _ in range(config["connections"])]
    await asyncio.gather(*(link.open() for link in links))
    harness.emit({"ready": True})
    commands = await harness.stdin_reader()
    await commands.readline()
    cpu_before = time.process_time()
    rng = random.Random(config["seed"])
    jobs: asyncio.Queue[tuple[float, int, int] | None] = asyncio.Queue()
    sends: list[tuple[float, float, float, int, str | None, int]] = []

    async def work(link: harness.KeepAlive) -> None:
        while (job := await jobs.get()) is not None:
            due, sender, recipient = job
            started = time.monotonic()
            body = orjson.dumps({"to": [{"kind": "user", "id": users[recipient][1]}],
                                 "subject": f"from {sender} to {recipient}",
                                 "body": "A one-to-one message of the sustained benchmark."})
            try:
                async with asyncio.timeout(config.get("timeout")):
                    status, payload = await link.post("/api/messages", users[sender][0], body)
            except TimeoutError:
                status, payload = 0, b""
            message_id = orjson.loads(payload)["id"] if status == 201 else None
            sends.append((due, started, time.monotonic(), status, message_id, recipient))

    workers = [asyncio.create_task(work(link)) for link in links]
    total = int(config["rate"] * config["seconds"])
    start = time.monotonic() + SENDER_LEAD
    for i in range(total):
        due = start + i / config["rate"]
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = rng.randrange(len(users))
        recipient = rng.randrange(len(users) - 1)
        jobs.put_nowait((due, sender, recipient + (recipient >= sender)))
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    harness.emit({"sends": sends, "cpu": time.process_time() - cpu_before})


def run_sender(config: dict[str, Any]) -> None:
    users = orjson.loads(Path(config["users"]).read_bytes())
    harness.run_uvloop(lambda: send_at_rate(config, users))


# --- command line ------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, nargs="+", default=[500, 1000, 2000],
                        help="sends per second, one step each (default: 500 1000 2000)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="how long each rate is held (default: 30)")
    parser.add_argument("--users", type=int, default=1000,
                        help="connected users, one socket each (default: 1000)")
    parser.add_argument("--search", action="store_true",
                        help="then bisect the highest rate keeping p99 under 100 ms")
    parser.add_argument("--search-seconds", type=float, default=10.0,
                        help="how long each search step is held (default: 10)")
    parser.add_argument("--search-step", type=int, default=100,
                        help="stop searching when the bounds are this close (default: 100/s)")
    parser.add_argument("--connections", type=int, default=64,
                        help="the sender's keep-alive connections (default: 64)")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds of rest between steps (default: 3)")
    harness.add_server_and_client_options(
        parser, wait_help="seconds to wait for a step's last deliveries"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    harness.raise_open_files_limit()
    try:
        header, steps, problems, connected = asyncio.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        print(orjson.dumps({
            **header,
            "connected": asdict(connected), "server_log": problems,
            "steps": [{**asdict(s), "ok": s.ok, "missing": s.missing, "passed": s.passed,
                       "cpu_per_message": s.cpu_per_message} for s in steps],
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(steps, problems)
    return 0


if __name__ == "__main__":
    if not harness.run_child(sys.argv[1:], {"sender": run_sender}):
        sys.exit(main())
