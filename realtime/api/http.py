"""What every HTTP handler shares: the services, authentication, parsing, and the error shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import pydantic
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from realtime import codec, crypto
from realtime.accounts import Accounts
from realtime.api.health import Health
from realtime.api.in_flight import InFlight, RequestRate
from realtime.api.refusals import Refusal, Refusals
from realtime.attachments import Attachments
from realtime.audit import Audit, set_requester
from realtime.budgets import Budgets, refusal
from realtime.config import Settings
from realtime.db import DATABASE_FAULTS, Database
from realtime.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PassphraseError,
    RateLimited,
    RealtimeError,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from realtime.files import Files
from realtime.groups import Groups
from realtime.links import Links
from realtime.messaging import Messaging
from realtime.models import AuthContext, User
from realtime.organisation import Organisation
from realtime.system_messages import SystemMessages
from realtime.vault import Vault

log = logging.getLogger(__name__)
SESSION_COOKIE = "session"
MAX_JSON_BODY = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Services:
    """The domain objects the handlers call, built once by the app's lifespan, and what the
    edge keeps beside them: the limits on requests, the refusals held, the node's health."""

    settings: Settings
    db: Database
    accounts: Accounts
    groups: Groups
    messaging: Messaging
    vault: Vault
    files: Files
    attachments: Attachments
    links: Links
    system_messages: SystemMessages
    organisation: Organisation
    audit: Audit
    budgets: Budgets
    in_flight: InFlight
    request_rate: RequestRate
    refusals: Refusals
    health: Health


@dataclass(frozen=True)
class Call:
    """One request, authenticated and parsed as its operation declares; `spent` when its
    operation's budget was taken with the authentication."""

    request: Request
    services: Services
    auth: AuthContext | None
    body: Any = field(repr=False)
    spent: bool = False

    @property
    def user(self) -> User:
        assert self.auth is not None, "this operation does not authenticate"
        return self.auth.user


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Budget:
    """A budget of the user's an operation spends one unit of in the statement that
    authenticates it: its bucket's key prefix, its size a minute, what it counts."""

    prefix: str
    per_minute: int
    what: str


# Which budget a request spends as it is authenticated (None: none, or the handler spends).
Spends = Callable[[Request, Settings], Budget | None]


