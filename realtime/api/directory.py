"""The To field's suggestions, and the password generator of the composer."""

from __future__ import annotations

from starlette.responses import Response

from realtime import crypto
from realtime.api import fields, schemas
from realtime.api.http import (
    Call,
    Operation,
    Query,
    flag_query,
    json_response,
    query_flag,
    query_int,
)
from realtime.errors import InvalidInput
from realtime.models import AddresseeKind

MAX_PREFIX = 100


async def directory(call: Call) -> Response:
    prefix = call.request.query_params.get("q", "")
    if len(prefix) > MAX_PREFIX or "\x00" in prefix:
        raise InvalidInput("q is not valid", {"q": f"at most {MAX_PREFIX} characters, no NUL"})
    results: list[schemas.DirectoryUser | schemas.DirectoryGroup] = []
    for entry in await call.services.groups.directory(prefix):
        if entry.kind is AddresseeKind.USER:
            results.append(schemas.DirectoryUser(
                kind="user", id=entry.id, username=entry.username or "", display_name=entry.name
            ))
        else:
            results.append(schemas.DirectoryGroup(
                kind="group", id=entry.id, name=entry.name, members=entry.members or 0
            ))
    return json_response(schemas.DirectoryResponse(results=results))


async def password(call: Call) -> Response:
    request = call.request
    length = query_int(
        request, "length", 20, low=crypto.PASSWORD_MIN_LENGTH, high=crypto.PASSWORD_MAX_LENGTH
    )
    classes = [name for name in crypto.CHARACTER_CLASSES if query_flag(request, name, True)]
    if not classes:
        raise InvalidInput("choose at least one of lower, upper, digits and symbols")
    avoid = query_flag(request, "avoid_ambiguous", False)
    generated = crypto.generate_password(length, classes, avoid_ambiguous=avoid)
    return json_response(
        schemas.PasswordResponse(password=generated.password, entropy_bits=generated.entropy_bits)
    )


OPERATIONS = (
    Operation(
        "GET", "/api/directory", directory, "Users and groups whose name starts with q",
        query=(Query("q", {"type": "string", "maxLength": MAX_PREFIX, "pattern": fields.NO_NUL},
                     "a prefix of a username, display name or group name"),),
        responses={200: schemas.DirectoryResponse, 400: None, 401: None},
    ),
    Operation(
        "GET", "/api/password", password, "A random password holding every chosen class",
        query=(
            Query("length", {"type": "integer", "minimum": crypto.PASSWORD_MIN_LENGTH,
                             "maximum": crypto.PASSWORD_MAX_LENGTH}),
            flag_query("lower", "a to z"),
            flag_query("upper", "A to Z"),
            flag_query("digits", "0 to 9"),
            flag_query("symbols", "punctuation"),
            flag_query("avoid_ambiguous", "leave out look-alikes such as l, 1, O and 0"),
        ),
        responses={200: schemas.PasswordResponse, 400: None, 401: None},
    ),
)
