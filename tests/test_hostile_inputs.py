"""Hostile input beside the text fields: nesting and numbers in every JSON body, query numbers,
directory queries, idempotency keys, cursors, upload names and login names.

Every refusal is a 400 in the contract's shape that echoes nothing and writes nothing; what is
accepted keeps its exact value.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import asyncpg
import httpx
import pytest

from realtime import codec
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.hostile_support import UNKNOWN_ID, assert_error, assert_not_echoed
from tests.test_authz_matrix import DOCUMENT, ROWS, Row
from tests.test_malformed import snapshot
from tests.vault_support import new_entry

JSON = {"Content-Type": "application/json"}
BODY_ROWS = [row for row in ROWS if row.has_body]


def deep_bodies(row: Row) -> dict[str, bytes]:
    """Bodies no parser should dig through, numbers no field can hold, bytes that are no UTF-8."""
    first = next(iter(row.body()))
    return {
        "10,000 nested arrays": b"[" * 10_000 + b"]" * 10_000,
        "10,000 nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "100,000 unclosed arrays": b"[" * 100_000,
        "a field nested 10,000 deep": b'{"%s": ' % first.encode() + b"[" * 10_000
        + b"]" * 10_000 + b"}",
        "a 5,000-digit number": b'{"%s": ' % first.encode() + b"9" * 5000 + b"}",
        "an exponent past any float": b'{"%s": 1e999999}' % first.encode(),
        "a negative exponent past any float": b'{"%s": -1e-999999}' % first.encode(),
        "NaN": b'{"%s": NaN}' % first.encode(),
        "invalid UTF-8": b'{"%s": "\xff\xfe"}' % first.encode(),
        "a surrogate in UTF-8": b'{"%s": "\xed\xa0\x80"}' % first.encode(),
        "an overlong NUL": b'{"%s": "\xc0\x80"}' % first.encode(),
        "UTF-16": f'{{"{first}": "x"}}'.encode("utf-16"),
    }


@pytest.fixture
async def alice(make_user: MakeUser) -> LoggedInUser:
    return await make_user()


async def test_deep_nesting_and_huge_numbers_in_every_body_are_400(
    alice: LoggedInUser, admin: LoggedInUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """Every operation taking a JSON body refuses deep nesting and huge numbers with a 400."""
    before = await snapshot(raw_db)
    wrong = {}
    for row in BODY_ROWS:
        http = client if not row.secured else admin.http if row.admin else alice.http
        url = row.url({}, dict.fromkeys(row.parameters, UNKNOWN_ID))
        for kind, body in deep_bodies(row).items():
            answer = await http.request(row.method, url, content=body, headers=JSON)
            if answer.status_code != 400:
                wrong[f"{row.label}: {kind}"] = (answer.status_code, answer.text[:100])
                continue
            assert_error(answer, 400, "invalid")
            assert "9999999999" not in answer.text
    assert wrong == {}
    assert await snapshot(raw_db) == before


@pytest.mark.parametrize(("path", "name"), [("/api/messages", "limit"),
                                            ("/api/password", "length")])
async def test_numbers_in_queries_that_are_not_plain_small_digits_are_400(
    alice: LoggedInUser, path: str, name: str
) -> None:
    """Huge, negative, fractional, hexadecimal, non-ASCII or padded numbers in a query are 400."""
    for value in ["99999999999999999999999", "1e3", "-1", "0x10", "\u0661\u0662", "+5",
                  " 5", "5 ", "\x00", "", "2.0", "\uff15"]:
        answer = await alice.http.get(path, params={name: value})
        error = assert_error(answer, 400, "invalid")
        assert set(error["fields"]) == {name}, (value, error)


async def test_hostile_directory_queries_never_fail(
    alice: LoggedInUser, admin: LoggedInUser, make_user: MakeUser
) -> None:
    """NUL or 101 characters are 400; broken UTF-8, SQL or RTL prefixes search, literally."""
    spoofer = await make_user(display_name="\u202eredaeh-\u200b")
    for q, field in (("a\x00b", "q"), ("x" * 101, "q"), ("\x00", "q")):
        error = assert_error(await alice.http.get("/api/directory", params={"q": q}), 400,
                             "invalid")
        assert set(error["fields"]) == {field}
    for raw in ("%ED%A0%80", "%C0%80", "%FF%FE", "%F4%90%80%80", "'%20or%201%3D1%20--",
                "%5C", "%25", "_", "\U0001f600" * 100, "\u0130" * 100, "\ufb03" * 100,
                "\u00df" * 100):
        answer = await alice.http.get(f"/api/directory?q={raw}")
        assert answer.status_code == 200, (raw, answer.text)
        assert answer.json()["results"] == [], raw
    found = await alice.http.get("/api/directory", params={"q": "\u202eredaeh"})
    assert [r["display_name"] for r in found.json()["results"]] == [spoofer.user.display_name]


async def send_keyed(
    person: LoggedInUser, to: LoggedInUser, key: str | bytes, subject: str
) -> httpx.Response:
    """Send with this key; bytes go as they are (beyond ASCII, as a client may send them)."""
    raw = key if isinstance(key, bytes) else key.encode("latin-1")
    return await person.http.post(
        "/api/messages", json={"to": [{"kind": "user", "id": to.id}], "subject": subject},
        headers={b"Idempotency-Key": raw})


async def test_hostile_idempotency_keys(
    alice: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Keys at the limit, with SQL, LIKE wildcards or Latin-1 work; control characters are 400."""
    bob = await make_user()
    for key in ("k" * 255, "'; delete from messages; --", "caf\u00e9".encode("latin-1"),
                "a_c", "a%"):
        first = await send_keyed(alice, bob, key, "first")
        again = await send_keyed(alice, bob, key, "first")
        assert first.status_code == 201 and again.json() == first.json(), (key, again.text)
    # A wildcard is no wildcard: these keys are new, so they send.
    for key in ("abc", "ab"):
        assert (await send_keyed(alice, bob, key, "another")).status_code == 201, key
    before = await snapshot(raw_db)
    for key in ("k\x01", "k\x1f", "k\x7f", "k\tk", "\x1b[31m"):
        answer = await send_keyed(alice, bob, key, "refused")
        error = assert_error(answer, 400, "invalid")
        assert set(error["fields"]) == {"Idempotency-Key"}
    assert await snapshot(raw_db) == before


