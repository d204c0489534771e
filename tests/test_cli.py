"""The `realtime` command, run as a real subprocess against the real database."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx
import psutil
import pytest

from realtime.api.http import Services
from realtime.errors import Unauthenticated
from realtime.models import UserSearch
from tests.conftest import TEST_MASTER_KEY, unique_name

COMMAND_TIMEOUT = 60
START_TIMEOUT = 90  # the first embedded start runs initdb
STOP_TIMEOUT = 30
ADDRESS = "127.0.0.1"
FIRST_ADMIN = re.compile(r"username 'admin', password (\S+)")


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any REALTIME_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class RunCli(Protocol):
    def __call__(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def run_cli(database_url: str, repo_root: Path) -> RunCli:
    """Run `python -m realtime ARGS` against the test database with the test master key."""

    def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        settings = {
            "REALTIME_DATABASE_URL": database_url,
            "REALTIME_MASTER_KEY": base64.b64encode(TEST_MASTER_KEY).decode(),
            **env,
        }
        return subprocess.run(
            [sys.executable, "-m", "realtime", *args],
            input=stdin,
            env=environment(**settings),
            cwd=repo_root,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    return run


async def logs_in(services: Services, username: str, password: str) -> bool:
    try:
        session = await services.accounts.login(
            username=username, password=password, client_address="127.0.0.1"
        )
    except Unauthenticated:
        return False
    return session.user.username == username


# create-user


async def test_create_user_with_a_password_from_stdin(services: Services, run_cli: RunCli) -> None:
    """`create-user NAME --password-stdin` makes a non-admin who logs in with that password."""
    name = unique_name("cli")
    done = run_cli("create-user", name, "--password-stdin", stdin="a password from stdin\n")
    assert done.returncode == 0, done.stderr
    assert name in done.stdout
    assert "a password from stdin" not in done.stdout + done.stderr
    assert await logs_in(services, name, "a password from stdin")
    assert not await logs_in(services, name, "a password from stdin\n")
    session = await services.accounts.login(
        username=name, password="a password from stdin", client_address="127.0.0.1"
    )
    assert session.user.is_admin is False


async def test_create_user_prints_a_generated_password_that_works(
    services: Services, run_cli
) -> None:
    """Without --password-stdin a password is generated, printed once, and logs in."""
    name = unique_name("cli")
    done = run_cli("create-user", name, "--display-name", "Cli Person")
    assert done.returncode == 0, done.stderr
    printed = re.findall(r"^password: (\S+)$", done.stdout, re.MULTILINE)
    assert len(printed) == 1 and len(printed[0]) >= 16
    session = await services.accounts.login(
        username=name, password=printed[0], client_address="127.0.0.1"
    )
    assert session.user.display_name == "Cli Person"


async def test_create_user_admin_flag_makes_an_admin(services: Services, run_cli: RunCli) -> None:
    """`--admin` creates an administrator."""
    name = unique_name("cli-admin")
    done = run_cli("create-user", name, "--admin", "--password-stdin", stdin="admin password 1\n")
    assert done.returncode == 0, done.stderr
    assert "administrator" in done.stdout
    session = await services.accounts.login(
        username=name, password="admin password 1", client_address="127.0.0.1"
    )
    assert session.user.is_admin is True


async def test_create_user_refuses_a_taken_name(services: Services, run_cli: RunCli) -> None:
    """A duplicate username (in any case) exits non-zero with a clear message, no traceback."""
    name = unique_name("cli")
    first = run_cli("create-user", name, "--password-stdin", stdin="first password\n")
    assert first.returncode == 0, first.stderr
    again = run_cli("create-user", name.upper(), "--password-stdin", stdin="second password\n")
    assert again.returncode != 0
    assert "taken" in again.stderr and name.upper() in again.stderr
    assert "Traceback" not in again.stderr
    assert await logs_in(services, name, "first password")
    assert not await logs_in(services, name, "second password")


async def test_create_user_refuses_a_short_password(services: Services, run_cli: RunCli) -> None:
    """A password under 8 characters on stdin is refused and no account is made."""
    name = unique_name("cli")
    done = run_cli("create-user", name, "--password-stdin", stdin="short\n")
    assert done.returncode != 0
    assert "password: 8 to 1024 characters" in done.stderr
    assert await services.accounts.ids_by_username([name]) == {}


# demo


def demo_passwords(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^(alice|bob|carol)\s+(\S+)$", stdout, re.MULTILINE))


async def test_demo_creates_three_users_and_the_ops_group(
    services: Services, run_cli: RunCli
) -> None:
    """`demo` makes alice, bob and carol with working printed passwords, all in group ops."""
    done = run_cli("demo")
    assert done.returncode == 0, done.stderr
    passwords = demo_passwords(done.stdout)
    assert set(passwords) == {"alice", "bob", "carol"}
    users = {}
    for username, password in passwords.items():
        session = await services.accounts.login(
            username=username, password=password, client_address="127.0.0.1"
        )
        users[username] = session.user.id
    ops = [group for group in await services.groups.list_groups() if group.name == "ops"]
    assert len(ops) == 1
    assert set(ops[0].member_ids) == set(users.values())


async def test_demo_a_second_time_changes_nothing(services: Services, run_cli: RunCli) -> None:
    """A second `demo` succeeds, keeps the passwords, and makes no second group."""
    first = run_cli("demo")
    assert first.returncode == 0, first.stderr
    passwords = demo_passwords(first.stdout)
    again = run_cli("demo")
    assert again.returncode == 0, again.stderr
    assert "exists already" in again.stdout
    for password in passwords.values():
        assert password not in again.stdout
    for username, password in passwords.items():
        assert await logs_in(services, username, password)
    assert [g.name for g in await services.groups.list_groups()].count("ops") == 1
    assert len(await services.accounts.page_users(UserSearch(), 100)) == 3


# migrate


async def test_migrate_succeeds_and_is_idempotent(services: Services, run_cli: RunCli) -> None:
    """`migrate` exits 0 twice and leaves one record per migration."""
    async with services.db.connection() as conn:
        before = await conn.fetch("select version, name from schema_migrations order by version")
    for _ in range(2):
        done = run_cli("migrate")
        assert done.returncode == 0, done.stderr
        assert "up to date" in done.stdout
    async with services.db.connection() as conn:
        after = await conn.fetch("select version, name from schema_migrations order by version")
    assert after == before and len(after) >= 1


# bad settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REALTIME_PORT", "abc"),
        ("REALTIME_PORT", "70000"),
        ("REALTIME_MASTER_KEY", base64.b64encode(bytes(16)).decode()),
        ("REALTIME_MASTER_KEY", "not base64 at all!"),
        ("REALTIME_SESSION_LIFETIME", "forever"),
        ("REALTIME_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_stops_the_command_naming_the_variable(
    run_cli: RunCli, variable: str, value: str
) -> None:
    """A malformed variable exits non-zero with one line naming it, and no traceback."""
    done = run_cli("migrate", **{variable: value})
    assert done.returncode != 0
    assert variable in done.stderr
    assert "Traceback" not in done.stderr
    assert "up to date" not in done.stdout


def test_a_database_url_without_a_master_key_is_refused(run_cli: RunCli) -> None:
    """With REALTIME_DATABASE_URL but no master key, `serve` refuses, naming the variables."""
    done = run_cli("serve", REALTIME_MASTER_KEY="")
    assert done.returncode != 0
    assert "REALTIME_MASTER_KEY" in done.stderr
    assert "Traceback" not in done.stderr


# serve on the embedded default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        port: int = sock.getsockname()[1]
        return port


def postmasters_of(data_dir: Path) -> list[psutil.Process]:
    """The PostgreSQL processes whose command line names `data_dir`."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "postgres" in (proc.info["name"] or "") and str(data_dir) in " ".join(cmdline):
            found.append(proc)
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://{ADDRESS}:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text()

    def log(self) -> str:
        return self.stderr.read_text()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh data dir; any PostgreSQL left running under it is stopped at the end.

    It lives outside pytest's own temporary root, which a concurrent pytest run may make
    unreadable to the unprivileged user the embedded PostgreSQL runs as under root.
    """
    with tempfile.TemporaryDirectory(prefix="realtime-serve-") as parent:
        path = Path(parent) / "data"
        try:
            yield path
        finally:
            for proc in postmasters_of(path):
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except psutil.TimeoutExpired:
                    proc.kill()


def start_server(data_dir: Path, repo_root: Path, run: str) -> Server:
    port = free_port()
    stdout, stderr = data_dir.parent / f"{run}.out", data_dir.parent / f"{run}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "realtime", "serve"],
            env=environment(REALTIME_DATA_DIR=str(data_dir), REALTIME_PORT=str(port)),
            cwd=repo_root,
            stdout=out,
            stderr=err,
        )
    return Server(process, port, stdout, stderr)


def wait_until_ready(server: Server) -> None:
    """Poll /readyz until it answers 200, for a bounded time."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"serve exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve was not ready within {START_TIMEOUT} s:\n{server.log()}")


