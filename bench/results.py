"""The report of `make bench`: each benchmark's figures beside the raw limits, as Markdown."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIB = 1024
TARGET_SOCKETS = 10_000  # the fan-out targets are set at this many sockets
TARGET_RATE = 2_000  # the sustained targets are set at this rate
TARGET_DUE = 1_000_000  # the expiry targets are judged with this many messages
TARGET_MARGINAL_OVER_BARE = 2.0  # marginal CPU per send, at most this many times the bare's
TARGET_RATE_SHARE_OF_BARE = 0.6  # highest passing rate, at least this share of the bare's
TARGET_IDLE_SHARE = 0.02  # of a core, server and PostgreSQL, every socket open, no traffic
TARGET_FILE_SIZE = 25 * 2**20  # the files' floor target is set at this size
REALTIME, BARE = "realtime", "bare"  # the targets of sustained.py's steps
PIPELINE = ("server", "postgres", "redis")  # the roles whose CPU a message costs
PIPELINE_NAME = "bare pipeline"  # the floor of the send floors' charts
ROLE_NAMES = {"server": "server", "postgres": "PostgreSQL", "redis": "Redis",
              "total": "all three"}


@dataclass
class Step:
    """One benchmark process: its command line, and what it gave."""

    name: str
    argv: list[str]
    seconds: float = math.nan
    result: dict[str, Any] | None = None
    error: str | None = None
    timeout: float = 300.0  # seconds it may take before it is stopped and reported as failed

    @property
    def shown(self) -> str:
        return " ".join(["bench/" + Path(self.argv[0]).name, *self.argv[1:]])


# --- formatting --------------------------------------------------------------------------------


def num(value: float | None, digits: int = 0, unit: str = "") -> str:
    """A figure with thousands separators; a dash when there is none."""
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def share(ours: float | None, raw: float | None) -> str:
    """A rate as a share of its raw limit."""
    if not ours or not raw or ours != ours or raw != raw:
        return "-"
    return f"{ours / raw:.0%}" if ours / raw >= 0.1 else f"{ours / raw:.1%}"


def times(ours: float | None, raw: float | None, digits: int = 1) -> str:
    """A time or a cost as a multiple of its raw limit."""
    if not ours or not raw or ours != ours or raw != raw:
        return "-"
    return f"{ours / raw:,.{digits}f}x"


@dataclass(frozen=True)
class Verdict:
    """A target, and whether it was met (None: not judged); shown as Markdown."""

    target: str
    met: bool | None
    note: str = ""

    @property
    def word(self) -> str:
        return "not judged" if self.met is None else "met" if self.met else "missed"

    def __str__(self) -> str:
        if self.met is None:
            return f"{self.target}: not judged{self.note}"
        return f"{self.target}: **{self.word}**{self.note}"


def verdict(target: str, met: bool | None, note: str = "") -> Verdict:
    return Verdict(target, met, note)


@dataclass(frozen=True)
class Plot:
    """How a table row is drawn in its section's chart: ours and the floor as numbers in the
    unit the table shows, and where the target puts a line, if it has one on that scale."""

    ours: float | None
    floor: float | None
    unit: str = ""
    digits: int = 0
    floor_name: str = "raw limit"
    target: float | None = None


@dataclass(frozen=True)
class Pair:
    """One bar beside its floor in a chart: the row's figure, ratio and verdict with them."""

    group: str  # what the figure's row shares with its neighbours ("1,000 sockets"), or ""
    figure: str
    plot: Plot
    ratio: str
    verdict: Verdict | None


@dataclass(frozen=True)
class Chart:
    """A section's figures beside their floors, drawn by charts.py as FILE next to results.md."""

    file: str
    title: str
    pairs: list[Pair]


@dataclass
class Table:
    """A results table: figure | ours | raw limit | ratio | target; and the rows drawn."""

    rows: list[list[str]] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)

    def add(self, figure: str, ours: str, raw: str = "-", ratio: str = "-",
            target: str | Verdict = "", plot: Plot | None = None) -> None:
        self.rows.append([figure, ours, raw, ratio, str(target)])
        if plot is not None and finite(plot.ours) and finite(plot.floor):
            group, _, name = chart_label(figure).rpartition(": ")
            self.pairs.append(Pair(group, name, plot, ratio,
                                   target if isinstance(target, Verdict) else None))

    def lines(self) -> list[str]:
        headers = ["figure", "ours", "raw limit", "ratio", "target"]
        return [f"| {' | '.join(headers)} |", "|---|---|---|---|---|",
                *(f"| {' | '.join(row)} |" for row in self.rows)]

    def chart(self, file: str, title: str) -> Chart | None:
        return Chart(file, title, self.pairs) if self.pairs else None


def chart_label(figure: str) -> str:
    """A table's figure as a chart names it: without its asides in brackets or code quotes."""
    return re.sub(r"\s*\([^)]*\)", "", figure).replace("`", "")


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass
class Section:
    """A part of results.md, and its chart if it has one."""

    lines: list[str]
    chart: Chart | None = None


@dataclass(frozen=True)
class Report:
    """results.md's text and the charts it links to."""

    text: str
    charts: list[Chart]


def others_share(cpu: dict[str, float], window: float | None) -> float:
    """Other work on the machine over a window, as a share of one core."""
    return cpu.get("others", 0.0) / window if window else math.nan