async def test_an_idempotency_key_with_a_c1_control_is_400(
    alice: LoggedInUser, make_user: MakeUser
) -> None:
    """A key holding U+0085 or U+009B, control characters both, is refused like the others."""
    bob = await make_user()
    for key in (b"k\x85", b"k\x9b31m"):
        answer = await send_keyed(alice, bob, key, "refused")
        assert_error(answer, 400, "invalid")


def crafted(*parts: Any) -> str:
    return codec.encode_cursor(list(parts))


async def test_hostile_cursors_are_400_or_a_position(
    alice: LoggedInUser, make_user: MakeUser
) -> None:
    """Garbage and crafted cursors are 400 naming `before`; a well-formed one is only a place."""
    bob = await make_user()
    for n in range(3):
        await send_keyed(bob, alice, f"key-{n}", f"message {n}")
    page = (await alice.http.get("/api/messages", params={"limit": 1})).json()
    real = page["next"]
    garbage = ["%00", "\x00", "' or 1=1 --", "x" * 10_000, "null", "AAAA", real[:-1] + "!",
               real + real, crafted(), crafted(1, 2), crafted("x", "y"),
               crafted("2026-01-01T00:00:00", UNKNOWN_ID),
               crafted("9999-12-31T23:59:59-23:59", UNKNOWN_ID),
               crafted("0001-01-01T00:00:00+23:59", UNKNOWN_ID),
               crafted("2026-01-01T00:00:00Z", UNKNOWN_ID, "extra"),
               crafted(["2026-01-01T00:00:00Z"], UNKNOWN_ID),
               codec.encode_cursor([[[[[[[[[[]]]]]]]]]])]
    for cursor in garbage:
        answer = await alice.http.get("/api/messages", params={"before": cursor})
        error = assert_error(answer, 400, "invalid")
        assert set(error["fields"]) == {"before"}
        assert_not_echoed(answer, cursor)
    for cursor, count in ((crafted("0001-01-01T00:00:00Z", UNKNOWN_ID), 0),
                          (crafted("9999-12-31T23:59:59.999999Z", UNKNOWN_ID), 3)):
        answer = await alice.http.get("/api/messages", params={"before": cursor})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["messages"]) == count
    sent = await bob.http.get("/api/messages", params={"box": "sent", "limit": 1})
    theirs = await alice.http.get("/api/messages", params={"before": sent.json()["next"]})
    assert theirs.status_code == 200, "a cursor is only a place in the caller's own box"
    assert {m["sender"]["id"] for m in theirs.json()["messages"]} <= {bob.id}


