"""The request and response models of shareable links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from realtime.api.fields import (
    Body,
    EmailAddress,
    LinkToken,
    LongText,
    Moment,
    NewPassphrase,
    Note,
    Passphrase,
    Request,
    Response,
    ShortText,
    Subject,
)
from realtime.api.schemas import CredentialIn, FileIn
from realtime.drafts import MAX_ATTACHMENTS
from realtime.link_content import MAX_EMAIL_ADDRESSES, MAX_VIEWS

LinkAttachmentIn = Annotated[CredentialIn | FileIn, Field(discriminator="kind")]


class EmailIn(Request):
    to: list[EmailAddress] = Field(min_length=1, max_length=MAX_EMAIL_ADDRESSES)
    note: Note = ""


class CreateLinkRequest(Request):
    subject: Subject
    body: Body = ""
    attachments: list[LinkAttachmentIn] = Field(default=[], max_length=MAX_ATTACHMENTS)
    expires_at: Moment = Field(description="RFC 3339 with a time zone, at most 30 days ahead")
    max_views: int = Field(default=1, ge=1, le=MAX_VIEWS)
    passphrase: NewPassphrase | None = Field(
        default=None, repr=False, description="the link's key needs it to open"
    )
    email: EmailIn | None = Field(default=None, description="Send by email: to whom, a note")


class CreatedLinkOut(Response):
    id: UUID
    url: str = Field(repr=False, description="answered this once: the server keeps no token")
    expires_at: datetime
    max_views: int


class LinkOut(Response):
    id: UUID
    subject: str
    created_at: datetime
    expires_at: datetime
    max_views: int
    views: int
    last_viewed_at: datetime | None
    has_passphrase: bool
    emailed_to: list[str]


class LinkList(Response):
    links: list[LinkOut]


class OpenLinkRequest(Request):
    token: LinkToken = Field(repr=False)
    passphrase: Passphrase | None = Field(default=None, repr=False)


class LinkCredentialOut(Response):
    id: UUID
    kind: Literal["credential"]
    name: str
    title: str
    username: ShortText
    password: LongText = Field(repr=False)
    url: LongText
    notes: str


class LinkFileOut(Response):
    id: UUID
    kind: Literal["file"]
    name: str
    size: int
    content_type: str


class OpenedLinkOut(Response):
    subject: str
    body: str
    expires_at: datetime
    views_left: int = Field(description="0: this was the last view")
    attachments: list[Annotated[LinkCredentialOut | LinkFileOut, Field(discriminator="kind")]]
