"""Running `realtime loadtest` in the tests: an admin to run it as, and a server that errs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime import cli, codec
from realtime.api.http import Services
from realtime.loadtest import Options, Report, run_loadtest
from tests.conftest import unique_name

ADMIN_PASSWORD = "load test admin password"


@dataclass(frozen=True)
class Admin:
    username: str
    password: str = ADMIN_PASSWORD


async def make_admin(services: Services) -> Admin:
    admin = Admin(unique_name("admin"))
    await services.accounts.create_user(admin.username, admin.password, is_admin=True)
    return admin


async def load_test(
    admin: Admin, *urls: str, say: Callable[[str], None] | None = None, **options: Any
) -> tuple[Report, list[str]]:
    """Run the load test in this loop; return its figures and the progress lines it printed."""
    lines: list[str] = []

    def print_line(line: str) -> None:
        lines.append(line)
        if say is not None:
            say(line)

    settings = {"users": 6, "rate": 20.0, "duration": 1.0, "drain": 3.0,
                "user_prefix": unique_name("lt"), "seed": 7} | options
    report = await run_loadtest(
        Options(urls=urls, admin_user=admin.username, admin_password=admin.password, **settings),
        say=print_line,
    )
    return report, lines


async def load_test_command(
    admin: Admin, url: str, json_path: Path, *extra: str
) -> tuple[int, dict[str, Any] | None]:
    """Run `realtime loadtest` as a person would, in a thread; return its exit status and the
    figures it wrote with --json (None when it wrote none)."""
    argv = ["loadtest", url, "--admin-user", admin.username, "--admin-password", admin.password,
            "--users", "6", "--rate", "20", "--duration", "1", "--drain", "3",
            "--user-prefix", unique_name("lt"), "--json", str(json_path), *extra]

    def run() -> tuple[int, dict[str, Any] | None]:
        status = cli.main(argv)
        return status, codec.decode(json_path.read_bytes()) if json_path.exists() else None

    return await asyncio.to_thread(run)


class FrameFault:
    """Drop or repeat the n-th `message.new` frame on its way to any socket: a server that errs."""

    def __init__(self, app: ASGIApp, *, repeat: bool, nth: int = 3) -> None:
        self.app = app
        self.repeat = repeat
        self.nth = nth
        self.seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def erring_send(message: Message) -> None:
            if message["type"] == "websocket.send" and '"message.new"' in message.get("text", ""):
                self.seen += 1
                if self.seen == self.nth:
                    if not self.repeat:
                        return
                    await send(message)
            await send(message)

        await self.app(scope, receive, erring_send)


class NoWebsockets:
    """Refuse every websocket handshake (403), as a proxy that does not pass them would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)
