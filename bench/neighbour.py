"""Neighbour: ordinary users beside one user who runs every legal call as fast as it goes.

A fresh `realtime serve` (embedded defaults) gets 200 seeded users (`--users`), each holding one
websocket in a client process. They send one-to-one at 20 messages/s in all (`--rate`, the
sender of `sustained.py`, latency from each send's due time to its `message.new`) and log in now
and then (a login process). First the quiet run: that alone for `--seconds`. Then the same
again while one more user, the attacker, runs from `--attacker-connections` connections, in a
process of its own, every legal call as fast as the server answers: sends with folder
attachments, uploads of 1 to 25 MiB, `resume` from 0 on fresh websockets, wrong-password
logins for its own username, directory searches and new websockets.

    .venv/bin/python bench/neighbour.py [--seconds 30] [--users 200] [--rate 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import harness
import httpx
import orjson
import sustained
from harness import CpuWindow, Server, SocketClients, Watched
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from realtime.loadtest.stats import percentile

HERE = Path(__file__).resolve()
PASSWORD = "neighbour-bench-password"  # noqa: S105 (the seeded users' one password, throwaway)
LATENCY_LIMIT = 0.100
LATENCY_FACTOR = 2.0
RSS_LIMIT = 300 * 1024 * 1024
MIB = 1024 * 1024
# The attacker's vault folder: the most entries a folder copy may hold, each a credential.
FOLDER_ENTRIES = 1000
FOLDER_ATTACHMENTS = 20  # a send attaches the folder this often: the most a message may carry
SEND_BODY_CHARS = 65_536  # the longest body
UPLOAD_MIB = (1, 25)  # an upload's size, drawn in whole MiB
CALL_TIMEOUT = 10.0  # seconds any call may take (the attacker's uploads: UPLOAD_TIMEOUT)
UPLOAD_TIMEOUT = 30.0
END_GRACE = 5.0  # after the run's end, calls still in flight are cut off
LOGIN_CONNECTIONS = 8  # logins in flight at most
SAMPLE_EVERY = 0.25  # seconds between samples of PostgreSQL's memory
PAUSE = 3.0  # seconds between the quiet run and the attacked one
# Each client has an address of its own, as it would in the field: the server trusts
# X-Forwarded-For from 127.0.0.1 (uvicorn's default), so the per-address login limit counts
# the attacker's failures against the attacker's address only.
ATTACKER_ADDRESS = "203.0.113.66"
KINDS = ("send", "upload", "resume", "login", "directory", "socket")


def ordinary_address(index: int) -> str:
    return f"10.{index // 62500 % 256}.{index // 250 % 250}.{index % 250 + 1}"


# --- the parent: runs, figures --------------------------------------------------------------


@dataclass
class Run:
    """One run, quiet or attacked: what the ordinary users and the attacker saw."""

    name: str
    sends: dict[str, Any]  # sustained.Step, as a dict
    logins: dict[str, Any]  # count, statuses, p50, p99, max (seconds)
    attacker: dict[str, Any] | None  # the attacker's report
    peak: dict[str, int]  # bytes: server_rss, postgres_rss, postgres_pss
    cpu: dict[str, float]  # share of one core per role
    window: float

    @property
    def ordinary_errors(self) -> int:
        """Sends not 201 or never delivered, logins not 200, ordinary sockets closed."""
        sends = self.sends
        return int(sends["sent"] - sends["ok"] + sends["missing"] + self.logins["failed"]
                   + sum(sends["closed"].values()))


async def seed_folder(http: httpx.AsyncClient, token: str) -> str:
    """Give the attacker a vault folder of FOLDER_ENTRIES credentials, through the API."""
    headers = harness.bearer(token)
    answer = await http.post("/api/vault/folders", headers=headers,
                             json={"name": "everything", "parent_id": None})
    answer.raise_for_status()
    folder_id: str = answer.json()["id"]
    gate = asyncio.Semaphore(8)

    async def entry(i: int) -> None:
        fields = {
            "folder_id": folder_id, "kind": "credential", "title": f"Account {i}",
            "username": f"someone{i}@example.org", "password": os.urandom(12).hex(),
            "url": f"https://service{i}.example.org/login", "notes": "n" * 200,
        }
        while True:  # past the requests a minute, as an importing client would: wait, retry
            async with gate:
                made = await http.post("/api/vault/entries", headers=headers, json=fields)
            if made.status_code != 429:
                break
            await asyncio.sleep(float(made.headers.get("retry-after", "1")))
        made.raise_for_status()

    await asyncio.gather(*(entry(i) for i in range(FOLDER_ENTRIES)))
    return folder_id


class PeakMemory:
    """The server's peak RSS (its own high-water mark, VmHWM) and its PostgreSQL's, every
    process of it summed, RSS and PSS (sampled: PostgreSQL's processes come and go)."""

    def __init__(self, server: Server) -> None:
        self._server_pid = next(w.pid for w in server.watched if w.role == "server")
        self._postmaster = next(w.pid for w in server.watched if w.role == "postgres")
        self.peak = {"server_rss": 0, "postgres_rss": 0, "postgres_pss": 0}

    def sample(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, RuntimeError):
            self._keep("server_rss", harness.peak_rss_bytes(self._server_pid))
        rss = pss = 0
        for pid in [self._postmaster, *harness.children_of(self._postmaster)]:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, RuntimeError):
                rss += harness.rss_bytes(pid)
                pss += harness.pss_bytes(pid)
        self._keep("postgres_rss", rss)
        self._keep("postgres_pss", pss)

    def _keep(self, name: str, value: int) -> None:
        self.peak[name] = max(self.peak[name], value)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)


