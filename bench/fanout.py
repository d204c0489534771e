"""Fan-out: one high-priority message to a group of N open sockets, beside a bare broadcast.

For each N, a fresh `realtime serve` (embedded PostgreSQL; `--redis`: through a private
redis-server) gets N seeded users in one group, each holding one websocket from a separate client
process. The admin sends one high-priority message to the group with `POST /api/messages`; every
socket stamps its `message.new` on arrival. Then a bare Starlette app (no database, no broker),
served by uvicorn with the server's own options, accepts the same N sockets from the same client
process and, on `POST /broadcast`, sends the very frame the server sent to every socket: the raw
limit of this stack.

    .venv/bin/python bench/fanout.py --sockets 1000 5000 10000 [--redis] [--repeat 5]
        [--ws websockets]

On a machine whose speed wanders from run to run, `--repeat N` measures N pairs per size and
judges the targets on the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
import httpx
import orjson
import uvicorn
from harness import CpuWindow, Watched
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime.cli import server_options
from realtime.config import Settings
from realtime.loadtest.stats import percentile

HERE = Path(__file__).resolve()
KIB, MIB = 1024, 1024 * 1024
BARE_HELLO = '{"type":"hello"}'
# Targets on the 2-core machine, at 10,000 sockets (see README.md), against the bare broadcast
# measured in the same run.
TARGET_RSS_PER_SOCKET = 32 * KIB
TARGET_OPENED_PER_SECOND = 1000
TARGET_LAST_DELIVERY = 0.7
TARGET_CPU_OVER_BARE = 1.5  # server CPU per delivery, at most this many times the bare's
TARGET_SPREAD_SHARE_OF_BARE = 0.75  # deliveries/s after the first, at least this share of bare
TARGET_PAYLOADS_PER_NODE = 1  # broker payloads a node receives for one group send
PROBLEM_LINES = 40  # of the server's log shown


@dataclass
class FanoutRun:
    """One fan-out to N sockets, by the realtime server or by the bare broadcast."""

    target: str
    sockets: int
    opened: int
    failed: int
    opened_per_second: float
    rss_idle: int  # bytes, before the sockets opened
    rss_per_socket: float  # bytes
    opening: dict[str, float]  # CPU seconds per role while the sockets opened ("others": not ours)
    opening_wall: float  # wall seconds of that
    answer: float  # seconds from the send to its HTTP answer
    delivered: int
    first: float  # seconds from the send to the first socket's arrival
    last: float
    p50: float
    p99: float
    cpu: dict[str, float]  # CPU seconds per role from the send until every frame arrived
    window: float  # wall seconds of that window
    payloads: float = math.nan  # broker payloads the node received for the send (realtime only)
    closed: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.opened - self.delivered

    @property
    def per_second(self) -> float:
        """Deliveries per second: sockets reached over the time the last one took."""
        return self.delivered / self.last if self.last > 0 else 0.0

    @property
    def spread_per_second(self) -> float:
        """Deliveries per second once the first socket had it: the fan-out alone."""
        spread = self.last - self.first
        return (self.delivered - 1) / spread if spread > 0 else float("nan")

    @property
    def cpu_per_delivery(self) -> float:
        """Server CPU seconds per delivery."""
        return self.cpu.get("server", 0.0) / self.delivered if self.delivered else float("nan")


async def fan_out(
    workdir: Path,
    args: argparse.Namespace,
    *,
    target: str,
    ws_url: str,
    watched: list[Watched],
    tokens: list[str],
    send: Callable[[], Awaitable[None]],
    payloads_received: Callable[[], Awaitable[float]] | None = None,
) -> tuple[FanoutRun, str | None]:
    """Open a socket per token, then time `send` until every socket has its message.new (one
    frame per event: the unread count rides in it). Return the figures and one frame as
    received.
    """
    server_pid = watched[0].pid
    rss_idle = harness.rss_bytes(server_pid)
    async with harness.socket_clients(
        workdir, ws_url, tokens, processes=args.processes, concurrency=args.concurrency
    ) as clients:
        opening = CpuWindow([*watched, *clients.watched])
        connected = await clients.connect()
        opening_cpu = opening.stop()
        await asyncio.sleep(args.settle)
        rss_held = harness.rss_bytes(server_pid)
        payloads_before = await payloads_received() if payloads_received else math.nan
        window = CpuWindow([*watched, *clients.watched])
        sent_at = time.monotonic()
        await send()
        answer = time.monotonic() - sent_at
        arrivals = await clients.collect(clients.opened, args.wait)
        cpu = window.stop()
        payloads = (await payloads_received() if payloads_received else math.nan) - payloads_before
    latencies = sorted(t - sent_at for t, _ in arrivals.new)
    run = FanoutRun(
        target=target,
        sockets=len(tokens),
        opened=connected.opened,
        failed=connected.failed,
        opened_per_second=connected.per_second,
        rss_idle=rss_idle,
        rss_per_socket=(rss_held - rss_idle) / connected.opened if connected.opened else 0.0,
        opening=dict(opening_cpu.seconds, others=opening_cpu.others()),
        opening_wall=opening_cpu.wall,
        answer=answer,
        delivered=len(latencies),
        first=latencies[0] if latencies else float("nan"),
        last=latencies[-1] if latencies else float("nan"),
        p50=percentile(latencies, 0.50, empty=math.nan),
        p99=percentile(latencies, 0.99, empty=math.nan),
        cpu=dict(cpu.seconds, others=cpu.others()),
        window=cpu.wall,
        closed=arrivals.closed,
        failures=connected.failures,
        payloads=payloads,
    )
    return run, arrivals.sample


async def measure_realtime(
    workdir: Path, args: argparse.Namespace, sockets: int
) -> tuple[FanoutRun, str | None]:
    """The realtime server: a high-priority message to a group of every socket's user."""
    async with (
        harness.realtime_server(workdir, redis=args.redis, ws=args.ws) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60.0) as http,
    ):
        seeded = await harness.seed_users(server.database_url, sockets, group=True)
        await harness.check_seeded_session(http, seeded)
        admin = harness.bearer(await harness.login_admin(http))

        async def send() -> None:
            response = await http.post("/api/messages", headers=admin, json={
                "to": [{"kind": "group", "id": str(seeded.group_id)}],
                "subject": f"Fan-out to {sockets:,} sockets",
                "body": "One high-priority message to everyone in the group.",
                "high_priority": True,
            })
            if response.status_code != 201 or response.json()["recipients"] != sockets:
                log = "\n".join(server.problems()[-PROBLEM_LINES:])
                raise RuntimeError(f"the send failed: {response.status_code} {response.text}\n"
                                   f"the server's log:\n{log}")

        async def payloads_received() -> float:
            """Broker payloads the node has received so far, of either audience."""
            text = (await http.get("/metrics")).text
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("realtime_broker_payloads_received_total{"))

        run, sample = await fan_out(
            workdir, args, target="realtime", ws_url=server.ws_url, watched=server.watched,
            tokens=seeded.tokens, send=send, payloads_received=payloads_received,
        )
    run.problems = server.problems()
    return run, sample


