"""One user, or a burst of sends, cannot take the node from the others: no request waits for a
second pooled connection while it holds one, every wait ends, and one user's requests in flight
are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from realtime.api.http import Services
from realtime.config import Settings, load_settings
from realtime.errors import ConfigError
from realtime.models import EntryFields, EntryKind
from tests.conftest import LoggedInUser, MakeUser, log_in
from tests.live_server import LiveServer, live_server
from tests.timing import TIME_FACTOR

# Long enough that the test never sees a hang it could mistake for a wait: every answer the
# server gives is bounded by its own, shorter, timeouts.
ANSWER_WITHIN = 30.0 * TIME_FACTOR


def to(person: LoggedInUser) -> list[dict[str, str]]:
    return [{"kind": "user", "id": person.id}]


async def new_entry(person: LoggedInUser, title: str) -> str:
    answer = await person.http.post(
        "/api/vault/entries", json={"kind": "credential", "title": title, "password": "pw"}
    )
    assert answer.status_code == 201, answer.text
    entry_id: str = answer.json()["id"]
    return entry_id


async def test_forty_sends_attaching_vault_entries_all_succeed_and_the_node_keeps_answering(
    settings: Settings, make_user: MakeUser
) -> None:
    """Forty sends at once, each attaching a vault entry, on a pool of four: each is sent, and
    the node then answers its readiness check and a login as before."""
    small = replace(settings, db_pool_size=4, db_pool_timeout=timedelta(seconds=10),
                    requests_in_flight_per_user=100)
    with live_server(small) as node:
        alice, bob = await make_user(on=node), await make_user(on=node)
        entries = [await new_entry(alice, f"entry {n}") for n in range(40)]

        async def send(entry_id: str) -> httpx.Response:
            return await alice.http.post("/api/messages", timeout=ANSWER_WITHIN, json={
                "to": to(bob), "subject": "shared", "attachments": [
                    {"kind": "entry", "entry_id": entry_id}]})

        answers = await asyncio.gather(*(send(entry_id) for entry_id in entries))
        assert [a.status_code for a in answers] == [201] * 40, [a.text for a in answers]
        async with httpx.AsyncClient(base_url=node.url, timeout=ANSWER_WITHIN) as http:
            assert (await http.get("/readyz")).status_code == 200
            await log_in(http, bob.username, bob.password)
            inbox = await http.get("/api/messages", params={"limit": 100})
        assert len(inbox.json()["messages"]) == 40


@asynccontextmanager
async def every_pooled_connection_held(services: Services) -> AsyncIterator[None]:
    """Take every connection of the in-process app's pool until the block ends."""
    pool = services.db.pool
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        yield
    finally:
        for conn in held:
            await pool.release(conn)


async def test_a_saturated_pool_answers_503_with_retry_after_and_service_resumes(
    app: Starlette, services: Services, make_user: MakeUser
) -> None:
    """While every pooled connection is taken, requests are answered 503 with Retry-After
    instead of waiting; once the connections are back, the same requests succeed."""
    alice = await make_user()
    async with every_pooled_connection_held(services):
        inbox = await alice.http.get("/api/messages", timeout=ANSWER_WITHIN)
        login = await alice.http.post("/api/auth/login", timeout=ANSWER_WITHIN, json={
            "username": alice.user.username, "password": alice.password})
        ready = await alice.http.get("/readyz", timeout=ANSWER_WITHIN)
    for answer in (inbox, login):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
    assert ready.status_code == 503
    assert (await alice.http.get("/api/messages")).status_code == 200
    assert (await alice.http.get("/readyz")).status_code == 200


@asynccontextmanager
async def row_locked(raw_db: asyncpg.Connection, message_id: str) -> AsyncIterator[None]:
    """Hold the lock on a message's recipient rows, as a long transaction elsewhere would."""
    async with raw_db.transaction():
        await raw_db.execute(
            "select 1 from message_recipients where message_id = $1 for update", message_id
        )
        yield


async def _read_while_locked(
    settings: Settings, make_user: MakeUser, raw_db: asyncpg.Connection
) -> tuple[httpx.Response, httpx.Response]:
    """Mark a message read while its row is locked, then once the lock is gone."""
    with live_server(settings) as node:
        alice, bob = await make_user(on=node), await make_user(on=node)
        sent = await alice.http.post("/api/messages", json={"to": to(bob), "subject": "s"})
        assert sent.status_code == 201, sent.text
        read_path = f"/api/messages/{sent.json()['id']}/read"
        async with row_locked(raw_db, sent.json()["id"]):
            blocked = await bob.http.post(read_path, timeout=ANSWER_WITHIN)
            others = await alice.http.get("/api/messages", params={"box": "sent"})
            assert others.status_code == 200, others.text
        return blocked, await bob.http.post(read_path, timeout=ANSWER_WITHIN)


