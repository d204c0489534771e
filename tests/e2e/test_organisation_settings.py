"""The organisation's settings in the browser: an administrator changes them in the
administration page, and every user's open tab is judged by them at once, with no reload."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import SCREENSHOTS, OpenPage
from tests.e2e.test_client import add_recipient, compose_to, confirmed_sent, open_composer
from tests.messages_support import box
from tests.vault_support import new_entry


async def open_settings(page: Page) -> None:
    await page.click("#nav-admin")
    await expect(page.locator("#organisation-settings")).to_be_visible()
    await expect(page.locator("#organisation-file")).to_have_value("25")


async def save(page: Page, expected: str) -> None:
    await page.click("#organisation-settings button[type=submit]")
    await expect(page.locator("#admin-status")).to_contain_text(expected)


async def test_sending_turned_off_for_the_organisation_refuses_a_send_in_an_open_tab_at_once(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Carol has her composer open and filled when the admin turns sending off for everyone:
    her send is refused, nothing is delivered and the composer says why; turned back on, the
    same tab sends."""
    carol, bob = await make_user(display_name="Carol"), await make_user(display_name="Bob")
    carols = await open_page(carol)
    await expect(carols.locator("#live-status")).to_have_text("Live")
    await compose_to(carols, bob, "Before the change", "Written before the policy changed.")

    admins = await open_page(admin)
    await open_settings(admins)
    await expect(admins.locator("#organisation-send")).to_have_value("with_attachments")
    await admins.select_option("#organisation-send", "not_allowed")
    await save(admins, "sending not allowed")
    await admins.screenshot(path=str(SCREENSHOTS / "organisation-settings-admin.png"))

    await carols.click("#send")
    error = carols.locator("#compose-error")
    await expect(error).to_contain_text("not allowed")
    await expect(carols.locator("#compose-notice")).to_have_text(
        "Your account may not send messages."
    )
    await expect(carols.locator("#compose-status")).to_be_empty()
    SCREENSHOTS.mkdir(exist_ok=True)
    await carols.screenshot(path=str(SCREENSHOTS / "organisation-send-refused.png"))
    assert await box(bob) == []

    await admins.select_option("#organisation-send", "with_attachments")
    await save(admins, "sending with attachments")
    await carols.click("#send")
    await confirmed_sent(carols)
    assert [m["subject"] for m in await box(bob)] == ["Before the change"]
    await expect(carols.locator("#compose-notice")).to_be_hidden()
    await expect(carols.locator("#more")).to_be_visible()


async def test_without_attachments_hides_the_attachment_menu_and_the_settings_are_checked(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Under "without attachments" Dana's composer and vault offer no attachment; the admin's form
    refuses a file limit out of range next to the field, and keeps a maximum lifetime in the
    unit it was given."""
    dana, bob = await make_user(display_name="Dana"), await make_user(display_name="Bob")
    admins = await open_page(admin)
    await open_settings(admins)
    await admins.select_option("#organisation-send", "without_attachments")
    await admins.fill("#organisation-file", "30")
    await admins.click("#organisation-settings button[type=submit]")
    await expect(admins.locator("#organisation-max_file_mb-error")).to_be_visible()
    await expect(admins.locator("#admin-status")).to_contain_text("cannot be saved")
    assert (await admin.http.get("/api/admin/settings")).json()["send_messages"] == (
        "with_attachments"
    )
    await admins.fill("#organisation-file", "5")
    await admins.check("#organisation-lifetime-toggle")
    await admins.fill("#organisation-lifetime", "2")
    await admins.select_option("#organisation-lifetime-unit", "3600")
    await save(admins, "everything expires within 2 hours")
    assert (await admin.http.get("/api/admin/settings")).json() == {
        "send_messages": "without_attachments", "share_links": True, "max_file_mb": 5,
        "max_lifetime": 7200,
    }
    await admins.reload()
    await open_settings_after_reload(admins)
    await expect(admins.locator("#organisation-lifetime")).to_have_value("2")
    await expect(admins.locator("#organisation-lifetime-unit")).to_have_value("3600")
    await admins.locator("#organisation-settings").screenshot(
        path=str(SCREENSHOTS / "organisation-settings-form.png")
    )

    await new_entry(dana, title="router", username="admin", password="r0uter")
    danas = await open_page(dana)
    await danas.click("#nav-vault")
    await expect(danas.locator("#vault-tree li", has_text="router")).to_be_visible()
    await expect(danas.locator("#vault-tree .send-copy")).to_have_count(1)
    await expect(danas.locator("#vault-tree .send-copy")).to_be_hidden()
    await open_composer(danas)
    await expect(danas.locator("#more")).to_be_hidden()
    await expect(danas.locator("#compose-notice")).to_have_text(
        "Your account may send messages without attachments."
    )
    await expect(danas.locator("#lifetime-hint")).to_contain_text("within 2 hours")
    await expect(danas.locator("#file-limit")).to_have_text("At most 5 MiB per file.")
    await add_recipient(danas, bob)
    await danas.fill("#subject", "No files today")
    await danas.click("#send")
    await confirmed_sent(danas)
    sent = await box(bob)
    assert [m["subject"] for m in sent] == ["No files today"]
    assert sent[0]["expires_at"] is not None  # the organisation's maximum lifetime
    await danas.screenshot(path=str(SCREENSHOTS / "organisation-without-attachments.png"))


async def open_settings_after_reload(page: Page) -> None:
    await page.click("#nav-admin")
    await expect(page.locator("#organisation-file")).to_have_value("5")