async def start_child(
    workdir: Path, program: str, config: dict[str, Any], tag: str
) -> tuple[asyncio.subprocess.Process, Path]:
    """Start one of this script's child programs and wait until it is ready."""
    log = workdir / f"{program}-{tag}.log"
    process = await harness.spawn(harness.child_command(HERE, program, config), log, pipes=True)
    await harness.read_report(process, log)
    return process, log


async def go_and_report(process: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
    await harness.send_command(process, {"cmd": "go"})
    return await harness.read_report(process, log)


async def run_once(
    workdir: Path, args: argparse.Namespace, server: Server, clients: SocketClients,
    attacker: dict[str, Any] | None,
) -> Run:
    """The ordinary users' sends and logins for `--seconds`, beside the attacker if given."""
    name = "attacked" if attacker is not None else "quiet"
    port = server.port
    children = []
    async with contextlib.AsyncExitStack() as stack:
        logins_config = {"host": harness.HOST, "port": port, "users": str(workdir / "logins.json"),
                         "rate": args.users / args.login_every, "seconds": args.seconds}
        children.append((*await start_child(workdir, "logins", logins_config, name), "logins"))
        if attacker is not None:
            config = {**attacker, "host": harness.HOST, "port": port, "seconds": args.seconds,
                      "connections": args.attacker_connections, "ws_url": server.ws_url,
                      "calls": args.calls}
            children.append((*await start_child(workdir, "attacker", config, name), "attacker"))
        for process, _, _ in children:
            stack.push_async_callback(harness.stop_process, process)
        memory = PeakMemory(server)
        sampling = asyncio.create_task(memory.run())
        stack.callback(sampling.cancel)
        watched = [*server.watched, *clients.watched, Watched("bench", os.getpid()),
                   *(Watched(role, process.pid) for process, _, role in children)]
        window = CpuWindow(watched)
        step, *reports = await asyncio.gather(
            sustained.run_step(workdir, args, sustained.Target(
                sustained.REALTIME, server.port, "/api/messages", list(server.watched), clients,
            ), rate=args.rate, seconds=args.seconds, purpose=name, send_timeout=CALL_TIMEOUT),
            *(go_and_report(process, log) for process, log, _ in children),
        )
        cpu = window.stop()
        memory.sample()
    seconds = dict(cpu.seconds, sender=step.cpu["sender"])
    seconds["others"] = cpu.others(step.cpu["sender"])
    sends = {**asdict(step), "ok": step.ok, "missing": step.missing}
    return Run(name, sends, login_figures(reports[0]["logins"]),
               reports[1] if attacker is not None else None, memory.peak,
               {role: used / cpu.wall for role, used in seconds.items()}, cpu.wall)


def login_figures(logins: Sequence[tuple[float, float, int]]) -> dict[str, Any]:
    """[due, answered, status] per login → how many, how they were answered, how fast."""
    times = sorted(answered - due for due, answered, _ in logins)
    statuses = Counter(str(status) for _, _, status in logins)
    return {"count": len(logins), "statuses": dict(statuses),
            "failed": len(logins) - statuses.get("200", 0),
            "p50": percentile(times, 0.5, empty=math.nan),
            "p99": percentile(times, 0.99, empty=math.nan),
            "max": times[-1] if times else float("nan")}


async def run_all(args: argparse.Namespace) -> tuple[dict[str, Any], list[Run], list[str]]:
    harness.cancel_on_sigterm()
    header = await harness.run_header(
        "neighbour", args, f"{args.users:,} users at {args.rate}/s in all, "
        f"{args.attacker_connections} attacker connections, {args.seconds:.0f} s per run"
    )
    async with (
        harness.work_directory() as workdir,
        harness.realtime_server(workdir, redis=args.redis, ws=args.ws) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60.0) as http,
    ):
        seeded = await harness.seed_users(server.database_url, args.users + 1, group=False,
                                          password=PASSWORD)
        await harness.check_seeded_session(http, seeded)
        tokens, ids = seeded.tokens[:args.users], seeded.user_ids[:args.users]
        (workdir / "users.json").write_bytes(orjson.dumps(
            [[token, str(user_id)] for token, user_id in zip(tokens, ids, strict=True)]))
        (workdir / "logins.json").write_bytes(orjson.dumps(
            [[harness.seeded_username(i), PASSWORD, ordinary_address(i)]
             for i in range(args.users)]))
        attacker_token = seeded.tokens[args.users]
        folder_id = await seed_folder(http, attacker_token)
        attacker = {"token": attacker_token, "user_id": str(seeded.user_ids[args.users]),
                    "username": harness.seeded_username(args.users), "folder_id": folder_id}
        async with harness.socket_clients(
            workdir, server.ws_url, tokens, processes=args.processes,
            concurrency=args.concurrency,
        ) as clients:
            connected = await clients.connect()
            if not args.json:
                print(f"{connected.opened:,} ordinary sockets opened, {connected.failed} failed; "
                      f"the attacker's folder holds {FOLDER_ENTRIES:,} entries\n", flush=True)
            quiet = await run_once(workdir, args, server, clients, None)
            progress(args, quiet)
            await asyncio.sleep(PAUSE)
            attacked = await run_once(workdir, args, server, clients, attacker)
            progress(args, attacked)
    return header, [quiet, attacked], server.problems()


