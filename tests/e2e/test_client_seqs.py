"""The browser client's de-duplication against the shared table of seq sequences
(`tests/fixtures/seq_cases.json`): the page's own `live.js` in Chromium, its websocket answered
by the test with the table's frames, connection after connection."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute

from tests.live_server import LiveServer
from tests.seq_cases import SEQ_CASE_NAMES, SEQ_CASES, applied_seqs, resumes_asked
from tests.timing import TIME_FACTOR, eventually

# The client reconnects after a backoff of up to 1 s.
RECONNECT_WITHIN = 5.0 * TIME_FACTOR

LISTEN = """async () => {
  const { bus } = await import("/static/js/bus.js");
  const live = await import("/static/js/live.js");
  window.applied = [];
  window.marks = 0;
  bus.on("live:message.new", (frame) => window.applied.push(frame.seq));
  bus.on("live:unread", () => { window.marks += 1; });
  live.start();
}"""


class ScriptedSocket:
    """The server side of the page's websockets: each connection, and what the page asked."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[WebSocketRoute] = asyncio.Queue()
        self.resumes: list[int] = []
        self.current: WebSocketRoute | None = None

    def accept(self, route: WebSocketRoute) -> None:
        route.on_message(self._heard)
        self.connections.put_nowait(route)

    def _heard(self, message: str | bytes) -> None:
        frame = json.loads(message)
        if frame.get("type") == "resume":
            self.resumes.append(frame["after_seq"])

    async def next_connection(self) -> WebSocketRoute:
        """Close the current connection, if any, and wait for the page to open the next."""
        if self.current is not None:
            await self.current.close(code=1012, reason="restarting")
        async with asyncio.timeout(RECONNECT_WITHIN):
            self.current = await self.connections.get()
        return self.current


async def settled(page: Page, route: WebSocketRoute, marks: int) -> None:
    """Wait until the page has handled every frame sent before a marker frame (`unread`)."""
    route.send(json.dumps({"type": "unread", "count": 0}))
    await page.wait_for_function(f"window.marks >= {marks}")


@pytest.mark.parametrize("case", SEQ_CASES, ids=SEQ_CASE_NAMES)
async def test_the_client_applies_each_seq_of_the_shared_table_once(
    browser: Browser, live: LiveServer, case: dict[str, Any]
) -> None:
    """A tab applies every new seq once, in the order it comes, drops duplicates, old seqs
    and the replay's repeats, and resumes after the last seq it has with nothing missing."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        server = ScriptedSocket()
        await page.route_web_socket(re.compile(r"/ws$"), server.accept)
        await page.goto(live.url + "/static/js/bus.js")
        await page.evaluate(LISTEN)
        marks = 0
        for step in case["steps"]:
            if "hello" in step:  # a connection of its own: the previous one is closed first
                route = await server.next_connection()
                route.send(json.dumps({"type": "hello", "seq": step["hello"]}))
            elif "resumed" in step:
                route.send(json.dumps({"type": "resumed", "seq": step["resumed"]}))
            else:
                route.send(json.dumps({"type": "message.new", "seq": step["frame"]}))
            marks += 1
            await settled(page, route, marks)
        await eventually(lambda: server.resumes == resumes_asked(case), "the resumes asked")
        assert await page.evaluate("window.applied") == applied_seqs(case)
        assert server.resumes == resumes_asked(case)
    finally:
        await context.close()
