"""The audit trail in the administration page: what happened, filtered, never what was said."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import OpenPage
from tests.messages_support import send, user

SCREENSHOTS = Path(__file__).parent / "screenshots"


async def test_the_audit_view_lists_a_send_and_a_failed_login_and_filters_by_user(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Bob mistypes his password and Alice sends Bob a message; the admin's audit view lists
    both, with who, what and how it ended, and none of the message; filtered to Bob, only his
    records remain."""
    alice, bob = await make_user(), await make_user()
    wrong = await bob.http.post("/api/auth/login",
                                json={"username": bob.username, "password": "not the password"})
    assert wrong.status_code == 401
    sent = await send(alice, [user(bob)], subject="the launch codes", body="0000")
    assert sent.status_code == 201

    page = await open_page(admin)
    await page.click("#nav-admin")
    table = page.locator("table#audit")
    failed = table.locator("tr[data-action='login'][data-outcome='failed']")
    await expect(failed.first).to_be_visible()
    await expect(failed.first.locator(".audit-actor")).to_have_text(bob.username)
    sent_row = table.locator("tr[data-action='message.sent']")
    await expect(sent_row.first.locator(".audit-actor")).to_have_text(alice.username)
    await expect(sent_row.first).to_contain_text("recipients: 1")
    await expect(table).not_to_contain_text("launch codes")
    await page.locator("#audit").scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "audit-trail.png"))

    await page.get_by_role("combobox", name="Show the records of one user").fill(bob.username)
    await page.locator("#audit-user-finder .user-finder-option", has_text=bob.username).click()
    await expect(page.locator("#audit-user-chosen .chip")).to_contain_text(bob.username)
    await page.click("#audit-filter button[type=submit]")
    await expect(table.locator("tr[data-action='message.sent']")).to_have_count(0)
    actors = await table.locator("tbody .audit-actor").all_inner_texts()
    assert actors and set(actors) == {bob.username}
    await page.locator("#audit-user-chosen .remove").click()
    await page.select_option("#audit-action", "message.sent")
    await page.click("#audit-filter button[type=submit]")
    await expect(table.locator("tbody tr")).to_have_count(1)
    async with page.expect_download() as downloading:
        await page.click("#audit-export")
    download = await downloading.value
    saved_at = await download.path()
    exported = (await asyncio.to_thread(Path(saved_at).read_text)).splitlines()
    assert len(exported) == 1 and '"message.sent"' in exported[0]
    assert "launch codes" not in exported[0]