def progress(args: argparse.Namespace, run: Run) -> None:
    if not args.json:
        print(f"{run.name}: send-to-deliver p99 {run.sends['p99'] * 1e3:,.1f} ms, "
              f"{run.ordinary_errors} ordinary errors", flush=True)


# --- printing ------------------------------------------------------------------------------------


def print_report(runs: Sequence[Run], problems: Sequence[str]) -> None:
    print("\nOrdinary users")
    harness.print_table(
        ["run", "sent", "not 201", "missing", "p50 ms", "p99 ms", "max ms", "logins",
         "login p50 ms", "login p99 ms", "login not 200", "sockets closed", "errors"],
        [[r.name, r.sends["sent"], r.sends["sent"] - r.sends["ok"], r.sends["missing"],
          r.sends["p50"] * 1e3, r.sends["p99"] * 1e3, r.sends["worst"] * 1e3,
          r.logins["count"], r.logins["p50"] * 1e3, r.logins["p99"] * 1e3, r.logins["failed"],
          sum(r.sends["closed"].values()), r.ordinary_errors] for r in runs])
    attacked = runs[-1].attacker
    assert attacked is not None
    print(f"\nThe attacker's answers ({attacked['connections']} connections, "
          f"{attacked['seconds']:.1f} s)")
    statuses = sorted({s for row in attacked["outcomes"].values() for s in row},
                      key=lambda s: (not s.isdigit(), s))
    harness.print_table(
        ["call", *statuses, "calls/s", "p50 ms", "p99 ms"],
        [[kind, *(row.get(s, 0) for s in statuses), sum(row.values()) / attacked["seconds"],
          attacked["times"][kind][0] * 1e3, attacked["times"][kind][1] * 1e3]
         for kind, row in attacked["outcomes"].items()])
    print(f"  uploaded {attacked['uploaded'] / MIB:,.0f} MiB in 201 answers; "
          f"{attacked['replayed']:,} frames received after resume")
    print("\nWebsocket closes by the server, by code")
    codes = sorted({*runs[-1].sends["closed"], *attacked["closes"]})
    harness.print_table(["sockets", *codes], [
        ["ordinary, " + r.name, *(r.sends["closed"].get(c, 0) for c in codes)] for r in runs
    ] + [["attacker", *(attacked["closes"].get(c, 0) for c in codes)]])
    print(f"\nPeak memory, MiB (server: its VmHWM; PostgreSQL: sampled every {SAMPLE_EVERY} s)")
    harness.print_table(
        ["by the end of", "node (server RSS)", "postgres RSS (sum)", "postgres PSS (sum)"],
        [[r.name, node_peak(r) / MIB, r.peak["postgres_rss"] / MIB,
          r.peak["postgres_pss"] / MIB] for r in runs])
    print("\nCPU, % of one core")
    roles = ["server", "postgres", "clients", "sender", "logins", "attacker", "bench", "others"]
    harness.print_table(["run", *roles], [
        [r.name, *(100 * r.cpu.get(role, 0.0) for role in roles)] for r in runs])
    for line in problems[:40]:
        print(f"  server log: {line}")
    print()
    for met, text in targets(runs):
        print(f"  [{'met' if met else 'MISSED'}] {text}")


