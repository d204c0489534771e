"""Files: upload and download throughput of attachments, beside raw AES-256-GCM on one core.

First, with nothing else of the benchmark running, this process measures the raw AES-256-GCM
throughput of the machine: `cryptography`'s AESGCM encrypting, then decrypting, 1 MiB buffers in a
loop for about a second each (one core), and SHA-256 over the same buffer (the client's own
check of every download, once its clock has stopped). Then a fresh `realtime serve` (embedded PostgreSQL; `--redis`: through
a private redis-server) is started and `admin` logs in. For each size, files of random bytes are
uploaded one after the other with `POST /api/uploads`, attached to messages `admin` sends to
itself (20 files a message at most), and downloaded again with
`GET /api/messages/{id}/attachments/{attachment_id}`, each download checked against its upload
by SHA-256. One keep-alive HTTP/1.1 connection carries every request: the body of an upload is
sent from memory as it is, a download is read into memory as it comes and hashed after.

After each size, the floor (`files_floor.py`): as many files of the same size, sealed as the
server seals them, written into and read out of the server's own PostgreSQL from this process
with asyncpg, several ways; the fastest way of each step is PostgreSQL's own pace for those bytes.

A request's time runs from its first byte sent to the last byte of its answer read. MB/s is
10^6 bytes per second: a size's bytes over the sum of its requests' times. Uploads are held
against raw encryption, downloads against raw decryption: the target is at least half. Both
are also held against the floor: the target is at least 0.7 of PostgreSQL's own rate.

    .venv/bin/python bench/files.py [--sizes 1 25] [--files 20 4] [--redis] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import itertools
import math
import os
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import files_floor
import harness
import httpx
import orjson
import uvloop
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from files_floor import Way
from harness import CpuWindow, Server, Watched

MIB = 1024 * 1024
MB = 1_000_000  # the unit of every MB/s: 10^6 bytes
MAX_UPLOAD = 25 * MIB  # 26,214,400 bytes: the server refuses more with 413
MAX_ATTACHMENTS = 20  # a message's limit
RAW_BUFFER = MIB  # what the raw AES-256-GCM and SHA-256 loops work on
READ_CHUNK = MIB  # a download is read (and hashed) this much at a time
PAYLOAD_STRIDE = 4096  # file i of a size starts this many bytes after file i - 1 in the pool
MOVED_PER_SIZE = 20 * MIB  # the default number of files moves at least this much per size ...
MIN_FILES = 4  # ... in this many files at least: 20 of 1 MiB, 4 of 25 MiB
IDLE_REOPEN = 2.0  # seconds idle after which the connection is reopened, before any timing
TIMEOUT = 120.0  # seconds a request may take
TARGET_SHARE = 0.5  # of the raw AES-256-GCM figure
FLOOR_TARGET_SHARE = 0.7  # of PostgreSQL's own rate for the same bytes (the floor)
OTHERS_MIN_WINDOW = 0.5  # seconds: the machine's busy time counts in 10 ms ticks
PROBLEM_LINES = 40  # of the server's log shown


class TransferError(RuntimeError):
    """A wrong status, a malformed answer or a download unlike its upload: the run failed."""


@dataclass(frozen=True)
class Raw:
    """This machine's raw figures on one core, in MB/s, measured in the same run."""

    encrypt: float  # AES-256-GCM, 1 MiB buffers
    decrypt: float
    sha256: float  # the client's check of a download: the most a download can show

    def against(self, step: str) -> float:
        """Encryption for uploads, decryption for downloads; nan for a send."""
        return {"upload": self.encrypt, "download": self.decrypt}.get(step, float("nan"))


