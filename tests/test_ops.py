"""Operations: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import socket

import httpx

from realtime.db import Database, create_pool
from tests.conftest import MakeUser


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_healthz_answers_ok_without_login(client: httpx.AsyncClient) -> None:
    """/healthz says the process is up, to anyone."""
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


async def test_readyz_reports_the_database(client: httpx.AsyncClient) -> None:
    """/readyz is 200 with the database check passing while PostgreSQL answers."""
    answer = await client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "checks": {"database": True, "broker": True}}


async def test_a_database_that_does_not_answer_is_not_ready() -> None:
    """The readiness probe of the database fails, within its timeout, when nothing listens."""
    url = f"postgresql://nobody@127.0.0.1:{_closed_port()}/none"
    pool = await create_pool(url, size=2, min_size=0)
    try:
        assert await Database(pool, url).ping() is False
    finally:
        await pool.close()


async def test_metrics_count_messages_and_requests(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """After a send, /metrics shows one more message sent and the request counted by route."""

    def value(text: str, prefix: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    before = (await client.get("/metrics")).text
    alice, bob = await make_user(), await make_user()
    sent = await alice.http.post(
        "/api/messages", json={"to": [{"kind": "user", "id": bob.id}], "subject": "counted"}
    )
    assert sent.status_code == 201
    after = await client.get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert value(text, "realtime_messages_sent_total") == value(
        before, "realtime_messages_sent_total"
    ) + 1
    assert value(text, "realtime_events_appended_total") >= value(
        before, "realtime_events_appended_total"
    ) + 1
    route = 'realtime_http_requests_total{method="POST",route="/api/messages",status="201"}'
    assert value(text, route) >= 1


async def test_the_openapi_document_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    """/api/openapi.json is an OpenAPI 3.1 document naming every endpoint of the contract."""
    answer = await client.get("/api/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    expected = {
        ("post", "/api/auth/login"), ("post", "/api/auth/logout"), ("get", "/api/me"),
        ("get", "/api/directory"), ("get", "/api/password"), ("post", "/api/messages"),
        ("get", "/api/messages"), ("get", "/api/messages/{id}"),
        ("post", "/api/messages/{id}/read"), ("delete", "/api/messages/{id}"),
        ("get", "/api/unread"), ("get", "/api/admin/users"), ("post", "/api/admin/users"),
        ("patch", "/api/admin/users/{id}"), ("get", "/api/admin/groups"),
        ("post", "/api/admin/groups"), ("put", "/api/admin/groups/{id}/members"),
        ("delete", "/api/admin/groups/{id}"), ("get", "/healthz"), ("get", "/readyz"),
        ("get", "/metrics"), ("get", "/api/openapi.json"),
    }
    listed = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert expected <= listed


async def test_responses_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    """Every answer says nosniff, no-referrer, no framing and no caching."""
    answer = await client.get("/healthz")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
