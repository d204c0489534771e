"""The bare send pipeline: the floor a one-to-one send is held against, with none of our code.

A Starlette app served by uvicorn with the server's own options (`realtime.cli.server_options`)
that does only what a send needs:

- `POST /send` with `Authorization: Bearer <token>`: one indexed `SELECT` on the sessions table
  (by the token's SHA-256) finds the sender;
- the body (`{"to": [{"kind": "user", "id": ...}], "subject": ..., "body": ...}`, as the
  server takes it, one user) is decoded with orjson; subject and body are sealed with AES-GCM
  under a random data key, itself wrapped under a master key, as the server seals a message;
- one statement (a CTE) inserts the message and its one recipient row, with autocommit;
- one `PUBLISH` of the frame on the recipient's Redis channel (`bare:user:<id>`, one channel
  per user as the server's broker uses, so any node holding the user's socket gets it);
- the node's one pub/sub connection reads it and writes the frame
  (`{"type":"message.new","message":{...}}`) to the recipient's open socket.

Its websocket endpoint (`/ws`) authenticates the same way, subscribes the user's channel and
answers `{"type":"hello"}`. Its own tables (users, sessions, messages, message_recipients, with
their foreign keys) live in a database of their own (`bare`) on the PostgreSQL the run uses;
`prepare_database` makes them and copies in the benchmark's users and sessions.

`sustained.py` starts it (`python bench/bare_send.py serve CONFIG`) beside the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import harness
import orjson
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import Watched
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime.cli import server_options
from realtime.config import Settings

HERE = Path(__file__).resolve()
DATABASE = "bare"
CHANNEL_PREFIX = "bare:user:"
POOL_SIZE = 10  # the server's default (REALTIME_DB_POOL_SIZE)
NONCE_BYTES = 12
HELLO = '{"type":"hello"}'

SCHEMA = """
create table users (
    id uuid primary key,
    display_name text not null
);
create table sessions (
    token_hash bytea primary key,
    user_id uuid not null references users (id) on delete cascade,
    expires_at timestamptz not null
);
create index sessions_user on sessions (user_id);
create table messages (
    id uuid primary key,
    sender_id uuid not null references users (id) on delete cascade,
    sent_at timestamptz not null,
    key_id text not null,
    wrapped_key bytea not null,
    subject bytea not null,
    body bytea not null
);
create index messages_sent_box on messages (sender_id, sent_at desc);
create table message_recipients (
    message_id uuid not null references messages (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    sent_at timestamptz not null,
    read_at timestamptz,
    primary key (message_id, user_id)
);
create index message_recipients_inbox on message_recipients (user_id, sent_at desc);
"""

AUTHENTICATE = """
select s.user_id, u.display_name from sessions s join users u on u.id = s.user_id
where s.token_hash = $1 and s.expires_at > now()
"""

INSERT = """
with message as (
    insert into messages (id, sender_id, sent_at, key_id, wrapped_key, subject, body)
    values ($1, $2, $3, $4, $5, $6, $7)
    returning id, sent_at
)
insert into message_recipients (message_id, user_id, sent_at)
select id, $8, sent_at from message
"""


# --- the database --------------------------------------------------------------------------


async def prepare_database(
    database_url: str, user_ids: Sequence[uuid.UUID], tokens: Sequence[str]
) -> str:
    """Make the `bare` database beside `database_url`'s, its tables and the users' sessions
    (the same ids and tokens); return its URL."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"create database {DATABASE}")
    finally:
        await conn.close()
    parts = urlsplit(database_url)
    bare_url = urlunsplit(parts._replace(path=f"/{DATABASE}"))
    conn = await asyncpg.connect(bare_url)
    try:
        await conn.execute(SCHEMA)
        expires_at = datetime.now(UTC) + timedelta(days=1)
        await conn.copy_records_to_table(
            "users", columns=["id", "display_name"],
            records=[(user_id, f"Bench user {i}") for i, user_id in enumerate(user_ids)],
        )
        await conn.copy_records_to_table(
            "sessions", columns=["token_hash", "user_id", "expires_at"],
            records=[(hashlib.sha256(token.encode()).digest(), user_id, expires_at)
                     for token, user_id in zip(tokens, user_ids, strict=True)],
        )
        await conn.execute("analyze")
    finally:
        await conn.close()
    return bare_url


# --- the app -------------------------------------------------------------------------------


class Sealer:
    """Seal a message's fields under a fresh data key wrapped under the master key."""

    def __init__(self) -> None:
        master = AESGCM.generate_key(bit_length=256)
        self.key_id = hashlib.sha256(master).hexdigest()[:16]
        self._master = AESGCM(master)

    def seal(self, row: str, subject: str, body: str) -> tuple[bytes, bytes, bytes]:
        """The wrapped data key, the sealed subject, the sealed body."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + self._master.encrypt(nonce, data_key, b"key/" + row.encode())
        cipher = AESGCM(data_key)
        sealed = []
        for name, text in (("subject", subject), ("body", body)):
            nonce = os.urandom(NONCE_BYTES)
            aad = f"field/{row}/{name}".encode()
            sealed.append(nonce + cipher.encrypt(nonce, text.encode(), aad))
        return wrapped, sealed[0], sealed[1]


class Node:
    """The pool, Redis, the open sockets by user, and the pub/sub reader."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.sealer = Sealer()
        self.sockets: dict[bytes, set[WebSocket]] = {}  # by channel
        self.pool: asyncpg.Pool
        self.redis: Redis
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.database_url, min_size=2, max_size=POOL_SIZE, reset=_leave_as_is)
        self.redis = Redis.from_url(self.redis_url, protocol=2)
        pool = self.redis.connection_pool
        self._pubsub = pool.connection_class(**pool.connection_kwargs)
        await self._pubsub.connect()
        self._reader = asyncio.create_task(self._read())
        self._reader.add_done_callback(_say_why_reading_ended)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.disconnect()
        await self.redis.aclose()
        await self.pool.close()

    async def authenticate(self, authorization: str | None) -> asyncpg.Record | None:
        """The sender or socket's user (id, display name) by its bearer token, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        digest = hashlib.sha256(authorization[7:].encode()).digest()
        row: asyncpg.Record | None = await self.pool.fetchrow(AUTHENTICATE, digest)
        return row

    async def hold(self, websocket: WebSocket, user_id: uuid.UUID) -> None:
        """Subscribe the user's channel, answer hello, and keep the socket until it closes."""
        channel = f"{CHANNEL_PREFIX}{user_id}".encode()
        held = self.sockets.setdefault(channel, set())
        if not held:
            await self._pubsub.send_command("SUBSCRIBE", channel, check_health=False)
        held.add(websocket)
        try:
            await websocket.send_text(HELLO)
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            held.discard(websocket)
            if not held:
                del self.sockets[channel]
                with contextlib.suppress(Exception):
                    await self._pubsub.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def _read(self) -> None:
        """Write each published frame to the sockets of its channel's user."""
        read = self._pubsub.read_response
        while True:
            reply = await read(timeout=math.inf, disconnect_on_error=False, push_request=True)
            if isinstance(reply, list) and reply[0] == b"message":
                frame = reply[2].decode()
                for websocket in list(self.sockets.get(reply[1], ())):
                    with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                        await websocket.send_text(frame)


