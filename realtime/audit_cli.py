"""`realtime audit verify` and `realtime audit export`: the trail checked and read from the
command line, on the database of the settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from realtime.audit import Chainer, export_since, verify
from realtime.config import Settings
from realtime.db import Database

WithDatabase = Callable[[Settings, Callable[[Database], Awaitable[Any]]], Any]


def add_audit(commands: Any, with_database: WithDatabase) -> None:
    audit = commands.add_parser("audit", help="verify or export the audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "verify", help="walk the chain; name the first record edited, removed or reordered",
    )
    check.set_defaults(command=lambda settings, args: cmd_verify(settings, with_database))
    export = actions.add_parser("export", help="write the chained records as JSON lines")
    export.add_argument("--since", required=True, type=_moment, metavar="TIME",
                        help="RFC 3339, such as 2026-12-01T00:00:00Z")
    export.add_argument("--output", type=Path, help="a file (default: standard output)")
    export.set_defaults(
        command=lambda settings, args: cmd_export(settings, args, with_database)
    )


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z)")
    return moment


def cmd_verify(settings: Settings, with_database: WithDatabase) -> int:
    async def work(db: Database) -> Any:
        await Chainer(db, retention=settings.audit_retention).chain_once()  # what is committed
        return await verify(db)

    verified = with_database(settings, work)
    if verified.broken is None:
        print(f"the audit trail verifies: {verified.checked} records chained in order")
        return 0
    broken = verified.broken
    which = f"record {broken.record_id}" if broken.record_id is not None else "the head"
    print(f"the audit trail breaks at position {broken.position} ({which}): {broken.reason};"
          f" {verified.checked} records before it verify", file=sys.stderr)
    return 1


def cmd_export(settings: Settings, args: argparse.Namespace, with_database: WithDatabase) -> int:
    async def work(db: Database) -> int:
        # What is committed and not chained yet is chained first, so that it is exported too.
        await Chainer(db, retention=settings.audit_retention).chain_once()
        count = 0
        out = args.output.open("wb") if args.output else sys.stdout.buffer
        try:
            async for line in export_since(db, args.since):
                out.write(line)
                count += 1
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
        return count

    count = with_database(settings, work)
    print(f"exported {count} records", file=sys.stderr)
    return 0