# --- the raw limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """The raw limits of the run, as the benchmarks measured them (None: not measured)."""

    redis: dict[str, dict[str, Any]]  # the bare Redis loop by variant
    bare: dict[int, dict[str, Any]]  # the bare broadcast by number of sockets
    aes: dict[str, float] | None  # raw AES-256-GCM and SHA-256, MB/s

    @property
    def bare_largest(self) -> dict[str, Any] | None:
        return self.bare[max(self.bare)] if self.bare else None

    @property
    def bare_smallest(self) -> dict[str, Any] | None:
        return self.bare[min(self.bare)] if self.bare else None


def raw_limits(steps: dict[str, Step]) -> Raw:
    redis = steps["bare_redis"].result
    fanout = steps["fanout"].result
    files = steps["files"].result
    return Raw(
        redis={run["variant"]: run for run in redis["runs"]} if redis else {},
        bare={run["sockets"]: run for run in fanout["runs"] if run["target"] == "bare"}
        if fanout else {},
        aes=files["raw"] if files else None,
    )


def raw_section(raw: Raw, steps: dict[str, Step]) -> list[str]:
    lines = ["## Raw limits", ""]
    redis = steps["bare_redis"].result
    if not redis:
        lines += [f"Bare Redis pub/sub: failed: `{steps['bare_redis'].shown}`: "
                  f"{steps['bare_redis'].error}.", ""]
    if redis:
        lines += [
            f"**Bare Redis pub/sub** (`bare_redis.py`, {section_note(steps['bare_redis'])}): "
            f"one process publishing and one pub/sub connection of the same process "
            f"receiving, {redis['client']}, as the server's broker; redis-server "
            f"{redis.get('redis_version', '?')}; payloads of "
            f"{next(iter(raw.redis.values()))['payload_bytes']} bytes (a `message.new` frame as "
            "the broker carries it).", "",
            "| variant | messages | messages/s | µs each | latency p50 / p99 ms | "
            "µs CPU per message (loop + redis-server) |",
            "|---|---|---|---|---|---|",
        ]
        for name, run in raw.redis.items():
            how = ("one PUBLISH awaited at a time" if name == "awaited"
                   else f"pipelines of {redis['options']['chunk']:,}")
            cpu = run["cpu"]
            lines.append(
                f"| {name} ({how}) | {num(run['received'])} | {num(run['per_second'])} | "
                f"{num(run['us_each'], 1)} | {num(run['p50'] * 1e3, 2)} / "
                f"{num(run['p99'] * 1e3, 2)} | "
                f"{num(1e6 * cpu.get('loop', 0) / run['received'], 1)} + "
                f"{num(1e6 * cpu.get('redis', 0) / run['received'], 1)} |")
        lines.append("")
    if raw.bare:
        lines += [
            f"**Bare websocket broadcast** (`fanout.py bare`, {section_note(steps['fanout'])}): "
            "a Starlette app with no database on uvicorn with the server's options, sending "
            "the fan-out's `message.new` frame to every socket in one loop.", "",
            "| sockets | opened/s | RSS per socket | first ms | last ms | deliveries/s | "
            "server µs CPU per delivery |",
            "|---|---|---|---|---|---|---|",
            *(f"| {num(n)} | {num(b['opened_per_second'])} | "
              f"{num(b['rss_per_socket'] / KIB, 1)} KiB | {num(b['first'] * 1e3, 1)} | "
              f"{num(b['last'] * 1e3)} | {num(b['per_second'])} | "
              f"{num(b['cpu_per_delivery'] * 1e6, 1)} |" for n, b in sorted(raw.bare.items())),
            "",
        ]
    if raw.aes:
        lines += [
            "**Raw AES-256-GCM** (`files.py`, one core, `cryptography`'s AESGCM on 1 MiB "
            f"buffers): encrypt {num(raw.aes['encrypt'])} MB/s, decrypt "
            f"{num(raw.aes['decrypt'])} MB/s; SHA-256 (the client's check of each download) "
            f"{num(raw.aes['sha256'])} MB/s. MB = 10^6 bytes.", "",
        ]
    return lines


def logged(step: Step) -> list[str]:
    """A line on what the server under test logged (warnings and errors only), if anything."""
    result = step.result or {}
    lines = list(result.get("server_log") or [])
    lines += [line for run in result.get("runs") or [] for line in run.get("problems") or []]
    if not lines:
        return []
    return [f"- The server logged {len(lines)} line(s) at WARNING or above; the first: "
            f"`{lines[0][:200]}`."]


def section_note(step: Step) -> str:
    """How long a step took and the load average when it started."""
    started = step.result.get("load") if step.result else None
    return f"took {num(step.seconds, 0, ' s')}, load {num(started, 2)} at its start"


# --- each benchmark ----------------------------------------------------------------------------