def stop_server(server: Server, signum: signal.Signals) -> None:
    """Signal the server and check it shut down in order.

    Uvicorn re-raises a caught SIGTERM once shut down, so that is its exit status.
    """
    server.process.send_signal(signum)
    status = server.process.wait(STOP_TIMEOUT)
    assert status in (0, -signum), server.log()
    assert "Application shutdown complete" in server.log()


def kill(server: Server) -> None:
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(STOP_TIMEOUT)


def wait_for_no_postmaster(data_dir: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + STOP_TIMEOUT
    while (left := postmasters_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def login(server: Server, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/auth/login",
        json={"username": "admin", "password": password},
        timeout=10,
    )


def test_serve_on_the_embedded_default(data_dir: Path, repo_root: Path) -> None:
    """With no database URL, serve runs its own PostgreSQL, key and admin, and stops them."""
    server = start_server(data_dir, repo_root, "first")
    try:
        wait_until_ready(server)
        passwords = FIRST_ADMIN.findall(server.output())
        assert len(passwords) == 1, server.output()
        password = passwords[0]
        assert password not in server.log()
        answer = login(server, password)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["is_admin"] is True
        assert login(server, password + "x").status_code == 401

        key_file = data_dir / "master.key"
        assert key_file.is_file()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert "generated a new master key" in server.log()
        assert str(key_file) in server.log()
        assert postmasters_of(data_dir), "the embedded PostgreSQL is not running"

        stop_server(server, signal.SIGINT)
    finally:
        kill(server)
    assert wait_for_no_postmaster(data_dir) == []

    again = start_server(data_dir, repo_root, "second")
    try:
        wait_until_ready(again)
        assert "Created the first account" not in again.output()
        assert FIRST_ADMIN.findall(again.output()) == []
        assert "generated a new master key" not in again.log()
        assert login(again, password).status_code == 200
        stop_server(again, signal.SIGTERM)
    finally:
        kill(again)
    assert wait_for_no_postmaster(data_dir) == []


@pytest.mark.parametrize("password", ["short7!", "long" * 257])
def test_serve_refuses_an_admin_password_that_breaks_the_rules(
    run_cli: RunCli, password: str
) -> None:
    """A REALTIME_ADMIN_PASSWORD the password rules refuse stops the start with a message
    naming the variable and the rule, never the value."""
    done = run_cli("serve", "--port", "0", REALTIME_ADMIN_PASSWORD=password)
    assert done.returncode == 2
    assert "REALTIME_ADMIN_PASSWORD must be 8 to" in done.stderr
    assert password not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("count", ["0", "many", "257"])
def test_serve_refuses_a_worker_count_out_of_range(run_cli: RunCli, count: str) -> None:
    """`serve --workers` takes 1 to 256: anything else stops before starting, naming the flag."""
    done = run_cli("serve", "--workers", count)
    assert done.returncode == 2
    assert "--workers" in done.stderr and "from 1 to 256" in done.stderr
    assert "Traceback" not in done.stderr


# `realtime audit`.


async def test_audit_verify_passes_a_whole_trail_and_names_where_one_was_edited(
    run_cli: RunCli, services: Services, raw_db: asyncpg.Connection
) -> None:
    audit = services.audit
    await audit.record(*(audit.new("login", actor_id=uuid.uuid4()) for _ in range(5)))
    done = run_cli("audit", "verify")  # chains what is committed first, then walks the chain
    assert done.returncode == 0, done.stderr
    assert "the audit trail verifies: 5 records chained in order" in done.stdout
    edited = await raw_db.fetchval(
        "update audit_records set outcome = 'failed' where position = 3 returning id")
    done = run_cli("audit", "verify")
    assert done.returncode == 1
    assert f"breaks at position 3 (record {edited}): edited" in done.stderr


async def test_audit_export_includes_what_was_committed_but_not_chained_yet(
    run_cli: RunCli, services: Services, tmp_path: Path
) -> None:
    """Records a node committed a moment ago (chained within a second by the running nodes)
    are in the export: the command chains them first."""
    audit = services.audit
    actor = uuid.uuid4()
    await audit.record(audit.new("login", "failed", actor_id=actor))
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    output = tmp_path / "audit.jsonl"
    done = run_cli("audit", "export", "--since", since, "--output", str(output))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["action"], r["outcome"], r["actor"]["id"]) for r in lines] == [
        ("login", "failed", str(actor))]
    assert lines[0]["hash"] and "exported 1 records" in done.stderr
    assert run_cli("audit", "export", "--since", "yesterday").returncode == 2
