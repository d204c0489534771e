"""The audit trail, for administrators: what happened, filtered, newest first."""

from __future__ import annotations

from starlette.responses import Response

from realtime import codec
from realtime.api import schemas
from realtime.api.fields import NO_CONTROL, has_control, query_time, query_uuid
from realtime.api.http import Call, Operation, Query, json_response, query_int
from realtime.errors import InvalidInput
from realtime.store.audit import Filter, Record

PAGE = 100
MAX_ACTION = 64  # the longest action name asked for


def record_view(record: Record) -> schemas.AuditRecordOut:
    return schemas.AuditRecordOut(
        id=str(record.id), at=record.at,
        actor=None if record.actor_id is None
        else schemas.AuditActor(id=record.actor_id, username=record.actor_username),
        action=record.action,
        target=None if record.target_kind is None or record.target_id is None
        else schemas.AuditTarget(kind=record.target_kind, id=record.target_id),
        address=record.address, outcome=record.outcome, detail=record.detail,
        position=record.position,
        prev_hash=None if record.prev_hash is None else record.prev_hash.hex(),
        hash=None if record.hash is None else record.hash.hex(),
    )


def _filter(call: Call) -> Filter:
    query = call.request.query_params
    after = query.get("after")
    before_id = None
    if after:
        parts = codec.decode_cursor(after, "after")
        if len(parts) != 1 or not isinstance(parts[0], int):
            raise codec.cursor_error("after")
        before_id = parts[0]
    action = query.get("action") or None
    if action is not None and (len(action) > MAX_ACTION or has_control(action)):
        raise InvalidInput("not an action", {"action": f"at most {MAX_ACTION} characters"})
    return Filter(
        actor_id=query_uuid(query["user"], "user") if "user" in query else None,
        action=action,
        since=query_time(query["since"], "since") if "since" in query else None,
        until=query_time(query["until"], "until") if "until" in query else None,
        before_id=before_id,
    )


async def list_records(call: Call) -> Response:
    limit = query_int(call.request, "limit", PAGE, low=1, high=PAGE)
    records = await call.services.audit.records(_filter(call), limit)
    next_cursor = codec.encode_cursor([records[-1].id]) if len(records) == limit else None
    return json_response(schemas.AuditPage(
        records=[record_view(r) for r in records], next=next_cursor
    ))


OPERATIONS = (
    Operation(
        "GET", "/api/admin/audit", list_records,
        "The audit trail, newest first: who did what, never what was said", admin=True,
        query=(
            Query("after", {"type": "string"}, "the `next` cursor of the previous page"),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE}),
            Query("user", {"type": "string", "format": "uuid"}, "the actor's id"),
            Query("action", {"type": "string", "maxLength": MAX_ACTION, "pattern": NO_CONTROL},
                  "such as `login`"),
            Query("since", {"type": "string", "format": "date-time"}, "at or after"),
            Query("until", {"type": "string", "format": "date-time"}, "before"),
        ),
        responses={200: schemas.AuditPage, 400: None, 401: None, 403: None},
    ),
)
