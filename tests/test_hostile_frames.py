"""Websocket frame abuse on a live server: sizes at the limit, bursts, bad frames, frames that
break the protocol itself, absurd resumes.

`tests/test_ws.py` closes one frame of each bad kind; here each limit is tried at its value and one
past it, every kind of bad frame is tried in its variants, and after each abuse a bystander's
socket on the same server still receives its messages and the abuser can come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import LoggedInUser, MakeUser
from tests.hostile_support import ws_frame
from tests.live_server import LiveServer
from tests.timing import eventually
from tests.ws_support import Inbox, RawSocket, next_frame, open_socket, send

MAX_FRAME = 64 * 1024
BURST = 50  # docs/api.md: more than 50 frames in a burst, or 20 a second sustained, is 1008
RATE = 20.0
PING = '{"type": "ping"}'


@dataclass
class Scene:
    """An abuser (bob) and a bystander conversation: alice writes to carol, whose tab listens."""

    live: LiveServer
    bob: LoggedInUser
    alice: LoggedInUser
    carol: LoggedInUser
    carols_tab: Inbox

    async def bystander_still_served(self) -> None:
        """Carol's open tab gets Alice's new message; Bob can open a socket and be answered;
        once his sockets are closed, the server holds none of them."""
        message_id = await send(self.alice, self.carol, subject="still here")
        await eventually(lambda: message_id in self.carols_tab.new_messages(), "carol's tab")
        async with await open_socket(self.live, self.bob) as ws:
            assert (await next_frame(ws))["type"] == "hello"
            await ws.send(PING)
            assert await next_frame(ws) == {"type": "pong"}
        hub = self.live.app.state.live.hub
        await eventually(lambda: hub.connections == 1, "only carol's tab left open")


@pytest.fixture
async def scene(live: LiveServer, make_user: MakeUser) -> AsyncIterator[Scene]:
    bob, alice, carol = await make_user(on=live), await make_user(on=live), await make_user(on=live)
    async with await open_socket(live, carol) as tab:
        assert (await next_frame(tab))["type"] == "hello"
        inbox = Inbox(tab)
        try:
            yield Scene(live, bob, alice, carol, inbox)
        finally:
            await inbox.stop()


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes the socket; its close code (None: it never closed)."""
    try:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        return None


async def answer_to(live: LiveServer, member: LoggedInUser, *frames: str | bytes) -> Any:
    """Send frames on a fresh socket: the next frame answered, or the close code."""
    async with await open_socket(live, member) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        try:
            for frame in frames:
                await ws.send(frame)
            return await next_frame(ws)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


