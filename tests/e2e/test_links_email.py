"""Send by email end to end: a link mailed through a real SMTP relay, taken from the mailbox
and opened in a browser that has no account."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from realtime.api.http import Services
from realtime.config import Settings
from tests.conftest import MakeUser
from tests.e2e.conftest import UI_TIMEOUT_MS
from tests.live_server import LiveServer, live_server
from tests.mail_support import SmtpServer, smtp_server_fixture  # noqa: F401 (a fixture)

LINK = re.compile(r"https?://\S+/s/#[A-Za-z0-9_-]{43}")


@pytest.fixture
def live(settings: Settings, services: Services, smtp_server: SmtpServer) -> Iterator[LiveServer]:
    """The live server of these tests sends mail through the test's SMTP server."""
    with live_server(smtp_server.configure(settings)) as server:
        yield server


async def test_an_emailed_link_opens_from_the_mailbox_in_a_browser(
    make_user: MakeUser, smtp_server: SmtpServer, browser: Browser
) -> None:
    """Alice sends a link by email; the link in the mail Bob received opens, on Reveal, in a
    browser with no session, and shows Alice's secret."""
    alice = await make_user(display_name="Alice Example")
    answer = await alice.http.post("/api/links", json={
        "subject": "Door code", "body": "4711, then the blue door",
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "email": {"to": ["bob@example.com"], "note": "for tonight"},
    })
    assert answer.status_code == 201, answer.text
    (received,) = smtp_server.messages
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (url,) = LINK.findall(text)
    context = await browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.click("#reveal")
        await expect(page.locator("#content-subject")).to_have_text("Door code")
        await expect(page.locator("#content-body")).to_contain_text("4711, then the blue door")
    finally:
        await context.close()
