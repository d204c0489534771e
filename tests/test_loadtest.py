"""`realtime loadtest` against a real server: it counts what arrives, and catches what errs."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from realtime import cli, codec
from realtime.api.http import Services
from realtime.config import Settings
from realtime.loadtest.stats import percentile
from realtime.models import UserSearch
from tests.conftest import unique_name
from tests.live_server import LiveServer, live_server
from tests.loadtest_support import (
    Admin,
    FrameFault,
    NoWebsockets,
    load_test,
    load_test_command,
    make_admin,
)

CLOSED_PORT_URL = "http://127.0.0.1:9"
CONTRACT_KEYS = {"connections_opened", "connections_failed", "sent", "send_failed", "expected",
                 "delivered", "lost", "duplicated", "latency_ms"}


@pytest.fixture
def dropping(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server that loses the third `message.new` it sends."""
    with live_server(settings, functools.partial(FrameFault, repeat=False)) as server:
        yield server


@pytest.fixture
def no_websockets(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server whose websocket handshakes are all refused."""
    with live_server(settings, NoWebsockets) as server:
        yield server


@pytest.fixture
def repeating(settings: Settings, services: Services) -> Iterator[LiveServer]:
    """A live server that sends the third `message.new` twice."""
    with live_server(settings, functools.partial(FrameFault, repeat=True)) as server:
        yield server


async def test_a_run_counts_every_event_once_with_its_latency(
    live: LiveServer, services: Services
) -> None:
    """One-to-one, group and high-priority sends all arrive once, and the figures add up."""
    admin = await make_admin(services)
    report, lines = await load_test(
        admin, live.url, users=8, rate=30.0, duration=1.5, group_size=4,
        high_priority_share=0.5,
    )
    assert report.ok and report.lost == 0 and report.duplicated == 0
    assert report.connections_opened == 8 and report.connections_failed == 0
    assert report.sent == 45 and report.send_failed == 0
    # Half the sends go to groups of 4 (3 recipients besides a sender in the group, 4 otherwise).
    assert 45 < report.expected <= 45 * 4
    assert report.delivered == report.expected
    latency = report.latency_ms
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p999"]
    assert latency["p999"] <= latency["max"]
    assert any("sending" in line for line in lines), lines


async def test_a_second_run_reuses_the_users_and_groups_of_the_first(
    live: LiveServer, services: Services
) -> None:
    """Users and groups named by the prefix are reused (new passwords), not made twice."""
    admin = await make_admin(services)
    first, _ = await load_test(admin, live.url, user_prefix="again", group_size=3)
    users_before = len(await services.accounts.page_users(UserSearch(), 100))
    groups_before = len(await services.groups.list_groups())
    second, _ = await load_test(admin, live.url, user_prefix="again", group_size=3)
    assert first.ok and second.ok and second.delivered == second.expected > 0
    assert len(await services.accounts.page_users(UserSearch(), 100)) == users_before
    assert len(await services.groups.list_groups()) == groups_before == 2


async def test_messages_of_a_run_with_expires_in_expire_and_still_all_arrive(
    live: LiveServer, services: Services, raw_db: asyncpg.Connection
) -> None:
    """With --expires-in every message is sent with its expiry, so the run leaves nothing
    behind once it passes; every event still arrives once."""
    admin = await make_admin(services)
    report, _ = await load_test(admin, live.url, expires_in=60.0)
    lifetimes = await raw_db.fetch("select expires_at - sent_at as lifetime from messages")
    assert report.ok and report.sent == len(lifetimes) == 20
    assert all(59 <= row["lifetime"].total_seconds() <= 61 for row in lifetimes)
    assert report.asked["expires_in"] == 60.0


async def test_the_command_writes_the_figures_as_json_and_exits_0(
    live: LiveServer, services: Services, tmp_path: Path
) -> None:
    """`realtime loadtest --json` writes the contract's keys; a clean run exits 0."""
    admin = await make_admin(services)
    status, figures = await load_test_command(admin, live.url, tmp_path / "figures.json")
    assert status == 0 and figures is not None
    assert CONTRACT_KEYS <= figures.keys()
    assert set(figures["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert figures["sent"] == 20 and figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["delivered"] == figures["expected"] == 20
    asked = figures["asked"]
    assert (asked["users"], asked["rate"], asked["duration"]) == (6, 20.0, 1.0)


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_lost_event_is_counted_and_fails_the_run(
    dropping: LiveServer, services: Services, tmp_path: Path, processes: str
) -> None:
    """When the server loses one `message.new`, the test reports 1 lost and exits 1: once,
    also when the sockets and the sends are spread over processes."""
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, dropping.url, tmp_path / "figures.json", "--processes", processes)
    assert status == 1 and figures is not None
    assert figures["processes"] == int(processes)
    assert figures["lost"] == 1 and figures["duplicated"] == 0
    assert figures["delivered"] == figures["expected"] - 1


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_duplicated_event_is_counted_and_fails_the_run(
    repeating: LiveServer, services: Services, tmp_path: Path, processes: str
) -> None:
    """When the server sends one `message.new` twice, the test reports 1 duplicated, exits 1,
    however many processes hold the sockets."""
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, repeating.url, tmp_path / "figures.json", "--processes", processes)
    assert status == 1 and figures is not None
    assert figures["duplicated"] == 1 and figures["lost"] == 0
    assert figures["delivered"] == figures["expected"]


async def test_a_run_where_no_socket_opens_fails_instead_of_passing(
    no_websockets: LiveServer, services: Services, tmp_path: Path
) -> None:
    """Behind a proxy that refuses websockets nothing can be checked: exit 1, every socket
    counted as failed with its reason, nothing sent."""
    admin = await make_admin(services)
    status, figures = await load_test_command(admin, no_websockets.url, tmp_path / "figures.json")
    assert status == 1 and figures is not None
    assert figures["connections_opened"] == 0 and figures["connections_failed"] == 6
    assert sum(figures["connect_errors"].values()) == 6
    assert figures["sent"] == 0 and not figures["ok"]


async def test_a_wrong_admin_password_stops_the_run_with_a_clear_message(
    live: LiveServer, services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused admin login ends the command with status 2 and says why, sending nothing."""
    admin = await make_admin(services)
    wrong = type(admin)(admin.username, "not the password")
    status, figures = await load_test_command(wrong, live.url, tmp_path / "figures.json")
    assert status == 2
    assert "401" in capsys.readouterr().err
    assert figures is None


async def test_an_unreachable_server_stops_the_run_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No server at the URL: status 2 and the address in the message, no traceback."""
    # Port 9 (discard) is closed here: connecting is refused at once.
    status, _ = await load_test_command(Admin("admin"), CLOSED_PORT_URL, tmp_path / "figures.json")
    assert status == 2
    assert "127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "problem"),
    [(["--group-size", "1"], "--group-size"), (["--rate", "0"], "--rate"),
     (["--high-priority-share", "1.5"], "--high-priority-share"),
     (["--expires-in", "5"], "--expires-in")],
)
async def test_a_bad_option_is_refused_before_anything_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], problem: str
) -> None:
    """An impossible option ends the command with status 2, naming the option."""
    status, _ = await load_test_command(
        Admin("admin"), CLOSED_PORT_URL, tmp_path / "f.json", *option
    )
    assert status == 2
    assert problem in capsys.readouterr().err


