"""Settings from the environment: defaults, failing fast on bad values, secrets kept out of repr."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from realtime.config import (
    MailRelay,
    Settings,
    load_settings,
    mail_relay,
    parse_duration,
    redact_url,
)
from realtime.errors import ConfigError

KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY).decode()


def test_an_empty_environment_gives_the_defaults() -> None:
    """With no REALTIME_* variable the settings are the documented defaults."""
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url is None and settings.embedded_database
    assert settings.redis_url is None
    assert settings.redis_prefix == "realtime"
    assert settings.data_dir == Path(".realtime")
    assert settings.master_key is None and settings.master_key_file is None
    assert settings.admin_password is None
    assert settings.allowed_origins == ()
    assert settings.session_idle_timeout == timedelta(hours=12)
    assert settings.session_lifetime == timedelta(days=7)
    assert settings.login_max_failures == 5
    assert settings.login_max_failures_per_address == 50
    assert settings.login_lockout == timedelta(minutes=15)
    assert settings.db_pool_size == 10
    assert settings.log_level == "INFO"
    assert settings.event_retention == timedelta(days=7)
    assert settings.redis_timeout == timedelta(seconds=2)
    assert settings.trusted_proxies == ("127.0.0.1", "::1")


def test_blank_values_count_as_unset() -> None:
    """A variable set to spaces is the same as an unset one."""
    assert load_settings({"REALTIME_PORT": "  ", "REALTIME_DATABASE_URL": ""}) == Settings()


def test_every_variable_is_read() -> None:
    """Each REALTIME_* variable lands in its field, parsed."""
    settings = load_settings({
        "REALTIME_HOST": "192.0.2.10",
        "REALTIME_PORT": "9000",
        "REALTIME_WORKERS": "4",
        "REALTIME_DATABASE_URL": "postgresql://app:pw@db/realtime",
        "REALTIME_REDIS_URL": "redis://cache:6379/0",
        "REALTIME_REDIS_PREFIX": "chat-eu.1",
        "REALTIME_DATA_DIR": "/var/lib/realtime",
        "REALTIME_MASTER_KEY": f" {KEY_TEXT} ",
        "REALTIME_ADMIN_PASSWORD": "first admin password",
        "REALTIME_ALLOWED_ORIGINS": "https://chat.example.com, http://localhost:8000",
        "REALTIME_SESSION_IDLE_TIMEOUT": "30m",
        "REALTIME_SESSION_LIFETIME": "2d",
        "REALTIME_LOGIN_MAX_FAILURES": "3",
        "REALTIME_LOGIN_MAX_FAILURES_PER_ADDRESS": "20",
        "REALTIME_LOGIN_LOCKOUT": "90",
        "REALTIME_DB_POOL_SIZE": "4",
        "REALTIME_LOG_LEVEL": "debug",
        "REALTIME_EVENT_RETENTION": "30d",
        "REALTIME_REDIS_TIMEOUT": "5s",
        "REALTIME_TRUSTED_PROXIES": "10.0.0.0/8, 172.30.78.10, fd00::/8",
        "REALTIME_PUBLIC_URL": "https://chat.example.com/secure/",
        "REALTIME_LINKS_PER_HOUR": "7",
        "REALTIME_LINK_OPENS_PER_MINUTE": "9",
    })
    assert (settings.host, settings.port) == ("192.0.2.10", 9000)
    assert settings.workers == 4
    assert settings.public_url == "https://chat.example.com/secure"
    assert (settings.links_per_hour, settings.link_opens_per_minute) == (7, 9)
    assert settings.database_url == "postgresql://app:pw@db/realtime"
    assert not settings.embedded_database
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.redis_prefix == "chat-eu.1"
    assert settings.data_dir == Path("/var/lib/realtime")
    assert settings.master_key == KEY
    assert settings.admin_password == "first admin password"
    assert settings.allowed_origins == ("https://chat.example.com", "http://localhost:8000")
    assert settings.session_idle_timeout == timedelta(minutes=30)
    assert settings.session_lifetime == timedelta(days=2)
    assert settings.login_max_failures == 3
    assert settings.login_max_failures_per_address == 20
    assert settings.login_lockout == timedelta(seconds=90)
    assert settings.db_pool_size == 4
    assert settings.log_level == "DEBUG"
    assert settings.event_retention == timedelta(days=30)
    assert settings.redis_timeout == timedelta(seconds=5)
    assert settings.trusted_proxies == ("10.0.0.0/8", "172.30.78.10", "fd00::/8")


def test_the_master_key_file_is_read_as_a_path() -> None:
    """REALTIME_MASTER_KEY_FILE is a path."""
    settings = load_settings({"REALTIME_MASTER_KEY_FILE": "/etc/realtime/master.key"})
    assert settings.master_key_file == Path("/etc/realtime/master.key")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REALTIME_PORT", "abc"),
        ("REALTIME_PORT", "80.5"),
        ("REALTIME_PORT", "-1"),
        ("REALTIME_PORT", "65536"),
        ("REALTIME_WORKERS", "0"),
        ("REALTIME_WORKERS", "two"),
        ("REALTIME_WORKERS", "257"),
        ("REALTIME_SESSION_IDLE_TIMEOUT", "soon"),
        ("REALTIME_SESSION_IDLE_TIMEOUT", "1.5h"),
        ("REALTIME_SESSION_IDLE_TIMEOUT", "0"),
        ("REALTIME_SESSION_LIFETIME", "7 days"),
        ("REALTIME_SESSION_LIFETIME", "-7d"),
        ("REALTIME_LOGIN_LOCKOUT", "0m"),
        ("REALTIME_LOGIN_LOCKOUT", "15w"),
        ("REALTIME_LOGIN_MAX_FAILURES", "five"),
        ("REALTIME_LOGIN_MAX_FAILURES", "0"),
        ("REALTIME_LOGIN_MAX_FAILURES_PER_ADDRESS", "0"),
        ("REALTIME_DB_POOL_SIZE", "1"),
        ("REALTIME_DB_POOL_SIZE", "1001"),
        ("REALTIME_DB_POOL_SIZE", "ten"),
        ("REALTIME_LOG_LEVEL", "LOUD"),
        ("REALTIME_LOG_LEVEL", "CRITICAL!"),
        ("REALTIME_ALLOWED_ORIGINS", "https://chat.example.com/app"),
        ("REALTIME_ALLOWED_ORIGINS", "https://chat.example.com,https://other.example.com/"),
        ("REALTIME_ALLOWED_ORIGINS", "chat.example.com"),
        ("REALTIME_ALLOWED_ORIGINS", "ftp://chat.example.com"),
        ("REALTIME_PUBLIC_URL", "chat.example.com"),
        ("REALTIME_PUBLIC_URL", "https://chat.example.com/?a=b"),
        ("REALTIME_PUBLIC_URL", "https://user@chat.example.com"),
        ("REALTIME_LINKS_PER_HOUR", "0"),
        ("REALTIME_LINK_OPENS_PER_MINUTE", "none"),
        ("REALTIME_MASTER_KEY", "not base64 at all!"),
        ("REALTIME_MASTER_KEY", base64.b64encode(bytes(16)).decode()),
        ("REALTIME_MASTER_KEY", base64.b64encode(bytes(33)).decode()),
        ("REALTIME_MASTER_KEY", KEY_TEXT.rstrip("=")[:-1]),
        ("REALTIME_MAX_SOCKETS_PER_USER", "0"),
        ("REALTIME_MAX_SOCKETS_PER_USER", "many"),
        ("REALTIME_WS_COMPRESSION", "maybe"),
        ("REALTIME_EVENT_RETENTION", "6d"),
        ("REALTIME_EVENT_RETENTION", "0"),
        ("REALTIME_REDIS_PREFIX", "two words"),
        ("REALTIME_REDIS_PREFIX", "a:b"),
        ("REALTIME_REDIS_PREFIX", "x" * 65),
        ("REALTIME_REDIS_TIMEOUT", "0"),
        ("REALTIME_REDIS_TIMEOUT", "0.5"),
        ("REALTIME_TRUSTED_PROXIES", "nginx"),
        ("REALTIME_TRUSTED_PROXIES", "10.0.0.1/8"),
        ("REALTIME_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("REALTIME_TRUSTED_PROXIES", "*, 10.0.0.1"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(variable: str, value: str) -> None:
    """Each malformed value stops loading with a ConfigError whose message names it."""
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value})
    assert variable in str(raised.value)
    assert variable in raised.value.message


@pytest.mark.parametrize(
    "value",
    [base64.b64encode(b"sixteen byte key").decode(), "c2VjcmV0LWJ1dC1ub3QtYmFzZTY0!!"],
)
def test_a_bad_master_key_is_not_echoed(value: str) -> None:
    """The error for a bad master key does not repeat the key."""
    with pytest.raises(ConfigError) as raised:
        load_settings({"REALTIME_MASTER_KEY": value})
    assert value not in str(raised.value)


def test_repr_keeps_every_secret_out() -> None:
    """repr(Settings) holds neither the master key, the admin password, nor URL passwords."""
    settings = load_settings({
        "REALTIME_DATABASE_URL": "postgresql://app:db-secret-pw@db.internal:5432/realtime",
        "REALTIME_REDIS_URL": "redis://:redis-secret-pw@cache:6379/0",
        "REALTIME_MASTER_KEY": KEY_TEXT,
        "REALTIME_ADMIN_PASSWORD": "admin-secret-pw",
    })
    for shown in (repr(settings), str(settings), f"{settings}"):
        assert "Settings(" in shown
        for secret in ("db-secret-pw", "redis-secret-pw", "admin-secret-pw", KEY_TEXT,
                       repr(KEY), KEY.hex()):
            assert secret not in shown


def test_with_overrides_changes_only_what_is_given() -> None:
    """CLI flags override their settings; a flag left out (None) keeps the setting."""
    settings = load_settings({"REALTIME_PORT": "9000", "REALTIME_HOST": "192.0.2.10"})
    changed = settings.with_overrides(host=None, port=9100)
    assert (changed.host, changed.port) == ("192.0.2.10", 9100)
    assert settings.port == 9000


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://app:s3cret@db:5432/realtime", "postgresql://app:***@db:5432/realtime"),
        ("postgresql://app:p%40ss@db/realtime?sslmode=require",
         "postgresql://app:***@db/realtime?sslmode=require"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://app@db/realtime", "postgresql://app@db/realtime"),
        ("postgresql:///realtime?host=/tmp/socket", "postgresql:///realtime?host=/tmp/socket"),
    ],
)
def test_redact_url_hides_the_password(url: str, redacted: str) -> None:
    """A URL is logged with its password replaced by ***, and is unchanged without one."""
    assert redact_url(url) == redacted


def test_redact_url_hides_a_password_holding_an_at_sign() -> None:
    """Even an unescaped @ in the password does not leak part of it."""
    assert redact_url("postgresql://app:pa@ss@db/realtime") == "postgresql://app:***@db/realtime"


MAIL_ENV = {
    "REALTIME_SMTP_URL": "smtp://mailer:s%40cret%2Fpw@relay.example.com",
    "REALTIME_MAIL_FROM": "Realtime <noreply@example.com>",
}


def test_the_mail_relay_is_read() -> None:
    """REALTIME_SMTP_URL and REALTIME_MAIL_FROM give the relay, its login and the sender."""
    settings = load_settings(MAIL_ENV)
    assert (settings.smtp_url, settings.mail_from) == tuple(MAIL_ENV.values())
    assert mail_relay(settings.smtp_url, settings.mail_from) == MailRelay(
        host="relay.example.com", port=587, implicit_tls=False,
        sender="Realtime <noreply@example.com>", sender_address="noreply@example.com",
        username="mailer", password="s@cret/pw", timeout=timedelta(seconds=10), ca_file=None,
    )


def test_without_a_relay_there_is_no_mail() -> None:
    """By default no relay is configured, and a sender alone changes nothing."""
    assert load_settings({}).smtp_url is None
    settings = load_settings({"REALTIME_MAIL_FROM": "noreply@example.com"})
    assert mail_relay(settings.smtp_url, settings.mail_from) is None


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "timeout"),
    [
        ("smtps://relay.example.com", "relay.example.com", 465, True, 10),
        ("smtp://Relay.Example.com:25/?timeout=30s", "relay.example.com", 25, False, 30),
        ("SMTP://[::1]:2525?timeout=1", "::1", 2525, False, 1),
        ("smtps://u:p@relay.example.com:2465?timeout=5m", "relay.example.com", 2465, True, 300),
    ],
)
def test_smtp_url_forms(url: str, host: str, port: int, implicit_tls: bool, timeout: int) -> None:
    """smtp:// defaults to port 587 and smtps:// (TLS at once) to 465; `timeout` bounds waits."""
    relay = mail_relay(url, "noreply@example.com")
    assert relay is not None
    assert (relay.host, relay.port, relay.implicit_tls) == (host, port, implicit_tls)
    assert relay.timeout == timedelta(seconds=timeout)


