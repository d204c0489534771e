"""The audit trail: each action's record, never its content; the chain that shows an edit, a
removal or a reordering; pruning, export, the log; the administrators' view; refusals kept
within their budget."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.audit import REFUSALS_PER_MINUTE, Chainer, export_since, verify
from realtime.events import EventSink
from realtime.expiry import Expirer, purge_once
from tests.conftest import LoggedInUser, MakeUser
from tests.messages_support import send, user

SUBJECT, BODY = "quarterly numbers", "the vault code is plum-harbour"


async def records(admin: LoggedInUser, **query: str) -> list[dict[str, Any]]:
    answer = await admin.http.get("/api/admin/audit", params=query)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["records"]
    return found


async def swap_positions(raw_db: asyncpg.Connection, one: int, other: int) -> None:
    """Swap two records' places in the chain, as someone reordering the trail would."""
    async with raw_db.transaction():
        await raw_db.execute("update audit_records set position = -1 where position = $1", one)
        await raw_db.execute(
            "update audit_records set position = $1 where position = $2", one, other)
        await raw_db.execute("update audit_records set position = $1 where position = -1", other)


def chainer(services: Services, retention: timedelta = timedelta(days=365)) -> Chainer:
    return Chainer(services.db, retention=retention)


async def test_a_send_is_recorded_with_its_sender_message_and_count_but_not_its_content(
    admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    sent = await send(alice, [user(bob), user(carol)], subject=SUBJECT, body=BODY)
    assert sent.status_code == 201, sent.text
    one = await send(alice, [user(bob)], subject=SUBJECT, body=BODY)  # written in a batch
    [second, first] = await records(admin, action="message.sent", user=alice.id)
    assert first["actor"] == {"id": alice.id, "username": alice.username}
    assert first["target"] == {"kind": "message", "id": sent.json()["id"]}
    assert (first["outcome"], first["detail"]) == ("ok", {"recipients": 2})
    assert second["target"]["id"] == one.json()["id"] and second["detail"] == {"recipients": 1}
    assert first["address"] and second["address"]
    rows = await raw_db.fetch("select * from audit_records")
    text = " ".join(str(dict(row)) for row in rows)
    for secret in (SUBJECT, BODY, "plum-harbour", bob.user.display_name, carol.username):
        assert secret not in text


async def test_logins_failed_and_successful_and_logouts_are_recorded(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    wrong = await bob.http.post("/api/auth/login",
                                json={"username": bob.username, "password": "not his password"})
    assert wrong.status_code == 401
    nobody = await bob.http.post("/api/auth/login",
                                 json={"username": "nobody-here", "password": "whatever it is"})
    assert nobody.status_code == 401
    logins = await records(admin, action="login")
    failed = [r for r in logins if r["outcome"] == "failed"]
    assert [r["actor"] for r in failed[:2]] == [None, {"id": bob.id, "username": bob.username}]
    assert any(r["outcome"] == "ok" and r["actor"]["id"] == bob.id for r in logins)
    assert "nobody-here" not in json.dumps(logins) and "not his password" not in json.dumps(logins)
    assert (await bob.http.post("/api/auth/logout")).status_code == 204
    [logout] = await records(admin, action="logout")
    assert logout["actor"]["id"] == bob.id and logout["target"]["kind"] == "session"


async def test_administrative_changes_are_recorded_without_secrets(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    changed = await admin.http.patch(f"/api/admin/users/{bob.id}",
                                     json={"password": "a brand new secret", "can_attach": False})
    assert changed.status_code == 200
    settings = await admin.http.patch("/api/admin/settings", json={"share_links": False})
    assert settings.status_code == 200
    group = await admin.http.post("/api/admin/groups", json={"name": "ops", "member_ids": [bob.id]})
    assert group.status_code == 201
    posted = await admin.http.post("/api/admin/system-messages",
                                   json={"subject": "maintenance at noon", "mode": "reminder"})
    assert posted.status_code == 201
    found = {r["action"]: r for r in await records(admin, user=admin.id)}
    assert found["user.changed"]["target"] == {"kind": "user", "id": bob.id}
    assert found["user.changed"]["detail"] == {"password_hash": "changed", "can_attach": False}
    assert found["settings.changed"]["detail"] == {"share_links": False}
    assert found["group.created"]["detail"] == {"members": 1}
    assert found["system_message.posted"]["target"]["id"] == posted.json()["id"]
    text = json.dumps(list(found.values()))
    assert "a brand new secret" not in text and "maintenance" not in text and "ops" not in text


async def test_the_chain_verifies_then_names_an_edit_a_removal_and_a_reordering(
    services: Services, admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    bob = await make_user()
    for n in range(6):
        assert (await send(admin, [user(bob)], subject=f"n{n}")).status_code == 201
    assert await chainer(services).chain_once() >= 6
    verified = await verify(services.db)
    assert verified.broken is None and verified.checked >= 6
    chained = await raw_db.fetch("select id, position from audit_records order by position")
    positions = [row["position"] for row in chained]
    assert positions == list(range(1, len(positions) + 1))

    third = chained[2]
    await raw_db.execute("update audit_records set outcome = 'failed' where id = $1", third["id"])
    broken = (await verify(services.db)).broken
    assert broken is not None and (broken.position, broken.reason) == (3, "edited")
    await raw_db.execute("update audit_records set outcome = 'ok' where id = $1", third["id"])
    assert (await verify(services.db)).broken is None

    await swap_positions(raw_db, 4, 5)
    broken = (await verify(services.db)).broken
    assert broken is not None and (broken.position, broken.reason) == (4, "out of order")
    await swap_positions(raw_db, 4, 5)
    await raw_db.execute("delete from audit_records where position = 2")
    broken = (await verify(services.db)).broken
    assert broken is not None and (broken.position, broken.reason) == (2, "missing: removed")


async def test_removing_the_newest_records_breaks_the_chain_at_its_head(
    services: Services, admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    bob = await make_user()
    assert (await send(admin, [user(bob)])).status_code == 201
    await chainer(services).chain_once()
    last = await raw_db.fetchval("select max(position) from audit_records")
    await raw_db.execute("delete from audit_records where position = $1", last)
    broken = (await verify(services.db)).broken
    assert broken is not None and broken.reason == "missing: removed at the end"


async def test_pruning_keeps_the_rest_verifiable(
    services: Services, admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    bob = await make_user()
    for n in range(4):
        assert (await send(admin, [user(bob)], subject=f"n{n}")).status_code == 201
    await chainer(services).chain_once()
    total = await raw_db.fetchval("select count(*) from audit_records")
    await raw_db.execute(
        "update audit_records set at = at - interval '400 days' where position <= 3"
    )
    # The records' times are part of their hashes: re-chain those three as they are now.
    await raw_db.execute(
        "update audit_records set position = null, prev_hash = null, hash = null")
    await raw_db.execute(
        "update audit_chain set last_position = 0, last_hash = '', first_position = 1,"
        " first_prev_hash = ''")
    await chainer(services).chain_once()
    assert (await verify(services.db)).broken is None
    assert await chainer(services, retention=timedelta(days=365)).prune_once() == 3
    assert await raw_db.fetchval("select count(*) from audit_records") == total - 3
    verified = await verify(services.db)
    assert verified.broken is None and verified.checked == total - 3


async def test_verify_reads_one_snapshot_while_a_node_chains(services: Services) -> None:
    """A running node chains records while `realtime audit verify` walks the chain: the walk
    sees the chain as it was at one instant, never a head that ran ahead of what it read."""
    audit = services.audit
    await audit.record(*(audit.new("login", actor_id=uuid.uuid4()) for _ in range(3000)))
    await chainer(services).chain_once()
    done = asyncio.Event()

    async def keep_chaining() -> int:
        chained = 0
        while not done.is_set():
            await audit.record(*(audit.new("login", actor_id=uuid.uuid4()) for _ in range(20)))
            chained += await chainer(services).chain_once()
            await asyncio.sleep(0)
        return chained

    running = asyncio.create_task(keep_chaining())
    try:
        results = [await verify(services.db) for _ in range(5)]
    finally:
        done.set()
        chained_meanwhile = await running
    assert chained_meanwhile > 0
    assert [result.broken for result in results] == [None] * 5
    assert all(result.checked >= 3000 for result in results)


async def test_export_writes_json_lines_since_a_time(
    services: Services, admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    before = datetime.now(UTC)
    assert (await send(admin, [user(bob)], subject=SUBJECT)).status_code == 201
    await chainer(services).chain_once()
    lines = [json.loads(line) async for line in export_since(services.db, before)]
    assert lines and all(datetime.fromisoformat(r["at"]) >= before for r in lines)
    assert {"message.sent"} <= {r["action"] for r in lines}
    assert all(r["hash"] and r["prev_hash"] is not None for r in lines)
    assert [r["position"] for r in lines] == sorted(r["position"] for r in lines)
    late = [line async for line in export_since(services.db, datetime.now(UTC) + timedelta(1))]
    assert late == []


async def test_the_log_gets_each_record_once_as_a_json_line_on_standard_output(
    services: Services, admin: LoggedInUser, make_user: MakeUser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bob = await make_user()
    assert (await send(admin, [user(bob)], subject=SUBJECT)).status_code == 201
    logging_chainer = Chainer(services.db, retention=timedelta(days=1), log_records=True)
    await logging_chainer.chain_once()
    await logging_chainer.chain_once()  # nothing new: nothing written twice
    out = capsys.readouterr().out
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    sends = [r for r in logged if r["action"] == "message.sent"]
    assert len(sends) == 1 and sends[0]["hash"] and sends[0]["actor"]["id"] == admin.id
    assert SUBJECT not in out


async def test_the_view_filters_by_time_and_pages(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    middle = None
    for n in range(5):
        assert (await send(admin, [user(bob)], subject=f"n{n}")).status_code == 201
        if n == 2:
            middle = datetime.now(UTC).isoformat()
    assert middle is not None
    sent = await records(admin, action="message.sent")
    assert len(sent) == 5
    assert len(await records(admin, action="message.sent", since=middle)) == 2
    assert len(await records(admin, action="message.sent", until=middle)) == 3
    first = await admin.http.get("/api/admin/audit",
                                 params={"action": "message.sent", "limit": "2"})
    page = first.json()
    assert [r["id"] for r in page["records"]] == [r["id"] for r in sent[:2]]
    rest = await records(admin, action="message.sent", after=page["next"])
    assert [r["id"] for r in rest] == [r["id"] for r in sent[2:]]


@pytest.mark.parametrize(("query", "field"), [
    ({"since": "yesterday"}, "since"), ({"user": "bob"}, "user"), ({"after": "nonsense"}, "after"),
    ({"action": "login\u0000"}, "action"), ({"action": "x" * 65}, "action"),
    ({"user": ""}, "user"), ({"since": ""}, "since"),
])
async def test_a_bad_filter_is_a_field_error(
    admin: LoggedInUser, query: dict[str, str], field: str
) -> None:
    answer = await admin.http.get("/api/admin/audit", params=query)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["fields"]


async def test_refusals_are_recorded_within_their_budget_and_say_what_was_dropped(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """Mallory probes Alice's message: each 404 is recorded up to the budget, then dropped;
    Carol's refusal meanwhile is still recorded."""
    alice, bob, mallory, carol = [await make_user() for _ in range(4)]
    sent = await send(alice, [user(bob)])
    message_id = sent.json()["id"]
    for _ in range(REFUSALS_PER_MINUTE + 5):
        probe = await mallory.http.get(f"/api/messages/{message_id}")
        assert probe.status_code == 404
    assert (await carol.http.get(f"/api/messages/{message_id}")).status_code == 404
    refused = await records(admin, action="access.refused", user=mallory.id)
    assert len(refused) == REFUSALS_PER_MINUTE
    assert refused[0]["target"] == {"kind": "id", "id": message_id}
    assert refused[0]["detail"] == {"status": 404, "route": "/api/messages/{id}"}
    assert len(await records(admin, action="access.refused", user=carol.id)) == 1


async def test_reads_deletes_recalls_attachments_saves_links_and_expiries_are_recorded(
    services: Services, admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    alice, bob = await make_user(), await make_user()
    credential = {"kind": "credential", "title": "wifi", "username": "guest",
                  "password": "the wifi secret"}
    sent = (await send(alice, [user(bob)], attachments=[credential])).json()["id"]
    assert (await bob.http.post(f"/api/messages/{sent}/read")).status_code == 200
    detail = (await bob.http.get(f"/api/messages/{sent}")).json()
    attachment = detail["attachments"][0]["id"]
    opened = await bob.http.get(f"/api/messages/{sent}/attachments/{attachment}")
    assert opened.status_code == 200
    saved = await bob.http.post(f"/api/messages/{sent}/save", json={"folder_id": None})
    assert saved.status_code in (200, 201), saved.text
    assert (await bob.http.delete(f"/api/messages/{sent}")).status_code in (200, 204)
    recalled = (await send(alice, [user(bob)])).json()["id"]
    assert (await alice.http.delete(f"/api/messages/{recalled}")).status_code in (200, 204)
    link = await alice.http.post("/api/links", json={
        "subject": "s", "body": "b", "expires_at": (datetime.now(UTC) + timedelta(hours=1))
        .isoformat()})
    assert link.status_code == 201
    token = link.json()["url"].split("#", 1)[1]
    assert (await bob.http.post("/api/links/open", json={"token": token})).status_code == 200
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = (await send(alice, [user(bob)], expires_at=soon)).json()["id"]
    await raw_db.execute("update messages set expires_at = now() - interval '1 second'"
                         " where id = $1::uuid", expiring)
    await raw_db.execute("update message_recipients set expires_at = now() - interval"
                         " '1 second' where message_id = $1::uuid", expiring)
    await Expirer(services.db, services.settings, EventSink(), services.audit).expire_due()

    found = await records(admin)
    by_action = {(r["action"], (r["target"] or {}).get("id")): r for r in found}
    assert by_action[("message.read", sent)]["actor"]["id"] == bob.id
    assert by_action[("credential.revealed", attachment)]["detail"] == {
        "message": sent, "kind": "credential"}
    assert by_action[("attachments.saved", sent)]["detail"] == {"entries": 1, "folders": 0}
    assert by_action[("message.deleted", sent)]["actor"]["id"] == bob.id
    assert by_action[("message.recalled", recalled)]["actor"]["id"] == alice.id
    assert by_action[("link.created", link.json()["id"])]["actor"]["id"] == alice.id
    assert by_action[("link.viewed", link.json()["id"])]["actor"] is None
    assert by_action[("message.expired", expiring)]["actor"] is None
    assert "the wifi secret" not in json.dumps(found) and token not in json.dumps(found)


async def test_a_session_ended_by_its_lifetime_is_recorded_by_the_purge(
    services: Services, admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    bob = await make_user()
    await raw_db.execute("update sessions set expires_at = now() - interval '1 second'"
                         " where user_id = $1", bob.user.id)
    purged = await purge_once(services.db, services.settings)
    assert purged.sessions >= 1
    [ended] = await records(admin, action="session.ended", user=bob.id)
    assert ended["detail"] == {"reason": "lifetime"} and ended["target"]["kind"] == "session"
    assert ended["address"] is None
