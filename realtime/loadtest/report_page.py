"""`--html FILE`: the run as one self-contained page (charts drawn as inline SVG by matplotlib,
no script, nothing fetched), to read rather than the table."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realtime.loadtest.options import LoadTestError
from realtime.loadtest.report import Report
from realtime.loadtest.timeline import Timeline

PALETTE = {"sends": "#2563eb", "deliveries": "#16a34a", "failed": "#dc2626",
           "p50": "#0891b2", "p95": "#d97706", "p99": "#dc2626", "sockets": "#7c3aed"}


def check_available() -> None:
    """Fail before the run, not after it, when the charts cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LoadTestError(
            "--html needs matplotlib: pip install 'realtime[report]'"
        ) from None


def write_page(path: Path, report: Report, judged: Sequence[Any] = ()) -> None:
    path.write_text(page(report, judged), encoding="utf-8")


def page(report: Report, judged: Sequence[Any] = ()) -> str:
    timeline = report.timeline
    passed = report.ok and all(j.held for j in judged)
    verdict = "Passed" if passed else "Failed"
    reason = report.verdict if not report.ok else (
        "a threshold was missed" if not passed else "every event arrived once")
    charts = "".join(_chart_block(title, svg) for title, svg in _charts(timeline))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Load test: {verdict}</title>
