"""The page that opens a shareable link (`/s/`) as the app serves it: its headers, its redirect,
and the rule that it loads nothing from another origin."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from realtime.api.client import STATIC_DIR
from realtime.api.headers import CONTENT_SECURITY_POLICY

SHARE_PAGE = STATIC_DIR / "share.html"
SHARE_SCRIPTS = sorted((STATIC_DIR / "js" / "share").glob("*.js"))
STRICT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Every module import: `import … from "x"`, `import "x"`, `export … from "x"`, `import("x")`.
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']""")


class References(HTMLParser):
    """Collect every address an HTML document names in a `src` or `href`, and its inline scripts
    and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []
        self.inline: list[str] = []
        self._tag: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.addresses += [value for key, value in attrs if key in {"src", "href"} and value]
        if any(key.startswith("on") or key == "style" for key, _ in attrs):
            self.inline.append(f"<{tag}> with an inline handler or style")
        if tag == "style" or (tag == "script" and "src" not in named):
            self._tag = tag

    def handle_data(self, data: str) -> None:
        if self._tag and data.strip():
            self.inline.append(f"<{self._tag}> holding code")

    def handle_endtag(self, tag: str) -> None:
        self._tag = None


def page_references() -> References:
    parsed = References()
    parsed.feed(SHARE_PAGE.read_text())
    return parsed


async def test_the_share_page_is_served_under_its_own_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    """`/s/` answers the share page, never cached, sending no referrer, kept out of search
    engines, under a policy that allows only the server's own scripts, styles and requests."""
    answer = await client.get("/s/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "Someone shared a secret with you" in answer.text
    assert answer.headers.get_list("content-security-policy") == [STRICT_POLICY]
    assert answer.headers.get_list("cache-control") == ["no-store"]
    assert answer.headers.get_list("referrer-policy") == ["no-referrer"]
    assert answer.headers.get_list("x-robots-tag") == ["noindex"]


async def test_the_share_page_keeps_the_headers_every_answer_carries(
    client: httpx.AsyncClient,
) -> None:
    """The share page still carries the app's other security headers, each once."""
    answer = await client.get("/s/")
    for name, value in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ]:
        assert answer.headers.get_list(name) == [value], name


async def test_the_main_page_keeps_its_own_headers(client: httpx.AsyncClient) -> None:
    """`/` keeps the app's policy (forms may post to the server) and may be indexed as before:
    the share page's headers are its own."""
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.headers.get_list("content-security-policy") == [
        CONTENT_SECURITY_POLICY.decode()
    ]
    assert "x-robots-tag" not in answer.headers


async def test_head_of_the_share_page_answers_its_headers_without_a_body(
    client: httpx.AsyncClient,
) -> None:
    """HEAD /s/ answers 200 with the page's headers and no body."""
    answer = await client.head("/s/")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-security-policy"] == STRICT_POLICY
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-robots-tag"] == "noindex"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/s", "/s?token=stray"], ids=["bare", "with a query"])
async def test_s_without_a_slash_redirects_to_the_share_page(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """`/s` sends the browser on to `/s/`, dropping any query (the browser keeps the
    fragment, which holds the link's token)."""
    answer = await client.request(method, path)
    assert answer.status_code == 308
    assert answer.headers["location"] == "/s/"


def test_the_share_page_loads_nothing_from_another_origin() -> None:
    """Every address the page names is the server's own `/static/` file (or inline data): no
    script, style, font or image comes from elsewhere, and nothing runs inline."""
    parsed = page_references()
    assert parsed.addresses, "the page names no files"
    foreign = [
        address for address in parsed.addresses
        if not (address.startswith("/static/") or address.startswith("data:"))
    ]
    assert foreign == []
    assert parsed.inline == []
    for stylesheet in ("app.css", "share.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", (STATIC_DIR / stylesheet).read_text())


async def test_every_file_the_share_page_names_is_served(client: httpx.AsyncClient) -> None:
    """Each stylesheet and script the page links to answers 200 from this server."""
    for address in page_references().addresses:
        if address.startswith("/static/"):
            assert (await client.get(address)).status_code == 200, address


def test_the_share_modules_import_only_files_of_this_server() -> None:
    """Every module of the share page imports a file that exists under static/js, by a
    relative path: no module is fetched from another site, none is missing."""
    assert SHARE_SCRIPTS, "no share page modules"
    js_root = (STATIC_DIR / "js").resolve()
    for script in SHARE_SCRIPTS:
        for target in IMPORT.findall(script.read_text()):
            assert target.startswith(("./", "../")), f"{script.name} imports {target}"
            resolved = (script.parent / target).resolve()
            assert resolved.is_relative_to(js_root) and resolved.is_file(), (
                f"{script.name} imports {target}"
            )


def test_the_share_modules_keep_the_token_out_of_addresses_and_storage() -> None:
    """The page keeps the link's token in memory: no module writes to web storage or cookies,
    or puts anything in a URL's query."""
    forbidden = re.compile(r"localStorage|sessionStorage|indexedDB|document\.cookie|\?token=")
    offenders = [
        f"{path.name}:{number}"
        for path in SHARE_SCRIPTS
        for number, line in enumerate(Path(path).read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
