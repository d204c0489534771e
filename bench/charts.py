"""The charts of results.md: each section's figures as bars beside their floors, as SVG.

One row per figure: ours above, the floor below, both from zero on a scale of the row's own (the
units differ from row to row); the ratio at the right, green where its target is met, red where
it is missed; a dashed line where the target falls near the bars. The same data gives the same
file: no date, a fixed hash salt, text kept as text.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Transform, blended_transform_factory
from results import Chart, Pair, Verdict, num

OURS, FLOOR, TARGET = "#3569a8", "#c9ccd1", "#d9822b"
MET, MISSED, PLAIN, MUTED, RULE = "#2b7a3b", "#c0392b", "#222222", "#666666", "#d5d8dc"
WIDTH = 10.0  # inches
ROW, HEADING, RULED, TOP, BOTTOM = 0.62, 0.36, 0.12, 0.95, 0.15  # inches
LABELS, RATIOS = 0.28, 0.71  # where the bars' column starts and ends, as shares of the width
RATIO_X, SAID_X = RATIOS + 0.1, RATIOS + 0.112  # the ratio ends and the target's words start
TARGET_REACH = 4.0  # a target line is drawn when it is at most this many times the larger bar
TARGET_NEAR_ZERO = 0.04  # and not when it would sit this close to zero (bars far above it)
FILL = 0.74  # the larger bar (or the target line) spans this share of its row's scale
INSIDE = 0.5  # a bar longer than this share of the row carries its value inside
METADATA = {"Date": None, "Creator": None}  # nothing that changes from run to run


def draw(chart: Chart) -> str:
    """The chart as an SVG document."""
    with mpl.rc_context({
        "svg.fonttype": "none",  # text stays text: searchable, and checked by the tests
        "svg.hashsalt": "bench-charts",  # the ids of clip paths are the same from run to run
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
        "font.size": 9.0,
        "text.parse_math": False,
    }):
        figure = layout(chart)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata=METADATA)
    return out.getvalue()


def write(charts: Iterable[Chart], directory: Path) -> list[Path]:
    """Each chart as DIRECTORY/its file; the paths written."""
    written = []
    for chart in charts:
        path = directory / chart.file
        path.write_text(draw(chart))
        written.append(path)
    return written


def layout(chart: Chart) -> Figure:
    rows = list(grouped(chart.pairs))
    height_rows = sum(room(row) for row in rows)
    height = TOP + height_rows + BOTTOM
    figure = Figure(figsize=(WIDTH, height))
    axes = figure.add_axes((LABELS, BOTTOM / height, RATIOS - LABELS, height_rows / height))
    axes.set_xlim(0, 1)
    axes.set_ylim(height_rows, 0)
    axes.set_axis_off()
    label_x = blended_transform_factory(figure.transFigure, axes.transData)
    y = 0.0
    for row in rows:
        if isinstance(row, str):
            heading(axes, label_x, row, y)
        else:
            bars(axes, label_x, row, y + ROW / 2)
        y += room(row)
    figure.text(0.015, 1 - 0.12 / height, chart.title, ha="left", va="top", size=12.5,
                weight="bold", color=PLAIN)
    figure.text(0.015, 1 - 0.42 / height, "each row on its own scale, from zero", ha="left",
                va="top", size=8.5, color=MUTED)
    for x, words, align in ((RATIO_X, "ratio", "right"), (SAID_X, "target", "left")):
        figure.text(x, 1 - (TOP - 0.08) / height, words, ha=align, va="bottom", size=8.5,
                    color=MUTED)
    figure.legend(
        handles=[Patch(color=OURS, label="ours"), Patch(color=FLOOR, label="floor (raw limit)"),
                 Line2D([], [], color=TARGET, linestyle="--", label="target")],
        loc="upper left", bbox_to_anchor=(LABELS - 0.01, 1 - 0.3 / height), ncol=3,
        frameon=False, fontsize=8.5, handlelength=1.6, columnspacing=1.4)
    return figure


def grouped(pairs: Sequence[Pair]) -> Iterable[str | Pair]:
    """The pairs, each run of one group after a heading of its name (a bare rule for a run of
    pairs of no group that follows a group)."""
    group = ""
    for pair in pairs:
        if pair.group != group:
            yield pair.group
        group = pair.group
        yield pair


def room(row: str | Pair) -> float:
    """The height of a row of the chart, in inches."""
    if isinstance(row, Pair):
        return ROW
    return HEADING if row else RULED


def heading(axes: Axes, label_x: Transform, text: str, y: float) -> None:
    """A group's name over its rows, under a rule across the chart."""
    axes.plot([0.015, 0.985], [y + 0.04, y + 0.04], transform=label_x, color=RULE,
              linewidth=0.8, clip_on=False)
    axes.text(0.015, y + HEADING * 0.62, text, transform=label_x, ha="left", va="center",
              size=9.5, weight="bold", color=PLAIN)


def bars(axes: Axes, label_x: Transform, pair: Pair, y: float) -> None:
    """One figure beside its floor, centred on y, with its name, values, target and ratio."""
    plot = pair.plot
    ours, floor = plot.ours or 0.0, plot.floor or 0.0
    largest = max(ours, floor, 0.0)  # a marginal cost can come out below zero: no bar
    target = plot.target
    drawn = (target is not None and math.isfinite(target)
             and TARGET_NEAR_ZERO * largest / FILL <= target <= TARGET_REACH * largest)
    scale = max(largest, target if drawn and target is not None else 0.0) / FILL or 1.0
    thickness = 0.2
    for value, offset, colour, text, light in (
        (ours, -0.12, OURS, f"{num(ours, plot.digits)}{plot.unit}", True),
        (floor, 0.12, FLOOR, f"{num(floor, plot.digits)}{plot.unit} · {plot.floor_name}",
         False),
    ):
        length = max(value, 0.0) / scale
        axes.barh(y + offset, length, height=thickness, color=colour, linewidth=0)
        inside = length > INSIDE
        axes.text(length - 0.01 if inside else length + 0.01, y + offset, text,
                  ha="right" if inside else "left", va="center", size=8,
                  color=("white" if light else PLAIN) if inside else PLAIN)
    if drawn and target is not None:
        axes.plot([target / scale] * 2, [y - 0.27, y + 0.27], color=TARGET, linewidth=1.4,
                  linestyle="--")
    axes.text(LABELS - 0.012, y, textwrap.fill(pair.figure, 34), transform=label_x,
              ha="right", va="center", size=9, color=PLAIN, linespacing=1.1)
    colour = ratio_colour(pair.verdict)
    axes.text(RATIO_X, y, pair.ratio, transform=label_x, ha="right", va="center",
              size=11.5, weight="bold", color=colour)
    if pair.verdict is not None:
        said = textwrap.fill(f"{pair.verdict.target}: {pair.verdict.word}{pair.verdict.note}",
                             29)
        axes.text(SAID_X, y, said, transform=label_x, ha="left", va="center",
                  size=7.5, color=colour, linespacing=1.15)


def ratio_colour(verdict: Verdict | None) -> str:
    if verdict is None or verdict.met is None:
        return PLAIN
    return MET if verdict.met else MISSED
