"""The multi-node deployment: docker-compose.yml, deploy/nginx.conf and the Dockerfile agree."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from realtime.cli import server_options
from realtime.config import Settings, load_settings, parse_duration
from realtime.files import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
NODES = {name: service for name, service in SERVICES.items() if "build" in service}
# The nginx configuration without its comments.
NGINX = re.sub(r"#[^\n]*", "", (ROOT / "deploy" / "nginx.conf").read_text())
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def nginx_block(opening: str) -> str:
    """The body of the (unnested) block that `opening` starts, e.g. `location = /ws`."""
    match = re.search(re.escape(opening) + r"\s*\{([^{}]*)\}", NGINX)
    assert match is not None, f"no block {opening!r} in deploy/nginx.conf"
    return match.group(1)


def directives(block: str, name: str) -> list[str]:
    """The arguments of every `name ...;` directive in a block."""
    return [m.strip() for m in re.findall(rf"(?m)^\s*{name}\s+([^;]*);", block)]


class _AskedNames(dict[str, str]):
    """An empty environment that remembers the names it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_compose_names_only_variables_the_server_reads() -> None:
    """Every REALTIME_* name in docker-compose.yml is one the settings read, so a typo fails."""
    environment = _AskedNames()
    load_settings(environment)
    named = set(re.findall(r"\bREALTIME_[A-Z0-9_]+", COMPOSE_TEXT))
    assert named, "docker-compose.yml names no REALTIME_* variable"
    assert not named - environment.asked, f"not read: {sorted(named - environment.asked)}"


def test_the_nodes_share_database_redis_and_master_key() -> None:
    """Both app nodes use one database, one Redis and one master key, none written in the file."""
    assert set(NODES) == {"node1", "node2"}
    shared = ("REALTIME_DATABASE_URL", "PGPASSWORD", "REALTIME_REDIS_URL", "REALTIME_MASTER_KEY")
    settings = [{name: node["environment"].get(name) for name in shared} for node in NODES.values()]
    assert all(settings[0].values()) and all(each == settings[0] for each in settings)
    for node in NODES.values():
        for secret in ("PGPASSWORD", "REALTIME_MASTER_KEY", "REALTIME_ADMIN_PASSWORD"):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", node["environment"][secret]), secret


def test_a_node_environment_loads_as_valid_settings() -> None:
    """With .env filled in, a node's environment loads as settings for a shared database."""
    dotenv = {"REALTIME_MASTER_KEY": base64.b64encode(bytes(32)).decode()}

    def interpolate(value: str) -> str:
        return re.sub(
            r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)\}",
            lambda m: dotenv.get(m.group(1), m.group(2) or "from-dotenv"),
            str(value),
        )

    for node in NODES.values():
        settings = load_settings({k: interpolate(v) for k, v in node["environment"].items()})
        assert settings.database_url and settings.redis_url and settings.master_key
        assert settings.allowed_origins == ("http://localhost:8080",)


def test_the_nodes_trust_forwarded_headers_from_the_load_balancer_only() -> None:
    """The nodes take the client's address and scheme from X-Forwarded-* only when nginx's
    address sent them."""
    lb_address = SERVICES["lb"]["networks"]["default"]["ipv4_address"]
    for node in NODES.values():
        assert node["environment"]["REALTIME_TRUSTED_PROXIES"] == lb_address
        assert "FORWARDED_ALLOW_IPS" not in node["environment"]


def test_the_load_balancer_passes_the_browser_scheme_and_address() -> None:
    """Every proxied location passes X-Forwarded-For and the scheme the browser used, taken
    from a TLS front only when that front is one nginx trusts, else nginx's own."""
    for location in ("location = /ws", "location = /api/uploads", "location /"):
        headers = directives(nginx_block(location), "proxy_set_header")
        assert "X-Forwarded-For $proxy_add_x_forwarded_for" in headers
        assert "X-Forwarded-Proto $forwarded_proto" in headers
    scheme = nginx_block('map "$from_tls_front:$http_x_forwarded_proto" $forwarded_proto')
    assert re.search(r"default\s+\$scheme;", scheme)
    assert re.search(r'"1:https"\s+https;', scheme)
    fronts = nginx_block("geo $realip_remote_addr $from_tls_front")
    entries = [line.split() for line in fronts.strip().splitlines()]
    trusted = {entry[0] for entry in entries if entry[1:] == ["1;"]}
    assert re.search(r"default\s+0;", fronts)
    assert trusted == set(directives(NGINX, "set_real_ip_from"))


def test_redis_asks_the_password_the_nodes_carry() -> None:
    """Redis requires REDIS_PASSWORD from .env; each node's Redis URL carries it, and the
    health check authenticates (an unauthenticated PING would still exit 0)."""
    password = "${REDIS_PASSWORD:?"
    redis = SERVICES["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith(password)
    assert redis["environment"]["REDISCLI_AUTH"].startswith(password)
    assert "PONG" in " ".join(redis["healthcheck"]["test"])
    for node in NODES.values():
        url = node["environment"]["REALTIME_REDIS_URL"]
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", url), url


def test_a_stopping_node_has_time_to_drain_its_websockets() -> None:
    """Compose waits longer than the server's graceful shutdown before it kills a node."""
    drain = server_options(Settings())["timeout_graceful_shutdown"]
    for node in NODES.values():
        assert parse_duration(node["stop_grace_period"]).total_seconds() > drain


def test_the_load_balancer_spreads_over_exactly_the_app_nodes() -> None:
    """nginx's upstream names each app service of the compose file, at the port the image uses."""
    servers = directives(nginx_block("upstream realtime"), "server")
    addresses = {server.split()[0] for server in servers}
    port = re.search(r"(?m)^EXPOSE (\d+)", (ROOT / "Dockerfile").read_text())
    assert port is not None
    assert addresses == {f"{name}:{port.group(1)}" for name in NODES}


def test_websockets_pass_the_load_balancer() -> None:
    """/ws is proxied with the Upgrade headers and outlives the server's 60 s idle timeout."""
    ws = nginx_block("location = /ws")
    headers = directives(ws, "proxy_set_header")
    assert "Upgrade $http_upgrade" in headers
    assert "Connection $connection_upgrade" in headers
    assert re.search(r"default\s+upgrade;", nginx_block("map $http_upgrade $connection_upgrade"))
    assert directives(ws, "proxy_http_version") == ["1.1"]
    assert parse_duration(directives(ws, "proxy_read_timeout")[0]).total_seconds() > 60


def test_the_load_balancer_never_sends_a_post_twice() -> None:
    """Failed requests go to the other node, but not a non-idempotent one already sent."""
    retries = directives(NGINX, "proxy_next_upstream")
    assert retries and all("non_idempotent" not in each for each in retries)


def test_a_largest_upload_passes_the_load_balancer() -> None:
    """nginx's body limit admits a 25 MiB upload, so the node is the one that answers 413."""
    (limit,) = directives(NGINX, "client_max_body_size")
    size = re.fullmatch(r"(\d+)([kmg]?)", limit.lower())
    assert size is not None, limit
    assert int(size.group(1)) * SIZE_UNITS[size.group(2)] >= MAX_FILE_BYTES


def test_the_installed_package_carries_the_browser_client() -> None:
    """The wheel the image installs carries the browser client, as realtime/static."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert included["static"] == "realtime/static"
