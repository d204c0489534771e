"""The application: `create_app(settings)`, with a lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime import api, metrics
from realtime.accounts import Accounts
from realtime.api.client import client_routes
from realtime.api.headers import security_headers
from realtime.api.health import Health
from realtime.api.http import Services, error_response, log_error
from realtime.api.in_flight import InFlight, RequestRate
from realtime.api.refusals import Refusals
from realtime.attachments import Attachments
from realtime.audit import Audit, Chainer
from realtime.broker import create_broker
from realtime.budgets import Budgets
from realtime.config import Settings, load_settings
from realtime.crypto import BrokerSeal, Keyring
from realtime.db import Database, open_database
from realtime.errors import RealtimeError
from realtime.events import EventLog, EventSink
from realtime.expiry import Expirer, measure_backlog
from realtime.files import Files, UploadLimits
from realtime.groups import Groups
from realtime.keyfile import load_keyring, run_key_watch
from realtime.link_content import LinkContent
from realtime.links import LinkLimits, Links
from realtime.live.hub import Hub
from realtime.live.publisher import Publisher
from realtime.live.render import Renderer
from realtime.mail import Mailer
from realtime.messaging import Messaging
from realtime.migrate import apply_migrations
from realtime.organisation import Organisation
from realtime.presence import Presence
from realtime.rotation import load_fingerprint_key
from realtime.system_messages import SystemMessages
from realtime.vault import Vault
from realtime.vault_limits import VaultLimits
from realtime.worker_metrics import WorkerMetrics
from realtime.ws import SERVER_SEND, Live, websocket_endpoint

log = logging.getLogger(__name__)


# Methods named in the metrics; any other is counted as "other", so labels stay few.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def package_version() -> str:
    try:
        return version("realtime")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings | None = None, *, expire: bool = True) -> Starlette:
    """Build the app; resources are opened by its lifespan, in order, and closed in reverse.

    `expire=False` leaves expiry to the other nodes on the same database (every node of a
    deployment runs the expirer; the test suite's in-process app does not).
    """
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            exposition, shared = metrics.exposition, None
            if settings.worker_metrics_dir is not None:  # the last to stop: every count is in
                shared = await stack.enter_async_context(
                    WorkerMetrics.joined(settings.worker_metrics_dir, metrics.REGISTRY)
                )
                exposition = shared.exposition
            keyring = load_keyring(settings)
            await start_owned_task(stack, run_key_watch(keyring, settings), "key-watch")
            db = await stack.enter_async_context(open_database(settings))
            async with db.unbounded() as conn:
                await apply_migrations(conn)
            await load_fingerprint_key(db, keyring)
            sink = EventSink()  # the live wing attaches to it below
            audit = Audit(db, enabled=settings.audit)
            accounts = Accounts(db, settings, sink, audit)
            generated = await accounts.ensure_first_admin(settings.admin_password)
            if generated is not None:
                announce_first_admin(generated)
            budgets = Budgets(db)
            files = Files(db, keyring, upload_limits(settings))
            vault = Vault(db, keyring, files, vault_limits(settings))
            attachments = Attachments(db, keyring, vault, files, audit)
            expirer = Expirer(db, settings, sink, audit) if expire else None
            messaging = Messaging(
                db, keyring, attachments, sink=sink,
                budgets=budgets, sends_per_minute=settings.sends_per_minute,
                copies_per_minute=settings.copies_per_minute,
                expiry_scheduled=expirer.expiry_scheduled if expirer is not None else None,
                audit=audit,
            )
            if settings.smtp_url and not settings.public_url:
                log.warning(
                    "links sent by email are made of the Host each request names: set "
                    "REALTIME_PUBLIC_URL to the address people reach this server at"
                )
            links = Links(
                db, keyring, LinkContent(db, keyring, files), sink=sink, budgets=budgets,
                limits=link_limits(settings), mailer=Mailer.from_settings(settings),
                link_scheduled=expirer.expiry_scheduled if expirer is not None else None,
                audit=audit,
            )
            system_messages = SystemMessages(
                db, keyring, sink=sink,
                end_scheduled=expirer.expiry_scheduled if expirer is not None else None,
                audit=audit,
            )
            app.state.live = await start_live_delivery(
                stack, settings, db, accounts, messaging, system_messages, sink, keyring
            )
            if expirer is not None:
                await start_owned_task(stack, expirer.run(), "expirer")
                chainer = Chainer(db, retention=settings.audit_retention,
                                  log_records=settings.audit_log == "stdout")
                await start_owned_task(stack, chainer.run(), "audit-chainer")
            health = Health(
                database_answers=db.ping,
                broker=app.state.live.hub.broker,
                measure_backlog=partial(measure_backlog, db),
                exposition=exposition,
            )
            if shared is not None:
                shared.measure_with(health.measure_broker)
            app.state.services = Services(
                settings=settings,
                db=db,
                accounts=accounts,
                groups=Groups(db, audit),
                messaging=messaging,
                vault=vault,
                files=files,
                attachments=attachments,
                links=links,
                system_messages=system_messages,
                organisation=Organisation(db, audit),
                audit=audit,
                budgets=budgets,
                in_flight=InFlight(settings.requests_in_flight_per_user),
                request_rate=RequestRate(settings.requests_per_minute),
                refusals=Refusals(
                    settings.refusal_pause.total_seconds(), settings.refusals_held_per_client
                ),
                health=health,
            )
            yield

    app = Starlette(
        routes=[*api.routes(), WebSocketRoute("/ws", websocket_endpoint), *client_routes()],
        lifespan=lifespan,
        # One answer for every error; Starlette needs the types named apart: routing errors
        # and ours are answered inside the middleware, anything else outside it.
        exception_handlers={
            HTTPException: _answer_error,
            RealtimeError: _answer_error,
            Exception: _answer_error,
        },
    )
    app.state.settings = settings
    app.state.openapi = api.openapi_document(package_version())
    app.add_middleware(ResponseHeaders)
    return app


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(
        in_flight_bytes=settings.upload_bytes_in_flight,
        stored_bytes=settings.stored_bytes_per_user,
        idle_timeout=settings.upload_idle_timeout.total_seconds(),
        bytes_per_minute=settings.upload_bytes_per_minute,
    )


def link_limits(settings: Settings) -> LinkLimits:
    return LinkLimits(
        per_hour=settings.links_per_hour,
        opens_per_minute=settings.link_opens_per_minute,
        stored_bytes=settings.stored_bytes_per_user,
    )


def vault_limits(settings: Settings) -> VaultLimits:
    return VaultLimits(
        max_entries=settings.vault_max_entries,
        max_folders=settings.vault_max_folders,
        max_depth=settings.vault_max_depth,
        copy_max_bytes=settings.folder_copy_max_bytes,
    )


async def start_live_delivery(
    stack: AsyncExitStack, settings: Settings, db: Database, accounts: Accounts,
    messaging: Messaging, system_messages: SystemMessages, sink: EventSink, keyring: Keyring,
) -> Live:
    """The renderer, the hub with its broker, and the publisher consuming `sink`; at shutdown
    the publisher stops first (what was committed goes out), then sockets close, then the
    broker."""
    renderer = Renderer(messaging, EventLog(db), system_messages)
    hub = Hub(
        broker=partial(
            create_broker,
            settings.redis_url,
            seal=BrokerSeal(keyring),
            prefix=settings.redis_prefix,
            timeout=settings.redis_timeout.total_seconds(),
        ),
        replay=renderer.replay,
        session_alive=accounts.session_alive,
        max_sockets_per_user=settings.max_sockets_per_user,
        session_deadline=accounts.session_deadline,
    )
    await hub.broker.start()
    stack.push_async_callback(hub.broker.close)
    stack.push_async_callback(hub.close_all)
    presence = Presence(db, hub.online_users)
    presence.start()
    stack.push_async_callback(presence.close)  # the node's users were last seen as it stops
    publisher = Publisher(renderer.render, hub.broker, sink)
    publisher.start()
    stack.push_async_callback(publisher.close)  # first at shutdown: what was committed goes out
    return Live(hub, renderer)


async def start_owned_task(
    stack: AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """Run `work` until the stack closes; then cancel it, re-raising its error if it died."""
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    return task


def announce_first_admin(password: str) -> None:
    """Show the generated password of the first account once, on the console, never in logs."""
    print(
        "\n  Created the first account: username 'admin', password "
        f"{password}\n  It is shown only now: log in and change it.\n",
        file=sys.stdout,
        flush=True,
    )


async def _answer_error(request: Request, exc: Exception) -> Response:
    """The contract's JSON for an error no handler answered. The last resort (an unexpected
    error) is answered outside the middleware, so the security headers are added here."""
    log_error(request, exc)
    response = error_response(exc)
    for name, value in security_headers(request.url.scheme):
        response.headers.setdefault(name.decode(), value.decode())
    return response


class ResponseHeaders:
    """Add the security headers to every HTTP response and count it in the metrics.

    The scheme is the one uvicorn settled: X-Forwarded-Proto counts from trusted proxies only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # A refused handshake's headers: see ws.py. The server's own send, for the socket's
            # frames to skip the wrappers the framework puts around it.
            scope[SERVER_SEND] = send
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers = security_headers(scope["scheme"])

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _add_missing_headers(message, headers)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")  # the template: never the raw path
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            metrics.http_requests.labels(path, method, str(status)).inc()
            metrics.http_request_seconds.labels(path, method, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


def _add_missing_headers(start: Message, headers: list[tuple[bytes, bytes]]) -> None:
    """Add the headers the response does not set itself."""
    own = start.get("headers", [])
    present = {name for name, _ in own}
    start["headers"] = [*own, *((name, value) for name, value in headers if name not in present)]
