"""Sustained: one-to-one sends at a fixed rate between random pairs of connected users.

A fresh `realtime serve` (embedded PostgreSQL; `--redis`: through a private redis-server) gets
1,000 seeded users, each holding one websocket from a separate client process. For each rate, a
sender process sends `POST /api/messages` from a random user to another random user, as that
sender (its bearer token), over keep-alive connections, on an open-loop schedule: send i is due
at start + i / rate whatever the answers, and waits for a free connection if all are busy. A
message's latency runs from its due time to the arrival of its `message.new` on the recipient's
socket (matched by message id), so a server falling behind shows in full.

The bare send pipeline (`bare_send.py`: the same parts with none of our code, always through
Redis) runs beside it on the same PostgreSQL, with its own sockets for the same users, and each
rate is sent to the server and then to it by the same sender program. Each figure is printed with
the bare pipeline's and their ratio: the marginal CPU per send between two rates (`--marginal`),
the highest passing rate, and with `--idle` the CPU of every socket open and no traffic.

With `--search`, the highest rate keeping p99 under 100 ms is then bisected, for each, between
the highest passing and the lowest failing rate (doubling the highest while none has failed), in
shorter steps (`--search-seconds`), until they are `--search-step` apart.

    .venv/bin/python bench/sustained.py --rate 500 1000 2000 --seconds 30 [--redis] [--search]
        [--idle 20] [--marginal 500 1000] [--no-floor]
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
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import bare_send
import harness
import httpx
import orjson
from harness import CpuWindow, Server, SocketClients, Watched

from realtime.db import EMBEDDED_DATABASE
from realtime.loadtest.stats import percentile

HERE = Path(__file__).resolve()
LATENCY_LIMIT = 0.100  # the p99 a rate must keep to pass
TARGET_RATE = 2000
TARGET_CPU_PER_MESSAGE = 500e-6
PROBLEM_LINES = 40  # of the server's log shown
REALTIME, BARE = "realtime", "bare"
PIPELINE = ("server", "postgres", "redis")  # the roles whose CPU a message costs
TARGET_MARGINAL_OVER_BARE = 2.0  # marginal CPU per send, at most this many times the bare's
TARGET_RATE_SHARE_OF_BARE = 0.6  # highest passing rate, at least this share of the bare's
TARGET_IDLE_SHARE = 0.02  # of a core: server and PostgreSQL with the sockets open, no traffic
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
    target: str = REALTIME  # REALTIME, or BARE: the bare pipeline beside it

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
        return self.pipeline_cpu / self.ok if self.ok else float("nan")

    @property
    def pipeline_cpu(self) -> float:
        """CPU seconds of the server, PostgreSQL and Redis over the step."""
        return sum(self.cpu.get(role, 0.0) for role in PIPELINE)


@dataclass
class Target:
    """What a sender sends to: the realtime server or the bare pipeline, with its sockets.

    `watched` names the target's own processes `server`, `postgres` and `redis`, and the other
    target's idle ones `beside`, so that neither counts as other work on the machine."""

    name: str
    port: int
    path: str
    watched: list[Watched]
    clients: SocketClients


