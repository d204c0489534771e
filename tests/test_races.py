"""What must hold when requests race: no deadlock, no session outliving a password change."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import httpx

from realtime import crypto
from realtime.api.http import Services
from realtime.expiry import purge_once
from realtime.store import sessions as session_store
from tests.conftest import LoggedInUser, MakeUser


async def test_admin_changes_while_admins_send_and_log_in_never_fail(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """Sends between admins and logins of admins while other users are changed all succeed."""
    other_admin = await make_user(is_admin=True)
    changed = await make_user()
    # Each user keeps within the requests one user may have in flight at once.
    sends, renames = asyncio.Semaphore(8), asyncio.Semaphore(8)

    async def send(n: int) -> int:
        async with sends:
            answer = await other_admin.http.post("/api/messages", json={
                "to": [{"kind": "user", "id": admin.id}], "subject": f"race {n}"})
        return answer.status_code

    async def rename(n: int) -> int:
        async with renames:
            answer = await admin.http.patch(
                f"/api/admin/users/{changed.id}", json={"display_name": f"renamed {n}"}
            )
        return answer.status_code

    async def log_in() -> int:
        answer = await other_admin.http.post("/api/auth/login", json={
            "username": other_admin.user.username, "password": other_admin.password})
        return answer.status_code

    statuses = await asyncio.gather(
        *(send(n) for n in range(15)), *(rename(n) for n in range(15)),
        *(log_in() for _ in range(3)),
    )
    assert statuses.count(201) == 15
    assert statuses.count(200) == 18


async def test_a_login_checked_against_a_changed_password_opens_no_session(
    services: Services, make_user: MakeUser
) -> None:
    """A session is opened only with the password hash that was verified: one changed by an
    admin meanwhile leaves the login without a session."""
    person = await make_user()
    async with services.db.transaction() as conn:
        stale = await conn.fetchval(
            "select password_hash from users where id = $1", person.user.id
        )
    await services.accounts.update_user(person.user.id, {"password": "a brand new password"})
    async with services.db.transaction() as conn:
        opened = await session_store.insert_session(
            conn, session_id=uuid.uuid4(), token_hash=crypto.token_digest(crypto.new_token()),
            user_id=person.user.id, password_hash=stale, lifetime=timedelta(hours=1),
        )
    assert opened is None


async def test_two_admins_demoting_each_other_at_once_keep_one_admin(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Two admins removing each other's flag at once: one wins, one gets 409, one admin stays."""
    await raw_db.execute("update users set is_admin = false where id <> $1 and is_admin",
                         admin.user.id)
    second = await make_user(is_admin=True)
    answers = await asyncio.gather(
        admin.http.patch(f"/api/admin/users/{second.id}", json={"is_admin": False}),
        second.http.patch(f"/api/admin/users/{admin.id}", json={"is_admin": False}),
    )
    assert sorted(a.status_code for a in answers) in ([200, 409], [200, 403])
    admins = await raw_db.fetchval("select count(*) from users where is_admin and not disabled")
    assert admins == 1


async def test_unknown_methods_do_not_grow_the_metrics(client: httpx.AsyncClient) -> None:
    """Requests with made-up methods are counted under one label, not one label each."""
    for n in range(5):
        await client.request(f"X{n}RANDOM", "/healthz")
    text = (await client.get("/metrics")).text
    assert "X0RANDOM" not in text and 'method="other"' in text


async def test_the_purge_removes_what_has_ended_and_keeps_the_rest(
    services: Services, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Ended sessions, day-old idempotency keys and ended login windows go; live ones stay."""
    alive, ended = await make_user(), await make_user()
    await raw_db.execute(
        "update sessions set expires_at = now() - interval '1 second' where user_id = $1",
        ended.user.id,
    )
    for key, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=1))):
        await raw_db.execute(
            """insert into idempotency_keys (sender_id, key, request_hash, created_at)
               values ($1, $2, '\\x00', now() - $3::interval)""",
            alive.user.id, key, age,
        )
    for key, age in (("user:gone", timedelta(minutes=16)), ("user:recent", timedelta(minutes=1))):
        await raw_db.execute(
            """insert into login_failures (key, failures, window_started_at)
               values ($1, 1, now() - $2::interval)""",
            key, age,
        )
    purged = await purge_once(services.db, services.settings)
    assert (purged.sessions, purged.idempotency_keys, purged.login_windows) == (1, 1, 1)
    assert (await ended.http.get("/api/me")).status_code == 401
    assert (await alive.http.get("/api/me")).status_code == 200
    assert await raw_db.fetchval("select array_agg(key) from idempotency_keys") == ["fresh"]
    windows = {row["key"] for row in await raw_db.fetch("select key from login_failures")}
    assert "user:recent" in windows and "user:gone" not in windows
