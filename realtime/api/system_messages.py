"""System messages: administrators post, list and withdraw them; every user reads and dismisses
the ones shown to them."""

from __future__ import annotations

from starlette.responses import Response

from realtime.api import schemas
from realtime.api.http import Call, Operation, json_response, no_content, path_id
from realtime.models import SystemMessage, SystemMode
from realtime.system_messages import SystemDraft


def system_message_view(message: SystemMessage) -> schemas.SystemMessageOut:
    return schemas.SystemMessageOut(
        id=message.id, subject=message.subject, body=message.body, mode=message.mode.value,
        created_at=message.created_at, ends_at=message.ends_at,
    )


def _listed(messages: list[SystemMessage]) -> Response:
    return json_response(
        schemas.SystemMessageList(messages=[system_message_view(m) for m in messages])
    )


async def post_message(call: Call) -> Response:
    body: schemas.SystemMessageRequest = call.body
    draft = SystemDraft(body.subject, body.body, SystemMode(body.mode), body.ends_at)
    message = await call.services.system_messages.post(call.user, draft)
    return json_response(system_message_view(message), status=201)


async def list_messages(call: Call) -> Response:
    return _listed(await call.services.system_messages.list_active())


async def withdraw_message(call: Call) -> Response:
    await call.services.system_messages.withdraw(path_id(call.request))
    return no_content()


async def shown_messages(call: Call) -> Response:
    assert call.auth is not None
    return _listed(
        await call.services.system_messages.shown_to(call.user.id, call.auth.session_id)
    )


async def dismiss_message(call: Call) -> Response:
    assert call.auth is not None
    await call.services.system_messages.dismiss(
        call.user.id, call.auth.session_id, path_id(call.request)
    )
    return no_content()


_ADMIN = {401: None, 403: None}

OPERATIONS = (
    Operation("POST", "/api/admin/system-messages", post_message,
              "Post a system message to every user", admin=True,
              body=schemas.SystemMessageRequest,
              responses={201: schemas.SystemMessageOut, 400: None, 409: None, 413: None,
                         **_ADMIN}),
    Operation("GET", "/api/admin/system-messages", list_messages,
              "The system messages shown now, newest first", admin=True,
              responses={200: schemas.SystemMessageList, **_ADMIN}),
    Operation("DELETE", "/api/admin/system-messages/{id}", withdraw_message,
              "Withdraw a system message from everyone", admin=True,
              responses={204: None, 404: None, **_ADMIN}),
    Operation("GET", "/api/system-messages", shown_messages,
              "The system messages the caller has to see now, oldest first",
              responses={200: schemas.SystemMessageList, 401: None}),
    Operation("POST", "/api/system-messages/{id}/dismiss", dismiss_message,
              "Dismiss a system message (a reminder: until the next sign-in)",
              responses={204: None, 401: None, 403: None, 404: None}),
)
