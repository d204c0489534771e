"""The budgets of shareable links: links one user creates an hour, and opens one address makes
a minute; past either, a 429 with Retry-After, while everyone else is still served."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

from realtime.api.http import Services
from tests.conftest import BASE_URL, MakeUser
from tests.messages_support import assert_error
from tests.test_links_api import create, link_body, open_link, token_of


async def test_a_user_creates_at_most_their_links_an_hour(
    make_user: MakeUser, services: Services
) -> None:
    """The hundredth link of the hour is created, the next is refused with Retry-After and
    keeps nothing; another user still creates theirs."""
    alice, bob = await make_user(), await make_user()
    limit = services.settings.links_per_hour
    gate = asyncio.Semaphore(4)

    async def one() -> int:
        async with gate:
            return (await alice.http.post("/api/links", json=link_body())).status_code

    assert await asyncio.gather(*(one() for _ in range(limit))) == [201] * limit
    refused = await alice.http.post("/api/links", json=link_body())
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert len((await alice.http.get("/api/links")).json()["links"]) == limit
    assert (await bob.http.post("/api/links", json=link_body())).status_code == 201


async def test_one_address_opens_at_most_its_links_a_minute(
    make_user: MakeUser, app: Starlette, services: Services
) -> None:
    """An address guessing tokens gets its opens a minute (each a 404), then 429 with
    Retry-After, even for a real link; another address opens that link."""
    alice = await make_user()
    token = token_of(await create(alice))
    limit = services.settings.link_opens_per_minute

    def from_address(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL)

    async with from_address("198.51.100.7") as guesser, from_address("203.0.113.9") as other:
        guesses = [await open_link(guesser, f"{n:043d}") for n in range(limit)]
        assert {answer.status_code for answer in guesses} == {404}
        refused = await open_link(guesser, token)
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert (await open_link(other, token)).status_code == 200
