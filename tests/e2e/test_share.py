"""The page that opens a shareable link, end to end: links made over the API by a real user,
opened in Chromium by someone with no session, against a live server.

What the page promises (`static/share.html`): nothing is asked of the server before Reveal; the
content shows as text with copy buttons and downloads; a one-view link opens once; a
passphrase is asked for where one is set. Screenshots go to `tests/e2e/screenshots/share-*.png`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, expect

from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.e2e.conftest import SCREENSHOTS, UI_TIMEOUT_MS
from tests.live_server import LiveServer
from tests.vault_support import upload

FILE_BYTES = bytes(range(256)) * 40  # not text, so that a mangled download shows
PASSPHRASE = "correct horse battery staple"
GONE = "This link has expired, was already opened, or never existed"

OpenShare = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_share(browser: Browser) -> AsyncIterator[OpenShare]:
    """Open a link's page as someone without an account: each call in a fresh browser context
    (no cookies, no session), allowed to use the clipboard."""
    contexts: list[BrowserContext] = []

    async def open_link(url: str, *, requests: list[Request] | None = None) -> Page:
        """Open `url`; `requests`, when given, records every request the page makes."""
        context = await browser.new_context(
            viewport={"width": 1000, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        if requests is not None:
            page.on("request", lambda request: requests.append(request))
        await page.goto(url)
        await expect(page.locator("#share-intro")).to_be_visible()
        return page

    yield open_link
    for context in contexts:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


async def new_link(
    creator: LoggedInUser, live: LiveServer, *, attachments: list[dict[str, Any]] | None = None,
    passphrase: str | None = None, max_views: int = 1, body: str = "",
) -> tuple[str, str, str]:
    """Create a link over the API; return its id, subject and the page's address on the live
    server (the token in its fragment)."""
    subject = unique_name("Staging database")
    answer = await creator.http.post("/api/links", json={
        "subject": subject, "body": body, "attachments": attachments or [],
        "expires_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "max_views": max_views, "passphrase": passphrase,
    })
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["url"].startswith(f"{live.url}/s/#"), created["url"]
    return created["id"], subject, created["url"]


async def views_of(creator: LoggedInUser, link_id: str) -> int | None:
    """The views the server counted of a live link; None once it opens no more."""
    answer = await creator.http.get("/api/links")
    assert answer.status_code == 200, answer.text
    for link in answer.json()["links"]:
        if link["id"] == link_id:
            return int(link["views"])
    return None


async def reveal(page: Page) -> None:
    await page.click("#reveal")


async def test_nothing_is_shown_or_counted_before_reveal(
    make_user: MakeUser, live: LiveServer, open_share: OpenShare
) -> None:
    """Opening the page shows what it is and a Reveal button, nothing of the secret, and asks
    nothing of the server: a link preview burns no view."""
    creator = await make_user()
    credential = {"kind": "credential", "title": "Router", "username": "admin-x",
                  "password": "pw-before-reveal", "url": "", "notes": ""}
    link_id, subject, url = await new_link(
        creator, live, attachments=[credential], body="the body text"
    )
    asked: list[Request] = []
    page = await open_share(url, requests=asked)
    await expect(page.locator("#intro-title")).to_have_text("Someone shared a secret with you")
    await expect(page.locator("#reveal")).to_be_visible()
    held = await page.content()
    for secret in (subject, "the body text", "admin-x", "pw-before-reveal"):
        assert secret not in held
    assert asked, "the page's own requests were not recorded"
    assert [request.url for request in asked if "/api/" in request.url] == []
    assert await views_of(creator, link_id) == 0
    await screenshot(page, "share-before-reveal.png")


async def test_reveal_shows_the_content_copies_and_downloads(
    make_user: MakeUser, live: LiveServer, open_share: OpenShare
) -> None:
    """Reveal shows the subject, the body as text, a credential whose username and password
    copy to the clipboard, and a file that downloads with its bytes; the token leaves the
    address bar and travels only in request bodies; Clear takes it all off the page."""
    creator = await make_user()
    uploaded = await upload(creator, FILE_BYTES, "backup.bin", "application/octet-stream")
    credential = {"kind": "credential", "title": "Mail server", "username": "postmaster",
                  "password": "S3cret-<b>-pw", "url": "https://mail.example.com",
                  "notes": "rotate monthly"}
    link_id, subject, url = await new_link(
        creator, live, body="Line one <b>not bold</b>\nLine two",
        attachments=[credential, {"kind": "file", "upload_id": uploaded["upload_id"]}],
    )
    token = url.split("#", 1)[1]
    asked: list[Request] = []
    page = await open_share(url, requests=asked)
    await reveal(page)
    await expect(page.locator("#content-subject")).to_have_text(subject)
    body = page.locator("#content-body")
    await expect(body).to_have_text("Line one <b>not bold</b>\nLine two")
    assert await body.locator("b").count() == 0
    await expect(page.locator("#content-views")).to_contain_text("This was the last view")
    assert "#" not in page.url
    item = page.locator("li.share-credential")
    await expect(item.locator(".share-item-title")).to_have_text("Mail server")
    await expect(item.locator(".password-value")).not_to_contain_text("S3cret")
    await item.locator(".copy-username").click()
    await expect(page.locator("#content-status")).to_have_text("The username was copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == "postmaster"
    await item.locator(".copy-password").click()
    await expect(page.locator("#content-status")).to_have_text("The password was copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == "S3cret-<b>-pw"
    await item.locator(".show-password").click()
    await expect(item.locator(".password-value")).to_have_text("S3cret-<b>-pw")
    file_row = page.locator("li.share-file")
    await expect(file_row.locator(".file-name")).to_have_text("backup.bin")
    async with page.expect_download() as downloading:
        await file_row.locator(".download").click()
    download = await downloading.value
    assert download.suggested_filename == "backup.bin"
    path = await download.path()
    assert path is not None and path.read_bytes() == FILE_BYTES
    await screenshot(page, "share-revealed.png")
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, "share-revealed-narrow.png")
    assert [request.url for request in asked if token in request.url] == []
    posted = [request for request in asked if request.method == "POST"]
    assert {request.url.removeprefix(live.url) for request in posted} >= {"/api/links/open"}
    assert await views_of(creator, link_id) is None  # its one view taken: it opens no more
    await page.click("#content-clear")
    await expect(page.locator("#share-cleared")).to_be_visible()
    assert "S3cret" not in await page.content()


async def test_a_one_view_link_opened_again_says_it_is_gone(
    make_user: MakeUser, live: LiveServer, open_share: OpenShare
) -> None:
    """A one-view link revealed once says, in a second browser, that it is gone, with nothing
    of its content."""
    creator = await make_user()
    _, subject, url = await new_link(creator, live, body="only once")
    first = await open_share(url)
    await reveal(first)
    await expect(first.locator("#content-subject")).to_have_text(subject)
    second = await open_share(url)
    await reveal(second)
    await expect(second.locator("#ended-title")).to_have_text(GONE)
    await expect(second.locator("#share-content")).to_be_hidden()
    assert "only once" not in await second.locator("body").inner_text()
    await screenshot(second, "share-gone.png")


async def test_a_passphrase_link_asks_for_it_and_counts_wrong_ones(
    make_user: MakeUser, live: LiveServer, open_share: OpenShare
) -> None:
    """A link with a passphrase asks for it on Reveal, says how many attempts a wrong one
    leaves, and opens with the right one."""
    creator = await make_user()
    link_id, subject, url = await new_link(
        creator, live, passphrase=PASSPHRASE, max_views=2, body="behind a passphrase"
    )
    page = await open_share(url)
    await reveal(page)
    field = page.locator("#passphrase")
    await expect(field).to_be_visible()
    await expect(field).to_be_focused()
    assert await views_of(creator, link_id) == 0
    await field.fill("not the passphrase")
    await field.press("Enter")
    await expect(page.locator("#reveal-error")).to_have_text(
        re.compile(r"^Wrong passphrase\. \d+ attempts? left before the link is destroyed\.$")
    )
    await expect(field).to_be_focused()
    await screenshot(page, "share-passphrase.png")
    await field.fill(PASSPHRASE)
    await reveal(page)
    await expect(page.locator("#content-subject")).to_have_text(subject)
    await expect(page.locator("#content-body")).to_have_text("behind a passphrase")
    await expect(page.locator("#content-views")).to_have_text("1 more view left.")
    assert await views_of(creator, link_id) == 1


async def test_a_cut_link_says_it_is_not_complete(
    live: LiveServer, browser: Browser
) -> None:
    """A link whose token was cut short says it is not complete and offers no Reveal."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{live.url}/s/#{'A' * 30}")
        await expect(page.locator("#incomplete-title")).to_have_text("This link is not complete")
        await expect(page.locator("#reveal")).to_be_hidden()
    finally:
        await context.close()
