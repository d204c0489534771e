"""The frozen settings, read once from the `REALTIME_*` environment variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from realtime.errors import ConfigError

MASTER_KEY_BYTES = 32
MAX_WORKERS = 256
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_CHANNEL_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment; secrets stay out of `repr`."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # processes serving the port (`serve --workers`)
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "realtime"
    redis_timeout: timedelta = timedelta(seconds=2)
    data_dir: Path = Path(".realtime")
    master_key: bytes | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    admin_password: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    public_url: str | None = None  # where people reach the server: what links are made of
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    session_idle_timeout: timedelta = timedelta(hours=12)
    session_lifetime: timedelta = timedelta(days=7)
    login_max_failures: int = 5
    login_max_failures_per_address: int = 50
    login_lockout: timedelta = timedelta(minutes=15)
    db_pool_size: int = 10
    db_pool_timeout: timedelta = timedelta(seconds=2)
    db_statement_timeout: timedelta = timedelta(seconds=10)
    db_lock_timeout: timedelta = timedelta(seconds=5)
    requests_in_flight_per_user: int = 8
    requests_per_minute: int = 600
    refusal_pause: timedelta = timedelta(seconds=1)
    refusals_held_per_client: int = 256
    max_sockets_per_user: int = 20
    handshakes_per_minute: int = 60
    resumes_per_minute: int = 6
    event_retention: timedelta = timedelta(days=7)
    ws_compression: bool = False
    log_level: str = "INFO"
    # The mail relay for links sent by email (`mail_relay` reads both); unset: no email.
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str | None = None
    # Budgets of every user (docs/api.md, Budgets).
    sends_per_minute: int = 60
    copies_per_minute: int = 2_000
    upload_bytes_in_flight: int = 100 * 1024 * 1024
    upload_bytes_per_minute: int = 256 * 1024 * 1024
    stored_bytes_per_user: int = 1024 * 1024 * 1024
    upload_idle_timeout: timedelta = timedelta(seconds=30)
    vault_max_entries: int = 10_000
    vault_max_folders: int = 1_000
    vault_max_depth: int = 20
    folder_copy_max_bytes: int = 4 * 1024 * 1024
    links_per_hour: int = 100
    link_opens_per_minute: int = 60
    audit_log: str = "none"  # "stdout": each audit record also as a JSON line in the log
    audit_retention: timedelta = timedelta(days=365)
    audit: bool = True  # off only to measure what the trail costs
    # Set by `serve --workers` for its workers, never read from the environment: the directory
    # where they share their figures, so that a scrape of any worker answers for all.
    worker_metrics_dir: Path | None = None

    @property
    def embedded_database(self) -> bool:
        """Whether the server runs its own PostgreSQL under the data dir."""
        return self.database_url is None

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with the given fields changed (the CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment, failing fast on a bad value."""
    env = os.environ if environ is None else environ
    reader = _Reader(env)
    return Settings(
        host=reader.text("REALTIME_HOST", "127.0.0.1"),
        port=reader.integer("REALTIME_PORT", 8000, low=0, high=65535),
        workers=reader.integer("REALTIME_WORKERS", 1, low=1, high=MAX_WORKERS),
        database_url=reader.optional("REALTIME_DATABASE_URL"),
        redis_url=reader.optional("REALTIME_REDIS_URL"),
        redis_prefix=reader.channel_prefix("REALTIME_REDIS_PREFIX", "realtime"),
        redis_timeout=reader.duration("REALTIME_REDIS_TIMEOUT", "2s"),
        data_dir=Path(reader.text("REALTIME_DATA_DIR", ".realtime")),
        master_key=reader.master_key("REALTIME_MASTER_KEY"),
        master_key_file=reader.path("REALTIME_MASTER_KEY_FILE"),
        admin_password=reader.optional("REALTIME_ADMIN_PASSWORD"),
        allowed_origins=reader.origins("REALTIME_ALLOWED_ORIGINS"),
        public_url=reader.public_url("REALTIME_PUBLIC_URL"),
        trusted_proxies=reader.proxies("REALTIME_TRUSTED_PROXIES", "127.0.0.1,::1"),
        session_idle_timeout=reader.duration("REALTIME_SESSION_IDLE_TIMEOUT", "12h"),
        session_lifetime=reader.duration("REALTIME_SESSION_LIFETIME", "7d"),
        login_max_failures=reader.integer("REALTIME_LOGIN_MAX_FAILURES", 5, low=1),
        login_max_failures_per_address=reader.integer(
            "REALTIME_LOGIN_MAX_FAILURES_PER_ADDRESS", 50, low=1
        ),
        login_lockout=reader.duration("REALTIME_LOGIN_LOCKOUT", "15m"),
        db_pool_size=reader.integer("REALTIME_DB_POOL_SIZE", 10, low=2, high=1000),
        db_pool_timeout=reader.duration("REALTIME_DB_POOL_TIMEOUT", "2s"),
        db_statement_timeout=reader.duration("REALTIME_DB_STATEMENT_TIMEOUT", "10s"),
        db_lock_timeout=reader.duration("REALTIME_DB_LOCK_TIMEOUT", "5s"),
        requests_in_flight_per_user=reader.integer(
            "REALTIME_REQUESTS_IN_FLIGHT_PER_USER", 8, low=1
        ),
        requests_per_minute=reader.integer("REALTIME_REQUESTS_PER_MINUTE", 600, low=1),
        refusal_pause=reader.duration(
            "REALTIME_REFUSAL_PAUSE", "1s", at_least=timedelta(0)
        ),
        refusals_held_per_client=reader.integer(
            "REALTIME_REFUSALS_HELD_PER_CLIENT", 256, low=1
        ),
        max_sockets_per_user=reader.integer("REALTIME_MAX_SOCKETS_PER_USER", 20, low=1),
        handshakes_per_minute=reader.integer("REALTIME_HANDSHAKES_PER_MINUTE", 60, low=1),
        resumes_per_minute=reader.integer("REALTIME_RESUMES_PER_MINUTE", 6, low=1),
        ws_compression=reader.flag("REALTIME_WS_COMPRESSION", False),
        event_retention=reader.duration(
            "REALTIME_EVENT_RETENTION", "7d", at_least=timedelta(days=7)
        ),
        log_level=reader.choice(
            "REALTIME_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
        ),
        **_mail(reader),
        **_budgets(reader),
    )


