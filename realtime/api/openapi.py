"""The OpenAPI document, generated from the operations and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from realtime.api import schemas
from realtime.api.http import Operation

_PATH_PARAM = re.compile(r"{(\w+)}")
_DESCRIPTIONS = {
    200: "OK", 201: "Created", 204: "No content", 400: "Invalid input", 401: "Not logged in",
    403: "Forbidden", 404: "Not found, or not the caller's to see", 409: "Conflict",
    413: "Too large", 429: "Too many attempts, or requests at once; see Retry-After",
    503: "Unavailable: the database did not answer in time; see Retry-After",
}


def build_document(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    pairs: list[tuple[type[pydantic.BaseModel], JsonSchemaMode]] = [
        (schemas.ErrorBody, "serialization")
    ]
    for op in operations:
        if op.body is not None:
            pairs.append((op.body, "validation"))
        pairs += [(model, "serialization") for model in op.responses.values() if model]
    refs, definitions = models_json_schema(
        list(dict.fromkeys(pairs)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "realtime", "version": version,
                 "description": "Secure, real-time in-app messages."},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    # Every path parameter is an id; one in another form names nothing and is answered 404.
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "format": "uuid"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    for where, items in (("query", op.query), ("header", op.headers)):
        parameters += [
            {"name": q.name, "in": where, "required": q.required, "schema": q.schema,
             **({"description": q.description} if q.description else {})}
            for q in items
        ]
    document: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.handler.__name__,
        "parameters": parameters,
        "responses": {
            str(status): _response(status, model, refs)
            for status, model in sorted({**_always(op), **op.responses}.items())
        },
    }
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.auth:
        document["security"] = [{"bearer": []}, {"cookie": []}]
    return document


def _always(op: Operation) -> dict[int, Any]:
    """The answers any operation may give besides its own: 429 past the caller's requests in
    flight, 503 when the database does not answer in time."""
    always: dict[int, Any] = {}
    if op.auth:
        always[429] = None
    if op.database:
        always[503] = None
    return always


def _response(status: int, model: Any, refs: dict[Any, Any]) -> dict[str, Any]:
    described = {"description": _DESCRIPTIONS.get(status, "")}
    if status == 204:
        return described
    if model is None and status < 400:
        return {**described, "content": {"text/plain": {"schema": {"type": "string"}}}}
    schema = refs[(model or schemas.ErrorBody, "serialization")]
    headers = {}
    if status == 429 or (status == 503 and model is None):
        headers["Retry-After"] = {"schema": {"type": "integer"}, "required": True,
                                  "description": "seconds to wait"}
    return {**described, "content": {"application/json": {"schema": schema}},
            **({"headers": headers} if headers else {})}
