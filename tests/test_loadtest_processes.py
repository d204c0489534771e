"""`realtime loadtest --processes`: the sockets and the sends spread over processes, and their
ledgers merged so that every delivery, loss and duplicate counts once."""

from __future__ import annotations

import re
from pathlib import Path

from realtime.api.http import Services
from realtime.loadtest.ledger import Addressed
from realtime.loadtest.processes import Part, merge, owed_to
from tests.live_server import LiveServer
from tests.loadtest_support import load_test_command, make_admin

EVERYONE = frozenset({0, 1, 2, 3})


def two_parts() -> tuple[Part, Part]:
    """Worker 0 holds users 0 and 2 and sent 10 and 12; worker 1 holds 1 and 3 and sent 11.
    Send 10 (user 0 to user 1) crossed processes; 11 went to a group; 12 failed."""
    first = Part(online=frozenset({0, 2}), started={10: 1.0, 12: 1.2},
                 addressed={10: Addressed(frozenset({1}), sender=0)}, failed={12})
    first.send_errors["503"] = 1
    second = Part(online=frozenset({1, 3}), started={11: 1.1},
                  addressed={11: Addressed(EVERYONE, sender=1)})
    first.arrivals = [(0, 11, 1.15), (2, 11, 1.16), (2, 11, 1.17)]  # 11 twice on user 2
    second.arrivals = [(1, 10, 1.05)]  # 11 never reached user 3
    first.counters = {"connections_opened": 2}
    second.counters = {"connections_opened": 2, "reconnects": 1}
    return first, second


def test_merged_counts_are_the_sum_of_the_parts_and_each_fault_counts_once() -> None:
    first, second = two_parts()
    ledger = merge([first, second])
    assert ledger.online == EVERYONE
    assert ledger.sent == len(first.addressed) + len(second.addressed) == 2
    assert ledger.send_failed == 1 and ledger.failed == {12}
    assert ledger.expected_events == 1 + 3  # user 1 for send 10; users 0, 2, 3 for send 11
    assert (ledger.delivered, ledger.duplicated, ledger.outstanding) == (3, 1, 1)
    assert ledger.owed == {11: {3}}
    assert (ledger.connections_opened, ledger.reconnects) == (4, 1)
    assert sorted(round(v, 2) for v in ledger.latencies) == [0.05, 0.05, 0.06]


def test_each_worker_is_owed_the_deliveries_of_its_own_sockets() -> None:
    first, second = two_parts()
    first.arrivals = second.arrivals = []
    # Owed before any arrival: user 1 (worker 1) for send 10; users 0, 2 (worker 0) and 3
    # (worker 1) for send 11.
    assert owed_to(2, merge([first, second])) == [2, 2]


async def test_a_run_over_two_processes_counts_every_event_once(
    live: LiveServer, services: Services, tmp_path: Path
) -> None:
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, live.url, tmp_path / "figures.json", "--processes", "2", "--group-size", "3")
    assert status == 0 and figures is not None
    assert figures["processes"] == 2 and figures["ok"] is True
    assert figures["sent"] == 20 and figures["connections_opened"] == 6
    assert figures["delivered"] == figures["expected"] > 20  # groups of 3 among them
    assert figures["lost"] == figures["duplicated"] == figures["unexpected"] == 0
    assert figures["tester_cpu_seconds"] > 0 and 0 < figures["tester_busy"] <= 1
    assert figures["tester_cpu_per_send_us"] > 0 and figures["tester_cpu_per_delivery_us"] > 0


async def test_html_writes_one_self_contained_page_with_the_charts_and_verdict(
    live: LiveServer, services: Services, tmp_path: Path
) -> None:
    admin = await make_admin(services)
    page_path = tmp_path / "report.html"
    status, figures = await load_test_command(
        admin, live.url, tmp_path / "figures.json", "--processes", "2",
        "--html", str(page_path), "--threshold", "lost==0")
    assert status == 0 and figures is not None
    page = page_path.read_text()
    assert "<h1>Load test: Passed</h1>" in page
    assert page.count("<svg") == 4
    for caption in ("Sends and deliveries per second", "Delivery latency",
                    "Open sockets", "Errors: sends that failed"):
        assert caption in page
    assert "lost==0" in page and "µs/send" in page
    assert f"{figures['sent']:,}" in page
    # Nothing is fetched: no script, stylesheet or image; references are within the page.
    for fetching in ("<script", "<link", "<img", "<iframe", "src=", "@import"):
        assert fetching not in page
    assert re.findall(r"url\((?!#)", page) == []
    assert set(re.findall(r'href="(.)', page)) <= {"#"}
    assert "timeline" not in figures  # the JSON keeps the figures only
