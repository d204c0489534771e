"""Every endpoint of the OpenAPI document, fuzzed by schemathesis against a real server.

The schema is the document the app serves (a test below checks that they are the same), loaded at
import so that pytest can make one test per operation. Every check of schemathesis runs, on
positive and negative data, from a fixed seed and without an example database. The requests go
over HTTP to a uvicorn serving its own app on a free port, authenticated as a seeded admin. The
configuration, made at import, carries a placeholder bearer token; where schemathesis put it (it
leaves it out of the cases that test a missing or wrong token), the test puts the admin's real
one, which exists only once the fixture has logged in.

Logging out would end that session midway, so `POST /api/auth/logout` is left out of the main
run and fuzzed on its own, each request with a session opened for it. `PATCH /api/admin/users/{id}`
stays in: the ids it is pointed at are those of seeded users, never the fuzzing admin's own.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from realtime import api
from realtime.app import package_version
from realtime.config import Settings
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.live_server import LiveServer, live_server

SEED = 20261121
MAX_EXAMPLES = 25
LOGOUT = "/api/auth/logout"
PLACEHOLDER = "Bearer placeholder-for-the-admin-token"
LEAVER_PASSWORD = "a password to log in and out with"

# `positive_data_acceptance` takes every schema-valid request for one the server must accept.
# These operations also refuse, with 400 and the field at fault as the contract says, what no JSON
# Schema can express: ids that name nothing (recipients, members, attachments' entries, folders
# and uploads), an expiry already past (or, for a link, more than 30 days ahead), a cursor this
# server did not issue, no character class chosen, a file entry without its upload or another
# entry with one, and an email address that is none. Every other status stays as strict as
# schemathesis makes it.
REFERENCES_AND_RULES = [
    "POST /api/messages", "GET /api/messages", "GET /api/password",
    "POST /api/admin/groups", "PUT /api/admin/groups/{id}/members",
    "POST /api/vault/entries", "PATCH /api/vault/entries/{id}", "POST /api/vault/folders",
    "POST /api/messages/{id}/save", "POST /api/links",
    # An end time already past; at most 20 shown at once (409); ids of no system message.
    "POST /api/admin/system-messages", "DELETE /api/admin/system-messages/{id}",
    "POST /api/system-messages/{id}/dismiss",
    # A cursor this server did not issue.
    "GET /api/admin/audit", "GET /api/admin/users",
]
ACCEPTED_OR_REFUSED_BY_RULE = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "auth": {"openapi": {"bearer": {"bearer": PLACEHOLDER.removeprefix("Bearer ")}}},
    "operations": [
        {"include-name": REFERENCES_AND_RULES,
         "checks": {"positive_data_acceptance": {
             "expected-statuses": ACCEPTED_OR_REFUSED_BY_RULE}}},
    ],
})
schema = schemathesis.openapi.from_dict(api.openapi_document(package_version()), config=CONFIG)
authenticated = schema.exclude(path=LOGOUT)
# Not `include(path=LOGOUT)`: schemathesis ORs includes with the one `operations` above adds.
logout = schema.exclude(lambda ctx: ctx.operation.path != LOGOUT)


@dataclass
class Target:
    """Where the fuzzer sends its requests and the ids it may point at; set by `target`."""

    url: str = ""
    token: str = ""
    pools: dict[str, list[str]] = field(default_factory=dict)
    leaver: str = ""


TARGET = Target()


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as running:
        yield running


@pytest.fixture
async def target(server: LiveServer, make_user: MakeUser, admin: LoggedInUser) -> Target:
    """The admin's session, a few users, a group and messages, all made before the fuzzer starts."""
    leaver = await make_user(password=LEAVER_PASSWORD)
    users = [leaver, await make_user(), await make_user()]
    user_ids = [u.id for u in users]
    http = admin.http
    group = await http.post(
        "/api/admin/groups", json={"name": unique_name("group"), "member_ids": user_ids[:2]}
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    sent = await http.post(
        "/api/messages",
        json={"to": [{"kind": "user", "id": user_ids[1]}, {"kind": "group", "id": group_id}],
              "subject": "seeded", "body": "for the fuzzer"},
    )
    assert sent.status_code == 201, sent.text
    received = await users[2].http.post(
        "/api/messages", json={"to": [{"kind": "user", "id": admin.id}], "subject": "hello"}
    )
    assert received.status_code == 201, received.text
    announced = await http.post(
        "/api/admin/system-messages",
        json={"subject": "seeded", "body": "for the fuzzer", "mode": "dismissible"},
    )
    assert announced.status_code == 201, announced.text
    TARGET.url = server.url
    TARGET.token = admin.token
    TARGET.leaver = leaver.user.username
    TARGET.pools = {
        "user": user_ids,
        "group": [group_id],
        "message": [sent.json()["id"], received.json()["id"]],
        "system_message": [announced.json()["id"]],
    }
    return TARGET


def authenticate(case: Case, token: str) -> None:
    """Put `token` where the configuration put the placeholder, if it did."""
    if case.headers and case.headers.get("Authorization") == PLACEHOLDER:
        case.headers["Authorization"] = f"Bearer {token}"


def _pick(pool: list[str], *seed: object) -> str | None:
    """One of `pool`, or None to keep what was generated: chosen by `seed`, reproducibly."""
    index = zlib.crc32(repr(seed).encode()) % (len(pool) + 1)
    return pool[index] if index < len(pool) else None


def point_at_seeded_objects(case: Case) -> None:
    """Make most ids of valid requests name existing objects, so that success is fuzzed too.

    Ids are replaced in positive cases only, by ids as valid as the ones they replace: a negative
    case stays as wrong as schemathesis made it.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    seed = (case.path_parameters, case.query, case.body)
    params = case.path_parameters or {}
    if "id" in params:
        path = case.operation.path
        kind = ("message" if path.startswith("/api/messages")
                else "group" if path.startswith("/api/admin/groups")
                else "system_message" if "/system-messages/" in path else "user")
        params["id"] = _pick(TARGET.pools[kind], seed) or params["id"]
    body: Any = case.body
    if not isinstance(body, dict):
        return
    for index, addressee in enumerate(body.get("to", [])):
        addressee["id"] = _pick(TARGET.pools[addressee["kind"]], seed, index) or addressee["id"]
    if body.get("reply_to"):
        body["reply_to"] = _pick(TARGET.pools["message"], seed) or body["reply_to"]
    if "member_ids" in body:
        body["member_ids"] = [
            _pick(TARGET.pools["user"], seed, index) or member
            for index, member in enumerate(body["member_ids"])
        ]


@authenticated.parametrize()
# One operation's inputs share the seeded objects on purpose, as a real server's clients do.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_endpoint_agrees_with_the_document(case: Case, target: Target) -> None:
    """No generated request, valid or not, gets a 500 or an answer the document does not allow."""
    authenticate(case, target.token)
    point_at_seeded_objects(case)
    case.call_and_validate(base_url=target.url)


@logout.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_logout_agrees_with_the_document(case: Case, target: Target) -> None:
    """Logging out, each time from a session of its own, answers as documented and ends it."""
    token = None
    if case.headers and case.headers.get("Authorization") == PLACEHOLDER:
        login = httpx.post(f"{target.url}/api/auth/login",
                           json={"username": target.leaver, "password": LEAVER_PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        authenticate(case, token)
    response = case.call_and_validate(base_url=target.url)
    if token is not None and response.status_code == 204:
        me = httpx.get(f"{target.url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401, me.text


async def test_the_fuzzed_document_is_the_served_one(client: httpx.AsyncClient) -> None:
    """GET /api/openapi.json serves the document the fuzzer was given, and every operation runs."""
    served = await client.get("/api/openapi.json")
    assert served.status_code == 200
    document = served.json()
    assert document == json.loads(json.dumps(api.openapi_document(package_version())))
    listed = {f"{method.upper()} {path}" for path, item in document["paths"].items()
              for method in item}
    fuzzed = [op.ok().label for part in (authenticated, logout)
              for op in part.get_all_operations()]
    assert sorted(fuzzed) == sorted(listed)
