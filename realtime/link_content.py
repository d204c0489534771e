"""What a shareable link carries and how it is sealed: its draft, its attachments (credentials
and files) sealed under the link's key, and what an opener sees of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from realtime import codec
from realtime.crypto import Envelope, Keyring, row_name
from realtime.db import Connection, Database
from realtime.drafts import MAX_ATTACHMENTS, AttachmentRequest
from realtime.errors import CryptoError, Forbidden, InvalidInput, NotFound, TooLarge
from realtime.files import MAX_FILE_BYTES, Files
from realtime.models import (
    AttachmentKind,
    EntryFields,
    FileInfo,
    SealedFile,
    SealedLinkAttachment,
    User,
)
from realtime.store import files as file_store
from realtime.store import links as link_store

MAX_LIFETIME = timedelta(days=30)
MAX_VIEWS = 100
PASSPHRASE_CHARS = (8, 128)
MAX_EMAIL_ADDRESSES = 20


@dataclass(frozen=True)
class LinkEmail:
    """Send by email: to whom, with the creator's note."""

    to: tuple[str, ...]
    note: str = field(default="", repr=False)


@dataclass(frozen=True)
class LinkDraft:
    subject: str = field(repr=False)
    body: str = field(repr=False)
    expires_at: datetime
    max_views: int = 1
    passphrase: str | None = field(default=None, repr=False)
    attachments: tuple[AttachmentRequest, ...] = ()
    email: LinkEmail | None = None


def check_link_draft(creator: User, draft: LinkDraft) -> None:
    """The creator's rights and the draft's limits; raise what forbids creating it."""
    if not creator.can_share_links:
        raise Forbidden("you are not allowed to create shareable links")
    if draft.attachments and not creator.can_attach:
        raise Forbidden("you are not allowed to send attachments")
    kinds = {AttachmentKind.CREDENTIAL, AttachmentKind.FILE}
    errors = {
        f"attachments.{i}.kind": "a link carries credentials and files only"
        for i, a in enumerate(draft.attachments) if a.kind not in kinds
    }
    if len(draft.attachments) > MAX_ATTACHMENTS:
        errors["attachments"] = f"at most {MAX_ATTACHMENTS}"
    now = datetime.now(UTC)
    organisation_lifetime = creator.organisation.max_lifetime
    if draft.expires_at <= now:
        errors["expires_at"] = "in the past"
    elif draft.expires_at > now + MAX_LIFETIME:
        errors["expires_at"] = f"at most {MAX_LIFETIME.days} days ahead"
    elif organisation_lifetime is not None and draft.expires_at > now + organisation_lifetime:
        errors["expires_at"] = f"at most {int(organisation_lifetime.total_seconds())} seconds ahead"
    if not 1 <= draft.max_views <= MAX_VIEWS:
        errors["max_views"] = f"1 to {MAX_VIEWS}"
    low, high = PASSPHRASE_CHARS
    if draft.passphrase is not None and not low <= len(draft.passphrase) <= high:
        errors["passphrase"] = f"{low} to {high} characters"
    if errors:
        raise InvalidInput("the link cannot be created so", errors)


@dataclass(frozen=True)
class OpenedAttachment:
    """One attachment as an opener sees it: a credential's fields, or a file's description."""

    id: UUID
    kind: AttachmentKind
    name: str
    credential: EntryFields | None = field(default=None, repr=False)
    file: FileInfo | None = None


@dataclass(frozen=True)
class CreatedLink:
    """A new link: its token is answered once, and kept nowhere."""

    id: UUID
    token: str = field(repr=False)
    expires_at: datetime
    max_views: int


@dataclass(frozen=True)
class LinkSummary:
    """A live link as its creator's list shows it."""

    id: UUID
    subject: str = field(repr=False)
    created_at: datetime
    expires_at: datetime
    max_views: int
    views: int
    last_viewed_at: datetime | None
    has_passphrase: bool
    emailed_to: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class OpenedLink:
    """A link's content as its holder sees it, with the views left after this one."""

    subject: str = field(repr=False)
    body: str = field(repr=False)
    expires_at: datetime
    views_left: int
    attachments: tuple[OpenedAttachment, ...]


@dataclass(frozen=True)
class LinkFile:
    """A link's file ready to be streamed."""

    info: OpenedAttachment
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class _FileCopy:
    upload: SealedFile  # as the link's draft read it, on the same transaction
    attachment_id: UUID
    envelope: Envelope  # the file's own, under which its copy is sealed


@dataclass(frozen=True)
class SealedContent:
    """A new link's attachments, sealed, and the files to copy when it is stored."""

    attachments: tuple[SealedLinkAttachment, ...]
    copies: tuple[_FileCopy, ...]
    file_bytes: int


