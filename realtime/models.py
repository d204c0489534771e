"""Frozen dataclasses and enums shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID


class EventType(StrEnum):
    MESSAGE_NEW = "message.new"
    MESSAGE_READ = "message.read"
    MESSAGE_DELETED = "message.deleted"
    LINK_VIEWED = "link.viewed"
    LINK_DELETED = "link.deleted"
    SYSTEM_MESSAGE = "system.message"
    SYSTEM_WITHDRAWN = "system.withdrawn"
    SYSTEM_DISMISSED = "system.dismissed"


class DeleteReason(StrEnum):
    EXPIRED = "expired"
    RECALLED = "recalled"
    DELETED = "deleted"


class SystemMode(StrEnum):
    """How a system message leaves: dismissed for good, or shown again at each sign-in."""

    DISMISSIBLE = "dismissible"
    REMINDER = "reminder"


class SystemEnd(StrEnum):
    """Why a system message is no longer shown to anyone."""

    WITHDRAWN = "withdrawn"
    ENDED = "ended"


class Box(StrEnum):
    INBOX = "inbox"
    SENT = "sent"


class AddresseeKind(StrEnum):
    USER = "user"
    GROUP = "group"


class SendRight(StrEnum):
    """What the organisation lets its users send."""

    WITH_ATTACHMENTS = "with_attachments"
    WITHOUT_ATTACHMENTS = "without_attachments"
    NOT_ALLOWED = "not_allowed"


MIB = 1024 * 1024
LARGEST_FILE_MB = 25  # the largest file any setting allows, in MiB


@dataclass(frozen=True)
class OrganisationSettings:
    """The organisation's policy; the defaults restrict nothing. `max_file_mb` is in MiB."""

    send_messages: SendRight = SendRight.WITH_ATTACHMENTS
    share_links: bool = True
    max_file_mb: int = LARGEST_FILE_MB
    max_lifetime: timedelta | None = None

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * MIB


@dataclass(frozen=True)
class User:
    """An account. Authenticated, its rights are its effective ones (its own flags, lowered by
    `organisation`, the settings in force then); listed or looked up, its own flags."""

    id: UUID
    username: str
    display_name: str
    is_admin: bool
    can_send: bool
    can_attach: bool
    disabled: bool
    created_at: datetime
    can_share_links: bool = True
    organisation: OrganisationSettings = OrganisationSettings()


@dataclass(frozen=True)
class ListedUser:
    """An account as the administrators' list shows it: whether it has an open socket on any
    node now, and when it was last seen (None: never)."""

    user: User
    online: bool
    last_seen_at: datetime | None


@dataclass(frozen=True)
class UserSearch:
    """Which accounts to list: a prefix of the username or display name (lower case), each
    flag wanted as given (None: either), and the lower-case username the page starts after."""

    prefix: str | None = None
    is_admin: bool | None = None
    disabled: bool | None = None
    can_send: bool | None = None
    online: bool | None = None
    after: str | None = None


def under_organisation(user: User, organisation: OrganisationSettings) -> User:
    """The user with their effective rights: their own flags, lowered by the organisation's."""
    return replace(
        user,
        can_send=user.can_send and organisation.send_messages is not SendRight.NOT_ALLOWED,
        can_attach=user.can_attach
        and organisation.send_messages is SendRight.WITH_ATTACHMENTS,
        can_share_links=user.can_share_links and organisation.share_links,
        organisation=organisation,
    )


@dataclass(frozen=True)
class Credentials:
    """A user with the hash their password is checked against."""

    user: User
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class AuthContext:
    """Who a request speaks for, through which session, and when that session ends at the
    latest unless seen again (seconds since the epoch)."""

    user: User
    session_id: UUID
    deadline: float


@dataclass(frozen=True)
class NewSession:
    """A session just opened: the token is shown to its owner once and never stored."""

    token: str = field(repr=False)
    session_id: UUID
    user: User
    expires_at: datetime


@dataclass(frozen=True)
class GroupMember:
    id: UUID
    username: str
    display_name: str


@dataclass(frozen=True)
class Group:
    id: UUID
    name: str
    members: tuple[GroupMember, ...]  # in id order

    @property
    def member_ids(self) -> tuple[UUID, ...]:
        return tuple(member.id for member in self.members)


@dataclass(frozen=True)
class DirectoryEntry:
    kind: AddresseeKind
    id: UUID
    name: str
    username: str | None = None
    members: int | None = None


@dataclass(frozen=True)
class Addressee:
    """One entry of a message's To field, as the sender wrote it."""

    kind: AddresseeKind
    id: UUID
    name: str


@dataclass(frozen=True)
class SealedKey:
    """A data key wrapped under the master key named by `key_id`."""

    key_id: str
    wrapped: bytes = field(repr=False)


@dataclass(frozen=True)
class MessageHeader:
    """What every view of a message shares, without its secrets."""

    id: UUID
    sender_id: UUID
    sender_display_name: str
    sent_at: datetime
    expires_at: datetime | None
    high_priority: bool
    reply_to: UUID | None
    read_at: datetime | None
    is_sender: bool
    is_recipient: bool
    recipient_count: int
    read_count: int