def _budgets(reader: _Reader) -> dict[str, Any]:
    """The budgets of every user (docs/api.md, Budgets)."""
    return {
        "sends_per_minute": reader.integer("REALTIME_SENDS_PER_MINUTE", 60, low=1),
        # Vault entries and folders copied into messages: the most one folder copy takes fits.
        "copies_per_minute": reader.integer("REALTIME_COPIES_PER_MINUTE", 2_000, low=1_200),
        "upload_bytes_in_flight": reader.integer(
            "REALTIME_UPLOAD_BYTES_IN_FLIGHT", 100 * 1024 * 1024, low=1
        ),
        # One file of the largest size fits.
        "upload_bytes_per_minute": reader.integer(
            "REALTIME_UPLOAD_BYTES_PER_MINUTE", 256 * 1024 * 1024, low=25 * 1024 * 1024
        ),
        "stored_bytes_per_user": reader.integer(
            "REALTIME_STORED_BYTES_PER_USER", 1024 * 1024 * 1024, low=1
        ),
        "upload_idle_timeout": reader.duration("REALTIME_UPLOAD_IDLE_TIMEOUT", "30s"),
        "vault_max_entries": reader.integer("REALTIME_VAULT_MAX_ENTRIES", 10_000, low=1),
        "vault_max_folders": reader.integer("REALTIME_VAULT_MAX_FOLDERS", 1_000, low=1),
        # A folder copy nests two JSON levels a folder: past 100 the encoder would refuse it.
        "vault_max_depth": reader.integer("REALTIME_VAULT_MAX_DEPTH", 20, low=1, high=100),
        "folder_copy_max_bytes": reader.integer(
            "REALTIME_FOLDER_COPY_MAX_BYTES", 4 * 1024 * 1024, low=1024
        ),
        "links_per_hour": reader.integer("REALTIME_LINKS_PER_HOUR", 100, low=1),
        # Opens and downloads of shareable links, per client address (they need no account).
        "link_opens_per_minute": reader.integer("REALTIME_LINK_OPENS_PER_MINUTE", 60, low=1),
        "audit_log": reader.choice("REALTIME_AUDIT_LOG", "none", ("NONE", "STDOUT")).lower(),
        "audit_retention": reader.duration("REALTIME_AUDIT_RETENTION", "365d"),
        "audit": reader.flag("REALTIME_AUDIT", True),
    }


