"""Administration: users, their rights, and groups (admins only)."""

from __future__ import annotations

from starlette.responses import Response

from realtime.api import schemas
from realtime.api.auth import me_view
from realtime.api.http import Call, Operation, json_response, no_content, path_id
from realtime.models import Group, User


def admin_user_view(user: User) -> schemas.AdminUser:
    return schemas.AdminUser(
        **dict(me_view(user)), disabled=user.disabled, created_at=user.created_at
    )


def group_view(group: Group) -> schemas.GroupOut:
    return schemas.GroupOut(id=group.id, name=group.name, member_ids=list(group.member_ids))


async def list_users(call: Call) -> Response:
    users = await call.services.accounts.list_users()
    return json_response(schemas.UserList(users=[admin_user_view(u) for u in users]))


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
    Operation("GET", "/api/admin/users", list_users, "Every account", admin=True,
              responses={200: schemas.UserList, **_ADMIN}),
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
