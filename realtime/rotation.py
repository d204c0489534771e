"""Master key rotation: every wrapped data key re-wrapped under the keyring's current key."""

from __future__ import annotations

import asyncio
import logging
import uuid

from realtime.audit import Audit
from realtime.crypto import Keyring, row_name
from realtime.db import Database
from realtime.store import keys as key_store

log = logging.getLogger(__name__)
BATCH = 500
FINGERPRINT_PURPOSE = "request-fingerprint"


async def rotate_master_key(db: Database, keyring: Keyring) -> int:
    """Re-wrap until no row is left under another key, rows written meanwhile included.

    Content is not re-encrypted: only each row's data key is wrapped again.
    """
    total = 0
    for table in key_store.KEYED_TABLES:
        while True:
            done = await _rewrap_batch(db, keyring, table)
            total += done
            if done:
                continue
            async with db.connection() as conn:
                left = await key_store.count_keys_not_under(conn, table, keyring.current_id)
            if not left:
                break
            await asyncio.sleep(0.1)  # the rows left are locked by others: try them again
    log.info("re-wrapped %d data keys under master key %s", total, keyring.current_id)
    await Audit(db).record(Audit.new(
        "key.rotated", detail={"key_id": keyring.current_id, "data_keys": total}))
    return total


async def _rewrap_batch(db: Database, keyring: Keyring, table: str) -> int:
    async with db.transaction() as conn:
        rows = await key_store.keys_not_under(conn, table, keyring.current_id, BATCH)
        rewrapped = [(row_id, keyring.rewrap(row_name(table, row_id), key)) for row_id, key in rows]
        if rewrapped:
            await key_store.replace_keys(conn, table, rewrapped)
    return len(rewrapped)


async def load_fingerprint_key(db: Database, keyring: Keyring) -> None:
    """Give the keyring the deployment's fingerprint key, made at random on the first start.

    It is kept wrapped under the master key and re-wrapped by rotation, so that a request's
    fingerprint stays the same across `rotate-key` (a retry still gets its first answer).
    """
    async with db.connection() as conn:
        kept = await key_store.server_key(conn, FINGERPRINT_PURPOSE)
        if kept is None:
            row_id = uuid.uuid4()
            _, sealed = keyring.new_envelope(row_name("server_keys", row_id))
            await key_store.add_server_key(conn, row_id, FINGERPRINT_PURPOSE, sealed)
            kept = await key_store.server_key(conn, FINGERPRINT_PURPOSE)
    assert kept is not None
    row_id, sealed = kept
    envelope = keyring.open_envelope(row_name("server_keys", row_id), sealed)
    keyring.set_fingerprint_key(envelope.data_key)
