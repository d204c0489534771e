"""Behind a proxy: X-Forwarded-Proto and -For count only from REALTIME_TRUSTED_PROXIES; the
session cookie is Secure and HSTS is sent when the browser's scheme is https."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.api.http import Services
from realtime.config import Settings
from tests.conftest import PASSWORD, MakeUser, unique_name
from tests.live_server import LiveServer, live_server
from tests.ws_support import next_frame

HTTPS = {"X-Forwarded-Proto": "https"}
# The tests' client connects from 127.0.0.1: trusted in one node, a stranger to the other.
TRUSTING, DISTRUSTING = ("127.0.0.1", "10.0.0.0/8"), ("192.0.2.1", "::1")


@pytest.fixture
def node(request: pytest.FixtureRequest, settings: Settings, services: Services) -> Iterator[
    LiveServer
]:
    """A live node trusting the proxies given by the test's parameter."""
    trusted: tuple[str, ...] = request.param
    with live_server(
        settings.with_overrides(trusted_proxies=trusted, login_max_failures_per_address=2)
    ) as server:
        yield server


async def log_in(node: LiveServer, username: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await http.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}, headers=headers
        )


@pytest.mark.parametrize("node", [TRUSTING], indirect=True)
async def test_https_through_a_trusted_proxy_makes_the_cookie_secure_and_sends_hsts(
    node: LiveServer, services: Services
) -> None:
    """Through a trusted proxy reporting https, the cookie is Secure and every answer carries
    Strict-Transport-Security; reporting http, or nothing, neither."""
    username = unique_name()
    await services.accounts.create_user(username, PASSWORD)
    secure = await log_in(node, username, HTTPS)
    assert secure.status_code == 200, secure.text
    assert "secure" in secure.headers["set-cookie"].lower()
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert "strict-transport-security" in (await http.get("/healthz", headers=HTTPS)).headers
        missing = await http.get("/api/no-such-thing", headers=HTTPS)
        assert missing.status_code == 404 and "strict-transport-security" in missing.headers
    for plain in ({"X-Forwarded-Proto": "http"}, {}):
        answer = await log_in(node, username, plain)
        assert answer.status_code == 200, answer.text
        assert "secure" not in answer.headers["set-cookie"].lower()
        assert "strict-transport-security" not in answer.headers


@pytest.mark.parametrize("node", [DISTRUSTING, ()], indirect=True)
async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    node: LiveServer, services: Services
) -> None:
    """A peer not in the trusted list cannot claim https: no Secure cookie, no HSTS."""
    username = unique_name()
    await services.accounts.create_user(username, PASSWORD)
    answer = await log_in(node, username, HTTPS)
    assert answer.status_code == 200, answer.text
    assert "secure" not in answer.headers["set-cookie"].lower()
    assert "strict-transport-security" not in answer.headers


async def fail_logins(node: LiveServer, forwarded_for: str, count: int) -> list[int]:
    """Wrong passwords for unknown names, as a proxy forwarding `forwarded_for` would send them."""
    headers = {"X-Forwarded-For": forwarded_for}
    async with httpx.AsyncClient(base_url=node.url) as http:
        return [
            (await http.post(
                "/api/auth/login", json={"username": unique_name(), "password": "wrong-one"},
                headers=headers,
            )).status_code
            for _ in range(count)
        ]


@pytest.mark.parametrize("node", [TRUSTING], indirect=True)
async def test_a_trusted_proxy_names_the_client_the_login_throttle_counts(
    node: LiveServer, services: Services
) -> None:
    """Through a trusted proxy each client address has its own login budget: one client over
    it does not lock out another behind the same proxy."""
    username = unique_name()
    await services.accounts.create_user(username, PASSWORD)
    assert await fail_logins(node, "198.51.100.1, 203.0.113.7", 3) == [401, 401, 429]
    other = await log_in(node, username, {"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 200, other.text


@pytest.mark.parametrize("node", [DISTRUSTING], indirect=True)
async def test_an_untrusted_peer_cannot_choose_its_address(
    node: LiveServer, services: Services
) -> None:
    """From a peer that is not a trusted proxy, X-Forwarded-For is ignored: changing it does
    not buy a new login budget."""
    username = unique_name()
    await services.accounts.create_user(username, PASSWORD)
    assert await fail_logins(node, "203.0.113.7", 3) == [401, 401, 429]
    refused = await log_in(node, username, {"X-Forwarded-For": "203.0.113.8"})
    assert refused.status_code == 429, refused.text


@pytest.mark.parametrize("node", [TRUSTING, DISTRUSTING], indirect=True)
async def test_the_websocket_origin_check_uses_the_scheme_the_proxy_reports(
    node: LiveServer, make_user: MakeUser
) -> None:
    """Through a trusted proxy reporting https, the page's https origin is our own and the
    http one is foreign; from an untrusted peer the report is ignored, so the reverse."""
    person = await make_user(on=node)
    headers = {"Cookie": f"session={person.token}", **HTTPS}
    host = node.url.removeprefix("http://")
    trusted = node.app.state.settings.trusted_proxies == TRUSTING
    own, foreign = (f"https://{host}", node.url) if trusted else (node.url, f"https://{host}")
    async with connect(node.ws_url, additional_headers=headers, origin=own) as ws:
        assert (await next_frame(ws))["type"] == "hello"
    with pytest.raises(InvalidStatus) as refused:
        await connect(node.ws_url, additional_headers=headers, origin=foreign)
    assert refused.value.response.status_code == 403