def fanout_section(step: Step, raw: Raw) -> Section:
    result = step.result
    assert result is not None
    table = Table()
    ours = {run["sockets"]: run for run in result["runs"] if run["target"] == "realtime"}
    largest = max(ours)
    note = "" if largest >= TARGET_SOCKETS else f" (set at {TARGET_SOCKETS:,}; here {largest:,})"
    others = []
    for n, run in sorted(ours.items()):
        bare = raw.bare.get(n, {})
        judged = n == largest
        prefix = f"{n:,} sockets:"

        def target(text: str, met: bool, *, judged: bool = judged) -> Verdict | str:
            return verdict(text, met, note) if judged else ""

        def line(value: float, *, judged: bool = judged) -> float | None:
            return value if judged else None

        def plot(ours: float, floor: float | None, unit: str = "", digits: int = 0,
                 target: float | None = None) -> Plot:
            return Plot(ours, math.nan if floor is None else floor, unit, digits,
                        "bare broadcast", target)

        table.add(f"{prefix} opened/s (failed)",
                  f"{num(run['opened_per_second'])} ({run['failed']})",
                  num(bare.get("opened_per_second")),
                  share(run["opened_per_second"], bare.get("opened_per_second")),
                  target("≥ 1,000/s, none failed",
                         run["opened_per_second"] >= 1000 and run["failed"] == 0),
                  plot(run["opened_per_second"], bare.get("opened_per_second"), "/s",
                       target=line(1000)))
        table.add(f"{prefix} RSS per idle socket", num(run["rss_per_socket"] / KIB, 1, " KiB"),
                  num(bare.get("rss_per_socket", math.nan) / KIB, 1, " KiB"),
                  times(run["rss_per_socket"], bare.get("rss_per_socket")),
                  target("< 32 KiB", run["rss_per_socket"] < 32 * KIB),
                  plot(run["rss_per_socket"] / KIB, bare.get("rss_per_socket", math.nan) / KIB,
                       " KiB", 1, line(32)))
        table.add(f"{prefix} last socket has it", num(run["last"] * 1e3, 0, " ms"),
                  num(bare.get("last", math.nan) * 1e3, 0, " ms"),
                  times(run["last"], bare.get("last")),
                  target("≤ 700 ms, none missing", run["last"] <= 0.7 and run["missing"] == 0),
                  plot(run["last"] * 1e3, bare.get("last", math.nan) * 1e3, " ms",
                       target=line(700)))
        table.add(f"{prefix} deliveries/s", num(run["per_second"]),
                  num(bare.get("per_second")), share(run["per_second"], bare.get("per_second")),
                  plot=plot(run["per_second"], bare.get("per_second"), "/s"))
        table.add(f"{prefix} deliveries/s after the first", num(run["spread_per_second"]),
                  num(bare.get("spread_per_second")),
                  share(run["spread_per_second"], bare.get("spread_per_second")),
                  target("≥ 75% of the bare broadcast's", bool(bare) and
                         run["spread_per_second"] >= 0.75 * bare["spread_per_second"]),
                  plot(run["spread_per_second"], bare.get("spread_per_second"), "/s",
                       target=line(0.75 * bare.get("spread_per_second", math.nan))))
        table.add(f"{prefix} server CPU per delivery",
                  num(run["cpu_per_delivery"] * 1e6, 1, " µs"),
                  num(bare.get("cpu_per_delivery", math.nan) * 1e6, 1, " µs"),
                  times(run["cpu_per_delivery"], bare.get("cpu_per_delivery")),
                  target("≤ 1.5 times the bare broadcast's", bool(bare) and
                         run["cpu_per_delivery"] <= 1.5 * bare["cpu_per_delivery"]),
                  plot(run["cpu_per_delivery"] * 1e6,
                       bare.get("cpu_per_delivery", math.nan) * 1e6, " µs", 1,
                       line(1.5e6 * bare.get("cpu_per_delivery", math.nan))))
        table.add(f"{prefix} broker payloads received for the send",
                  num(run.get("payloads", math.nan)), "", "",
                  target("≤ 1 per node", run.get("payloads", math.inf) <= 1))
        others.append(f"{others_share(run['cpu'], run['window']):.0%} at {n:,}")
    chart = table.chart("fanout.svg", "Fan-out: the server beside the bare broadcast")
    return Section([
        f"## Fan-out (`fanout.py`, in-process broker, {section_note(step)})", "",
        "`admin` sends one high-priority message to a group of N users, one socket each; the "
        "bare broadcast then gets N sockets and the very frame a socket received.", "",
        *link(chart), *table.lines(), "",
        "- opened/s, RSS: the bare broadcast's handshakes and idle sockets on the same uvicorn "
        "with none of our code (no session lookup, no `hello` snapshot, no hub).",
        "- last socket, deliveries/s: the same frame to the same number of sockets from one "
        "loop, with no transaction before it; the send is included on both sides. After the "
        "first: the fan-out alone.",
        "- CPU per delivery: each writes one frame per socket (the unread count rides in "
        "`message.new`).",
        f"- Other work on the machine during the fan-out: {', '.join(others)} of a core.",
        *logged(step), "",
    ], chart)


def sustained_rows(table: Table, s: dict[str, Any], raw: Raw, *, redis: bool) -> None:
    """The rows of one rate on one broker."""
    awaited, pipelined = raw.redis.get("awaited", {}), raw.redis.get("pipelined", {})
    bare_big, bare_small = raw.bare_largest or {}, raw.bare_smallest or {}
    prefix = f"{'Redis' if redis else 'memory'}, {s['rate']:,}/s asked:"
    bare_path = "bare broadcast + Redis" if redis else "bare broadcast"
    table.add(f"{prefix} sends answered 201/s (not 201, missing)",
              f"{num(s['achieved'])} ({s['sent'] - s['ok']}, {s['missing']})",
              num(bare_big.get("per_second")), share(s["achieved"], bare_big.get("per_second")),
              plot=Plot(s["achieved"], bare_big.get("per_second"), "/s",
                        floor_name="bare broadcast's deliveries"))
    if redis:
        table.add(f"{prefix} Redis payloads/s (1 per send)", num(s["achieved"]),
                  num(pipelined.get("per_second")),
                  share(s["achieved"], pipelined.get("per_second")),
                  plot=Plot(s["achieved"], pipelined.get("per_second"), "/s",
                            floor_name="bare Redis, pipelined"))
    for name, through_redis in (("p50", awaited.get("p50", 0.0)), ("p99", awaited.get("p99", 0.0))):
        floor = bare_small.get("first", math.nan) + (through_redis if redis else 0.0)
        table.add(f"{prefix} {name} send to deliver", num(s[name] * 1e3, 1, " ms"),
                  num(floor * 1e3, 1, " ms"), times(s[name], floor),
                  verdict("< 100 ms, all delivered", s["passed"]) if name == "p99" else "",
                  Plot(s[name] * 1e3, floor * 1e3, " ms", 1, bare_path,
                       100.0 if name == "p99" else None))
    floor = bare_big.get("cpu_per_delivery", math.nan)
    if redis:
        floor += pipelined.get("cpu_per_message", math.nan)
    table.add(f"{prefix} CPU per message (server + PostgreSQL + Redis)",
              num(s["cpu_per_message"] * 1e6, 0, " µs"), num(floor * 1e6, 0, " µs"),
              times(s["cpu_per_message"], floor),
              verdict("≤ 500 µs", s["cpu_per_message"] <= 500e-6,
                      "" if s["rate"] == TARGET_RATE else f" (set at {TARGET_RATE:,}/s)"),
              Plot(s["cpu_per_message"] * 1e6, floor * 1e6, " µs", 0, bare_path, 500.0))


