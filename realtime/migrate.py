"""Apply the numbered SQL migrations in order, once each, under an advisory lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# An arbitrary constant shared by every node: whoever holds it migrates, the others wait.
MIGRATION_LOCK_ID = 0x7265616C74696D65  # "realtime"


class MigrationError(Exception):
    """The migrations folder is inconsistent, or the database is ahead of it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir() -> Path:
    """The `sql/` folder: inside the package when installed, beside it in a checkout."""
    package = Path(__file__).resolve().parent
    inside = package / "sql"
    return inside if inside.is_dir() else package.parent / "sql"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    """Read `NNNN_name.sql` files; a gap, a duplicate or a stray name is an error."""
    folder = folder or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__pycache__":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migrations are named NNNN_lowercase_words.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share number {version}: {path.name}")
        found[version] = Migration(version, path.name, path.read_text())
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration numbers must run 1, 2, 3... without gaps: {versions}")
    return [found[v] for v in versions]


async def apply_migrations(conn: asyncpg.Connection, folder: Path | None = None) -> list[str]:
    """Apply what is pending, each file in its own transaction; return the names applied."""
    migrations = load_migrations(folder)
    await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """create table if not exists schema_migrations (
                   version integer primary key,
                   name text not null,
                   applied_at timestamptz not null default now())"""
        )
        applied = {row["version"]: row["name"] for row in await conn.fetch(
            "select version, name from schema_migrations"
        )}
        known = {m.version for m in migrations}
        ahead = sorted(set(applied) - known)
        if ahead:
            raise MigrationError(f"the database has migrations this code lacks: {ahead}")
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "insert into schema_migrations (version, name) values ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %s", migration.name)
            done.append(migration.name)
        return done
    finally:
        await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
