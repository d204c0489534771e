"""A shareable link's whole way in Chromium: made in the composer, opened by Reveal in a browser
without an account, then refused when opened again."""

from __future__ import annotations

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import MakeUser
from tests.e2e.conftest import UI_TIMEOUT_MS, OpenPage
from tests.e2e.test_links_client import choose_mode
from tests.live_server import LiveServer


async def reveal_in_a_new_browser(browser: Browser, url: str) -> tuple[Page, BrowserContext]:
    """Open the link in a browser context of its own (no session) and press Reveal."""
    context = await browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(url)
    await page.click("#reveal")
    return page, context


async def test_a_link_made_in_the_composer_reveals_once_in_another_browser(
    make_user: MakeUser, open_page: OpenPage, live: LiveServer, browser: Browser
) -> None:
    """Alice makes a one-view link in the composer; in a browser with no session, Reveal shows
    its subject, body and credential and says it was the last view; in a third browser the
    same link is gone; and Alice's Links list no longer holds it."""
    alice = await make_user()
    page = await open_page(alice)
    await choose_mode(page, "link")
    await page.fill("#subject", "Printer admin")
    await page.fill("#body", "Second floor, by the window.")
    await page.click("#more")
    await page.click("#add-credentials")
    await page.fill("#cred-title", "printer")
    await page.fill("#cred-username", "root")
    await page.fill("#cred-password", "toner-2026!")
    await page.click("#cred-add")
    await page.click("#send")
    await expect(page.locator("#link-result")).to_be_visible()
    url = await page.input_value("#link-url")

    first, first_context = await reveal_in_a_new_browser(browser, url)
    await expect(first.locator("#content-subject")).to_have_text("Printer admin")
    await expect(first.locator("#content-body")).to_have_text("Second floor, by the window.")
    credential = first.locator("li.share-credential")
    await expect(credential.locator(".username-value")).to_have_text("root")
    await credential.locator("button.show-password").click()
    await expect(credential.locator(".password-value")).to_have_text("toner-2026!")
    await expect(first.locator("#content-views")).to_contain_text("last view")

    second, second_context = await reveal_in_a_new_browser(browser, url)
    await expect(second.locator("section#share-ended")).to_be_visible()
    await expect(second.locator("#content-subject")).to_be_hidden()
    for context in (first_context, second_context):
        await context.close()

    await page.click("#nav-links")
    await expect(page.locator("section#links")).to_be_visible()
    await expect(page.locator("#link-list li.link-row")).to_have_count(0)