def _say_why_reading_ended(reader: asyncio.Task[None]) -> None:
    """Log (to the bare pipeline's log, which the benchmark shows) a pub/sub reader that
    failed: every frame after it is missing."""
    if not reader.cancelled() and reader.exception() is not None:
        logging.getLogger("bare_send").error("the pub/sub reader failed: %r", reader.exception())


async def _leave_as_is(conn: asyncpg.Connection) -> None:
    """Give a connection back to the pool without a reset query: nothing here changes a
    session's state (the server's pool does the same)."""


def _error(status: int, code: str) -> Response:
    return Response(orjson.dumps({"error": {"code": code}}), status,
                    media_type="application/json")


def _recipient(draft: Any) -> uuid.UUID | None:
    """The one user a draft is addressed to, or None when it is not one user's."""
    if not isinstance(draft, dict) or not isinstance(draft.get("subject"), str) or not (
        isinstance(draft.get("body"), str)
    ):
        return None
    to = draft.get("to")
    if not isinstance(to, list) or len(to) != 1 or not isinstance(to[0], dict):
        return None
    if to[0].get("kind") != "user":
        return None
    try:
        return uuid.UUID(str(to[0].get("id")))
    except ValueError:
        return None


def make_app(node: Node) -> Starlette:
    """The bare app: POST /send, the socket endpoint /ws, and /readyz."""

    async def send(request: Request) -> Response:
        sender = await node.authenticate(request.headers.get("authorization"))
        if sender is None:
            return _error(401, "unauthorized")
        try:
            draft = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_json")
        recipient = _recipient(draft)
        if recipient is None:
            return _error(400, "invalid_request")
        message_id = uuid.uuid4()
        row = f"messages/{message_id}"
        wrapped, subject, body = node.sealer.seal(row, draft["subject"], draft["body"])
        sent_at = datetime.now(UTC)
        try:
            await node.pool.execute(INSERT, message_id, sender[0], sent_at, node.sealer.key_id,
                                    wrapped, subject, body, recipient)
        except asyncpg.ForeignKeyViolationError:
            return _error(404, "not_found")
        summary = {"id": message_id, "subject": draft["subject"], "sent_at": sent_at,
                   "sender": {"id": str(sender[0]), "display_name": sender[1]}}
        frame = orjson.dumps({"type": "message.new", "message": summary})
        await node.redis.publish(f"{CHANNEL_PREFIX}{recipient}", frame)
        return Response(orjson.dumps({"id": message_id, "sent_at": sent_at, "recipients": 1}),
                        201, media_type="application/json")

    async def socket(websocket: WebSocket) -> None:
        user = await node.authenticate(websocket.headers.get("authorization"))
        if user is None:
            await websocket.close(1008)
            return
        await websocket.accept()
        await node.hold(websocket, user[0])

    async def ready(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    return Starlette(routes=[
        Route("/send", send, methods=["POST"]),
        WebSocketRoute("/ws", socket),
        Route("/readyz", ready),
    ], lifespan=lifespan)


def serve(config: dict[str, Any]) -> None:
    """The `serve` program: the bare pipeline on uvicorn with the server's own options."""
    settings = Settings(host=config["host"], port=config["port"], log_level="WARNING")
    options = {**server_options(settings), "ws": config["ws"]}
    app = make_app(Node(config["database_url"], config["redis_url"]))
    uvicorn.Server(uvicorn.Config(app, **options)).run()


@asynccontextmanager
async def bare_server(
    workdir: Path, *, database_url: str, redis_url: str, ws: str
) -> AsyncIterator[tuple[int, Watched]]:
    """The bare pipeline in a process of its own, ready; yields its port and its process."""
    port = harness.free_port()
    log = workdir / f"bare-send-{port}.log"
    config = {"host": harness.HOST, "port": port, "database_url": database_url,
              "redis_url": redis_url, "ws": ws}
    process = await harness.spawn(harness.child_command(HERE, "serve", config), log)
    try:
        await harness.wait_ready(f"http://{harness.HOST}:{port}/readyz", process, log)
        yield port, Watched("server", process.pid)
    finally:
        await harness.stop_process(process, signal.SIGINT)


if __name__ == "__main__":
    if not harness.run_child(sys.argv[1:], {"serve": serve}):
        sys.exit("usage: bare_send.py serve CONFIG (started by sustained.py)")
