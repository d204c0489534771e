"""An attacker's credentials: foreign Origins on cookie writes and handshakes, forged, expired,
revoked, disabled and borrowed tokens, on HTTP and on the websocket.

`tests/test_auth.py` and `tests/test_ws.py` try a few origins on two endpoints; here every
state-changing operation of the OpenAPI document is tried with the owner's own cookie and every
origin a browser on another page could send, and every dead token on the socket too.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from realtime import crypto
from tests.conftest import BASE_URL, PASSWORD, LoggedInUser, MakeUser, unique_name
from tests.hostile_support import OwnersWorld, assert_error, owners_world
from tests.live_server import LiveServer
from tests.test_auth import second_app
from tests.test_authz_matrix import ROWS, assert_untouched
from tests.ws_support import frames_until, next_frame

WRITES = [row for row in ROWS if row.secured and row.method in {"POST", "PUT", "PATCH", "DELETE"}]


def foreign_origins(own: str) -> list[str]:
    """Origins a page that is not ours may send, each close to `own` (`scheme://host[:port]`)."""
    parts = urlsplit(own)
    host, port = parts.hostname or "", parts.port
    with_port = f":{port}" if port else ""
    origins = [
        "null",
        f"{parts.scheme}://{host}:{(port or 80) + 1}",  # another port
        f"https://{host}{with_port}",  # another scheme
        f"{parts.scheme}://{host}.evil.example{with_port}",  # look-alike hosts
        f"{parts.scheme}://evil-{host}{with_port}",
        f"{parts.scheme}://{host}.{with_port}",  # trailing dot
        own.upper(),
        f"{parts.scheme.upper()}://{host}{with_port}",
        f"{parts.scheme}://{host.upper()}{with_port}",
        f"{parts.scheme}://{host}{with_port}@evil.example",
        f"{own}/",
        f"{own}, http://evil.example",
        f"{own} http://evil.example",
        "",
        f"ws://{host}{with_port}",
        "file://",
    ]
    # Upper case changes nothing in an address such as 127.0.0.1. Surrounding blanks are not
    # tried: HTTP drops them from every header value before the server sees it.
    return [origin for origin in origins if origin != own]


ORIGINS = foreign_origins(BASE_URL)


@pytest.fixture
async def world(make_user: MakeUser, admin: LoggedInUser) -> OwnersWorld:
    """The owner's objects, and a system message of the admin's (as the matrix's world)."""
    made = await owners_world(make_user, admin)
    posted = await admin.http.post("/api/admin/system-messages", json={
        "subject": "for everyone", "mode": "dismissible"})
    assert posted.status_code == 201, posted.text
    made.ids["system_message"] = posted.json()["id"]
    return made


@pytest.fixture
async def cookie_of(app: Starlette) -> AsyncIterator[Any]:
    """Log a person in again on a client that holds only the session cookie."""
    opened: list[httpx.AsyncClient] = []

    async def make(person: LoggedInUser) -> httpx.AsyncClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        opened.append(http)
        answer = await http.post("/api/auth/login", json={
            "username": person.user.username, "password": person.password})
        assert answer.status_code == 200, answer.text
        assert "authorization" not in http.headers and http.cookies.get("session")
        return http

    yield make
    for http in opened:
        await http.aclose()


# Origins on cookie writes


async def test_every_cookie_write_from_a_foreign_origin_is_403_and_changes_nothing(
    world: OwnersWorld, admin: LoggedInUser, cookie_of: Any, raw_db: asyncpg.Connection
) -> None:
    """Each state-changing call made with the owner's cookie from another page is refused."""
    owner = await cookie_of(world.owner)
    administrator = await cookie_of(admin)
    wrong: dict[str, list[str]] = {}
    for row in WRITES:
        http = administrator if row.admin else owner
        for origin in [None, *ORIGINS]:
            headers = {} if origin is None else {"Origin": origin}
            answer = await row.call(http, row.url(world.ids), headers=headers)
            if answer.status_code != 403 or answer.json()["error"]["code"] != "forbidden":
                wrong.setdefault(row.label, []).append(f"{origin!r}: {answer.status_code}")
    assert wrong == {}
    assert await raw_db.fetchval("select count(*) from messages") == 1
    await assert_untouched(world, admin)
    for http in (owner, administrator):
        assert (await http.get("/api/me")).status_code == 200, "no write logged anyone out"


async def test_the_same_cookie_write_from_our_own_origin_goes_through(
    world: OwnersWorld, cookie_of: Any
) -> None:
    """The refusals above are the Origin's doing: with ours, the owner's cookie write works."""
    owner = await cookie_of(world.owner)
    answer = await owner.patch(f"/api/vault/entries/{world.ids['entry']}",
                               json={"title": "renamed"}, headers={"Origin": BASE_URL})
    assert answer.status_code == 200, answer.text


async def test_a_login_from_a_look_alike_origin_is_refused(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """A login posted from any origin close to ours sets no cookie and opens no session."""
    person = await make_user()
    for origin in ORIGINS:
        answer = await client.post(
            "/api/auth/login", json={"username": person.user.username,
                                     "password": person.password},
            headers={"Origin": origin})
        assert_error(answer, 403, "forbidden")
        assert not answer.headers.get_list("set-cookie"), origin
    assert not client.cookies


async def test_a_bad_bearer_beside_a_good_cookie_does_not_fall_back_to_the_cookie(
    make_user: MakeUser, cookie_of: Any
) -> None:
    """A forged bearer header is refused even when the browser also holds a live cookie."""
    person = await make_user()
    http = await cookie_of(person)
    answer = await http.get("/api/me", headers={"Authorization": "Bearer forged"})
    assert_error(answer, 401, "unauthenticated")
    write = await http.post("/api/vault/folders", json={"name": "x"},
                            headers={"Authorization": "Bearer forged", "Origin": BASE_URL})
    assert_error(write, 401, "unauthenticated")


# Forged and dead tokens over HTTP


# A cookie value in double quotes is the same value (RFC 6265, cookie-value): no forgery there.
SAME_AS_A_COOKIE = {"quoted"}


def forgeries(token: str) -> dict[str, str]:
    """Tokens an attacker may try, each derived from a real one or from nothing."""
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return {
        "random": secrets.token_urlsafe(32),
        "truncated": token[:-1],
        "half": token[: len(token) // 2],
        "one character changed": flipped,
        "first character changed": ("A" if token[0] != "A" else "B") + token[1:],
        "one character added": token + "A",
        "doubled": token + token,
        "upper case": token.upper() if token.upper() != token else token.lower(),
        "base64 padded": token + "=",
        "long": "A" * 4096,
        "latin-1": token[:-1] + "\u00e9",
        "quoted": f'"{token}"',
    }


async def dead_answers(http: httpx.AsyncClient, tokens: dict[str, str]) -> dict[str, bytes]:
    """GET /api/me with each token as a bearer; each must be 401, and the bodies are kept."""
    bodies = {}
    for kind, token in tokens.items():
        bearer = f"Bearer {token}".encode("latin-1")  # a byte beyond ASCII, as a client may send
        answer = await http.get("/api/me", headers={b"Authorization": bearer})
        assert_error(answer, 401, "unauthenticated")
        assert answer.headers["www-authenticate"] == "Bearer", kind
        assert token not in answer.text, kind
        bodies[kind] = answer.content
    return bodies


async def test_forged_tokens_are_all_refused_alike(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """Random, truncated, altered or padded tokens get one identical 401, header or cookie."""
    victim = await make_user()
    bodies = await dead_answers(client, forgeries(victim.token))
    assert len(set(bodies.values())) == 1, bodies
    for kind, token in forgeries(victim.token).items():
        if not token.isascii() or kind in SAME_AS_A_COOKIE:
            continue
        cookie = await client.get("/api/me", headers={"Cookie": f"session={token}"})
        assert_error(cookie, 401, "unauthenticated")
        assert cookie.content == next(iter(bodies.values())), kind
    assert (await victim.http.get("/api/me")).status_code == 200


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer ", "bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer\tabc", "Bearerabc",
    "Bearer a b", ", Bearer abc",
])
async def test_malformed_authorization_headers_are_401(
    client: httpx.AsyncClient, header: str
) -> None:
    """An Authorization header of another scheme or shape is 401, never a 400 or 500."""
    answer = await client.get("/api/me", headers={"Authorization": header})
    assert_error(answer, 401, "unauthenticated")


async def test_a_token_in_the_url_is_never_read(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """A live token passed as a query parameter authenticates nothing."""
    person = await make_user()
    for name in ("token", "access_token", "session", "auth"):
        answer = await client.get("/api/me", params={name: person.token})
        assert_error(answer, 401, "unauthenticated")


async def backdate(raw_db: asyncpg.Connection, token: str, column: str, by: timedelta) -> None:
    """Move one of a session's times back, making it expired or idle."""
    statements = {
        "expires_at": "update sessions set expires_at = now() - $2::interval where token_hash = $1",
        "last_seen_at":
            "update sessions set last_seen_at = now() - $2::interval where token_hash = $1",
    }
    status = await raw_db.execute(statements[column], crypto.token_digest(token), by)
    assert status == "UPDATE 1"


async def end_sessions(
    people: list[Any], admin: Any, raw_db: asyncpg.Connection, idle: timedelta
) -> dict[str, str]:
    """End the sessions of five people in the five ways a session ends; return their tokens."""
    expired, idled, revoked, disabled, changed = people
    await backdate(raw_db, expired.token, "expires_at", timedelta(seconds=1))
    await backdate(raw_db, idled.token, "last_seen_at", idle + timedelta(seconds=1))
    assert (await revoked.http.post("/api/auth/logout")).status_code == 204
    for person, change in ((disabled, {"disabled": True}),
                           (changed, {"password": "a brand new password"})):
        answer = await admin.http.patch(f"/api/admin/users/{person.id}", json=change)
        assert answer.status_code == 200, answer.text
    return {"expired": expired.token, "idle": idled.token, "revoked": revoked.token,
            "disabled": disabled.token, "password changed": changed.token}


async def test_ended_sessions_are_refused_alike_and_cannot_write(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection, client: httpx.AsyncClient,
    settings: Any,
) -> None:
    """Expired, idle, revoked, disabled and password-changed tokens all get the forged 401."""
    tokens = await end_sessions([await make_user() for _ in range(5)], admin, raw_db,
                                settings.session_idle_timeout)
    bodies = await dead_answers(client, tokens)
    forged = await dead_answers(client, {"random": secrets.token_urlsafe(32)})
    assert set(bodies.values()) == set(forged.values()), bodies
    target = await make_user()
    for token in tokens.values():
        answer = await client.post(
            "/api/messages", headers={"Authorization": f"Bearer {token}"},
            json={"to": [{"kind": "user", "id": target.id}], "subject": "from the dead"})
        assert_error(answer, 401, "unauthenticated")
    assert await raw_db.fetchval("select count(*) from messages") == 0
    assert await raw_db.fetchval(
        "select count(*) from sessions where last_seen_at > now() - interval '1 minute' "
        "and token_hash = $1", crypto.token_digest(tokens["idle"])) == 0, (
        "a refused token must not refresh its idle session")


async def test_a_dead_token_does_not_come_back_to_life(
    make_user: MakeUser, raw_db: asyncpg.Connection, client: httpx.AsyncClient, settings: Any
) -> None:
    """An idle session stays dead after being tried, even once its row looks fresh again."""
    person = await make_user()
    await backdate(raw_db, person.token, "last_seen_at",
                   settings.session_idle_timeout + timedelta(seconds=1))
    for _ in range(3):
        assert_error(await client.get(
            "/api/me", headers={"Authorization": f"Bearer {person.token}"}), 401,
            "unauthenticated")
    logout = await client.post("/api/auth/logout",
                               headers={"Authorization": f"Bearer {person.token}"})
    assert_error(logout, 401, "unauthenticated")


# The websocket


async def assert_closed_4401(live: LiveServer, headers: dict[str, str], **options: Any) -> None:
    """The handshake is accepted and the socket closed at once with 4401, before any frame."""
    async with connect(live.ws_url, additional_headers=headers, **options) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            frame = await next_frame(ws)
            pytest.fail(f"a frame reached a dead session: {frame['type']}")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_handshake_from_any_foreign_origin_is_refused(
    live: LiveServer, make_user: MakeUser
) -> None:
    """With the cookie or the bearer header, a handshake from another page is refused 403."""
    bob = await make_user(on=live)
    for origin in foreign_origins(live.url):
        for credentials in ({"Cookie": f"session={bob.token}"}, bob.headers()):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(live.ws_url, additional_headers={
                        **credentials, "Origin": origin}):
                    pass
            assert refused.value.response.status_code == 403, origin


async def test_forged_tokens_on_the_socket_are_closed_4401(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Every forgery of a live token, as a bearer or a cookie, opens nothing: 4401."""
    victim = await make_user(on=live)
    for kind, token in forgeries(victim.token).items():
        if not token.isascii():
            continue
        await assert_closed_4401(live, {"Authorization": f"Bearer {token}"})
        if kind in SAME_AS_A_COOKIE:
            continue
        await assert_closed_4401(live, {"Cookie": f"session={token}"}, origin=Origin(live.url))
    async with connect(f"{live.ws_url}?token={victim.token}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_ended_sessions_cannot_open_a_socket(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection, settings: Any
) -> None:
    """Expired, idle, revoked, disabled and password-changed tokens are closed 4401 at once."""
    admin = await make_user(on=live, is_admin=True)
    tokens = await end_sessions([await make_user(on=live) for _ in range(5)], admin, raw_db,
                                settings.session_idle_timeout)
    for token in tokens.values():
        await assert_closed_4401(live, {"Authorization": f"Bearer {token}"})
        await assert_closed_4401(live, {"Cookie": f"session={token}"}, origin=Origin(live.url))


async def test_a_bearer_of_one_user_speaks_only_for_that_user_on_the_socket(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Bob's cookie beside Alice's bearer opens Alice's socket; a dead bearer opens none."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    both = {**alice.headers(), "Cookie": f"session={bob.token}"}
    async with connect(live.ws_url, additional_headers=both) as ws:
        hello = await next_frame(ws)
    assert hello["user"]["id"] == alice.id
    assert (await alice.http.post("/api/auth/logout")).status_code == 204
    await assert_closed_4401(live, both, origin=Origin(live.url))
    async with connect(live.ws_url, additional_headers={"Cookie": f"session={bob.token}"},
                       origin=Origin(live.url)) as ws:
        assert (await next_frame(ws))["user"]["id"] == bob.id
        with pytest.raises(TimeoutError):
            await frames_until(ws, "never", wait=0.2)


async def test_a_token_ended_by_disabling_stays_dead_once_the_user_is_enabled_again(
    make_user: MakeUser, admin: LoggedInUser, client: httpx.AsyncClient
) -> None:
    """Disabling ends the sessions for good: enabling the account again revives none of them."""
    person = await make_user()
    for disabled in (True, False):
        answer = await admin.http.patch(f"/api/admin/users/{person.id}",
                                        json={"disabled": disabled})
        assert answer.status_code == 200, answer.text
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {person.token}"})
    assert_error(me, 401, "unauthenticated")
    again = await client.post("/api/auth/login", json={
        "username": person.user.username, "password": person.password})
    assert again.status_code == 200, "the account itself works again"


async def test_no_answer_invites_another_origin_to_read_it(
    make_user: MakeUser, cookie_of: Any
) -> None:
    """A page elsewhere gets no CORS grant: no Access-Control-Allow-* header, preflight or not."""
    person = await make_user()
    http = await cookie_of(person)
    for origin in ORIGINS:
        for method in ("GET", "OPTIONS"):
            answer = await http.request(method, "/api/me", headers={
                "Origin": origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"})
            granted = [h for h in answer.headers if h.lower().startswith("access-control-")]
            assert granted == [], (origin, method, granted)


async def test_look_alikes_of_a_configured_origin_are_refused(
    services: Any, settings: Any
) -> None:
    """An origin close to one in REALTIME_ALLOWED_ORIGINS is refused; only the exact one writes."""
    allowed = "https://app.example"
    name = unique_name()
    user = await services.accounts.create_user(name, PASSWORD)
    message = {"to": [{"kind": "user", "id": str(user.id)}], "subject": "from the app"}
    async with second_app(settings, allowed_origins=(allowed,)) as http:
        login = await http.post("/api/auth/login", headers={"Origin": allowed},
                                json={"username": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        for origin in foreign_origins(allowed):
            answer = await http.post("/api/messages", json=message, headers={"Origin": origin})
            assert_error(answer, 403, "forbidden")
        sent = await http.post("/api/messages", json=message, headers={"Origin": allowed})
        assert sent.status_code == 201, sent.text


SECURITY_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "x-frame-options": "DENY"}


async def test_a_refused_handshake_carries_the_headers_of_every_response(
    live: LiveServer, make_user: MakeUser
) -> None:
    """The 403 refusing a foreign handshake is no-store, nosniff, no-referrer, DENY like others."""
    bob = await make_user(on=live)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(live.ws_url, additional_headers={"Cookie": f"session={bob.token}"},
                           origin=Origin("http://evil.example")):
            pass
    headers = refused.value.response.headers
    assert refused.value.response.status_code == 403
    assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
