"""The test's users and groups, made or reused through the admin API, and logged in."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from realtime.loadtest.http import Deployment
from realtime.loadtest.options import Options

T = TypeVar("T")
# Making, changing and logging in an account each hash a password on the server (Argon2id):
# a few at a time keeps the server's other work going and stays clear of the login throttle.
SETUP_CONCURRENCY = 8


@dataclass(frozen=True)
class Member:
    index: int
    id: str
    token: str


@dataclass(frozen=True)
class Group:
    id: str
    members: frozenset[int]  # user indexes


def username(options: Options, index: int) -> str:
    return f"{options.user_prefix}-{index + 1:05d}"


def group_layout(users: int, size: int) -> list[frozenset[int]]:
    """Groups of `size` consecutive users covering everyone, the last one wrapping around."""
    count = -(-users // size)
    return [frozenset((k * size + j) % users for j in range(size)) for k in range(count)]


async def log_in_admin(deployment: Deployment, options: Options) -> str:
    body = await deployment.setup_call(
        "POST", "/api/auth/login",
        json={"username": options.admin_user, "password": options.admin_password},
        fields=("token",),
    )
    token: str = body["token"]
    return token


async def existing_users(deployment: Deployment, admin: str, prefix: str) -> dict[str, str]:
    """The id of every account whose username starts with `prefix`, page by page."""
    found: dict[str, str] = {}
    query = urlencode({"q": prefix})
    while True:
        page = await deployment.setup_call(
            "GET", f"/api/admin/users?{query}", token=admin, fields=("users", "next")
        )
        found.update({user["username"]: user["id"] for user in page["users"]})
        if page["next"] is None:
            return found
        query = urlencode({"q": prefix, "after": page["next"]})


async def prepare_users(
    deployment: Deployment, options: Options, admin: str, done: Callable[[], None]
) -> list[Member]:
    """Make the users `PREFIX-00001`...; existing ones get a new password and may send again."""
    existing = await existing_users(deployment, admin, options.user_prefix + "-")
    password = secrets.token_urlsafe(24)

    async def ready(index: int) -> Member:
        name = username(options, index)
        account = {"password": password, "can_send": True}
        if name in existing:
            user_id = existing[name]
            await deployment.setup_call(
                "PATCH", f"/api/admin/users/{user_id}", token=admin,
                json=account | {"disabled": False},
            )
        else:
            made = await deployment.setup_call(
                "POST", "/api/admin/users", token=admin, expect=201, fields=("id",),
                json=account | {"username": name, "display_name": f"Load test {index + 1}"},
            )
            user_id = made["id"]
        session = await deployment.setup_call(
            "POST", "/api/auth/login", json={"username": name, "password": password},
            fields=("token",),
        )
        done()
        return Member(index, user_id, session["token"])

    return await _bounded(ready(index) for index in range(options.users))


async def prepare_groups(
    deployment: Deployment, options: Options, admin: str, members: list[Member]
) -> list[Group]:
    """The groups `PREFIX-gSIZE-0001`...: made, or given their members again."""
    if options.group_size is None:
        return []
    listed = await deployment.setup_call(
        "GET", "/api/admin/groups", token=admin, fields=("groups",)
    )
    existing = {group["name"]: group["id"] for group in listed["groups"]}

    async def ready(number: int, indexes: frozenset[int]) -> Group:
        name = f"{options.user_prefix}-g{options.group_size}-{number + 1:04d}"
        member_ids: dict[str, Any] = {"member_ids": [members[i].id for i in sorted(indexes)]}
        if name in existing:
            group_id = existing[name]
            await deployment.setup_call(
                "PUT", f"/api/admin/groups/{group_id}/members", token=admin, json=member_ids
            )
        else:
            made = await deployment.setup_call(
                "POST", "/api/admin/groups", token=admin, expect=201, fields=("id",),
                json=member_ids | {"name": name},
            )
            group_id = made["id"]
        return Group(group_id, indexes)

    layout = group_layout(options.users, options.group_size)
    return await _bounded(ready(number, indexes) for number, indexes in enumerate(layout))


async def _bounded(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await every piece of work, SETUP_CONCURRENCY at a time, in order."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(piece: Awaitable[T]) -> T:
        async with gate:
            return await piece

    async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
        tasks = [group.create_task(one(piece)) for piece in work]
    return [task.result() for task in tasks]
