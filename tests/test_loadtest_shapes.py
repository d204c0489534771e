"""`realtime loadtest --threshold` and `--stages`: conditions that fail a run in CI, and rates
ramped over time, as k6's thresholds and stages do."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from realtime.api.http import Services
from realtime.loadtest.report import Report
from realtime.loadtest.stages import Stage, StageError, parse_stages, send_offsets
from realtime.loadtest.thresholds import Threshold, ThresholdError, judge
from tests.live_server import LiveServer
from tests.loadtest_support import Admin, load_test_command, make_admin

CLOSED_PORT_URL = "http://127.0.0.1:9"


def report(**figures: object) -> Report:
    base: dict[str, object] = dict(
        connections_opened=10, connections_failed=0, connect_errors={}, reconnects=0,
        resyncs=0, sent=100, send_failed=0, send_errors={}, expected=100, delivered=100,
        lost=0, duplicated=0, unexpected=0, recipients_mismatched=0,
        latency_ms={"p50": 4.0, "p90": 9.0, "p99": 80.0, "p999": 150.0, "max": 300.0},
        sends_per_second=99.5, rate_asked=100.0, sending_seconds=1.0, asked={},
    )
    return Report(**(base | figures))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "figure", "op", "value"), [
    ("p99<100ms", "p99", "<", 100.0),
    ("p99 < 0.1s", "p99", "<", 100.0),
    ("max<=250", "max", "<=", 250.0),
    ("lost==0", "lost", "==", 0.0),
    ("sends_per_second>=99.5", "sends_per_second", ">=", 99.5),
])
def test_a_threshold_reads_its_figure_operator_and_value(
    text: str, figure: str, op: str, value: float
) -> None:
    threshold = Threshold.parse(text)
    assert (threshold.figure, threshold.op, threshold.value) == (figure, op, value)


@pytest.mark.parametrize(("text", "problem"), [
    ("p99", "not a threshold"), ("p98<100ms", "none of"), ("lost==0ms", "a count"),
    ("p99<-1ms", "not a threshold"), ("lost=0", "not a threshold"), ("", "not a threshold"),
])
def test_a_malformed_threshold_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError, match=problem):
        Threshold.parse(text)


def test_each_threshold_is_judged_against_the_report() -> None:
    judged = judge([Threshold.parse(t) for t in ("p99<100ms", "p999<100ms", "lost==0",
                                                 "sends_per_second>=100")], report())
    assert [(j.threshold.text, j.measured, j.held) for j in judged] == [
        ("p99<100ms", 80.0, True), ("p999<100ms", 150.0, False), ("lost==0", 0.0, True),
        ("sends_per_second>=100", 99.5, False),
    ]


async def test_a_run_meeting_its_thresholds_exits_0_and_says_so_in_its_figures(
    live: LiveServer, services: Services, tmp_path: Path
) -> None:
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, live.url, tmp_path / "figures.json",
        "--threshold", "p99<30s", "--threshold", "lost==0", "--threshold", "sent>=20",
    )
    assert status == 0 and figures is not None and figures["ok"] is True
    assert [(t["threshold"], t["met"]) for t in figures["thresholds"]] == [
        ("p99<30s", True), ("lost==0", True), ("sent>=20", True)]


async def test_a_run_missing_a_threshold_exits_1_though_nothing_was_lost(
    live: LiveServer, services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, live.url, tmp_path / "figures.json",
        "--threshold", "lost==0", "--threshold", "sent>=1000",
    )
    assert status == 1 and figures is not None
    assert figures["lost"] == 0 and figures["ok"] is False
    assert figures["thresholds"][1] == {"threshold": "sent>=1000", "measured": 20.0,
                                        "met": False}
    assert "[MISSED] sent>=1000 (measured 20)" in capsys.readouterr().out


async def test_a_malformed_threshold_stops_the_command_before_anything_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        await load_test_command(Admin("admin"), CLOSED_PORT_URL, tmp_path / "f.json",
                                "--threshold", "p99<fast")
    assert stopped.value.code == 2
    assert "not a threshold such as p99<100ms" in capsys.readouterr().err


# Stages: the rate ramped over time.


def test_a_steady_rate_sends_evenly_and_a_ramp_ever_closer() -> None:
    steady_sends = list(send_offsets((Stage(1.0, 10.0),), 10.0))
    assert steady_sends == pytest.approx([n / 10 for n in range(10)])
    ramp = list(send_offsets(parse_stages("2s:10,2s:10,2s:0")))
    assert len(ramp) == 10 + 20 + 10
    gaps = [later - earlier for earlier, later in pairwise(ramp)]
    assert all(a > b for a, b in pairwise(gaps[:10]))  # speeding up
    assert all(g == pytest.approx(0.1) for g in gaps[10:29])  # held at 10/s
    assert all(a < b for a, b in pairwise(gaps[30:]))  # slowing down
    assert 2.0 <= ramp[10] <= 2.1 and ramp[-1] < 6.0


@pytest.mark.parametrize(("text", "problem"), [
    ("30s", "not a stage"), ("0s:10", "more than 0"), ("10s:0,5s:0", "nothing would be sent"),
    ("10x:5", "not a stage"), ("10s:-5", "not a stage"),
])
def test_malformed_stages_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(StageError, match=problem):
        parse_stages(text)


async def test_a_staged_run_sends_what_its_stages_allow(
    live: LiveServer, services: Services, tmp_path: Path
) -> None:
    admin = await make_admin(services)
    status, figures = await load_test_command(
        admin, live.url, tmp_path / "figures.json", "--stages", "1s:20,1s:20,1s:0",
    )
    assert status == 0 and figures is not None
    assert figures["sent"] == 10 + 20 + 10 and figures["lost"] == 0
    assert figures["asked"]["stages"] == [[1.0, 20.0], [1.0, 20.0], [1.0, 0.0]]
    assert figures["rate_asked"] == pytest.approx(40 / 3, abs=0.01)
