"""Sending, listing, reading, closing, deleting and recalling messages."""

from __future__ import annotations

from starlette.responses import Response

from realtime.api import fields, schemas
from realtime.api.http import (
    Call,
    Operation,
    Query,
    json_response,
    no_content,
    path_id,
    query_int,
)
from realtime.drafts import Draft, Target
from realtime.errors import InvalidInput
from realtime.models import AddresseeKind, Box, Message

MAX_IDEMPOTENCY_KEY = 255
_NOT_FOUND = {404: None}


def summary_view(message: Message) -> schemas.Summary:
    header = message.header
    own = header.is_sender
    return schemas.Summary(
        id=header.id,
        sender=schemas.Person(id=header.sender_id, display_name=header.sender_display_name),
        recipients=[
            schemas.AddresseeOut(kind=a.kind.value, id=a.id, name=a.name)
            for a in message.addressees
        ] if own else None,
        recipient_count=header.recipient_count if own else None,
        read_count=header.read_count if own else None,
        subject=message.subject,
        sent_at=header.sent_at,
        expires_at=header.expires_at,
        high_priority=header.high_priority,
        read_at=header.read_at,
        reply_to=header.reply_to,
        attachments=[],
    )


def detail_view(message: Message) -> schemas.Detail:
    return schemas.Detail(**dict(summary_view(message)), body=message.body or "")


def _idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get("idempotency-key")
    if key is None:
        return None
    # The key is stored as text: PostgreSQL refuses NUL, and no control character belongs in it.
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(
            "the Idempotency-Key is not valid",
            {"Idempotency-Key": f"1 to {MAX_IDEMPOTENCY_KEY} characters, no control characters"},
        )
    return key


async def send(call: Call) -> Response:
    body: schemas.SendRequest = call.body
    draft = Draft(
        to=tuple(Target(AddresseeKind(t.kind), t.id) for t in body.to),
        subject=body.subject,
        body=body.body,
        expires_at=body.expires_at,
        high_priority=body.high_priority,
        reply_to=body.reply_to,
        attachment_count=len(body.attachments),
    )
    receipt = await call.services.messaging.send(call.user, draft, _idempotency_key(call))
    return json_response(
        schemas.SendResponse(id=receipt.id, sent_at=receipt.sent_at, recipients=receipt.recipients),
        status=201,
    )


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


OPERATIONS = (
    Operation(
        "POST", "/api/messages", send, "Send a message to users and groups",
        body=schemas.SendRequest,
        headers=(Query("Idempotency-Key", {"type": "string", "minLength": 1,
                                           "maxLength": MAX_IDEMPOTENCY_KEY,
                                           "pattern": fields.NO_CONTROL},
                       "the same key within 24 h returns the first answer and sends nothing"),),
        responses={201: schemas.SendResponse, 400: None, 401: None, 403: None, 404: None,
                   409: None, 413: None},
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
        "GET", "/api/unread", unread, "The unread count and unread high-priority messages",
        responses={200: schemas.UnreadResponse, 401: None},
    ),
)
