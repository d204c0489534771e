"""The HTTP API's request and response models: they validate input and make the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from realtime.messaging import MAX_ATTACHMENTS

NO_NUL = "^[^\u0000]*$"
NO_CONTROL = "^[^\u0000-\u001f\u007f]*$"
USERNAME = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _refuse_control(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
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

Username = Annotated[str, Field(pattern=USERNAME, description="letters, digits and . _ @ -")]
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
    id: UUID


class CredentialIn(Request):
    kind: Literal["credential"]
    title: Title
    username: ShortText = ""
    password: LongText = ""
    url: LongText = ""
    notes: Body = ""


class EntryIn(Request):
    kind: Literal["entry"]
    entry_id: UUID


class FolderIn(Request):
    kind: Literal["folder"]
    folder_id: UUID


class FileIn(Request):
    kind: Literal["file"]
    upload_id: UUID


AttachmentIn = Annotated[CredentialIn | EntryIn | FolderIn | FileIn, Field(discriminator="kind")]


class SendRequest(Request):
    to: list[TargetIn] = Field(min_length=1, max_length=1000)
    subject: Subject
    body: Body = ""
    expires_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with a time zone, in the future"
    )
    high_priority: bool = False
    reply_to: UUID | None = None
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
    member_ids: list[UUID] = Field(default=[], max_length=10_000)


class MembersRequest(Request):
    member_ids: list[UUID] = Field(max_length=10_000)


# Operations


class Health(Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}



class OpenAPIDocument(Response):
    model_config = ConfigDict(frozen=True, extra="allow")

    openapi: str