<style>{_STYLE}</style></head>
<body>
<header class="{'pass' if passed else 'fail'}">
<h1>Load test: {verdict}</h1><p>{html.escape(reason)}</p></header>
<main>
<section class="cards">{_cards(report)}</section>
{_warning(report)}
{_thresholds(judged)}
<section class="charts">{charts or '<p>Nothing was sent: no chart to draw.</p>'}</section>
<section class="two">
<div><h2>Summary</h2>{_summary(report)}</div>
<div><h2>The run</h2>{_shape(report)}</div>
</section>
</main></body></html>
"""


def _cards(report: Report) -> str:
    latency = report.latency_ms
    cards = [
        ("messages sent", f"{report.sent:,}", f"{report.sends_per_second:,.1f}/s of "
         f"{report.rate_asked:g}/s asked"),
        ("events delivered", f"{report.delivered:,}", f"of {report.expected:,} expected"),
        ("lost", f"{report.lost:,}", "events never delivered"),
        ("duplicated", f"{report.duplicated:,}", "events delivered twice"),
        ("latency p99", f"{latency['p99']:.1f} ms",
         f"p50 {latency['p50']:.1f} ms, max {latency['max']:.1f} ms"),
        ("load tester CPU", f"{report.tester_cpu_per_send_us:,.0f} µs/send",
         f"{report.tester_cpu_per_delivery_us:,.0f} µs per delivery, "
         f"{report.tester_busy:.0%} of {report.processes} core(s)"),
    ]
    bad = {"lost": report.lost > 0, "duplicated": report.duplicated > 0}
    return "".join(
        f'<div class="card{" bad" if bad.get(name) else ""}"><div class="label">'
        f'{html.escape(name)}</div><div class="value">{html.escape(value)}</div>'
        f'<div class="note">{html.escape(note)}</div></div>'
        for name, value, note in cards
    )


def _warning(report: Report) -> str:
    warning = report.tester_warning
    return "" if warning is None else f'<p class="warning">{html.escape(warning)}</p>'


def _thresholds(judged: Sequence[Any]) -> str:
    if not judged:
        return ""
    rows = "".join(
        f'<tr class="{"pass" if j.held else "fail"}"><td>{html.escape(j.threshold.text)}</td>'
        f"<td>{html.escape(str(j.measured))}</td><td>{'met' if j.held else 'missed'}</td></tr>"
        for j in judged
    )
    return ('<section><h2>Thresholds</h2><table><tr><th>threshold</th><th>measured</th>'
            f"<th></th></tr>{rows}</table></section>")


def _summary(report: Report) -> str:
    rows = []
    for line in report.table().splitlines():
        name, _, value = line.partition("  ")
        rows.append(f"<tr><th>{html.escape(name.strip())}</th>"
                    f"<td>{html.escape(value.strip())}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _shape(report: Report) -> str:
    asked = dict(report.asked) | {"processes": report.processes,
                                  "sending seconds": report.sending_seconds}
    if asked.get("stages"):  # the stages replace --rate and --duration
        asked.pop("rate", None)
        asked.pop("duration", None)
    rows = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_shown(value))}</td></tr>"
        for name, value in asked.items()
    )
    return f"<table>{rows}</table>"


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(f"{seconds:g} s to {rate:g}/s" for seconds, rate in value)
    return str(value)


def _chart_block(title: str, svg: str) -> str:
    return f'<figure><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'


def _charts(timeline: Timeline) -> list[tuple[str, str]]:
    if not timeline.seconds:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    pyplot.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "loadtest",
                            "font.size": 10, "axes.spines.top": False,
                            "axes.spines.right": False, "axes.grid": True,
                            "grid.alpha": 0.3})
    x = timeline.seconds
    charts = []

    figure, axes = pyplot.subplots(figsize=(7.5, 2.8))
    axes.plot(x, timeline.sends, color=PALETTE["sends"], label="sends started")
    axes.plot(x, timeline.deliveries, color=PALETTE["deliveries"], label="events delivered")
    axes.set_ylabel("per second")
    charts.append(("Sends and deliveries per second", _finish(figure, axes)))

    figure, axes = pyplot.subplots(figsize=(7.5, 2.8))
    for name in ("p50", "p95", "p99"):
        axes.plot(x, getattr(timeline, f"{name}_ms"), color=PALETTE[name], label=name,
                  marker="." if len(x) < 30 else None)
    axes.set_ylabel("ms, commit to socket")
    axes.set_ylim(bottom=0)
    charts.append(("Delivery latency, by the second it arrived", _finish(figure, axes)))

    figure, axes = pyplot.subplots(figsize=(7.5, 2.8))
    axes.step(x, [0 if v is None else v for v in timeline.sockets], where="post",
              color=PALETTE["sockets"], label="open sockets")
    axes.set_ylabel("sockets")
    axes.set_ylim(bottom=0)
    charts.append(("Open sockets", _finish(figure, axes)))

    figure, axes = pyplot.subplots(figsize=(7.5, 2.8))
    axes.bar(x, timeline.failed, color=PALETTE["failed"], label="sends failed", width=0.8)
    axes.set_ylabel("per second")
    axes.set_ylim(bottom=0, top=max(1, *timeline.failed) * 1.2)
    charts.append(("Errors: sends that failed", _finish(figure, axes)))
    return charts


def _finish(figure: Any, axes: Any) -> str:
    from matplotlib import pyplot

    axes.set_xlabel("seconds from the first send")
    axes.legend(loc="upper right", frameon=False, ncols=3)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    pyplot.close(figure)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # no XML prologue nor DOCTYPE inside the page


_STYLE = """
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #1f2937; background: #f5f7fa; }
header { padding: 20px 32px; color: #fff; }
header.pass { background: #15803d; } header.fail { background: #b91c1c; }
header h1 { margin: 0; font-size: 26px; } header p { margin: 4px 0 0; opacity: .9; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 32px 40px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr));
         gap: 12px; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 12px 14px; }
.card.bad { border-color: #dc2626; background: #fef2f2; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
               color: #6b7280; }
.card .value { font-size: 24px; font-weight: 650; margin: 2px 0; }
.card .note { font-size: 12px; color: #6b7280; }
.warning { background: #fffbeb; border: 1px solid #f59e0b; border-radius: 8px;
           padding: 10px 14px; margin: 16px 0 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr));
          gap: 14px; margin-top: 18px; }
figure { margin: 0; background: #fff; border: 1px solid #e5e7eb; border-radius: 8px;
         padding: 10px; }
figcaption { font-weight: 600; margin: 0 0 4px 4px; }
figure svg { width: 100%; height: auto; }
.two { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 20px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #e5e7eb;
        border-radius: 8px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #f0f1f3;
         vertical-align: top; }
th { font-weight: 500; color: #4b5563; width: 40%; }
tr.pass td:last-child { color: #15803d; font-weight: 600; }
tr.fail td:last-child { color: #b91c1c; font-weight: 600; }
"""