def ping_of(size: int, filler: str = "x") -> str:
    """A ping frame of exactly `size` bytes of UTF-8, padded with `filler` (1 to 4 bytes)."""
    head, tail = '{"type": "ping", "pad": "', '"}'
    room = size - len(head) - len(tail)
    width = len(filler.encode())
    frame = head + filler * (room // width) + "x" * (room % width) + tail
    assert len(frame.encode()) == size
    return frame


# Sizes


async def test_a_frame_of_64_kib_is_answered_and_one_byte_more_is_closed_1008(
    scene: Scene,
) -> None:
    """A frame of exactly 64 KiB is read; a byte more closes it 1008, whatever its characters."""
    for filler in ("x", "\u00e9", "\u20ac", "\U0001f600"):  # 1 to 4 bytes of UTF-8
        answer = await answer_to(scene.live, scene.bob, ping_of(MAX_FRAME, filler))
        assert answer == {"type": "pong"}, filler
        assert await answer_to(scene.live, scene.bob, ping_of(MAX_FRAME + 1, filler)) == 1008
    await scene.bystander_still_served()


async def test_a_frame_over_a_mebibyte_is_closed_by_the_protocol_layer(scene: Scene) -> None:
    """Past the hard cap the frame is refused (1009) without the server reading it whole."""
    for size in (1024 * 1024 + 1, 4 * 1024 * 1024):
        assert await answer_to(scene.live, scene.bob, ping_of(size)) == 1009, size
    await scene.bystander_still_served()


class FragmentingSocket(RawSocket):
    """A raw socket that can also send a text message in fragments, or any bytes at all."""

    def send_bytes(self, data: bytes) -> None:
        self._sock.sendall(data)

    def send_fragments(self, *parts: bytes) -> None:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if index == 0:
                self._protocol.send_text(part, fin=last)
            else:
                self._protocol.send_continuation(part, fin=last)
        self._flush()


async def test_a_message_in_small_fragments_over_64_kib_is_closed_1008(scene: Scene) -> None:
    """Fragments of 1 KiB each adding up to more than 64 KiB are one frame too many: 1008."""
    frame = ping_of(MAX_FRAME + 1).encode()
    raw = FragmentingSocket(scene.live, scene.bob)
    try:
        raw.send_fragments(*(frame[i:i + 1024] for i in range(0, len(frame), 1024)))
        frames, close = await raw.drain()
    finally:
        raw.close()
    assert close is not None and close.code == 1008
    assert frames == []
    await scene.bystander_still_served()


CLOSE = struct.pack("!H", 1000)
BROKEN_PROTOCOL: dict[str, tuple[bytes, int]] = {
    "close code 1005": (ws_frame(8, struct.pack("!H", 1005)), 1002),
    "close code 999": (ws_frame(8, struct.pack("!H", 999)), 1002),
    "close code 5000": (ws_frame(8, struct.pack("!H", 5000)), 1002),
    "close of one byte": (ws_frame(8, b"\x03"), 1002),
    "close reason not UTF-8": (ws_frame(8, CLOSE + b"\xff"), 1007),
    "unmasked": (ws_frame(1, PING.encode(), masked=False), 1002),
    "reserved opcode 3": (ws_frame(3, b"x"), 1002),
    "reserved opcode 11": (ws_frame(11, b"x"), 1002),
    "reserved bit": (ws_frame(1, PING.encode(), rsv=4), 1002),
    "continuation of nothing": (ws_frame(0, b"x"), 1002),
    "ping of 126 bytes": (ws_frame(9, b"x" * 126), 1002),
    "fragmented ping": (ws_frame(9, b"x", fin=False), 1002),
    "new text inside a fragmented one": (ws_frame(1, b"{", fin=False) + ws_frame(1, b"}"), 1002),
    "a length of 2**63 - 1": (ws_frame(1, b"", length=2**63 - 1), 1009),
}


async def test_frames_that_break_the_protocol_are_closed_without_a_trace(scene: Scene) -> None:
    """Bad close codes, unmasked or reserved frames, absurd lengths: closed, nothing answered."""
    closes = {}
    for kind, (data, _) in BROKEN_PROTOCOL.items():
        raw = FragmentingSocket(scene.live, scene.bob)
        try:
            raw.send_bytes(data)
            frames, close = await raw.drain()
        finally:
            raw.close()
        assert frames == [], kind
        closes[kind] = close.code if close is not None else None
    assert closes == {kind: code for kind, (_, code) in BROKEN_PROTOCOL.items()}
    await scene.bystander_still_served()


# Bad frames

BAD_FRAMES: dict[str, str | bytes] = {
    "binary JSON": b'{"type": "ping"}',
    "empty binary": b"",
    "empty text": "",
    "blank": "   ",
    "trailing garbage": '{"type": "ping"} x',
    "two objects": '{"type": "ping"}{"type": "ping"}',
    "trailing comma": '{"type": "ping",}',
    "single quotes": "{'type': 'ping'}",
    "NaN": '{"type": "ping", "x": NaN}',
    "Infinity": '{"type": "ping", "x": Infinity}',
    "huge exponent": '{"type": "ping", "x": 1e999999}',
    "huge integer": '{"type": "ping", "x": %s}' % ("9" * 5000),
    "deep array": "[" * 10_000 + "]" * 10_000,
    "deep object": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "unclosed deep": "[" * 60_000,
    "array": "[]",
    "array of ping": '[{"type": "ping"}]',
    "string": '"ping"',
    "number": "42",
    "null": "null",
    "true": "true",
    "upper-case type": '{"type": "PING"}',
    "server type hello": '{"type": "hello"}',
    "server type message.new": '{"type": "message.new", "seq": 1}',
    "pong": '{"type": "pong"}',
    "null type": '{"type": null}',
    "list type": '{"type": ["ping"]}',
    "object type": '{"type": {"ping": true}}',
    "no type": "{}",
    "NUL in type": '{"type": "ping\\u0000"}',
    "lone surrogate type": '{"type": "\\ud800"}',
    "spaced type": '{"type": " ping"}',
}


async def test_every_kind_of_bad_frame_is_closed_1008_and_others_are_still_served(
    scene: Scene,
) -> None:
    """Binary, broken JSON, deep nesting, non-objects and unknown types each close 1008."""
    codes = {}
    for kind, frame in BAD_FRAMES.items():
        codes[kind] = await answer_to(scene.live, scene.bob, frame)
    assert codes == dict.fromkeys(BAD_FRAMES, 1008)
    await scene.bystander_still_served()


async def test_a_ping_with_extra_fields_is_still_a_ping(scene: Scene) -> None:
    """Unknown fields beside a known type do not close the socket (the type is what counts)."""
    frame = '{"type": "ping", "after_seq": -1, "nested": {"a": [1, 2, {"b": null}]}}'
    assert await answer_to(scene.live, scene.bob, frame) == {"type": "pong"}


# Absurd resumes

RESYNC = "resync"
ABSURD_RESUMES: dict[str, tuple[str, set[int | str]]] = {
    "negative": ("-1", {1008}),
    "minus huge": (str(-(2**63)), {1008}),
    "2**63 - 1": (str(2**63 - 1), {RESYNC}),
    "2**63": (str(2**63), {RESYNC, 1008}),
    "2**64": (str(2**64), {RESYNC, 1008}),
    "10**30": (str(10**30), {RESYNC, 1008}),
    "4000 digits": ("9" * 4000, {RESYNC, 1008}),
    "float": ("1.5", {1008}),
    "whole float": ("0.0", {1008}),
    "exponent": ("1e3", {1008}),
    "string": ('"0"', {1008}),
    "true": ("true", {1008}),
    "false": ("false", {1008}),
    "null": ("null", {1008}),
    "list": ("[0]", {1008}),
    "nested": ('{"$gt": 0}', {1008}),
    "deep": ("[" * 500 + "]" * 500, {1008}),
}


async def test_resume_with_an_absurd_after_seq_is_refused_cleanly(scene: Scene) -> None:
    """A resume whose after_seq is no whole number >= 0 closes 1008; a huge one asks resync."""
    wrong = {}
    for kind, (value, allowed) in ABSURD_RESUMES.items():
        frame = f'{{"type": "resume", "after_seq": {value}}}'
        answer = await answer_to(scene.live, scene.bob, frame)
        if (answer if isinstance(answer, int) else answer["type"]) not in allowed:
            wrong[kind] = answer
    assert wrong == {}
    await scene.bystander_still_served()


async def test_a_resume_without_after_seq_is_closed_1008(scene: Scene) -> None:
    """A resume that names no seq, or names it under another key, closes 1008."""
    for frame in ('{"type": "resume"}', '{"type": "resume", "afterSeq": 0}',
                  '{"type": "resume", "after_seq": 0, "type": "resume2"}'):
        assert await answer_to(scene.live, scene.bob, frame) == 1008, frame
    await scene.bystander_still_served()


# Floods


async def test_a_burst_at_the_limit_is_answered_and_twice_it_is_closed_1008(
    scene: Scene,
) -> None:
    """Fifty pings at once get fifty pongs; a hundred at once close the socket 1008."""
    async with await open_socket(scene.live, scene.bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        await asyncio.gather(*(ws.send(PING) for _ in range(BURST)))
        pongs = [await next_frame(ws) for _ in range(BURST)]
        assert pongs == [{"type": "pong"}] * BURST
    async with await open_socket(scene.live, scene.bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        with contextlib.suppress(ConnectionClosed):
            await asyncio.gather(*(ws.send(PING) for _ in range(BURST * 2)))
        assert await closed_with(ws) == 1008
    await scene.bystander_still_served()


async def sustained(ws: ClientConnection, per_second: float, seconds: float) -> int:
    """After a burst that nearly empties the bucket, pings at `per_second`; how many went."""
    await asyncio.gather(*(ws.send(PING) for _ in range(BURST - 5)))
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    while loop.time() - start < seconds:
        await ws.send(PING)
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / per_second - loop.time()))
    return sent


async def test_a_sustained_rate_under_the_limit_is_answered_and_over_it_is_closed_1008(
    scene: Scene,
) -> None:
    """Pings at 15 a second after a burst keep the socket; at 100 a second it is closed 1008."""
    async with await open_socket(scene.live, scene.bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        sent = await sustained(ws, RATE * 0.75, 1.0)
        answers = [await next_frame(ws) for _ in range(BURST - 5 + sent)]
        assert answers == [{"type": "pong"}] * len(answers)
    async with await open_socket(scene.live, scene.bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        with contextlib.suppress(ConnectionClosed):
            await sustained(ws, RATE * 5, 1.0)
        assert await closed_with(ws) == 1008
    await scene.bystander_still_served()


async def test_many_abusive_sockets_at_once_do_not_stop_the_bystander(scene: Scene) -> None:
    """Ten of the abuser's sockets flooding and sending garbage together: carol is served."""
    frames = list(BAD_FRAMES.values())[:10]

    async def abuse(n: int) -> Any:
        # Fewer pings than the client buffers, so that it can still read the close frame.
        return await answer_to(scene.live, scene.bob, *[PING] * 12, frames[n])

    answers = await asyncio.gather(*(abuse(n) for n in range(10)))
    assert all(a in ({"type": "pong"}, 1008) for a in answers), answers
    await scene.bystander_still_served()
