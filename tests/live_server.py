"""A real uvicorn serving its own app on a free port, configured as `realtime serve` does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from realtime.app import create_app
from realtime.cli import GracefulServer, server_options
from realtime.config import Settings

STARTUP_TIMEOUT = 30.0


class LiveServer:
    """One uvicorn in a thread of its own, with its own event loop and database pool."""

    def __init__(
        self, settings: Settings, wrap: Callable[[ASGIApp], ASGIApp] | None = None,
        **uvicorn_options: Any,
    ) -> None:
        """`uvicorn_options` change how it serves (quiet, no access log, by default)."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        options = server_options(settings)
        for served_by_the_socket in ("host", "port"):
            options.pop(served_by_the_socket)
        options.update(log_level="warning", access_log=False, lifespan="on")
        options.update(uvicorn_options)
        self.app = create_app(settings)
        served = self.app if wrap is None else wrap(self.app)
        config = uvicorn.Config(served, **options)
        self._server = GracefulServer(config, self.app)
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start() or stop(), never lost in the thread
            self._error = exc

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError("the live server did not start") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError("the live server did not start in time")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT)
        self._sock.close()
        if self._error is not None:
            raise RuntimeError("the live server failed") from self._error


@contextmanager
def live_server(
    settings: Settings, wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    **uvicorn_options: Any,
) -> Iterator[LiveServer]:
    """Serve a fresh app (inside `wrap`, if given) on 127.0.0.1 and a free port until the end."""
    server = LiveServer(settings, wrap, **uvicorn_options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
