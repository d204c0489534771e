"""Links sent by email through the SMTP relay of REALTIME_SMTP_URL (the only user of aiosmtplib).

One connection per link: STARTTLS when the relay offers it (and required before credentials),
every recipient checked with MAIL/RCPT before any message goes, then one message per address so
that no recipient sees another. A permanent refusal (5xx) is `InvalidInput` naming the address
where it can; a relay that does not answer, answers 4xx or fails TLS or login is `Unavailable`.
Every wait is bounded by the URL's timeout. Errors and logs never hold the link or a password.
"""

from __future__ import annotations

import html
import logging
import ssl
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from realtime import metrics
from realtime.config import MailRelay, Settings, mail_relay
from realtime.errors import InvalidInput, RealtimeError, Unavailable

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_ADDRESS_LENGTH = 254
RETRY_AFTER = 30  # seconds before asking a relay that did not answer again
_REFUSED = "refused by the mail relay"
_LOCAL_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~.-"
)
_DOMAIN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_FORBIDDEN = frozenset(" \t\r\n<>,;:\"()[]\\")
# Characters that could hide text or break a line: controls, bidirectional overrides, separators.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_JOINERS = frozenset("\u200c\u200d")  # format characters that emoji and scripts need
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class LinkMail:
    """What the recipients of a link read: who shares it, their note, the link and its end."""

    to: tuple[str, ...]
    creator_name: str
    note: str
    url: str = field(repr=False)  # holds the link's token
    expires_at: datetime

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must carry its time zone")
        if not self.url.startswith(("https://", "http://")) or any(
            c.isspace() or _hidden(c) for c in self.url
        ):
            raise ValueError("the link must be an http(s) URL on one line")


def check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """Return the addresses checked, their domains lowercased, each once in the order given;
    `InvalidInput` names `email.to` (the count) or `email.to.N` (that address) otherwise."""
    return tuple(address for _, address in _distinct(addresses))


def _distinct(addresses: Sequence[str]) -> list[tuple[int, str]]:
    """Each distinct address checked, with the index of its first occurrence."""
    if isinstance(addresses, str) or not 1 <= len(addresses) <= MAX_RECIPIENTS:
        raise InvalidInput(
            "give 1 to 20 email addresses",
            {"email.to": f"give 1 to {MAX_RECIPIENTS} addresses"},
        )
    faults: dict[str, str] = {}
    found: dict[str, int] = {}
    for index, address in enumerate(addresses):
        try:
            found.setdefault(_checked_address(address), index)
        except ValueError as exc:
            faults[f"email.to.{index}"] = str(exc)
    if faults:
        raise InvalidInput("an email address is not valid", faults)
    return [(index, address) for address, index in found.items()]


def _checked_address(address: object) -> str:
    """One address as `local@domain`, the domain lowercased; a ValueError says what is wrong."""
    if not isinstance(address, str):
        raise ValueError("must be a string")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"is longer than {MAX_ADDRESS_LENGTH} characters")
    if any(c in _FORBIDDEN or not c.isprintable() for c in address):
        raise ValueError("holds a space, a control character, or one of <>,;:\"()[]\\")
    local, at, domain = address.rpartition("@")
    domain = domain.lower()
    if not at or not local or not domain:
        raise ValueError("is not an address such as name@example.com")
    if not address.isascii():
        raise ValueError("must be ASCII (write an international domain in its xn-- form)")
    if len(local) > 64 or not set(local) <= _LOCAL_CHARACTERS or ".." in local or (
        local.startswith(".") or local.endswith(".")
    ):
        raise ValueError("has a part before the @ that mail cannot carry")
    labels = domain.split(".")
    if not set(domain) <= _DOMAIN_CHARACTERS or (len(labels) < 2 and domain != "localhost") or any(
        not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-")
        for label in labels
    ):
        raise ValueError("has no valid domain after the @ (such as example.com)")
    return f"{local}@{domain}"


def one_line(text: str) -> str:
    """The text on one line: hidden characters become spaces, and runs of spaces one."""
    return " ".join("".join(" " if _hidden(c) else c for c in text).split())


def _hidden(character: str) -> bool:
    return unicodedata.category(character) in _HIDDEN and character not in _JOINERS


def _paragraphs(note: str) -> str:
    """The note with its line breaks kept and every other hidden character dropped."""
    lines = note.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").split("\n")
    kept = ("".join(c for c in line if c == "\t" or not _hidden(c)) for line in lines)
    return "\n".join(kept).strip()


def compose(mail: LinkMail, address: str, *, sender: str, domain: str) -> EmailMessage:
    """The message for one recipient: plain text with an HTML alternative, nothing remote."""
    name = one_line(mail.creator_name)[:MAX_NAME_LENGTH] or "Someone"
    note = _paragraphs(mail.note)
    expiry = f"{mail.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    message = EmailMessage()
    message["Subject"] = f"{name} shared a secret with you"
    message["From"] = sender
    message["To"] = address
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    quoted = f"Their note:\n{note}\n\n" if note else ""
    message.set_content(
        f"{name} shared a secret with you.\n\n{quoted}Open it here:\n{mail.url}\n\n{_WARNING}"
        f" {expiry}{_LIMIT}\n"
    )
    escaped = {key: html.escape(value) for key, value in
               {"name": name, "url": mail.url, "expiry": expiry}.items()}
    block = _NOTE_HTML.format(html.escape(note).replace("\n", "<br>\n")) if note else ""
    message.add_alternative(_HTML.format(note=block, **escaped), subtype="html")
    return message


