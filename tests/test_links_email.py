"""Send by email: a link mailed through a real SMTP relay to each address, opened from the mail;
a relay that refuses or does not answer leaves nothing kept."""

from __future__ import annotations

import re
import socket

import asyncpg
import httpx

from realtime.config import Settings
from tests.conftest import MakeUser
from tests.live_server import live_server
from tests.mail_support import SmtpServer, smtp_server_fixture  # noqa: F401 (a fixture)
from tests.messages_support import assert_error
from tests.test_links_api import link_body, listed, open_link

URL = re.compile(r"https?://\S+/s/#[A-Za-z0-9_-]{43}")


async def links_of(raw_db: asyncpg.Connection, user_id: object) -> int:
    return int(await raw_db.fetchval("select count(*) from links where creator_id = $1", user_id))


async def test_a_link_is_mailed_to_each_address_and_opens_from_the_mail(
    settings: Settings, make_user: MakeUser, smtp_server: SmtpServer
) -> None:
    """With a relay set up, /api/me offers Send by email; each address gets its own mail with
    the creator's name, their note and the link, never the passphrase; the link in the mail
    opens once; the creator's list says to whom it went."""
    with live_server(smtp_server.configure(settings)) as live:
        alice = await make_user(on=live, display_name="Alice Example")
        assert (await alice.http.get("/api/me")).json()["can_email_links"] is True
        answer = await alice.http.post("/api/links", json=link_body(
            passphrase="never in a mail", max_views=2,
            email={"to": ["bob@example.com", "carol@example.org"], "note": "as promised"},
        ))
        assert answer.status_code == 201, answer.text
        assert sorted(m.recipients for m in smtp_server.messages) == [
            ("bob@example.com",), ("carol@example.org",)
        ]
        for received in smtp_server.messages:
            text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            html = received.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
            assert "Alice Example" in text and "as promised" in text
            assert URL.findall(text) == [answer.json()["url"]]
            assert answer.json()["url"] in html
            assert "never in a mail" not in received.message.as_string()
            other = {"bob@example.com", "carol@example.org"} - set(received.recipients)
            assert other.pop() not in received.message.as_string()
        (link,) = await listed(alice)
        assert link["emailed_to"] == ["bob@example.com", "carol@example.org"]
        token = URL.findall(text)[0].split("#")[1]
        async with httpx.AsyncClient(base_url=live.url) as bob:
            opened = await open_link(bob, token, "never in a mail")
            assert opened.status_code == 200 and opened.json()["subject"] == "Wi-Fi"


async def test_a_refused_address_names_itself_and_keeps_nothing(
    settings: Settings, make_user: MakeUser, smtp_server: SmtpServer,
    raw_db: asyncpg.Connection,
) -> None:
    """The relay refusing the second address is a 400 naming it; no mail went to anyone and no
    link is kept."""
    smtp_server.refuse("nobody@example.com")
    with live_server(smtp_server.configure(settings)) as live:
        alice = await make_user(on=live)
        answer = await alice.http.post("/api/links", json=link_body(
            email={"to": ["bob@example.com", "nobody@example.com"]}))
        error = assert_error(answer, 400, "invalid")
        assert "email.to.1" in error["fields"]
    assert smtp_server.messages == []
    assert await links_of(raw_db, alice.user.id) == 0


async def test_a_relay_that_does_not_answer_is_503_and_keeps_nothing(
    settings: Settings, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """With the relay's port closed, the request is 503 with Retry-After and no link is kept;
    a malformed address is refused before anything is tried."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    configured = settings.with_overrides(
        smtp_url=f"smtp://127.0.0.1:{port}?timeout=2s", mail_from="realtime@example.com"
    )
    with live_server(configured) as live:
        alice = await make_user(on=live)
        answer = await alice.http.post("/api/links", json=link_body(
            email={"to": ["bob@example.com"]}))
        assert_error(answer, 503, "unavailable")
        assert int(answer.headers["retry-after"]) >= 1
        malformed = await alice.http.post("/api/links", json=link_body(
            email={"to": ["not an address"]}))
        assert "email.to.0" in assert_error(malformed, 400, "invalid")["fields"]
    assert await links_of(raw_db, alice.user.id) == 0