# The mail relay (README, Settings): smtp:// upgrades with STARTTLS when the relay offers it, and
# must when it carries credentials; smtps:// is TLS from the start.
_SMTP_PORTS = {"smtp": 587, "smtps": 465}
_SMTP_FORM = "smtp://[user:password@]host[:port][?timeout=10s&cafile=/path] or smtps://..."
_MAIL_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)"
)


@dataclass(frozen=True)
class MailRelay:
    """The SMTP relay of REALTIME_SMTP_URL and the sender of REALTIME_MAIL_FROM."""

    host: str
    port: int
    implicit_tls: bool
    sender: str  # the From header: an address, or `Name <address>`
    sender_address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: timedelta = timedelta(seconds=10)
    ca_file: Path | None = None  # trusted instead of the system's certificate authorities


def mail_relay(smtp_url: str | None, mail_from: str | None) -> MailRelay | None:
    """Parse the mail settings (None: no relay); a ConfigError names the variable at fault."""
    if smtp_url is None:
        return None
    if mail_from is None:
        raise ConfigError("REALTIME_MAIL_FROM is required with REALTIME_SMTP_URL: the From address")
    name, address = parseaddr(mail_from)
    if (
        not _MAIL_ADDRESS.fullmatch(address)
        or mail_from.count("@") != 1
        or ("<" in mail_from) != mail_from.rstrip().endswith(">")
        or any(c < " " or c == "\x7f" for c in mail_from)
    ):
        raise ConfigError(
            f"REALTIME_MAIL_FROM must be one address or Name <address>, got {mail_from!r}"
        )
    try:
        relay = _smtp_url(smtp_url)
    except ValueError as exc:  # the message never repeats the URL: it may hold a password
        raise ConfigError(f"REALTIME_SMTP_URL {exc}; expected {_SMTP_FORM}") from None
    sender = formataddr((name, address)) if name else address
    return MailRelay(**relay, sender=sender, sender_address=address)


def _smtp_url(url: str) -> dict[str, Any]:
    """The relay's fields from its URL; a ValueError says what is wrong, never the URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in _SMTP_PORTS or not parts.hostname or port == 0:
        raise ValueError("must be smtp:// or smtps:// followed by a host and an optional port")
    if parts.path not in ("", "/") or parts.fragment or set(query) - {"timeout", "cafile"}:
        raise ValueError("may hold only timeout and cafile after the host")
    if any(len(values) > 1 for values in query.values()):
        raise ValueError("gives a query parameter twice")
    if (parts.username is None) != (parts.password is None) or parts.username == "":
        raise ValueError("holds credentials as user:password, both or neither")
    ca_file = Path(query["cafile"][0]) if "cafile" in query else None
    if ca_file is not None and not ca_file.is_file():
        raise ValueError("names a cafile that is not a file")
    return {
        "host": parts.hostname,
        "port": port or _SMTP_PORTS[parts.scheme],
        "implicit_tls": parts.scheme == "smtps",
        "username": None if parts.username is None else unquote(parts.username),
        "password": None if parts.password is None else unquote(parts.password),
        "timeout": _smtp_timeout(query.get("timeout", ["10s"])[0]),
        "ca_file": ca_file,
    }


def _smtp_timeout(text: str) -> timedelta:
    try:
        timeout = parse_duration(text)
    except ValueError:
        raise ValueError("has a timeout that is not a duration such as 10s") from None
    if not timedelta(seconds=1) <= timeout <= timedelta(minutes=5):
        raise ValueError("has a timeout outside 1s to 5m")
    return timeout


def _mail(reader: _Reader) -> dict[str, Any]:
    """The mail relay's two settings, checked together."""
    mail = {
        "smtp_url": reader.optional("REALTIME_SMTP_URL"),
        "mail_from": reader.optional("REALTIME_MAIL_FROM"),
    }
    mail_relay(**mail)
    return mail


