"""Per-user budgets: token buckets in PostgreSQL, shared by every node."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.errors import RateLimited
from realtime.store import budgets as budget_store
from tests.conftest import unique_name


async def test_a_budget_allows_its_capacity_and_refuses_one_more(services: Services) -> None:
    """A bucket of five gives five units at once, and the sixth is refused with a wait."""
    key = unique_name("send")
    for _ in range(5):
        await services.budgets.spend(key, per_minute=5, what="sends")
    with pytest.raises(RateLimited) as refused:
        await services.budgets.spend(key, per_minute=5, what="sends")
    assert 1 <= refused.value.retry_after <= 12  # one unit comes back every 12 s
    assert "5 a minute" in refused.value.message


async def test_one_users_empty_budget_leaves_anothers_whole(services: Services) -> None:
    """Emptying one key's bucket does not touch another key's."""
    spent, other = unique_name("send"), unique_name("send")
    for _ in range(3):
        await services.budgets.spend(spent, per_minute=3, what="sends")
    with pytest.raises(RateLimited):
        await services.budgets.spend(spent, per_minute=3, what="sends")
    for _ in range(3):
        await services.budgets.spend(other, per_minute=3, what="sends")


async def test_simultaneous_takers_get_exactly_the_capacity(
    services: Services, raw_db: asyncpg.Connection
) -> None:
    """Twenty takers at once from separate connections: exactly ten units are given."""
    key = unique_name("send")
    await services.budgets.spend(key, per_minute=10, what="sends")  # the bucket exists

    async def take() -> float:
        async with services.db.connection() as conn:
            return await budget_store.take_token(conn, key, capacity=10, per_second=1e-6)

    waits = await asyncio.gather(*(take() for _ in range(20)))
    assert sum(1 for wait in waits if wait == 0) == 9
    tokens = await raw_db.fetchval("select tokens from budget_buckets where key = $1", key)
    assert 0 <= tokens < 1


async def test_a_bucket_refills_with_time(
    services: Services, raw_db: asyncpg.Connection
) -> None:
    """An empty bucket last used a minute ago is full again."""
    key = unique_name("send")
    for _ in range(2):
        await services.budgets.spend(key, per_minute=2, what="sends")
    with pytest.raises(RateLimited):
        await services.budgets.spend(key, per_minute=2, what="sends")
    await raw_db.execute(
        "update budget_buckets set updated_at = updated_at - interval '61 seconds' where key = $1",
        key,
    )
    for _ in range(2):
        await services.budgets.spend(key, per_minute=2, what="sends")
