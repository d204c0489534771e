"""Bare Redis: frames published on one channel and received by one subscriber, nothing else.

The raw limit of the path live events take between nodes. A private `redis-server` (the one on
`PATH`, else `.venv/bin/redis-server`; no persistence) is started, and one process on uvloop,
as the server runs, both publishes and subscribes with redis-py's asyncio client, as
`realtime/broker/redis.py` does: a `BlockingConnectionPool` client (RESP2, hiredis when
installed) publishing on the channel `realtime:user:<uuid>`, and a pub/sub connection of the
same pool's class read with `read_response`. No database, no websocket, no rendering: every
payload (the wire format of a `message.new` frame of the sustained benchmark, about 400 bytes)
is made before the clock starts.

Two variants, each after a warm-up round that is not counted:

- **awaited**: one `PUBLISH` at a time, each awaited before the next: a publish's round trip,
  and the latency from the call to the arrival on the subscriber;
- **pipelined**: `PUBLISH` commands in non-transactional pipelines of 1,000, as the broker
  sends a batch of events: the most the path carries. A message's latency runs from the start
  of its pipeline's `execute`.

messages/s is the messages over the time from the first publish to the last arrival; µs each is
its inverse. CPU is this process (publisher and subscriber) and redis-server over that window.

    .venv/bin/python bench/bare_redis.py [--messages 50000] [--variants awaited pipelined] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import sys
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import harness
import orjson
import uvloop
from harness import CpuWindow, Watched
from redis import __version__ as REDIS_PY_VERSION
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.utils import HIREDIS_AVAILABLE

from realtime import codec
from realtime.api import schemas
from realtime.broker.redis import CHUNK
from realtime.loadtest.stats import percentile
from realtime.protocol import MessageNew, Published, encode, unpack

VARIANTS = ("awaited", "pipelined")
RECEIVE_TIMEOUT = 120.0  # seconds for every message of a round to arrive


@dataclass(frozen=True)
class Round:
    """One variant: N messages published and received, and what it cost."""

    variant: str
    messages: int
    received: int
    payload_bytes: int
    seconds: float  # from the first publish to the last arrival
    p50: float  # seconds from the publish (its pipeline's execute) to the arrival
    p99: float
    worst: float
    cpu: dict[str, float]  # CPU seconds of "loop" (this process) and "redis" over the round

    @property
    def per_second(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else math.nan

    @property
    def us_each(self) -> float:
        """Wall microseconds per message: the inverse of the rate."""
        return 1e6 / self.per_second if self.per_second > 0 else math.nan

    @property
    def cpu_per_message(self) -> float:
        """CPU seconds per message, this process and redis-server together."""
        return sum(self.cpu.values()) / self.received if self.received else math.nan


def event_frame_payload(seq: int) -> bytes:
    """What the broker carries for a `message.new` of the sustained benchmark, seq and all."""
    summary = schemas.Summary(
        id=uuid.uuid4(),
        sender=schemas.Person(id=uuid.uuid4(), display_name="Bench user 123"),
        subject="from 123 to 456", sent_at=datetime.now(UTC), expires_at=None,
        high_priority=False, read_at=None, reply_to=None, attachments=[],
    )
    message = codec.encode(summary.model_dump(mode="python"))
    return Published(seq, encode(MessageNew(seq, None, message))).pack()


def payloads(count: int, size: int | None) -> list[bytes]:
    """`count` payloads whose seq field (bytes 1 to 8) is their index, padded to `size`."""
    made = []
    template = unpack(event_frame_payload(0))
    assert isinstance(template, Published)
    for index in range(count):
        payload = Published(index, template.frame).pack()
        if size is not None:
            payload = payload[:size].ljust(size, b" ")
        made.append(payload)
    return made


class Subscriber:
    """One pub/sub connection, read as the broker reads it: stamps each message's arrival."""

    def __init__(self, pool: BlockingConnectionPool, channel: str) -> None:
        self._connection: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
        self._channel = channel

    async def subscribe(self) -> None:
        await self._connection.send_command("SUBSCRIBE", self._channel)
        reply = await self._connection.read_response()
        if not (isinstance(reply, list) and reply[0] == b"subscribe"):
            raise RuntimeError(f"SUBSCRIBE answered {reply!r}")

    async def receive(self, arrived: array[float]) -> int:
        """Stamp arrivals until every index of `arrived` has come; return how many came."""
        read = self._connection.read_response
        received = 0
        while received < len(arrived):
            reply = await read(timeout=math.inf, disconnect_on_error=False, push_request=True)
            if isinstance(reply, list) and reply[0] == b"message":
                arrived[int.from_bytes(reply[2][1:9], "big")] = time.monotonic()
                received += 1
        return received

    async def close(self) -> None:
        await self._connection.disconnect()


async def publish(
    client: Redis, channel: str, batch: Sequence[bytes], sent: array[float], *, variant: str,
    chunk: int,
) -> None:
    """Publish every payload, noting when each was published."""
    if variant == "awaited":
        for index, payload in enumerate(batch):
            sent[index] = time.monotonic()
            await client.publish(channel, payload)
        return
    async with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(batch), chunk):
            now = time.monotonic()
            for index in range(start, min(start + chunk, len(batch))):
                sent[index] = now
                pipe.publish(channel, batch[index])
            await pipe.execute()


