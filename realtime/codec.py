"""The one wire format: JSON encoded and decoded by orjson, times in RFC 3339 UTC."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson

from realtime.errors import InvalidInput

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
# Above this many items (entries to seal or open), or bytes, work runs in a worker thread.
OFF_LOOP_ITEMS = 64
OFF_LOOP_BYTES = 64 * 1024
# Threads of their own: large encodes never queue the password hashing of logins, which runs in
# the default executor.
_ENCODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="realtime-encode")
T = TypeVar("T")


async def off_loop(work: Callable[[], T], *, items: int = 0, size: int = 0) -> T:
    """Run `work` (encoding, sealing or opening `items` things, or `size` bytes) in a worker
    thread when it is large, so that a large folder never stalls the event loop; a small one
    runs at once, sparing the thread hop."""
    if items > OFF_LOOP_ITEMS or size > OFF_LOOP_BYTES:
        return await asyncio.get_running_loop().run_in_executor(_ENCODERS, work)
    return work()


def _fallback(value: Any) -> Any:
    """What orjson does not know natively: UUID subclasses (asyncpg returns its own)."""
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(value: Any) -> bytes:
    """Serialise a JSON value; datetimes become RFC 3339 with a `Z`, UUIDs strings."""
    return orjson.dumps(value, default=_fallback, option=_OPTIONS)


def encode_canonical(value: Any) -> bytes:
    """As `encode`, with every object's keys sorted: the same value always gives the same bytes
    (for hashing)."""
    return orjson.dumps(value, default=_fallback, option=_OPTIONS | orjson.OPT_SORT_KEYS)


def decode(data: bytes | str) -> Any:
    """Parse JSON, raising InvalidInput for anything that is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not valid JSON") from None


def format_time(moment: datetime) -> str:
    """Format a moment as RFC 3339 UTC with a `Z`."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def encode_cursor(parts: list[Any]) -> str:
    """Pack a list of JSON values into an opaque, URL-safe cursor."""
    return base64.urlsafe_b64encode(encode(parts)).decode().rstrip("=")


def cursor_error(name: str = "before") -> InvalidInput:
    """The error for a cursor this server did not make, naming the parameter it came in."""
    return InvalidInput("the cursor is not valid", {name: "not a cursor from this server"})


def decode_cursor(cursor: str, name: str = "before") -> list[Any]:
    """Unpack a cursor made by `encode_cursor`; anything else is InvalidInput naming `name`."""
    bad = cursor_error(name)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise bad from None
    try:
        parts = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad from None
    if not isinstance(parts, list):
        raise bad
    return parts
