"""Each user's vault: folders and entries sealed under their own data keys, and copies of them
taken out (to attach to a message) and put back in (to save a message's attachments)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from realtime import codec
from realtime.crypto import Keyring, row_name
from realtime.db import Connection, Database
from realtime.errors import InvalidInput, NotFound
from realtime.files import Download, Files
from realtime.models import (
    Entry,
    EntryFields,
    EntryKind,
    FileInfo,
    Folder,
    SealedEntry,
    SealedFolder,
    User,
)
from realtime.store import files as file_store
from realtime.store import vault as vault_store
from realtime.vault_limits import VaultLimits

MAX_COPY_FOLDERS = 200
MAX_COPY_ENTRIES = 1_000


@dataclass(frozen=True)
class EntryCopy:
    """An entry taken out of a vault: its kind, fields and file, with no history."""

    kind: EntryKind
    fields: EntryFields
    file: FileInfo | None = None


@dataclass(frozen=True)
class FolderCopy:
    """A folder taken out of a vault with everything inside it."""

    name: str
    entries: tuple[EntryCopy, ...] = ()
    folders: tuple[FolderCopy, ...] = ()

    def file_ids(self) -> list[UUID]:
        own = [e.file.id for e in self.entries if e.file is not None]
        return own + [file_id for sub in self.folders for file_id in sub.file_ids()]

    def count(self) -> int:
        """How many entries and folders the tree holds, itself included."""
        return 1 + len(self.entries) + sum(sub.count() for sub in self.folders)

    def counts(self) -> tuple[int, int, int]:
        """How many folders (itself included) and entries it holds, and its levels."""
        folders, entries, depth = 1, len(self.entries), 0
        for sub in self.folders:
            sub_folders, sub_entries, sub_depth = sub.counts()
            folders, entries = folders + sub_folders, entries + sub_entries
            depth = max(depth, sub_depth)
        return folders, entries, depth + 1


@dataclass(frozen=True)
class EntryChange:
    """What a PATCH may change; None leaves a field as it is."""

    folder_id: UUID | None = None
    move_to_root: bool = False
    title: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    url: str | None = None
    notes: str | None = field(default=None, repr=False)
    upload_id: UUID | None = None


@dataclass(frozen=True)
class Saved:
    """What putting copies into a vault created."""

    entry_ids: list[UUID]
    folder_ids: list[UUID]


class Vault:
    """Each user's own vault; another user's ids are never found."""

    def __init__(
        self, db: Database, keyring: Keyring, files: Files, limits: VaultLimits | None = None
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._files = files
        self.limits = limits or VaultLimits()

    async def contents(self, user: User) -> tuple[list[Folder], list[Entry]]:
        async with self._db.connection() as conn:
            folders = await vault_store.list_folders(conn, user.id)
            entries = await vault_store.list_entries(conn, user.id)
            opened = await self._open_entries(conn, entries)
        named = await codec.off_loop(
            lambda: [self._open_folder(f) for f in folders], items=len(folders)
        )
        return named, opened

    async def create_folder(self, user: User, name: str, parent_id: UUID | None) -> Folder:
        async with self._db.transaction() as conn:
            if parent_id is not None:
                await self._own_folder(conn, user, parent_id)
            await self.limits.make_room(conn, user.id, folders=1)
            await self.limits.check_depth(conn, user.id, parent_id, 1, "parent_id")
            sealed = self._seal_folder(user, uuid.uuid4(), parent_id, name)
            await vault_store.insert_folder(conn, sealed)
        return Folder(sealed.id, parent_id, name)

    async def delete_folder(self, user: User, folder_id: UUID) -> None:
        """Delete the folder with everything inside it, files included where nothing else
        refers to them."""
        async with self._db.transaction() as conn:
            file_ids = await vault_store.delete_folder(conn, folder_id, user.id)
            if file_ids is None:
                raise NotFound("no such folder")
            await file_store.release_files(conn, file_ids)

    async def create_entry(
        self,
        user: User,
        *,
        kind: EntryKind,
        fields: EntryFields,
        folder_id: UUID | None,
        upload_id: UUID | None,
    ) -> Entry:
        async with self._db.transaction() as conn:
            file = await self._entry_file(conn, user, kind, upload_id)
            if folder_id is not None:
                await self._own_folder(conn, user, folder_id)
            await self.limits.make_room(conn, user.id, entries=1)
            sealed = self._seal_entry(user, uuid.uuid4(), folder_id, EntryCopy(kind, fields, file))
            await vault_store.insert_entries(conn, [sealed])
        return self._entry_from(sealed, fields, file)

    async def entry(self, user: User, entry_id: UUID) -> Entry:
        async with self._db.connection() as conn:
            return await self._own_entry(conn, user, entry_id)

    async def _own_entry(self, conn: Connection, user: User, entry_id: UUID) -> Entry:
        sealed = await vault_store.get_entry(conn, entry_id, user.id)
        if sealed is None:
            raise NotFound("no such entry")
        (entry,) = await self._open_entries(conn, [sealed])
        return entry

    async def change_entry(self, user: User, entry_id: UUID, change: EntryChange) -> Entry:
        async with self._db.transaction() as conn:
            current = await self._own_entry(conn, user, entry_id)
            file = current.file
            if change.upload_id is not None:
                file = await self._entry_file(conn, user, current.kind, change.upload_id)
            fields = EntryFields(**{
                name: value if (value := getattr(change, name)) is not None else old
                for name, old in asdict(current.fields).items()
            })
            folder_id = None if change.move_to_root else change.folder_id or current.folder_id
            if folder_id is not None and folder_id != current.folder_id:
                await self._own_folder(conn, user, folder_id)
            copy = EntryCopy(current.kind, fields, file)
            sealed = self._seal_entry(user, entry_id, folder_id, copy)
            updated = await vault_store.update_entry(conn, sealed)
            if updated is None:
                raise NotFound("no such entry")
            if current.file is not None and (file is None or file.id != current.file.id):
                await file_store.release_files(conn, [current.file.id])
        return self._entry_from(updated, fields, file)

    async def delete_entry(self, user: User, entry_id: UUID) -> None:
        async with self._db.transaction() as conn:
            found, file_id = await vault_store.delete_entry(conn, entry_id, user.id)
            if not found:
                raise NotFound("no such entry")
            if file_id is not None:
                await file_store.release_files(conn, [file_id])

    async def entry_file(self, user: User, entry_id: UUID) -> Download:
        entry = await self.entry(user, entry_id)
        if entry.file is None:
            raise NotFound("this entry holds no file")
        return await self._files.download(entry.file.id)

    async def copy_entry(self, conn: Connection, user: User, entry_id: UUID) -> EntryCopy:
        """A copy of one of the user's entries, read on the caller's connection."""
        entry = await self._own_entry(conn, user, entry_id)
        return EntryCopy(entry.kind, entry.fields, entry.file)

    async def copy_folder(
        self, conn: Connection, user: User, folder_id: UUID, room: int
    ) -> FolderCopy:
        """The folder as a tree of copies, read on the caller's connection; one too deep, with
        too many folders or entries, or sure to pass the copy's size limit or the `room` the
        send's other copies leave, is refused before anything of it is read."""
        await self.measure_copy(conn, user, folder_id, room)
        folders, entries = await vault_store.folder_tree(conn, folder_id, user.id)
        opened = await self._open_entries(conn, entries)
        names = await codec.off_loop(
            lambda: {f.id: self._open_folder(f).name for f in folders}, items=len(folders)
        )
        children: dict[UUID | None, list[UUID]] = {}
        for folder in folders[1:]:
            children.setdefault(folder.parent_id, []).append(folder.id)
        by_folder: dict[UUID | None, list[EntryCopy]] = {}
        for entry in opened:
            by_folder.setdefault(entry.folder_id, []).append(
                EntryCopy(entry.kind, entry.fields, entry.file)
            )

        def build(node: UUID) -> FolderCopy:
            return FolderCopy(
                names[node],
                tuple(by_folder.get(node, ())),
                tuple(build(child) for child in children.get(node, ())),
            )

        return build(folders[0].id)

    async def measure_copy(
        self, conn: Connection, user: User, folder_id: UUID, room: int
    ) -> vault_store.TreeSize:
        """The size of a copy of the user's folder, measured without reading it; refused when
        it is not theirs, too deep, too large or past the `room` left by the other copies."""
        size = await vault_store.measure_tree(conn, folder_id, user.id, self.limits.max_depth + 1)
        if not size.folders:
            raise NotFound("no such folder")
        self.limits.check_copy(size, MAX_COPY_FOLDERS, MAX_COPY_ENTRIES, room)
        return size

    async def put(
        self,
        conn: Connection,
        user: User,
        folder_id: UUID | None,
        entries: Sequence[EntryCopy],
        folders: Sequence[FolderCopy],
    ) -> Saved:
        """Put copies into the user's vault under `folder_id` (None: the root), inside the
        caller's transaction."""
        if folder_id is not None:
            await self._own_folder(conn, user, folder_id)
        counts = [tree.counts() for tree in folders]
        await self.limits.make_room(
            conn, user.id, folders=sum(c[0] for c in counts),
            entries=len(entries) + sum(c[1] for c in counts),
        )
        await self.limits.check_depth(
            conn, user.id, folder_id, max((c[2] for c in counts), default=0), "folder_id"
        )
        saved = Saved([], [])
        sealed_entries: list[SealedEntry] = []

        def place(
            parent: UUID | None, copies: Sequence[EntryCopy], subs: Sequence[FolderCopy]
        ) -> None:
            for copy in copies:
                sealed_entries.append(self._seal_entry(user, uuid.uuid4(), parent, copy))
                saved.entry_ids.append(sealed_entries[-1].id)
            for sub in subs:
                sealed_folders.append(self._seal_folder(user, uuid.uuid4(), parent, sub.name))
                saved.folder_ids.append(sealed_folders[-1].id)
                place(sealed_folders[-1].id, sub.entries, sub.folders)

        sealed_folders: list[SealedFolder] = []
        count = len(entries) + sum(folder.count() for folder in folders)
        await codec.off_loop(lambda: place(folder_id, entries, folders), items=count)
        for folder in sealed_folders:  # parents come before their children
            await vault_store.insert_folder(conn, folder)
        await vault_store.insert_entries(conn, sealed_entries)
        return saved

    async def _entry_file(
        self, conn: Connection, user: User, kind: EntryKind, upload_id: UUID | None
    ) -> FileInfo | None:
        if kind is not EntryKind.FILE:
            if upload_id is not None:
                raise InvalidInput("only a file entry holds an upload", {"upload_id": "not here"})
            return None
        if upload_id is None:
            raise InvalidInput("a file entry needs its upload", {"upload_id": "required"})
        return self._files.describe(await self._files.own_upload(conn, user, upload_id))

    async def _own_folder(self, conn: Connection, user: User, folder_id: UUID) -> None:
        if await vault_store.get_folder(conn, folder_id, user.id) is None:
            raise NotFound("no such folder")

    def _seal_folder(
        self, user: User, folder_id: UUID, parent_id: UUID | None, name: str
    ) -> SealedFolder:
        envelope, key = self._keyring.new_envelope(row_name("vault_folders", folder_id))
        return SealedFolder(folder_id, user.id, parent_id, key, envelope.seal("name", name))

    def _open_folder(self, sealed: SealedFolder) -> Folder:
        envelope = self._keyring.open_envelope(row_name("vault_folders", sealed.id), sealed.key)
        return Folder(sealed.id, sealed.parent_id, envelope.open_text("name", sealed.name))

    def _seal_entry(
        self, user: User, entry_id: UUID, folder_id: UUID | None, copy: EntryCopy
    ) -> SealedEntry:
        envelope, key = self._keyring.new_envelope(row_name("vault_entries", entry_id))
        now = datetime.now(UTC)
        return SealedEntry(
            id=entry_id, owner_id=user.id, folder_id=folder_id, kind=copy.kind, key=key,
            fields=envelope.seal("fields", codec.encode(asdict(copy.fields))),
            file_id=None if copy.file is None else copy.file.id,
            created_at=now, updated_at=now,
        )

    async def _open_entries(
        self, conn: Connection, sealed: Sequence[SealedEntry]
    ) -> list[Entry]:
        """Open entries with their files' descriptions; many are opened in a worker thread."""
        file_ids = [s.file_id for s in sealed if s.file_id is not None]
        files = await file_store.get_files(conn, file_ids) if file_ids else {}

        def open_all() -> list[Entry]:
            opened = []
            for item in sealed:
                envelope = self._keyring.open_envelope(
                    row_name("vault_entries", item.id), item.key
                )
                fields = EntryFields(**_fields(codec.decode(envelope.open("fields", item.fields))))
                stored = files.get(item.file_id) if item.file_id is not None else None
                file = None if stored is None else self._files.describe(stored)
                opened.append(self._entry_from(item, fields, file))
            return opened

        return await codec.off_loop(open_all, items=len(sealed))

    @staticmethod
    def _entry_from(sealed: SealedEntry, fields: EntryFields, file: FileInfo | None) -> Entry:
        return Entry(
            sealed.id, sealed.folder_id, sealed.kind, fields, file,
            sealed.created_at, sealed.updated_at,
        )


def _fields(data: Any) -> dict[str, str]:
    """The sealed JSON of an entry's fields, as EntryFields takes them."""
    names = EntryFields.__dataclass_fields__
    return {k: str(v) for k, v in dict(data).items() if k in names}
