"""Groups of users, and the directory the To field searches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from uuid import UUID

from realtime.audit import Audit
from realtime.db import Connection, Database
from realtime.errors import InvalidInput, NotFound
from realtime.models import AddresseeKind, DirectoryEntry, Group
from realtime.store import groups as group_store
from realtime.store import users as user_store

DIRECTORY_LIMIT = 20


class Groups:
    def __init__(self, db: Database, audit: Audit | None = None) -> None:
        self._db = db
        self._audit = audit or Audit(db)

    async def list_groups(self) -> list[Group]:
        async with self._db.connection() as conn:
            return await group_store.list_groups(conn)

    async def create_group(self, name: str, member_ids: Sequence[UUID]) -> Group:
        group_id = uuid.uuid4()
        async with self._db.transaction() as conn:
            await _check_members(conn, member_ids)
            await group_store.insert_group(conn, group_id, name)
            await group_store.set_members(conn, group_id, member_ids)
            group = await group_store.get_group(conn, group_id)
            await self._audit.record(self._audit.new(
                "group.created", target=("group", group_id),
                detail={"members": len(set(member_ids))}), conn=conn)
        assert group is not None
        return group

    async def set_members(self, group_id: UUID, member_ids: Sequence[UUID]) -> Group:
        async with self._db.transaction() as conn:
            if not await group_store.lock_group(conn, group_id):
                raise NotFound("no such group")
            await _check_members(conn, member_ids)
            await group_store.set_members(conn, group_id, member_ids)
            group = await group_store.get_group(conn, group_id)
            await self._audit.record(self._audit.new(
                "group.members_set", target=("group", group_id),
                detail={"members": len(set(member_ids))}), conn=conn)
        assert group is not None
        return group

    async def delete_group(self, group_id: UUID) -> None:
        async with self._db.transaction() as conn:
            if not await group_store.delete_group(conn, group_id):
                raise NotFound("no such group")
            await self._audit.record(
                self._audit.new("group.deleted", target=("group", group_id)), conn=conn
            )

    async def directory(self, prefix: str) -> list[DirectoryEntry]:
        """Users and groups whose name starts with `prefix`, by name, at most 20 in all."""
        async with self._db.connection() as conn:
            users = await user_store.search_users(conn, prefix, DIRECTORY_LIMIT)
            groups = await group_store.search_groups(conn, prefix, DIRECTORY_LIMIT)
        entries = [
            DirectoryEntry(AddresseeKind.USER, u.id, u.display_name, username=u.username)
            for u in users
        ] + [
            DirectoryEntry(AddresseeKind.GROUP, group_id, name, members=members)
            for group_id, name, members in groups
        ]
        entries.sort(key=lambda entry: (entry.name.lower(), entry.kind.value))
        return entries[:DIRECTORY_LIMIT]


async def _check_members(conn: Connection, member_ids: Sequence[UUID]) -> None:
    unknown = set(member_ids) - await user_store.existing_user_ids(conn, member_ids)
    if unknown:
        raise InvalidInput(
            "some members do not exist", {"member_ids": "names a user who does not exist"}
        )
