"""The browser client as the app serves it: its page, its files, and the rules they keep."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from realtime.api.client import STATIC_DIR

SCRIPTS = sorted(STATIC_DIR.rglob("*.js"))


async def test_the_page_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    """`/` is the client's page, under a policy that runs only the server's own scripts and
    lets no other site frame it, with the headers a scanner expects."""
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cross-origin-opener-policy"] == "same-origin"


async def test_every_module_the_page_loads_is_served(client: httpx.AsyncClient) -> None:
    """Each script and stylesheet of the client answers 200 with its type; a path outside
    static/ does not."""
    assert SCRIPTS, f"no client scripts under {STATIC_DIR}"
    for script in SCRIPTS:
        answer = await client.get("/static/" + script.relative_to(STATIC_DIR).as_posix())
        assert answer.status_code == 200, script
        assert "javascript" in answer.headers["content-type"], script
    assert (await client.get("/static/../pyproject.toml")).status_code == 404


def test_the_page_holds_no_inline_script_or_style() -> None:
    """index.html loads scripts by `src` only and has no inline handlers or style attributes,
    which the policy would refuse anyway."""
    page = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)
    assert not re.search(r"\sstyle\s*=", page, re.IGNORECASE)


def test_no_script_writes_html_from_strings() -> None:
    """No module sets innerHTML or outerHTML, inserts HTML text or writes the document: server
    data only ever reaches the page as text."""
    forbidden = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(")
    offenders = [
        f"{path.relative_to(STATIC_DIR)}:{number}"
        for path in SCRIPTS
        for number, line in enumerate(Path(path).read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
