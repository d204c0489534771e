"""The table of seq sequences both seq trackers are tested against: the browser client's and
the load tester's (`tests/fixtures/seq_cases.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEQ_CASES_FILE = Path(__file__).parent / "fixtures" / "seq_cases.json"
SEQ_CASES: list[dict[str, Any]] = json.loads(SEQ_CASES_FILE.read_text())["cases"]
SEQ_CASE_NAMES = [case["name"] for case in SEQ_CASES]


def applied_seqs(case: dict[str, Any]) -> list[int]:
    """The seqs a client applies, in the order they arrive: the new ones."""
    return [step["frame"] for step in case["steps"] if step.get("outcome") == "new"]


def resumes_asked(case: dict[str, Any]) -> list[int]:
    """The seqs the client asks to resume after, one per reconnection that missed something."""
    return [step["resume_after"] for step in case["steps"]
            if "hello" in step and step["resume_after"] is not None]
