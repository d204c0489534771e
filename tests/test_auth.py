"""Accounts: logging in and out, the session cookie, the login throttle, Origin checks, /api/me."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from realtime import crypto
from realtime.api.http import Services
from realtime.app import create_app
from realtime.config import Settings
from tests.conftest import BASE_URL, PASSWORD, LoggedInUser, MakeUser, unique_name

OWN_ORIGIN = {"Origin": BASE_URL}

OpenClient = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def open_client(app: Starlette) -> AsyncIterator[OpenClient]:
    """Make HTTP clients on the app without credentials, closed at the end."""
    opened: list[httpx.AsyncClient] = []

    def make(base_url: str = BASE_URL) -> httpx.AsyncClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()


@asynccontextmanager
async def second_app(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database with some settings changed, and a client for it."""
    other = create_app(dataclasses.replace(settings, **changes))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


async def login(
    http: httpx.AsyncClient, username: str, password: str, **kwargs: Any
) -> httpx.Response:
    return await http.post(
        "/api/auth/login", json={"username": username, "password": password}, **kwargs
    )


async def cookie_session(open_client: OpenClient, person: LoggedInUser) -> httpx.AsyncClient:
    """A client holding only the session cookie of a fresh login of `person`."""
    http = open_client()
    answer = await login(http, person.user.username, person.password)
    assert answer.status_code == 200, answer.text
    assert "authorization" not in http.headers and http.cookies.get("session")
    return http


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    """The attributes of the `session` Set-Cookie header, names lower-cased."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    name_value, *attributes = (part.strip() for part in header.split(";"))
    parsed = {"session": name_value.partition("=")[2]}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        parsed[key.lower()] = value
    return parsed


def message_to(person: LoggedInUser) -> dict[str, Any]:
    return {"to": [{"kind": "user", "id": person.id}], "subject": unique_name("subject")}


async def set_idle_for(raw_db: asyncpg.Connection, token: str, idle: timedelta) -> None:
    """Make a session look unused for `idle`."""
    status = await raw_db.execute(
        "update sessions set last_seen_at = now() - $2::interval where token_hash = $1",
        crypto.token_digest(token), idle,
    )
    assert status == "UPDATE 1"


# Logging in


async def test_login_answers_token_and_user_and_sets_a_strict_cookie(
    services: Services, open_client: OpenClient
) -> None:
    """A right pair gets a token, the user, and an HttpOnly SameSite=Strict cookie on Path=/."""
    name = unique_name()
    user = await services.accounts.create_user(name, PASSWORD, display_name="Dana Scully")
    answer = await login(open_client(), name, PASSWORD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "user"}
    assert body["user"] == {
        "id": str(user.id), "username": name, "display_name": "Dana Scully",
        "is_admin": False, "can_send": True, "can_attach": True, "can_share_links": True,
        "can_email_links": False,  # the test server has no mail relay
        "max_file_mb": 25, "max_lifetime": None,  # the organisation's defaults
    }
    cookie = cookie_attributes(answer)
    assert cookie["session"] == body["token"]
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert "secure" not in cookie, "plain http must not mark the cookie Secure"
    assert int(cookie["max-age"]) == int(services.settings.session_lifetime.total_seconds())


async def test_login_over_https_marks_the_cookie_secure(
    services: Services, open_client: OpenClient
) -> None:
    """Served over https, the session cookie is Secure."""
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    answer = await login(open_client(base_url="https://testserver"), name, PASSWORD)
    assert answer.status_code == 200, answer.text
    assert "secure" in cookie_attributes(answer)


async def test_every_wrong_pair_gets_the_same_401(
    make_user: MakeUser, admin: LoggedInUser, open_client: OpenClient
) -> None:
    """A wrong password, an unknown user and a disabled user all get one identical 401."""
    known = await make_user()
    disabled = await make_user()
    changed = await admin.http.patch(f"/api/admin/users/{disabled.id}", json={"disabled": True})
    assert changed.status_code == 200, changed.text
    http = open_client()
    answers = [
        await login(http, known.user.username, "not the password"),
        await login(http, unique_name("nobody"), PASSWORD),
        await login(http, disabled.user.username, disabled.password),
    ]
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthenticated"
        assert not answer.headers.get_list("set-cookie")
    assert answers[0].content == answers[1].content == answers[2].content
    assert not http.cookies


async def test_username_is_case_insensitive(services: Services, open_client: OpenClient) -> None:
    """Logging in as MiXeD-case spelling of a username opens that user's session."""
    name = unique_name("casey")
    user = await services.accounts.create_user(name, PASSWORD)
    answer = await login(open_client(), name.upper(), PASSWORD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["id"] == str(user.id)
    assert answer.json()["user"]["username"] == name


async def test_the_token_works_as_a_bearer_header(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """The token from login authenticates `Authorization: Bearer`, without any cookie."""
    person = await make_user()
    http = open_client()
    me = await http.get("/api/me", headers={"Authorization": f"Bearer {person.token}"})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == person.id
    wrong = await http.get("/api/me", headers={"Authorization": f"Bearer {person.token}x"})
    assert wrong.status_code == 401
    basic = await http.get("/api/me", headers={"Authorization": f"Basic {person.token}"})
    assert basic.status_code == 401


async def test_the_cookie_alone_authenticates_reads(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """A browser holding only the session cookie can GET its data without an Origin header."""
    person = await make_user()
    http = await cookie_session(open_client, person)
    me = await http.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["id"] == person.id
    inbox = await http.get("/api/messages")
    assert inbox.status_code == 200, inbox.text


async def test_malformed_login_bodies_get_400(open_client: OpenClient) -> None:
    """A login without a username, with a NUL, an unknown field or broken JSON is a 400."""
    http = open_client()
    bodies: list[Any] = [
        {"password": PASSWORD},
        {"username": "a\x00b", "password": PASSWORD},
        {"username": "someone", "password": PASSWORD, "remember": True},
        {"username": 5, "password": PASSWORD},
    ]
    for body in bodies:
        answer = await http.post("/api/auth/login", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid"
        assert answer.json()["error"]["fields"], body
    broken = await http.post(
        "/api/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid"


# /api/me


async def test_me_shows_the_account_and_its_rights(
    make_user: MakeUser
) -> None:
    """/api/me answers exactly the contract's fields for the caller."""
    person = await make_user(display_name="Fox Mulder", can_send=False, can_attach=False,
                             can_share_links=False)
    me = await person.http.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json() == {
        "id": person.id, "username": person.user.username, "display_name": "Fox Mulder",
        "is_admin": False, "can_send": False, "can_attach": False, "can_share_links": False,
        "can_email_links": False, "max_file_mb": 25, "max_lifetime": None,
    }


async def test_me_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    """Without a cookie or token /api/me is 401 with the contract's error shape."""
    answer = await client.get("/api/me")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "unauthenticated"
    assert isinstance(error["message"], str) and error["message"]


# The login throttle


async def fail_logins(http: httpx.AsyncClient, username: str, times: int) -> None:
    for _ in range(times):
        answer = await login(http, username, "wrong password")
        assert answer.status_code == 401, answer.text


def assert_rate_limited(answer: httpx.Response, settings: Settings) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "rate_limited"
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 0 < int(retry_after) <= settings.login_lockout.total_seconds()
    assert not answer.headers.get_list("set-cookie")


async def test_repeated_failures_lock_the_username_even_for_the_right_password(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """After the allowed failures, even the right password gets 429 with Retry-After."""
    assert settings.login_max_failures == 5
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    await fail_logins(http, name, settings.login_max_failures)
    assert_rate_limited(await login(http, name, PASSWORD), settings)
    assert_rate_limited(await login(http, name, "wrong password"), settings)


async def test_simultaneous_guesses_cannot_slip_past_the_throttle(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """Twenty wrong passwords sent at once get at most the allowed 401s; the rest get 429."""
    name = unique_name("burst")
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    answers = await asyncio.gather(*(login(http, name, "wrong password") for _ in range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(401) == settings.login_max_failures
    assert statuses.count(429) == 20 - settings.login_max_failures
    assert_rate_limited(await login(http, name, PASSWORD), settings)


async def test_the_username_throttle_ignores_case(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """Failures under different spellings of one username count together."""
    name = unique_name("spell")
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    spellings = [name, name.upper(), name.capitalize(), name.swapcase(), name.title()]
    for spelling in spellings[: settings.login_max_failures]:
        assert (await login(http, spelling, "wrong password")).status_code == 401
    assert_rate_limited(await login(http, name, PASSWORD), settings)


async def test_variants_of_one_name_are_one_account_and_share_one_throttle(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """Typed in another case or with spaces around it, a name logs in to the same account and
    its failures count together; a look-alike with a non-ASCII letter is no account at all."""
    name = unique_name("variant")
    user = await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    for typed in (f"  {name.upper()} ", f"{name.title()}\t"):
        answer = await login(http, typed, PASSWORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["id"] == str(user.id)
    look_alike = name.replace("v", "\u1d20", 1)  # a small capital V, which folds to nothing ASCII
    assert (await login(http, look_alike, PASSWORD)).status_code == 401
    variants = [f" {name}", name.upper(), f"{name.capitalize()} ", name.swapcase(), f"\t{name}"]
    for typed in variants[: settings.login_max_failures]:
        assert (await login(http, typed, "wrong password")).status_code == 401
    assert_rate_limited(await login(http, name, PASSWORD), settings)
    assert_rate_limited(await login(http, f"  {name.upper()}  ", PASSWORD), settings)


async def test_a_locked_username_does_not_lock_others(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """While one username is locked, another logs in from the same address."""
    locked, other = unique_name(), unique_name()
    await services.accounts.create_user(locked, PASSWORD)
    await services.accounts.create_user(other, PASSWORD)
    http = open_client()
    await fail_logins(http, locked, settings.login_max_failures)
    assert (await login(http, locked, PASSWORD)).status_code == 429
    answer = await login(http, other, PASSWORD)
    assert answer.status_code == 200, answer.text


async def test_unknown_usernames_are_throttled_too(
    open_client: OpenClient, settings: Settings
) -> None:
    """Guessing at a username that does not exist is locked out like guessing at a real one."""
    http = open_client()
    name = unique_name("ghost")
    await fail_logins(http, name, settings.login_max_failures)
    assert_rate_limited(await login(http, name, PASSWORD), settings)


async def test_a_successful_login_clears_the_failures(
    services: Services, open_client: OpenClient, settings: Settings
) -> None:
    """Failures before a successful login no longer count towards the lockout."""
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    below = settings.login_max_failures - 1
    await fail_logins(http, name, below)
    assert (await login(http, name, PASSWORD)).status_code == 200
    await fail_logins(http, name, below)
    answer = await login(http, name, PASSWORD)
    assert answer.status_code == 200, answer.text


async def test_the_lockout_ends_when_its_window_has_passed(
    services: Services, open_client: OpenClient, settings: Settings, raw_db: asyncpg.Connection
) -> None:
    """Once the lockout window is over, the right password logs in again."""
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    await fail_logins(http, name, settings.login_max_failures)
    assert (await login(http, name, PASSWORD)).status_code == 429
    await raw_db.execute(
        "update login_failures set window_started_at = window_started_at - $1::interval",
        settings.login_lockout,
    )
    answer = await login(http, name, PASSWORD)
    assert answer.status_code == 200, answer.text


async def test_many_failures_from_one_address_lock_every_username(
    services: Services, settings: Settings
) -> None:
    """Past the per-address limit, any username from that address gets 429, right or wrong."""
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    async with second_app(settings, login_max_failures_per_address=3) as http:
        for _ in range(3):
            assert (await login(http, unique_name("guess"), "wrong")).status_code == 401
        assert_rate_limited(await login(http, name, PASSWORD), settings)
        assert_rate_limited(await login(http, unique_name("guess"), "wrong"), settings)


# Sessions


async def test_logout_ends_the_session(make_user: MakeUser, open_client: OpenClient) -> None:
    """After logout the token no longer works."""
    person = await make_user()
    answer = await person.http.post("/api/auth/logout")
    assert answer.status_code == 204, answer.text
    http = open_client()
    me = await http.get("/api/me", headers={"Authorization": f"Bearer {person.token}"})
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "unauthenticated"


async def test_logout_by_cookie_clears_the_cookie(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """Logging out in the browser removes the cookie, and its token is dead."""
    person = await make_user()
    http = await cookie_session(open_client, person)
    token = http.cookies["session"]
    answer = await http.post("/api/auth/logout", headers=OWN_ORIGIN)
    assert answer.status_code == 204, answer.text
    cleared = cookie_attributes(answer)
    assert cleared["session"] in ("", '""')
    assert cleared["max-age"] == "0"
    assert "session" not in http.cookies
    assert (await http.get("/api/me")).status_code == 401
    again = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401


async def test_other_sessions_survive_a_logout(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """Logging out on one device leaves the user's other sessions logged in."""
    person = await make_user()
    second = open_client()
    answer = await login(second, person.user.username, person.password)
    other_token = answer.json()["token"]
    assert (await person.http.post("/api/auth/logout")).status_code == 204
    me = await second.get("/api/me", headers={"Authorization": f"Bearer {other_token}"})
    assert me.status_code == 200, me.text
    assert (await person.http.get("/api/me")).status_code == 401


async def test_an_idle_session_ends(
    make_user: MakeUser, raw_db: asyncpg.Connection, settings: Settings
) -> None:
    """A session unused for longer than the idle timeout is refused."""
    person = await make_user()
    await set_idle_for(raw_db, person.token, settings.session_idle_timeout + timedelta(minutes=1))
    answer = await person.http.get("/api/me")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


async def test_a_used_session_stays_alive(
    make_user: MakeUser, raw_db: asyncpg.Connection, settings: Settings
) -> None:
    """A session used within the idle timeout works and its idle clock starts again."""
    person = await make_user()
    await set_idle_for(raw_db, person.token, settings.session_idle_timeout - timedelta(minutes=10))
    assert (await person.http.get("/api/me")).status_code == 200
    idle = await raw_db.fetchval(
        "select extract(epoch from now() - last_seen_at) from sessions where token_hash = $1",
        crypto.token_digest(person.token),
    )
    assert idle < 600


async def test_a_session_past_its_lifetime_ends(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A session past its absolute expiry is refused even if it was just used."""
    person = await make_user()
    assert (await person.http.get("/api/me")).status_code == 200
    status = await raw_db.execute(
        """update sessions set expires_at = now() - interval '1 second', last_seen_at = now()
           where token_hash = $1""",
        crypto.token_digest(person.token),
    )
    assert status == "UPDATE 1"
    assert (await person.http.get("/api/me")).status_code == 401


# Origin checks on cookie-authenticated writes


async def test_a_cookie_write_without_origin_is_refused(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """A POST carried by the cookie but without Origin is 403 and changes nothing."""
    person = await make_user()
    other = await make_user()
    http = await cookie_session(open_client, person)
    logout = await http.post("/api/auth/logout")
    assert logout.status_code == 403, logout.text
    assert logout.json()["error"]["code"] == "forbidden"
    sent = await http.post("/api/messages", json=message_to(other))
    assert sent.status_code == 403, sent.text
    assert (await http.get("/api/me")).status_code == 200, "the session must still be open"
    assert (await other.http.get("/api/messages")).json()["messages"] == []


FOREIGN_ORIGINS = [
    "http://testserver:8080",
    "https://testserver",
    "null",
    "http://testserver.evil",
    "http://evil.testserver",
    "HTTP://TESTSERVER",
    "http://testserver/",
    "http://attacker.example",
]


async def test_a_cookie_write_from_a_foreign_origin_is_refused(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """A cookie-carried POST from any origin but our own, however close, is 403."""
    person = await make_user()
    http = await cookie_session(open_client, person)
    for origin in FOREIGN_ORIGINS:
        headers = {"Origin": origin}
        sent = await http.post("/api/messages", json=message_to(person), headers=headers)
        assert sent.status_code == 403, (origin, sent.text)
        assert sent.json()["error"]["code"] == "forbidden"
        logout = await http.post("/api/auth/logout", headers=headers)
        assert logout.status_code == 403, (origin, logout.text)
    assert (await http.get("/api/me")).status_code == 200
    assert (await person.http.get("/api/messages")).json()["messages"] == []


async def test_a_cookie_write_from_our_own_origin_is_accepted(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """The browser client's own POSTs, carrying Origin: the server's origin, go through."""
    person = await make_user()
    other = await make_user()
    http = await cookie_session(open_client, person)
    sent = await http.post("/api/messages", json=message_to(other), headers=OWN_ORIGIN)
    assert sent.status_code == 201, sent.text
    logout = await http.post("/api/auth/logout", headers=OWN_ORIGIN)
    assert logout.status_code == 204, logout.text


async def test_a_bearer_write_needs_no_origin(
    make_user: MakeUser, open_client: OpenClient
) -> None:
    """A client using the bearer token can POST without an Origin header."""
    person = await make_user()
    other = await make_user()
    http = open_client()
    http.headers["Authorization"] = f"Bearer {person.token}"
    sent = await http.post("/api/messages", json=message_to(other))
    assert sent.status_code == 201, sent.text
    logout = await http.post("/api/auth/logout")
    assert logout.status_code == 204, logout.text


async def test_a_configured_origin_is_accepted(
    services: Services, settings: Settings
) -> None:
    """An origin listed in the allowed origins may write with the cookie; others still may not."""
    name = unique_name()
    user = await services.accounts.create_user(name, PASSWORD)
    message = {"to": [{"kind": "user", "id": str(user.id)}], "subject": "from the app"}
    async with second_app(settings, allowed_origins=("https://app.example",)) as http:
        answer = await login(http, name, PASSWORD, headers={"Origin": "https://app.example"})
        assert answer.status_code == 200, answer.text
        refused = await http.post(
            "/api/messages", json=message, headers={"Origin": "https://other.example"}
        )
        assert refused.status_code == 403, refused.text
        sent = await http.post(
            "/api/messages", json=message, headers={"Origin": "https://app.example"}
        )
        assert sent.status_code == 201, sent.text
        own = await http.post("/api/messages", json=message, headers=OWN_ORIGIN)
        assert own.status_code == 201, own.text


async def test_a_login_from_a_foreign_origin_is_refused(
    services: Services, open_client: OpenClient
) -> None:
    """A login form posted from another site gets 403 and no cookie."""
    name = unique_name()
    await services.accounts.create_user(name, PASSWORD)
    http = open_client()
    for origin in FOREIGN_ORIGINS:
        answer = await login(http, name, PASSWORD, headers={"Origin": origin})
        assert answer.status_code == 403, (origin, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"
        assert not answer.headers.get_list("set-cookie")
    assert not http.cookies
    accepted = await login(http, name, PASSWORD, headers=OWN_ORIGIN)
    assert accepted.status_code == 200, accepted.text


def test_request_and_answer_models_keep_secrets_out_of_repr() -> None:
    """Passwords and tokens never show in the repr of the models that carry them."""
    from realtime.api import link_schemas, schemas

    login = schemas.LoginRequest.model_validate_json(
        b'{"username": "someone", "password": "hunter2-secret"}', strict=True
    )
    answer = schemas.LoginResponse(
        token="a-token-secret",
        user=schemas.MyAccount(id=uuid.uuid4(), username="someone", display_name="S",
                               is_admin=False, can_send=True, can_attach=True,
                               can_share_links=True, can_email_links=False,
                               max_file_mb=25, max_lifetime=None),
    )
    generated = schemas.PasswordResponse(password="generated-secret", entropy_bits=80.0)
    opening = link_schemas.OpenLinkRequest(token="link-token-secret",
                                           passphrase="link-passphrase-secret")
    created = link_schemas.CreatedLinkOut(id=uuid.uuid4(), url="https://x/s/#url-secret",
                                          expires_at=datetime.now(UTC), max_views=1)
    models = (
        (login, "hunter2"), (answer, "a-token"), (generated, "generated"),
        (opening, "link-token"), (opening, "link-passphrase"), (created, "url-secret"),
    )
    for model, secret in models:
        assert secret not in repr(model) and secret not in str(model)
