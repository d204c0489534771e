"""`make bench` draws each section's figures beside their floors: results.md links an SVG per
section, and each SVG names the figure, the floor and the ratio, the same on every render."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

pytest.importorskip("matplotlib")

import charts  # noqa: E402
from results import Step, report  # noqa: E402

MIB = 2**20


def cpu(others: float = 0.0) -> dict[str, float]:
    return {"server": 1.0, "postgres": 0.5, "redis": 0.1, "others": others}


def rate_step(target: str, rate: int, p99: float, cpu_per_message: float) -> dict[str, Any]:
    return {"target": target, "rate": rate, "purpose": "asked", "passed": p99 < 0.1,
            "p50": p99 / 3, "p99": p99, "cpu_per_message": cpu_per_message, "achieved": rate,
            "sent": rate * 10, "ok": rate * 10, "missing": 0, "cpu": cpu(), "window": 10.0}


def sustained_redis() -> dict[str, Any]:
    """A made-up Redis run with the bare send pipeline beside it, as `sustained.py --json`."""
    return {
        "options": {"redis": True, "search": False, "users": 100, "seconds": 5,
                    "search_max": 8000, "search_seconds": 10, "search_step": 100},
        "steps": [rate_step("realtime", 300, 0.0053, 1966e-6),
                  rate_step("realtime", 600, 0.0098, 1707e-6)],
        "floor_steps": [rate_step("bare", 300, 0.0028, 984e-6),
                        rate_step("bare", 600, 0.0044, 938e-6)],
        "floors": {
            "marginal": {"low": 300, "high": 600, "ratio": 3.25,
                         "realtime": {"server": 740e-6, "postgres": 2100e-6, "redis": 27e-6,
                                      "total": 2900e-6},
                         "bare": {"server": 604e-6, "postgres": 257e-6, "redis": 31e-6,
                                  "total": 892e-6}},
            "highest": {"realtime": 1400, "bare": 1900, "ratio": 1400 / 1900,
                        "searched": True, "ceiling": 8000},
            "idle": {"realtime": 0.0063, "bare": 0.0050, "seconds": 20.0,
                     "postgres_by_database": {"realtime": 0.0, "bare": 0.0, "background": 0.0},
                     "cpu": {"realtime server": 0.1, "bare server": 0.1}},
        },
        "connected": {"opened": 100},
    }


def files() -> dict[str, Any]:
    """A made-up run of `files.py --sizes 25 --json`."""
    def moved(kind: str, rate: float, raw: float, floor: float, way: str) -> dict[str, Any]:
        return {"step": kind, "size": 25 * MIB, "files": 4, "mb_per_second": rate, "raw": raw,
                "passed": rate >= raw / 2, "floor": floor, "floor_way": way,
                "floor_passed": rate >= 0.7 * floor, "cpu": cpu(), "window": 1.0}

    return {
        "raw": {"encrypt": 9347.0, "decrypt": 9464.0, "sha256": 1789.0},
        "floor_target_share": 0.7,
        "steps": [moved("upload", 118.0, 9347.0, 105.0, "copy per chunk, 64 KiB"),
                  moved("download", 913.0, 9464.0, 1727.0, "select per file")],
        "floor": [{"size": 25 * MIB, "step": "upload", "way": "copy per chunk, 64 KiB",
                   "mb_per_second": 105.0},
                  {"size": 25 * MIB, "step": "download", "way": "select per file",
                   "mb_per_second": 1727.0}],
    }


def steps() -> list[Step]:
    """A run where only the Redis sustained run and the files gave figures."""
    made = [Step("bare_redis", ["bare_redis.py"], error="not run"),
            Step("fanout", ["fanout.py"], error="not run"),
            Step("sustained_redis", ["sustained.py"], seconds=60.0, result=sustained_redis()),
            Step("expiry", ["expiry.py"], error="not run"),
            Step("files", ["files.py"], seconds=10.0, result=files())]
    return made


def text_of(svg: str) -> str:
    """The words an SVG shows, in the order drawn, on one line."""
    root = ET.fromstring(svg)  # noqa: S314 (an SVG this test drew)
    return re.sub(r"\s+", " ", " ".join(root.itertext())).strip()


@pytest.fixture
def drawn(tmp_path: Path) -> tuple[str, dict[str, str]]:
    made = report(steps(), {"date": "2026-12-05"})
    (tmp_path / "results.md").write_text(made.text)
    written = charts.write(made.charts, tmp_path)
    return made.text, {path.name: path.read_text() for path in written}


def test_results_link_a_chart_per_section_that_has_floors(
    drawn: tuple[str, dict[str, str]],
) -> None:
    text, svgs = drawn
    linked = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert linked == ["send-floors.svg", "files.svg"]  # the others have no floor here
    assert set(svgs) == set(linked)
    assert "| marginal CPU per send, 300→600/s: all three | 2,900 µs | 892 µs |" in text


@pytest.mark.parametrize(("file", "figure", "floor", "ratio", "said"), [
    ("send-floors.svg", ("marginal CPU per send, 300→600/s", "all three"),
     "892 µs · bare pipeline", "3.25x", "≤ 2x the bare pipeline's: missed"),
    ("send-floors.svg", ("highest rate with p99 < 100 ms, nothing missing",),
     "1,900/s · bare pipeline", "74%", "≥ 60% of the bare pipeline's: met"),
    ("send-floors.svg", ("idle, 100 sockets open, no traffic, 20 s",
                         "server + PostgreSQL, of a core"),
     "0.50% · bare pipeline", "1.26x", "< 2% of a core: met"),
    ("send-floors.svg", ("600/s", "p99 send to deliver"), "4.4 ms · bare pipeline", "2.2x",
     "< 100 ms, all delivered: met"),
    ("files.svg", ("25 MiB downloads, against PostgreSQL's own",),
     "1,727 MB/s · PostgreSQL, select per file", "53%", "≥ 70% of PostgreSQL's own: missed"),
    ("files.svg", ("25 MiB uploads, 4 files",), "9,347 MB/s · raw AES-GCM encrypt", "1.3%",
     "≥ 50% of raw: missed"),
])
def test_each_chart_names_the_figure_its_floor_and_the_ratio(
    drawn: tuple[str, dict[str, str]], file: str, figure: tuple[str, ...], floor: str,
    ratio: str, said: str,
) -> None:
    shown = text_of(drawn[1][file])
    for words in (*figure, floor, ratio, said):
        assert words in shown, (words, shown)


def test_the_same_figures_draw_the_same_file(drawn: tuple[str, dict[str, str]]) -> None:
    again = {chart.file: charts.draw(chart) for chart in report(steps(), {}).charts}
    assert again == drawn[1]
    assert all("<dc:date>" not in svg for svg in again.values())
