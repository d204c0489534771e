"""The migration runner: strict file names, in order, once each, under a lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from realtime.migrate import (
    MIGRATION_LOCK_ID,
    MigrationError,
    apply_migrations,
    load_migrations,
    migrations_dir,
)

Connect = Callable[[], Awaitable[asyncpg.Connection]]

# Each depends on the one before, so applying them out of order or twice fails.
ORDERED = {
    "0001_create_widgets.sql": "create table widgets (id integer primary key);",
    "0002_add_name.sql": "alter table widgets add column name text not null default '';",
    "0003_seed.sql": "insert into widgets (id, name) values (1, 'one');",
}


def folder_with(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "sql"
    folder.mkdir(parents=True)
    for name, sql in reversed(files.items()):  # written last first: order must come from names
        (folder / name).write_text(sql)
    return folder


@pytest.fixture
async def fresh_database(raw_db: asyncpg.Connection, database_url: str) -> AsyncIterator[Connect]:
    """An empty database on the test server, dropped at the end; connect to it at will."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    await raw_db.execute(f'create database "{name}"')
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(database_url, database=name)
        opened.append(conn)
        assert await conn.fetchval("select current_database()") == name
        return conn

    try:
        yield connect
    finally:
        for conn in opened:
            await conn.close()
        await raw_db.execute(f'drop database "{name}" with (force)')


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    rows = await conn.fetch("select version, name from schema_migrations order by version")
    return [(row["version"], row["name"]) for row in rows]


# load_migrations


def test_migrations_load_in_number_order(tmp_path: Path) -> None:
    """Files are read and ordered by their number, with their name and SQL."""
    migrations = load_migrations(folder_with(tmp_path, ORDERED))
    assert [(m.version, m.name) for m in migrations] == [
        (1, "0001_create_widgets.sql"), (2, "0002_add_name.sql"), (3, "0003_seed.sql")
    ]
    assert migrations[1].sql == ORDERED["0002_add_name.sql"]


def test_the_project_migrations_load() -> None:
    """The shipped sql/ folder is consistent and starts with 0001_init.sql."""
    assert (migrations_dir() / "0001_init.sql").is_file()
    migrations = load_migrations()
    assert migrations[0].name == "0001_init.sql"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


@pytest.mark.parametrize(
    "names",
    [["0001_a.sql", "0003_c.sql"], ["0002_b.sql"], ["0001_a.sql", "0002_b.sql", "0004_d.sql"]],
)
def test_a_gap_in_the_numbers_is_refused(tmp_path: Path, names: list[str]) -> None:
    """Numbers must run 1, 2, 3... with none missing."""
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(folder_with(tmp_path, dict.fromkeys(names, "select 1;")))


def test_a_duplicate_number_is_refused(tmp_path: Path) -> None:
    """Two files with one number are an error naming the number."""
    folder = folder_with(tmp_path, {"0001_a.sql": "select 1;", "0001_b.sql": "select 2;"})
    with pytest.raises(MigrationError, match="share number 1"):
        load_migrations(folder)


@pytest.mark.parametrize(
    "bad", ["1_init.sql", "00002_b.sql", "0002-add.sql", "0002_Add.sql", "0002_.sql", "add.sql"]
)
def test_a_badly_named_file_is_refused(tmp_path: Path, bad: str) -> None:
    """Any .sql file not named NNNN_lowercase_words.sql is an error naming the file."""
    folder = folder_with(tmp_path, {"0001_a.sql": "select 1;", bad: "select 2;"})
    with pytest.raises(MigrationError, match=f"^{bad}: "):
        load_migrations(folder)


# apply_migrations


async def test_apply_runs_the_project_migrations_on_a_fresh_database(
    fresh_database: Connect,
) -> None:
    """On an empty database every shipped migration is applied and recorded, then none."""
    conn = await fresh_database()
    names = [m.name for m in load_migrations()]
    assert await apply_migrations(conn) == names
    assert [name for _, name in await recorded(conn)] == names
    assert await conn.fetchval("select to_regclass('public.messages') is not null")
    assert await apply_migrations(conn) == []