@dataclass(frozen=True)
class Query:
    """A query parameter, for the OpenAPI document."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One endpoint: how it is reached, what it takes, what it answers."""

    method: str
    path: str
    handler: Handler
    summary: str
    auth: bool = True
    admin: bool = False
    body: type[pydantic.BaseModel] | None = None
    query: tuple[Query, ...] = ()
    responses: Mapping[int, type[pydantic.BaseModel] | None] = field(default_factory=dict)
    headers: tuple[Query, ...] = ()
    database: bool = True  # whether it asks the database: then it may answer 503
    spends: Spends | None = None


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialise a model or plain data with the project's codec."""
    if isinstance(data, pydantic.BaseModel):
        data = data.model_dump(mode="python", exclude_none=False)
    return Response(codec.encode(data), status, headers=headers, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def as_error(exc: Exception) -> RealtimeError:
    """What the client is told of an error, on HTTP and on the websocket: ours as it is; a
    database that is away, saturated or too slow as 503 (nothing was done, try again); anything
    else as a server fault."""
    if isinstance(exc, RealtimeError):
        return exc
    if isinstance(exc, DATABASE_FAULTS):
        return Unavailable(message="the database did not answer in time, try again later")
    return RealtimeError()


def error_response(exc: Exception) -> Response:
    """The contract's error shape for any error: ours, a routing error (no such path, method
    not allowed), a database fault or anything else; a server fault says nothing more."""
    if isinstance(exc, HTTPException) and exc.status_code != 404:
        code = "method_not_allowed" if exc.status_code == 405 else "http_error"
        return _error_json(code, str(exc.detail), exc.status_code, exc.headers or {})
    error = NotFound("no such endpoint") if isinstance(exc, HTTPException) else as_error(exc)
    told = error.status < 500 or isinstance(error, Unavailable)
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited | Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    fields = error.fields if isinstance(error, InvalidInput | TooLarge) else {}
    message = error.message if told else RealtimeError.default_message
    extra = {}
    if isinstance(error, PassphraseError) and error.attempts_left is not None:
        extra["attempts_left"] = error.attempts_left
    return _error_json(error.code, message, error.status, headers, fields, extra)


def _error_json(
    code: str, message: str, status: int, headers: Mapping[str, str],
    fields: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None,
) -> Response:
    detail: dict[str, Any] = {"code": code, "message": message, **(extra or {})}
    if fields:
        detail["fields"] = fields
    return json_response({"error": detail}, status, headers)


def log_error(request: Request, exc: Exception) -> None:
    """Log what the server got wrong: a database away as a warning, our faults as errors."""
    if not isinstance(exc, (RealtimeError, *DATABASE_FAULTS)):
        return  # routing errors are the client's; anything else is logged by the server
    error = as_error(exc)
    if isinstance(error, Unavailable):
        log.warning("unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc).__name__)
    elif error.status >= 500:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path,
                  error.message)


def bind(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    """Make the Starlette endpoint: authenticate, parse, call, turn errors into JSON."""

    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        auth = None
        set_requester(None, client_address(request))
        try:
            with ExitStack() as held:  # the caller's places among the requests in flight
                budget = None
                if operation.auth:
                    budget = operation.spends(request, services.settings) \
                        if operation.spends else None
                    auth, wait = await authenticate(request, services, held, budget)
                    set_requester(auth.user.id, client_address(request))
                    if budget is not None and wait > 0:  # refused as this user's refusal
                        raise refusal(wait, limit=budget.per_minute, what=budget.what)
                    if operation.admin and not auth.user.is_admin:
                        raise Forbidden("administrators only")
                body = await read_model(request, operation.body) if operation.body else None
                call = Call(request, services, auth, body, spent=budget is not None)
                return await operation.handler(call)
        except (RealtimeError, *DATABASE_FAULTS) as exc:
            log_error(request, exc)
            response = error_response(exc)
            if auth is not None and isinstance(exc, (Forbidden, NotFound)):
                with suppress(*DATABASE_FAULTS):  # the refusal stands, recorded or not
                    await services.audit.refused(
                        exc.status, operation.path, _path_uuid(request)
                    )
            if isinstance(exc, RateLimited):  # out of its places in flight by now
                client = auth.user.id if auth is not None else client_address(request)
                held_as = await services.refusals.hold(client)
                if held_as is Refusal.OVERFLOW or (
                    held_as is Refusal.HELD and _large_body(request)  # rather than read it
                ):
                    response.headers["connection"] = "close"
            return response

    endpoint.__name__ = operation.handler.__name__
    return endpoint


def _path_uuid(request: Request) -> UUID | None:
    """The id a path names (`{id}`), when it is one."""
    try:
        return UUID(str(request.path_params.get("id")))
    except ValueError:
        return None


# A client retrying past its refusals with a body larger than this has its connection closed:
# reading the rest of each body only to throw it away would cost the node more than the
# client's new connection.
LARGE_BODY_BYTES = 64 * 1024


def _large_body(request: Request) -> bool:
    length = request.headers.get("content-length", "")
    return request.headers.get("transfer-encoding") is not None or (
        length.isascii() and length.isdigit() and int(length) > LARGE_BODY_BYTES
    )


async def authenticate(
    request: Request, services: Services, held: ExitStack, budget: Budget | None = None
) -> tuple[AuthContext, float]:
    """The session behind the bearer header or the cookie; cookie writes need an allowed Origin.
    With `budget`, one unit of it is taken by the same statement: with the seconds to wait
    for one when none is left (0: taken, or none asked).

    The request takes a place among its token's requests in flight before the session is looked
    up (a flood on one token never reaches the database), then one among its user's."""
    token, by_cookie = credentials(request)
    if token is None:
        raise Unauthenticated("log in first")
    if by_cookie and request.method not in SAFE_METHODS:
        check_origin(request, services.settings, required=True)
    held.enter_context(services.in_flight.hold(crypto.token_digest(token)))
    wait = 0.0
    if budget is None:
        auth = await services.accounts.authenticate(token)
    else:
        auth, wait = await services.accounts.authenticate_spending(
            token, prefix=budget.prefix, per_minute=budget.per_minute
        )
    services.request_rate.take(auth.user.id)
    held.enter_context(services.in_flight.hold(auth.user.id))
    return auth, wait


def client_address(request: HTTPConnection) -> str:
    """The client's address: X-Forwarded-For counts from the trusted proxies only."""
    return request.client.host if request.client else "unknown"


def credentials(request: HTTPConnection) -> tuple[str | None, bool]:
    """The token of a request or handshake, and whether it came from the cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use Authorization: Bearer <token>")
        return token.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def check_origin(request: HTTPConnection, settings: Settings, *, required: bool) -> None:
    """Refuse a foreign Origin; with `required`, a missing one too. Only exact matches pass."""
    origin = request.headers.get("origin")
    if origin is None:
        if required:
            raise Forbidden("a request made with the session cookie must carry its Origin")
        return
    if origin != own_origin(request) and origin not in settings.allowed_origins:
        raise Forbidden("requests from this origin are not allowed")


def own_origin(request: HTTPConnection) -> str:
    """The origin a browser page of this server has: a websocket's ws(s) counts as http(s)."""
    host = request.headers.get("host", "")
    scheme = {"ws": "http", "wss": "https"}.get(request.url.scheme, request.url.scheme)
    return f"{scheme}://{host}"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[ModelT]) -> ModelT:
    """Parse and validate a JSON body; every fault becomes a 400 naming its field."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidInput("the body must be JSON (Content-Type: application/json)")
    raw = await read_body(request, MAX_JSON_BODY)
    try:
        return model.model_validate_json(raw or b"null", strict=True)
    except pydantic.ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: pydantic.ValidationError) -> InvalidInput:
    """Turn pydantic's errors into field errors, never echoing the input."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        if error["type"] == "json_invalid":
            return InvalidInput("the body is not valid JSON")
        location = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "union_tag_invalid":
            # pydantic's message quotes the tag that was sent; say only what is allowed.
            expected = error.get("ctx", {}).get("expected_tags", "")
            message = f"kind must be one of {expected}"
        if not location:
            return InvalidInput(f"the body is not valid: {message}")
        fields.setdefault(location, message)
    return InvalidInput("some fields are not valid", fields)


def _is_union_tag(part: object) -> bool:
    """Discriminated unions add the tag (`credential`, ...) to the error location."""
    return isinstance(part, str) and part in {"credential", "entry", "folder", "file"}


def path_id(request: Request, name: str = "id") -> UUID:
    """An id from the path, in the hyphenated form ids are given out in; anything else names
    nothing, so 404."""
    value = request.path_params[name]
    try:
        parsed = UUID(value)
    except ValueError:
        raise NotFound("not found") from None
    if str(parsed) != value.lower():
        raise NotFound("not found")
    return parsed


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    # ASCII digits only, and few of them: int() refuses "²" and numbers of over 4300 digits.
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or not (
        low <= int(value) <= high
    ):
        raise InvalidInput(f"{name} is not valid", {name: f"a whole number from {low} to {high}"})
    return int(value)


def query_flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value not in FLAG_VALUES:
        raise InvalidInput(f"{name} is not valid", {name: "0 or 1"})
    return value in ("1", "true")


FLAG_VALUES = ("0", "1", "true", "false")


def flag_query(name: str, description: str) -> Query:
    """A yes-or-no query parameter, for the OpenAPI document."""
    return Query(name, {"type": "string", "enum": list(FLAG_VALUES)}, description)