@dataclass(frozen=True)
class SealedMessage:
    """A message as the store keeps it: its header plus sealed fields."""

    header: MessageHeader
    key: SealedKey
    subject: bytes = field(repr=False)
    body: bytes | None = field(default=None, repr=False)
    addressees: tuple[Addressee, ...] = ()


@dataclass(frozen=True)
class Message:
    """A message opened for one reader."""

    header: MessageHeader
    subject: str
    body: str | None = None
    addressees: tuple[Addressee, ...] = ()
    attachments: tuple[AttachmentInfo, ...] = ()


@dataclass(frozen=True)
class MessagePage:
    messages: tuple[Message, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class SendReceipt:
    id: UUID
    sent_at: datetime
    recipients: int


@dataclass(frozen=True)
class Event:
    """One entry of a user's event log."""

    user_id: UUID
    seq: int
    type: EventType
    payload: dict[str, Any]


class EntryKind(StrEnum):
    CREDENTIAL = "credential"
    NOTE = "note"
    FILE = "file"


class AttachmentKind(StrEnum):
    CREDENTIAL = "credential"
    ENTRY = "entry"
    FOLDER = "folder"
    FILE = "file"


@dataclass(frozen=True)
class SealedFile:
    """A stored file's row: its name sealed under its own data key, its bytes in chunks."""

    id: UUID
    owner_id: UUID
    key: SealedKey
    name: bytes = field(repr=False)
    content_type: str
    size: int
    chunk_count: int
    complete: bool


@dataclass(frozen=True)
class FileInfo:
    """A stored file as its readers see it, without its bytes."""

    id: UUID
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class EntryFields:
    """What an entry holds besides its file: every one of them secret."""

    title: str
    username: str = ""
    password: str = field(default="", repr=False)
    url: str = ""
    notes: str = field(default="", repr=False)


@dataclass(frozen=True)
class SealedFolder:
    id: UUID
    owner_id: UUID
    parent_id: UUID | None
    key: SealedKey
    name: bytes = field(repr=False)


@dataclass(frozen=True)
class Folder:
    id: UUID
    parent_id: UUID | None
    name: str


@dataclass(frozen=True)
class SealedEntry:
    id: UUID
    owner_id: UUID
    folder_id: UUID | None
    kind: EntryKind
    key: SealedKey
    fields: bytes = field(repr=False)
    file_id: UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Entry:
    """A vault entry opened for its owner."""

    id: UUID
    folder_id: UUID | None
    kind: EntryKind
    fields: EntryFields
    file: FileInfo | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SealedAttachment:
    """A message's attachment as the store keeps it, sealed under the message's data key."""

    id: UUID
    message_id: UUID
    kind: AttachmentKind
    name: bytes = field(repr=False)
    size: int | None
    content: bytes | None = field(repr=False)
    file_id: UUID | None


@dataclass(frozen=True)
class AttachmentInfo:
    """What a message's summary shows of one attachment."""

    id: UUID
    kind: AttachmentKind
    name: str
    size: int | None


class LinkEnd(StrEnum):
    """Why a shareable link opens no more."""

    EXPIRED = "expired"  # its expiry passed (never stored: its expiry says it)
    USED = "used"  # its last view was taken
    REVOKED = "revoked"  # its creator revoked it
    BURNED = "burned"  # the fifth wrong passphrase


@dataclass(frozen=True)
class SealedLink:
    """A live shareable link as stored: its content sealed under its token's key."""

    id: UUID
    creator_id: UUID
    expires_at: datetime
    max_views: int
    views: int
    has_passphrase: bool
    subject: bytes = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class SealedLinkAttachment:
    """A link's credential or file as stored: sealed under the link's key (a file's chunks
    under a data key of its own, which is sealed under the link's key)."""

    id: UUID
    kind: AttachmentKind
    name: bytes = field(repr=False)
    content: bytes | None = field(repr=False)  # a credential's fields
    size: int | None = None
    content_type: str | None = None
    chunk_count: int | None = None
    file_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DueLink:
    """A link whose rows were deleted: expired, or at the end of its last view's download
    window; `ended` when its creator was told already (its last view)."""

    id: UUID
    creator_id: UUID
    ended: bool


@dataclass(frozen=True)
class TakenView:
    """A view given: how many are left, when it was taken, when the link is due for deletion."""

    views_left: int
    viewed_at: datetime
    due_at: datetime

    @property
    def last(self) -> bool:
        """Whether it was the link's last view (which ended it)."""
        return self.views_left == 0


@dataclass(frozen=True)
class ListedLink:
    """A live link in its creator's list, its subject sealed for the creator."""

    id: UUID
    created_at: datetime
    expires_at: datetime
    max_views: int
    views: int
    last_viewed_at: datetime | None
    has_passphrase: bool
    key: SealedKey
    listed_subject: bytes = field(repr=False)
    emailed_to: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SealedSystemMessage:
    """A system message as stored: subject and body sealed under its own data key."""

    id: UUID
    mode: SystemMode
    created_at: datetime
    ends_at: datetime | None
    key: SealedKey
    subject: bytes = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class SystemMessage:
    """An administrator's announcement to every user, opened."""

    id: UUID
    subject: str
    body: str
    mode: SystemMode
    created_at: datetime
    ends_at: datetime | None
