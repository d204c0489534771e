"""The To field's directory search and the composer's password generator."""

from __future__ import annotations

import itertools
import math
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from functools import cache

import httpx
import pytest
from starlette.applications import Starlette

from realtime import crypto
from realtime.api.http import Services
from realtime.models import User
from realtime.store import sessions as session_store
from realtime.store import users as user_store
from tests.conftest import BASE_URL, unique_name

AddUser = Callable[..., Awaitable[User]]


@cache
def _one_password_hash() -> str:
    return crypto.hash_password("directory entries never log in")


@pytest.fixture
def add_user(services: Services) -> AddUser:
    """Store a user who never logs in, without paying Argon2 for each."""

    async def add(username: str | None = None, display_name: str | None = None) -> User:
        username = username or unique_name()
        async with services.db.connection() as conn:
            return await user_store.insert_user(
                conn,
                user_id=uuid.uuid4(),
                username=username,
                display_name=display_name or username,
                password_hash=_one_password_hash(),
                is_admin=False,
                can_send=True,
                can_attach=True,
            )

    return add


@pytest.fixture
async def caller(
    app: Starlette, services: Services, add_user: AddUser
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a bearer token of a fresh user, its session opened without Argon2."""
    user = await add_user()
    token = crypto.new_token()
    async with services.db.connection() as conn:
        await session_store.insert_session(
            conn,
            session_id=uuid.uuid4(),
            token_hash=crypto.token_digest(token),
            user_id=user.id,
            password_hash=_one_password_hash(),
            lifetime=timedelta(hours=1),
        )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        assert (await http.get("/api/me")).status_code == 200
        yield http


def tag() -> str:
    """A prefix no other name in the test shares: letters only, so that case can change."""
    return "t" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:9])


async def search(http: httpx.AsyncClient, q: str) -> list[dict[str, object]]:
    answer = await http.get("/api/directory", params={"q": q})
    assert answer.status_code == 200, answer.text
    results: list[dict[str, object]] = answer.json()["results"]
    return results


def by_id(result: dict[str, object]) -> str:
    return str(result["id"])


def ids(results: Sequence[dict[str, object]]) -> set[object]:
    return {result["id"] for result in results}


# The directory


async def test_directory_and_generator_need_a_login(client: httpx.AsyncClient) -> None:
    """Without credentials the directory and the password generator are 401."""
    for path in ("/api/directory?q=a", "/api/password"):
        answer = await client.get(path)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthenticated"


async def test_a_prefix_finds_usernames_display_names_and_groups_in_any_case(
    caller: httpx.AsyncClient, add_user: AddUser, services: Services
) -> None:
    """The prefix matches the start of a username, a display name or a group name, any case."""
    prefix = tag()
    by_username = await add_user(f"{prefix}-ann", "Ann Onymous")
    by_display = await add_user(unique_name("bob"), f"{prefix.upper()} Bob")
    group = await services.groups.create_group(f"{prefix.capitalize()} Team", [by_display.id])
    await add_user(unique_name("carol"), f"Carol {prefix}")
    await services.groups.create_group(f"Team {prefix}", [])
    expected: list[dict[str, object]] = [
        {"kind": "user", "id": str(by_username.id), "username": f"{prefix}-ann",
         "display_name": "Ann Onymous"},
        {"kind": "user", "id": str(by_display.id), "username": by_display.username,
         "display_name": f"{prefix.upper()} Bob"},
        {"kind": "group", "id": str(group.id), "name": f"{prefix.capitalize()} Team",
         "members": 1},
    ]
    for q in (prefix, prefix.upper(), prefix[:4].capitalize()):
        results = await search(caller, q)
        assert sorted(results, key=by_id) == sorted(expected, key=by_id), q
    assert await search(caller, prefix[1:]) == [], "the middle of a name is not a prefix"


async def test_disabled_users_never_appear(
    caller: httpx.AsyncClient, add_user: AddUser, services: Services
) -> None:
    """A disabled account is not suggested, whether by username, display name or an empty q."""
    prefix = tag()
    hidden = await add_user(f"{prefix}-gone", f"{prefix} Gone")
    shown = await add_user(f"{prefix}-here")
    await services.accounts.update_user(hidden.id, {"disabled": True})
    assert ids(await search(caller, prefix)) == {str(shown.id)}
    assert str(hidden.id) not in ids(await search(caller, ""))
    assert await search(caller, f"{prefix}-g") == []


async def test_at_most_twenty_results(
    caller: httpx.AsyncClient, add_user: AddUser, services: Services
) -> None:
    """However many names match, the directory answers at most 20."""
    prefix = tag()
    users = [await add_user(f"{prefix}{i:02d}") for i in range(14)]
    groups = [await services.groups.create_group(f"{prefix}-g{i:02d}", []) for i in range(10)]
    results = await search(caller, prefix)
    assert len(results) == 20
    assert ids(results) <= {str(x.id) for x in users} | {str(g.id) for g in groups}
    assert len(ids(results)) == 20


async def test_like_wildcards_in_q_are_literal(
    caller: httpx.AsyncClient, add_user: AddUser, services: Services
) -> None:
    """`%`, `_` and `\\` in q match only themselves, never any character."""
    prefix = tag()
    percent = await add_user(display_name=f"{prefix}%off")
    underscore = await add_user(f"{prefix}_x")
    backslash = await add_user(display_name=f"{prefix}\\slash")
    plain = await add_user(f"{prefix}ab")
    group = await services.groups.create_group(f"{prefix}_team", [])
    assert len(await search(caller, prefix)) == 5
    assert ids(await search(caller, f"{prefix}%")) == {str(percent.id)}
    assert ids(await search(caller, f"{prefix}_")) == {str(underscore.id), str(group.id)}
    assert ids(await search(caller, f"{prefix}\\")) == {str(backslash.id)}
    assert ids(await search(caller, f"{prefix}a")) == {str(plain.id)}
    assert await search(caller, "%") == [] and await search(caller, "_") == []


async def test_groups_show_how_many_enabled_members_they_hold(
    caller: httpx.AsyncClient, add_user: AddUser, services: Services
) -> None:
    """A group's `members` counts its enabled members."""
    prefix = tag()
    members = [await add_user() for _ in range(3)]
    await services.groups.create_group(f"{prefix} full", [m.id for m in members])
    await services.groups.create_group(f"{prefix} empty", [])
    await services.accounts.update_user(members[0].id, {"disabled": True})
    counts = {r["name"]: r["members"] for r in await search(caller, prefix)}
    assert counts == {f"{prefix} full": 2, f"{prefix} empty": 0}


async def test_a_bad_q_is_refused(caller: httpx.AsyncClient) -> None:
    """A q over 100 characters or holding NUL is 400; 100 characters is fine."""
    for q in ("q" * 101, "a\x00b"):
        answer = await caller.get("/api/directory", params={"q": q})
        assert answer.status_code == 400, answer.text
        assert "q" in answer.json()["error"]["fields"]
    assert (await caller.get("/api/directory", params={"q": "q" * 100})).status_code == 200


# The password generator


ALPHABETS = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
    "symbols": crypto.CHARACTER_CLASSES["symbols"],
}
ALL_CLASSES = tuple(ALPHABETS)