async def run_step(
    workdir: Path,
    args: argparse.Namespace,
    target: Target,
    *,
    rate: int,
    seconds: float,
    purpose: str,
    send_timeout: float | None = None,
) -> Step:
    """Send at `rate` for `seconds` from a fresh sender process, and wait for the deliveries.

    A send unanswered after `send_timeout` seconds (None: no limit) counts as unanswered."""
    clients = target.clients
    config = {"host": harness.HOST, "port": target.port, "path": target.path,
              "users": str(workdir / "users.json"), "rate": rate, "seconds": seconds,
              "connections": args.connections, "seed": rate, "timeout": send_timeout}
    log = workdir / f"sender-{target.name}-{rate}-{purpose}.log"
    sender = await harness.spawn(harness.child_command(HERE, "sender", config), log, pipes=True)
    try:
        await harness.read_report(sender, log)  # its connections are open
        window = CpuWindow([*target.watched, *clients.watched])
        await harness.send_command(sender, {"cmd": "go"})
        report = await harness.read_report(sender, log)
        received = Counter(s[5] for s in report["sends"] if s[3] == 201)
        expected = clients.split([received[i] for i in range(args.users)])
        arrivals = await clients.collect(expected, args.wait)
        cpu = window.stop()
    finally:
        await harness.stop_process(sender)
    step = summarise(report, arrivals.new, arrivals.closed, cpu, rate, seconds, purpose)
    step.target = target.name
    return step


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
    workdir: Path, args: argparse.Namespace, target: Target, steps: list[Step],
) -> None:
    """Bisect between the highest passing and the lowest failing rate of the target, appending
    to `steps`; while no rate has failed, double the highest (up to `--search-max`)."""
    while True:
        own = [s for s in steps if s.target == target.name]
        passing = [s.rate for s in own if s.passed]
        low = max(passing, default=0)
        failing = [s.rate for s in own if not s.passed and s.rate > low]
        if not failing:
            if not passing or low >= args.search_max:
                return
            await pause_and_run(workdir, args, target, steps, min(2 * low, args.search_max),
                                args.search_seconds, "search")
            continue
        high = min(failing)
        if high - low <= args.search_step:
            return
        rate = (low + high) // 2 // args.search_step * args.search_step or args.search_step
        if rate in (low, high):
            return
        await pause_and_run(workdir, args, target, steps, rate, args.search_seconds, "search")


async def pause_and_run(
    workdir: Path, args: argparse.Namespace, target: Target, steps: list[Step], rate: int,
    seconds: float, purpose: str,
) -> None:
    """Rest after the previous step, run this one, add it to `steps` and say how it went."""
    if steps:
        await asyncio.sleep(args.pause)
    step = await run_step(workdir, args, target, rate=rate, seconds=seconds, purpose=purpose)
    steps.append(step)
    if not args.json:
        print(f"{target.name}: {rate:,}/s for {seconds:.0f} s ({purpose}): "
              f"p99 {step.p99 * 1e3:,.1f} ms, "
              f"{step.cpu_per_message * 1e6:,.0f} µs CPU/message, "
              f"{'passed' if step.passed else 'failed'}", flush=True)


@dataclass
class Run:
    """What a run measured: every step of both targets, the sockets, idle costs, the logs."""

    header: dict[str, Any]
    steps: list[Step]
    problems: list[str]
    connected: harness.Connected
    bare_connected: harness.Connected | None = None
    idle: Idle | None = None


async def run_all(args: argparse.Namespace) -> Run:
    """One server, the bare pipeline beside it, and their sockets for every step: idle, the
    asked rates (each on both), then the search (on each)."""
    harness.cancel_on_sigterm()
    header = await harness.run_header(
        "sustained", args,
        f"{args.users:,} users, {args.workers} worker(s), {args.connections} sender connections, "
        f"{args.processes} client process(es), bare pipeline {'beside' if args.floor else 'off'}"
    )
    steps: list[Step] = []
    async with AsyncExitStack() as stack:
        workdir = await stack.enter_async_context(harness.work_directory())
        server = await stack.enter_async_context(
            harness.realtime_server(workdir, redis=args.redis, ws=args.ws,
                                    workers=args.workers, settings=dict(args.server_setting)))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60.0))
        seeded = await harness.seed_users(server.database_url, args.users, group=False)
        await harness.check_seeded_session(http, seeded)
        users = [[token, str(user_id)] for token, user_id in zip(
            seeded.tokens, seeded.user_ids, strict=True)]
        (workdir / "users.json").write_bytes(orjson.dumps(users))
        clients = await stack.enter_async_context(harness.socket_clients(
            workdir, server.ws_url, seeded.tokens, processes=args.processes,
            concurrency=args.concurrency))
        run = Run(header, steps, [], await clients.connect())
        say_connected(args, REALTIME, run.connected)
        targets = [Target(REALTIME, server.port, "/api/messages", list(server.watched), clients)]
        if args.floor:
            bare, run.bare_connected = await start_bare(stack, workdir, args, server, seeded)
            say_connected(args, BARE, run.bare_connected)
            targets = pair_up(targets[0], bare)
        if args.idle:
            await asyncio.sleep(args.pause)
            run.idle = await measure_idle(args, server.database_url, targets)
        for rate in args.rate:
            for target in targets:
                await pause_and_run(workdir, args, target, steps, rate, args.seconds, "asked")
        if args.search:
            for target in targets:
                await search(workdir, args, target, steps)
        run.problems = server.problems() + [
            f"bare: {line}" for log in workdir.glob("bare-send-*.log")
            for line in log.read_text(errors="replace").splitlines()]
    return run


