"""Shared fixtures: one real PostgreSQL per test session, a clean database for every test.

The database is the embedded one, started once in a temporary directory, or the server named by
REALTIME_TEST_DATABASE_URL (a throwaway database: every table is emptied before each test).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
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
from tests.ws_support import PASSWORD, Member

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
    """Empty every table but the migrations' record."""
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
            await raw_db.execute(f"truncate {names} cascade")
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


@dataclass
class Person:
    """A user of the tests: their account, password and a client logged in as them."""

    user: User
    password: str
    token: str
    http: httpx.AsyncClient

    @property
    def id(self) -> str:
        return str(self.user.id)


MakeUser = Callable[..., Awaitable[Person]]


async def log_in(http: httpx.AsyncClient, username: str, password: str) -> str:
    """Log in over `http` and make it speak with the new bearer token; return the token."""
    answer = await http.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return token


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def user_maker(
    services: Services, new_client: Callable[[], httpx.AsyncClient]
) -> AsyncIterator[MakeUser]:
    """Make users with unique names, each logged in over a client of `new_client`."""
    opened: list[httpx.AsyncClient] = []

    async def make(
        username: str | None = None, *, password: str = "correct horse battery", **flags: Any
    ) -> Person:
        username = username or unique_name()
        user = await services.accounts.create_user(username, password, **flags)
        http = new_client()
        opened.append(http)
        token = await log_in(http, username, password)
        return Person(user, password, token, http)

    try:
        yield make
    finally:
        for http in opened:
            await http.aclose()


@pytest.fixture
async def make_user(
    app: Starlette, services: Services
) -> AsyncIterator[MakeUser]:
    """Create a user with a unique name and log them in over HTTP to the app in process."""
    async with user_maker(
        services,
        lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL),
    ) as make:
        yield make


@pytest.fixture
async def admin(make_user: MakeUser) -> Person:
    return await make_user(unique_name("admin"), is_admin=True)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# Websocket tests: a live server per test, and people logged in on it.


@pytest.fixture
def live(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A real uvicorn on a free port, serving its own app on the test database."""
    with live_server(settings) as server:
        yield server




@pytest.fixture
async def join(services: Services) -> AsyncIterator[Any]:
    """Create a user (with the given flags) and log them in over a live server's HTTP."""
    opened: list[httpx.AsyncClient] = []

    async def make(node: LiveServer, **flags: Any) -> Member:
        username = unique_name()
        user = await services.accounts.create_user(username, PASSWORD, **flags)
        http = httpx.AsyncClient(base_url=node.url)
        opened.append(http)
        token = await log_in(http, username, PASSWORD)
        return Member(str(user.id), username, token, http)

    yield make
    for http in opened:
        await http.aclose()


@pytest.fixture
def people(live: LiveServer, join: Any) -> Any:
    """Make users and log them in over the live server's HTTP."""
    return functools.partial(join, live)
