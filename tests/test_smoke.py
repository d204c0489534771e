"""The first path through the product: log in, send, read, close."""

from __future__ import annotations

import httpx

from tests.conftest import MakeUser


async def test_a_message_goes_from_sender_to_recipient(make_user: MakeUser) -> None:
    """A sent message appears unread in the recipient's inbox and is read after Close."""
    alice = await make_user()
    bob = await make_user()
    sent = await alice.http.post(
        "/api/messages",
        json={"to": [{"kind": "user", "id": bob.id}], "subject": "hi", "body": "the body"},
    )
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    inbox = (await bob.http.get("/api/messages")).json()["messages"]
    assert [m["id"] for m in inbox] == [message_id]
    assert inbox[0]["subject"] == "hi" and inbox[0]["read_at"] is None
    assert (await bob.http.get("/api/unread")).json()["count"] == 1
    read = await bob.http.post(f"/api/messages/{message_id}/read")
    assert read.status_code == 200
    assert (await bob.http.get("/api/unread")).json()["count"] == 0


async def test_health_answers_without_login(client: httpx.AsyncClient) -> None:
    """/healthz and /readyz answer 200 when the database is up."""
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] is True