async def measure_bare(
    workdir: Path, args: argparse.Namespace, sockets: int, frame: str
) -> FanoutRun:
    """The bare broadcast: the same frame to the same number of sockets, nothing else."""
    async with (
        bare_server(workdir, args.ws) as (url, watched),
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=60.0) as http,
    ):
        async def send() -> None:
            response = await http.post("/broadcast", content=frame.encode())
            response.raise_for_status()

        run, _ = await fan_out(
            workdir, args, target="bare", ws_url=url.replace("http", "ws", 1) + "/ws",
            watched=watched, tokens=[f"bare-{i}" for i in range(sockets)], send=send,
        )
    return run


@asynccontextmanager
async def bare_server(workdir: Path, ws: str) -> AsyncIterator[tuple[str, list[Watched]]]:
    """The bare broadcast app in a process of its own; yields its URL and its process."""
    port = harness.free_port()
    log = workdir / f"bare-{port}.log"
    command = harness.child_command(HERE, "bare", {"host": harness.HOST, "port": port, "ws": ws})
    process = await harness.spawn(command, log)
    try:
        url = f"http://{harness.HOST}:{port}"
        await harness.wait_ready(f"{url}/readyz", process, log)
        yield url, [Watched("server", process.pid)]
    finally:
        await harness.stop_process(process, signal.SIGINT)


