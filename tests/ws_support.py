"""Helpers for websocket tests: a live server per test, logged-in people, a frame reader."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.live_server import LiveServer

TIME_FACTOR = float(os.environ.get("REALTIME_TEST_TIME_FACTOR", "1"))
FRAME_TIMEOUT = 5.0 * TIME_FACTOR
QUIET = 0.3 * TIME_FACTOR
PASSWORD = "correct horse battery"


@dataclass
class Member:
    """A user logged in on the live server, with an HTTP client speaking for them."""

    id: str
    username: str
    token: str
    http: httpx.AsyncClient

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def open_socket(
    live: LiveServer, member: Member, **options: Any
) -> ClientConnection:
    """A websocket authenticated by the bearer header."""
    return await connect(live.ws_url, additional_headers=member.headers(), **options)


async def next_frame(ws: ClientConnection, wait: float = FRAME_TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        raw = await ws.recv()
    frame: dict[str, Any] = orjson.loads(raw)
    return frame


async def frames_until(
    ws: ClientConnection, wanted: str, wait: float = FRAME_TIMEOUT
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type `wanted`."""
    seen = []
    while True:
        frame = await next_frame(ws, wait)
        seen.append(frame)
        if frame["type"] == wanted:
            return seen


async def no_more_frames(ws: ClientConnection) -> list[dict[str, Any]]:
    """Whatever arrives within a short quiet period (expected: nothing)."""
    seen = []
    try:
        while True:
            seen.append(await next_frame(ws, QUIET))
    except TimeoutError:
        return seen


async def send(sender: Member, *to: Member, **fields: Any) -> str:
    payload = {"to": [{"kind": "user", "id": m.id} for m in to], "subject": "live", **fields}
    answer = await sender.http.post("/api/messages", json=payload)
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]