HOSTILE_NAMES = {
    'quote".txt': 'quote".txt',
    "semi;colon=x.txt": "semi;colon=x.txt",
    "<img src=x onerror=alert(1)>.html": "<img src=x onerror=alert(1)>.html",
    "\u202etxt.exe": "txt.exe",
    "zero\u200bwidth\ufeff.txt": "zerowidth.txt",
    "\U0001f600" * 300 + ".txt": "\U0001f600" * 251 + ".txt",
    "caf\u00e9 r\u00e9sum\u00e9.pdf": "caf\u00e9 r\u00e9sum\u00e9.pdf",
    "%2F..%2F": "file",
}


async def test_hostile_upload_names_are_kept_clean_and_served_safely(alice: LoggedInUser) -> None:
    """Quotes, markup, format characters and long astral names: a clean name, a safe header."""
    for sent, kept in HOSTILE_NAMES.items():
        answer = await alice.http.post("/api/uploads", params={"name": unquote(sent)},
                                       content=b"x", headers={"Content-Type": "text/html"})
        assert answer.status_code == 201, (sent, answer.text)
        assert answer.json()["name"] == kept, sent
        assert answer.json()["content_type"] == "application/octet-stream"
        entry = await new_entry(alice, kind="file", title="t",
                                upload_id=answer.json()["upload_id"])
        download = await alice.http.get(f"/api/vault/entries/{entry['id']}/file")
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["x-content-type-options"] == "nosniff"
        disposition = download.headers["content-disposition"]
        ascii_part, _, encoded = disposition.partition("; filename*=UTF-8''")
        assert ascii_part.startswith('attachment; filename="') and ascii_part.count('"') == 2
        assert disposition.isascii() and unquote(encoded) == kept, disposition


async def test_hostile_login_names_are_400_or_the_same_401(client: httpx.AsyncClient) -> None:
    """Lone surrogates in a login are 400; controls, markup and SQL are just a wrong pair."""
    for body in ({"username": "\ud800", "password": "x"}, {"username": "u", "password": "\udc00"}):
        answer = await client.post("/api/auth/login", content=json.dumps(body).encode(),
                                   headers=JSON)
        assert_error(answer, 400, "invalid")
    answers = set()
    for username in ("a\x1bb", "<script>", "' or '1'='1", "admin'--", "%", "_", unique_name()):
        answer = await client.post("/api/auth/login",
                                   json={"username": username, "password": "wrong password"})
        assert_error(answer, 401, "unauthenticated")
        answers.add(answer.content)
    assert len(answers) == 1


QUERY_VALUES = ["%00", "%ED%A0%80", "%FF", "%C0%80", "x" * 10_000, "-1", "9" * 400,
                "%E2%80%AE", "%25%5F", "'%20or%201%3D1--", "%0D%0ASet-Cookie:%20a=b",
                "\U0001f600", "[]", "{}", "true", "null"]


