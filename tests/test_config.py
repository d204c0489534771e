"""Settings from the environment: defaults, failing fast on bad values, secrets kept out of repr."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from realtime.config import Settings, load_settings, parse_duration, redact_url
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
    })
    assert (settings.host, settings.port) == ("192.0.2.10", 9000)
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