def count_with_every_class(length: int, sizes: Sequence[int]) -> int:
    """How many strings of `length` over disjoint classes of `sizes` use every class.

    Inclusion and exclusion: subtract the strings that miss some set of classes.
    """
    total = sum(sizes)
    return sum(
        (-1) ** len(missed) * (total - sum(missed)) ** length
        for k in range(len(sizes) + 1)
        for missed in itertools.combinations(sizes, k)
    )


def count_by_brute_force(length: int, classes: Sequence[str]) -> int:
    pool = "".join(classes)
    return sum(
        all(any(ch in cls for ch in candidate) for cls in classes)
        for candidate in itertools.product(pool, repeat=length)
    )


def alphabets(chosen: Sequence[str], avoid_ambiguous: bool) -> list[str]:
    return [
        "".join(ch for ch in ALPHABETS[name] if not (avoid_ambiguous and ch in crypto.AMBIGUOUS))
        for name in chosen
    ]


def expected_entropy(length: int, chosen: Sequence[str], avoid_ambiguous: bool = False) -> float:
    sizes = [len(a) for a in alphabets(chosen, avoid_ambiguous)]
    return math.log2(count_with_every_class(length, sizes))


def params_for(length: int, chosen: Sequence[str], avoid_ambiguous: bool) -> dict[str, str]:
    params = {name: "1" if name in chosen else "0" for name in ALL_CLASSES}
    return {**params, "length": str(length), "avoid_ambiguous": "1" if avoid_ambiguous else "0"}


