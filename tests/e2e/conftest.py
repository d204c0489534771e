"""End-to-end tests of the browser client: a real Chromium, driven by Playwright, against a
real uvicorn serving the app on the test database.

The browser is the system's Chromium (`/usr/bin/chromium`, or `REALTIME_TEST_CHROMIUM`).
Without one the tests fail in CI (`CI` set) and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from starlette.applications import Starlette

from realtime.api.http import Services
from tests.conftest import LoggedInUser, MakeUser
from tests.live_server import LiveServer

SCREENSHOTS = Path(__file__).parent / "screenshots"
# Chromium as root, headless, and without reaching for the network it cannot have here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
# How long the client may take to show what the server did (the contract's live deadline is 1 s).
UI_TIMEOUT_MS = 5_000

OpenPage = Callable[..., Awaitable[Page]]


def chromium_path() -> str | None:
    wanted = os.environ.get("REALTIME_TEST_CHROMIUM")
    if wanted:
        return wanted
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        message = (
            "no Chromium: install Debian's chromium (.ci/run does) "
            "or set REALTIME_TEST_CHROMIUM"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def make_user(
    app: Starlette, services: Services, live: LiveServer
) -> AsyncIterator[MakeUser]:
    """Here a user's HTTP client talks to the live server the browsers use, so that what a
    test does over HTTP reaches the browsers' sockets live (the in-process app of the other
    tests has a broker of its own)."""
    make = MakeUser(services, app, default_node=live, timeout=30)
    try:
        yield make
    finally:
        await make.close()


@pytest.fixture
async def open_page(
    browser: Browser, live: LiveServer, request: pytest.FixtureRequest
) -> AsyncIterator[OpenPage]:
    """Open a page of the client as a person, logged in through the login form, each in a
    browser context of its own unless `context` is given; screenshots every page at the end."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    async def open_as(
        person: LoggedInUser, *, context: BrowserContext | None = None, width: int = 1280
    ) -> Page:
        if context is None:
            context = await browser.new_context(viewport={"width": width, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            contexts.append(context)
        page = await context.new_page()
        pages.append(page)
        await page.goto(live.url + "/")
        await page.fill("#login input[name=username]", person.username)
        await page.fill("#login input[name=password]", person.password)
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#whoami")
        return page

    yield open_as
    SCREENSHOTS.mkdir(exist_ok=True)
    for index, page in enumerate(pages):
        if not page.is_closed():
            await page.screenshot(
                path=str(SCREENSHOTS / f"{request.node.name}-{index}.png"), full_page=True
            )
    for context in contexts:
        await context.close()


__all__ = ["UI_TIMEOUT_MS", "MakeUser", "OpenPage"]