async def test_a_lock_held_past_the_lock_timeout_answers_503_not_500(
    settings: Settings, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A request stuck behind a lock held elsewhere gives up after the lock timeout with 503
    and Retry-After; the others are served meanwhile, and it succeeds once the lock is gone."""
    short = replace(settings, db_lock_timeout=timedelta(milliseconds=300))
    blocked, after = await _read_while_locked(short, make_user, raw_db)
    assert blocked.status_code == 503, blocked.text
    assert blocked.json()["error"]["code"] == "unavailable"
    assert "Retry-After" in blocked.headers
    assert after.status_code == 200, after.text


async def test_a_statement_past_the_statement_timeout_answers_503_not_500(
    settings: Settings, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A statement that runs past the statement timeout is cancelled by PostgreSQL and answered
    503 with Retry-After; the same request succeeds later."""
    short = replace(settings, db_statement_timeout=timedelta(seconds=1),
                    db_lock_timeout=timedelta(seconds=30))
    blocked, after = await _read_while_locked(short, make_user, raw_db)
    assert blocked.status_code == 503, blocked.text
    assert blocked.json()["error"]["code"] == "unavailable"
    assert "Retry-After" in blocked.headers
    assert after.status_code == 200, after.text


class SlowBody:
    """A request body that sends one byte, then waits until released."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"x"
        await self.released.wait()
        yield b"y"


async def test_the_ninth_request_in_flight_of_one_user_is_refused_and_others_are_served(
    settings: Settings, make_user: MakeUser
) -> None:
    """With eight requests of one user still in flight, a ninth is refused with 429 and
    Retry-After: 1, while another user is served and can log in; once they end, the user is
    served again."""
    with live_server(
        replace(settings, requests_in_flight_per_user=8, upload_bytes_in_flight=1 << 30)
    ) as node:
        alice, bob = await make_user(on=node), await make_user(on=node)
        body = SlowBody()
        uploads = [
            asyncio.create_task(alice.http.post(
                "/api/uploads", params={"name": f"slow-{n}.txt"}, content=body,
                timeout=ANSWER_WITHIN))
            for n in range(8)
        ]
        try:
            ninth = await _refused_once_eight_are_in_flight(node, alice)
            assert ninth.status_code == 429, ninth.text
            assert ninth.json()["error"]["code"] == "rate_limited"
            assert ninth.headers["Retry-After"] == "1"
            assert (await bob.http.get("/api/messages")).status_code == 200
            async with httpx.AsyncClient(base_url=node.url, timeout=ANSWER_WITHIN) as http:
                await log_in(http, alice.username, alice.password)
        finally:
            body.released.set()
            answers = await asyncio.gather(*uploads)
        assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
        assert (await alice.http.get("/api/messages")).status_code == 200


async def _refused_once_eight_are_in_flight(
    node: LiveServer, person: LoggedInUser
) -> httpx.Response:
    """Wait until the node counts the eight slow uploads in flight (they start one by one),
    then ask once more."""
    in_flight = node.app.state.services.in_flight
    for _ in range(400):
        if in_flight.count(UUID(person.id)) == 8:
            return await person.http.get("/api/messages")
        await asyncio.sleep(0.025)
    raise AssertionError("the eight uploads were never in flight together")


def test_the_waits_and_the_in_flight_limit_are_read_from_the_environment() -> None:
    """The bounded waits and the requests in flight per user are set by their REALTIME_*
    variables, default to 2s, 10s, 5s and 8, and a value of nothing stops the start."""
    defaults = load_settings({})
    assert (defaults.db_pool_timeout, defaults.db_statement_timeout, defaults.db_lock_timeout,
            defaults.requests_in_flight_per_user) == (
        timedelta(seconds=2), timedelta(seconds=10), timedelta(seconds=5), 8)
    chosen = load_settings({
        "REALTIME_DB_POOL_TIMEOUT": "3s", "REALTIME_DB_STATEMENT_TIMEOUT": "1m",
        "REALTIME_DB_LOCK_TIMEOUT": "20", "REALTIME_REQUESTS_IN_FLIGHT_PER_USER": "16",
    })
    assert (chosen.db_pool_timeout, chosen.db_statement_timeout, chosen.db_lock_timeout,
            chosen.requests_in_flight_per_user) == (
        timedelta(seconds=3), timedelta(minutes=1), timedelta(seconds=20), 16)
    for name, value in (("REALTIME_DB_POOL_TIMEOUT", "0s"),
                        ("REALTIME_REQUESTS_IN_FLIGHT_PER_USER", "0")):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})


async def test_a_large_folder_copy_is_sent_read_and_saved_whole(
    services: Services, make_user: MakeUser
) -> None:
    """A folder of a hundred and fifty entries in three subfolders (opened, encoded and sealed
    away from the event loop) reaches the recipient whole and is saved into their vault."""
    alice, bob = await make_user(), await make_user()
    top = await services.vault.create_folder(alice.user, "Servers", None)
    for n in range(3):
        sub = await services.vault.create_folder(alice.user, f"rack {n}", top.id)
        for m in range(50):
            await services.vault.create_entry(
                alice.user, kind=EntryKind.CREDENTIAL, upload_id=None, folder_id=sub.id,
                fields=EntryFields(title=f"host {n}-{m}", password=f"secret {n}-{m}"),
            )
    sent = await alice.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": alice.id}, {"kind": "user", "id": bob.id}],
        "subject": "servers", "attachments": [{"kind": "folder", "folder_id": str(top.id)}]})
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    [listed] = (await bob.http.get(f"/api/messages/{message_id}")).json()["attachments"]
    tree = (await bob.http.get(
        f"/api/messages/{message_id}/attachments/{listed['id']}")).json()["folder"]
    racks = sorted(tree["folders"], key=lambda folder: folder["name"])
    assert [len(rack["entries"]) for rack in racks] == [50, 50, 50]
    assert {e["title"]: e["password"] for e in racks[2]["entries"]}["host 2-49"] == "secret 2-49"
    saved = await bob.http.post(f"/api/messages/{message_id}/save", json={"folder_id": None})
    assert saved.status_code == 201, saved.text
    assert (len(saved.json()["entry_ids"]), len(saved.json()["folder_ids"])) == (150, 4)
    folders, entries = await services.vault.contents(bob.user)
    assert (len(folders), len(entries)) == (4, 150)
