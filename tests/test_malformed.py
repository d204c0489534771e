"""Malformed requests to every state-changing endpoint: the contract's error, and nothing changed.

Each case starts from a request that its endpoint would accept, spoils it in one way, sends it,
and checks the status, the error shape `{"error": {"code", "message", "fields"?}}` with the
contract's code and the field at fault, that no submitted password comes back, and that every
table holds exactly what it held before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import pytest

from realtime.api.http import MAX_JSON_BODY
from tests.conftest import LoggedInUser, MakeUser, unique_name

PASSWORD = "alice's own password, never echoed"
NEW_PASSWORD = "a new password, never echoed either"
UNKNOWN_ID = "6f1e3c1a-0000-4000-8000-000000000000"
CODES = {400: "invalid", 404: "not_found", 413: "too_large"}

Body = dict[str, Any]
Change = Callable[["World", Body], Any]


@dataclass(frozen=True)
class World:
    """The clients that act, and the ids of the objects that requests name."""

    clients: dict[str, httpx.AsyncClient]
    ids: dict[str, str]
    username: str  # alice's, who logs in


@dataclass(frozen=True)
class Request:
    """One HTTP request: a path template filled from `ids`, and a JSON or raw body."""

    actor: str
    method: str
    path: str
    ids: dict[str, str]
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False

    @property
    def url(self) -> str:
        return self.path.format(**self.ids)

    async def send(self, http: httpx.AsyncClient) -> httpx.Response:
        content: Any = self.content
        if self.stream and self.content is not None:
            content = _chunks(self.content)
        if self.json is not None:
            return await http.request(self.method, self.url, json=self.json,
                                      headers=self.headers)
        return await http.request(self.method, self.url, content=content, headers=self.headers)


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The body in pieces, so that it travels without a Content-Length."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


@dataclass(frozen=True)
class Reference:
    """A body naming an object that does not exist, or that the caller may not see."""

    kind: str
    change: Change
    status: int
    field: str | None


@dataclass(frozen=True)
class Endpoint:
    """A state-changing endpoint, a request it accepts, and what can be spoilt in it."""

    name: str
    actor: str
    method: str
    path: str
    body: Callable[[World], Body] | None = None
    text_fields: tuple[str, ...] = ()
    wrong_type: tuple[str, Any] = ("", None)
    oversized: tuple[str, Any] = ("", None)
    references: tuple[Reference, ...] = ()
    headers: tuple[tuple[str, dict[str, str], str], ...] = ()  # kind, headers, field at fault
    path_id: str | None = None  # the key of `World.ids` in the path
    others_id: str | None = None  # an object of the same kind that the caller may not see

    def request(self, world: World) -> Request:
        body = self.body(world) if self.body is not None else None
        return Request(self.actor, self.method, self.path, world.ids, json=body)


ENDPOINTS = (
    Endpoint(
        "login", "anyone", "POST", "/api/auth/login",
        body=lambda w: {"username": w.username, "password": PASSWORD},
        text_fields=("username", "password"),
        wrong_type=("username", 5),
        oversized=("username", "u" * 257),
    ),
    Endpoint(
        "send", "alice", "POST", "/api/messages",
        body=lambda w: {"to": [{"kind": "user", "id": w.ids["bob"]}], "subject": "hello",
                        "body": "the body", "reply_to": w.ids["mine"]},
        text_fields=("subject", "body"),
        wrong_type=("to", "bob"),
        oversized=("subject", "s" * 256),
        references=(
            Reference("unknown-recipient",
                      lambda w, b: {**b, "to": [{"kind": "user", "id": UNKNOWN_ID}]},
                      400, "to.0.id"),
            Reference("unknown-group",
                      lambda w, b: {**b, "to": [{"kind": "group", "id": UNKNOWN_ID}]},
                      400, "to.0.id"),
            Reference("malformed-recipient",
                      lambda w, b: {**b, "to": [{"kind": "user", "id": "bob"}]},
                      400, "to.0.id"),
            Reference("unknown-reply-to", lambda w, b: {**b, "reply_to": UNKNOWN_ID}, 404, None),
            Reference("reply-to-others-message",
                      lambda w, b: {**b, "reply_to": w.ids["others"]}, 404, None),
            Reference("malformed-reply-to", lambda w, b: {**b, "reply_to": "42"},
                      400, "reply_to"),
        ),
        headers=(
            ("nul-in-idempotency-key", {"Idempotency-Key": "key\x00"}, "Idempotency-Key"),
            ("oversized-idempotency-key", {"Idempotency-Key": "k" * 256}, "Idempotency-Key"),
        ),
    ),
    Endpoint("read", "alice", "POST", "/api/messages/{mine}/read",
             path_id="mine", others_id="others"),
    Endpoint("delete", "alice", "DELETE", "/api/messages/{mine}",
             path_id="mine", others_id="others"),
    Endpoint(
        "create-user", "admin", "POST", "/api/admin/users",
        body=lambda w: {"username": unique_name("new"), "display_name": "New LoggedInUser",
                        "password": NEW_PASSWORD, "can_attach": False},
        text_fields=("username", "display_name", "password"),
        wrong_type=("is_admin", "yes"),
        oversized=("display_name", "d" * 101),
    ),
    Endpoint(
        "patch-user", "admin", "PATCH", "/api/admin/users/{bob}",
        body=lambda w: {"display_name": "Bobby", "password": NEW_PASSWORD},
        text_fields=("display_name", "password"),
        wrong_type=("can_send", "no"),
        oversized=("password", "p" * 1025),
        path_id="bob",
    ),
    Endpoint(
        "create-group", "admin", "POST", "/api/admin/groups",
        body=lambda w: {"name": unique_name("group"), "member_ids": [w.ids["alice"]]},
        text_fields=("name",),
        wrong_type=("member_ids", "alice"),
        oversized=("name", "n" * 101),
        references=(
            Reference("unknown-member",
                      lambda w, b: {**b, "member_ids": [w.ids["alice"], UNKNOWN_ID]},
                      400, "member_ids"),
            Reference("malformed-member", lambda w, b: {**b, "member_ids": ["alice"]},
                      400, "member_ids.0"),
        ),
    ),
    Endpoint(
        "set-members", "admin", "PUT", "/api/admin/groups/{group}/members",
        body=lambda w: {"member_ids": [w.ids["bob"]]},
        wrong_type=("member_ids", {"bob": True}),
        oversized=("member_ids", [str(uuid.UUID(int=n)) for n in range(10_001)]),
        references=(
            Reference("unknown-member",
                      lambda w, b: {"member_ids": [w.ids["bob"], UNKNOWN_ID]},
                      400, "member_ids"),
            Reference("nul-in-member",
                      lambda w, b: {"member_ids": [w.ids["bob"], f"{w.ids['alice']}\x00"]},
                      400, "member_ids.1"),
        ),
        path_id="group",
    ),
    Endpoint("delete-group", "admin", "DELETE", "/api/admin/groups/{group}", path_id="group"),
)


Spoil = Callable[[World, Request], Request]


@dataclass(frozen=True)
class Spoilt:
    """One way of spoiling one endpoint's request, and the answer that must come back."""

    endpoint: Endpoint
    kind: str
    spoil: Spoil
    status: int
    field: str | None = None