def node_peak(run: Run) -> int:
    """The node's peak: the server process's own (PostgreSQL is a service beside the nodes, as
    Redis is; its memory is shown apart)."""
    return run.peak["server_rss"]


def targets(runs: Sequence[Run]) -> list[tuple[bool, str]]:
    quiet, attacked = runs
    assert attacked.attacker is not None
    p99, quiet_p99 = attacked.sends["p99"], quiet.sends["p99"]
    outcomes: Counter[str] = Counter()
    for row in attacked.attacker["outcomes"].values():
        outcomes.update(row)
    errors = quiet.ordinary_errors + attacked.ordinary_errors
    peak = max(node_peak(r) for r in runs)
    measured = (f"{p99 * 1e3:,.1f} ms (quiet {quiet_p99 * 1e3:,.1f} ms, "
                f"x{p99 / quiet_p99:,.2f})" if p99 == p99 else "no message delivered")
    return [
        (p99 <= LATENCY_FACTOR * quiet_p99 and p99 < LATENCY_LIMIT,
         f"ordinary p99 at most twice the quiet run's and under 100 ms: {measured}"),
        (errors == 0, f"none of the ordinary users' requests failed: {errors} errors"),
        (outcomes["429"] > 0 and outcomes["500"] == 0,
         f"the attacker gets 429s and no 500: {outcomes['429']:,} 429, "
         f"{outcomes['500']:,} 500"),
        (peak < RSS_LIMIT,
         f"the node's peak RSS under 300 MiB: {peak / MIB:,.0f} MiB (PostgreSQL beside it: "
         f"{max(r.peak['postgres_pss'] for r in runs) / MIB:,.0f} MiB PSS)"),
    ]


# --- the logins process --------------------------------------------------------------------------