def say_connected(args: argparse.Namespace, name: str, connected: harness.Connected) -> None:
    if not args.json:
        print(f"{name}: {connected.opened:,} sockets opened at {connected.per_second:,.0f}/s, "
              f"{connected.failed} failed {connected.failures or ''}\n")


async def start_bare(
    stack: AsyncExitStack, workdir: Path, args: argparse.Namespace, server: Server,
    seeded: harness.Seeded,
) -> tuple[Target, harness.Connected]:
    """The bare pipeline on the run's PostgreSQL (a database of its own, the same users and
    tokens) and a Redis of its own, with a socket per user from client processes of its own."""
    redis_url, redis = await stack.enter_async_context(harness.redis_server(workdir))
    database_url = await bare_send.prepare_database(
        server.database_url, seeded.user_ids, seeded.tokens)
    port, process = await stack.enter_async_context(bare_send.bare_server(
        workdir, database_url=database_url, redis_url=redis_url, ws=args.ws))
    clients = await stack.enter_async_context(harness.socket_clients(
        workdir, f"ws://{harness.HOST}:{port}/ws", seeded.tokens, processes=args.processes,
        concurrency=args.concurrency))
    connected = await clients.connect()
    postgres = [w for w in server.watched if w.role == "postgres"]
    return Target(BARE, port, "/send", [process, *postgres, redis], clients), connected


def pair_up(realtime: Target, bare: Target) -> list[Target]:
    """Each target watching the other's processes (but the shared PostgreSQL) as `beside`."""

    def beside(target: Target) -> list[Watched]:
        return [Watched("beside", w.pid) for w in target.watched if w.role != "postgres"]

    return [Target(REALTIME, realtime.port, realtime.path,
                   [*realtime.watched, *beside(bare)], realtime.clients),
            Target(BARE, bare.port, bare.path, [*bare.watched, *beside(realtime)], bare.clients)]


# --- idle --------------------------------------------------------------------------------------


@dataclass
class Idle:
    """CPU with every socket open and no traffic, over `seconds`.

    `cpu` is per role, `realtime server`, `bare server`, their `redis`, the shared `postgres`
    (every process of it), `clients` and `others`; `postgres_by_database` splits PostgreSQL's
    share among the backends of each database, the rest (its own processes: checkpointer,
    WAL writer, autovacuum...) as `background`."""

    seconds: float
    cpu: dict[str, float]
    postgres_by_database: dict[str, float]

    def share(self, role: str) -> float:
        return self.cpu.get(role, 0.0) / self.seconds if self.seconds else math.nan

    def target_share(self, name: str) -> float:
        """The target's server, its database's backends and PostgreSQL's background, as a
        share of a core."""
        database = bare_send.DATABASE if name == BARE else EMBEDDED_DATABASE
        used = (self.cpu.get(f"{name} server", 0.0) + self.postgres_by_database.get(database, 0.0)
                + self.postgres_by_database.get("background", 0.0))
        return used / self.seconds if self.seconds else math.nan