async def test_apply_runs_in_order_and_records_each(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """Migrations run in number order, each recorded once; a second run applies nothing."""
    folder = folder_with(tmp_path, ORDERED)
    conn = await fresh_database()
    assert await apply_migrations(conn, folder) == list(ORDERED)
    assert await recorded(conn) == [(n + 1, name) for n, name in enumerate(ORDERED)]
    assert await conn.fetch("select id, name from widgets") == [(1, "one")]
    assert await apply_migrations(conn, folder) == []
    assert len(await recorded(conn)) == len(ORDERED)


async def test_apply_continues_from_where_the_database_is(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """A database with the first migrations gets only the later ones."""
    first_two = dict(list(ORDERED.items())[:2])
    conn = await fresh_database()
    assert await apply_migrations(conn, folder_with(tmp_path / "a", first_two)) == list(first_two)
    later = await apply_migrations(conn, folder_with(tmp_path / "b", ORDERED))
    assert later == ["0003_seed.sql"]


async def test_concurrent_runs_apply_each_migration_once(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """Two runners started together both succeed; between them each migration runs once."""
    folder = folder_with(tmp_path, ORDERED)
    one, two = await fresh_database(), await fresh_database()
    first, second = await asyncio.gather(
        apply_migrations(one, folder), apply_migrations(two, folder)
    )
    assert sorted(first + second) == list(ORDERED)
    assert await recorded(one) == [(n + 1, name) for n, name in enumerate(ORDERED)]
    assert await one.fetchval("select count(*) from widgets") == 1


async def test_a_database_ahead_of_the_code_is_refused(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """A recorded migration the code lacks stops the run, and the lock is released."""
    folder = folder_with(tmp_path, ORDERED)
    conn = await fresh_database()
    await apply_migrations(conn, folder)
    await conn.execute(
        "insert into schema_migrations (version, name) values (4, '0004_from_the_future.sql')"
    )
    with pytest.raises(MigrationError, match=r"lacks: \[4\]"):
        await apply_migrations(conn, folder)
    other = await fresh_database()
    assert await other.fetchval("select pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
    await other.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def test_a_failing_migration_is_rolled_back_alone(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """A migration that fails leaves nothing of itself; the earlier ones stay recorded."""
    folder = folder_with(tmp_path, {
        "0001_create_widgets.sql": ORDERED["0001_create_widgets.sql"],
        "0002_broken.sql": "create table gadgets (id integer); select * from no_such_table;",
    })
    conn = await fresh_database()
    with pytest.raises(asyncpg.UndefinedTableError):
        await apply_migrations(conn, folder)
    assert await recorded(conn) == [(1, "0001_create_widgets.sql")]
    assert await conn.fetchval("select to_regclass('public.gadgets')") is None
    other = await fresh_database()
    assert await other.fetchval("select pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
    await other.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def test_upgrading_keeps_each_users_unread_count_as_their_inbox_had_it(
    fresh_database: Connect, tmp_path: Path
) -> None:
    """A database from before unread counts were kept gets each user's count of messages kept
    unread in their inbox: read, deleted and other people's messages left out, one whose expiry
    has passed (the expirer takes it off with an event) still in; a user with none has 0."""
    shipped = {m.name: m.sql for m in load_migrations()}
    unread_counts = "0006_unread_counts.sql"
    before = {name: sql for name, sql in shipped.items() if name < unread_counts}
    conn = await fresh_database()
    await apply_migrations(conn, folder_with(tmp_path / "before", before))
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for person in (alice, bob, carol):
        await conn.execute(
            """insert into users (id, username, display_name, password_hash)
               values ($1, $2, $2, 'x')""",
            person, person.hex,
        )
        await conn.execute("insert into event_counters (user_id) values ($1)", person)
    inboxes = [  # (recipient, read, deleted, expired)
        (bob, False, False, False), (bob, False, False, True), (bob, True, False, False),
        (bob, False, True, False), (alice, False, False, False), (alice, True, False, False),
    ]
    for recipient, read, deleted, expired in inboxes:
        message_id = uuid.uuid4()
        await conn.execute(
            """insert into messages (id, sender_id, sent_at, expires_at, key_id, wrapped_key,
                                     subject, body, recipient_count)
               values ($1, $2, now(), case when $3 then now() - interval '1 minute' end,
                       'k', '', '', '', 1)""",
            message_id, carol, expired,
        )
        await conn.execute(
            """insert into message_recipients (message_id, user_id, sent_at, expires_at,
                                               high_priority, read_at, deleted_at)
               select $1, $2, now(), m.expires_at, false,
                      case when $3 then now() end, case when $4 then now() end
               from messages m where m.id = $1""",
            message_id, recipient, read, deleted,
        )
    through = {name: sql for name, sql in shipped.items() if name <= unread_counts}
    assert await apply_migrations(conn, folder_with(tmp_path / "after", through)) == [
        unread_counts
    ]
    counts = dict(await conn.fetch("select user_id, unread from event_counters"))
    assert counts == {alice: 1, bob: 2, carol: 0}
