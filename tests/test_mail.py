"""Links sent by email through a real SMTP server: TLS and login, refusals, a relay that is down
or silent, what the message says and hides, one message per recipient."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from urllib.parse import quote

import pytest

from realtime import metrics
from realtime.config import Settings
from realtime.errors import ConfigError, InvalidInput, Unavailable
from realtime.mail import LinkMail, Mailer, check_addresses
from tests.mail_support import (
    SENDER,
    SmtpServer,
    StartSmtpServer,
    smtp_authority_fixture,  # noqa: F401 (a fixture)
    smtp_server_fixture,  # noqa: F401 (a fixture)
    start_smtp_server_fixture,  # noqa: F401 (a fixture)
)
from tests.timing import bounded

TOKEN = "tok3n-of-the-link-QWxhZGRpbjpvcGVuIHNlc2FtZQ"
URL = f"https://realtime.example.com/s/#{TOKEN}"
EXPIRES = datetime(2026, 12, 5, 15, 0, tzinfo=timezone(timedelta(hours=1)))
RELAY_PASSWORD = "relay pass:word/@#"


def link_mail(*to: str, creator: str = "Ada Lovelace", note: str = "The VPN login.") -> LinkMail:
    return LinkMail(to=to, creator_name=creator, note=note, url=URL, expires_at=EXPIRES)


def mailer_for(url: str) -> Mailer:
    mailer = Mailer.from_settings(Settings(smtp_url=url, mail_from=SENDER))
    assert mailer is not None
    return mailer


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def sent_count(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("realtime_mail_sent_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture(name="closed_port")
def closed_port_fixture() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(name="silent_port")
def silent_port_fixture() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield listener.getsockname()[1]


async def test_a_plain_relay_without_credentials_delivers(smtp_server: SmtpServer) -> None:
    """With no TLS offered and no credentials, the mail goes through with its headers."""
    await mailer_for(smtp_server.url).send_link(link_mail("bob@Example.COM"))
    [mail] = smtp_server.messages
    assert mail.recipients == ("bob@example.com",)
    assert mail.sender == "realtime@example.com"
    assert not mail.over_tls and mail.login is None
    message = mail.message
    assert message["To"] == "bob@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "Ada Lovelace shared a secret with you"
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")


async def test_starttls_comes_before_the_login(start_smtp_server: StartSmtpServer) -> None:
    """On a relay offering STARTTLS and requiring AUTH, the mailer upgrades, then logs in."""
    server = start_smtp_server(tls="starttls", credentials=("relay-user", RELAY_PASSWORD))
    await mailer_for(server.url).send_link(link_mail("bob@example.com"))
    [mail] = server.messages
    assert mail.over_tls and mail.login == "relay-user"
    assert [login.over_tls for login in server.logins] == [True]


async def test_smtps_speaks_tls_from_the_first_byte(start_smtp_server: StartSmtpServer) -> None:
    """An smtps:// relay gets the mail and the login over TLS."""
    server = start_smtp_server(tls="implicit", credentials=("relay-user", RELAY_PASSWORD))
    assert server.url.startswith("smtps://")
    await mailer_for(server.url).send_link(link_mail("bob@example.com"))
    [mail] = server.messages
    assert mail.over_tls and mail.login == "relay-user"


async def test_starttls_is_used_when_offered_even_without_credentials(
    start_smtp_server: StartSmtpServer,
) -> None:
    """A relay offering STARTTLS gets the mail over TLS, though no login needs it."""
    server = start_smtp_server(tls="starttls")
    await mailer_for(server.url).send_link(link_mail("bob@example.com"))
    [mail] = server.messages
    assert mail.over_tls