def serve_bare(config: dict[str, Any]) -> None:
    """The `bare` program: accept sockets, and send a posted frame to each of them."""
    sockets: set[WebSocket] = set()

    async def hold(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(BARE_HELLO)
        sockets.add(websocket)
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sockets.discard(websocket)

    async def broadcast(request: Request) -> JSONResponse:
        frame = (await request.body()).decode()
        failed = 0
        for websocket in list(sockets):
            try:
                await websocket.send_text(frame)
            except (OSError, RuntimeError, WebSocketDisconnect):
                failed += 1
        return JSONResponse({"sent": len(sockets) - failed, "failed": failed})

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[
        WebSocketRoute("/ws", hold),
        Route("/broadcast", broadcast, methods=["POST"]),
        Route("/readyz", ready),
    ])
    settings = Settings(host=config["host"], port=config["port"], log_level="WARNING")
    options = {**server_options(settings), "ws": config["ws"]}
    uvicorn.Server(uvicorn.Config(app, **options)).run()


async def run_all(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[tuple[FanoutRun, FanoutRun | None]]]:
    """For each N: the realtime server, then the bare broadcast of the frame it sent (if any)."""
    harness.cancel_on_sigterm()
    header = await harness.run_header(
        "fan-out", args, f"{args.processes} client process(es), {args.concurrency} handshakes "
        "in flight per process"
    )
    pairs: list[tuple[FanoutRun, FanoutRun | None]] = []
    async with harness.work_directory() as workdir:
        for sockets in args.sockets:
            for _ in range(args.repeat):
                realtime, frame = await measure_realtime(workdir, args, sockets)
                bare = (None if frame is None
                        else await measure_bare(workdir, args, sockets, frame))
                pairs.append((realtime, bare))
                if not args.json:
                    print_pair(realtime, bare)
    return header, pairs


def share_of_bare(realtime: FanoutRun, bare: FanoutRun | None) -> float:
    """The realtime server's deliveries per second after the first, over the bare broadcast's:
    the fan-out alone, without the send's commit before it."""
    if bare is None or not bare.spread_per_second:
        return math.nan
    return realtime.spread_per_second / bare.spread_per_second


def cpu_over_bare(realtime: FanoutRun, bare: FanoutRun | None) -> float:
    """The realtime server's CPU per delivery over the bare broadcast's."""
    if bare is None or not bare.cpu_per_delivery:
        return math.nan
    return realtime.cpu_per_delivery / bare.cpu_per_delivery


def print_pair(realtime: FanoutRun, bare: FanoutRun | None) -> None:
    runs = [realtime] if bare is None else [realtime, bare]
    headers = ["sockets", "server", "opened/s", "failed", "RSS/socket KiB", "answer ms",
               "first ms", "last ms", "p50 ms", "p99 ms", "deliveries/s", "after first/s",
               "server µs/deliv", "payloads",
               "server CPU ms", "pg CPU ms", "redis CPU ms", "clients %", "others %"]
    rows = [[run.sockets, run.target, run.opened_per_second, run.failed,
             run.rss_per_socket / KIB, run.answer * 1e3, run.first * 1e3, run.last * 1e3,
             run.p50 * 1e3, run.p99 * 1e3, run.per_second, run.spread_per_second,
             run.cpu_per_delivery * 1e6, run.payloads,
             run.cpu.get("server", 0.0) * 1e3, run.cpu.get("postgres", 0.0) * 1e3,
             run.cpu.get("redis", 0.0) * 1e3,
             *(100 * run.cpu.get(role, 0.0) / run.window if run.window else 0.0
               for role in ("clients", "others"))]
            for run in runs]
    harness.print_table(headers, rows)
    if bare is None:
        print("  no socket got the message: the bare broadcast, which sends its frame, was skipped")
    else:
        print(f"  after the first socket, realtime delivers at {share_of_bare(realtime, bare):.0%}"
              f" of the bare broadcast's rate, for {cpu_over_bare(realtime, bare):.2f} times its "
              f"CPU per delivery; idle server RSS {realtime.rss_idle / MIB:.0f} MiB, "
              f"bare {bare.rss_idle / MIB:.0f} MiB")
    for run in runs:
        busy = ", ".join(f"{role} {100 * used / run.opening_wall:.0f}%"
                         for role, used in run.opening.items() if run.opening_wall > 0)
        print(f"  {run.target}: {run.opened:,} sockets opened in {run.opening_wall:.2f} s; "
              f"CPU (share of one core): {busy}")
        if run.missing or run.failed or run.closed:
            print(f"  {run.target}: {run.missing} missing, failures {run.failures}, "
                  f"closed by the server {run.closed}")
    for line in realtime.problems[:PROBLEM_LINES]:
        print(f"  server log: {line}")
    print()


