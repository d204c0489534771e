"""Administration: users, their rights, and groups, for admins only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from realtime.api.http import Services
from tests.conftest import PASSWORD, LoggedInUser, MakeUser, unique_name

ADMIN_USER_FIELDS = {
    "id", "username", "display_name", "is_admin", "can_send", "can_attach", "can_share_links",
    "disabled", "created_at",
}


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"username": username, "password": password})


async def patch_user(
    admin: LoggedInUser, person: LoggedInUser | str, **changes: Any
) -> httpx.Response:
    user_id = person if isinstance(person, str) else person.id
    return await admin.http.patch(f"/api/admin/users/{user_id}", json=changes)


async def send(sender: LoggedInUser, to: LoggedInUser, **extra: Any) -> httpx.Response:
    return await sender.http.post(
        "/api/messages",
        json={"to": [{"kind": "user", "id": to.id}], "subject": unique_name("subject"), **extra},
    )


def admin_calls(user_id: str, group_id: str) -> list[tuple[str, str, Any]]:
    """Every admin route, with a body that an admin would get through."""
    return [
        ("GET", "/api/admin/users", None),
        ("POST", "/api/admin/users", {"username": unique_name(), "password": PASSWORD}),
        ("PATCH", f"/api/admin/users/{user_id}", {"display_name": "Taken Over"}),
        ("GET", "/api/admin/groups", None),
        ("POST", "/api/admin/groups", {"name": unique_name("group"), "member_ids": []}),
        ("PUT", f"/api/admin/groups/{group_id}/members", {"member_ids": [user_id]}),
        ("DELETE", f"/api/admin/groups/{group_id}", None),
    ]


# Who may


async def test_every_admin_route_refuses_a_non_admin(
    make_user: MakeUser, admin: LoggedInUser, services: Services
) -> None:
    """A logged-in user without is_admin gets 403 on every admin route, and nothing changes."""
    person = await make_user()
    group = await services.groups.create_group(unique_name("group"), [])
    before = (await admin.http.get("/api/admin/users")).json()
    for method, path, body in admin_calls(person.id, str(group.id)):
        answer = await person.http.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"
    assert (await admin.http.get("/api/admin/users")).json() == before
    assert await services.groups.list_groups() == [group]


async def test_every_admin_route_needs_a_login(
    client: httpx.AsyncClient, admin: LoggedInUser, services: Services
) -> None:
    """Without credentials every admin route is 401."""
    group = await services.groups.create_group(unique_name("group"), [])
    for method, path, body in admin_calls(admin.id, str(group.id)):
        answer = await client.request(method, path, json=body)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthenticated"


# Users


async def test_admin_lists_every_user(make_user: MakeUser, admin: LoggedInUser) -> None:
    """The user list holds every account with its rights, and never a password hash."""
    person = await make_user(display_name="Walter Skinner", can_attach=False)
    answer = await admin.http.get("/api/admin/users")
    assert answer.status_code == 200, answer.text
    users = {user["id"]: user for user in answer.json()["users"]}
    assert set(users) == {admin.id, person.id}
    for user in users.values():
        assert set(user) == ADMIN_USER_FIELDS | {"online", "last_seen_at"}
    assert answer.json()["next"] is None
    listed = users[person.id]
    assert listed["username"] == person.user.username
    assert listed["display_name"] == "Walter Skinner"
    assert (listed["is_admin"], listed["can_send"], listed["can_attach"]) == (False, True, False)
    assert listed["disabled"] is False
    assert users[admin.id]["is_admin"] is True


async def test_a_created_user_gets_the_default_rights_and_can_log_in(
    admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    """A new account may send and attach, is no admin, and is named after its username."""
    name = unique_name("new")
    answer = await admin.http.post(
        "/api/admin/users", json={"username": name, "password": PASSWORD}
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == ADMIN_USER_FIELDS
    uuid.UUID(created["id"])
    assert created["username"] == name and created["display_name"] == name
    assert created["is_admin"] is False
    assert created["can_send"] is True and created["can_attach"] is True
    assert created["disabled"] is False
    logged_in = await login(client, name, PASSWORD)
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user"]["id"] == created["id"]


async def test_a_created_user_keeps_the_rights_given(
    admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    """Display name and flags given at creation are the account's."""
    name = unique_name("new")
    answer = await admin.http.post(
        "/api/admin/users",
        json={"username": name, "password": PASSWORD, "display_name": "Monica Reyes",
              "is_admin": True, "can_send": False, "can_attach": False,
              "can_share_links": False},
    )
    assert answer.status_code == 201, answer.text
    logged_in = await login(client, name, PASSWORD)
    assert logged_in.json()["user"] == {
        "id": answer.json()["id"], "username": name, "display_name": "Monica Reyes",
        "is_admin": True, "can_send": False, "can_attach": False, "can_share_links": False,
        "can_email_links": False, "max_file_mb": 25, "max_lifetime": None,
    }


