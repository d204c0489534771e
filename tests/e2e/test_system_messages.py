"""System messages in the browser: an administrator writes one in the administration page,
every open tab shows it as a banner at once and every later sign-in shows it, until the user
dismisses it (on one device, gone from all) or it is withdrawn."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import SCREENSHOTS, OpenPage


async def write(page: Page, subject: str, body: str, *, mode: str = "dismissible") -> None:
    """Post a system message through the administration page."""
    await page.click("#nav-admin")
    await page.fill("#new-system-subject", subject)
    await page.fill("#new-system-body", body)
    await page.select_option("#new-system-mode", mode)
    await page.click("#new-system button[type=submit]")
    await expect(page.locator("#admin-status")).to_contain_text("to everyone")
    await expect(page.locator("table#system-messages tbody tr")).to_have_count(1)


def banner(page: Page, subject: str) -> Locator:
    return page.locator("#system-banners .system-banner", has_text=subject)


async def test_a_system_message_reaches_open_tabs_and_the_next_login_until_dismissed(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Bob's two devices show the banner live, not as the popup's modal; dismissed on one it
    leaves both; Carol, signed out meanwhile, sees it at her login and dismisses it."""
    bob, carol = await make_user(display_name="Bob"), await make_user(display_name="Carol")
    laptop, phone = await open_page(bob), await open_page(bob, width=420)
    for page in (laptop, phone):
        await expect(page.locator("#live-status")).to_have_text("Live")
    admin_page = await open_page(admin)
    await write(admin_page, "Maintenance tonight",
                "The service stops from 22:00 to 23:00 UTC.\nSave your work before then.")
    for page in (laptop, phone):
        shown = banner(page, "Maintenance tonight")
        await expect(shown).to_be_visible()
        await expect(shown).to_contain_text("Save your work")
        await expect(page.locator("#popup")).not_to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    await laptop.screenshot(path=str(SCREENSHOTS / "system-message-banner.png"))
    await phone.screenshot(path=str(SCREENSHOTS / "system-message-banner-narrow.png"))
    await admin_page.locator("#new-system").scroll_into_view_if_needed()
    await admin_page.screenshot(path=str(SCREENSHOTS / "system-message-admin.png"), full_page=True)

    await banner(laptop, "Maintenance tonight").get_by_role("button", name="Dismiss").click()
    for page in (laptop, phone):
        await expect(banner(page, "Maintenance tonight")).to_have_count(0)
    await phone.reload()
    await expect(phone.locator("#live-status")).to_have_text("Live")
    await expect(phone.locator("#system-banners")).to_be_hidden()

    carols = await open_page(carol)
    await expect(banner(carols, "Maintenance tonight")).to_be_visible()
    await banner(carols, "Maintenance tonight").get_by_role("button", name="Dismiss").click()
    await expect(banner(carols, "Maintenance tonight")).to_have_count(0)
    again = await open_page(carol)
    await expect(again.locator("#live-status")).to_have_text("Live")
    await expect(again.locator("#system-banners")).to_be_hidden()


async def test_a_reminder_comes_back_at_sign_in_until_it_is_withdrawn(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Hidden for now, a reminder shows again at the next sign-in; withdrawn by the admin, it
    leaves the open tab at once."""
    dana = await make_user(display_name="Dana")
    admin_page = await open_page(admin)
    await write(admin_page, "Change your password", "Every 90 days, please.", mode="reminder")
    page = await open_page(dana)
    shown = banner(page, "Change your password")
    await expect(shown).to_contain_text("Reminder")
    await shown.get_by_role("button", name="Hide for now").click()
    await expect(shown).to_have_count(0)
    await page.click("#logout")
    await page.fill("#login input[name=username]", dana.username)
    await page.fill("#login input[name=password]", dana.password)
    await page.click("#login button[type=submit]")
    await expect(shown).to_be_visible()
    await page.screenshot(path=str(SCREENSHOTS / "system-message-reminder.png"))
    withdraw = admin_page.locator("table#system-messages button.withdraw")
    await withdraw.click()
    await withdraw.click()  # asked twice
    await expect(admin_page.locator("#system-empty")).to_be_visible()
    await expect(shown).to_have_count(0)