def test_the_relay_may_name_the_authority_it_trusts(tmp_path: Path) -> None:
    """`?cafile=` names the certificate authorities the relay's certificate is checked against."""
    ca_file = tmp_path / "relay ca.pem"
    ca_file.write_text("not read until the mailer starts")
    relay = mail_relay(f"smtp://relay.example.com?cafile={tmp_path}/relay%20ca.pem", "a@b.example")
    assert relay is not None and relay.ca_file == ca_file


def test_a_relay_needs_a_sender() -> None:
    """REALTIME_SMTP_URL without REALTIME_MAIL_FROM stops the start, naming the missing one."""
    with pytest.raises(ConfigError, match="REALTIME_MAIL_FROM"):
        load_settings({"REALTIME_SMTP_URL": "smtp://relay.example.com"})


@pytest.mark.parametrize(
    "url",
    [
        "http://u:hunter2@relay.example.com",
        "relay.example.com:587",
        "smtp://",
        "smtp://u:hunter2@",
        "smtp://u:hunter2@relay.example.com:99999",
        "smtp://u:hunter2@relay.example.com:port",
        "smtp://u:hunter2@relay.example.com:0",
        "smtp://u:hunter2@relay.example.com/inbox",
        "smtp://u:hunter2@relay.example.com#hunter2",
        "smtp://u:hunter2@relay.example.com?timeout=0",
        "smtp://u:hunter2@relay.example.com?timeout=soon",
        "smtp://u:hunter2@relay.example.com?timeout=1h",
        "smtp://u:hunter2@relay.example.com?timeout=1s&timeout=2s",
        "smtp://u:hunter2@relay.example.com?verify=off",
        "smtp://u:hunter2@relay.example.com?starttls",
        "smtp://u:hunter2@relay.example.com?cafile=/nonexistent/hunter2.pem",
        "smtp://u@relay.example.com",
        "smtp://:hunter2@relay.example.com",
    ],
)
def test_a_bad_smtp_url_is_named_and_not_echoed(url: str) -> None:
    """A malformed relay URL stops the start naming REALTIME_SMTP_URL, never its password."""
    with pytest.raises(ConfigError) as raised:
        load_settings({"REALTIME_SMTP_URL": url, "REALTIME_MAIL_FROM": "noreply@example.com"})
    assert "REALTIME_SMTP_URL" in raised.value.message
    assert "hunter2" not in raised.value.message


