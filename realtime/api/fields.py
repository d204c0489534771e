"""The field types and base models of the API's schemas: what a valid id, time or text is."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from realtime.accounts import USERNAME_PATTERN
from realtime.errors import InvalidInput
from realtime.system_messages import MAX_BODY as MAX_SYSTEM_BODY
from realtime.system_messages import MAX_SUBJECT as MAX_SYSTEM_SUBJECT

NO_NUL = "^[^\u0000]*$"
# C0, DEL and C1: characters that move a terminal's cursor or start its escape sequences.
NO_CONTROL = "^[^\u0000-\u001f\u007f-\u009f]*$"
_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
# What the document's `format: date-time` and `format: uuid` promise: RFC 3339 (`T` and `Z` in
# either case) and the hyphenated UUID. Pydantic alone also takes "2026-11-21 10:00Z", Unix times
# in strings, and UUIDs without hyphens, in braces or as URNs.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r"(?P<zone>[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
_UUID = re.compile(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}", re.ASCII)


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def has_control(value: str) -> bool:
    """Whether the text holds a C0 or C1 control character or DEL."""
    return _CONTROL.search(value) is not None


def _refuse_control(value: str) -> str:
    if has_control(value):
        raise ValueError("must not contain control characters")
    return value


def _rfc3339(value: object) -> object:
    """Read an RFC 3339 time (any case, any fraction); refuse the other spellings pydantic takes."""
    if not isinstance(value, str):
        return value
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError("must be an RFC 3339 time with its zone, such as 2026-11-21T10:00:00Z")
    fraction = (match["fraction"] or "")[:7]  # the dot and microseconds; finer is dropped
    return datetime.fromisoformat(
        f"{match['date']}T{match['time']}{fraction}{match['zone'].upper()}"
    )


def _hyphenated_uuid(value: object) -> object:
    if isinstance(value, str) and not _UUID.fullmatch(value):
        raise ValueError("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000")
    return value


def _text(min_length: int, max_length: int) -> Any:
    """Length limits in characters, and a pattern telling that NUL is refused."""
    return Field(
        min_length=min_length, max_length=max_length, json_schema_extra={"pattern": NO_NUL}
    )


def _name(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": NO_CONTROL})


NulFree = AfterValidator(_refuse_nul)
OneLine = AfterValidator(_refuse_control)

Id = Annotated[UUID, BeforeValidator(_hyphenated_uuid)]
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

Username = Annotated[
    str, Field(pattern=USERNAME_PATTERN, description="letters, digits and . _ @ -")
]
LoginName = Annotated[str, _text(1, 256), NulFree]
AccountPassword = Annotated[str, _text(8, 1024), NulFree]
LoginPassword = Annotated[str, _text(1, 1024), NulFree]
DisplayName = Annotated[str, _name(100), OneLine]
GroupName = Annotated[str, _name(100), OneLine]
Subject = Annotated[str, _text(1, 255), NulFree]
Body = Annotated[str, _text(0, 65536), NulFree]
Title = Annotated[str, _text(1, 255), NulFree]
SystemSubject = Annotated[str, _text(1, MAX_SYSTEM_SUBJECT), NulFree]
SystemBody = Annotated[str, _text(0, MAX_SYSTEM_BODY), NulFree]
ShortText = Annotated[str, _text(0, 1024), NulFree]
LongText = Annotated[str, _text(0, 4096), NulFree]
# A link's token and passphrase: their exact rules are the domain's (a wrong one is not found,
# a passphrase of the wrong length is a field error), these only bound what is read.
LinkToken = Annotated[str, _text(1, 256), NulFree]
Passphrase = Annotated[str, _text(1, 1024), NulFree]
NewPassphrase = Annotated[str, _text(8, 128), NulFree]  # a new link's
EmailAddress = Annotated[str, _text(1, 320), NulFree]
Note = Annotated[str, _text(0, 1000), NulFree]


class Request(BaseModel):
    """A request body: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)



def integral(value: Any) -> Any:
    """A number JSON writes with a zero fraction (`3600.0`) is the integer it equals, as JSON
    Schema's `integer` says; any other value is left to the strict check. For a whole number's
    `BeforeValidator`, after its bounds (so that the document shows them)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def query_time(value: str, name: str) -> datetime:
    """An RFC 3339 time given in a query parameter; else 400 naming it."""
    try:
        parsed = _rfc3339(value)
    except ValueError:
        raise InvalidInput("not a time", {name: "an RFC 3339 time with its zone"}) from None
    assert isinstance(parsed, datetime)
    return parsed


def query_uuid(value: str, name: str) -> UUID:
    """A hyphenated UUID given in a query parameter; else 400 naming it."""
    if not _UUID.fullmatch(value):
        raise InvalidInput("not an id", {name: "a UUID"})
    return UUID(value)
