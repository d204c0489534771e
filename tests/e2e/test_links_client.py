"""The creator's side of shareable links in the browser client, end to end: the composer's
three modes, a link made there and shown once, and the Links list kept current live while
someone without an account opens the link.

What a test is not about (making a link to revoke, opening it as its recipient) goes over the
HTTP API; what it is about is done and seen in a real Chromium against a live server. The
names the tests find are those `docs/client.md` promises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from starlette.applications import Starlette

from realtime.api.http import Services
from realtime.config import Settings
from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import SCREENSHOTS, UI_TIMEOUT_MS, OpenPage
from tests.live_server import LiveServer, live_server
from tests.mail_support import SmtpServer, smtp_server_fixture  # noqa: F401 (a fixture)

# The contract's live deadline: what the server does shows in an open tab within 1 s.
LIVE_MS = 1000


async def screenshot(page: Page, name: str) -> None:
    """Save the whole page, from its top, as `name` among the screenshots."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


async def choose_mode(page: Page, mode: str) -> None:
    """Open the composer and pick one of its modes: in-app, email or link."""
    await page.click("#nav-compose")
    await expect(page.locator("section#compose")).to_be_visible()
    await page.click(f"#mode-{mode}-option")
    await expect(page.locator("section#compose")).to_have_attribute("data-mode", mode)


async def open_links_list(page: Page) -> None:
    await page.click("#nav-links")
    await expect(page.locator("section#links")).to_be_visible()


def link_row(page: Page, link_id: str) -> Locator:
    return page.locator(f"#link-list li.link-row[data-id='{link_id}']")


async def open_link(server: LiveServer, url: str) -> httpx.Response:
    """Open a link as its recipient does, with no account and no session: the token is the
    URL's fragment."""
    token = urlsplit(url).fragment
    assert token, url
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        return await anonymous.post("/api/links/open", json={"token": token, "passphrase": None})


async def new_link(
    person: LoggedInUser, subject: str, *, max_views: int = 1, passphrase: str | None = None
) -> dict[str, Any]:
    """A link the person makes over HTTP: `{id, url, expires_at, max_views}`."""
    expires = datetime.now(UTC) + timedelta(days=1)
    answer = await person.http.post("/api/links", json={
        "subject": subject, "body": "", "expires_at": expires.isoformat(),
        "max_views": max_views, "passphrase": passphrase,
    })
    assert answer.status_code == 201, answer.text
    link: dict[str, Any] = answer.json()
    return link


async def listed(person: LoggedInUser) -> list[dict[str, Any]]:
    answer = await person.http.get("/api/links")
    assert answer.status_code == 200, answer.text
    links: list[dict[str, Any]] = answer.json()["links"]
    return links