def test_percentiles_are_nearest_rank() -> None:
    """p50 of 1..100 is 50, p99 is 99, p99.9 and max are 100; none at all is 0."""
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.99, 0.999, 1.0)] == [50.0, 99.0, 100.0, 100.0]
    assert percentile([], 0.5) == 0.0


async def test_the_admin_password_can_come_from_the_environment(
    live: LiveServer, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REALTIME_LOADTEST_ADMIN_PASSWORD set, the command runs without --admin-password,
    so the password never shows in the process list."""
    admin = await make_admin(services)
    monkeypatch.delenv("REALTIME_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("REALTIME_LOADTEST_ADMIN_PASSWORD", admin.password)
    figures_path = tmp_path / "figures.json"
    argv = ["loadtest", live.url, "--admin-user", admin.username, "--users", "4", "--rate",
            "10", "--duration", "0.5", "--drain", "3", "--user-prefix", unique_name("lt"),
            "--json", str(figures_path)]
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 0
    assert codec.decode(figures_path.read_bytes())["ok"]


async def test_without_any_admin_password_the_command_says_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --admin-password and no variable: status 2, naming the variable to set."""
    for name in ("REALTIME_ADMIN_PASSWORD", "REALTIME_LOADTEST_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["loadtest", CLOSED_PORT_URL]) == 2
    assert "REALTIME_LOADTEST_ADMIN_PASSWORD" in capsys.readouterr().err
