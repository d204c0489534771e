"""Opening shareable links: how long an open takes for each way a link can fail to open.

The contract says an unknown, expired, used-up and revoked link look the same from outside:
the same status and body, and about the same time. This bench starts `realtime serve` on the
embedded defaults, makes links of each kind (used up by their one view, revoked by their
creator, expired and deleted by the expirer, and tokens of no link at all), then opens them in
a shuffled order, one at a time over one keep-alive connection, and prints for each kind the
median and the 90th percentile of the time to the answer, and the spread of the medians. An
open that succeeds (a live link) is measured beside them, for scale.

    .venv/bin/python bench/link_opens.py --per-kind 300
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import harness
import httpx

from realtime import crypto

KINDS = ("unknown", "expired", "used", "revoked", "live")


async def make_links(http: httpx.AsyncClient, count: int, *, expires_in: timedelta) -> list[dict[str, Any]]:
    made = []
    for _ in range(count):
        answer = await http.post("/api/links", json={
            "subject": "bench", "body": "a secret",
            "expires_at": (datetime.now(UTC) + expires_in).isoformat(),
        })
        answer.raise_for_status()
        made.append(answer.json())
    return made


def token(link: dict[str, Any]) -> str:
    return str(link["url"]).split("#", 1)[1]


async def prepare(http: httpx.AsyncClient, per_kind: int) -> list[tuple[str, str]]:
    """(kind, token) pairs, `per_kind` of each kind, shuffled."""
    hour = timedelta(hours=1)
    used = await make_links(http, per_kind, expires_in=hour)
    for link in used:
        (await http.post("/api/links/open", json={"token": token(link)})).raise_for_status()
    revoked = await make_links(http, per_kind, expires_in=hour)
    for link in revoked:
        (await http.delete(f"/api/links/{link['id']}")).raise_for_status()
    expired = await make_links(http, per_kind, expires_in=timedelta(seconds=2))
    live = await make_links(http, per_kind, expires_in=hour)
    await asyncio.sleep(3.5)  # past their expiry, and the expirer's second
    tokens = [("unknown", crypto.new_token()) for _ in range(per_kind)]
    tokens += [("used", token(link)) for link in used]
    tokens += [("revoked", token(link)) for link in revoked]
    tokens += [("expired", token(link)) for link in expired]
    tokens += [("live", token(link)) for link in live]
    random.shuffle(tokens)
    return tokens


async def measure(http: httpx.AsyncClient, tokens: list[tuple[str, str]]) -> dict[str, Any]:
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    bodies: dict[str, set[tuple[int, bytes]]] = {kind: set() for kind in KINDS}
    for kind, value in tokens:
        started = time.perf_counter()
        answer = await http.post("/api/links/open", json={"token": value, "passphrase": None})
        times[kind].append(time.perf_counter() - started)
        if kind != "live":
            bodies[kind].add((answer.status_code, answer.content))
    answers = {answer for kind, seen in bodies.items() for answer in seen}
    return {"times": times, "answers": answers}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=300, help="opens of each kind (300)")
    args = parser.parse_args()
    settings = {"REALTIME_LINKS_PER_HOUR": "1000000", "REALTIME_LINK_OPENS_PER_MINUTE": "1000000",
                "REALTIME_REQUESTS_PER_MINUTE": "1000000"}
    async with harness.work_directory() as workdir, harness.realtime_server(
        workdir, redis=False, ws=harness.SERVER_WS, settings=settings
    ) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {await harness.login_admin(http)}"
        tokens = await prepare(http, args.per_kind)
        result = await measure(http, tokens)
    print(f"opens of shareable links, {args.per_kind} of each kind, one at a time")
    print(f"{'kind':<10}{'median ms':>12}{'p90 ms':>10}")
    medians = {}
    for kind, times in result["times"].items():
        ordered = sorted(times)
        medians[kind] = statistics.median(ordered) * 1000
        p90 = ordered[int(len(ordered) * 0.9)] * 1000
        print(f"{kind:<10}{medians[kind]:>12.2f}{p90:>10.2f}")
    failing = [medians[kind] for kind in KINDS if kind != "live"]
    print(f"spread of the medians of the four that do not open: "
          f"{max(failing) - min(failing):.2f} ms")
    print(f"distinct answers among them: {len(result['answers'])} "
          f"({', '.join(str(status) for status, _ in result['answers'])})")
    return 0 if len(result["answers"]) == 1 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
