"""The HTTP API's request and response models: they validate input and make the OpenAPI document."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from realtime.accounts import USERNAME_PATTERN
from realtime.drafts import MAX_ADDRESSEES, MAX_ATTACHMENTS

NO_NUL = "^[^\u0000]*$"
NO_CONTROL = "^[^\u0000-\u001f\u007f]*$"
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


def _refuse_control(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
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
ShortText = Annotated[str, _text(0, 1024), NulFree]
LongText = Annotated[str, _text(0, 4096), NulFree]


class Request(BaseModel):
    """A request body: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# Errors


class ErrorDetail(Response):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorBody(Response):
    error: ErrorDetail


# Accounts


class LoginRequest(Request):
    username: LoginName
    password: LoginPassword


class Me(Response):
    id: UUID
    username: str
    display_name: str
    is_admin: bool
    can_send: bool
    can_attach: bool


class LoginResponse(Response):
    token: str
    user: Me


class DirectoryUser(Response):
    kind: Literal["user"]
    id: UUID
    username: str
    display_name: str


class DirectoryGroup(Response):
    kind: Literal["group"]
    id: UUID
    name: str
    members: int = Field(description="how many enabled users the group holds")


class DirectoryResponse(Response):
    results: list[Annotated[DirectoryUser | DirectoryGroup, Field(discriminator="kind")]]


class PasswordResponse(Response):
    password: str
    entropy_bits: float


# Messages


class TargetIn(Request):
    kind: Literal["user", "group"]
    id: Id


class CredentialIn(Request):
    kind: Literal["credential"]
    title: Title
    username: ShortText = ""
    password: LongText = ""
    url: LongText = ""
    notes: Body = ""


class EntryIn(Request):
    kind: Literal["entry"]
    entry_id: Id


class FolderIn(Request):
    kind: Literal["folder"]
    folder_id: Id


class FileIn(Request):
    kind: Literal["file"]
    upload_id: Id


AttachmentIn = Annotated[CredentialIn | EntryIn | FolderIn | FileIn, Field(discriminator="kind")]


class SendRequest(Request):
    to: list[TargetIn] = Field(min_length=1, max_length=MAX_ADDRESSEES)
    subject: Subject
    body: Body = ""
    expires_at: Moment | None = Field(
        default=None, description="RFC 3339 with a time zone, in the future"
    )
    high_priority: bool = False
    reply_to: Id | None = None
    attachments: list[AttachmentIn] = Field(default=[], max_length=MAX_ATTACHMENTS)


class SendResponse(Response):
    id: UUID
    sent_at: datetime
    recipients: int = Field(description="how many users received the message")


class Person(Response):
    id: UUID
    display_name: str


class AddresseeOut(Response):
    kind: Literal["user", "group"]
    id: UUID
    name: str


class AttachmentOut(Response):
    id: UUID
    kind: Literal["credential", "entry", "folder", "file"]
    name: str
    size: int | None


class Summary(Response):
    id: UUID
    sender: Person
    recipients: list[AddresseeOut] | None = Field(
        default=None, description="the To field; only for the message's sender"
    )
    recipient_count: int | None = Field(default=None, description="only for the sender")
    read_count: int | None = Field(default=None, description="only for the sender")
    subject: str
    sent_at: datetime
    expires_at: datetime | None
    high_priority: bool
    read_at: datetime | None
    reply_to: UUID | None
    attachments: list[AttachmentOut]


class Detail(Summary):
    body: str


class MessageList(Response):
    messages: list[Summary]
    next: str | None


class ReadResponse(Response):
    read_at: datetime


class UnreadResponse(Response):
    count: int
    high_priority: list[Summary]


# Administration


class AdminUser(Response):
    id: UUID
    username: str
    display_name: str
    is_admin: bool
    can_send: bool
    can_attach: bool
    disabled: bool
    created_at: datetime


class UserList(Response):
    users: list[AdminUser]


class CreateUserRequest(Request):
    username: Username
    display_name: DisplayName | None = None
    password: AccountPassword
    is_admin: bool = False
    can_send: bool = True
    can_attach: bool = True


class UpdateUserRequest(Request):
    """Each field given changes; a field left out or null stays as it is."""

    display_name: DisplayName | None = None
    password: AccountPassword | None = None
    is_admin: bool | None = None
    can_send: bool | None = None
    can_attach: bool | None = None
    disabled: bool | None = None


class GroupOut(Response):
    id: UUID
    name: str
    member_ids: list[UUID]


class GroupList(Response):
    groups: list[GroupOut]


class CreateGroupRequest(Request):
    name: GroupName
    member_ids: list[Id] = Field(default=[], max_length=10_000)


class MembersRequest(Request):
    member_ids: list[Id] = Field(max_length=10_000)


# Operations


class Health(Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}



class OpenAPIDocument(Response):
    model_config = ConfigDict(frozen=True, extra="allow")

    openapi: str
