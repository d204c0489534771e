"""A message's attachments: taken as copies at send time, sealed under the message's data key,
read by its sender and recipients, and saved into a reader's vault."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any
from uuid import UUID

from realtime import codec
from realtime.audit import Audit
from realtime.crypto import Envelope, Keyring, row_name
from realtime.db import Connection, Database
from realtime.drafts import AttachmentRequest
from realtime.errors import NotFound
from realtime.files import Download, Files
from realtime.models import (
    AttachmentInfo,
    AttachmentKind,
    EntryFields,
    EntryKind,
    FileInfo,
    SealedAttachment,
    User,
)
from realtime.store import attachments as attachment_store
from realtime.store import files as file_store
from realtime.store import messages as message_store
from realtime.vault import EntryCopy, FolderCopy, Saved, Vault


@dataclass(frozen=True)
class Prepared:
    """An attachment resolved at send time, before it is sealed: its copy as JSON, its file."""

    kind: AttachmentKind
    name: str
    size: int | None
    content: bytes | None
    file_id: UUID | None
    file_ids: tuple[UUID, ...]
    items: int = 1  # entries and folders in a copy: how long sealing it takes


@dataclass(frozen=True)
class Opened:
    """An attachment opened for a reader: a file's description, or its content as JSON."""

    info: AttachmentInfo
    content: dict[str, Any] | None
    file: FileInfo | None


class Attachments:
    def __init__(
        self, db: Database, keyring: Keyring, vault: Vault, files: Files,
        audit: Audit | None = None,
    ) -> None:
        self._audit = audit or Audit(db)
        self._db = db
        self._keyring = keyring
        self._vault = vault
        self._files = files

    async def measure(self, sender: User, requests: Sequence[AttachmentRequest]) -> int:
        """How many vault entries and folders the copies of these attachments take, refused as
        `prepare` would refuse them when a folder is not the sender's, too deep or too large:
        nothing of them is read."""
        folder_ids = [r.ref for r in requests if r.kind is AttachmentKind.FOLDER and r.ref]
        items = sum(1 for r in requests if r.kind is AttachmentKind.ENTRY)
        if folder_ids:
            room = self._vault.limits.copy_max_bytes
            async with self._db.connection() as conn:
                for folder_id in folder_ids:
                    size = await self._vault.measure_copy(conn, sender, folder_id, room)
                    room -= size.sealed_bytes
                    items += size.folders + size.entries
        return items

    async def prepare(
        self, conn: Connection, sender: User, requests: Sequence[AttachmentRequest]
    ) -> list[Prepared]:
        """Take the copies on the send's own connection (never a second one from the pool):
        only the sender's own entries, folders and uploads are found. The copies of one send
        together hold at most the size of one folder copy: past it, the send is refused before
        any further copy is taken."""
        limits = self._vault.limits
        prepared, total = [], 0
        for request in requests:
            item = await self._prepare(conn, sender, request, limits.copy_max_bytes - total)
            total += len(item.content or b"")
            if total > limits.copy_max_bytes:
                raise limits.copies_too_large()
            prepared.append(item)
        return prepared

    async def _prepare(
        self, conn: Connection, sender: User, request: AttachmentRequest, room: int
    ) -> Prepared:
        kind = request.kind
        if kind is AttachmentKind.CREDENTIAL:
            fields = request.credential or EntryFields(title="")
            return Prepared(kind, fields.title, None, codec.encode(asdict(fields)), None, ())
        assert request.ref is not None, "an entry, folder or file attachment names its source"
        if kind is AttachmentKind.ENTRY:
            copy = await self._vault.copy_entry(conn, sender, request.ref)
            file_ids = () if copy.file is None else (copy.file.id,)
            size = None if copy.file is None else copy.file.size
            content = codec.encode(entry_json(copy))
            return Prepared(kind, copy.fields.title, size, content, None, file_ids)
        if kind is AttachmentKind.FOLDER:
            tree = await self._vault.copy_folder(conn, sender, request.ref, room)
            content = await codec.off_loop(
                lambda: codec.encode(folder_json(tree)), items=tree.count()
            )
            if len(content) > self._vault.limits.copy_max_bytes:
                raise self._vault.limits.copy_too_large()
            return Prepared(
                kind, tree.name, None, content, None, tuple(tree.file_ids()), tree.count()
            )
        info = self._files.describe(await self._files.own_upload(conn, sender, request.ref))
        return Prepared(kind, info.name, info.size, None, info.id, (info.id,))

    async def write(
        self, conn: Connection, message_id: UUID, envelope: Envelope, prepared: Sequence[Prepared]
    ) -> tuple[AttachmentInfo, ...]:
        """Seal and store the attachments, inside the send's transaction (a large folder copy
        is sealed in a worker thread); return what a summary shows of them."""
        sealed = [
            await codec.off_loop(partial(_seal, envelope, message_id, item), items=item.items)
            for item in prepared
        ]
        file_ids = [file_id for item in prepared for file_id in item.file_ids]
        await attachment_store.insert_attachments(conn, sealed, file_ids)
        return tuple(
            AttachmentInfo(s.id, s.kind, item.name, item.size)
            for s, item in zip(sealed, prepared, strict=True)
        )

    def describe(
        self, envelope: Envelope, sealed: Sequence[SealedAttachment]
    ) -> tuple[AttachmentInfo, ...]:
        return tuple(
            AttachmentInfo(a.id, a.kind, envelope.open_text(f"attachment/{a.id}/name", a.name),
                           a.size)
            for a in sealed
        )

    async def open(self, user: User, message_id: UUID, attachment_id: UUID) -> Opened:
        """One attachment of a message the user may see; anything else is not found. Opening
        a credential reveals it: the audit trail says which."""
        (opened,) = await self._open(user, message_id, attachment_id)
        kind = opened.info.kind
        await self._audit.record(self._audit.new(
            "credential.revealed" if kind is AttachmentKind.CREDENTIAL else "attachment.opened",
            target=("attachment", attachment_id),
            detail={"message": str(message_id), "kind": kind.value},
        ))
        return opened

    async def entry_file(
        self, user: User, message_id: UUID, attachment_id: UUID, entry_id: UUID
    ) -> Download:
        """The bytes of the file entry `entry_id` inside an entry or folder attachment."""
        opened = await self.open(user, message_id, attachment_id)
        file_id = None if opened.content is None else _file_in(opened.content, str(entry_id))
        if file_id is None:
            raise NotFound("no such file")
        return await self._files.download(file_id)

    async def save(self, user: User, message_id: UUID, folder_id: UUID | None) -> Saved:
        """Copy every attachment of the message into the user's vault, under `folder_id`."""
        opened = await self._open(user, message_id, None)
        entries: list[EntryCopy] = []
        folders: list[FolderCopy] = []
        for item in opened:
            kind, content = item.info.kind, item.content or {}
            if kind is AttachmentKind.CREDENTIAL:
                entries.append(EntryCopy(EntryKind.CREDENTIAL, EntryFields(**_strings(content))))
            elif kind is AttachmentKind.ENTRY:
                entries.append(entry_copy(content))
            elif kind is AttachmentKind.FOLDER:
                folders.append(folder_copy(content))
            elif item.file is not None:
                entries.append(EntryCopy(EntryKind.FILE, EntryFields(title=item.file.name),
                                         item.file))
        async with self._db.transaction() as conn:
            saved = await self._vault.put(conn, user, folder_id, entries, folders)
            await self._audit.record(self._audit.new(
                "attachments.saved", target=("message", message_id),
                detail={"entries": len(entries), "folders": len(folders)}), conn=conn)
            return saved

    async def _open(
        self, user: User, message_id: UUID, attachment_id: UUID | None
    ) -> list[Opened]:
        async with self._db.connection() as conn:
            message = await message_store.get_message(
                conn, message_id=message_id, viewer_id=user.id
            )
            if message is None:
                raise NotFound("no such message")
            sealed = await attachment_store.get_attachments(conn, message_id, attachment_id)
            if attachment_id is not None and not sealed:
                raise NotFound("no such attachment")
            file_ids = [a.file_id for a in sealed if a.file_id is not None]
            stored = await file_store.get_files(conn, file_ids) if file_ids else {}
        files = {file_id: self._files.describe(found) for file_id, found in stored.items()}
        envelope = self._keyring.open_envelope(row_name("messages", message_id), message.key)
        infos = self.describe(envelope, sealed)

        def open_all() -> list[Opened]:
            return [
                Opened(
                    info,
                    None if a.content is None else codec.decode(
                        envelope.open(f"attachment/{a.id}/content", a.content)
                    ),
                    files.get(a.file_id) if a.file_id is not None else None,
                )
                for info, a in zip(infos, sealed, strict=True)
            ]

        return await codec.off_loop(open_all, size=sum(len(a.content or b"") for a in sealed))