async def log_in_now_and_then(config: dict[str, Any], users: list[list[str]]) -> None:
    """The `logins` program: random ordinary users log in, on an open-loop schedule."""
    harness.emit({"ready": True})
    await (await harness.stdin_reader()).readline()
    cpu_before = time.process_time()
    rng = random.Random(7)
    jobs: asyncio.Queue[tuple[float, list[str]] | None] = asyncio.Queue()
    logins: list[tuple[float, float, int]] = []

    async def work() -> None:
        while (job := await jobs.get()) is not None:
            due, (username, password, address) = job
            # A connection of its own, from the user's own address, as a browser's would be.
            link = harness.KeepAlive(config["host"], config["port"], {"X-Forwarded-For": address})
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    status, _ = await link.request("POST", "/api/auth/login", body=orjson.dumps(
                        {"username": username, "password": password}))
            except TimeoutError:
                status = 0
            link.close()
            logins.append((due, time.monotonic(), status))

    workers = [asyncio.create_task(work()) for _ in range(LOGIN_CONNECTIONS)]
    start = time.monotonic()
    for i in range(int(config["rate"] * config["seconds"])):
        delay = start + i / config["rate"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        jobs.put_nowait((start + i / config["rate"], rng.choice(users)))
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    harness.emit({"logins": logins, "cpu": time.process_time() - cpu_before})


def run_logins(config: dict[str, Any]) -> None:
    users = orjson.loads(Path(config["users"]).read_bytes())
    harness.run_uvloop(lambda: log_in_now_and_then(config, users))


# --- the attacker process ------------------------------------------------------------------------


class Attacker:
    """One user's calls from many connections, each as soon as the last was answered."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.deadline = 0.0
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.times: defaultdict[str, list[float]] = defaultdict(list)
        self.closes: Counter[str] = Counter()
        self.uploaded = 0
        self.replayed = 0
        self.ending = False
        self.upload_bytes = os.urandom(UPLOAD_MIB[1] * MIB)
        self.send_body = orjson.dumps({
            "to": [{"kind": "user", "id": config["user_id"]}],
            "subject": "everything, again", "body": "x" * SEND_BODY_CHARS,
            "attachments": [{"kind": "folder", "folder_id": config["folder_id"]}]
            * FOLDER_ATTACHMENTS,
        })
        self.rng = random.Random(13)

    def record(self, kind: str, outcome: str, started: float) -> None:
        self.outcomes[kind][outcome] += 1
        self.times[kind].append(time.monotonic() - started)

    def timeout(self, limit: float) -> float:
        """A call's timeout: its own limit, cut at the end of the run plus END_GRACE."""
        return max(0.0, min(limit, self.deadline + END_GRACE - time.monotonic()))

    def late(self, outcome: str) -> str:
        return "cut at end" if time.monotonic() >= self.deadline + END_GRACE else outcome

    async def http(self, kind: str) -> None:
        link = harness.KeepAlive(self.config["host"], self.config["port"],
                                 {"X-Forwarded-For": ATTACKER_ADDRESS})
        token = self.config["token"]
        while time.monotonic() < self.deadline:
            started = time.monotonic()
            method, path, body, content_type, limit = self.call(kind)
            try:
                async with asyncio.timeout(self.timeout(limit)):
                    status, _ = await link.request(
                        method, path, token=None if kind == "login" else token, body=body,
                        content_type=content_type)
                outcome = str(status) if status else "no answer"
            except TimeoutError:
                outcome = self.late("timeout")
            if kind == "upload" and outcome == "201":
                self.uploaded += len(body)
            elif outcome == "no answer":
                await asyncio.sleep(0.01)  # no connection: no busy loop
            self.record(kind, outcome, started)
        link.close()

    def call(self, kind: str) -> tuple[str, str, bytes | memoryview, str, float]:
        if kind == "send":
            return "POST", "/api/messages", self.send_body, "application/json", CALL_TIMEOUT
        if kind == "upload":
            size = self.rng.randint(*UPLOAD_MIB) * MIB
            return ("POST", f"/api/uploads?name=junk-{size}.bin",
                    memoryview(self.upload_bytes)[:size], "application/octet-stream",
                    UPLOAD_TIMEOUT)
        if kind == "login":
            body = orjson.dumps({"username": self.config["username"],
                                 "password": f"guess-{self.rng.random()}"})
            return "POST", "/api/auth/login", body, "application/json", CALL_TIMEOUT
        prefix = "".join(self.rng.choice("bench0123") for _ in range(self.rng.randint(0, 4)))
        return "GET", f"/api/directory?q={prefix}", b"", "", CALL_TIMEOUT

    async def open_socket(self, kind: str) -> ClientConnection | None:
        """A new websocket up to its hello; None, with the refusal recorded, when it failed."""
        started = time.monotonic()
        socket: ClientConnection | None = None
        try:
            async with asyncio.timeout(self.timeout(CALL_TIMEOUT)):
                socket = await connect(
                    self.config["ws_url"], compression=None, ping_interval=None,
                    close_timeout=1, max_size=None, additional_headers={
                        "Authorization": f"Bearer {self.config['token']}",
                        "X-Forwarded-For": ATTACKER_ADDRESS})
                hello = await socket.recv()
        except (TimeoutError, OSError, InvalidHandshake, ConnectionClosed) as exc:
            if isinstance(exc, InvalidStatus):
                outcome = str(exc.response.status_code)
            elif isinstance(exc, ConnectionClosed) and socket is not None:
                outcome = f"closed {socket.close_code}"  # before its hello
            else:
                outcome = self.late("timeout") if isinstance(exc, TimeoutError) else "no answer"
            self.record(kind, outcome, started)
            if socket is not None:
                await socket.close()
            return None
        self.record(kind, "101" if str(hello).startswith('{"type":"hello"') else "other",
                    started)
        return socket

    async def sockets(self) -> None:
        """New websockets, each kept open (read) until the server closes it."""
        held: deque[asyncio.Task[None]] = deque()
        while time.monotonic() < self.deadline:
            socket = await self.open_socket("socket")
            if socket is not None:
                held.append(asyncio.create_task(self.hold(socket)))
            while held and held[0].done():
                held.popleft()
        self.ending = True
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)

    async def hold(self, socket: ClientConnection) -> None:
        try:
            async for _ in socket:
                pass
        except ConnectionClosed:
            pass
        finally:
            if not self.ending:
                self.closes[str(socket.close_code)] += 1
            await socket.close()

    async def resumes(self) -> None:
        """`resume` from 0 on a fresh websocket, again as soon as answered, until closed."""
        while time.monotonic() < self.deadline:
            socket = await self.open_socket("resume handshake")
            if socket is None:
                continue
            try:
                while time.monotonic() < self.deadline:
                    await self.resume(socket)
            except ConnectionClosed:
                self.closes[str(socket.close_code)] += 1
            finally:
                await socket.close()

    async def resume(self, socket: ClientConnection) -> None:
        started = time.monotonic()
        outcome = "closed"
        try:
            async with asyncio.timeout(self.timeout(CALL_TIMEOUT)):
                await socket.send('{"type":"resume","after_seq":0}')
                async for frame in socket:
                    if str(frame).startswith('{"type":"resumed"'):
                        outcome = "resumed"
                        break
                    if str(frame).startswith('{"type":"resync"'):
                        outcome = "resync"
                        break
                    self.replayed += 1
                else:
                    raise ConnectionClosed(socket.protocol.close_rcvd, socket.protocol.close_sent)
        except TimeoutError:
            outcome = self.late("timeout")
        finally:
            self.record("resume", outcome, started)

    def worker(self, kind: str) -> Any:
        if kind == "socket":
            return self.sockets()
        if kind == "resume":
            return self.resumes()
        return self.http(kind)

    async def run(self) -> dict[str, Any]:
        harness.emit({"ready": True})
        await (await harness.stdin_reader()).readline()
        cpu_before = time.process_time()
        started = time.monotonic()
        self.deadline = started + self.config["seconds"]
        calls = self.config["calls"]
        kinds = [calls[i % len(calls)] for i in range(self.config["connections"])]
        await asyncio.gather(*(self.worker(kind) for kind in kinds))
        wall = time.monotonic() - started
        return {
            "connections": self.config["connections"], "seconds": wall,
            "per_kind": dict(Counter(kinds)),
            "outcomes": {kind: dict(row) for kind, row in sorted(self.outcomes.items())},
            "times": {kind: (percentile(sorted(t), 0.5, empty=math.nan),
                             percentile(sorted(t), 0.99, empty=math.nan))
                      for kind, t in self.times.items()},
            "closes": dict(self.closes), "uploaded": self.uploaded, "replayed": self.replayed,
            "cpu": time.process_time() - cpu_before,
        }


