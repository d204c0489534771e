"""Sending, listing, reading, closing, deleting and recalling messages."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from realtime import protocol
from realtime.api import fields, schemas
from realtime.api.downloads import stream_file
from realtime.api.http import (
    Budget,
    Call,
    Operation,
    Query,
    json_response,
    no_content,
    path_id,
    query_int,
)
from realtime.attachments import Opened
from realtime.config import Settings
from realtime.drafts import AttachmentRequest, Draft, Target
from realtime.errors import InvalidInput
from realtime.messaging import SEND_BUDGET, SENDS
from realtime.models import AddresseeKind, AttachmentKind, Box, EntryFields, Message

MAX_IDEMPOTENCY_KEY = 255
_NOT_FOUND = {404: None}


def summary_view(message: Message) -> schemas.Summary:
    return schemas.Summary.model_validate(protocol.summary(message))


def detail_view(message: Message) -> schemas.Detail:
    return schemas.Detail(**dict(summary_view(message)), body=message.body or "")


def _idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get("idempotency-key")
    if key is None:
        return None
    # The key is stored as text: PostgreSQL refuses NUL, and no control character (C0, DEL, C1)
    # belongs in it.
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or fields.has_control(key):
        raise InvalidInput(
            "the Idempotency-Key is not valid",
            {"Idempotency-Key": f"1 to {MAX_IDEMPOTENCY_KEY} characters, no control characters"},
        )
    return key


def _sends(request: Request, settings: Settings) -> Budget | None:
    """A send spends its unit of the sender's sends a minute as it is authenticated, one
    statement fewer; one with an Idempotency-Key leaves it to the domain, which spends
    nothing for a retry already answered."""
    if "idempotency-key" in request.headers:
        return None
    return Budget(SEND_BUDGET, settings.sends_per_minute, SENDS)


async def send(call: Call) -> Response:
    body: schemas.SendRequest = call.body
    draft = Draft(
        to=tuple(Target(AddresseeKind(t.kind), t.id) for t in body.to),
        subject=body.subject,
        body=body.body,
        expires_at=body.expires_at,
        high_priority=body.high_priority,
        reply_to=body.reply_to,
        attachments=tuple(attachment_request(a) for a in body.attachments),
    )
    receipt = await call.services.messaging.send(
        call.user, draft, _idempotency_key(call), spent=call.spent
    )
    return json_response(
        schemas.SendResponse(id=receipt.id, sent_at=receipt.sent_at, recipients=receipt.recipients),
        status=201,
    )


def attachment_request(attachment: schemas.AttachmentIn) -> AttachmentRequest:
    if isinstance(attachment, schemas.CredentialIn):
        return AttachmentRequest(AttachmentKind.CREDENTIAL, credential=EntryFields(
            attachment.title, attachment.username, attachment.password, attachment.url,
            attachment.notes,
        ))
    if isinstance(attachment, schemas.EntryIn):
        return AttachmentRequest(AttachmentKind.ENTRY, attachment.entry_id)
    if isinstance(attachment, schemas.FolderIn):
        return AttachmentRequest(AttachmentKind.FOLDER, attachment.folder_id)
    return AttachmentRequest(AttachmentKind.FILE, attachment.upload_id)


async def list_messages(call: Call) -> Response:
    request = call.request
    box_name = request.query_params.get("box", Box.INBOX.value)
    if box_name not in (Box.INBOX.value, Box.SENT.value):
        raise InvalidInput("box is not valid", {"box": "inbox or sent"})
    limit = query_int(request, "limit", 50, low=1, high=100)
    before = request.query_params.get("before") or None
    page = await call.services.messaging.list_messages(call.user, Box(box_name), limit, before)
    return json_response(
        schemas.MessageList(
            messages=[summary_view(m) for m in page.messages], next=page.next_cursor
        )
    )


async def get_message(call: Call) -> Response:
    message = await call.services.messaging.get_message(call.user, path_id(call.request))
    return json_response(detail_view(message))


async def mark_read(call: Call) -> Response:
    read_at = await call.services.messaging.mark_read(call.user, path_id(call.request))
    return json_response(schemas.ReadResponse(read_at=read_at))


async def delete_message(call: Call) -> Response:
    await call.services.messaging.delete_message(call.user, path_id(call.request))
    return no_content()


async def unread(call: Call) -> Response:
    count, high_priority = await call.services.messaging.unread(call.user)
    return json_response(
        schemas.UnreadResponse(count=count, high_priority=[summary_view(m) for m in high_priority])
    )


async def get_attachment(call: Call) -> Response:
    """A file as its bytes; a credential, entry or folder as JSON with its secrets."""
    request = call.request
    message_id, attachment_id = path_id(request), path_id(request, "attachment_id")
    attachments = call.services.attachments
    opened = await attachments.open(call.user, message_id, attachment_id)
    if opened.file is not None:
        return stream_file(await call.services.files.download(opened.file.id))
    return json_response(_content_view(opened))


async def get_attached_file(call: Call) -> Response:
    """The bytes of a file entry inside an entry or folder attachment."""
    request = call.request
    download = await call.services.attachments.entry_file(
        call.user, path_id(request), path_id(request, "attachment_id"),
        path_id(request, "entry_id"),
    )
    return stream_file(download)


async def save(call: Call) -> Response:
    body: schemas.SaveRequest = call.body
    saved = await call.services.attachments.save(call.user, path_id(call.request), body.folder_id)
    return json_response(
        schemas.SaveResponse(entry_ids=saved.entry_ids, folder_ids=saved.folder_ids), status=201
    )


def _content_view(opened: Opened) -> dict[str, Any]:
    info = opened.info
    content = _public(opened.content or {})
    if info.kind is AttachmentKind.CREDENTIAL:
        return {"id": str(info.id), "kind": info.kind.value, **content}
    return {"id": str(info.id), "kind": info.kind.value, info.kind.value: content}


def _public(data: Any) -> Any:
    """A copy as the reader gets it: the stored file ids left out (files have their route)."""
    if isinstance(data, dict):
        is_file = "content_type" in data
        return {k: _public(v) for k, v in data.items() if not (is_file and k == "id")}
    if isinstance(data, list):
        return [_public(item) for item in data]
    return data


OPERATIONS = (
    Operation(
        "POST", "/api/messages", send, "Send a message to users and groups",
        body=schemas.SendRequest, spends=_sends,
        headers=(Query("Idempotency-Key", {"type": "string", "minLength": 1,
                                           "maxLength": MAX_IDEMPOTENCY_KEY,
                                           "pattern": fields.NO_CONTROL},
                       "the same key within 24 h returns the first answer and sends nothing"),),
        responses={201: schemas.SendResponse, 400: None, 401: None, 403: None, 404: None,
                   409: None, 413: None, 429: None},
    ),
    Operation(
        "GET", "/api/messages", list_messages, "The inbox or the sent box, newest first",
        query=(
            Query("box", {"type": "string", "enum": ["inbox", "sent"]}),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
            Query("before", {"type": "string"}, "the `next` cursor of the previous page"),
        ),
        responses={200: schemas.MessageList, 400: None, 401: None},
    ),
    Operation(
        "GET", "/api/messages/{id}", get_message, "One message with its body (not marked read)",
        responses={200: schemas.Detail, 401: None, **_NOT_FOUND},
    ),
    Operation(
        "POST", "/api/messages/{id}/read", mark_read, "Close: mark read (idempotent)",
        responses={200: schemas.ReadResponse, 401: None, 403: None, **_NOT_FOUND},
    ),
    Operation(
        "DELETE", "/api/messages/{id}", delete_message,
        "A recipient removes it from their inbox; the sender recalls it from everyone",
        responses={204: None, 401: None, 403: None, **_NOT_FOUND},
    ),
    Operation(
        "GET", "/api/messages/{id}/attachments/{attachment_id}", get_attachment,
        "An attachment: a file as its bytes, a credential, entry or folder as JSON",
        responses={200: None, 401: None, **_NOT_FOUND},
    ),
    Operation(
        "GET", "/api/messages/{id}/attachments/{attachment_id}/entries/{entry_id}/file",
        get_attached_file, "The bytes of a file entry inside an entry or folder attachment",
        responses={200: None, 401: None, **_NOT_FOUND},
    ),
    Operation(
        "POST", "/api/messages/{id}/save", save,
        "Copy every attachment into the caller's vault, at its root or into a folder",
        body=schemas.SaveRequest,
        responses={201: schemas.SaveResponse, 400: None, 401: None, 403: None, **_NOT_FOUND},
    ),
    Operation(
        "GET", "/api/unread", unread, "The unread count and unread high-priority messages",
        responses={200: schemas.UnreadResponse, 401: None},
    ),
)