def parse_duration(text: str) -> timedelta:
    """Parse `90`, `90s`, `15m`, `12h` or `7d` into a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError("expected a whole number of seconds, or a number with s, m, h or d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def decode_master_key(text: str) -> bytes:
    """Decode a base64 master key, insisting on exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not valid base64") from exc
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(f"must decode to {MASTER_KEY_BYTES} bytes, not {len(key)}")
    return key


def redact_url(url: str) -> str:
    """Return the URL without its password (in the authority or the query), for logs."""
    parts = urlsplit(url)
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    if not parts.password and query == parts.query:
        return url
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    return urlunsplit(parts._replace(query=query))


class _Reader:
    """Read typed values from the environment; every error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "")
        return value if value.strip() else None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def path(self, name: str) -> Path | None:
        value = self.optional(name)
        return Path(value) if value else None

    def integer(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            upper = "" if high is None else f" and at most {high}"
            raise ConfigError(f"{name} must be at least {low}{upper}, got {number}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() not in ("0", "1", "true", "false", "on", "off"):
            raise ConfigError(f"{name} must be on or off (1/0, true/false), got {value!r}")
        return value.lower() in ("1", "true", "on")

    def duration(
        self, name: str, default: str, *, at_least: timedelta = timedelta(seconds=1)
    ) -> timedelta:
        value = self.text(name, default)
        try:
            duration = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}, got {value!r}") from None
        if duration < at_least:
            raise ConfigError(f"{name} must be at least {at_least}, got {value!r}")
        return duration

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def channel_prefix(self, name: str, default: str) -> str:
        value = self.text(name, default).strip()
        if not _CHANNEL_PREFIX.fullmatch(value):
            raise ConfigError(
                f"{name} must be 1 to 64 letters, digits, '.', '_' or '-', got {value!r}"
            )
        return value

    def master_key(self, name: str) -> bytes | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            return decode_master_key(value)
        except ValueError as exc:
            hint = "generate one with: openssl rand -base64 32"
            raise ConfigError(f"{name} {exc} ({hint})") from None

    def origins(self, name: str) -> tuple[str, ...]:
        value = self.optional(name)
        if value is None:
            return ()
        origins = tuple(item.strip() for item in value.split(",") if item.strip())
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ConfigError(
                    f"{name} holds {origin!r}: each origin is scheme://host[:port], nothing more"
                )
        return origins

    def public_url(self, name: str) -> str | None:
        """scheme://host[:port], with a path when the server is served under one."""
        value = self.optional(name)
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.fragment or "@" in parts.netloc:
            raise ConfigError(f"{name} is scheme://host[:port][/path], nothing more")
        return value.strip().rstrip("/")

    def proxies(self, name: str, default: str) -> tuple[str, ...]:
        """Addresses and networks (`10.0.0.0/8`), `*` for every peer, `none` for no one."""
        value = self.text(name, default).strip()
        if value.lower() == "none":
            return ()
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if "*" in items:
            if len(items) > 1:
                raise ConfigError(f"{name}: '*' trusts every peer and stands alone, got {value!r}")
            return items
        for item in items:
            try:
                ipaddress.ip_network(item)
            except ValueError:
                raise ConfigError(
                    f"{name} holds {item!r}: each is an IP address or a network such as "
                    "10.0.0.0/8 (no host bits set), '*' or 'none'"
                ) from None
        return items
