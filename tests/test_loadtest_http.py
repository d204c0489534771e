"""The load tester's own HTTP/1.1 client against a real uvicorn: answers and the contract's
errors, keep-alive connections reused and bounded, a connection the server closed while idle,
and the failures a report counts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import psutil
import pytest

from realtime.config import Settings
from realtime.loadtest import http
from realtime.loadtest.http import Deployment, TransportError
from realtime.loadtest.options import LoadTestError
from tests.conftest import MakeUser
from tests.live_server import LiveServer, live_server
from tests.test_cli import free_port


def connections_to(server: LiveServer) -> int:
    """This process's open TCP connections to `server`."""
    port = int(server.url.rsplit(":", 1)[1])
    return len([conn for conn in psutil.Process().net_connections(kind="tcp")
                if conn.raddr and conn.raddr.port == port
                and conn.status == psutil.CONN_ESTABLISHED])


async def test_answers_carry_the_status_the_json_and_the_contracts_error(
    live: LiveServer, make_user: MakeUser
) -> None:
    user = await make_user()
    async with Deployment((live.url + "/",), connections=2) as deployment:
        healthy = await deployment.call("GET", "/healthz")
        assert healthy.status == 200 and healthy.body["status"] == "ok"
        unread = await deployment.call("GET", "/api/unread", token=user.token)
        assert unread.status == 200 and unread.body["count"] == 0
        refused = await deployment.call("GET", "/api/unread")
        assert refused.status == 401
        assert refused.problem.startswith("401 ") and len(refused.problem) > 4
        bad = await deployment.call("POST", "/api/messages", token=user.token, json={"to": 7})
        assert bad.status == 400 and "to" in bad.problem


async def test_a_refusal_with_retry_after_is_read(
    live: LiveServer, make_user: MakeUser, settings: Settings
) -> None:
    """Logins past the failures allowed are refused with 429 and the seconds to wait."""
    user = await make_user()
    async with Deployment((live.url,), connections=1) as deployment:
        for _ in range(settings.login_max_failures + 1):
            answer = await deployment.call("POST", "/api/auth/login", json={
                "username": user.user.username, "password": "not the password",
            })
    assert answer.status == 429
    assert answer.retry_after is not None and answer.retry_after > 0


async def test_connections_are_kept_and_never_more_than_asked(settings: Settings) -> None:
    with live_server(settings) as server:  # of its own: no other client's connections to it
        async with Deployment((server.url,), connections=2) as deployment:
            for _ in range(20):
                assert (await deployment.call("GET", "/healthz")).status == 200
            assert connections_to(server) == 1, "one request at a time, one connection"
            answers = await asyncio.gather(
                *(deployment.call("GET", "/healthz") for _ in range(30))
            )
            assert {answer.status for answer in answers} == {200}
            assert 1 <= connections_to(server) <= 2
        await asyncio.sleep(0.1)
        assert connections_to(server) == 0, "the connections close with the deployment"


async def test_a_connection_the_server_closed_while_idle_is_replaced(settings: Settings) -> None:
    with live_server(settings, timeout_keep_alive=1) as server:
        async with Deployment((server.url,), connections=1) as deployment:
            assert (await deployment.call("GET", "/healthz")).status == 200
            await asyncio.sleep(2)  # uvicorn closes the idle connection after 1 s
            assert (await deployment.call("GET", "/healthz")).status == 200


async def test_a_node_that_refuses_connections_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with Deployment((url,), connections=1) as deployment:
        with pytest.raises(TransportError, match=r"^ConnectError"):
            await deployment.call("GET", "/healthz")
        with pytest.raises(LoadTestError, match=f"GET {url}/api/auth/login: ConnectError"):
            await deployment.setup_call("GET", "/api/auth/login")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


async def test_an_answer_that_never_comes_times_out(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "ANSWER_TIMEOUT", 0.3)
    async with Deployment((silent_server,), connections=1) as deployment:
        with pytest.raises(TransportError, match=r"^ReadTimeout$"):
            await deployment.call("POST", "/api/messages", json={})