async def run_round(
    client: Redis, subscriber: Subscriber, channel: str, batch: Sequence[bytes],
    watched: Sequence[Watched], *, variant: str, chunk: int,
) -> Round:
    """Publish the batch while the subscriber receives it on the same loop."""
    sent = array("d", [math.nan]) * len(batch)
    arrived = array("d", [math.nan]) * len(batch)
    receiving = asyncio.create_task(subscriber.receive(arrived))
    window = CpuWindow(watched)
    try:
        await publish(client, channel, batch, sent, variant=variant, chunk=chunk)
        with contextlib.suppress(TimeoutError):  # what never came shows as not received
            async with asyncio.timeout(RECEIVE_TIMEOUT):
                await asyncio.shield(receiving)
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
    cpu = window.stop()
    latencies = sorted(a - s for a, s in zip(arrived, sent, strict=True) if a == a)
    last = max((a for a in arrived if a == a), default=math.nan)
    return Round(
        variant=variant, messages=len(batch), received=len(latencies),
        payload_bytes=len(batch[0]) if batch else 0, seconds=last - sent[0],
        p50=percentile(latencies, 0.50, empty=math.nan),
        p99=percentile(latencies, 0.99, empty=math.nan),
        worst=latencies[-1] if latencies else math.nan, cpu=dict(cpu.seconds),
    )


async def run_all(args: argparse.Namespace) -> tuple[dict[str, Any], list[Round]]:
    harness.cancel_on_sigterm()
    header: dict[str, Any] = {
        "benchmark": "bare-redis",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "version": await harness.project_version(),
        "options": vars(args),
        "redis_binary": harness.redis_binary(),
        "client": f"redis-py {REDIS_PY_VERSION} asyncio, RESP2, "
                  f"{'hiredis' if HIREDIS_AVAILABLE else 'pure-Python'} parser, uvloop",
    }
    batch = payloads(args.messages, args.size)
    warmup = batch[:args.warmup]
    channel = f"realtime:user:{uuid.uuid4()}"
    rounds = []
    async with harness.work_directory() as workdir, harness.redis_server(workdir) as (url, redis):
        pool = BlockingConnectionPool.from_url(url, max_connections=4, protocol=2)
        client = Redis.from_pool(pool)
        subscriber = Subscriber(pool, channel)
        try:
            header["redis_version"] = (await client.info("server"))["redis_version"]
            await subscriber.subscribe()
            if not args.json:
                print(f"bare Redis: {header['started']}, {header['cores']} cores, load "
                      f"{header['load']:.2f}, redis-server {header['redis_version']} "
                      f"({header['redis_binary']}), {header['client']}, {args.messages:,} "
                      f"messages of {len(batch[0])} bytes per variant\n", flush=True)
            watched = [Watched("loop", os.getpid()), redis]
            for variant in args.variants:
                if warmup:
                    await run_round(client, subscriber, channel, warmup, watched,
                                    variant=variant, chunk=args.chunk)
                gc.collect()
                gc.freeze()  # as `realtime serve` does: the payloads leave the collector's scans
                rounds.append(await run_round(client, subscriber, channel, batch, watched,
                                              variant=variant, chunk=args.chunk))
                gc.unfreeze()
        finally:
            await subscriber.close()
            await client.aclose()
    return header, rounds


def print_rounds(rounds: Sequence[Round]) -> None:
    headers = ["variant", "messages", "received", "bytes", "messages/s", "µs each",
               "p50 ms", "p99 ms", "max ms", "loop µs CPU/msg", "redis µs CPU/msg"]
    harness.print_table(headers, [
        [r.variant, r.messages, r.received, r.payload_bytes, r.per_second, r.us_each,
         r.p50 * 1e3, r.p99 * 1e3, r.worst * 1e3,
         1e6 * r.cpu.get("loop", 0.0) / r.received if r.received else math.nan,
         1e6 * r.cpu.get("redis", 0.0) / r.received if r.received else math.nan]
        for r in rounds
    ])
    print("  latency: from the publish call (awaited) or its pipeline's execute (pipelined) to "
          "the arrival;\n  µs each: wall time per message, first publish to last arrival; "
          "CPU: this process (publisher and subscriber) and redis-server")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000,
                        help="messages per variant (default: 50000)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="awaited: one publish per round trip; pipelined: pipelines of "
                             "--chunk (default: both)")
    parser.add_argument("--chunk", type=int, default=CHUNK,
                        help=f"publishes per pipeline (default: {CHUNK}, the broker's)")
    parser.add_argument("--size", type=int,
                        help="payload bytes (default: a message.new frame as the broker carries "
                             "it, about 400)")
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="messages of a round not counted, before each variant "
                             "(default: 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.messages < 1 or args.chunk < 1 or args.warmup < 0:
        parser.error("--messages and --chunk are positive, --warmup at least 0")
    if args.size is not None and args.size < 9:
        parser.error("--size is at least 9 bytes: the kind and the seq field")
    args.warmup = min(args.warmup, args.messages)
    return args


def main() -> int:
    args = parse_args()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            header, rounds = runner.run(run_all(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if args.json:
        print(orjson.dumps({
            **header,
            "runs": [{**asdict(r), "per_second": r.per_second, "us_each": r.us_each,
                      "cpu_per_message": r.cpu_per_message} for r in rounds],
        }, option=orjson.OPT_INDENT_2).decode())
    else:
        print_rounds(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
