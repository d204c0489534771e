"""The budgets that keep one user's load off the others, on a live server with small ones: requests
a minute, vault items copied into messages a minute, bytes uploaded a minute, and refusals that
a client retrying at once gets only after a pause."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from realtime.api.refusals import PROMPT_REFUSALS
from realtime.config import Settings
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import assert_error, send, user
from tests.vault_support import new_entry, new_folder

REQUESTS = 100  # a minute, per user
COPIES = 4  # vault entries and folders copied into messages, a minute
UPLOAD_BYTES = 3000  # a minute
PAUSE = 3.0  # the pause before a refusal past the prompt ones
HELD = 8  # refusals of one client held at once


@pytest.fixture(scope="module")
async def node(settings: Settings, raw_db: asyncpg.Connection) -> AsyncIterator[LiveServer]:
    # A key made by an earlier test under another master key would stop the start.
    await raw_db.execute("delete from server_keys")
    small = dataclasses.replace(
        settings, requests_per_minute=REQUESTS, copies_per_minute=COPIES,
        upload_bytes_per_minute=UPLOAD_BYTES, requests_in_flight_per_user=100,
        refusal_pause=timedelta(seconds=PAUSE), refusals_held_per_client=HELD,
    )
    with live_server(small) as server:
        yield server


async def use_up_requests(member: Any) -> httpx.Response:
    """Spend the member's requests a minute; return the first refusal. Their budget, and what
    came back while they were spent, were answered."""
    started, answered = time.monotonic(), 0
    while (answer := await member.http.get("/api/me")).status_code == 200:
        answered += 1
    refilled = (time.monotonic() - started) * REQUESTS / 60
    assert REQUESTS <= answered <= REQUESTS + refilled + 1, answered
    return answer


async def test_requests_up_to_the_minute_budget_pass_and_the_next_is_429(
    node: LiveServer, make_user: MakeUser
) -> None:
    """A user's requests a minute are answered; the next is 429 with Retry-After naming the
    budget, and another user is still answered."""
    alice, bob = await make_user(on=node), await make_user(on=node)
    refused = await use_up_requests(alice)
    assert f"{REQUESTS} a minute" in assert_error(refused, 429, "rate_limited")["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60 // REQUESTS + 1
    assert (await bob.http.get("/api/me")).status_code == 200


async def upload(member: Any, size: int, http: httpx.AsyncClient | None = None) -> httpx.Response:
    return await (http or member.http).post(
        "/api/uploads", params={"name": "data.bin"}, content=b"x" * size,
        headers=member.headers(), timeout=PAUSE + 10,
    )


async def use_up_prompt_refusals(member: Any) -> None:
    """Spend the member's bytes uploaded a minute (none back for a minute), then the refusals
    they get at once."""
    assert (await upload(member, UPLOAD_BYTES)).status_code == 201
    for _ in range(PROMPT_REFUSALS):
        assert_error(await upload(member, UPLOAD_BYTES), 429, "rate_limited")


async def test_a_client_retrying_past_its_prompt_refusals_waits_and_others_do_not(
    node: LiveServer, make_user: MakeUser
) -> None:
    """Past its prompt refusals, each refusal of a client is held for the pause; meanwhile
    another user is answered at once."""
    carol, bob = await make_user(on=node), await make_user(on=node)
    await use_up_prompt_refusals(carol)
    started = time.monotonic()
    held = asyncio.create_task(upload(carol, UPLOAD_BYTES))
    await asyncio.sleep(0.05)
    assert (await bob.http.get("/api/me")).status_code == 200
    assert not held.done(), "the refusal was written before the pause"
    assert_error(await held, 429, "rate_limited")
    assert time.monotonic() - started >= PAUSE * 0.9


async def test_past_the_waiting_refusals_of_a_client_the_next_closes_its_connection(
    node: LiveServer, make_user: MakeUser
) -> None:
    """With its most refusals held at once, one more of a client's is answered at once and its
    connection is closed: a client cannot park connections without limit."""
    dave = await make_user(on=node)
    await use_up_prompt_refusals(dave)
    extra = 4
    url = httpx.URL(node.url)
    connections = [await asyncio.open_connection(url.host, url.port)
                   for _ in range(HELD + extra)]
    request = (f"POST /api/uploads?name=d.bin HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n"
               f"Authorization: Bearer {dave.token}\r\nContent-Length: {UPLOAD_BYTES}\r\n"
               "\r\n").encode() + b"x" * UPLOAD_BYTES
    for _, writer in connections:  # every request in before the first refusal's pause ends
        writer.write(request)
    heads = [(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PAUSE + 10)).lower()
             for reader, _ in connections]
    for _, writer in connections:
        writer.close()
    assert all(head.startswith(b"http/1.1 429") for head in heads)
    closed = [head for head in heads if b"\r\nconnection: close\r\n" in head]
    assert 1 <= len(closed) <= extra, len(closed)


async def test_folder_copies_spend_the_copies_budget_and_others_still_send(
    node: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A folder copy spends one unit per folder and entry: past the budget the send is 429
    naming it and sends nothing; another user's copy still goes."""
    erin, bob = await make_user(on=node), await make_user(on=node)
    team = await new_folder(erin, "team")
    for n in range(COPIES - 2):
        await new_entry(erin, folder_id=team, title=f"entry {n}")
    attach = [{"kind": "folder", "folder_id": team}]  # COPIES - 1 items
    assert (await send(erin, [user(bob)], attachments=attach)).status_code == 201
    refused = await send(erin, [user(bob)], attachments=attach)
    assert "copied" in assert_error(refused, 429, "rate_limited")["message"]
    assert int(refused.headers["retry-after"]) >= 1
    sent = await raw_db.fetchval(
        "select count(*) from messages where sender_id = $1::uuid", erin.id
    )
    assert sent == 1
    own = await new_folder(bob, "own")
    answer = await send(bob, [user(erin)], attachments=[{"kind": "folder", "folder_id": own}])
    assert answer.status_code == 201, answer.text


async def test_uploads_past_the_bytes_a_minute_are_429_and_others_still_upload(
    node: LiveServer, make_user: MakeUser
) -> None:
    """Bytes uploaded a minute: up to the budget the upload is kept, past it 429 with
    Retry-After, while another user still uploads."""
    frank, bob = await make_user(on=node), await make_user(on=node)
    assert (await upload(frank, UPLOAD_BYTES)).status_code == 201
    refused = await upload(frank, UPLOAD_BYTES // 2)  # back in 30 s
    assert "bytes uploaded" in assert_error(refused, 429, "rate_limited")["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert (await upload(bob, UPLOAD_BYTES // 2)).status_code == 201
