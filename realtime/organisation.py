"""The organisation's settings: what its users may send and share, and for how long."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import EllipsisType

from realtime.audit import Audit
from realtime.db import Database
from realtime.errors import InvalidInput
from realtime.models import LARGEST_FILE_MB, OrganisationSettings, SendRight
from realtime.store import organisation as organisation_store

# The longest `max_lifetime` may be, and the shortest: a message must live long enough to be
# read.
LONGEST_LIFETIME = timedelta(days=3650)
SHORTEST_LIFETIME = timedelta(minutes=1)


class Organisation:
    def __init__(self, db: Database, audit: Audit | None = None) -> None:
        self._db = db
        self._audit = audit or Audit(db)

    async def settings(self) -> OrganisationSettings:
        async with self._db.connection() as conn:
            return await organisation_store.get_settings(conn)

    async def change(
        self, *, send_messages: SendRight | None = None, share_links: bool | None = None,
        max_file_mb: int | None = None, max_lifetime: timedelta | EllipsisType | None = ...,
    ) -> OrganisationSettings:
        """Change the settings given (`max_lifetime` None: no maximum; left out: as it is); the
        next request of every user on every node is judged by them. Return them all."""
        errors = {}
        if max_file_mb is not None and not 1 <= max_file_mb <= LARGEST_FILE_MB:
            errors["max_file_mb"] = f"1 to {LARGEST_FILE_MB} (MiB)"
        if isinstance(max_lifetime, timedelta) and not (
            SHORTEST_LIFETIME <= max_lifetime <= LONGEST_LIFETIME
        ):
            errors["max_lifetime"] = (
                f"{int(SHORTEST_LIFETIME.total_seconds())} to"
                f" {int(LONGEST_LIFETIME.total_seconds())} seconds, or null"
            )
        if errors:
            raise InvalidInput("these settings cannot be", errors)
        async with self._db.transaction() as conn:
            current = await organisation_store.get_settings(conn, for_update=True)
            changed = replace(
                current,
                send_messages=current.send_messages if send_messages is None else send_messages,
                share_links=current.share_links if share_links is None else share_links,
                max_file_mb=current.max_file_mb if max_file_mb is None else max_file_mb,
                max_lifetime=(
                    current.max_lifetime if isinstance(max_lifetime, EllipsisType)
                    else max_lifetime
                ),
            )
            stored = await organisation_store.put_settings(conn, changed)
            await self._audit.record(self._audit.new(
                "settings.changed", detail=_changes(current, stored)), conn=conn)
            return stored


def _changes(before: OrganisationSettings, after: OrganisationSettings) -> dict[str, object]:
    """What a change changed: each setting's new value, as the API shows it."""
    changed: dict[str, object] = {}
    for name in ("send_messages", "share_links", "max_file_mb", "max_lifetime"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changed[name] = (
                new.value if isinstance(new, SendRight)
                else int(new.total_seconds()) if isinstance(new, timedelta) else new
            )
    return changed