def _seal(envelope: Envelope, message_id: UUID, item: Prepared) -> SealedAttachment:
    attachment_id = uuid.uuid4()
    return SealedAttachment(
        id=attachment_id, message_id=message_id, kind=item.kind,
        name=envelope.seal(f"attachment/{attachment_id}/name", item.name),
        size=item.size,
        content=None if item.content is None else envelope.seal(
            f"attachment/{attachment_id}/content", item.content
        ),
        file_id=item.file_id,
    )


def entry_json(copy: EntryCopy) -> dict[str, Any]:
    """An entry copy as its attachment keeps it: with an id of its own, for its file's route."""
    data: dict[str, Any] = {"id": str(uuid.uuid4()), "kind": copy.kind.value,
                            **asdict(copy.fields)}
    if copy.file is not None:
        data["file"] = {"id": str(copy.file.id), "name": copy.file.name,
                        "size": copy.file.size, "content_type": copy.file.content_type}
    return data


def folder_json(tree: FolderCopy) -> dict[str, Any]:
    return {
        "name": tree.name,
        "entries": [entry_json(entry) for entry in tree.entries],
        "folders": [folder_json(sub) for sub in tree.folders],
    }


def entry_copy(data: dict[str, Any]) -> EntryCopy:
    file = data.get("file")
    return EntryCopy(
        EntryKind(data["kind"]),
        EntryFields(**_strings(data)),
        None if file is None else FileInfo(
            UUID(file["id"]), file["name"], file["content_type"], int(file["size"])
        ),
    )


def folder_copy(data: dict[str, Any]) -> FolderCopy:
    return FolderCopy(
        str(data["name"]),
        tuple(entry_copy(entry) for entry in data.get("entries", ())),
        tuple(folder_copy(sub) for sub in data.get("folders", ())),
    )


def _strings(data: dict[str, Any]) -> dict[str, str]:
    names = EntryFields.__dataclass_fields__
    return {k: str(v) for k, v in data.items() if k in names}


def _file_in(content: dict[str, Any], entry_id: str) -> UUID | None:
    """The file of the entry `entry_id` in an entry or folder copy."""
    if content.get("id") == entry_id and content.get("file"):
        return UUID(content["file"]["id"])
    for entry in content.get("entries", ()):
        found = _file_in(entry, entry_id)
        if found is not None:
            return found
    for sub in content.get("folders", ()):
        found = _file_in(sub, entry_id)
        if found is not None:
            return found
    return None
