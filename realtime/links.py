"""What creating, listing, revoking and opening a shareable link mean.

A link's content is sealed under a key derived from its token (and its passphrase, if it has
one), which the server never keeps: only the creator's list (the subject, the addresses it was
emailed to) is sealed under the master key. Every way a link cannot be opened (unknown, expired,
used up, revoked, burned) is the same NotFound, found by the same statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from realtime import codec, crypto, metrics
from realtime.audit import Audit
from realtime.budgets import Budgets
from realtime.crypto import Envelope, Keyring, row_name
from realtime.db import DATABASE_FAULTS, Connection, Database
from realtime.errors import CryptoError, EmailUnavailable, NotFound, PassphraseError, Unavailable
from realtime.events import EventSink
from realtime.files import over_stored
from realtime.hashing import hashing
from realtime.link_content import (
    CreatedLink,
    LinkContent,
    LinkDraft,
    LinkFile,
    LinkSummary,
    OpenedAttachment,
    OpenedLink,
    check_link_draft,
)
from realtime.mail import LinkMail, Mailer, check_addresses
from realtime.models import Event, EventType, LinkEnd, SealedLink, TakenView, User
from realtime.store import budgets as budget_store
from realtime.store import events as event_store
from realtime.store import expiry as expiry_store
from realtime.store import files as file_store
from realtime.store import links as link_store

DOWNLOAD_WINDOW = timedelta(minutes=10)  # a link's files may be fetched this long after a view
MAIL_WAIT = 60.0  # seconds Send by email may take in all, whatever the relay's own timeouts
LinkScheduled = Callable[[datetime], None]


@dataclass(frozen=True)
class LinkLimits:
    """Each user's budget of links, and each client address's budget of opens."""

    per_hour: int = 100
    opens_per_minute: int = 60
    stored_bytes: int = 1024 * 1024 * 1024  # a user's files and links' files together


class Links:
    def __init__(
        self, db: Database, keyring: Keyring, content: LinkContent, *, sink: EventSink,
        budgets: Budgets, limits: LinkLimits, mailer: Mailer | None,
        link_scheduled: LinkScheduled | None = None, audit: Audit | None = None,
    ) -> None:
        """`mailer` sends links by email (None: no relay, Send by email is unavailable);
        `link_scheduled` is told when a link falls due (the expirer's wake-up)."""
        self._db = db
        self._keyring = keyring
        self._content = content
        self._sink = sink
        self._budgets = budgets
        self._limits = limits
        self._mailer = mailer
        self._link_scheduled = link_scheduled or (lambda due_at: None)
        self._audit = audit or Audit(db)

    @property
    def email_available(self) -> bool:
        return self._mailer is not None

    async def create(self, creator: User, draft: LinkDraft, origin: str) -> CreatedLink:
        """Seal and store the link, then send it by email if asked: a relay that refuses
        or does not answer leaves nothing kept. Spends one of the creator's links an hour."""
        check_link_draft(creator, draft)
        addresses: tuple[str, ...] = ()
        if draft.email is not None:
            if self._mailer is None:
                raise EmailUnavailable()
            addresses = check_addresses(draft.email.to)
        await self._budgets.spend_hourly(
            f"links:{creator.id}", per_hour=self._limits.per_hour, what="links created"
        )
        link_id, token = uuid.uuid4(), crypto.new_token()
        envelope = await _content_envelope(link_id, token, draft.passphrase)
        listed, key = self._keyring.new_envelope(row_name("links", link_id))
        async with self._db.transaction() as conn:
            content = await self._content.seal(conn, creator, envelope, draft.attachments)
            await link_store.insert_link(
                conn, link_id=link_id, creator_id=creator.id,
                token_hash=crypto.token_digest(token), expires_at=draft.expires_at,
                max_views=draft.max_views, has_passphrase=draft.passphrase is not None, key=key,
                listed_subject=listed.seal("listed_subject", draft.subject),
                subject=envelope.seal("subject", draft.subject),
                body=envelope.seal("body", draft.body), file_bytes=content.file_bytes,
                emailed_to=listed.seal("emailed_to", codec.encode(addresses)) if addresses
                else None,
            )
            # An emailed link's uploads stay until the mail is sent: the same request may be
            # made again if it is not.
            await self._content.store(conn, link_id, content, release_uploads=not addresses)
            if content.file_bytes:
                await self._check_stored(conn, creator)
            await expiry_store.announce(conn, draft.expires_at)
            await self._audit.record(self._audit.new(
                "link.created", target=("link", link_id),
                detail={"views": draft.max_views, "passphrase": draft.passphrase is not None,
                        "emailed": len(addresses), "attachments": len(draft.attachments)},
            ), conn=conn)
        self._link_scheduled(draft.expires_at)
        if draft.email is not None:
            await self._send(link_id, LinkMail(
                to=addresses, creator_name=creator.display_name, note=draft.email.note,
                url=link_url(origin, token), expires_at=draft.expires_at,
            ))
            with contextlib.suppress(*DATABASE_FAULTS):  # else the hourly purge takes them
                await self._content.release_uploads(content)
        metrics.links_created.inc()
        return CreatedLink(link_id, token, draft.expires_at, draft.max_views)

    async def _check_stored(self, conn: Connection, creator: User) -> None:
        await budget_store.lock_owner(conn, "stored", creator.id)
        if await file_store.stored_bytes(conn, creator.id) > self._limits.stored_bytes:
            raise over_stored(self._limits.stored_bytes)

    async def _send(self, link_id: UUID, mail: LinkMail) -> None:
        """Mail the link, within MAIL_WAIT in all; if it is not sent, delete it."""
        assert self._mailer is not None
        try:
            async with asyncio.timeout(MAIL_WAIT):
                await self._mailer.send_link(mail)
        except BaseException as exc:  # anything, a cancellation too: no link is left unsent
            with contextlib.suppress(*DATABASE_FAULTS):  # else it expires unknown to anyone
                await asyncio.shield(self._forget(link_id))
            if isinstance(exc, TimeoutError):
                raise Unavailable(30, "the mail relay took too long: no link was sent") from None
            raise

    async def _forget(self, link_id: UUID) -> None:
        async with self._db.connection() as conn:
            await link_store.delete_link(conn, link_id)

    async def list_links(self, creator: User) -> list[LinkSummary]:
        async with self._db.connection() as conn:
            stored = await link_store.list_live(conn, creator.id)
        listed = []
        for link in stored:
            envelope = self._keyring.open_envelope(row_name("links", link.id), link.key)
            emailed = () if link.emailed_to is None else tuple(
                codec.decode(envelope.open("emailed_to", link.emailed_to))
            )
            listed.append(LinkSummary(
                link.id, envelope.open_text("listed_subject", link.listed_subject),
                link.created_at, link.expires_at, link.max_views, link.views,
                link.last_viewed_at, link.has_passphrase, emailed,
            ))
        return listed

    async def revoke(self, creator: User, link_id: UUID) -> None:
        """Delete the creator's link at once, with its content and files."""
        async with self._db.transaction() as conn:
            ended = await link_store.revoke(conn, link_id, creator.id)
            if ended is None:
                raise NotFound("no such link")
            told = ended is LinkEnd.USED  # at its last view
            events = [] if told else await _ended(conn, creator.id, link_id, ended)
            await self._audit.record(
                self._audit.new("link.revoked", target=("link", link_id)), conn=conn
            )
        await self._sink.committed(events)

    async def open(self, token: str, passphrase: str | None, client: str) -> OpenedLink:
        """Count one view and answer the content; a wrong passphrase counts against the link."""
        link, envelope = await self._unlock(token, passphrase, client, downloading=False)
        async with self._db.transaction() as conn:
            sealed = await link_store.get_attachments(conn, link.id)
            has_files = any(a.content is None for a in sealed)
            view = await link_store.take_view(
                conn, link.id, DOWNLOAD_WINDOW if has_files else timedelta(0)
            )
            if view is None:  # another opener took its last view first
                raise NotFound("not found")
            events = await self._viewed(conn, link, view, has_files)
            await self._audit.record(self._audit.new(
                "link.viewed", actor_id=None, target=("link", link.id),
                detail={"views_left": view.views_left}), conn=conn)
        await self._sink.committed(events)
        if view.last and has_files:
            self._link_scheduled(view.due_at)
        metrics.link_views.inc()
        opened = await codec.off_loop(
            lambda: self._content.open_all(envelope, sealed),
            size=sum(len(a.content or b"") for a in sealed),
        )
        return OpenedLink(
            envelope.open_text("subject", link.subject), envelope.open_text("body", link.body),
            link.expires_at, view.views_left, tuple(opened),
        )

    async def _viewed(
        self, conn: Connection, link: SealedLink, view: TakenView, has_files: bool
    ) -> list[Event]:
        """The creator's `link.viewed`, and after the last view its `link.deleted` (used), in
        one statement; the link then goes at once, or, with files, when its download window
        closes."""
        viewed = {"link_id": str(link.id), "views_left": view.views_left,
                  "viewed_at": codec.format_time(view.viewed_at)}
        told: list[tuple[UUID, EventType, dict[str, Any]]] = [
            (link.creator_id, EventType.LINK_VIEWED, viewed)
        ]
        if view.last:
            if has_files:
                await expiry_store.announce(conn, view.due_at)
            else:
                await link_store.delete_link(conn, link.id)
            ended = ended_payload(link.id, LinkEnd.USED)
            told.append((link.creator_id, EventType.LINK_DELETED, ended))
        return await event_store.append_each(conn, told)

    async def attachment(
        self, token: str, passphrase: str | None, attachment_id: UUID, client: str
    ) -> OpenedAttachment | LinkFile:
        """One attachment of a link viewed within the download window; counts no view."""
        link, envelope = await self._unlock(token, passphrase, client, downloading=True)
        async with self._db.connection() as conn:  # still downloadable, after the key's time
            found = await link_store.get_attachments(
                conn, link.id, attachment_id, downloadable_within=DOWNLOAD_WINDOW
            )
        if not found:
            raise NotFound("not found")
        (sealed,) = found
        opened = self._content.open_all(envelope, found)[0]
        if opened.file is None:
            return opened
        return LinkFile(opened, self._content.chunks(envelope, sealed))

    async def _unlock(
        self, token: str, passphrase: str | None, client: str, *, downloading: bool
    ) -> tuple[SealedLink, Envelope]:
        """The link of the token, and the envelope its content opens with; a missing or wrong
        passphrase is a PassphraseError (a wrong one counts, the fifth burns the link)."""
        await self._budgets.spend(
            f"link-opens:{client}", per_minute=self._limits.opens_per_minute,
            what="links opened from this address",
        )
        digest = crypto.token_digest(token)
        async with self._db.connection() as conn:
            link = await (
                link_store.find_downloadable(conn, digest, DOWNLOAD_WINDOW) if downloading
                else link_store.find_openable(conn, digest)
            )
        if link is None:
            raise NotFound("not found")
        if link.has_passphrase and passphrase is None:
            raise PassphraseError("passphrase_required", "this link needs its passphrase")
        envelope = await _content_envelope(link.id, token, passphrase if link.has_passphrase
                                           else None)
        try:
            envelope.open("subject", link.subject)
        except CryptoError:
            if not link.has_passphrase:
                raise  # a stored link that does not open with its own token: not ours to hide
            await self._wrong_passphrase(link)
        return link, envelope

    async def _wrong_passphrase(self, link: SealedLink) -> None:
        async with self._db.transaction() as conn:
            left = await link_store.count_wrong_passphrase(conn, link.id)
            if left is None:
                raise NotFound("not found")
            events = []
            if left == 0:
                await link_store.delete_link(conn, link.id)
                if link.views < link.max_views:  # else its last view told the creator
                    events = await _ended(conn, link.creator_id, link.id, LinkEnd.BURNED)
            await self._audit.record(self._audit.new(
                "link.burned" if left == 0 else "link.passphrase_wrong", "refused",
                target=("link", link.id), detail={"attempts_left": left}), conn=conn)
        await self._sink.committed(events)
        if left == 0:
            metrics.links_burned.inc()
        raise PassphraseError(
            "passphrase_wrong",
            "the passphrase is wrong" if left else
            "the passphrase is wrong: the link was destroyed",
            attempts_left=left,
        )


async def _content_envelope(link_id: UUID, token: str, passphrase: str | None) -> Envelope:
    """The key of a link's content; with a passphrase, Argon2id in a hashing thread."""
    row = row_name("links", link_id)
    if passphrase is None:
        return crypto.link_envelope(row, token)
    return await hashing(crypto.link_envelope, row, token, passphrase)


async def _ended(conn: Connection, creator_id: UUID, link_id: UUID, reason: LinkEnd) -> list[Event]:
    return await event_store.append_events(
        conn, [creator_id], EventType.LINK_DELETED, ended_payload(link_id, reason)
    )


def ended_payload(link_id: UUID, reason: LinkEnd) -> dict[str, Any]:
    """What `link.deleted` says: which link, and why it opens no more."""
    return {"link_id": str(link_id), "reason": reason.value}


def link_url(origin: str, token: str) -> str:
    """The link as its recipient opens it: the token in the fragment, never sent to a server."""
    return f"{origin.rstrip('/')}/s/#{token}"