_WARNING = "The link works until"
_LIMIT = (
    " and can be opened only a limited number of times:\nplease do not forward this email."
)
_NOTE_HTML = (
    '<p style="margin: 0 0 4px;">Their note:</p>\n'
    '<blockquote style="margin: 0 0 16px; padding-left: 12px; border-left: 3px solid #ccc;">'
    "{}</blockquote>\n"
)
_HTML = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"></head>\n'
    '<body style="font-family: sans-serif; line-height: 1.5; color: #1a1a1a;">\n'
    "<p><strong>{name}</strong> shared a secret with you.</p>\n{note}"
    '<p><a href="{url}">Open the secret</a></p>\n'
    '<p style="font-size: small; color: #555;">Or open this link: {url}</p>\n'
    f"<p>{_WARNING} {{expiry}}{_LIMIT}</p>\n</body></html>\n"
)


class Mailer:
    """Sends links by email through one SMTP relay."""

    def __init__(self, relay: MailRelay) -> None:
        self._relay = relay
        self._timeout = relay.timeout.total_seconds()
        cafile = None if relay.ca_file is None else str(relay.ca_file)
        self._tls = ssl.create_default_context(cafile=cafile)

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer | None:
        """The mailer of the configured relay, or None when no relay is configured."""
        relay = mail_relay(settings.smtp_url, settings.mail_from)
        return None if relay is None else cls(relay)

    async def send_link(self, mail: LinkMail) -> None:
        """Send one message per distinct address of `mail.to`, all on one connection; raise
        `InvalidInput` (refused: `email.to.N` is the index in `mail.to`) or `Unavailable`."""
        recipients = _distinct(mail.to)
        domain = self._relay.sender_address.rpartition("@")[2]
        messages = [
            (address, compose(mail, address, sender=self._relay.sender, domain=domain))
            for _, address in recipients
        ]
        sent = 0
        try:
            async with self._client() as client:
                await self._secure_and_login(client)
                await self._check_recipients(client, recipients)
                for address, message in messages:
                    await self._send(client, address, message)
                    sent += 1
        except (aiosmtplib.SMTPException, OSError, _CredentialsNeedTls) as exc:
            failure = _failure(exc, recipients)
            unsent = metrics.mails_refused if isinstance(failure, InvalidInput) else (
                metrics.mails_unavailable
            )
            unsent.inc(len(messages) - sent)
            metrics.mails_sent.inc(sent)
            log.warning("mail not sent: %s from the relay %s", type(exc).__name__,
                        self._relay.host)
            raise failure from None
        metrics.mails_sent.inc(sent)

    def _client(self) -> aiosmtplib.SMTP:
        # STARTTLS and login are done by hand, so that credentials wait for TLS.
        return aiosmtplib.SMTP(
            hostname=self._relay.host,
            port=self._relay.port,
            use_tls=self._relay.implicit_tls,
            start_tls=False,
            tls_context=self._tls,
            timeout=self._timeout,
            # Not socket.getfqdn(): a DNS lookup no timeout bounds.
            local_hostname=self._relay.sender_address.rpartition("@")[2],
        )

    async def _secure_and_login(self, client: aiosmtplib.SMTP) -> None:
        """Upgrade with STARTTLS when offered; send credentials only under TLS."""
        if not self._relay.implicit_tls:
            await client.ehlo()
            if client.supports_extension("starttls"):
                await client.starttls()
        if self._relay.username is None:
            return
        if client.get_transport_info("sslcontext") is None:
            raise _CredentialsNeedTls
        await client.login(self._relay.username, self._relay.password or "")

    async def _check_recipients(
        self, client: aiosmtplib.SMTP, recipients: list[tuple[int, str]]
    ) -> None:
        """Ask the relay about every address before any message goes, then start over."""
        await client.mail(self._relay.sender_address)
        refused = []
        for _, address in recipients:
            try:
                await client.rcpt(address)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        if refused:
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        await client.rset()

    async def _send(self, client: aiosmtplib.SMTP, address: str, message: EmailMessage) -> None:
        await client.send_message(
            message, sender=self._relay.sender_address, recipients=[address]
        )


class _CredentialsNeedTls(Exception):
    """The relay offers no TLS, and the credentials are never sent in clear."""


def _failure(exc: Exception, recipients: list[tuple[int, str]]) -> RealtimeError:
    """The error to answer for a failed send: refused for good, or try again later."""
    if isinstance(exc, _CredentialsNeedTls):
        return Unavailable(
            RETRY_AFTER,
            "the mail relay offers no TLS, and its password is never sent in clear",
        )
    refusals: list[aiosmtplib.SMTPResponseException] = []
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = list(exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPSenderRefused
                    | aiosmtplib.SMTPDataError):
        refusals = [exc]
    permanent = [refusal for refusal in refusals if refusal.code >= 500]
    if not permanent:
        return Unavailable(RETRY_AFTER, "the mail relay did not answer, try again later")
    indexes = {address: index for index, address in recipients}
    fields = {
        f"email.to.{indexes[refusal.recipient]}": _REFUSED
        for refusal in permanent
        if isinstance(refusal, aiosmtplib.SMTPRecipientRefused) and refusal.recipient in indexes
    }
    if fields:
        return InvalidInput("the mail relay refused an address", fields)
    return InvalidInput("the mail relay refused the message", {"email": _REFUSED})