async def test_credentials_are_never_sent_in_clear(
    start_smtp_server: StartSmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay offering AUTH but no TLS gets no password: 503 unavailable, saying why."""
    server = start_smtp_server(tls="none", credentials=("relay-user", RELAY_PASSWORD))
    with pytest.raises(Unavailable) as raised:
        await mailer_for(server.url).send_link(link_mail("bob@example.com"))
    assert "never sent in clear" in raised.value.message
    assert server.logins == [] and server.messages == []
    assert RELAY_PASSWORD not in raised.value.message and RELAY_PASSWORD not in caplog.text


async def test_a_certificate_not_trusted_gets_nothing(start_smtp_server: StartSmtpServer) -> None:
    """Without the test authority in `cafile`, STARTTLS fails and nothing is sent in clear."""
    server = start_smtp_server(tls="starttls", credentials=("relay-user", RELAY_PASSWORD))
    untrusted = server.url.split("?")[0]
    with pytest.raises(Unavailable):
        await mailer_for(untrusted).send_link(link_mail("bob@example.com"))
    assert server.logins == [] and server.messages == []


async def test_a_wrong_relay_password_is_unavailable(start_smtp_server: StartSmtpServer) -> None:
    """A login the relay rejects is the relay's fault: 503, nothing sent, no password shown."""
    server = start_smtp_server(tls="starttls", credentials=("relay-user", RELAY_PASSWORD))
    wrong = server.url.replace("relay%20pass", "other%20pass")
    with pytest.raises(Unavailable) as raised:
        await mailer_for(wrong).send_link(link_mail("bob@example.com"))
    assert server.messages == [] and len(server.logins) >= 1
    assert "other pass" not in raised.value.message


async def test_a_refused_recipient_is_named_and_nobody_gets_mail(
    smtp_server: SmtpServer,
) -> None:
    """A recipient the relay refuses for good is 400 `email.to.N`, and no one gets the link."""
    smtp_server.refuse("nobody@example.com")
    mail = link_mail("bob@example.com", "nobody@example.com", "carol@example.com")
    with pytest.raises(InvalidInput) as raised:
        await mailer_for(smtp_server.url).send_link(mail)
    assert raised.value.fields == {"email.to.1": "refused by the mail relay"}
    assert smtp_server.messages == []
    assert TOKEN not in raised.value.message


async def test_a_refusal_names_the_first_place_of_a_repeated_address(
    smtp_server: SmtpServer,
) -> None:
    """`email.to.N` counts in the addresses as given, repeats included."""
    smtp_server.refuse("nobody@example.com")
    mail = link_mail("bob@example.com", "Bob@EXAMPLE.com", "nobody@example.com")
    with pytest.raises(InvalidInput) as raised:
        await mailer_for(smtp_server.url).send_link(mail)
    assert raised.value.fields == {"email.to.2": "refused by the mail relay"}


async def test_a_refused_message_is_invalid(smtp_server: SmtpServer) -> None:
    """A relay refusing the message itself for good is 400 with the field `email`."""
    before = sent_count("refused")
    smtp_server.refuse_all()
    with pytest.raises(InvalidInput) as raised:
        await mailer_for(smtp_server.url).send_link(link_mail("bob@example.com"))
    assert raised.value.fields == {"email": "refused by the mail relay"}
    assert smtp_server.messages == []
    assert sent_count("refused") == before + 1


async def test_a_recipient_deferred_is_unavailable(smtp_server: SmtpServer) -> None:
    """A relay answering 4xx (try later) is 503 with Retry-After, not the user's fault."""
    smtp_server.refuse("busy@example.com", code=450)
    with pytest.raises(Unavailable) as raised:
        await mailer_for(smtp_server.url).send_link(link_mail("busy@example.com"))
    assert raised.value.retry_after == 30
    assert smtp_server.messages == []


async def test_a_relay_that_is_down_is_unavailable(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening at the relay's port is 503; the log names the host, never the link."""
    before = sent_count("unavailable")
    url = f"smtp://relay-user:{quote(RELAY_PASSWORD, safe='')}@127.0.0.1:{closed_port}"
    caplog.set_level(logging.WARNING, logger="realtime.mail")
    with pytest.raises(Unavailable) as raised:
        async with bounded(10):
            await mailer_for(url).send_link(link_mail("bob@example.com", "carol@example.com"))
    assert raised.value.retry_after == 30
    assert "127.0.0.1" in caplog.text
    for secret in ("pass:word", TOKEN):
        assert secret not in caplog.text and secret not in raised.value.message
    assert sent_count("unavailable") == before + 2


async def test_a_relay_that_never_answers_is_unavailable_after_the_timeout(
    silent_port: int,
) -> None:
    """A relay that takes the connection and says nothing is 503 once the URL's timeout passes."""
    mailer = mailer_for(f"smtp://127.0.0.1:{silent_port}?timeout=1s")
    async with bounded(10):
        with pytest.raises(Unavailable):
            await mailer.send_link(link_mail("bob@example.com"))


async def test_the_message_says_who_what_where_and_until_when(smtp_server: SmtpServer) -> None:
    """Both parts hold the creator's name, the note, the link and the expiry in UTC."""
    note = "Here is the VPN login.\nCall me if it fails."
    await mailer_for(smtp_server.url).send_link(link_mail("bob@example.com", note=note))
    text, html = text_and_html(smtp_server.messages[0].message)
    for part in (text, html):
        assert "Ada Lovelace" in part
        assert "Here is the VPN login." in part and "Call me if it fails." in part
        assert URL in part
        assert "2026-12-05 14:00 UTC" in part
        assert "limited number of times" in part and "do not forward" in part
    assert f'<a href="{URL}">' in html


async def test_the_html_part_escapes_and_loads_nothing(smtp_server: SmtpServer) -> None:
    """A note or name holding markup is shown as text, and the HTML fetches nothing remote."""
    mail = link_mail(
        "bob@example.com",
        creator="<b>Mallory</b>",
        note='<script>alert(1)</script><img src="https://evil.example/x.png">',
    )
    await mailer_for(smtp_server.url).send_link(mail)
    _, html = text_and_html(smtp_server.messages[0].message)
    assert "<script>" not in html and "<img" not in html and "<b>Mallory" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert re.findall(r"<[^>]*(?:src|background)=", html) == [] and "<link" not in html


async def test_the_subject_tells_nothing_of_the_secret(smtp_server: SmtpServer) -> None:
    """The subject names the creator only: no link, no note."""
    await mailer_for(smtp_server.url).send_link(link_mail("bob@example.com"))
    subject = smtp_server.messages[0].message["Subject"]
    assert subject == "Ada Lovelace shared a secret with you"
    assert TOKEN not in subject and "VPN" not in subject


async def test_each_address_gets_its_own_message(smtp_server: SmtpServer) -> None:
    """Three recipients (one given twice) get three messages, none seeing another's address."""
    before = sent_count("sent")
    addresses = ("bob@example.com", "carol@example.org", "dave@example.net")
    await mailer_for(smtp_server.url).send_link(link_mail(*addresses, "bob@EXAMPLE.com"))
    assert sorted(mail.recipients for mail in smtp_server.messages) == [
        (address,) for address in addresses
    ]
    for mail in smtp_server.messages:
        [own] = mail.recipients
        assert mail.message["To"] == own
        raw = mail.message.as_string()
        assert [a for a in addresses if a in raw] == [own]
        assert "Cc" not in mail.message and "Bcc" not in mail.message
    assert sent_count("sent") == before + 3


async def test_a_line_break_in_the_name_adds_no_header(smtp_server: SmtpServer) -> None:
    """A creator name carrying CR/LF and a header stays in the subject and adds no recipient."""
    mail = link_mail("bob@example.com", creator="Eve\r\nBcc: victim@example.com\r\nX-Evil: 1")
    await mailer_for(smtp_server.url).send_link(mail)
    [received] = smtp_server.messages
    assert received.recipients == ("bob@example.com",)
    message = received.message
    assert "Bcc" not in message and "X-Evil" not in message
    assert message["Subject"] == "Eve Bcc: victim@example.com X-Evil: 1 shared a secret with you"


async def test_hidden_characters_leave_the_name(smtp_server: SmtpServer) -> None:
    """Bidirectional overrides and controls are dropped from the name the recipient reads."""
    mail = link_mail("bob@example.com", creator="Ada\u202eecilA\u0007 Lovelace")
    await mailer_for(smtp_server.url).send_link(mail)
    assert smtp_server.messages[0].message["Subject"] == (
        "Ada ecilA Lovelace shared a secret with you"
    )


def test_the_link_stays_out_of_repr() -> None:
    """Logging a LinkMail never shows the link's token."""
    assert TOKEN not in repr(link_mail("bob@example.com"))


def test_an_expiry_without_time_zone_is_a_programming_error() -> None:
    """A naive expiry is refused at once rather than shown in the wrong zone."""
    with pytest.raises(ValueError, match="time zone"):
        LinkMail(("bob@example.com",), "Ada", "", URL, datetime(2026, 12, 5, 14, 0))
    assert LinkMail(("b@example.com",), "Ada", "", URL, datetime.now(UTC)).note == ""


def test_no_relay_means_no_mailer() -> None:
    """Without REALTIME_SMTP_URL there is no mailer, and email is not offered."""
    assert Mailer.from_settings(Settings()) is None


def test_a_relay_without_a_sender_stops_the_start(smtp_server: SmtpServer) -> None:
    """Settings changed in code are checked as the environment's are: no From, no mailer."""
    with pytest.raises(ConfigError, match="REALTIME_MAIL_FROM"):
        Mailer.from_settings(Settings(smtp_url=smtp_server.url))


def test_addresses_are_checked_and_kept_once() -> None:
    """Domains are lowercased, repeats dropped, the order kept."""
    assert check_addresses(
        ["Bob.Smith+links@Example.COM", "carol@localhost", "bob.smith+links@example.com",
         "Bob.Smith+links@example.com"]
    ) == ("Bob.Smith+links@example.com", "carol@localhost", "bob.smith+links@example.com")


@pytest.mark.parametrize(
    "address",
    [
        "", "bob", "bob@", "@example.com", "bob@example", "bob smith@example.com",
        "bob@example.com\r\nBcc: eve@example.com", "<bob@example.com>", "bob@example.com,eve@x.org",
        "Bob <bob@example.com>", "bob@@example.com", "bob..smith@example.com", ".bob@example.com",
        "bob@-example.com", "bob@example..com", "bob@exa_mple.com", "josé@example.com",
        "bob@exämple.com", "b" * 65 + "@example.com", "bob@" + "a" * 250 + ".com",
        "bob\x00@example.com", "bob@example.com\t",
    ],
)
def test_a_bad_address_is_named_by_its_place(address: str) -> None:
    """Each malformed address is 400 with the field `email.to.N` of its place."""
    with pytest.raises(InvalidInput) as raised:
        check_addresses(["good@example.com", address])
    assert list(raised.value.fields) == ["email.to.1"]


@pytest.mark.parametrize("count", [0, 21])
def test_too_few_or_too_many_addresses(count: int) -> None:
    """No address, or more than 20, is 400 with the field `email.to`."""
    with pytest.raises(InvalidInput) as raised:
        check_addresses([f"user{n}@example.com" for n in range(count)])
    assert list(raised.value.fields) == ["email.to"]
