"""The administration page for an organisation of thousands: users found as one types, a page
at a time, filtered, with who is online; group members picked by search."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
from playwright.async_api import Page, expect

from realtime import crypto
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.e2e.conftest import OpenPage
from tests.live_server import LiveServer
from tests.ws_support import open_socket

SCREENSHOTS = Path(__file__).parent / "screenshots"
SEEDED = 10_000


async def seed_users(raw_db: asyncpg.Connection, prefix: str, count: int) -> list[uuid.UUID]:
    """`count` accounts named PREFIX-00000..., written as creating them would (one password
    hash for all: hashing 10,000 passwords would take minutes)."""
    password_hash = crypto.hash_password(crypto.new_token())
    ids = [uuid.uuid4() for _ in range(count)]
    async with raw_db.transaction():
        await raw_db.copy_records_to_table(
            "users", columns=["id", "username", "display_name", "password_hash"],
            records=[(user_id, f"{prefix}-{i:05d}", f"Member {i:05d} of {prefix}", password_hash)
                     for i, user_id in enumerate(ids)],
        )
        await raw_db.copy_records_to_table(
            "event_counters", columns=["user_id"], records=[(user_id,) for user_id in ids]
        )
    return ids


async def open_admin(page: Page) -> None:
    await page.click("#nav-admin")
    await expect(page.locator("table#users tbody tr").first).to_be_visible()


async def test_with_ten_thousand_users_the_page_shows_one_page_and_finds_a_user_by_prefix(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage, raw_db: asyncpg.Connection
) -> None:
    prefix = unique_name("org")
    await seed_users(raw_db, prefix, SEEDED)
    page = await open_page(admin)
    await open_admin(page)
    rows = page.locator("table#users tbody tr")
    await expect(rows).to_have_count(50)
    await expect(page.locator("#users-page")).to_have_text("Page 1: 1\u201350")

    await page.fill("#user-query", f"{prefix}-0421")
    await expect(rows).to_have_count(10)  # 04210 to 04219
    first = rows.first
    await expect(first.locator(".display-name")).to_have_text(f"Member 04210 of {prefix}")
    await expect(first.locator(".seen")).to_have_text("never")
    await page.screenshot(path=str(SCREENSHOTS / "admin-users-search.png"))

    # The display name finds them too, and a name that matches nobody says so.
    await page.fill("#user-query", "member 0999")
    await expect(rows).to_have_count(10)
    await page.fill("#user-query", "nobody-by-this-name")
    await expect(page.locator("#users-empty")).to_be_visible()
    await expect(rows).to_have_count(0)

    # Pages follow each other and come back.
    await page.fill("#user-query", prefix)
    await expect(page.locator("#users-page")).to_have_text("Page 1: 1\u201350")
    await page.click("#users-next")
    await expect(page.locator("#users-page")).to_have_text("Page 2: 51\u2013100")
    await expect(rows.first.locator(".extra").first).to_have_text(f"@{prefix}-00050")
    await page.click("#users-previous")
    await expect(rows.first.locator(".extra").first).to_have_text(f"@{prefix}-00000")
    await expect(page.locator("#users-previous")).to_be_disabled()


async def test_filters_show_who_is_online_and_who_may_not_send(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage, live: LiveServer
) -> None:
    online = await make_user(display_name="Olive Online")
    mute = await make_user(display_name="Mo Mute", can_send=False)
    ws = await open_socket(live, online)
    try:
        page = await open_page(admin)
        await open_admin(page)
        rows = page.locator("table#users tbody tr")
        await page.check("#user-only-online")
        # The admin's own page is online too; Mo, who has no socket, is not listed.
        await expect(rows.filter(has_text="Olive Online")).to_have_count(1)
        await expect(rows.filter(has_text="Mo Mute")).to_have_count(0)
        await expect(page.locator(f"tr[data-id='{online.id}'] .seen")).to_have_text("online")
        await page.uncheck("#user-only-online")
        await page.check("#user-only-cannot-send")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-id", mute.id)
        await page.screenshot(path=str(SCREENSHOTS / "admin-users-filtered.png"))
    finally:
        await ws.close()


async def test_group_members_are_picked_by_search(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """A new group gets its members by typing a name and picking it; an existing group adds one
    the same way, and its members show by name."""
    ann = await make_user(unique_name("ann"), display_name="Ann Picked")
    bob = await make_user(unique_name("bob"), display_name="Bob Added")
    page = await open_page(admin)
    await open_admin(page)
    name = unique_name("team")
    await page.fill("#new-group-name", name)
    finder = page.get_by_role("combobox", name="Add a member to the new group")
    await finder.fill("Ann Pi")
    await page.locator("#new-group-finder .user-finder-option", has_text="Ann Picked").click()
    await expect(page.locator("#new-group-members .chip-name")).to_have_text(["Ann Picked"])
    await page.click("#new-group button[type=submit]")
    await expect(page.locator("#admin-status")).to_contain_text(f"Created the group {name}")

    row = page.locator("table#groups tr", has_text=name)
    adding = row.get_by_role("combobox", name=f"Add a member to {name}")
    await adding.fill(bob.user.username[:6])
    # Ann is in the group already: only Bob is offered; Enter picks the first offered.
    await expect(row.locator(".user-finder-option")).to_have_count(1)
    await adding.press("Enter")
    await expect(row.locator(".members .chip-name")).to_have_text(["Ann Picked", "Bob Added"],
                                                                  use_inner_text=True)
    groups = (await admin.http.get("/api/admin/groups")).json()["groups"]
    made = next(g for g in groups if g["name"] == name)
    assert set(made["member_ids"]) == {ann.id, bob.id}