def query_parameters() -> list[tuple[Row, str]]:
    """Every query parameter of every operation in the document."""
    found = []
    for row in ROWS:
        item = DOCUMENT["paths"][row.path][row.method.lower()]
        found += [(row, p["name"]) for p in item.get("parameters", []) if p["in"] == "query"]
    return found


async def test_hostile_values_in_every_query_parameter_are_never_a_500(
    alice: LoggedInUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Every query parameter given NUL, broken UTF-8 or huge values gets a 4xx, never a 500."""
    parameters = query_parameters()
    assert parameters, "the document lists query parameters"
    for row, name in parameters:
        http = admin.http if row.admin else alice.http
        url = row.url({}, dict.fromkeys(row.parameters, UNKNOWN_ID))
        for value in QUERY_VALUES:
            answer = await http.request(row.method, f"{url}?{name}={value}", content=b"x")
            assert answer.status_code < 500, (row.label, name, value[:20], answer.text)
            assert "set-cookie" not in answer.headers, (row.label, name)
            if answer.status_code >= 400:
                assert_error(answer, answer.status_code, answer.json()["error"]["code"])


MARKER = "<b>an-echoed-value</b>"


async def test_a_wrong_kind_is_refused_without_echoing_it(alice: LoggedInUser) -> None:
    """A recipient's or an entry's `kind` that is none of the allowed ones is not repeated back."""
    for path, body, field in (
        ("/api/messages", {"to": [{"kind": MARKER, "id": alice.id}], "subject": "s"}, "to.0.kind"),
        ("/api/vault/entries", {"kind": MARKER, "title": "t"}, "kind"),
    ):
        answer = await alice.http.post(path, json=body)
        assert set(assert_error(answer, 400, "invalid")["fields"]) == {field}
        assert_not_echoed(answer, MARKER)


async def test_an_unknown_attachment_kind_is_refused_without_echoing_it(
    alice: LoggedInUser
) -> None:
    """An attachment of an unknown kind is a 400 naming `attachments.0`, without the kind."""
    answer = await alice.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": alice.id}], "subject": "s",
        "attachments": [{"kind": MARKER}]})
    assert set(assert_error(answer, 400, "invalid")["fields"]) == {"attachments.0"}
    assert_not_echoed(answer, MARKER)


async def test_absurd_expiry_times_are_400_naming_expires_at(
    alice: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Times past year 9999 once in UTC, before year 1, impossible dates or seconds: 400."""
    bob = await make_user()
    before = await snapshot(raw_db)
    for moment in ("9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z",
                   "0001-01-01T00:00:00+23:59", "2027-02-30T00:00:00Z", "2027-12-31T23:59:60Z",
                   "2027-12-31T24:00:00Z", "2027-00-01T00:00:00Z", "0000-01-01T00:00:00Z",
                   "2027-01-01T00:00:00+24:00", "+12027-01-01T00:00:00Z", "2027-01-01T00:00Z",
                   "\uff12027-01-01T00:00:00Z", "2027-01-01T00:00:00.Z", ""):
        answer = await alice.http.post("/api/messages", json={
            "to": [{"kind": "user", "id": bob.id}], "subject": "s", "expires_at": moment})
        error = assert_error(answer, 400, "invalid")
        assert set(error["fields"]) == {"expires_at"}, (moment, error)
    assert await snapshot(raw_db) == before
    long_fraction = "2099-01-01T00:00:00." + "9" * 5000 + "Z"
    answer = await alice.http.post("/api/messages", json={
        "to": [{"kind": "user", "id": bob.id}], "subject": "s", "expires_at": long_fraction})
    assert answer.status_code == 201, answer.text
    kept = await bob.http.get(f"/api/messages/{answer.json()['id']}")
    assert kept.json()["expires_at"] == "2099-01-01T00:00:00.999999Z"
