"""Each user's own vault: folders and entries, and a file entry's bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field
from starlette.responses import Response

from realtime.api.downloads import FileOut, file_out, stream_file
from realtime.api.fields import Body, Id, LongText, Request, ShortText, Title
from realtime.api.fields import Response as Model
from realtime.api.http import Call, Operation, json_response, no_content, path_id
from realtime.models import Entry, EntryFields, EntryKind, Folder
from realtime.vault import EntryChange

_NOT_FOUND = {404: None}


class FolderIn(Request):
    name: Title
    parent_id: Id | None = None


class FolderOut(Model):
    id: UUID
    name: str
    parent_id: UUID | None


class EntryIn(Request):
    folder_id: Id | None = None
    kind: Literal["credential", "note", "file"]
    title: Title
    username: ShortText = ""
    password: LongText = Field(default="", repr=False)
    url: LongText = ""
    notes: Body = Field(default="", repr=False)
    upload_id: Id | None = None


class EntryPatch(Request):
    """Each field given changes; one left out or null stays, except `folder_id`: null moves
    the entry to the root."""

    folder_id: Id | None = None
    title: Title | None = None
    username: ShortText | None = None
    password: LongText | None = Field(default=None, repr=False)
    url: LongText | None = None
    notes: Body | None = Field(default=None, repr=False)
    upload_id: Id | None = None


class EntryListed(Model):
    id: UUID
    folder_id: UUID | None
    kind: Literal["credential", "note", "file"]
    title: str
    username: str
    url: str
    has_password: bool
    file: FileOut | None = None


class EntryOut(EntryListed):
    password: str = Field(repr=False)
    notes: str = Field(repr=False)
    created_at: datetime
    updated_at: datetime


class VaultOut(Model):
    folders: list[FolderOut]
    entries: list[EntryListed]


def folder_view(folder: Folder) -> FolderOut:
    return FolderOut(id=folder.id, name=folder.name, parent_id=folder.parent_id)


def listed_view(entry: Entry) -> EntryListed:
    fields = entry.fields
    return EntryListed(
        id=entry.id, folder_id=entry.folder_id, kind=entry.kind.value, title=fields.title,
        username=fields.username, url=fields.url, has_password=bool(fields.password),
        file=None if entry.file is None else file_out(entry.file),
    )


def entry_view(entry: Entry) -> EntryOut:
    return EntryOut(
        **dict(listed_view(entry)), password=entry.fields.password, notes=entry.fields.notes,
        created_at=entry.created_at, updated_at=entry.updated_at,
    )


async def contents(call: Call) -> Response:
    folders, entries = await call.services.vault.contents(call.user)
    return json_response(VaultOut(
        folders=[folder_view(f) for f in folders], entries=[listed_view(e) for e in entries]
    ))


async def create_folder(call: Call) -> Response:
    body: FolderIn = call.body
    folder = await call.services.vault.create_folder(call.user, body.name, body.parent_id)
    return json_response(folder_view(folder), status=201)


async def delete_folder(call: Call) -> Response:
    await call.services.vault.delete_folder(call.user, path_id(call.request))
    return no_content()


async def create_entry(call: Call) -> Response:
    body: EntryIn = call.body
    entry = await call.services.vault.create_entry(
        call.user,
        kind=EntryKind(body.kind),
        fields=EntryFields(body.title, body.username, body.password, body.url, body.notes),
        folder_id=body.folder_id,
        upload_id=body.upload_id,
    )
    return json_response(entry_view(entry), status=201)


async def get_entry(call: Call) -> Response:
    entry = await call.services.vault.entry(call.user, path_id(call.request))
    return json_response(entry_view(entry))


async def change_entry(call: Call) -> Response:
    body: EntryPatch = call.body
    change = EntryChange(
        folder_id=body.folder_id,
        move_to_root="folder_id" in body.model_fields_set and body.folder_id is None,
        title=body.title, username=body.username, password=body.password, url=body.url,
        notes=body.notes, upload_id=body.upload_id,
    )
    entry = await call.services.vault.change_entry(call.user, path_id(call.request), change)
    return json_response(entry_view(entry))


async def delete_entry(call: Call) -> Response:
    await call.services.vault.delete_entry(call.user, path_id(call.request))
    return no_content()


async def entry_file(call: Call) -> Response:
    download = await call.services.vault.entry_file(call.user, path_id(call.request))
    return stream_file(download)


OPERATIONS = (
    Operation("GET", "/api/vault", contents, "The caller's folders and entries, without secrets",
              responses={200: VaultOut, 401: None}),
    Operation("POST", "/api/vault/folders", create_folder, "Create a folder",
              body=FolderIn, responses={201: FolderOut, 400: None, 401: None, 403: None,
                                        **_NOT_FOUND}),
    Operation("DELETE", "/api/vault/folders/{id}", delete_folder,
              "Delete a folder with everything inside it",
              responses={204: None, 401: None, 403: None, **_NOT_FOUND}),
    Operation("POST", "/api/vault/entries", create_entry,
              "Create a credential, note or file entry (a file from POST /api/uploads)",
              body=EntryIn, responses={201: EntryOut, 400: None, 401: None, 403: None,
                                       **_NOT_FOUND}),
    Operation("GET", "/api/vault/entries/{id}", get_entry, "An entry with its secrets",
              responses={200: EntryOut, 401: None, **_NOT_FOUND}),
    Operation("PATCH", "/api/vault/entries/{id}", change_entry, "Change an entry",
              body=EntryPatch, responses={200: EntryOut, 400: None, 401: None, 403: None,
                                          **_NOT_FOUND}),
    Operation("DELETE", "/api/vault/entries/{id}", delete_entry, "Delete an entry",
              responses={204: None, 401: None, 403: None, **_NOT_FOUND}),
    Operation("GET", "/api/vault/entries/{id}/file", entry_file, "A file entry's bytes",
              responses={200: None, 401: None, **_NOT_FOUND}),
)