async def draw(http: httpx.AsyncClient, **params: str) -> dict[str, object]:
    answer = await http.get("/api/password", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    assert set(body) == {"password", "entropy_bits"}
    return body


def test_the_counting_formula_agrees_with_brute_force() -> None:
    """The test's own inclusion-exclusion count matches enumerating every small password."""
    for classes in (["ab", "c"], ["ab", "cde", "f"], ["a", "b", "c", "de"], ["xyz"]):
        for length in range(1, 6):
            assert count_with_every_class(length, [len(c) for c in classes]) == (
                count_by_brute_force(length, classes)
            ), (classes, length)


def test_the_character_classes_are_disjoint_and_without_repeats() -> None:
    """No character is in two classes or twice in one, so every draw is uniform."""
    every = "".join(ALPHABETS.values())
    assert len(set(every)) == len(every)
    assert {name: set(chars) for name, chars in crypto.CHARACTER_CLASSES.items()} == {
        name: set(chars) for name, chars in ALPHABETS.items()
    }


async def test_the_default_password_has_twenty_characters_of_every_class(
    caller: httpx.AsyncClient,
) -> None:
    """With no parameters the generator gives 20 characters holding all four classes."""
    body = await draw(caller)
    password = body["password"]
    assert isinstance(password, str) and len(password) == 20
    for chars in ALPHABETS.values():
        assert any(ch in chars for ch in password), password
    assert body["entropy_bits"] == pytest.approx(expected_entropy(20, ALL_CLASSES), abs=0.005)


CHOICES = [
    (8, ("lower", "upper", "digits", "symbols"), False),
    (8, ("lower", "digits"), False),
    (9, ("upper", "symbols"), True),
    (8, ("digits",), False),
    (12, ("lower", "upper", "digits", "symbols"), True),
]


async def test_every_draw_holds_every_chosen_class_and_nothing_else(
    caller: httpx.AsyncClient,
) -> None:
    """Across many draws each password has the length asked, every chosen class, no other."""
    for length, chosen, avoid in CHOICES:
        allowed = alphabets(chosen, avoid)
        pool = set("".join(allowed))
        for _ in range(60):
            password = str((await draw(caller, **params_for(length, chosen, avoid)))["password"])
            assert len(password) == length
            assert set(password) <= pool, (chosen, password)
            for chars in allowed:
                assert any(ch in chars for ch in password), (password, chars)


async def test_avoid_ambiguous_leaves_out_look_alikes(caller: httpx.AsyncClient) -> None:
    """With avoid_ambiguous no password holds a character such as l, 1, O or 0."""
    seen: set[str] = set()
    for _ in range(40):
        password = str((await draw(caller, length="128", avoid_ambiguous="1"))["password"])
        assert not set(password) & crypto.AMBIGUOUS, password
        seen |= set(password)
    assert {"l", "1", "O", "0", "|"} <= crypto.AMBIGUOUS
    assert len(seen) > 60, "the other characters still appear"


ENTROPY_CASES = [
    (20, ALL_CLASSES, False),
    (8, ALL_CLASSES, False),
    (128, ALL_CLASSES, True),
    (8, ("lower",), False),
    (10, ("digits", "symbols"), True),
    (16, ("lower", "upper", "digits"), True),
]


async def test_entropy_counts_the_passwords_that_hold_every_class(
    caller: httpx.AsyncClient,
) -> None:
    """entropy_bits is log2 of how many passwords of that length contain every chosen class."""
    for length, chosen, avoid in ENTROPY_CASES:
        body = await draw(caller, **params_for(length, chosen, avoid))
        assert body["entropy_bits"] == pytest.approx(
            expected_entropy(length, chosen, avoid), abs=0.005
        ), (length, chosen, avoid)
    assert expected_entropy(8, ("lower",)) == pytest.approx(8 * math.log2(26))


async def test_lengths_at_the_limits_are_accepted(caller: httpx.AsyncClient) -> None:
    """Lengths 8 and 128 give passwords of exactly that length."""
    for length in (8, 128):
        assert len(str((await draw(caller, length=str(length)))["password"])) == length


async def test_a_bad_length_is_refused(caller: httpx.AsyncClient) -> None:
    """A length outside 8 to 128, or not a whole number, is 400 naming length."""
    for length in ("7", "129", "0", "-1", "", "abc", "8.5", "²", "1" * 5000):
        answer = await caller.get("/api/password", params={"length": length})
        assert answer.status_code == 400, (length, answer.text)
        assert answer.json()["error"]["code"] == "invalid"
        assert "length" in answer.json()["error"]["fields"]


async def test_no_class_at_all_is_refused(caller: httpx.AsyncClient) -> None:
    """Turning every class off is 400."""
    answer = await caller.get(
        "/api/password", params={"lower": "0", "upper": "0", "digits": "0", "symbols": "false"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid"


async def test_a_bad_flag_value_is_refused(caller: httpx.AsyncClient) -> None:
    """A flag that is not 0, 1, true or false is 400 naming it."""
    for flag in ("lower", "upper", "digits", "symbols", "avoid_ambiguous"):
        for value in ("yes", "2", "", "on"):
            answer = await caller.get("/api/password", params={flag: value})
            assert answer.status_code == 400, (flag, value, answer.text)
            assert flag in answer.json()["error"]["fields"]


async def test_two_draws_differ(caller: httpx.AsyncClient) -> None:
    """Each draw is fresh: two passwords in a row are not the same."""
    first = (await draw(caller))["password"]
    second = (await draw(caller))["password"]
    assert first != second