def print_targets(pairs: list[tuple[FanoutRun, FanoutRun | None]]) -> None:
    """The targets, judged on the median over the repeats of each figure (a ratio to the bare
    broadcast taken within each pair, the same run); missing sockets and payloads at worst."""
    runs = [realtime for realtime, _ in pairs]
    rss = statistics.median(run.rss_per_socket for run in runs)
    opened = statistics.median(run.opened_per_second for run in runs)
    last = statistics.median(run.last for run in runs)
    missing = max(run.missing for run in runs)
    failed = max(run.failed for run in runs)
    cpu = statistics.median(cpu_over_bare(*pair) for pair in pairs)
    share = statistics.median(share_of_bare(*pair) for pair in pairs)
    payloads = max(run.payloads for run in runs)
    checks = [
        (f"RSS per idle socket < {TARGET_RSS_PER_SOCKET // KIB} KiB",
         f"{rss / KIB:.1f} KiB", rss < TARGET_RSS_PER_SOCKET),
        (f">= {TARGET_OPENED_PER_SECOND:,} authenticated sockets opened/s, none failed",
         f"{opened:,.0f}/s, {failed} failed",
         opened >= TARGET_OPENED_PER_SECOND and failed == 0),
        (f"every socket has it within {TARGET_LAST_DELIVERY * 1e3:.0f} ms",
         f"last at {last * 1e3:,.0f} ms, {missing} missing",
         last <= TARGET_LAST_DELIVERY and missing == 0),
        (f"<= {TARGET_CPU_OVER_BARE:.1f} times the bare broadcast's server CPU per delivery",
         f"{cpu:.2f} times", cpu <= TARGET_CPU_OVER_BARE),
        (f">= {TARGET_SPREAD_SHARE_OF_BARE:.0%} of the bare broadcast's deliveries/s after the "
         "first", f"{share:.0%}", share >= TARGET_SPREAD_SHARE_OF_BARE),
        (f"<= {TARGET_PAYLOADS_PER_NODE} broker payload per node for the group send",
         f"{payloads:.0f}", payloads <= TARGET_PAYLOADS_PER_NODE),
    ]
    print(f"Targets, at {runs[0].sockets:,} sockets"
          + (f" (medians of {len(runs)} runs)" if len(runs) > 1 else "") + ":")
    for what, measured, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {what}: {measured}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000, 10000],
                        help="numbers of sockets to fan out to (default: 1000 5000 10000)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pairs of runs per size; the targets are judged on the medians "
                             "(default: 1)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between the last socket opened and the send (default: 2)")
    harness.add_server_and_client_options(
        parser, wait_help="seconds to wait for every socket's frames"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    harness.raise_open_files_limit()
    try:
        header, pairs = asyncio.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        print(orjson.dumps({
            **header,
            "runs": [{**asdict(run), "missing": run.missing, "per_second": run.per_second,
                      "spread_per_second": run.spread_per_second,
                      "cpu_per_delivery": run.cpu_per_delivery}
                     for pair in pairs for run in pair if run is not None],
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        largest = pairs[-1][0].sockets
        print_targets([pair for pair in pairs if pair[0].sockets == largest])
    return 0


if __name__ == "__main__":
    if not harness.run_child(sys.argv[1:], {"bare": serve_bare}):
        sys.exit(main())
