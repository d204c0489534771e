"""The organisation's settings in the administration page, and a user's open tab obeying them at
once."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import OpenPage
from tests.e2e.test_client import compose_to, confirmed_sent

SCREENSHOTS = Path(__file__).parent / "screenshots"


async def test_sending_stopped_in_the_admin_page_refuses_a_send_in_an_open_tab(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Bob has the composer open and sends; the admin sets "Sending messages" to "not
    allowed"; Bob's next send from the same open tab is refused, and his composer says why;
    allowed again with a maximum lifetime, his send goes, expiring within it."""
    bob, carol = await make_user(), await make_user()
    bob_page = await open_page(bob)
    await compose_to(bob_page, carol, "before the change", "first")
    await bob_page.click("#send")
    await confirmed_sent(bob_page)

    admin_page = await open_page(admin)
    await admin_page.click("#nav-admin")
    form = admin_page.locator("form#organisation")
    await expect(form.locator("select[name=send_messages]")).to_have_value("with_attachments")
    await expect(form.locator("input[name=max_file_mb]")).to_have_value("25")
    await form.locator("select[name=send_messages]").select_option("not_allowed")
    await form.locator("input[name=max_file_mb]").fill("5")
    await form.locator("button[type=submit]").click()
    await expect(admin_page.locator("#admin-status")).to_contain_text("Saved")
    settings = (await admin.http.get("/api/admin/settings")).json()
    assert (settings["send_messages"], settings["max_file_mb"]) == ("not_allowed", 5)
    await admin_page.screenshot(path=str(SCREENSHOTS / "organisation-settings.png"))

    await compose_to(bob_page, carol, "after the change", "second")
    await bob_page.click("#send")
    await expect(bob_page.locator("#compose-error")).to_contain_text("not allowed to send")
    await expect(bob_page.locator("#compose-notice")).to_contain_text("may not send messages")
    await bob_page.screenshot(path=str(SCREENSHOTS / "organisation-send-refused.png"))
    inbox = (await carol.http.get("/api/messages")).json()["messages"]
    assert [m["subject"] for m in inbox] == ["before the change"]

    await form.locator("select[name=send_messages]").select_option("with_attachments")
    await admin_page.locator("#organisation-lifetime-toggle").check()
    await form.locator("input[name=lifetime]").fill("2")
    await form.locator("select[name=unit]").select_option("3600")
    await form.locator("button[type=submit]").click()
    await expect(admin_page.locator("#admin-status")).to_contain_text("Saved")
    assert (await admin.http.get("/api/admin/settings")).json()["max_lifetime"] == 7200
    await bob_page.click("#send")
    await confirmed_sent(bob_page)
    inbox = (await carol.http.get("/api/messages")).json()["messages"]
    assert inbox[0]["subject"] == "after the change" and inbox[0]["expires_at"] is not None