def sustained_section(steps: Sequence[Step], raw: Raw) -> Section:
    table = Table()
    notes, rates = [], set()
    for step in steps:
        result = step.result
        assert result is not None
        redis = bool(result["options"]["redis"])
        for s in asked(result["steps"]):
            rates.add(s["rate"])
            sustained_rows(table, s, raw, redis=redis)
            notes.append(f"{others_share(s['cpu'], s['window']):.0%} "
                         f"({'Redis' if redis else 'memory'}, {s['rate']:,}/s)")
    at_target = [s for step in steps if step.result for s in asked(step.result["steps"])
                 if s["rate"] == TARGET_RATE]
    searched = [(step.result["options"]["redis"], highest_passing(step.result["steps"]))
                for step in steps if step.result and step.result["options"]["search"]]
    highest = "".join(f"; the highest rate passing, searched "
                      f"({'Redis' if redis else 'memory'}): {rate:,}/s" for redis, rate in searched)
    headline = (verdict(f"{TARGET_RATE:,} sends/s with p99 < 100 ms",
                        all(s["passed"] for s in at_target)) if at_target else
                f"{TARGET_RATE:,} sends/s with p99 < 100 ms: not run here (rates run: "
                f"{', '.join(f'{r:,}/s' for r in sorted(rates))}; "
                f"`sustained.py --rate {TARGET_RATE}` judges it){highest}")
    took = "; ".join(f"{'Redis' if s.result and s.result['options']['redis'] else 'memory'}: "
                     f"{section_note(s)}" for s in steps)
    options = steps[0].result["options"] if steps[0].result else {}
    chart = table.chart("sustained.svg",
                        "Sustained: each rate asked beside the bare broadcast and bare Redis")
    return Section([
        f"## Sustained (`sustained.py`, {num(options.get('users'))} users, each rate held "
        f"{num(options.get('seconds'))} s; {took})",
        "",
        *link(chart), *table.lines(), "",
        f"Target: {headline}.", "",
        "- sends answered/s: against the bare broadcast's deliveries/s at "
        f"{max(raw.bare or [0]):,} sockets, the frames the websocket stack writes per second "
        "with none of our code: the share of it the asked rate uses.",
        "- Redis payloads/s: each one-to-one send publishes one payload (`message.new`), "
        "against the pipelined bare Redis loop, the most the broker's path carries.",
        "- p50, p99: against the bare path of one event: the bare broadcast's first arrival at "
        f"{min(raw.bare or [0]):,} sockets (one HTTP request in, one frame out, no database), "
        "plus, through Redis, the awaited bare Redis loop's p50 or p99 (one publish to its "
        "arrival).",
        "- CPU per message: against the raw cost of delivering it: one frame at the bare "
        "broadcast's CPU per delivery, plus, through Redis, one payload at the pipelined "
        "loop's CPU per message; the rest is the request, the database and our code.",
        f"- Other work on the machine during the steps: {', '.join(notes)} of a core.",
        *(line for step in steps for line in logged(step)), "",
    ], chart)


