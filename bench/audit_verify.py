"""How long `realtime audit verify` takes over a long chain, and what chaining costs.

It starts a private embedded PostgreSQL in a temporary directory, applies the migrations,
copies in N audit records (each as a send writes it: an actor, `message.sent`, a message id, an
address, `{"recipients": 1}`), chains them all with the real chainer (`realtime.audit.Chainer`,
5,000 a transaction), then walks the chain with the real `realtime.audit.verify`, and prints
both times and rates. Nothing outside the temporary directory is touched.

    .venv/bin/python bench/audit_verify.py [--records 1000000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.audit import Chainer, verify
from realtime.config import load_settings
from realtime.db import EmbeddedPostgres, open_database
from realtime.migrate import apply_migrations

TARGET_SECONDS = 30.0  # the issue's: 1,000,000 records verified in under 30 s
COPY_BATCH = 100_000


async def seed(url: str, count: int) -> None:
    """Copy in `count` unchained records, a send's each."""
    conn = await asyncpg.connect(url)
    try:
        actors = [uuid.uuid4() for _ in range(1000)]
        start = datetime.now(UTC) - timedelta(days=1)
        for first in range(0, count, COPY_BATCH):
            rows = [
                (start + timedelta(microseconds=n * 50), actors[n % 1000], "message.sent",
                 "message", uuid.uuid4(), "10.0.0.7", "ok", '{"recipients": 1}')
                for n in range(first, min(count, first + COPY_BATCH))
            ]
            await conn.copy_records_to_table(
                "audit_records", records=rows,
                columns=["at", "actor_id", "action", "target_kind", "target_id", "address",
                         "outcome", "detail"],
            )
    finally:
        await conn.close()


async def run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="audit-verify-") as workdir:
        postgres = EmbeddedPostgres(Path(workdir) / "postgres", delete_on_stop=True)
        url = await asyncio.to_thread(postgres.start)
        try:
            conn = await asyncpg.connect(url)
            await apply_migrations(conn)
            await conn.close()
            started = time.perf_counter()
            await seed(url, count)
            seeded = time.perf_counter() - started
            settings = load_settings({"REALTIME_DATABASE_URL": url})
            async with open_database(settings) as db:
                started = time.perf_counter()
                chained = await Chainer(db, retention=timedelta(days=365)).chain_once()
                chaining = time.perf_counter() - started
                started = time.perf_counter()
                verified = await verify(db)
                verifying = time.perf_counter() - started
            if chained != count or verified.checked != count or verified.broken is not None:
                raise SystemExit(f"chained {chained}, verified {verified}: expected {count}")
        finally:
            await asyncio.to_thread(postgres.stop)
    return {"records": count, "seed_s": seeded, "chain_s": chaining, "verify_s": verifying,
            "chain_per_s": count / chaining, "verify_per_s": count / verifying}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    figures = asyncio.run(run(args.records))
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{figures['records']:,} records: copied in {figures['seed_s']:.1f} s, chained in "
          f"{figures['chain_s']:.1f} s ({figures['chain_per_s']:,.0f}/s), verified in "
          f"{figures['verify_s']:.1f} s ({figures['verify_per_s']:,.0f}/s)")
    met = figures["verify_s"] < TARGET_SECONDS * figures["records"] / 1_000_000
    print(f"  [{'met' if met else 'MISSED'}] 1,000,000 records verified in under "
          f"{TARGET_SECONDS:.0f} s (scaled to {figures['records']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
