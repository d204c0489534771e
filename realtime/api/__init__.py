"""The HTTP API: one module per resource, each listing its operations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime.api import admin, auth, directory, messages, ops, schemas, uploads, vault
from realtime.api.http import Call, Operation, bind, json_response
from realtime.api.openapi import build_document

_OPENAPI_PATH = "/api/openapi.json"


async def openapi(call: Call) -> Response:
    return json_response(call.request.app.state.openapi)


OPERATIONS: tuple[Operation, ...] = (
    *auth.OPERATIONS,
    *directory.OPERATIONS,
    *messages.OPERATIONS,
    *uploads.OPERATIONS,
    *vault.OPERATIONS,
    *admin.OPERATIONS,
    *ops.OPERATIONS,
    Operation("GET", _OPENAPI_PATH, openapi, "This document", auth=False, database=False,
              responses={200: schemas.OpenAPIDocument}),
)


def routes() -> list[Route]:
    """One Starlette route per path, dispatching on the method."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op
    return [_route(path, ops_by_method) for path, ops_by_method in by_path.items()]


def _route(path: str, ops_by_method: dict[str, Operation]) -> Route:
    endpoints = {method: bind(op) for method, op in ops_by_method.items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return Route(path, dispatch, methods=list(endpoints))


def openapi_document(version: str) -> dict[str, object]:
    return build_document(OPERATIONS, version)
