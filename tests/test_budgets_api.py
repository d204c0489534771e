"""The sends budget of every user, over HTTP on live servers that share one database: a token
bucket of sends a minute, held across nodes, that an answered retry does not spend."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import pytest

from realtime.config import Settings, load_settings
from realtime.errors import ConfigError
from tests.conftest import LoggedInUser, MakeUser
from tests.live_server import LiveServer, live_server
from tests.messages_support import assert_error, send, user

SENDS = 3


@pytest.fixture(scope="module")
def nodes(settings: Settings) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two nodes on the test database, each allowing SENDS sends a minute per user."""
    small = dataclasses.replace(settings, sends_per_minute=SENDS)
    with live_server(small) as first, live_server(small) as second:
        yield first, second


async def sent_by(raw_db: asyncpg.Connection, person: LoggedInUser) -> int:
    return int(await raw_db.fetchval(
        "select count(*) from messages where sender_id = $1::uuid", person.id
    ))


async def test_sends_up_to_the_budget_pass_and_the_next_is_429_with_retry_after(
    nodes: tuple[LiveServer, LiveServer], make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A user sends their budget of messages a minute; the next is 429 with Retry-After and
    sends nothing, while another user still sends."""
    node = nodes[0]
    alice, bob = await make_user(on=node), await make_user(on=node)
    for _ in range(SENDS):
        assert (await send(alice, [user(bob)])).status_code == 201
    refused = await send(alice, [user(bob)])
    error = assert_error(refused, 429, "rate_limited")
    assert f"{SENDS} a minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60 // SENDS
    assert await sent_by(raw_db, alice) == SENDS
    assert (await send(bob, [user(alice)])).status_code == 201


async def test_the_budget_holds_across_nodes(
    nodes: tuple[LiveServer, LiveServer], make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Sends through two nodes draw on one budget: the one past it is refused on either."""
    first, second = nodes
    alice, bob = await make_user(on=first), await make_user(on=first)
    alice_elsewhere = await make_user.another_session(alice, on=second)
    assert (await send(alice, [user(bob)])).status_code == 201
    for _ in range(SENDS - 1):
        assert (await send(alice_elsewhere, [user(bob)])).status_code == 201
    assert_error(await send(alice, [user(bob)]), 429, "rate_limited")
    assert_error(await send(alice_elsewhere, [user(bob)]), 429, "rate_limited")
    assert await sent_by(raw_db, alice) == SENDS


async def test_an_answered_retry_spends_nothing_and_still_answers_when_the_budget_is_gone(
    nodes: tuple[LiveServer, LiveServer], make_user: MakeUser
) -> None:
    """Retrying a send with its Idempotency-Key gives the first answer without spending the
    budget, even once the budget is empty."""
    node = nodes[0]
    alice, bob = await make_user(on=node), await make_user(on=node)
    first = await send(alice, [user(bob)], key="retry-me")
    assert first.status_code == 201
    for _ in range(SENDS + 2):
        retry = await send(alice, [user(bob)], key="retry-me")
        assert (retry.status_code, retry.json()["id"]) == (201, first.json()["id"])
    for _ in range(SENDS - 1):
        assert (await send(alice, [user(bob)])).status_code == 201
    assert_error(await send(alice, [user(bob)]), 429, "rate_limited")
    late = await send(alice, [user(bob)], key="retry-me")
    assert (late.status_code, late.json()["id"]) == (201, first.json()["id"])


def test_the_budgets_are_read_from_the_environment_and_bad_values_stop_the_start() -> None:
    """Every budget's REALTIME_* setting is read; a value out of range names its variable."""
    settings = load_settings({
        "REALTIME_SENDS_PER_MINUTE": "5", "REALTIME_UPLOAD_BYTES_IN_FLIGHT": "1000",
        "REALTIME_STORED_BYTES_PER_USER": "2000", "REALTIME_UPLOAD_IDLE_TIMEOUT": "10s",
        "REALTIME_VAULT_MAX_ENTRIES": "7", "REALTIME_VAULT_MAX_FOLDERS": "8",
        "REALTIME_VAULT_MAX_DEPTH": "9", "REALTIME_FOLDER_COPY_MAX_BYTES": "4096",
    })
    assert (settings.sends_per_minute, settings.upload_bytes_in_flight,
            settings.stored_bytes_per_user, settings.upload_idle_timeout) == (
        5, 1000, 2000, timedelta(seconds=10))
    assert (settings.vault_max_entries, settings.vault_max_folders, settings.vault_max_depth,
            settings.folder_copy_max_bytes) == (7, 8, 9, 4096)
    paced = load_settings({
        "REALTIME_COPIES_PER_MINUTE": "1500", "REALTIME_UPLOAD_BYTES_PER_MINUTE": "30000000",
        "REALTIME_REQUESTS_PER_MINUTE": "90", "REALTIME_REFUSAL_PAUSE": "0",
        "REALTIME_REFUSALS_HELD_PER_CLIENT": "7",
    })
    assert (paced.copies_per_minute, paced.upload_bytes_per_minute, paced.requests_per_minute,
            paced.refusal_pause, paced.refusals_held_per_client) == (
        1500, 30_000_000, 90, timedelta(0), 7)
    defaults = load_settings({})
    assert (defaults.sends_per_minute, defaults.vault_max_depth) == (60, 20)
    assert (defaults.copies_per_minute, defaults.upload_bytes_per_minute,
            defaults.requests_per_minute, defaults.refusal_pause) == (
        2000, 256 * 1024 * 1024, 600, timedelta(seconds=1))
    for name, value in (("REALTIME_VAULT_MAX_DEPTH", "101"), ("REALTIME_SENDS_PER_MINUTE", "0"),
                        ("REALTIME_UPLOAD_BYTES_IN_FLIGHT", "lots"),
                        ("REALTIME_COPIES_PER_MINUTE", "1199"),
                        ("REALTIME_UPLOAD_BYTES_PER_MINUTE", "1000"),
                        ("REALTIME_REFUSAL_PAUSE", "-1s")):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})
