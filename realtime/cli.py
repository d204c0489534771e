"""The `realtime` command: serve, migrate, create-user, demo, rotate-key, loadtest, share."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from realtime.accounts import (
    Accounts,
    check_account,
    check_admin_password,
    generate_account_password,
)
from realtime.app import create_app
from realtime.audit_cli import add_audit
from realtime.config import MAX_WORKERS, Settings, load_settings, parse_duration
from realtime.crypto import Keyring, generate_master_key
from realtime.db import Database, open_database
from realtime.errors import ConfigError, Conflict, InvalidInput
from realtime.events import EventSink
from realtime.groups import Groups
from realtime.heap import keep_heap
from realtime.keyfile import (
    WATCH_INTERVAL,
    key_file_path,
    load_keyring,
    read_key_file,
    rotation_lock,
    write_key_file,
)
from realtime.loadtest import Options, run_loadtest
from realtime.loadtest.loop import run as run_on_loop
from realtime.loadtest.options import ADMIN_LOGIN_VARIABLE, LoadTestError, admin_password
from realtime.loadtest.processes import run_in_processes
from realtime.loadtest.report_page import check_available as check_report_page
from realtime.loadtest.report_page import write_page as write_report_page
from realtime.loadtest.stages import Stage, StageError, parse_stages
from realtime.loadtest.thresholds import Threshold, ThresholdError, judge, judged_lines
from realtime.migrate import MigrationError, apply_migrations
from realtime.rotation import rotate_master_key
from realtime.share import TOKEN_VARIABLE, ShareError, ShareRequest, read_secret, share
from realtime.workers import WorkerLink, serve_workers

T = TypeVar("T")
DEMO_USERS = (("alice", "Alice Archer"), ("bob", "Bob Baker"), ("carol", "Carol Carter"))
DEMO_GROUP = "ops"
MAX_LOADTEST_PROCESSES = 256


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings().with_overrides(
            host=getattr(args, "host", None), port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
        )
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        result: int = args.command(settings, args)
        return result
    except (ConfigError, MigrationError) as exc:
        print(f"realtime: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the server (the embedded database by default)")
    serve.add_argument("--host", help="address to listen on (REALTIME_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (REALTIME_PORT, 8000)")
    serve.add_argument(
        "--workers", type=_worker_count, metavar="N",
        help="processes serving the port (REALTIME_WORKERS, 1); above 1 they share a Redis",
    )
    serve.set_defaults(command=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(command=cmd_migrate)

    create = commands.add_parser("create-user", help="create an account")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="make it an administrator")
    create.add_argument("--display-name", help="the name others see (default: the username)")
    create.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input instead of generating one",
    )
    create.set_defaults(command=cmd_create_user)

    demo = commands.add_parser("demo", help="add users alice, bob, carol and the group ops")
    demo.set_defaults(command=cmd_demo)

    rotate = commands.add_parser(
        "rotate-key", help="re-wrap every data key under a new master key"
    )
    rotate.add_argument(
        "--new-key-file", type=Path,
        help="where to write the new key (needed when the key comes from REALTIME_MASTER_KEY)",
    )
    rotate.set_defaults(command=cmd_rotate_key)
    _add_loadtest(commands)
    _add_share(commands)
    add_audit(commands, _with_database)
    return parser


def _add_share(commands: Any) -> None:
    share = commands.add_parser(
        "share", help="make a shareable link of standard input and print it",
        description="Read a secret from standard input, make a shareable link of it on the "
        f"deployment at URL as the user whose session token is in {TOKEN_VARIABLE}, and print "
        "the link. Example: realtime share https://chat.example.com --expires-in 1h < secret.txt",
    )
    share.add_argument("url", metavar="URL", help="the deployment")
    share.add_argument("--expires-in", required=True, type=_duration, metavar="DURATION",
                       help="how long the link opens: 90s, 15m, 1h, 7d (at most 30d)")
    share.add_argument("--views", type=int, default=1, help="how many times it opens (1)")
    share.add_argument("--subject", default="A shared secret",
                       help="what the recipient sees first (A shared secret)")
    share.add_argument("--passphrase-stdin", action="store_true",
                       help="the first line of standard input is the link's passphrase")
    share.add_argument("--file", type=Path, action="append", default=[], dest="files",
                       help="attach this file (again for more)")
    share.add_argument("--email", action="append", default=[], metavar="ADDRESS",
                       help="also send the link to this address (again for more)")
    share.add_argument("--note", default="", help="a note for the email")
    share.set_defaults(command=cmd_share)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {MAX_WORKERS}")
    return count


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 1h") from None


def cmd_share(settings: Settings, args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # standard error says only what failed
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    try:
        if not token:
            raise ShareError(f"set {TOKEN_VARIABLE} to a session token (POST /api/auth/login)")
        secret, passphrase = read_secret(sys.stdin, passphrase_first=args.passphrase_stdin)
        url = share(ShareRequest(
            url=args.url, token=token, secret=secret, subject=args.subject,
            expires_in=args.expires_in, views=args.views, passphrase=passphrase,
            files=tuple(args.files), email=tuple(args.email), note=args.note,
        ))
    except ShareError as exc:
        print(f"realtime share: {exc}", file=sys.stderr)
        return 1
    print(url)
    return 0


def _add_loadtest(commands: Any) -> None:
    loadtest = commands.add_parser(
        "loadtest",
        help="drive a deployment with users, sockets and messages; check each event comes once",
        description="Make or reuse users (and groups) through the admin API, open a websocket "
        "per user, send messages at a rate, and count every message.new that should come: "
        "lost, duplicated, and how long it took. Exits 1 when anything was lost or duplicated.",
    )
    loadtest.add_argument("urls", nargs="+", metavar="URL",
                          help="the deployment (several URLs: sockets and sends spread over them)")
    loadtest.add_argument("--admin-password",
                          help=f"the admin's password, seen by anyone running `ps`: rather set "
                          f"{ADMIN_LOGIN_VARIABLE} (default: REALTIME_ADMIN_PASSWORD)")
    loadtest.add_argument("--admin-user", default="admin", help="the admin's username (admin)")
    loadtest.add_argument("--users", type=int, default=100, help="users, one socket each (100)")
    loadtest.add_argument("--rate", type=float, default=10.0, help="messages a second (10)")
    loadtest.add_argument("--duration", type=float, default=30.0, help="seconds of sending (30)")
    loadtest.add_argument("--group-size", type=int,
                          help="also send to groups of this many users")
    loadtest.add_argument("--group-share", type=float,
                          help="the share of messages sent to groups (0.5 with --group-size)")
    loadtest.add_argument("--high-priority-share", type=float, default=0.0,
                          help="the share of messages sent with high priority (0)")
    loadtest.add_argument("--ramp", type=float, default=100.0,
                          help="websockets opened a second (100)")
    loadtest.add_argument("--json", type=Path, help="also write the figures to this file")
    loadtest.add_argument("--html", type=Path, metavar="FILE",
                          help="also write a report with charts over time to this file: one "
                          "self-contained page (needs matplotlib: realtime[report])")
    loadtest.add_argument("--user-prefix", default="loadtest",
                          help="names of the test's users and groups: PREFIX-00001... (loadtest)")
    loadtest.add_argument("--drain", type=float, default=10.0,
                          help="seconds to wait for late events after the last send (10)")
    loadtest.add_argument("--concurrency", type=int, default=64,
                          help="sends in flight at most (64)")
    loadtest.add_argument("--seed", type=int, help="the seed of the message mix")
    loadtest.add_argument("--processes", type=_processes, default=os.cpu_count() or 1,
                          help="spread the sockets and the sends over this many processes, "
                          "one core each (default: the number of cores)")
    loadtest.add_argument("--expires-in", type=float, metavar="SECONDS",
                          help="messages expire this long after they are sent (at least 60), "
                          "so that the test leaves nothing behind (default: no expiry)")
    loadtest.add_argument("--stages", type=_stages, metavar="DURATION:RATE,...",
                          help="ramp the rate instead of --rate and --duration: each stage "
                          "moves it in a straight line to its rate over its duration, from 0 "
                          "(e.g. 30s:1000,2m:1000,30s:0)")
    loadtest.add_argument("--threshold", action="append", default=[], type=_threshold,
                          dest="thresholds", metavar="EXPR",
                          help="a condition the run must meet, else it exits 1 (again for "
                          "more): p50, p90, p99, p999 or max latency in ms or s (p99<100ms), or "
                          "a count or rate of the report (lost==0, send_failed<=5, "
                          "sends_per_second>=900)")
    loadtest.set_defaults(command=cmd_loadtest)


def _stages(text: str) -> tuple[Stage, ...]:
    try:
        return parse_stages(text)
    except StageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _threshold(text: str) -> Threshold:
    try:
        return Threshold.parse(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    check_admin_password(settings.admin_password)  # fail fast, before anything starts
    if settings.workers > 1:
        return serve_workers(settings, serve_worker)
    load_keyring(settings)
    app = create_app(settings)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
        server = GracefulServer(uvicorn.Config(app, **server_options(settings)), app)
        server.keep_heap = True
        server.run()
    return 0


def serve_worker(settings: Settings, listener: socket.socket, link: WorkerLink) -> bool:
    """One of `serve --workers`: the whole app on the parent's listening socket; return whether
    it started."""
    app = create_app(settings)
    server = GracefulServer(uvicorn.Config(app, **server_options(settings)), app)
    server.keep_heap = True
    server.link = link
    server.run(sockets=[listener])
    return server.started


class GracefulServer(uvicorn.Server):
    """uvicorn, but at shutdown the websockets drain and close with 1001 before anything else."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app
        self.keep_heap = False  # the process-wide collector policy: for a process of its own
        self._heap_upkeep: asyncio.Task[None] | None = None
        self.link: WorkerLink | None = None  # set in a worker of `serve --workers`
        self._parent_watch: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.keep_heap:
            self._heap_upkeep = asyncio.create_task(keep_heap(), name="heap-upkeep")
        if self.link is not None and self.started:
            self.link.ready()
            self._parent_watch = asyncio.create_task(
                self.link.watch_parent(self._stop), name="parent-watch"
            )

    def _stop(self) -> None:
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for task in (self._heap_upkeep, self._parent_watch):
            if task is not None:
                task.cancel()
        for listening in self.servers:
            listening.close()  # no new socket while the open ones drain
        live = getattr(self._app.state, "live", None)
        if live is not None:
            await live.hub.close_all()
        await super().shutdown(sockets)


