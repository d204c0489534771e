"""`realtime serve --workers N`: N processes serving one port, and what they share.

The parent holds the port, makes the master key file, starts the embedded PostgreSQL (no
REALTIME_DATABASE_URL) and a private redis-server (no REALTIME_REDIS_URL), then forks the
workers, each serving the whole app on the port (`Port` says how connections are spread), and
a directory where they share their metrics (`realtime.worker_metrics`).
A worker that stops before it serves stops them all (the next one would fail alike); one that
dies later is replaced, unless workers keep dying. SIGINT or SIGTERM stops the workers
gracefully, then Redis, then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from realtime.config import Settings
from realtime.db import EmbeddedPostgres
from realtime.errors import ConfigError
from realtime.keyfile import key_file_path, load_keyring
from realtime.redis_server import PrivateRedis, find_redis_server

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0  # a worker's graceful shutdown (uvicorn's 10 s and the lifespan's) and more
PARENT_CHECK_INTERVAL = 1.0
POLL_INTERVAL = 0.2
RESTARTS_ALLOWED = 5  # deaths of started workers within RESTART_WINDOW before giving up
RESTART_WINDOW = 60.0
READY = b"r"
NEVER_SERVED = 3  # a worker's exit status when its app did not start


class WorkerLink:
    """What a worker knows of its parent: whom to tell it serves, and whose death ends it."""

    def __init__(self, ready_fd: int) -> None:
        self._ready_fd = ready_fd
        self._parent_pid = os.getppid()

    def ready(self) -> None:
        """Tell the parent this worker serves."""
        os.write(self._ready_fd, READY)

    async def watch_parent(self, stop: Callable[[], None]) -> None:
        """Call `stop` once the parent is gone: no worker outlives its supervisor."""
        while os.getppid() == self._parent_pid:  # noqa: ASYNC110 (no event tells of it)
            await asyncio.sleep(PARENT_CHECK_INTERVAL)
        log.warning("the parent process is gone; this worker stops")
        stop()


# Serve on the socket until told to stop; return whether the app started at all.
ServeWorker = Callable[[Settings, socket.socket, WorkerLink], bool]
# Why a part the workers share has stopped, or None while it runs.
SharedFault = Callable[[], str | None]


def serve_workers(settings: Settings, serve: ServeWorker) -> int:
    """Start what the workers share, run `settings.workers` of them until a signal, stop all."""
    with ExitStack() as stack:
        redis_binary = find_redis_server() if settings.redis_url is None else None
        port = Port(settings.host, settings.port)
        stack.callback(port.close)
        shared, fault = stack.enter_context(shared_services(settings, redis_binary))
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        log.info("serving http://%s:%s with %d workers", host, port.number, settings.workers)
        status = Supervisor(shared, port, serve, fault).run()
    return status


class Port:
    """The port the workers serve, and how its connections are spread over them.

    On Linux each worker listens on a socket of its own with SO_REUSEPORT, and the kernel hands
    each connection to one of them by a hash of its addresses: websockets, which stay for hours,
    spread evenly whenever they come. (On one shared socket, the worker that wakes first takes
    the connection: in quiet times that is mostly the same worker.) Between workers the parent
    holds the port with a socket that is bound and never listens. Elsewhere the workers accept
    on the parent's one listening socket.
    """

    BALANCED = sys.platform == "linux"
    BACKLOG = 2048

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn does
        try:
            # Without SO_REUSEPORT: fails if anything, another server of ours too, holds it.
            probe = self._socket(port, reuse_port=False, listen=True)
            self.number: int = probe.getsockname()[1]
            if self.BALANCED:
                probe.close()
                probe = self._socket(self.number, reuse_port=True, listen=False)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._held = probe

    def _socket(self, port: int, *, reuse_port: bool, listen: bool) -> socket.socket:
        made = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            made.bind((self.host, port))
            if listen:
                made.listen(self.BACKLOG)
        except OSError:
            made.close()
            raise
        return made

    def listener(self) -> socket.socket:
        """In a worker: the socket it accepts on."""
        if not self.BALANCED:
            return self._held
        own = self._socket(self.number, reuse_port=True, listen=True)
        self._held.close()  # the parent's copy: it keeps its own
        return own

    def close(self) -> None:
        self._held.close()


@contextmanager
def shared_services(
    settings: Settings, redis_binary: str | None
) -> Iterator[tuple[Settings, SharedFault]]:
    """Make the key file, start PostgreSQL and Redis as needed; yield the workers' settings and
    what tells whether a part of ours stopped."""
    with ExitStack() as stack:
        load_keyring(settings)  # generated here, once, before any worker reads it
        changes: dict[str, Any] = {}
        redis: PrivateRedis | None = None
        if settings.master_key is None:
            changes["master_key_file"] = key_file_path(settings)
        if settings.embedded_database:
            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            stack.callback(embedded.stop)
            changes["database_url"] = embedded.start()
            log.info("embedded PostgreSQL started under %s", embedded.pgdata)
        if redis_binary is not None:
            redis = stack.enter_context(PrivateRedis(settings.data_dir / "redis", redis_binary))
            changes["redis_url"] = redis.url
            log.info("private redis-server started under %s", redis.directory)
        # Made here (mode 0700, a short path for the unix sockets), removed after the workers.
        changes["worker_metrics_dir"] = Path(tempfile.mkdtemp(prefix="realtime-metrics-"))
        stack.callback(shutil.rmtree, changes["worker_metrics_dir"], ignore_errors=True)

        def fault() -> str | None:
            return "the private redis-server stopped" if redis and redis.exited() else None

        yield replace(settings, **changes), fault


@dataclass
class Worker:
    pid: int
    ready_fd: int
    serving: bool = False


class Supervisor:
    """Forks the workers, replaces those that die, and stops them all on a signal."""

    def __init__(
        self, settings: Settings, port: Port, serve: ServeWorker, fault: SharedFault
    ) -> None:
        self._settings = settings
        self._port = port
        self._serve = serve
        self._fault = fault
        self._workers: dict[int, Worker] = {}
        self._deaths: deque[float] = deque()
        self._stop_signal: int | None = None

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM (0), or until workers cannot serve (1)."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for _ in range(self._settings.workers):
                self._start_worker()
            failure = self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            log.error("%s; stopped", failure)
            return 1
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _watch(self) -> str | None:
        """Wait for a signal (None) or a failure the workers cannot serve past (its reason)."""
        while self._stop_signal is None:
            self._read_ready(POLL_INTERVAL)
            if (fault := self._fault()) is not None:
                return fault
            for worker in list(self._workers.values()):
                status = _reap(worker.pid)
                if status is None:
                    continue
                self._forget(worker)
                if self._stop_signal is not None:
                    break
                reason = self._replace(worker, status)
                if reason is not None:
                    return reason
        log.info("received %s; stopping the workers", signal.Signals(self._stop_signal).name)
        return None

    def _replace(self, worker: Worker, status: str) -> str | None:
        if not worker.serving:
            return f"worker {worker.pid} {status} before it served (its log says why)"
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW:
            self._deaths.popleft()
        if len(self._deaths) > RESTARTS_ALLOWED:
            return f"workers died {len(self._deaths)} times within {RESTART_WINDOW:.0f} s"
        log.warning("worker %d %s; starting another", worker.pid, status)
        self._start_worker()
        return None

    def _read_ready(self, timeout: float) -> None:
        fds = {worker.ready_fd: worker for worker in self._workers.values()}
        try:
            readable, _, _ = select.select(list(fds), [], [], timeout)
        except InterruptedError:  # a signal: the loop looks at it
            return
        for fd in readable:
            if os.read(fd, 64) and not fds[fd].serving:
                fds[fd].serving = True
                log.info("worker %d serving", fds[fd].pid)

    def _start_worker(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            self._run_worker(write_fd)
        os.close(write_fd)
        self._workers[pid] = Worker(pid, read_fd)

    def _run_worker(self, ready_fd: int) -> None:
        """Serve in this forked process, then leave it without running the parent's exit hooks."""
        status = 1
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own while it serves
            for worker in self._workers.values():
                os.close(worker.ready_fd)
            served = self._serve(self._settings, self._port.listener(), WorkerLink(ready_fd))
            status = 0 if served else NEVER_SERVED
        except KeyboardInterrupt:
            status = 0
        except SystemExit as exc:  # uvicorn's, when the app fails to start
            status = exc.code if isinstance(exc.code, int) else NEVER_SERVED
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _forget(self, worker: Worker) -> None:
        del self._workers[worker.pid]
        os.close(worker.ready_fd)

    def _stop_all(self) -> None:
        """Stop every worker gracefully; kill those still running after STOP_TIMEOUT."""
        self._port.close()  # the workers hold their own sockets
        for pid in self._workers:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._workers:
            for worker in list(self._workers.values()):
                if _reap(worker.pid) is not None:
                    self._forget(worker)
            if self._workers and time.monotonic() > deadline:
                for pid in self._workers:
                    log.warning("worker %d did not stop in time; killing it", pid)
                    _signal(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(POLL_INTERVAL / 4)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> str | None:
    """How the worker ended, or None while it runs."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "vanished"
    if done == 0:
        return None
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