class LinkContent:
    """Seals a new link's attachments under its key, and opens them for whoever holds it."""

    def __init__(self, db: Database, keyring: Keyring, files: Files) -> None:
        self._db = db
        self._keyring = keyring
        self._files = files

    async def seal(
        self, conn: Connection, creator: User, envelope: Envelope,
        requests: Sequence[AttachmentRequest],
    ) -> SealedContent:
        """Seal a new link's attachments, reading the creator's uploads on the caller's
        connection: past MAX_FILE_BYTES of files in all, TooLarge."""
        sealed: list[SealedLinkAttachment] = []
        copies: list[_FileCopy] = []
        total = 0
        for request in requests:
            attachment_id = uuid.uuid4()
            aad = f"attachment/{attachment_id}"
            if request.kind is AttachmentKind.CREDENTIAL:
                fields = request.credential or EntryFields(title="")
                sealed.append(SealedLinkAttachment(
                    attachment_id, request.kind, envelope.seal(f"{aad}/name", fields.title),
                    envelope.seal(f"{aad}/content", codec.encode(asdict(fields))),
                ))
                continue
            assert request.ref is not None, "a file attachment names its upload"
            upload = await file_store.get_file(conn, request.ref, owner_id=creator.id)
            if upload is None:
                raise NotFound("the upload was not found")
            info = self._files.describe(upload)
            total += info.size
            if total > MAX_FILE_BYTES:
                raise TooLarge(
                    f"a link's files hold at most {MAX_FILE_BYTES} bytes together",
                    {"attachments": f"at most {MAX_FILE_BYTES} bytes of files"},
                )
            file_envelope, file_key = envelope.new_inner(
                row_name("link_attachments", attachment_id), f"{aad}/key"
            )
            sealed.append(SealedLinkAttachment(
                attachment_id, request.kind, envelope.seal(f"{aad}/name", info.name), None,
                size=info.size, content_type=info.content_type, chunk_count=upload.chunk_count,
                file_key=file_key,
            ))
            copies.append(_FileCopy(upload, attachment_id, file_envelope))
        return SealedContent(tuple(sealed), tuple(copies), total)

    async def store(
        self, conn: Connection, link_id: UUID, content: SealedContent, *, release_uploads: bool
    ) -> None:
        """Store the sealed attachments of the link just inserted, in its transaction: each
        file copied chunk by chunk under its own key; with `release_uploads`, its upload then
        released."""
        await link_store.insert_attachments(conn, link_id, content.attachments)
        for copy in content.copies:
            await self._copy_file(conn, copy.upload, copy.attachment_id, copy.envelope)
        if release_uploads:
            await file_store.release_files(conn, [copy.upload.id for copy in content.copies])

    async def release_uploads(self, content: SealedContent) -> None:
        """Release the uploads a stored link copied, where nothing else refers to them."""
        if content.copies:
            async with self._db.connection() as conn:
                await file_store.release_files(conn, [c.upload.id for c in content.copies])

    async def _copy_file(
        self, conn: Connection, upload: SealedFile, attachment_id: UUID, envelope: Envelope
    ) -> None:
        source = self._keyring.open_envelope(row_name("files", upload.id), upload.key)
        for n in range(upload.chunk_count):
            data = await file_store.read_chunk(conn, upload.id, n)
            if data is None:
                raise CryptoError(f"chunk {n} of files/{upload.id} is missing")
            await link_store.put_chunk(
                conn, attachment_id, n, envelope.seal_chunk(n, source.open_chunk(n, data))
            )

    def open_all(
        self, envelope: Envelope, sealed: Sequence[SealedLinkAttachment]
    ) -> list[OpenedAttachment]:
        return [self._open(envelope, attachment) for attachment in sealed]

    def _open(self, envelope: Envelope, sealed: SealedLinkAttachment) -> OpenedAttachment:
        aad = f"attachment/{sealed.id}"
        name = envelope.open_text(f"{aad}/name", sealed.name)
        if sealed.content is not None:
            fields = codec.decode(envelope.open(f"{aad}/content", sealed.content))
            return OpenedAttachment(sealed.id, sealed.kind, name, credential=EntryFields(
                **{k: str(v) for k, v in fields.items() if k in EntryFields.__dataclass_fields__}
            ))
        assert sealed.size is not None and sealed.content_type is not None
        return OpenedAttachment(
            sealed.id, sealed.kind, name,
            file=FileInfo(sealed.id, name, sealed.content_type, sealed.size),
        )

    async def chunks(
        self, envelope: Envelope, sealed: SealedLinkAttachment
    ) -> AsyncIterator[bytes]:
        """A link's file, read and opened one chunk at a time."""
        assert sealed.file_key is not None and sealed.chunk_count is not None
        aad = f"attachment/{sealed.id}"
        file_envelope = envelope.open_inner(
            row_name("link_attachments", sealed.id), f"{aad}/key", sealed.file_key
        )
        for n in range(sealed.chunk_count):
            async with self._db.connection() as conn:
                data = await link_store.read_chunk(conn, sealed.id, n)
            if data is None:  # the link was deleted meanwhile: its window ended
                raise NotFound("not found")
            yield file_envelope.open_chunk(n, data)
