"""The organisation's settings: one row."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from realtime.models import OrganisationSettings, SendRight

# The settings' columns, of the row `o` (join `organisation_settings o`).
ORGANISATION_COLUMNS = "o.send_messages, o.share_links, o.max_file_mb, o.max_lifetime_seconds"


def settings_from_row(row: asyncpg.Record) -> OrganisationSettings:
    seconds = row["max_lifetime_seconds"]
    return OrganisationSettings(
        send_messages=SendRight(row["send_messages"]),
        share_links=row["share_links"],
        max_file_mb=row["max_file_mb"],
        max_lifetime=None if seconds is None else timedelta(seconds=seconds),
    )


async def get_settings(
    conn: asyncpg.Connection, *, for_update: bool = False
) -> OrganisationSettings:
    """The settings; `for_update`: locked until the transaction ends."""
    row = await conn.fetchrow(
        f"select {ORGANISATION_COLUMNS} from organisation_settings o"
        + (" for update" if for_update else "")
    )
    return settings_from_row(row)


async def put_settings(
    conn: asyncpg.Connection, settings: OrganisationSettings
) -> OrganisationSettings:
    """Write every setting; return them as stored."""
    lifetime = settings.max_lifetime
    row = await conn.fetchrow(
        f"""update organisation_settings o
            set send_messages = $1, share_links = $2, max_file_mb = $3,
                max_lifetime_seconds = $4, updated_at = now()
            returning {ORGANISATION_COLUMNS}""",
        settings.send_messages.value, settings.share_links, settings.max_file_mb,
        None if lifetime is None else int(lifetime.total_seconds()),
    )
    return settings_from_row(row)
