"""`POST /api/uploads`: a file's bytes, streamed in, sealed as they arrive, to attach later."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from realtime.api.fields import Response as Model
from realtime.api.http import Call, Operation, Query, json_response
from realtime.errors import InvalidInput
from realtime.files import too_large_file


class UploadOut(Model):
    upload_id: UUID
    name: str
    size: int
    content_type: str


async def upload(call: Call) -> Response:
    request = call.request
    name = request.query_params.get("name")
    if not name:  # one that cleans up to nothing is called "file"
        raise InvalidInput("name the file", {"name": "required"})
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isascii() and length.isdigit() else None
    largest = call.user.organisation.max_file_bytes
    if declared is not None and declared > largest:
        raise too_large_file(largest)
    try:
        info = await call.services.files.upload(
            call.user, name, request.headers.get("content-type"), request.stream(),
            declared=declared, left=request.is_disconnected,
        )
    except ClientDisconnect:  # nothing was kept; nobody is left to answer
        return Response(status_code=400)
    return json_response(
        UploadOut(upload_id=info.id, name=info.name, size=info.size,
                  content_type=info.content_type),
        status=201,
    )


OPERATIONS = (
    Operation(
        "POST", "/api/uploads", upload,
        "Upload a file (the raw body, at most 25 MiB) to attach to a message or a vault entry "
        "within an hour",
        query=(Query("name", {"type": "string", "minLength": 1}, "the file's name",
                     required=True),),
        responses={201: UploadOut, 400: None, 401: None, 403: None, 413: None, 429: None},
    ),
)