def server_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app: websocket limits, keepalive, and whose proxy headers count."""
    return {
        "host": settings.host,
        "port": settings.port,
        # X-Forwarded-Proto and -For count only from these peers (REALTIME_TRUSTED_PROXIES).
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "log_level": settings.log_level.lower(),
        "ws": "websockets-sansio",
        # Frames over 64 KiB are refused by the endpoint with 1008; this is the hard cap.
        "ws_max_size": 1024 * 1024,
        # A ping every 20 s; a socket silent for 40 s more (60 s in all) is dropped.
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 40.0,
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": 10,
    }


def cmd_loadtest(settings: Settings, args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    try:
        password = admin_password(args.admin_password, os.environ, settings.admin_password)
        options = Options(
            urls=tuple(args.urls), admin_password=password, admin_user=args.admin_user,
            users=args.users, rate=args.rate, duration=args.duration,
            group_size=args.group_size, group_share=args.group_share,
            high_priority_share=args.high_priority_share, ramp=args.ramp,
            user_prefix=args.user_prefix, drain=args.drain, concurrency=args.concurrency,
            seed=args.seed, expires_in=args.expires_in, json_path=args.json,
            stages=args.stages,
        )
        if args.html is not None:
            check_report_page()
        if args.processes > 1:
            report = run_on_loop(run_in_processes(options, args.processes, say=_say))
        else:
            report = run_on_loop(run_loadtest(options, say=_say))
    except LoadTestError as exc:
        print(f"realtime loadtest: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    judged = judge(args.thresholds, report)
    if judged:
        print("thresholds:")
        print(judged_lines(judged))
    try:
        if options.json_path is not None:
            report.write_json(options.json_path, judged)
        if args.html is not None:
            write_report_page(args.html, report, judged)
    except OSError as exc:
        print(f"realtime loadtest: cannot write {exc.filename}: {exc.strerror}",
              file=sys.stderr)
        return 2
    return 0 if report.ok and all(j.held for j in judged) else 1


def _processes(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LOADTEST_PROCESSES:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_LOADTEST_PROCESSES}")
    return int(text)


def _say(line: str) -> None:
    print(line, flush=True)


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_database(settings) as db:
            async with db.unbounded() as conn:
                await apply_migrations(conn)
            return await work(db)

    return asyncio.run(run())


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        return None

    _with_database(settings, work)
    print("the database is up to date")
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = generate_account_password()
    try:
        check_account(username=args.username, password=password)
    except InvalidInput as exc:
        for name, problem in exc.fields.items():
            print(f"realtime: {name}: {problem}", file=sys.stderr)
        return 2

    async def work(db: Database) -> None:
        await Accounts(db, settings, EventSink()).create_user(
            args.username, password, display_name=args.display_name, is_admin=args.admin
        )

    try:
        _with_database(settings, work)
    except Conflict:
        print(f"realtime: the username {args.username!r} is taken", file=sys.stderr)
        return 1
    role = "administrator" if args.admin else "user"
    print(f"created {role} {args.username!r}")
    if not args.password_stdin:
        print(f"password: {password}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> list[tuple[str, str | None]]:
        accounts = Accounts(db, settings, EventSink())
        made: list[tuple[str, str | None]] = []
        ids = []
        existing = await accounts.ids_by_username([name for name, _ in DEMO_USERS])
        for username, display_name in DEMO_USERS:
            if username in existing:
                ids.append(existing[username])
                made.append((username, None))
                continue
            password = generate_account_password()
            user = await accounts.create_user(username, password, display_name=display_name)
            ids.append(user.id)
            made.append((username, password))
        groups = Groups(db)
        if not any(group.name == DEMO_GROUP for group in await groups.list_groups()):
            await groups.create_group(DEMO_GROUP, ids)
        return made

    for username, password in _with_database(settings, work):
        shown = password if password else "(exists already, password unchanged)"
        print(f"{username:<8} {shown}")
    print(f"group {DEMO_GROUP!r}: alice, bob and carol")
    return 0


def cmd_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    """Re-wrap every data key under a new master key; the old one opens rows until the end.

    With the key in a file, nodes reading the file follow the rotation while it runs. With the
    key in REALTIME_MASTER_KEY, nodes cannot follow: the new key and the old one are written to
    --new-key-file, and the re-wrapping waits for a second run once every node reads that file.
    """
    path = key_file_path(settings)
    if path is None:
        return _start_rotation_from_environment(settings, args.new_key_file)
    with rotation_lock(path):
        old_keys = _current_keys(settings, path)
        new_key = generate_master_key()
        write_key_file(path, [new_key, *old_keys])
        # Nodes reading this file switch to the new key within WATCH_INTERVAL: wait for them,
        # so that no node wraps under an old key once the re-wrapping has started.
        time.sleep(WATCH_INTERVAL + 1)
        keyring = Keyring([new_key, *old_keys])
        count = _with_database(settings, lambda db: rotate_master_key(db, keyring))
        write_key_file(path, [new_key])
    print(f"re-wrapped {count} data keys under master key {keyring.current_id}")
    print(f"the new key is in {path}; running nodes reading it have switched to it")
    return 0


def _start_rotation_from_environment(settings: Settings, new_key_file: Path | None) -> int:
    if new_key_file is None:
        print(
            "realtime: the key comes from REALTIME_MASTER_KEY: give --new-key-file PATH",
            file=sys.stderr,
        )
        return 2
    assert settings.master_key is not None
    with rotation_lock(new_key_file):
        write_key_file(new_key_file, [generate_master_key(), settings.master_key])
    print(f"wrote a new master key, and the current one, to {new_key_file}")
    print("next: on every node, unset REALTIME_MASTER_KEY, set REALTIME_MASTER_KEY_FILE to that")
    print("file and restart; then run `realtime rotate-key` again to re-wrap every data key")
    return 0


def _current_keys(settings: Settings, path: Path) -> list[bytes]:
    load_keyring(settings)  # generates the key file on the embedded default's first use
    return read_key_file(path)


if __name__ == "__main__":
    sys.exit(main())
