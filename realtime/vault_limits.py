"""The budgets of each user's vault: entries, folders and levels of folders, checked under the
owner's lock so that simultaneous creations cannot pass them together, on any node; and the
size of a folder copy taken out of it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from realtime.db import Connection
from realtime.errors import InvalidInput, TooLarge
from realtime.store import budgets as budget_store
from realtime.store import vault as vault_store


@dataclass(frozen=True)
class VaultLimits:
    max_entries: int = 10_000
    max_folders: int = 1_000
    max_depth: int = 20
    copy_max_bytes: int = 4 * 1024 * 1024

    async def make_room(
        self, conn: Connection, owner_id: UUID, *, folders: int = 0, entries: int = 0
    ) -> None:
        """Lock the owner's vault until the transaction ends; refuse adding these many folders
        and entries past its limits."""
        await budget_store.lock_owner(conn, "vault", owner_id)
        have_folders, have_entries = await vault_store.count_owned(conn, owner_id)
        if entries and have_entries + entries > self.max_entries:
            raise InvalidInput(
                "the vault is full", {"entries": f"at most {self.max_entries} entries in a vault"}
            )
        if folders and have_folders + folders > self.max_folders:
            raise InvalidInput(
                "the vault is full", {"folders": f"at most {self.max_folders} folders in a vault"}
            )

    async def check_depth(
        self, conn: Connection, owner_id: UUID, parent_id: UUID | None, levels: int, field: str
    ) -> None:
        """Refuse putting `levels` levels of folders under `parent_id` (None: the root) past
        the deepest level allowed; `field` names the request's field at fault."""
        if levels == 0:
            return
        base = 0 if parent_id is None else await vault_store.folder_depth(
            conn, parent_id, owner_id, self.max_depth + 1
        )
        if base + levels > self.max_depth:
            raise self.too_deep(field)

    def too_deep(self, field: str) -> InvalidInput:
        return InvalidInput(
            "folders would nest too deep", {field: f"at most {self.max_depth} levels of folders"}
        )

    def check_copy(
        self, size: vault_store.TreeSize, max_folders: int, max_entries: int, room: int
    ) -> None:
        """Refuse taking a copy of a folder this large before anything of it is read; `room` is
        what the send's other copies leave of the limit."""
        if size.depth > self.max_depth:
            raise self.too_deep("folder_id")
        if size.folders > max_folders or size.entries > max_entries:
            raise InvalidInput(
                "the folder is too large to send",
                {"folder_id": f"at most {max_folders} folders and {max_entries} entries"},
            )
        # Sealed names and fields are smaller than their copy: over the limit, it is sure to be.
        if size.sealed_bytes > self.copy_max_bytes:
            raise self.copy_too_large()
        if size.sealed_bytes > room:
            raise self.copies_too_large()

    def copy_too_large(self) -> TooLarge:
        limit = self.copy_max_bytes
        return TooLarge(
            f"the folder is too large to send: a folder copy is at most {limit} bytes sealed",
            {"folder_id": f"at most {limit} bytes sealed"},
        )

    def copies_too_large(self) -> TooLarge:
        limit = self.copy_max_bytes
        return TooLarge(
            f"the attachments are too large: together at most {limit} bytes sealed",
            {"attachments": f"at most {limit} bytes sealed"},
        )
