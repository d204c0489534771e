"""Frozen dataclasses and enums shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class EventType(StrEnum):
    MESSAGE_NEW = "message.new"
    MESSAGE_READ = "message.read"
    MESSAGE_DELETED = "message.deleted"


class DeleteReason(StrEnum):
    EXPIRED = "expired"
    RECALLED = "recalled"
    DELETED = "deleted"


class Box(StrEnum):
    INBOX = "inbox"
    SENT = "sent"


class AddresseeKind(StrEnum):
    USER = "user"
    GROUP = "group"


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    display_name: str
    is_admin: bool
    can_send: bool
    can_attach: bool
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class Credentials:
    """A user with the hash their password is checked against."""

    user: User
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class AuthContext:
    """Who a request speaks for, and through which session."""

    user: User
    session_id: UUID


@dataclass(frozen=True)
class NewSession:
    """A session just opened: the token is shown to its owner once and never stored."""

    token: str = field(repr=False)
    session_id: UUID
    user: User
    expires_at: datetime


@dataclass(frozen=True)
class Group:
    id: UUID
    name: str
    member_ids: tuple[UUID, ...]


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
