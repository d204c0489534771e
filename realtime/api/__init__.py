"""The HTTP API: one module per resource, each listing its operations."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime.api import (
    admin,
    audit,
    auth,
    directory,
    links,
    messages,
    ops,
    organisation,
    schemas,
    system_messages,
    uploads,
    vault,
)
from realtime.api.http import Call, Operation, bind, json_response
from realtime.api.openapi import build_document

_OPENAPI_PATH = "/api/openapi.json"


async def openapi(call: Call) -> Response:
    return json_response(call.request.app.state.openapi)


OPERATIONS: tuple[Operation, ...] = (
    *auth.OPERATIONS,
    *directory.OPERATIONS,
    *messages.OPERATIONS,
    *links.OPERATIONS,
    *uploads.OPERATIONS,
    *vault.OPERATIONS,
    *admin.OPERATIONS,
    *system_messages.OPERATIONS,
    *organisation.OPERATIONS,
    *audit.OPERATIONS,
    *ops.OPERATIONS,
    Operation("GET", _OPENAPI_PATH, openapi, "This document", auth=False, database=False,
              responses={200: schemas.OpenAPIDocument}),
)


def routes() -> list[Route]:
    """One Starlette route per path, dispatching on the method. A parameter never takes the
    word a path beside it spells out in its place (`/api/links/{id}` does not take `open` of
    `/api/links/open`), so that such a path answers its own methods, and 405 for the others."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op
    return [
        _route(_excluding_siblings(path, by_path), ops_by_method)
        for path, ops_by_method in by_path.items()
    ]


def _excluding_siblings(path: str, paths: Iterable[str]) -> str:
    """The route path of `path`: each parameter with a sibling path's word in its place gets a
    convertor that refuses those words."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not part.startswith("{"):
            continue
        words = {
            other[i] for other in (p.split("/") for p in paths)
            if len(other) > i and other[:i] == parts[:i] and "{" not in other[i]
        }
        if words:
            name = "not_" + "_".join(sorted(words))
            register_url_convertor(name, _refusing(words))
            parts[i] = f"{part[:-1]}:{name}}}"
    return "/".join(parts)


def _refusing(words: set[str]) -> StringConvertor:
    class Refusing(StringConvertor):
        regex = "(?!(?:" + "|".join(sorted(map(re.escape, words))) + ")$)[^/]+"

    return Refusing()


def _route(path: str, ops_by_method: dict[str, Operation]) -> Route:
    endpoints = {method: bind(op) for method, op in ops_by_method.items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return Route(path, dispatch, methods=list(endpoints))


def openapi_document(version: str) -> dict[str, object]:
    return build_document(OPERATIONS, version)