@asynccontextmanager
async def signed_in(
    browser: Browser, server: LiveServer, person: LoggedInUser, test_name: str
) -> AsyncIterator[Page]:
    """A page of the client on `server` (not the `live` one of `open_page`), logged in through
    the login form; screenshot at the end as `<test_name>-0.png`, as `open_page` does."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = await context.new_page()
        await page.goto(server.url + "/")
        await page.fill("#login input[name=username]", person.username)
        await page.fill("#login input[name=password]", person.password)
        await page.click("#login button[type=submit]")
        await expect(page.locator("#whoami")).to_be_visible()
        yield page
        await screenshot(page, f"{test_name}-0.png")
    finally:
        await context.close()


@asynccontextmanager
async def mail_server_and_user(
    settings: Settings, services: Services, app: Starlette, smtp: SmtpServer
) -> AsyncIterator[tuple[LiveServer, LoggedInUser]]:
    """A live server whose mail relay is `smtp`, and a user logged in to it over HTTP."""
    with live_server(smtp.configure(settings)) as server:
        make = MakeUser(services, app, default_node=server, timeout=30)
        try:
            yield server, await make()
        finally:
            await make.close()


async def test_a_link_made_in_the_composer_is_shown_once_and_its_views_tick_live(
    make_user: MakeUser, open_page: OpenPage, live: LiveServer
) -> None:
    """Alice makes a three-view link with a generated credential in the composer and copies
    its URL from the result; someone without an account opens it and gets all of it, and
    Alice's Links list goes from 0 to 1 view within a second, without a reload; her other
    link, which has a passphrase, shows a lock and does not move."""
    alice = await make_user()
    guarded = await new_link(alice, "Door code", max_views=5, passphrase="a passphrase to share")
    page = await open_page(alice)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    await choose_mode(page, "link")
    await page.fill("#subject", "Staging database")
    await page.fill("#body", "For tonight's migration.")
    await page.click("#more")
    await page.click("#add-credentials")
    await page.fill("#cred-title", "staging-db")
    await page.fill("#cred-username", "migrator")
    await page.click("#cred-generate")
    await page.click("#gen-candidates li:first-child button")
    password = await page.input_value("#cred-password")
    assert len(password) >= 8
    await page.click("#cred-add")
    await page.select_option("#link-expiry", "604800")
    await page.fill("#link-views", "3")
    await screenshot(page, "compose-link.png")
    await page.click("#send")

    result = page.locator("#link-result")
    await expect(result).to_be_visible()
    await expect(result).to_contain_text("This link is shown only now")
    await expect(page.locator("#link-result-views")).to_have_text("3 times")
    await expect(page.locator("#link-result-sent")).to_be_hidden()
    await page.click("#link-copy")
    url = await page.evaluate("navigator.clipboard.readText()")
    assert url == await page.input_value("#link-url")
    assert url.startswith(live.url + "/s/#")
    await screenshot(page, "compose-link-created.png")

    await page.click("#link-show-links")
    newest, _ = await listed(alice)
    row = link_row(page, newest["id"])
    await expect(page.locator("#link-list li.link-row")).to_have_count(2)
    await expect(row.locator(".subject")).to_have_text("Staging database")
    await expect(row.locator(".views")).to_have_text("0 / 3")
    await expect(row.locator(".last-viewed")).to_have_text("Not yet")
    await expect(row.locator(".lock")).to_have_count(0)
    other = link_row(page, guarded["id"])
    await expect(other.locator(".lock")).to_have_count(1)

    opened = await open_link(live, url)
    assert opened.status_code == 200, opened.text
    content = opened.json()
    assert (content["subject"], content["body"], content["views_left"]) == (
        "Staging database", "For tonight's migration.", 2)
    [credential] = content["attachments"]
    assert (credential["title"], credential["username"], credential["password"]) == (
        "staging-db", "migrator", password)
    await expect(row.locator(".views")).to_have_text("1 / 3", timeout=LIVE_MS)
    await expect(row.locator(".last-viewed")).not_to_have_text("Not yet")
    await expect(other.locator(".views")).to_have_text("0 / 5")
    await screenshot(page, "links-list.png")


async def test_a_link_whose_last_view_is_taken_leaves_the_list_saying_why(
    make_user: MakeUser, open_page: OpenPage, live: LiveServer
) -> None:
    """A one-view link in Alice's open Links list is marked "All views used" within a second of
    being opened, and then its row goes."""
    alice = await make_user()
    link = await new_link(alice, "One look only")
    page = await open_page(alice)
    await open_links_list(page)
    row = link_row(page, link["id"])
    await expect(row.locator(".views")).to_have_text("0 / 1")

    assert (await open_link(live, link["url"])).status_code == 200
    await expect(row.locator(".gone-reason")).to_have_text("All views used", timeout=LIVE_MS)
    await expect(row).to_have_count(0)
    await expect(page.locator("#links-empty")).to_be_visible()


async def test_revoking_a_link_removes_it_and_it_opens_no_more(
    make_user: MakeUser, open_page: OpenPage, live: LiveServer
) -> None:
    """Revoke, pressed twice, takes the link off Alice's list and its recipient then gets 404;
    her other link stays, and a link she makes in another tab appears once she looks again."""
    alice = await make_user()
    kept = await new_link(alice, "Keep me", max_views=2)
    revoked = await new_link(alice, "Revoke me", max_views=2)
    page = await open_page(alice)
    await open_links_list(page)
    row = link_row(page, revoked["id"])
    await row.locator("button.revoke").click()
    await expect(row.locator("button.revoke")).to_have_text("Click again to revoke")
    await expect(row).to_have_count(1)
    await row.locator("button.revoke").click()
    await expect(row).to_have_count(0)
    await expect(link_row(page, kept["id"])).to_have_count(1)
    assert [link["id"] for link in await listed(alice)] == [kept["id"]]

    answer = await open_link(live, revoked["url"])
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"

    later = await new_link(alice, "Made elsewhere")
    await page.click("#nav-inbox")
    await open_links_list(page)
    await expect(link_row(page, later["id"])).to_have_count(1)


async def test_the_composer_offers_in_app_and_link_but_not_email_without_a_mail_relay(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """With no mail relay configured, New message offers Send in-app and Create shareable link,
    not Send by email; the link mode hides To, high priority and vault entries."""
    page = await open_page(await make_user())
    await choose_mode(page, "in-app")
    await expect(page.locator("#mode-in-app-option")).to_be_visible()
    await expect(page.locator("#mode-link-option")).to_be_visible()
    await expect(page.locator("#mode-email-option")).to_be_hidden()
    await expect(page.locator("#to-input")).to_be_visible()
    await expect(page.locator("#send")).to_have_text("Send")
    await screenshot(page, "compose-in-app.png")

    await page.click("#mode-link-option")
    await expect(page.locator("#send")).to_have_text("Create link")
    for hidden in ("#to-input", "#high-priority", "#email-to"):
        await expect(page.locator(hidden)).to_be_hidden()
    await expect(page.locator("#link-expiry")).to_have_value("86400")
    await expect(page.locator("#link-views")).to_have_value("1")
    await page.click("#more")
    await expect(page.locator("#add-credentials")).to_be_visible()
    await expect(page.locator("#add-file")).to_be_visible()
    await expect(page.locator("#add-entries")).to_be_hidden()


async def test_a_user_who_may_not_share_links_sees_neither_link_mode_nor_the_links_list(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """Without the right to share links, the composer is in-app only (no mode switch) and the
    navigation has no Links."""
    page = await open_page(await make_user(can_share_links=False))
    await page.click("#nav-compose")
    await expect(page.locator("#to-input")).to_be_visible()
    await expect(page.locator("#compose-modes")).to_be_hidden()
    await expect(page.locator("#nav-links")).to_be_hidden()


async def test_a_link_sent_by_email_reaches_each_address_and_says_where_it_went(
    browser: Browser, settings: Settings, services: Services, app: Starlette,
    smtp_server: SmtpServer, request: pytest.FixtureRequest,
) -> None:
    """With a mail relay, Send by email mails the link to both addresses typed (comma and
    space), shows "Sent to" them with the link once, and the Links list says it was emailed."""
    async with (
        mail_server_and_user(settings, services, app, smtp_server) as (server, alice),
        signed_in(browser, server, alice, request.node.name) as page,
    ):
        await choose_mode(page, "email")
        await expect(page.locator("#to-input")).to_be_hidden()
        await page.fill("#email-to", "ops@example.com, audit@example.org")
        await expect(page.locator("#email-to-count")).to_have_text("2 of 20 addresses")
        await page.fill("#subject", "VPN profile")
        await page.fill("#body", "Import it, then delete the mail.")
        await page.fill("#email-note", "The VPN access we spoke about.")
        await page.fill("#link-passphrase", "staple battery horse")
        await expect(page.locator("#send")).to_have_text("Send by email")
        await screenshot(page, "compose-email.png")
        await page.click("#link-passphrase-show")
        await expect(page.locator("#link-passphrase")).to_have_attribute("type", "text")
        await page.click("#send")

        await expect(page.locator("#link-result-sent")).to_have_text(
            "Sent to ops@example.com, audit@example.org")
        await expect(page.locator("#link-result")).to_contain_text("This link is shown only now")
        await expect(page.locator("#link-result-locked")).to_be_visible()
        url = await page.input_value("#link-url")
        assert url.startswith(server.url + "/s/#")
        assert sorted(mail.recipients for mail in smtp_server.messages) == [
            ("audit@example.org",), ("ops@example.com",)]
        for mail in smtp_server.messages:
            text = mail.message.get_body(preferencelist=("plain",))
            assert text is not None and url in text.get_content()

        await page.click("#link-show-links")
        [link] = await listed(alice)
        row = link_row(page, link["id"])
        await expect(row.locator(".emailed")).to_have_text(
            "Emailed to ops@example.com, audit@example.org")
        await expect(row.locator(".lock")).to_have_count(1)


async def test_an_address_the_relay_refuses_is_named_beside_the_address_field(
    browser: Browser, settings: Settings, services: Services, app: Starlette,
    smtp_server: SmtpServer, request: pytest.FixtureRequest,
) -> None:
    """When the relay refuses one of the addresses, the composer names it beside the address
    field, keeps the draft, mails no one and keeps no link."""
    smtp_server.refuse("nobody@example.com")
    async with (
        mail_server_and_user(settings, services, app, smtp_server) as (server, alice),
        signed_in(browser, server, alice, request.node.name) as page,
    ):
        await choose_mode(page, "email")
        await page.fill("#email-to", "ops@example.com nobody@example.com")
        await page.fill("#subject", "Door code")
        await page.click("#send")

        error = page.locator("#email-to-error")
        await expect(error).to_contain_text("nobody@example.com")
        await expect(page.locator("#email-to")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#compose-error")).to_be_visible()
        await expect(page.locator("#link-result")).to_be_hidden()
        await expect(page.locator("#subject")).to_have_value("Door code")
        assert smtp_server.messages == []
        assert await listed(alice) == []


async def test_link_options_the_client_can_check_are_refused_beside_their_fields(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """A passphrase under 8 characters and 101 views are each named beside their field and
    nothing is made; once corrected, the link is made with a passphrase."""
    alice = await make_user()
    page = await open_page(alice)
    await choose_mode(page, "link")
    await page.fill("#subject", "Guarded")
    await page.fill("#link-passphrase", "short")
    await page.fill("#link-views", "101")
    await page.click("#send")
    await expect(page.locator("#link-passphrase-error")).to_contain_text("at least 8")
    await expect(page.locator("#link-views-error")).to_contain_text("1 to 100")
    await expect(page.locator("#link-passphrase")).to_have_attribute("aria-invalid", "true")
    assert await listed(alice) == []

    await page.fill("#link-passphrase", "long enough passphrase")
    await page.fill("#link-views", "2")
    await expect(page.locator("#link-passphrase-error")).to_be_hidden()
    await page.click("#send")
    await expect(page.locator("#link-result")).to_be_visible()
    [link] = await listed(alice)
    assert (link["has_passphrase"], link["max_views"]) == (True, 2)


async def test_a_narrow_window_shows_the_link_modes_and_the_links_list_without_sideways_scroll(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """On a phone-sized window (390 px) the mode switch, the link's options and the Links list
    with its Revoke button fit the width."""
    alice = await make_user()
    await new_link(alice, "A subject long enough to need cutting on a narrow phone screen")
    page = await open_page(alice, width=390)
    await choose_mode(page, "link")
    for item in ("#mode-link-option", "#link-expiry", "#link-passphrase-show", "#send"):
        where = await page.locator(item).bounding_box()
        assert where is not None and where["x"] >= 0 and where["x"] + where["width"] <= 390, item
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await open_links_list(page)
    revoke = page.locator("#link-list button.revoke")
    await expect(revoke).to_be_visible()
    where = await revoke.bounding_box()
    assert where is not None and where["x"] + where["width"] <= 390
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