@dataclass
class Step:
    """One step (upload, send or download) of every file of one size, and what it cost."""

    size: int  # bytes per file
    step: str
    requests: list[tuple[int, float]]  # (bytes moved, wall seconds) per request
    cpu: dict[str, float]  # CPU seconds per role over the step ("others": not ours)
    window: float  # wall seconds of that window
    peak_rss: int  # the server's peak RSS (VmHWM) at the step's end, bytes
    raw: float  # MB/s of the raw figure it is held against (nan: none)
    floor: float = float("nan")  # MB/s of PostgreSQL's fastest way for the same bytes
    floor_way: str = ""  # which way that was

    @property
    def files(self) -> int:
        return sum(moved // self.size for moved, _ in self.requests)

    @property
    def moved(self) -> int:
        return sum(moved for moved, _ in self.requests)

    @property
    def busy(self) -> float:
        return sum(seconds for _, seconds in self.requests)

    @property
    def mb_per_second(self) -> float:
        """The aggregate: every byte over the sum of the requests' times."""
        return self.moved / MB / self.busy if self.busy > 0 else float("nan")

    @property
    def rates(self) -> list[float]:
        """MB/s of each request, sorted."""
        return sorted(moved / MB / seconds for moved, seconds in self.requests if seconds > 0)

    @property
    def share(self) -> float:
        return self.mb_per_second / self.raw

    @property
    def cpu_per_mb(self) -> float:
        """CPU milliseconds per MB of the server, PostgreSQL and Redis."""
        used = sum(self.cpu.get(role, 0.0) for role in ("server", "postgres", "redis"))
        return 1e3 * used / (self.moved / MB) if self.moved else float("nan")

    @property
    def passed(self) -> bool:
        return self.share >= TARGET_SHARE

    @property
    def floor_share(self) -> float:
        return self.mb_per_second / self.floor

    @property
    def floor_passed(self) -> bool:
        return self.floor_share >= FLOOR_TARGET_SHARE


# --- raw AES-256-GCM ---------------------------------------------------------------------------


def measure_raw(seconds: float) -> Raw:
    """AES-256-GCM encryption and decryption, and SHA-256, of 1 MiB buffers on this thread."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    buffer = os.urandom(RAW_BUFFER)
    nonces = (n.to_bytes(12, "big") for n in itertools.count())
    sealed_nonce = next(nonces)
    sealed = aead.encrypt(sealed_nonce, buffer, None)
    return Raw(
        encrypt=loop_rate(lambda: aead.encrypt(next(nonces), buffer, None), seconds),
        decrypt=loop_rate(lambda: aead.decrypt(sealed_nonce, sealed, None), seconds),
        sha256=loop_rate(lambda: hashlib.sha256(buffer).digest(), seconds),
    )


def loop_rate(work: Callable[[], object], seconds: float) -> float:
    """MB/s of `work` on one RAW_BUFFER, called in a loop for at least `seconds`."""
    work()  # once untimed: allocations and tables warm
    done, started = 0, time.perf_counter()
    while True:
        work()
        done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done * RAW_BUFFER / MB / elapsed


# --- the client --------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the server, as `admin`; every call blocks."""

    def __init__(self, server: Server, token: str) -> None:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        self._server = server
        self._connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
        self._auth = {"Authorization": f"Bearer {token}"}
        self._used = 0.0

    def close(self) -> None:
        self._connection.close()

    def _ready(self) -> http.client.HTTPConnection:
        """The connection, opened before any timing starts, and reopened when it has been idle
        long enough for the server to have closed it (keep-alive timeout)."""
        connection = self._connection
        if connection.sock is not None and time.monotonic() - self._used > IDLE_REOPEN:
            connection.close()
        if connection.sock is None:
            connection.connect()
        return connection

    def _done(self) -> None:
        self._used = time.monotonic()

    def fail(self, what: str, detail: str) -> TransferError:
        """The error to raise, with the tail of the server's log."""
        log = "\n".join(self._server.problems()[-PROBLEM_LINES:]) or "(nothing logged)"
        return TransferError(f"{what}: {detail}\nthe server's log:\n{log}")

    def _json(self, what: str, method: str, path: str, body: bytes | None,
              expect: int) -> tuple[dict[str, Any], float]:
        """One request with a JSON answer of status `expect`; its answer and wall seconds."""
        connection = self._ready()
        headers = dict(self._auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            seconds = time.perf_counter() - started
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self.fail(what, f"{type(exc).__name__}: {exc}") from exc
        self._done()
        if response.status != expect:
            raise self.fail(what, f"{response.status} {payload[:500]!r}")
        return self._parse(what, payload), seconds

    def _parse(self, what: str, payload: bytes) -> dict[str, Any]:
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise self.fail(what, f"not JSON: {payload[:500]!r}") from exc
        if not isinstance(answer, dict):
            raise self.fail(what, f"not a JSON object: {payload[:500]!r}")
        return answer

    def upload(self, name: str, payload: memoryview) -> tuple[str, float]:
        """`POST /api/uploads`, the body sent from memory as it is; the upload id and seconds."""
        connection = self._ready()
        path = "/api/uploads?name=" + urllib.parse.quote(name)
        headers = {**self._auth, "Content-Type": "application/octet-stream"}
        try:
            started = time.perf_counter()
            connection.request("POST", path, body=payload, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            seconds = time.perf_counter() - started
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self.fail(f"uploading {name}", f"{type(exc).__name__}: {exc}") from exc
        self._done()
        if response.status != 201:
            raise self.fail(f"uploading {name}", f"{response.status} {answer[:500]!r}")
        upload = self._parse(f"uploading {name}", answer)
        if upload.get("size") != payload.nbytes or not upload.get("upload_id"):
            raise self.fail(f"uploading {name}", f"{payload.nbytes:,} bytes sent, answer {upload}")
        return str(upload["upload_id"]), seconds

    def send(self, to: str, upload_ids: Sequence[str]) -> tuple[str, float]:
        """A message to `to` with these uploads attached; its id and the send's seconds."""
        body = orjson.dumps({
            "to": [{"kind": "user", "id": to}], "subject": "bench", "body": "",
            "attachments": [{"kind": "file", "upload_id": u} for u in upload_ids],
        })
        answer, seconds = self._json("sending", "POST", "/api/messages", body, 201)
        if not answer.get("id"):
            raise self.fail("sending", f"no message id in {answer}")
        return str(answer["id"]), seconds

    def attachments(self, message_id: str) -> dict[str, dict[str, Any]]:
        """The attachments of a message, by name."""
        answer, _ = self._json("reading the message", "GET", f"/api/messages/{message_id}",
                               None, 200)
        return {str(attachment.get("name")): attachment
                for attachment in answer.get("attachments") or []}

    def download(self, path: str, size: int) -> tuple[bytes, float]:
        """GET a file, read in READ_CHUNK pieces into memory as they come (as PostgreSQL's own
        reads hand over their bytes); its SHA-256, taken once the clock has stopped, and the
        seconds."""
        connection = self._ready()
        content = bytearray(size + READ_CHUNK)
        received = 0
        try:
            started = time.perf_counter()
            connection.request("GET", path, headers=self._auth)
            response = connection.getresponse()
            if response.status != 200:
                raise self.fail(f"downloading {path}",
                                f"{response.status} {response.read()[:500]!r}")
            with memoryview(content) as view:
                while received <= size and (
                    read := response.readinto(view[received:received + READ_CHUNK])
                ):
                    received += read
            seconds = time.perf_counter() - started
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self.fail(f"downloading {path}", f"{type(exc).__name__}: {exc}") from exc
        self._done()
        length = response.getheader("Content-Length")
        if received != size or (length is not None and int(length) != size):
            raise self.fail(f"downloading {path}", f"{received:,} bytes read, Content-Length "
                            f"{length}, {size:,} uploaded")
        return hashlib.sha256(memoryview(content)[:size]).digest(), seconds


# --- one size ----------------------------------------------------------------------------------


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size (VmHWM) of a process so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure_size(
    client: Client, server: Server, admin_id: str, size: int, count: int, prefix: str, raw: Raw
) -> list[Step]:
    """Upload `count` files of `size` random bytes, send them, download and check each.

    Each step has a CPU window of its own. The payloads and their digests are made before the
    first upload's window opens: file i is the `size` bytes at i * PAYLOAD_STRIDE of one random
    pool, so that every file differs and the client's memory stays near one file's.
    """
    watched = [*server.watched, Watched("client", os.getpid())]
    steps: list[Step] = []

    def close(step: str, window: CpuWindow, requests: list[tuple[int, float]]) -> None:
        cpu = window.stop()
        steps.append(Step(size=size, step=step, requests=requests,
                          cpu=dict(cpu.seconds, others=cpu.others()), window=cpu.wall,
                          peak_rss=peak_rss_bytes(server.watched[0].pid),
                          raw=raw.against(step)))

    pool = memoryview(os.urandom(size + (count - 1) * PAYLOAD_STRIDE))
    payloads = {f"{prefix}-{size}-{i:04d}.bin": pool[i * PAYLOAD_STRIDE:][:size]
                for i in range(count)}
    digests = {name: hashlib.sha256(payload).digest() for name, payload in payloads.items()}
    uploads: list[tuple[str, str]] = []  # (name, upload id)
    requests: list[tuple[int, float]] = []
    window = CpuWindow(watched)
    for name, payload in payloads.items():
        upload_id, seconds = client.upload(name, payload)
        uploads.append((name, upload_id))
        requests.append((size, seconds))
    close("upload", window, requests)

    messages: list[tuple[str, list[str]]] = []  # (message id, names of its files)
    requests = []
    window = CpuWindow(watched)
    for first in range(0, count, MAX_ATTACHMENTS):
        batch = uploads[first:first + MAX_ATTACHMENTS]
        message_id, seconds = client.send(admin_id, [upload_id for _, upload_id in batch])
        messages.append((message_id, [name for name, _ in batch]))
        requests.append((size * len(batch), seconds))
    close("send", window, requests)

    paths: list[tuple[str, str]] = []  # (name, download path)
    for message_id, names in messages:
        attached = client.attachments(message_id)
        for name in names:
            attachment = attached.get(name)
            if attachment is None or attachment.get("size") != size or not attachment.get("id"):
                raise client.fail(f"reading message {message_id}",
                                  f"{name} is not among its attachments {list(attached.values())}")
            paths.append((name, f"/api/messages/{message_id}/attachments/{attachment['id']}"))

    requests = []
    window = CpuWindow(watched)
    for name, path in paths:
        digest, seconds = client.download(path, size)
        if digest != digests[name]:
            raise client.fail(f"downloading {name}", "its bytes differ from those uploaded")
        requests.append((size, seconds))
    close("download", window, requests)
    return steps


def files_per_size(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(bytes, files) for each size asked; by default enough files to move 20 MiB, 4 at least."""
    sizes = [round(mib * MIB) for mib in args.sizes]
    counts = args.files or [max(MIN_FILES, math.ceil(MOVED_PER_SIZE / size)) for size in sizes]
    if len(counts) == 1:
        counts = counts * len(sizes)
    return list(zip(sizes, counts, strict=True))


Results = tuple[dict[str, Any], Raw, list[Step], list[Way], list[str]]


async def run_all(args: argparse.Namespace) -> Results:
    """Raw AES-GCM first, on a quiet machine; then one server for every size, and after each
    size PostgreSQL's own pace for the same bytes."""
    harness.cancel_on_sigterm()
    plan = files_per_size(args)
    header = await harness.run_header(
        "files", args, ", ".join(f"{count} x {size_label(size)}" for size, count in plan)
        + f", {args.warmup} warm-up file(s) per size, MB = 10^6 bytes"
    )
    raw = await asyncio.to_thread(measure_raw, args.aes_seconds)
    if not args.json:
        print(f"raw, one core, 1 MiB buffers: AES-256-GCM encrypt {raw.encrypt:,.0f} MB/s, "
              f"decrypt {raw.decrypt:,.0f} MB/s; SHA-256 {raw.sha256:,.0f} MB/s\n", flush=True)
    steps: list[Step] = []
    ways: list[Way] = []
    async with (
        harness.work_directory() as workdir,
        harness.realtime_server(workdir, redis=args.redis, ws=args.ws) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60.0) as http,
    ):
        token = await harness.login_admin(http)
        me = await http.get("/api/me", headers=harness.bearer(token))
        me.raise_for_status()
        admin_id = str(me.json()["id"])
        client = Client(server, token)
        try:
            for size, count in plan:
                if args.warmup:
                    await asyncio.to_thread(measure_size, client, server, admin_id, size,
                                            args.warmup, "warmup", raw)
                done = await asyncio.to_thread(measure_size, client, server, admin_id, size,
                                               count, "bench", raw)
                floor = await files_floor.measure_floor(
                    server.database_url, uuid.UUID(admin_id),
                    [*server.watched, Watched("client", os.getpid())], size, count, args.warmup)
                set_floors(done, floor)
                steps.extend(done)
                ways.extend(floor)
                if not args.json:
                    print(f"{count} x {size_label(size)}: "
                          + ", ".join(f"{s.step} {s.mb_per_second:,.0f} MB/s" for s in done)
                          + "; PostgreSQL's own: "
                          + ", ".join(f"{w.step} {w.mb_per_second:,.0f} MB/s ({w.way})"
                                      for w in floor), flush=True)
        finally:
            client.close()
        problems = server.problems()
    return header, raw, steps, ways, problems


def set_floors(steps: Sequence[Step], ways: Sequence[Way]) -> None:
    """Hold each upload and download against the fastest way PostgreSQL moved the same bytes."""
    for step in steps:
        floor = files_floor.fastest(ways, step.size, step.step)
        if floor is not None:
            step.floor, step.floor_way = floor.mb_per_second, floor.way


# --- output ------------------------------------------------------------------------------------


def size_label(size: int) -> str:
    return f"{size / MIB:g} MiB"


def print_steps(steps: Sequence[Step]) -> None:
    headers = ["size", "step", "files", "MB", "MB/s", "min MB/s", "max MB/s", "p50 ms",
               "server %", "pg %", "redis %", "client %", "others %", "CPU ms/MB",
               "peak RSS MiB", "raw MB/s", "of raw", "floor MB/s", "of floor"]
    rows = [[size_label(s.size), s.step, s.files, s.moved / MB, s.mb_per_second,
             s.rates[0] if s.rates else float("nan"), s.rates[-1] if s.rates else float("nan"),
             1e3 * statistics.median(seconds for _, seconds in s.requests),
             *(100 * s.cpu.get(role, 0.0) / s.window if s.window else float("nan")
               for role in ("server", "postgres", "redis", "client")),
             100 * s.cpu["others"] / s.window if s.window >= OTHERS_MIN_WINDOW else float("nan"),
             s.cpu_per_mb, s.peak_rss / MIB, s.raw,
             f"{s.share:.1%}" if s.raw == s.raw else "-", s.floor,
             f"{s.floor_share:.2f}" if s.floor == s.floor else "-"] for s in steps]
    harness.print_table(headers, rows)


def print_ways(ways: Sequence[Way]) -> None:
    """PostgreSQL's own pace, each way; the fastest of a step (its floor) marked."""
    headers = ["size", "step", "PostgreSQL's own way", "files", "MB/s", "min MB/s", "max MB/s",
               "p50 ms", "pg %", "client %", "others %", "pg CPU ms/MB", "floor"]
    rows = []
    for w in ways:
        share = {role: 100 * w.cpu.get(role, 0.0) / w.window if w.window else float("nan")
                 for role in ("postgres", "client")}
        fastest = files_floor.fastest(ways, w.size, w.step)
        rows.append([
            size_label(w.size), w.step, w.way, w.files, w.mb_per_second,
            w.rates[0] if w.rates else float("nan"), w.rates[-1] if w.rates else float("nan"),
            1e3 * statistics.median(seconds for _, seconds in w.requests),
            share["postgres"], share["client"],
            100 * w.cpu["others"] / w.window if w.window >= OTHERS_MIN_WINDOW else float("nan"),
            1e3 * w.cpu.get("postgres", 0.0) / (w.moved / MB) if w.moved else float("nan"),
            "*" if fastest is w else ""])
    harness.print_table(headers, rows)


def print_summary(raw: Raw, steps: Sequence[Step], ways: Sequence[Way],
                  problems: Sequence[str]) -> None:
    print()
    print_steps(steps)
    print()
    print_ways(ways)
    print()
    for line in problems[:PROBLEM_LINES]:
        print(f"  server log: {line}")
    print(f"Targets (MB = 10^6 bytes; raw AES-256-GCM on one core: encrypt "
          f"{raw.encrypt:,.0f} MB/s, decrypt {raw.decrypt:,.0f} MB/s):")
    for s in steps:
        if s.step in ("upload", "download"):
            against = "encryption" if s.step == "upload" else "decryption"
            print(f"  [{'met' if s.passed else 'MISSED'}] {size_label(s.size)} {s.step}s >= "
                  f"{TARGET_SHARE:.0%} of raw {against}: {s.mb_per_second:,.0f} MB/s "
                  f"({s.share:.1%} of {s.raw:,.0f})")
    for s in steps:
        if s.step in ("upload", "download") and s.floor == s.floor:
            print(f"  [{'met' if s.floor_passed else 'MISSED'}] {size_label(s.size)} {s.step}s "
                  f">= {FLOOR_TARGET_SHARE:g} of PostgreSQL's own rate: {s.mb_per_second:,.0f} "
                  f"MB/s, {s.floor_share:.2f} of {s.floor:,.0f} MB/s ({s.floor_way})")


def step_json(step: Step) -> dict[str, Any]:
    return {**asdict(step), "files": step.files, "moved": step.moved,
            "mb_per_second": step.mb_per_second, "rates": step.rates,
            "share": step.share if step.raw == step.raw else None,
            "cpu_per_mb": step.cpu_per_mb,
            "passed": step.passed if step.step in ("upload", "download") else None,
            "floor": step.floor if step.floor == step.floor else None,
            "floor_share": step.floor_share if step.floor == step.floor else None,
            "floor_passed": step.floor_passed if step.floor == step.floor else None}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 25.0],
                        help="file sizes in MiB, at most 25, the server's limit (default: 1 25)")
    parser.add_argument("--files", type=int, nargs="+",
                        help="files of each size, one number for all or one per size (default: "
                             "enough to move 20 MiB, at least 4: 20 of 1 MiB, 4 of 25 MiB)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="files of each size uploaded, sent and downloaded first, not "
                             "counted (default: 1)")
    parser.add_argument("--aes-seconds", type=float, default=1.0,
                        help="seconds of each raw loop: AES-GCM encrypt, decrypt, SHA-256 "
                             "(default: 1)")
    parser.add_argument("--redis", action="store_true",
                        help="carry live events through a private redis-server")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(ws=harness.SERVER_WS)  # the server's own, which `run_header` shows
    args = parser.parse_args()
    if any(not 0 < round(mib * MIB) <= MAX_UPLOAD for mib in args.sizes):
        parser.error(f"a size is more than 0 and at most {MAX_UPLOAD / MIB:g} MiB")
    if args.files and (len(args.files) not in (1, len(args.sizes)) or min(args.files) < 1):
        parser.error("--files takes one count of at least 1, or one per size")
    if args.warmup < 0 or args.aes_seconds <= 0:
        parser.error("--warmup is 0 or more, --aes-seconds more than 0")
    return args


def main() -> int:
    args = parse_args()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the server's loop
            header, raw, steps, ways, problems = runner.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    except (TransferError, files_floor.FloorError) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps({
            **header, "mb": MB, "raw": asdict(raw), "target_share": TARGET_SHARE,
            "floor_target_share": FLOOR_TARGET_SHARE,
            "server_log": problems, "steps": [step_json(s) for s in steps],
            "floor": [files_floor.way_json(w) for w in ways],
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(raw, steps, ways, problems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
