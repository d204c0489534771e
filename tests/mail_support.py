"""A real SMTP server for the tests: aiosmtpd in a thread of the test process, on a port the
system chose, keeping every message it accepts.

Import the fixtures into a test module, as with the other support modules:

    from tests.mail_support import SmtpServer, smtp_server_fixture  # noqa: F401 (a fixture)

    async def test_a_link_is_mailed(smtp_server: SmtpServer, settings: Settings) -> None:
        app_settings = smtp_server.configure(settings)  # REALTIME_SMTP_URL, REALTIME_MAIL_FROM
        ...                                             # send through the app
        [mail] = smtp_server.messages                   # ReceivedMail: message, sender, recipients
        assert mail.recipients == ("a@example.com",)

- `smtp_server` (fixture): a plain server, no TLS, no AUTH; a new one for every test.
- `start_smtp_server(tls="none" | "starttls" | "implicit", credentials=("user", "password"))`
  (fixture `start_smtp_server`, a factory): a server offering STARTTLS or speaking TLS from the
  first byte, with a certificate for 127.0.0.1 signed by a test authority whose file its `url`
  names (`?cafile=`); with credentials, it offers AUTH (only after STARTTLS on a starttls
  server) and refuses MAIL before a login. Every server started is stopped after the test.
- `server.refuse("x@example.com")` answers RCPT TO for that address with 550 (or the code
  given: 450 to defer); `server.refuse_all()` answers DATA with 554 (or the code given).
- `server.messages` (ReceivedMail: the parsed `EmailMessage`, the envelope's sender and
  recipients, whether it came over TLS, the login used) and `server.logins` (every AUTH attempt:
  login and whether it came over TLS) fill as the server works.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from realtime.config import Settings

Tls = Literal["none", "starttls", "implicit"]
SENDER = "Realtime <realtime@example.com>"


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted, as its recipient's mailbox would hold it."""

    message: EmailMessage
    sender: str  # MAIL FROM
    recipients: tuple[str, ...]  # RCPT TO
    over_tls: bool
    login: str | None  # the user logged in, None without AUTH


@dataclass(frozen=True)
class Login:
    """One AUTH attempt the server saw."""

    login: str
    over_tls: bool


@dataclass(frozen=True)
class SmtpAuthority:
    """A certificate authority of the tests, and a server certificate it signed for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class SmtpServer:
    """A running aiosmtpd server on 127.0.0.1 (see the module's docstring)."""

    def __init__(
        self,
        *,
        tls: Tls = "none",
        credentials: tuple[str, str] | None = None,
        authority: SmtpAuthority | None = None,
    ) -> None:
        if tls != "none" and authority is None:
            raise ValueError("a TLS server needs the test authority")
        self.tls = tls
        self.credentials = credentials
        self.authority = authority
        self.messages: list[ReceivedMail] = []
        self.logins: list[Login] = []
        self._refused: dict[str, int] = {}
        self._refuse_all: int | None = None
        context = authority.server_context() if authority is not None else None
        options: dict[str, Any] = {"server_hostname": "relay.test", "ready_timeout": 10.0}
        if tls == "starttls":
            options["tls_context"] = context
        elif tls == "implicit":
            options["ssl_context"] = context
        if credentials is not None:
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = tls == "starttls"  # aiosmtpd knows STARTTLS only
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._listener.getsockname()[1]
        self._controller = _BoundController(_Handler(self), self._listener, **options)

    @property
    def url(self) -> str:
        """The REALTIME_SMTP_URL of this server (its credentials and test authority included)."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        user = ""
        if self.credentials is not None:
            user = f"{quote(self.credentials[0], safe='')}:{quote(self.credentials[1], safe='')}@"
        query = "" if self.authority is None else f"?cafile={quote(str(self.authority.ca_file))}"
        return f"{scheme}://{user}{self.host}:{self.port}{query}"

    def configure(self, settings: Settings, *, sender: str = SENDER) -> Settings:
        """The settings with this server as the mail relay."""
        return settings.with_overrides(smtp_url=self.url, mail_from=sender)

    def refuse(self, address: str, code: int = 550) -> None:
        """Answer RCPT TO for this address with the code (5xx: for good, 4xx: try later)."""
        self._refused[address.lower()] = code

    def refuse_all(self, code: int = 554) -> None:
        """Answer DATA with the code: every message refused."""
        self._refuse_all = code

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
        self._listener.close()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append(Login(login, _over_tls(server)))
        accepted = (login, password) == self.credentials
        return AuthResult(success=accepted, handled=False, auth_data=login if accepted else None)


class _Handler:
    """The server's answers: refusals as asked, AUTH before MAIL when it has credentials."""

    def __init__(self, relay: SmtpServer) -> None:
        self._relay = relay

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._relay.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        code = self._relay._refused.get(address.lower())
        if code is not None:
            return f"{code} {'5.1.1' if code >= 500 else '4.2.1'} refused by the test server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._relay._refuse_all is not None:
            return f"{self._relay._refuse_all} 5.7.1 refused by the test server"
        raw = envelope.original_content or b""
        message = BytesParser(policy=default_policy).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self._relay.messages.append(ReceivedMail(
            message=message,
            sender=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            over_tls=_over_tls(server),
            login=session.auth_data if session.authenticated else None,
        ))
        return "250 OK"


class _BoundController(Controller):
    """A controller serving on a socket bound beforehand: no race for a free port."""

    def __init__(self, handler: _Handler, listener: socket.socket, **options: Any) -> None:
        host, port = listener.getsockname()
        super().__init__(handler, hostname=host, port=port, **options)
        self._listener = listener

    def _create_server(self) -> Any:
        return self.loop.create_server(
            self._factory_invoker, sock=self._listener, ssl=self.ssl_context
        )


def _over_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("sslcontext") is not None


def make_smtp_authority(directory: Path) -> SmtpAuthority:
    """Write a test certificate authority and a server certificate for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "realtime test authority")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    authority = SmtpAuthority(
        ca_file=directory / "ca.pem", cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    authority.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    authority.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    authority.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return authority


@pytest.fixture(scope="session", name="smtp_authority")
def smtp_authority_fixture(tmp_path_factory: pytest.TempPathFactory) -> SmtpAuthority:
    """The certificate authority the TLS servers' certificates come from."""
    return make_smtp_authority(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    """A running plain SMTP server (no TLS, no AUTH) keeping what it receives."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


StartSmtpServer = Callable[..., SmtpServer]


@pytest.fixture(name="start_smtp_server")
def start_smtp_server_fixture(smtp_authority: SmtpAuthority) -> Iterator[StartSmtpServer]:
    """Start servers with TLS or AUTH as asked; each is stopped after the test."""
    started: list[SmtpServer] = []

    def start(*, tls: Tls = "none", credentials: tuple[str, str] | None = None) -> SmtpServer:
        server = SmtpServer(
            tls=tls, credentials=credentials, authority=None if tls == "none" else smtp_authority
        )
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