async def test_a_taken_username_in_any_case_is_a_conflict(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """Creating a username that exists, in whatever case, is 409 and creates nothing."""
    person = await make_user()
    for name in (person.user.username, person.user.username.upper()):
        answer = await admin.http.post(
            "/api/admin/users", json={"username": name, "password": PASSWORD}
        )
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "conflict"
    assert len((await admin.http.get("/api/admin/users")).json()["users"]) == 2


BAD_NEW_USERS: list[tuple[dict[str, Any], str]] = [
    ({"username": "", "password": PASSWORD}, "username"),
    ({"username": "has space", "password": PASSWORD}, "username"),
    ({"username": "-leading-dash", "password": PASSWORD}, "username"),
    ({"username": "a" * 65, "password": PASSWORD}, "username"),
    ({"username": "line\nbreak", "password": PASSWORD}, "username"),
    ({"username": "nul\x00name", "password": PASSWORD}, "username"),
    ({"username": 42, "password": PASSWORD}, "username"),
    ({"password": PASSWORD}, "username"),
    ({"username": "shorty", "password": "1234567"}, "password"),
    ({"username": "nulpass", "password": "correct\x00horse"}, "password"),
    ({"username": "nopass"}, "password"),
    ({"username": "nuldisplay", "password": PASSWORD, "display_name": "a\x00b"}, "display_name"),
    ({"username": "longdisplay", "password": PASSWORD, "display_name": "d" * 101}, "display_name"),
    ({"username": "stringflag", "password": PASSWORD, "is_admin": "true"}, "is_admin"),
    ({"username": "extra", "password": PASSWORD, "role": "root"}, "role"),
]


async def test_a_bad_new_user_is_refused_naming_the_field(admin: LoggedInUser) -> None:
    """An invalid username, password, display name, flag or an unknown field is 400 naming it."""
    for body, field in BAD_NEW_USERS:
        answer = await admin.http.post("/api/admin/users", json=body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid"
        assert field in error["fields"], (body, error)
    assert len((await admin.http.get("/api/admin/users")).json()["users"]) == 1


async def test_a_body_that_is_not_json_is_refused(admin: LoggedInUser) -> None:
    """Broken JSON or another content type is a 400, never a 500."""
    broken = await admin.http.post(
        "/api/admin/users", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400, broken.text
    form = await admin.http.post("/api/admin/users", data={"username": "formy"})
    assert form.status_code == 400, form.text
    assert form.json()["error"]["code"] == "invalid"


async def test_admin_changes_a_display_name(make_user: MakeUser, admin: LoggedInUser) -> None:
    """A new display name shows in the user's own /api/me."""
    person = await make_user()
    answer = await patch_user(admin, person, display_name="Jeffrey Spender")
    assert answer.status_code == 200, answer.text
    assert answer.json()["display_name"] == "Jeffrey Spender"
    assert answer.json()["username"] == person.user.username
    assert (await person.http.get("/api/me")).json()["display_name"] == "Jeffrey Spender"


async def test_a_new_password_ends_the_old_sessions(
    make_user: MakeUser, admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    """After a password change the old sessions are gone, and only the new password logs in."""
    person = await make_user()
    new_password = "a brand new passphrase"
    answer = await patch_user(admin, person, password=new_password)
    assert answer.status_code == 200, answer.text
    assert "password" not in answer.json() and "password_hash" not in answer.json()
    assert (await person.http.get("/api/me")).status_code == 401
    assert (await login(client, person.user.username, person.password)).status_code == 401
    assert (await login(client, person.user.username, new_password)).status_code == 200
    assert (await admin.http.get("/api/me")).status_code == 200


async def test_can_send_off_stops_sending(make_user: MakeUser, admin: LoggedInUser) -> None:
    """A user whose can_send is turned off gets 403 on send; turned on again, they send."""
    person = await make_user()
    other = await make_user()
    answer = await patch_user(admin, person, can_send=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["can_send"] is False
    assert (await person.http.get("/api/me")).json()["can_send"] is False
    refused = await send(person, other)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    assert (await other.http.get("/api/messages")).json()["messages"] == []
    assert (await patch_user(admin, person, can_send=True)).status_code == 200
    sent = await send(person, other)
    assert sent.status_code == 201, sent.text


async def test_can_attach_off_stops_attachments_only(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """Without can_attach a message with an attachment is 403; one without still goes."""
    person = await make_user()
    other = await make_user()
    answer = await patch_user(admin, person, can_attach=False)
    assert answer.status_code == 200, answer.text
    assert (await person.http.get("/api/me")).json()["can_attach"] is False
    credential = {"kind": "credential", "title": "wifi", "username": "guest", "password": "pw"}
    refused = await send(person, other, attachments=[credential])
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    sent = await send(person, other)
    assert sent.status_code == 201, sent.text
    assert (await patch_user(admin, person, can_attach=True)).status_code == 200
    allowed = await send(person, other, attachments=[credential])
    assert allowed.status_code != 403, allowed.text


async def test_is_admin_grants_and_removes_the_admin_routes(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """A user made admin can use the admin routes; demoted again, they cannot."""
    person = await make_user()
    assert (await person.http.get("/api/admin/users")).status_code == 403
    promoted = await patch_user(admin, person, is_admin=True)
    assert promoted.status_code == 200 and promoted.json()["is_admin"] is True
    assert (await person.http.get("/api/admin/users")).status_code == 200
    assert (await person.http.get("/api/me")).json()["is_admin"] is True
    demoted = await patch_user(admin, person, is_admin=False)
    assert demoted.status_code == 200 and demoted.json()["is_admin"] is False
    assert (await person.http.get("/api/admin/users")).status_code == 403


async def test_disabling_ends_the_sessions_and_the_logins(
    make_user: MakeUser, admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    """A disabled user's token stops working at once and they cannot log in; enabled, they can."""
    person = await make_user()
    answer = await patch_user(admin, person, disabled=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["disabled"] is True
    me = await person.http.get("/api/me")
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "unauthenticated"
    assert (await login(client, person.user.username, person.password)).status_code == 401
    assert (await patch_user(admin, person, disabled=False)).status_code == 200
    assert (await person.http.get("/api/me")).status_code == 401, "old sessions stay ended"
    assert (await login(client, person.user.username, person.password)).status_code == 200


async def test_the_last_admin_cannot_be_demoted_or_disabled(admin: LoggedInUser) -> None:
    """The only enabled admin can neither lose the flag nor be disabled (409)."""
    for change in ({"is_admin": False}, {"disabled": True}, {"is_admin": False, "disabled": True}):
        answer = await patch_user(admin, admin, **change)
        assert answer.status_code == 409, (change, answer.text)
        assert answer.json()["error"]["code"] == "conflict"
    me = await admin.http.get("/api/me")
    assert me.status_code == 200 and me.json()["is_admin"] is True


async def test_a_disabled_admin_does_not_count_as_another_admin(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """With the other admin disabled, the remaining one is still the last and stays admin."""
    other = await make_user(is_admin=True)
    assert (await patch_user(admin, other, disabled=True)).status_code == 200
    answer = await patch_user(admin, admin, is_admin=False)
    assert answer.status_code == 409, answer.text


async def test_an_admin_can_step_down_once_another_exists(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """With a second enabled admin, the first can be demoted; then the second is the last."""
    other = await make_user(is_admin=True)
    answer = await patch_user(other, admin, is_admin=False)
    assert answer.status_code == 200, answer.text
    assert (await admin.http.get("/api/admin/users")).status_code == 403
    assert (await patch_user(other, other, disabled=True)).status_code == 409


async def test_changing_an_unknown_user_is_404(admin: LoggedInUser) -> None:
    """PATCH on an id that names no user is 404."""
    for user_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
        answer = await patch_user(admin, user_id, display_name="Nobody")
        assert answer.status_code == 404, (user_id, answer.text)
        assert answer.json()["error"]["code"] == "not_found"


async def test_a_bad_change_is_refused_naming_the_field(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """A short password, a non-boolean flag or an unknown field is 400 and changes nothing."""
    person = await make_user()
    changes: list[tuple[dict[str, Any], str]] = [
        ({"password": "short"}, "password"),
        ({"can_send": "no"}, "can_send"),
        ({"disabled": 1}, "disabled"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"display_name": ""}, "display_name"),
        ({"username": "renamed"}, "username"),
    ]
    for change, field in changes:
        answer = await patch_user(admin, person, **change)
        assert answer.status_code == 400, (change, answer.text)
        assert field in answer.json()["error"]["fields"], answer.text
    me = await person.http.get("/api/me")
    assert me.status_code == 200
    assert me.json()["username"] == person.user.username
    assert me.json()["can_send"] is True


# Groups


async def test_admin_creates_and_lists_groups(make_user: MakeUser, admin: LoggedInUser) -> None:
    """A created group answers 201 with its members and appears in the list."""
    first, second = await make_user(), await make_user()
    name = unique_name("Group")
    answer = await admin.http.post(
        "/api/admin/groups", json={"name": name, "member_ids": [first.id, second.id]}
    )
    assert answer.status_code == 201, answer.text
    group = answer.json()
    assert set(group) == {"id", "name", "member_ids", "members"}
    uuid.UUID(group["id"])
    assert group["name"] == name
    assert sorted(group["member_ids"]) == sorted([first.id, second.id])
    empty = await admin.http.post("/api/admin/groups", json={"name": unique_name("empty")})
    assert empty.status_code == 201 and empty.json()["member_ids"] == []
    listed = await admin.http.get("/api/admin/groups")
    assert listed.status_code == 200, listed.text
    by_id = {g["id"]: g for g in listed.json()["groups"]}
    assert set(by_id) == {group["id"], empty.json()["id"]}
    assert sorted(by_id[group["id"]]["member_ids"]) == sorted([first.id, second.id])


async def test_a_group_with_an_unknown_member_is_refused(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """Naming a member who does not exist is 400 on member_ids, and no group is made."""
    person = await make_user()
    answer = await admin.http.post(
        "/api/admin/groups",
        json={"name": unique_name("group"), "member_ids": [person.id, str(uuid.uuid4())]},
    )
    assert answer.status_code == 400, answer.text
    assert "member_ids" in answer.json()["error"]["fields"]
    assert (await admin.http.get("/api/admin/groups")).json()["groups"] == []


async def test_a_taken_group_name_in_any_case_is_a_conflict(admin: LoggedInUser) -> None:
    """A second group with the same name, whatever its case, is 409."""
    name = unique_name("Team")
    assert (await admin.http.post("/api/admin/groups", json={"name": name})).status_code == 201
    for again in (name, name.upper(), name.lower()):
        answer = await admin.http.post("/api/admin/groups", json={"name": again})
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "conflict"
    assert len((await admin.http.get("/api/admin/groups")).json()["groups"]) == 1


async def test_a_bad_group_is_refused_naming_the_field(admin: LoggedInUser) -> None:
    """A bad group name, a malformed member id or an unknown field is 400 naming it."""
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "ok", "member_ids": ["not-a-uuid"]}, "member_ids.0"),
        ({"name": "ok", "members": []}, "members"),
    ]
    for body, field in bad:
        answer = await admin.http.post("/api/admin/groups", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert field in answer.json()["error"]["fields"], (body, answer.text)
    assert (await admin.http.get("/api/admin/groups")).json()["groups"] == []


async def test_putting_members_replaces_them(make_user: MakeUser, admin: LoggedInUser) -> None:
    """PUT members makes the group hold exactly the given users."""
    first, second, third = await make_user(), await make_user(), await make_user()
    created = await admin.http.post(
        "/api/admin/groups", json={"name": unique_name("group"), "member_ids": [first.id]}
    )
    group_id = created.json()["id"]
    answer = await admin.http.put(
        f"/api/admin/groups/{group_id}/members", json={"member_ids": [second.id, third.id]}
    )
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["member_ids"]) == sorted([second.id, third.id])
    refused = await admin.http.put(
        f"/api/admin/groups/{group_id}/members", json={"member_ids": [str(uuid.uuid4())]}
    )
    assert refused.status_code == 400, refused.text
    emptied = await admin.http.put(f"/api/admin/groups/{group_id}/members", json={"member_ids": []})
    assert emptied.status_code == 200 and emptied.json()["member_ids"] == []
    [listed] = (await admin.http.get("/api/admin/groups")).json()["groups"]
    assert listed["member_ids"] == []


async def test_a_deleted_group_is_gone(admin: LoggedInUser) -> None:
    """DELETE answers 204; afterwards the group is not listed and every call on it is 404."""
    created = await admin.http.post("/api/admin/groups", json={"name": unique_name("group")})
    group_id = created.json()["id"]
    assert (await admin.http.delete(f"/api/admin/groups/{group_id}")).status_code == 204
    assert (await admin.http.get("/api/admin/groups")).json()["groups"] == []
    again = await admin.http.delete(f"/api/admin/groups/{group_id}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    members = await admin.http.put(
        f"/api/admin/groups/{group_id}/members", json={"member_ids": [admin.id]}
    )
    assert members.status_code == 404, members.text


async def test_an_unknown_group_is_404(admin: LoggedInUser) -> None:
    """Deleting or setting the members of a group that does not exist is 404."""
    for group_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await admin.http.delete(f"/api/admin/groups/{group_id}")).status_code == 404
        answer = await admin.http.put(
            f"/api/admin/groups/{group_id}/members", json={"member_ids": []}
        )
        assert answer.status_code == 404, (group_id, answer.text)