def asked(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps of the rates asked (`--rate`), not those of the search."""
    return [s for s in steps if s["purpose"] == "asked"]


def highest_passing(steps: Sequence[dict[str, Any]]) -> int:
    """The highest rate that kept p99 under 100 ms with all delivered; 0 if none."""
    return max((s["rate"] for s in steps if s["passed"]), default=0)


def pct(share: float | None, digits: int = 2) -> str:
    """A share of a core as a percentage."""
    return "-" if share is None or share != share else f"{100 * share:.{digits}f}%"


def floors_section(step: Step) -> Section:
    """The server beside the bare send pipeline (`bare_send.py`) of the same run: each asked
    rate, then the three figures of issue 16 (marginal CPU, highest rate, idle)."""
    result = step.result
    assert result is not None
    options = result["options"]
    ours = {s["rate"]: s for s in asked(result["steps"])}
    bare = {s["rate"]: s for s in asked(result["floor_steps"])}
    table = Table()
    for rate in sorted(ours):
        s, b = ours[rate], bare.get(rate, {})
        prefix = f"{rate:,}/s:"
        table.add(f"{prefix} p99 send to deliver (bare: {passed_word(b)})",
                  num(s["p99"] * 1e3, 1, " ms"), num(b.get("p99", math.nan) * 1e3, 1, " ms"),
                  times(s["p99"], b.get("p99")), verdict("< 100 ms, all delivered", s["passed"]),
                  Plot(s["p99"] * 1e3, b.get("p99", math.nan) * 1e3, " ms", 1, PIPELINE_NAME,
                       100.0))
        table.add(f"{prefix} CPU per message (server + PostgreSQL + Redis)",
                  num(s["cpu_per_message"] * 1e6, 0, " µs"),
                  num(b.get("cpu_per_message", math.nan) * 1e6, 0, " µs"),
                  times(s["cpu_per_message"], b.get("cpu_per_message")),
                  plot=Plot(s["cpu_per_message"] * 1e6, b.get("cpu_per_message", math.nan) * 1e6,
                            " µs", 0, PIPELINE_NAME))
    found = result["floors"] or {}
    marginal = found.get("marginal")
    if marginal:
        ours_cost, bare_cost = marginal[REALTIME], marginal[BARE]
        for role in (*PIPELINE, "total"):
            judged = role == "total"
            table.add(f"marginal CPU per send, {marginal['low']:,}→{marginal['high']:,}/s: "
                      f"{ROLE_NAMES[role]}", num(micro(ours_cost.get(role)), 0, " µs"),
                      num(micro(bare_cost.get(role)), 0, " µs"),
                      times(ours_cost.get(role), bare_cost.get(role), 2 if judged else 1),
                      judge(f"≤ {TARGET_MARGINAL_OVER_BARE:g}x the bare pipeline's",
                            marginal["ratio"], lambda r: r <= TARGET_MARGINAL_OVER_BARE)
                      if judged else "",
                      Plot(micro(ours_cost.get(role)), micro(bare_cost.get(role)), " µs", 0,
                           PIPELINE_NAME, TARGET_MARGINAL_OVER_BARE * bare_cost[role] * 1e6
                           if judged and bare_cost.get(role) is not None else None))
    highest = found.get("highest")
    if highest:
        how = "searched" if highest["searched"] else "among the rates asked, not searched"
        ceiling = (highest["searched"] and max(highest[REALTIME], highest[BARE])
                   >= highest["ceiling"])
        table.add(f"highest rate with p99 < 100 ms, nothing missing ({how})",
                  num(highest[REALTIME], 0, "/s"), num(highest[BARE], 0, "/s"),
                  share(highest[REALTIME], highest[BARE]),
                  judge(f"≥ {TARGET_RATE_SHARE_OF_BARE:.0%} of the bare pipeline's",
                        highest["ratio"] if highest[BARE] else None,
                        lambda r: r >= TARGET_RATE_SHARE_OF_BARE,
                        f" ({highest['ceiling']:,}/s, `--search-max`, was reached: a floor of "
                        "the figure)" if ceiling else ""),
                  Plot(highest[REALTIME], highest[BARE], "/s", 0, PIPELINE_NAME,
                       TARGET_RATE_SHARE_OF_BARE * highest[BARE]))
    idle = found.get("idle")
    if idle:
        table.add(f"idle, {num(result['connected']['opened'])} sockets open, no traffic, "
                  f"{idle['seconds']:.0f} s: server + PostgreSQL, of a core",
                  pct(idle[REALTIME]), pct(idle[BARE]), times(idle[REALTIME], idle[BARE], 2),
                  judge(f"< {TARGET_IDLE_SHARE:.0%} of a core", idle[REALTIME],
                        lambda r: r < TARGET_IDLE_SHARE),
                  Plot(100 * idle[REALTIME], 100 * idle[BARE], "%", 2, PIPELINE_NAME,
                       100 * TARGET_IDLE_SHARE))
    chart = table.chart("send-floors.svg", "Send floors: the server beside the bare send "
                        "pipeline")
    lines = [
        f"## Send floors (`sustained.py --redis`, the bare send pipeline beside the server, "
        f"{num(options.get('users'))} users, each rate held {num(options.get('seconds'))} s, "
        f"{section_note(step)})", "",
        "The bare send pipeline (`bare_send.py`) does what a one-to-one send needs with none of "
        "our code: one session lookup, the body sealed with AES-256-GCM, one insert, one "
        "`PUBLISH`, the frame written to the recipient's socket. It runs in the same run, on "
        "the same PostgreSQL (a database of its own), through a Redis of its own, with a socket "
        "per user and the same sender (the same pairs in the same order at a rate); each rate "
        "goes to the server, then to it. The raw limit column is the bare pipeline's.", "",
        *link(chart), *table.lines(), "",
    ]
    if marginal:
        lines.append(
            f"- marginal CPU per send: (cores used by the server, PostgreSQL and Redis at "
            f"{marginal['high']:,}/s minus at {marginal['low']:,}/s) / (sends answered per second "
            f"at {marginal['high']:,}/s minus at {marginal['low']:,}/s): what one more send a "
            "second costs, without the fixed cost of the sockets and the loops.")
    if highest:
        lines.append("- highest rate: the highest step that kept p99 under 100 ms with every "
                     "send answered 201 and delivered; the search bisects between the highest "
                     "passing and the lowest failing rate (doubling the highest while none has "
                     f"failed, up to {num(options.get('search_max'))}/s), each step held "
                     f"{num(options.get('search_seconds'))} s, until they are "
                     f"{num(options.get('search_step'))}/s apart.")
    for name, own in ((REALTIME, result["steps"]), (BARE, result["floor_steps"])):
        searched = [s for s in own if s["purpose"] == "search"]
        if searched:
            lines.append(f"- the search, {'the server' if name == REALTIME else 'bare'}: "
                         + ", ".join(f"{s['rate']:,}/s p99 {num(s['p99'] * 1e3, 1)} ms "
                                     f"{passed_word(s)}" for s in searched) + ".")
    if idle:
        by_database = idle["postgres_by_database"]
        seconds = idle["seconds"]

        def part(name: str) -> str:
            return pct(idle["cpu"].get(name, 0.0) / seconds if seconds else None)

        lines.append(
            f"- idle: the server {part('realtime server')}, its backends "
            f"{pct(by_database.get('realtime', 0.0) / seconds)}, PostgreSQL's background "
            f"{pct(by_database.get('background', 0.0) / seconds)} (counted in both); the bare "
            f"server {part('bare server')}, its backends "
            f"{pct(by_database.get('bare', 0.0) / seconds)}; Redis {part('realtime redis')} / "
            f"{part('bare redis')}, the client processes {part('clients')}, other work "
            f"{pct(idle['cpu'].get('others', 0.0) / seconds, 1)}. Most of it is uvicorn's "
            "pings, one per socket every 20 s, in both.")
    notes = [f"{others_share(s['cpu'], s['window']):.0%} ({s['target']}, {s['rate']:,}/s)"
             for s in [*result["steps"], *result["floor_steps"]]]
    lines += [f"- Other work on the machine during the steps: {', '.join(notes)} of a core; "
              "above a few per cent, the rates and the CPU figures are noisy.",
              *logged(step), ""]
    return Section(lines, chart)


def workers_section(one: Step | None, many: Sequence[Step]) -> Section:
    """The Redis rates served by two and four workers, against one worker at the same rate."""
    table = Table()
    single = {s["rate"]: s for s in asked(one.result["steps"])} if one and one.result else {}
    verdicts: list[bool] = []
    for step in many:
        result = step.result
        assert result is not None
        workers = result["options"]["workers"]
        for s in asked(result["steps"]):
            base = single.get(s["rate"], {})
            no_worse = None
            if workers == 2 and base:
                no_worse = s["passed"] or (not base["passed"] and s["p99"] <= base["p99"])
                verdicts.append(no_worse)
            prefix = f"{workers} workers, {s['rate']:,}/s:"
            table.add(f"{prefix} p99 send to deliver ({passed_word(s)}; 1 worker: "
                      f"{passed_word(base)})", num(s["p99"] * 1e3, 1, " ms"),
                      num(base.get("p99", math.nan) * 1e3, 1, " ms"), times(s["p99"],
                                                                        base.get("p99")),
                      verdict("no worse than 1 worker", no_worse) if workers == 2 else "",
                      Plot(s["p99"] * 1e3, base.get("p99", math.nan) * 1e3, " ms", 1,
                           "1 worker"))
            table.add(f"{prefix} CPU per message (server + PostgreSQL + Redis)",
                      num(s["cpu_per_message"] * 1e6, 0, " µs"),
                      num(base.get("cpu_per_message", math.nan) * 1e6, 0, " µs"),
                      times(s["cpu_per_message"], base.get("cpu_per_message")),
                      plot=Plot(s["cpu_per_message"] * 1e6,
                                base.get("cpu_per_message", math.nan) * 1e6, " µs", 0,
                                "1 worker"))
    took = "; ".join(f"{s.result['options']['workers']} workers: {section_note(s)}"
                     for s in many if s.result)
    notes = [f"{others_share(s['cpu'], s['window']):.0%} ({step.result['options']['workers']} "
             f"workers, {s['rate']:,}/s)" for step in many if step.result
             for s in step.result["steps"]]
    headline = (verdict("two workers no worse than one at every rate", all(verdicts))
                if verdicts else "two workers no worse than one: not judged (no run of "
                "one or two workers)")
    chart = table.chart("workers.svg", "Workers: two and four beside one worker")
    return Section([
        f"## Workers (`sustained.py --redis --no-floor --workers N`; {took})", "",
        *link(chart), *table.lines(), "",
        f"Target: {headline}.", "",
        "- The raw limit column is one worker at the same rate: the server's steps of the "
        "sustained run through Redis above (with the floor on, the bare pipeline sat idle beside "
        "it, its sockets open). The CPU of every worker counts as the server's.",
        "- No worse: at each rate, two workers keep p99 under 100 ms with every send answered "
        "and delivered, or, where one worker fails too, their p99 is no higher. CPU per message "
        "is shown, not judged.",
        f"- Other work on the machine during the steps: {', '.join(notes)} of a core.",
        *(line for step in many for line in logged(step)), "",
    ], chart)


def passed_word(step: dict[str, Any]) -> str:
    if not step:
        return "not run"
    return "passed" if step["passed"] else "failed"


def micro(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e6


def judge(target: str, ratio: float | None, met: Callable[[float], bool],
          note: str = "") -> Verdict:
    """A target judged on a ratio; not judged when there is none."""
    if ratio is None or ratio != ratio:
        return verdict(target, None, note)
    return verdict(target, met(ratio), note)


def expiry_section(step: Step, raw: Raw) -> Section:
    result = step.result
    assert result is not None
    table = Table()
    pipelined = raw.redis.get("pipelined", {})
    notes = []
    for run in result["runs"]:
        big = run["due"] + run["pending"] >= TARGET_DUE
        note = "" if big else f" (set with {TARGET_DUE:,} messages; here {run['due']:,})"
        prefix = f"{run['due']:,} due, {run['pending']:,} pending:"
        table.add(f"{prefix} deletions/s", num(run["deletions_per_second"]),
                  f"{num(run['rate'])} asked", share(run["deletions_per_second"], run["rate"]),
                  verdict("≥ 5,000/s sustained", run["rate"] >= 5000
                          and run["deletions_per_second"] >= 5000, note),
                  Plot(run["deletions_per_second"], run["rate"], "/s", 0, "rate asked",
                       5000.0))
        events = run["deletions_per_second"] * (1 + run["recipients"])
        table.add(f"{prefix} `message.deleted` events/s ({1 + run['recipients']} per message)",
                  num(events), num(pipelined.get("per_second")),
                  share(events, pipelined.get("per_second")),
                  plot=Plot(events, pipelined.get("per_second"), "/s", 0,
                            "bare Redis, pipelined"))
        judged = run["commit_p99"] if run["commit_p99"] is not None else run["lag_p99"]
        table.add(f"{prefix} lag p99, expires_at to the commit", num(judged * 1e3, 1, " ms"),
                  target=verdict("< 1 s, none left", judged < 1.0 and run["left"] == 0, note))
        table.add(f"{prefix} CPU per expiry (expirer + PostgreSQL)",
                  num(run["cpu_per_expiry"] * 1e6, 0, " µs"))
        notes.append(f"{run['others_cpu'] / run['wall']:.0%}" if run["wall"] else "-")
    chart = table.chart("expiry.svg", "Expiry: deletions beside the rate asked, events beside "
                        "bare Redis")
    return Section([
        f"## Expiry (`expiry.py`, the real expirer in process, {section_note(step)})", "",
        *link(chart), *table.lines(), "",
        "- deletions/s: against the rate asked, the most there is to delete (a message cannot "
        "go before its expiry); no raw limit of this run bounds it more closely.",
        "- events/s: each deletion tells the sender and every recipient; with Redis they take "
        "the broker's path, against the pipelined bare Redis loop.",
        "- lag and CPU per expiry: PostgreSQL's work, which none of the raw loops measures.",
        f"- Other work on the machine during the expiry: {', '.join(notes)} of a core.", "",
    ], chart)


def files_section(step: Step, raw: Raw) -> Section:
    result = step.result
    assert result is not None
    table = Table()
    notes = []
    moved = [s for s in result["steps"] if s["step"] in ("upload", "download")]
    sizes = {s["size"] for s in moved}
    judged_size = TARGET_FILE_SIZE if TARGET_FILE_SIZE in sizes else max(sizes, default=0)
    floor_share = result.get("floor_target_share", 0.7)
    for s in moved:
        size = f"{s['size'] / 2**20:g} MiB"
        against = "encrypt" if s["step"] == "upload" else "decrypt"
        table.add(f"{size} {s['step']}s, {s['files']} files", num(s["mb_per_second"], 0, " MB/s"),
                  f"{num(s['raw'])} MB/s ({against})", share(s["mb_per_second"], s["raw"]),
                  verdict("≥ 50% of raw", bool(s["passed"])),
                  Plot(s["mb_per_second"], s["raw"], " MB/s", 0, f"raw AES-GCM {against}",
                       0.5 * s["raw"]))
        if s.get("floor") is not None:
            note = ("" if s["size"] == TARGET_FILE_SIZE
                    else f" (set at {TARGET_FILE_SIZE / 2**20:g} MiB; here {size})")
            table.add(f"{size} {s['step']}s, against PostgreSQL's own",
                      num(s["mb_per_second"], 0, " MB/s"),
                      f"{num(s['floor'])} MB/s ({s['floor_way']})",
                      share(s["mb_per_second"], s["floor"]),
                      verdict(f"≥ {floor_share:.0%} of PostgreSQL's own",
                              bool(s["floor_passed"]), note)
                      if s["size"] == judged_size else "",
                      Plot(s["mb_per_second"], s["floor"], " MB/s", 0,
                           f"PostgreSQL, {s['floor_way']}",
                           floor_share * s["floor"] if s["size"] == judged_size else None))
        notes.append(f"{others_share(s['cpu'], s['window']):.0%} ({size} {s['step']})")
    ways = []
    for size, kind in sorted({(w["size"], w["step"]) for w in result.get("floor") or []},
                             key=lambda pair: (pair[0], pair[1] != "upload")):
        these = [w for w in result["floor"] if w["size"] == size and w["step"] == kind]
        fastest = max(w["mb_per_second"] for w in these)
        ways.append(f"{size / 2**20:g} MiB {kind}s: " + ", ".join(
            f"`{w['way']}` {num(w['mb_per_second'])}{'*' if w['mb_per_second'] == fastest else ''}"
            for w in these))
    chart = table.chart("files.svg", "Files: uploads and downloads beside raw AES-GCM and "
                        "PostgreSQL's own")
    return Section([
        f"## Files (`files.py`, {section_note(step)})", "",
        *link(chart), *table.lines(), "",
        "- uploads against raw AES-256-GCM encryption, downloads against decryption, both on "
        "one core in the same run: a file is sealed (or opened) once as it streams through.",
        "- PostgreSQL's own: the fastest way the benchmark itself wrote (COPY) or read the same "
        "number of files of the same size, sealed as the server seals them, into and out of the "
        "server's own PostgreSQL in the same run (`files_floor.py`): only PostgreSQL's work "
        "and the driver's, no HTTP, no sealing, no budgets. The target is judged at "
        f"{TARGET_FILE_SIZE / 2**20:g} MiB; the other sizes show the ratio.",
        *([f"- PostgreSQL's ways, MB/s (the floor, the fastest, marked *): {'; '.join(ways)}."]
          if ways else []),
        f"- Other work on the machine during the steps: {', '.join(notes)} of a core.",
        *logged(step), "",
    ], chart)


def neighbour_section(step: Step) -> Section:
    result = step.result
    assert result is not None
    quiet, attacked = result["runs"]
    met = [target["met"] for target in result["targets"]]
    mib = 2**20
    table = Table()
    for name, key in (("p50", "p50"), ("p99", "p99")):
        table.add(f"ordinary send-to-deliver {name}, attacked",
                  num(attacked["sends"][key] * 1e3, 1, " ms"),
                  f"{num(quiet['sends'][key] * 1e3, 1, ' ms')} (quiet run)",
                  times(attacked["sends"][key], quiet["sends"][key]),
                  verdict("≤ 2x quiet and < 100 ms", met[0]) if key == "p99" else "",
                  Plot(attacked["sends"][key] * 1e3, quiet["sends"][key] * 1e3, " ms", 1,
                       "quiet run", min(2e3 * quiet["sends"][key], 100.0)
                       if key == "p99" else None))
    table.add("ordinary login p99, attacked", num(attacked["logins"]["p99"] * 1e3, 1, " ms"),
              f"{num(quiet['logins']['p99'] * 1e3, 1, ' ms')} (quiet run)",
              times(attacked["logins"]["p99"], quiet["logins"]["p99"]),
              plot=Plot(attacked["logins"]["p99"] * 1e3, quiet["logins"]["p99"] * 1e3, " ms", 1,
                        "quiet run"))
    table.add("ordinary errors (quiet + attacked)",
              num(quiet["ordinary_errors"] + attacked["ordinary_errors"]),
              target=verdict("none", met[1]))
    outcomes: dict[str, int] = {}
    for row in attacked["attacker"]["outcomes"].values():
        for status, count in row.items():
            outcomes[status] = outcomes.get(status, 0) + count
    table.add("attacker's 429 / 500 answers",
              f"{num(outcomes.get('429', 0))} / {num(outcomes.get('500', 0))}",
              target=verdict("some 429, no 500", met[2]))
    peak = max(quiet["node_peak"], attacked["node_peak"])
    table.add("node's peak memory (server RSS + PostgreSQL PSS)", num(peak / mib, 0, " MiB"),
              f"{num(quiet['node_peak'] / mib, 0, ' MiB')} (quiet run)",
              times(attacked["node_peak"], quiet["node_peak"]),
              verdict("< 300 MiB", met[3]),
              Plot(peak / mib, quiet["node_peak"] / mib, " MiB", 0,
                   "quiet run", 300.0))
    answers = ", ".join(f"{status}: {count:,}" for status, count in sorted(outcomes.items()))
    closes = ", ".join(f"{code}: {count:,}"
                       for code, count in sorted(attacked["attacker"]["closes"].items()))
    others = ", ".join(f"{run['cpu'].get('others', 0.0):.0%} ({run['name']})"
                       for run in result["runs"])
    chart = table.chart("neighbour.svg", "Neighbour: ordinary users under attack beside the "
                        "quiet run")
    return Section([
        f"## Neighbour (`neighbour.py`, {section_note(step)})", "",
        *link(chart), *table.lines(), "",
        "- Against the quiet run: the same ordinary traffic on the same server just before, "
        "without the attacker.",
        f"- The attacker's answers, all calls: {answers or 'none'}; its sockets closed by the "
        f"server: {closes or 'none'}.",
        f"- Other work on the machine during the runs: {others} of a core.",
        *logged(step), "",
    ], chart)


# --- the report --------------------------------------------------------------------------------


def report(steps: Sequence[Step], header: dict[str, str]) -> Report:
    """results.md's text, and the charts its sections link to."""
    by_name = {step.name: step for step in steps}
    raw = raw_limits(by_name)
    sustained = [step for step in steps if step.name.startswith("sustained_")]
    redis = [step for step in sustained if step.result and step.result["options"]["redis"]]
    floored = [step for step in redis if step.result and step.result.get("floors")]
    workers = [step for step in steps if step.name.startswith("workers_")]
    sections = [
        Section(raw_section(raw, by_name)),
        fanout_section(by_name["fanout"], raw) if by_name["fanout"].result
        else failure(by_name["fanout"]),
        *([sustained_section([s for s in sustained if s.result], raw)]
          if any(s.result for s in sustained) else []),
        *(failure(step) for step in sustained if not step.result),
        *(floors_section(step) for step in floored),
        *([workers_section(redis[0] if redis else None, [s for s in workers if s.result])]
          if any(s.result for s in workers) else []),
        *(failure(step) for step in workers if not step.result),
        expiry_section(by_name["expiry"], raw) if by_name["expiry"].result
        else failure(by_name["expiry"]),
        files_section(by_name["files"], raw) if by_name["files"].result
        else failure(by_name["files"]),
        *([neighbour_section(by_name["neighbour"]) if by_name["neighbour"].result
           else failure(by_name["neighbour"])] if "neighbour" in by_name else []),
    ]
    lines = [
        "# Benchmark results", "",
        "Written by `make bench` (`bench/all.py`): every benchmark at sizes that finish in about "
        "twelve minutes on this machine, each figure beside the raw limit or the floor measured "
        "in the same run. A ratio is ours as a share of the raw limit for a rate, and as a "
        "multiple of it for a time or a cost. `bench/README.md` describes each benchmark, its "
        "columns and its targets.", "",
        "Each section's chart draws its table: ours beside the floor, each on a scale of its "
        "own, the ratio at the right, green where its target is met and red where it is missed; "
        "a dashed line marks the target where it falls near the bars.", "",
        "| | |", "|---|---|",
        *(f"| {name} | {value} |" for name, value in header.items()), "",
        *(line for section in sections for line in section.lines),
    ]
    return Report("\n".join(lines).rstrip() + "\n",
                  [section.chart for section in sections if section.chart])


def link(chart: Chart | None) -> list[str]:
    """The Markdown image of a section's chart, if it has one."""
    return [f"![{chart.title}]({chart.file})", ""] if chart else []


def failure(step: Step) -> Section:
    return Section([f"## {step.name}", "", f"Failed: `{step.shown}`: {step.error}.", ""])