@pytest.mark.parametrize(
    "sender",
    [
        "noreply",
        "noreply@",
        "noreply@example",
        "noreply@example.com, other@example.com",
        "Realtime <noreply@example.com",
        "noreply@example.com\r\nBcc: other@example.com",
    ],
)
def test_a_bad_sender_is_named(sender: str) -> None:
    """REALTIME_MAIL_FROM must be one address, bare or as Name <address>."""
    with pytest.raises(ConfigError, match="REALTIME_MAIL_FROM"):
        load_settings({"REALTIME_SMTP_URL": "smtp://relay.example.com",
                       "REALTIME_MAIL_FROM": sender})


def test_the_relay_password_stays_out_of_repr() -> None:
    """Neither the settings nor the parsed relay show the relay's password."""
    settings = load_settings({
        "REALTIME_SMTP_URL": "smtps://mailer:relay-secret-pw@relay.example.com",
        "REALTIME_MAIL_FROM": "noreply@example.com",
    })
    relay = mail_relay(settings.smtp_url, settings.mail_from)
    for shown in (repr(settings), str(settings), repr(relay)):
        assert "relay-secret-pw" not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        (" 5 m ", timedelta(minutes=5)),
        ("0", timedelta(0)),
    ],
)
def test_parse_duration_forms(text: str, expected: timedelta) -> None:
    """Seconds alone, or a whole number with s, m, h or d."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "1.5h", "-5s", "5 minutes", "5w", "5M", "1h30m"])
def test_parse_duration_refuses_other_forms(text: str) -> None:
    """Anything else is a ValueError."""
    with pytest.raises(ValueError, match="whole number"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", True), ("1", True), ("TRUE", True), ("off", False), ("0", False), ("false", False)],
)
def test_websocket_compression_is_a_switch(value: str, expected: bool) -> None:
    """REALTIME_WS_COMPRESSION takes on/off, 1/0 or true/false, and is off by default."""
    assert load_settings({}).ws_compression is False
    assert load_settings({"REALTIME_WS_COMPRESSION": value}).ws_compression is expected


def test_the_socket_cap_per_user_is_read() -> None:
    """REALTIME_MAX_SOCKETS_PER_USER sets the cap, 20 by default."""
    assert load_settings({}).max_sockets_per_user == 20
    assert load_settings({"REALTIME_MAX_SOCKETS_PER_USER": "3"}).max_sockets_per_user == 3


@pytest.mark.parametrize(
    ("value", "expected"), [("*", ("*",)), ("none", ()), ("NONE", ()), ("::1", ("::1",))]
)
def test_trusted_proxies_may_be_everyone_or_no_one(value: str, expected: tuple[str, ...]) -> None:
    """REALTIME_TRUSTED_PROXIES takes `*` (every peer) and `none` (forwarded headers ignored)."""
    assert load_settings({"REALTIME_TRUSTED_PROXIES": value}).trusted_proxies == expected