def _raw(content: bytes, content_type: str = "application/json") -> Spoil:
    return lambda w, r: replace(r, json=None, content=content,
                                headers={"Content-Type": content_type})


def _as_text(content_type: str) -> Spoil:
    return lambda w, r: replace(r, json=None, content=json.dumps(r.json).encode(),
                                headers={"Content-Type": content_type})


def _json(change: Change) -> Spoil:
    return lambda w, r: replace(r, json=change(w, r.json))


def _set(name: str, value: Any) -> Spoil:
    return _json(lambda w, b: {**b, name: value})


def _nul_in(name: str) -> Spoil:
    return _json(lambda w, b: {**b, name: f"{b[name]}\x00and more"})


def _over_a_mebibyte(*, stream: bool) -> Spoil:
    def spoil(world: World, request: Request) -> Request:
        body = {**request.json, "padding": "x" * MAX_JSON_BODY}
        return replace(request, json=None, content=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"}, stream=stream)
    return spoil


def _headers(headers: dict[str, str]) -> Spoil:
    return lambda w, r: replace(r, headers={**r.headers, **headers})


def _path_id(key: str, value: Callable[[World], str]) -> Spoil:
    return lambda w, r: replace(r, ids={**r.ids, key: value(w)})


def _body_spoils(ep: Endpoint) -> list[Spoilt]:
    return [
        Spoilt(ep, "broken-json", _raw(b'{"subject": "unfinished'), 400),
        Spoilt(ep, "array-body", _json(lambda w, b: [b]), 400),
        Spoilt(ep, "string-body", _raw(b'"a string"'), 400),
        Spoilt(ep, "number-body", _raw(b"42"), 400),
        Spoilt(ep, "null-body", _raw(b"null"), 400),
        Spoilt(ep, "empty-body", _raw(b""), 400),
        Spoilt(ep, "text-content-type", _as_text("text/plain"), 400),
        Spoilt(ep, "form-content-type", _raw(b"a=1&b=2", "application/x-www-form-urlencoded"),
               400),
        Spoilt(ep, "unknown-field", _set("surprise", 1), 400, "surprise"),
        Spoilt(ep, "wrong-type", _set(*ep.wrong_type), 400, ep.wrong_type[0]),
        Spoilt(ep, "oversized", _set(*ep.oversized), 400, ep.oversized[0]),
        Spoilt(ep, "over-1-mib", _over_a_mebibyte(stream=False), 413),
        Spoilt(ep, "over-1-mib-streamed", _over_a_mebibyte(stream=True), 413),
        *(Spoilt(ep, f"nul-in-{name}", _nul_in(name), 400, name) for name in ep.text_fields),
    ]


def _id_spoils(ep: Endpoint, key: str) -> list[Spoilt]:
    spoils = [
        Spoilt(ep, "unknown-id", _path_id(key, lambda w: UNKNOWN_ID), 404),
        Spoilt(ep, "malformed-id", _path_id(key, lambda w: "not-an-id"), 404),
        Spoilt(ep, "nul-in-id", _path_id(key, lambda w: "%00"), 404),
    ]
    others = ep.others_id
    if others is not None:
        spoils.append(Spoilt(ep, "others-object", _path_id(key, lambda w: w.ids[others]), 404))
    return spoils


def all_spoilt() -> list[Spoilt]:
    """Every applicable way of spoiling a request, for every state-changing endpoint."""
    cases: list[Spoilt] = []
    for ep in ENDPOINTS:
        if ep.body is not None:
            cases += _body_spoils(ep)
        cases += [Spoilt(ep, ref.kind, _json(ref.change), ref.status, ref.field)
                  for ref in ep.references]
        cases += [Spoilt(ep, kind, _headers(headers), 400, name)
                  for kind, headers, name in ep.headers]
        if ep.path_id is not None:
            cases += _id_spoils(ep, ep.path_id)
    return cases


SPOILT = all_spoilt()


@pytest.fixture
async def world(make_user: MakeUser, admin: LoggedInUser, client: httpx.AsyncClient) -> World:
    """Alice, Bob and Carol, an admin, a group, a message to Alice and one she may not see."""
    alice = await make_user(password=PASSWORD)
    bob = await make_user()
    carol = await make_user()
    group = await admin.http.post(
        "/api/admin/groups", json={"name": unique_name("group"), "member_ids": [alice.id]}
    )
    assert group.status_code == 201, group.text
    ids = {"alice": alice.id, "bob": bob.id, "group": group.json()["id"]}
    for name, sender, recipient in (("mine", carol, alice), ("others", bob, carol)):
        sent = await sender.http.post("/api/messages", json={
            "to": [{"kind": "user", "id": recipient.id}], "subject": name})
        assert sent.status_code == 201, sent.text
        ids[name] = sent.json()["id"]
    clients = {"alice": alice.http, "admin": admin.http, "anyone": client}
    return World(clients, ids, alice.user.username)


async def snapshot(db: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """The row count and a digest of the rows of every table but the budgets' buckets (a
    refused send still spends its unit: the budget counts attempts, not changes), the audit
    trail (a refusal is recorded there, as it should be) and presence (each node refreshes it
    on its own schedule). `last_seen_at` columns are left out for the same reason: a node's
    presence sweep sets them whenever it runs."""
    tables = await db.fetch(
        """select tablename from pg_tables
           where schemaname = 'public'
             and tablename not in ('budget_buckets', 'audit_records', 'audit_chain',
                                   'presence', 'presence_nodes')
           order by tablename"""
    )
    found = {}
    for row in tables:
        name = row["tablename"]
        found[name] = tuple(await db.fetchrow(
            f"""select count(*), md5(coalesce(string_agg(r, e'\\n' order by r), ''))
                from (select (to_jsonb(t) - 'last_seen_at')::text as r
                      from "{name}" t) rows"""  # noqa: S608 - names come from pg_tables
        ))
    return found


@pytest.mark.parametrize("case", SPOILT, ids=[f"{c.endpoint.name}-{c.kind}" for c in SPOILT])
async def test_a_spoilt_request_is_refused_and_changes_nothing(
    case: Spoilt, world: World, raw_db: asyncpg.Connection
) -> None:
    """A malformed request gets the contract's error naming its field, and no table changes."""
    request = case.spoil(world, case.endpoint.request(world))
    before = await snapshot(raw_db)
    answer = await request.send(world.clients[request.actor])
    after = await snapshot(raw_db)
    assert answer.status_code == case.status, answer.text
    payload = answer.json()
    assert list(payload) == ["error"]
    error = payload["error"]
    assert error["code"] == CODES[case.status]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "fields"}
    if case.field is None:
        assert "fields" not in error, error
    else:
        assert set(error["fields"]) == {case.field}, error
        assert all(isinstance(text, str) and text for text in error["fields"].values())
    assert PASSWORD not in answer.text and NEW_PASSWORD not in answer.text
    assert after == before


async def test_the_spoilt_requests_would_be_accepted_unspoilt(
    world: World, raw_db: asyncpg.Connection
) -> None:
    """Each unspoilt request succeeds and changes a table: the spoiling is what is refused."""
    for ep in ENDPOINTS:
        request = ep.request(world)
        before = await snapshot(raw_db)
        answer = await request.send(world.clients[request.actor])
        assert answer.status_code < 300, (ep.name, answer.text)
        assert await snapshot(raw_db) != before, ep.name
