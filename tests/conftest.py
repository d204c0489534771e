"""Shared fixtures: one real PostgreSQL per test session, a clean database for every test.

The database is the embedded one, started once in a temporary directory, or the server named by
REALTIME_TEST_DATABASE_URL (a throwaway database: every table is emptied before each test).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from realtime.api.http import Services
from realtime.app import create_app
from realtime.config import Settings
from realtime.db import EmbeddedPostgres
from realtime.migrate import apply_migrations
from realtime.models import User
from tests.live_server import LiveServer, live_server

TEST_MASTER_KEY = base64.b64decode("dGVzdCBtYXN0ZXIga2V5IG9mIDMyIGJ5dGVzIGxvbmc=")
BASE_URL = "http://testserver"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL for the whole session: the configured one, or the embedded one."""
    configured = os.environ.get("REALTIME_TEST_DATABASE_URL")
    if configured:
        yield asyncio.run(worker_database(configured))
        return
    # Not under pytest's temp root: pytest resets its mode when another session starts, and the
    # server runs as another OS user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="realtime-test-pg-"))
    server = EmbeddedPostgres(root / "data", delete_on_stop=True)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def worker_database(url: str) -> str:
    """The configured database for a single test process; with parallel workers, a database of
    each worker's own beside it (`<name>_gw0`, ...), created when missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{worker}"
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("select true from pg_database where datname = $1", name):
            await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        master_key=TEST_MASTER_KEY,
        admin_password="first-admin-password",
        db_pool_size=10,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The real application with its lifespan entered, shared by the session's tests. It runs
    no expirer: the live servers do, so that their sockets hear of the messages they expire."""
    application = create_app(settings, expire=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def services(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture(scope="session")
async def raw_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for looking at what is really stored."""
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def empty_database(raw_db: asyncpg.Connection) -> None:
    """Empty every table but the migrations' record; the organisation's settings and the audit
    chain's head are back to the rows the migrations made."""
    tables = await raw_db.fetch(
        """select tablename from pg_tables
           where schemaname = 'public' and tablename <> 'schema_migrations'"""
    )
    if not tables:
        return
    names = ", ".join(f'"{row["tablename"]}"' for row in tables)
    # A live server of the module may be purging meanwhile, taking its locks in another order:
    # the database then picks one of the two to fail, and it may be this one.
    for attempt in range(5):
        try:
            async with raw_db.transaction():
                await raw_db.execute(f"truncate {names} cascade")
                await raw_db.execute("insert into organisation_settings default values")
                await raw_db.execute("insert into audit_chain default values")
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture(autouse=True)
def clean_database(request: pytest.FixtureRequest) -> None:
    """Before each test that touches the database, empty it."""
    if {"raw_db", "app", "services"} & set(request.fixturenames):
        request.getfixturevalue("empty_database")


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process, with no credentials."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


PASSWORD = "correct horse battery"


@dataclass
class LoggedInUser:
    """A user of the tests, logged in: their stored account, their password, their bearer token
    and an HTTP client speaking with it."""

    user: User
    password: str
    token: str
    http: httpx.AsyncClient

    @property
    def id(self) -> str:
        return str(self.user.id)

    @property
    def username(self) -> str:
        return self.user.username

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def log_in(http: httpx.AsyncClient, username: str, password: str) -> str:
    """Log in over `http` and make it speak with the new bearer token; return the token."""
    answer = await http.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return token


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class MakeUser:
    """Makes users (a unique name unless one is given, the flags of `create_user`), each logged
    in over an HTTP client of its own: to the app in process, or to the live server `on`
    (`default_node` when not given). Closes the clients at `close()`."""

    def __init__(
        self,
        services: Services,
        app: Starlette,
        *,
        default_node: LiveServer | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._services, self._app = services, app
        self._default_node, self._timeout = default_node, timeout
        self._opened: list[httpx.AsyncClient] = []

    async def __call__(
        self,
        username: str | None = None,
        *,
        on: LiveServer | None = None,
        password: str = PASSWORD,
        **flags: Any,
    ) -> LoggedInUser:
        username = username or unique_name()
        user = await self._services.accounts.create_user(username, password, **flags)
        return await self._logged_in(user, password, on)

    async def another_session(
        self, person: LoggedInUser, *, on: LiveServer | None = None
    ) -> LoggedInUser:
        """The same user logged in once more, over a client of its own."""
        return await self._logged_in(person.user, person.password, on)

    async def _logged_in(
        self, user: User, password: str, on: LiveServer | None
    ) -> LoggedInUser:
        node = on or self._default_node
        http = (
            httpx.AsyncClient(base_url=node.url, timeout=self._timeout) if node is not None
            else httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app), base_url=BASE_URL)
        )
        self._opened.append(http)
        token = await log_in(http, user.username, password)
        return LoggedInUser(user, password, token, http)

    async def close(self) -> None:
        for http in self._opened:
            await http.aclose()


@pytest.fixture
async def make_user(app: Starlette, services: Services) -> AsyncIterator[MakeUser]:
    """Make a user and log them in, over HTTP to the app in process unless `on` a live server."""
    make = MakeUser(services, app)
    try:
        yield make
    finally:
        await make.close()


@pytest.fixture
async def admin(make_user: MakeUser) -> LoggedInUser:
    return await make_user(unique_name("admin"), is_admin=True)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# Websocket tests: a live server per test.


@pytest.fixture
def live(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A real uvicorn on a free port, serving its own app on the test database."""
    with live_server(settings) as server:
        yield server

