"""Administration: users, their rights, and groups (admins only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from realtime import codec, protocol
from realtime.api import schemas
from realtime.api.auth import me_view
from realtime.api.fields import NO_CONTROL, has_control
from realtime.api.http import (
    Call,
    Operation,
    Query,
    flag_query,
    json_response,
    no_content,
    path_id,
    query_flag,
    query_int,
)
from realtime.errors import InvalidInput
from realtime.models import Group, ListedUser, User, UserSearch

PAGE = 100  # users per page, at most
MAX_PREFIX = 100


def admin_user_view(user: User) -> schemas.AdminUser:
    return schemas.AdminUser(
        **dict(me_view(user)), disabled=user.disabled, created_at=user.created_at
    )


def group_view(group: Group) -> schemas.GroupOut:
    return schemas.GroupOut(
        id=group.id, name=group.name, member_ids=list(group.member_ids),
        members=[schemas.GroupMemberOut(id=m.id, username=m.username,
                                        display_name=m.display_name) for m in group.members],
    )


def listed_user_json(listed: ListedUser) -> dict[str, Any]:
    """A user of the list as `schemas.ListedUser` has it, built as plain data: a page holds up
    to 100, and validating each through the models would cost more than the query."""
    user = listed.user
    return protocol.me(user) | {
        "disabled": user.disabled, "created_at": user.created_at,
        "online": listed.online, "last_seen_at": listed.last_seen_at,
    }


def _user_search(request: Request) -> UserSearch:
    query = request.query_params
    prefix = query.get("q", "")
    if len(prefix) > MAX_PREFIX or has_control(prefix):
        raise InvalidInput("q is not valid", {"q": f"at most {MAX_PREFIX} characters, one line"})
    after = None
    if query.get("after"):  # empty: the first page
        parts = codec.decode_cursor(query["after"], "after")
        if len(parts) != 1 or not isinstance(parts[0], str):
            raise codec.cursor_error("after")
        after = parts[0]

    def wanted(name: str) -> bool | None:
        return query_flag(request, name, False) if name in query else None

    return UserSearch(
        prefix=prefix or None, is_admin=wanted("admin"), disabled=wanted("disabled"),
        can_send=wanted("can_send"), online=wanted("online"), after=after,
    )


async def list_users(call: Call) -> Response:
    limit = query_int(call.request, "limit", PAGE, low=1, high=PAGE)
    # One more than the page, to tell whether another page follows.
    found = await call.services.accounts.page_users(_user_search(call.request), limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return json_response({
        "users": [listed_user_json(u) for u in page],
        "next": codec.encode_cursor([page[-1].user.username.lower()]) if more else None,
    })


async def create_user(call: Call) -> Response:
    body: schemas.CreateUserRequest = call.body
    user = await call.services.accounts.create_user(
        body.username,
        body.password,
        display_name=body.display_name,
        is_admin=body.is_admin,
        can_send=body.can_send,
        can_attach=body.can_attach,
        can_share_links=body.can_share_links,
    )
    return json_response(admin_user_view(user), status=201)


async def update_user(call: Call) -> Response:
    body: schemas.UpdateUserRequest = call.body
    changes = body.model_dump(exclude_none=True)
    user = await call.services.accounts.update_user(path_id(call.request), changes)
    return json_response(admin_user_view(user))


async def list_groups(call: Call) -> Response:
    groups = await call.services.groups.list_groups()
    return json_response(schemas.GroupList(groups=[group_view(g) for g in groups]))


async def create_group(call: Call) -> Response:
    body: schemas.CreateGroupRequest = call.body
    group = await call.services.groups.create_group(body.name, body.member_ids)
    return json_response(group_view(group), status=201)


async def set_members(call: Call) -> Response:
    body: schemas.MembersRequest = call.body
    group = await call.services.groups.set_members(path_id(call.request), body.member_ids)
    return json_response(group_view(group))


async def delete_group(call: Call) -> Response:
    await call.services.groups.delete_group(path_id(call.request))
    return no_content()


_ADMIN = {401: None, 403: None}

OPERATIONS = (
    Operation(
        "GET", "/api/admin/users", list_users,
        "The accounts in username order, a page at a time: found by a prefix of the username or"
        " display name, filtered by their flags and by who is online", admin=True,
        query=(
            Query("q", {"type": "string", "maxLength": MAX_PREFIX, "pattern": NO_CONTROL},
                  "a prefix of the username or display name, any case"),
            Query("after", {"type": "string"}, "the `next` cursor of the previous page"),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE}),
            flag_query("admin", "administrators only (1) or none of them (0)"),
            flag_query("disabled", "disabled accounts only (1) or enabled ones only (0)"),
            flag_query("can_send", "those who may send (1) or may not (0), by their own flag"),
            flag_query("online", "those with an open socket on any node (1) or without (0)"),
        ),
        responses={200: schemas.UserList, 400: None, **_ADMIN},
    ),
    Operation("POST", "/api/admin/users", create_user, "Create an account", admin=True,
              body=schemas.CreateUserRequest,
              responses={201: schemas.AdminUser, 400: None, 409: None, 413: None, **_ADMIN}),
    Operation("PATCH", "/api/admin/users/{id}", update_user,
              "Change an account; disabling it or a new password ends its sessions", admin=True,
              body=schemas.UpdateUserRequest,
              responses={200: schemas.AdminUser, 400: None, 404: None, 409: None, 413: None,
                         **_ADMIN}),
    Operation("GET", "/api/admin/groups", list_groups, "Every group", admin=True,
              responses={200: schemas.GroupList, **_ADMIN}),
    Operation("POST", "/api/admin/groups", create_group, "Create a group", admin=True,
              body=schemas.CreateGroupRequest,
              responses={201: schemas.GroupOut, 400: None, 409: None, 413: None, **_ADMIN}),
    Operation("PUT", "/api/admin/groups/{id}/members", set_members,
              "Replace a group's members", admin=True, body=schemas.MembersRequest,
              responses={200: schemas.GroupOut, 400: None, 404: None, 413: None, **_ADMIN}),
    Operation("DELETE", "/api/admin/groups/{id}", delete_group, "Delete a group", admin=True,
              responses={204: None, 404: None, **_ADMIN}),
)