async def measure_idle(args: argparse.Namespace, database_url: str,
                       targets: Sequence[Target]) -> Idle:
    """Every socket open, no traffic: CPU of each process over `--idle` seconds."""
    conn = await asyncpg.connect(database_url)
    try:
        backends = {row["pid"]: row["datname"] or "background" for row in await conn.fetch(
            "select pid, datname from pg_stat_activity where pid <> pg_backend_pid()")}
    finally:
        await conn.close()
    watched = [Watched(w.role if w.role == "postgres" else f"{target.name} {w.role}",
                       w.pid, w.tree)
               for target in targets for w in target.watched if w.role in PIPELINE]
    watched = list({w.pid: w for w in watched}.values())  # PostgreSQL once
    watched += [w for target in targets for w in target.clients.watched]
    before = {pid: backend_cpu(pid) for pid in backends}
    window = CpuWindow(watched)
    await asyncio.sleep(args.idle)
    cpu = window.stop()
    by_database: dict[str, float] = {}
    for pid, database in backends.items():
        used = max(0.0, backend_cpu(pid) - before[pid])
        by_database[database] = by_database.get(database, 0.0) + used
    by_database["background"] = by_database.get("background", 0.0) + max(
        0.0, cpu.seconds.get("postgres", 0.0) - sum(by_database.values()))
    return Idle(cpu.wall, dict(cpu.seconds, others=cpu.others()), dict(by_database))


def backend_cpu(pid: int) -> float:
    """CPU seconds of one PostgreSQL process so far; 0 once it is gone."""
    try:
        return harness.cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


# --- figures -----------------------------------------------------------------------------------


def marginal_cpu(steps: Sequence[Step], target: str, low: int, high: int) -> dict[str, float]:
    """CPU seconds per extra send between the asked rates `low` and `high`, per role of
    PIPELINE and in all (`total`): the rise in cores used over the rise in sends a second."""
    found = {s.rate: s for s in steps if s.target == target and s.purpose == "asked"}
    if low not in found or high not in found:
        return {}
    a, b = found[low], found[high]
    extra_sends = b.ok / b.window - a.ok / a.window
    if extra_sends <= 0:
        return {}
    per_role = {role: (b.cpu.get(role, 0.0) / b.window - a.cpu.get(role, 0.0) / a.window)
                / extra_sends for role in PIPELINE}
    return {**per_role, "total": sum(per_role.values())}


def highest_passing(steps: Sequence[Step], target: str) -> int:
    """The highest rate the target kept p99 under 100 ms at, all delivered; 0 if none."""
    return max((s.rate for s in steps if s.target == target and s.passed), default=0)


def marginal_rates(args: argparse.Namespace) -> tuple[int, int] | None:
    """The two asked rates the marginal cost is measured between: `--marginal`, or the two
    lowest of `--rate`."""
    if args.marginal:
        return args.marginal[0], args.marginal[1]
    rates = sorted(set(args.rate))
    return (rates[0], rates[1]) if len(rates) > 1 else None


