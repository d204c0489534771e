"""The HTTP API's request and response models: they validate input and make the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field

from realtime.api.fields import (
    AccountPassword,
    Body,
    DisplayName,
    GroupName,
    Id,
    LoginName,
    LoginPassword,
    LongText,
    Moment,
    Request,
    Response,
    ShortText,
    Subject,
    SystemBody,
    SystemSubject,
    Title,
    Username,
    integral,
)
from realtime.drafts import MAX_ADDRESSEES, MAX_ATTACHMENTS
from realtime.models import LARGEST_FILE_MB
from realtime.organisation import LONGEST_LIFETIME, SHORTEST_LIFETIME

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
    password: LoginPassword = Field(repr=False)


class Me(Response):
    id: UUID
    username: str
    display_name: str
    is_admin: bool
    can_send: bool
    can_attach: bool
    can_share_links: bool


class MyAccount(Me):
    can_email_links: bool = Field(
        description="Send by email is offered: can_share_links, and a mail relay is set up"
    )
    max_file_mb: int = Field(
        description="the largest file the caller may upload, in MiB (the organisation's)"
    )
    max_lifetime: int | None = Field(
        description="seconds: every message and link the caller makes expires within it"
        " (the organisation's); null: no maximum"
    )


class LoginResponse(Response):
    token: str = Field(repr=False)
    user: MyAccount


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
    password: str = Field(repr=False)
    entropy_bits: float


# Messages


class TargetIn(Request):
    kind: Literal["user", "group"]
    id: Id


class CredentialIn(Request):
    kind: Literal["credential"]
    title: Title
    username: ShortText = ""
    password: LongText = Field(default="", repr=False)
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


class SaveRequest(Request):
    folder_id: Id | None = None


class SaveResponse(Response):
    entry_ids: list[UUID]
    folder_ids: list[UUID] = Field(description="the folders created for folder attachments")


class MessageList(Response):
    messages: list[Summary]
    next: str | None


class ReadResponse(Response):
    read_at: datetime


class UnreadResponse(Response):
    count: int
    high_priority: list[Summary]


# Administration


class AdminUser(Me):
    disabled: bool
    created_at: datetime


class ListedUser(AdminUser):
    online: bool = Field(description="an open socket on any node now")
    last_seen_at: datetime | None = Field(
        description="when last connected or using a session; null: never"
    )


class UserList(Response):
    users: list[ListedUser]
    next: str | None = Field(description="the cursor of the next page; null: this is the last")


class CreateUserRequest(Request):
    username: Username
    display_name: DisplayName | None = None
    password: AccountPassword = Field(repr=False)
    is_admin: bool = False
    can_send: bool = True
    can_attach: bool = True
    can_share_links: bool = True


class UpdateUserRequest(Request):
    """Each field given changes; a field left out or null stays as it is."""

    display_name: DisplayName | None = None
    password: AccountPassword | None = Field(default=None, repr=False)
    is_admin: bool | None = None
    can_send: bool | None = None
    can_attach: bool | None = None
    can_share_links: bool | None = None
    disabled: bool | None = None


class GroupMemberOut(Response):
    id: UUID
    username: str
    display_name: str


class GroupOut(Response):
    id: UUID
    name: str
    member_ids: list[UUID]
    members: list[GroupMemberOut] = Field(description="the members' names, in member_ids' order")


class GroupList(Response):
    groups: list[GroupOut]


class CreateGroupRequest(Request):
    name: GroupName
    member_ids: list[Id] = Field(default=[], max_length=10_000)


class MembersRequest(Request):
    member_ids: list[Id] = Field(max_length=10_000)


# System messages


SendMessages = Literal["with_attachments", "without_attachments", "not_allowed"]


class OrganisationSettingsOut(Response):
    send_messages: SendMessages
    share_links: bool
    max_file_mb: int = Field(description="the largest file, in MiB (1 to 25)")
    max_lifetime: int | None = Field(
        description="seconds: every message and link expires within it; null: no maximum"
    )


FileMegabytes = Annotated[int, Field(ge=1, le=LARGEST_FILE_MB), BeforeValidator(integral)]
LifetimeSeconds = Annotated[int, Field(
    ge=int(SHORTEST_LIFETIME.total_seconds()), le=int(LONGEST_LIFETIME.total_seconds())
), BeforeValidator(integral)]


class ChangeOrganisationSettingsRequest(Request):
    """Each field given changes; one left out stays as it is. `max_lifetime: null` removes the
    maximum lifetime."""

    send_messages: SendMessages | None = None
    share_links: bool | None = None
    max_file_mb: FileMegabytes | None = Field(default=None, description="the largest file, in MiB")
    max_lifetime: LifetimeSeconds | None = Field(
        default=None, description="seconds; null: no maximum"
    )


class SystemMessageRequest(Request):
    subject: SystemSubject
    body: SystemBody = ""
    mode: Literal["dismissible", "reminder"]
    ends_at: Moment | None = Field(
        default=None, description="RFC 3339 with a time zone, in the future; null: until withdrawn"
    )


class SystemMessageOut(Response):
    id: UUID
    subject: str
    body: str
    mode: Literal["dismissible", "reminder"]
    created_at: datetime
    ends_at: datetime | None


class SystemMessageList(Response):
    messages: list[SystemMessageOut]


# Operations


class Health(Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}



class OpenAPIDocument(Response):
    model_config = ConfigDict(frozen=True, extra="allow")

    openapi: str


class AuditActor(Response):
    id: UUID
    username: str | None


class AuditTarget(Response):
    kind: str
    id: UUID


class AuditRecordOut(Response):
    id: str
    at: datetime
    actor: AuditActor | None = Field(description="null: the server itself")
    action: str
    target: AuditTarget | None
    address: str | None
    outcome: str = Field(description="ok, failed or refused")
    detail: dict[str, Any] = Field(description="metadata only: counts, flags, reasons")
    position: int | None = Field(description="its place in the chain; null until chained")
    prev_hash: str | None = Field(description="hex SHA-256 of the record before it in the chain")
    hash: str | None = Field(description="hex SHA-256 over prev_hash and this record's fields")


class AuditPage(Response):
    records: list[AuditRecordOut]
    next: str | None