def run_attacker(config: dict[str, Any]) -> None:
    async def attack() -> None:
        harness.emit(await Attacker(config).run())

    harness.run_uvloop(attack)


# --- command line --------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="how long each run lasts, quiet and attacked (default: 30)")
    parser.add_argument("--users", type=int, default=200,
                        help="ordinary users, one socket each (default: 200)")
    parser.add_argument("--rate", type=int, default=20,
                        help="the ordinary users' sends per second, in all (default: 20)")
    parser.add_argument("--attacker-connections", type=int, default=50,
                        help="the attacker's concurrent connections (default: 50)")
    parser.add_argument("--calls", nargs="+", choices=KINDS, default=list(KINDS),
                        help="the attacker's calls, sharing its connections in turn (default: "
                             "all of them)")
    parser.add_argument("--login-every", type=float, default=60.0,
                        help="seconds between one ordinary user's logins, on average "
                             "(default: 60)")
    parser.add_argument("--connections", type=int, default=16,
                        help="the ordinary sender's keep-alive connections (default: 16)")
    harness.add_server_and_client_options(
        parser, wait_help="seconds to wait for a run's last deliveries"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    harness.raise_open_files_limit()
    try:
        header, runs, problems = asyncio.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        print(orjson.dumps({
            **header, "server_log": problems,
            "runs": [{**asdict(r), "ordinary_errors": r.ordinary_errors,
                      "node_peak": node_peak(r)} for r in runs],
            "targets": [{"met": met, "text": text} for met, text in targets(runs)],
        }, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        print_report(runs, problems)
    return 0


if __name__ == "__main__":
    if not harness.run_child(sys.argv[1:], {"logins": run_logins, "attacker": run_attacker}):
        sys.exit(main())