def floors(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Each figure of the realtime server beside the bare pipeline's, with their ratio."""
    result: dict[str, Any] = {}
    rates = marginal_rates(args)
    if rates is not None:
        ours, bare = (marginal_cpu(run.steps, name, *rates) for name in (REALTIME, BARE))
        result["marginal"] = {"low": rates[0], "high": rates[1], REALTIME: ours, BARE: bare,
                              "ratio": ratio(ours.get("total"), bare.get("total"))}
    ours_rate, bare_rate = (highest_passing(run.steps, name) for name in (REALTIME, BARE))
    result["highest"] = {REALTIME: ours_rate, BARE: bare_rate,
                         "ratio": ratio(ours_rate, bare_rate), "searched": args.search,
                         "ceiling": args.search_max}
    if run.idle is not None:
        ours_idle, bare_idle = (run.idle.target_share(name) for name in (REALTIME, BARE))
        result["idle"] = {**asdict(run.idle), REALTIME: ours_idle, BARE: bare_idle,
                          "ratio": ratio(ours_idle, bare_idle)}
    return result


def ratio(ours: float | None, bare: float | None) -> float:
    return ours / bare if ours is not None and bare and not math.isnan(bare) else math.nan


def print_steps(steps: Sequence[Step]) -> None:
    headers = ["target", "rate/s", "s", "step", "sent", "not 201", "achieved/s", "p50 ms",
               "p99 ms", "p99.9 ms", "max ms", "missing", "answer p99", "queued p99",
               "µs CPU/msg", "server %", "pg %", "redis %", "sender %", "clients %", "beside %",
               "others %", "p99<100ms"]
    rows = [[s.target, s.rate, s.seconds, s.purpose, s.sent, s.sent - s.ok, s.achieved,
             s.p50 * 1e3, s.p99 * 1e3, s.p999 * 1e3, s.worst * 1e3, s.missing,
             s.answer_p99 * 1e3, s.queued_p99 * 1e3, s.cpu_per_message * 1e6,
             *(100 * s.cpu.get(role, 0.0) / s.window for role in (
                 "server", "postgres", "redis", "sender", "clients", "beside", "others")),
             "yes" if s.passed else "no"] for s in steps]
    harness.print_table(headers, rows)


def print_summary(args: argparse.Namespace, run: Run) -> None:
    steps = run.steps
    print()
    print_steps(steps)
    print()
    for name in (REALTIME, BARE) if args.floor else (REALTIME,):
        own = [s for s in steps if s.target == name]
        passing = [s.rate for s in own if s.passed]
        failing = [s.rate for s in own if not s.passed]
        if passing:
            above = [r for r in failing if r > max(passing)]
            bound = f", below {min(above):,}/s" if above else " (no higher rate was tried)"
            print(f"{name}: highest rate with p99 < 100 ms: {max(passing):,}/s{bound}")
        else:
            print(f"{name}: no rate kept p99 under 100 ms")
    for s in steps:
        if s.statuses.keys() - {"201"} or s.closed:
            print(f"  {s.target} at {s.rate}/s: statuses {s.statuses}, "
                  f"sockets closed {s.closed}")
    for line in run.problems[:PROBLEM_LINES]:
        print(f"  server log: {line}")
    if args.floor:
        print_floors(floors(args, run))
    elif run.idle is not None:
        print_idle(run.idle, args.floor)
    at_target = [s for s in steps
                 if s.rate == TARGET_RATE and s.purpose == "asked" and s.target == REALTIME]
    if at_target:
        step = at_target[-1]
        print(f"Targets, at {TARGET_RATE:,}/s:")
        print(f"  [{'met' if step.passed else 'MISSED'}] p99 send-to-deliver < 100 ms: "
              f"{step.p99 * 1e3:,.1f} ms ({step.achieved:,.0f}/s achieved, "
              f"{step.missing} missing, {step.sent - step.ok} not 201)")
        met = step.cpu_per_message <= TARGET_CPU_PER_MESSAGE
        print(f"  [{'met' if met else 'MISSED'}] <= 500 µs CPU per message (server + PostgreSQL"
              f" + Redis): {step.cpu_per_message * 1e6:,.0f} µs")


def print_floors(found: dict[str, Any]) -> None:
    """Each figure with its floor (the bare pipeline's, same run) and the ratio."""
    print("\nAgainst the bare pipeline, measured in the same run:")
    marginal = found.get("marginal")
    if marginal:
        def cost(per_role: dict[str, float]) -> str:
            if not per_role:
                return "-"
            parts = ", ".join(f"{role} {per_role[role] * 1e6:,.0f}" for role in PIPELINE)
            return f"{per_role['total'] * 1e6:,.0f} µs ({parts})"

        share = marginal["ratio"]
        print(f"  [{verdict(share <= TARGET_MARGINAL_OVER_BARE)}] marginal CPU per one-to-one "
              f"send, {marginal['low']:,}/s to {marginal['high']:,}/s: realtime "
              f"{cost(marginal[REALTIME])}, bare {cost(marginal[BARE])}: {share:.2f} times "
              f"(target <= {TARGET_MARGINAL_OVER_BARE:g})")
    highest = found["highest"]
    share = highest["ratio"]
    how = "searched" if highest["searched"] else "among the rates asked; --search to bisect"
    if highest["searched"] and max(highest[REALTIME], highest[BARE]) >= highest["ceiling"]:
        how += f"; {highest['ceiling']:,}/s is --search-max, a floor of the figure"
    print(f"  [{verdict(share >= TARGET_RATE_SHARE_OF_BARE)}] highest rate with p99 < 100 ms "
          f"and nothing missing ({how}): realtime {highest[REALTIME]:,}/s, bare "
          f"{highest[BARE]:,}/s: {share:.2f} (target >= {TARGET_RATE_SHARE_OF_BARE:g})")
    idle = found.get("idle")
    if idle:
        print_idle(Idle(idle["seconds"], idle["cpu"], idle["postgres_by_database"]), True)


def print_idle(idle: Idle, floor: bool) -> None:
    by_database = idle.postgres_by_database
    pg = {name: 100 * used / idle.seconds for name, used in by_database.items()}
    ours = idle.target_share(REALTIME)
    line = (f"  [{verdict(ours < TARGET_IDLE_SHARE)}] idle, every socket open, no traffic, "
            f"{idle.seconds:.0f} s: realtime {100 * ours:.2f}% of a core (server "
            f"{100 * idle.share('realtime server'):.2f}%, its backends "
            f"{pg.get('realtime', 0.0):.2f}%, PostgreSQL's background "
            f"{pg.get('background', 0.0):.2f}%)")
    if floor:
        bare = idle.target_share(BARE)
        line += (f"; bare {100 * bare:.2f}% (server {100 * idle.share('bare server'):.2f}%, "
                 f"its backends {pg.get(bare_send.DATABASE, 0.0):.2f}%, the same background):"
                 f" {ratio(ours, bare):.2f} times")
    redis = f"{100 * idle.share('realtime redis'):.2f}%"
    if floor:
        redis += f" / {100 * idle.share('bare redis'):.2f}%"
    print(line + f" (target < {100 * TARGET_IDLE_SHARE:g}%); redis {redis}, clients "
          f"{100 * idle.share('clients'):.2f}%, others {100 * idle.share('others'):.1f}%")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


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
    path = config.get("path", "/api/messages")
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
                    status, payload = await link.post(path, users[sender][0], body)
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


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("REALTIME_"):
        raise argparse.ArgumentTypeError(f"{text!r} is not REALTIME_NAME=VALUE")
    return name, value


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
    parser.add_argument("--workers", type=int, default=1,
                        help="serve with `realtime serve --workers N` (default: 1); their CPU "
                             "is the server's")
    parser.add_argument("--server-setting", action="append", default=[], type=_setting,
                        metavar="REALTIME_NAME=VALUE",
                        help="a setting of the server (again for more), e.g. REALTIME_AUDIT=off")
    parser.add_argument("--search-max", type=int, default=8000,
                        help="while no rate has failed, the search doubles the highest up to "
                             "this (default: 8000/s)")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="run the bare pipeline (bare_send.py) beside the server at every "
                             "rate, and print each figure against it (default: on)")
    parser.add_argument("--marginal", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="the two rates of --rate the marginal CPU per send is measured "
                             "between (default: the two lowest)")
    parser.add_argument("--idle", type=float, default=0.0, metavar="SECONDS",
                        help="first measure the CPU of every socket open and no traffic over "
                             "this long (default: 0, not measured)")
    harness.add_server_and_client_options(
        parser, wait_help="seconds to wait for a step's last deliveries"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.marginal and not set(args.marginal) <= set(args.rate):
        sys.exit("sustained.py: both --marginal rates must be among --rate")
    harness.raise_open_files_limit()
    try:
        run = asyncio.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        def step_json(s: Step) -> dict[str, Any]:
            return {**asdict(s), "ok": s.ok, "missing": s.missing, "passed": s.passed,
                    "cpu_per_message": s.cpu_per_message}

        print(orjson.dumps({
            **run.header,
            "connected": asdict(run.connected), "server_log": run.problems,
            "steps": [step_json(s) for s in run.steps if s.target == REALTIME],
            "floor_steps": [step_json(s) for s in run.steps if s.target == BARE],
            "bare_connected": asdict(run.bare_connected) if run.bare_connected else None,
            "floors": floors(args, run) if args.floor else None,
            "idle": asdict(run.idle) if run.idle else None,
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(args, run)
    return 0


if __name__ == "__main__":
    if not harness.run_child(sys.argv[1:], {"sender": run_sender}):
        sys.exit(main())
