"""PostgreSQL stopped under a running node: 503s while it is away, never a 500 or a hang, and
service back by itself when it returns, with every answered send kept."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from realtime.config import Settings
from realtime.db import EmbeddedPostgres
from realtime.models import User
from tests.conftest import PASSWORD, LoggedInUser, log_in
from tests.live_server import LiveServer, live_server
from tests.timing import TIME_FACTOR
from tests.ws_support import frames_until, open_socket

# Far longer than any wait the server allows itself: a request still unanswered then hangs.
ANSWER_WITHIN = 30.0 * TIME_FACTOR
SENDERS = 3
TRAFFIC_BUDGET = 100_000  # sends a minute: never reached by the senders


@contextmanager
def private_database() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    root = Path(tempfile.mkdtemp(prefix="realtime-test-faults-"))
    database = EmbeddedPostgres(root / "data")
    try:
        yield database
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


class Traffic:
    """A few senders sending one message after another until stopped, keeping every answer."""

    def __init__(self, sender: LoggedInUser, recipient: LoggedInUser) -> None:
        self.answers: list[httpx.Response] = []
        self._sender, self._recipient = sender, recipient
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(n)) for n in range(SENDERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)  # a request that hung fails the test here

    def count(self, status: int) -> int:
        return sum(1 for answer in self.answers if answer.status_code == status)

    async def until(self, status: int, count: int, within: float = ANSWER_WITHIN) -> None:
        """Wait until `count` answers of `status` came back (the senders' errors surface)."""
        async with asyncio.timeout(within):
            while self.count(status) < count:
                for task in self._tasks:
                    if task.done():
                        task.result()
                await asyncio.sleep(0.02)

    async def _send(self, n: int) -> None:
        while not self._stop.is_set():
            answer = await self._sender.http.post("/api/messages", timeout=ANSWER_WITHIN, json={
                "to": [{"kind": "user", "id": self._recipient.id}], "subject": f"traffic {n}"})
            self.answers.append(answer)
            await asyncio.sleep(0.02)


async def _new_user(node: LiveServer, admin: httpx.AsyncClient, username: str) -> LoggedInUser:
    """A user created through the admin API (the node's database is not the tests' one), logged
    in over a client of their own."""
    created = await admin.post("/api/admin/users", json={"username": username,
                                                         "password": PASSWORD})
    assert created.status_code == 201, created.text
    view = created.json()
    account = User(**{**view, "id": UUID(view["id"]),
                      "created_at": datetime.fromisoformat(view["created_at"])})
    http = httpx.AsyncClient(base_url=node.url, timeout=ANSWER_WITHIN)
    token = await log_in(http, username, PASSWORD)
    return LoggedInUser(account, PASSWORD, token, http)


@asynccontextmanager
async def two_users(node: LiveServer) -> AsyncIterator[tuple[LoggedInUser, LoggedInUser]]:
    async with httpx.AsyncClient(base_url=node.url, timeout=ANSWER_WITHIN) as admin:
        await log_in(admin, "admin", "first-admin-password")
        alice = await _new_user(node, admin, "alice")
        bob = await _new_user(node, admin, "bob")
    try:
        yield alice, bob
    finally:
        await alice.http.aclose()
        await bob.http.aclose()


async def _while_away(node: LiveServer, bob: LoggedInUser) -> dict[str, Any]:
    """What a login, the readiness check and a new socket get while the database is away."""
    async with httpx.AsyncClient(base_url=node.url, timeout=ANSWER_WITHIN) as http:
        login = await http.post("/api/auth/login",
                                json={"username": bob.username, "password": bob.password})
        ready = await http.get("/readyz")
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(ANSWER_WITHIN):
            ws = await open_socket(node, bob)
            await ws.recv()
    assert closed.value.rcvd is not None
    return {"login": login, "ready": ready.status_code, "close": closed.value.rcvd.code}


async def test_postgresql_stopped_mid_traffic_gives_503s_and_recovers_losing_nothing(
    settings: Settings
) -> None:
    """With PostgreSQL stopped for a few seconds under steady sends, every request is answered
    201 or 503 with Retry-After (never 500, never left hanging), a new socket is closed 1013;
    when it is back the node serves again by itself, live delivery included, and every send
    answered 201 is kept."""
    with private_database() as database:
        url = await asyncio.to_thread(database.start)
        # The senders' budget out of the way: a fast machine sends more than 60 a minute
        # before the database stops, and this test is about faults, not budgets.
        unbudgeted = replace(settings, database_url=url, sends_per_minute=TRAFFIC_BUDGET)
        with live_server(unbudgeted) as node:
            async with two_users(node) as (alice, bob):
                traffic = Traffic(alice, bob)
                traffic.start()
                await traffic.until(201, 5)
                await asyncio.to_thread(database.stop)
                await traffic.until(503, 5)
                away = await _while_away(node, bob)
                await asyncio.sleep(1.0)
                assert await asyncio.to_thread(database.start) == url
                await traffic.until(201, traffic.count(201) + 5)
                await traffic.stop()
                ws = await open_socket(node, bob)
                await frames_until(ws, "hello")
                await alice.http.post("/api/messages", json={
                    "to": [{"kind": "user", "id": bob.id}], "subject": "after"})
                assert (await frames_until(ws, "message.new"))[-1]["message"]["subject"] == "after"
                await ws.close()
        statuses = {answer.status_code for answer in traffic.answers}
        assert statuses == {201, 503}, [a.text for a in traffic.answers if a.status_code >= 500]
        for answer in traffic.answers:
            if answer.status_code == 503:
                assert answer.json()["error"]["code"] == "unavailable"
                assert int(answer.headers["Retry-After"]) >= 1
        assert away["login"].status_code == 503, away["login"].text
        assert away["ready"] == 503 and away["close"] == 1013
        answered = [answer.json()["id"] for answer in traffic.answers if answer.status_code == 201]
        conn = await asyncpg.connect(url)
        try:
            kept = await conn.fetchval(
                "select count(*) from messages where id = any($1::uuid[])", answered
            )
        finally:
            await conn.close()
        assert kept == len(answered)
