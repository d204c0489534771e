"""Helpers shared by the tests of the vault, uploads and attachments."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.conftest import LoggedInUser


async def upload(
    person: LoggedInUser, data: bytes, name: str = "notes.txt", content_type: str = "text/plain"
) -> dict[str, Any]:
    """POST /api/uploads, insisting on 201; return the answer."""
    answer = await person.http.post(
        "/api/uploads", params={"name": name}, content=data,
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def new_folder(person: LoggedInUser, name: str, parent_id: str | None = None) -> str:
    answer = await person.http.post(
        "/api/vault/folders", json={"name": name, "parent_id": parent_id}
    )
    return str((await created(answer))["id"])


async def new_entry(person: LoggedInUser, **fields: Any) -> dict[str, Any]:
    """Create a vault entry: a credential unless `kind` says otherwise."""
    body = {"kind": "credential", "title": "an entry", **fields}
    return await created(await person.http.post("/api/vault/entries", json=body))


async def stored_files(raw_db: asyncpg.Connection) -> tuple[int, int]:
    """How many files and file chunks the database holds."""
    files = await raw_db.fetchval("select count(*) from files")
    chunks = await raw_db.fetchval("select count(*) from file_chunks")
    return int(files), int(chunks)
