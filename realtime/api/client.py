"""The browser client: its page at /, the page that opens shareable links at /s/, and their
files (plain HTML, CSS and ES modules) under /static/."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

log = logging.getLogger(__name__)


def static_dir() -> Path:
    """The browser client's files: inside the package when installed, beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "static"
    return inside if inside.is_dir() else package.parent / "static"


# The browser client: plain HTML, CSS and ES modules, served at / and /static/.
STATIC_DIR = static_dir()
# The page that opens a shareable link, for people without an account: its own stricter policy
# (no form is ever submitted), kept out of caches, referrers and search engines.
SHARE_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-robots-tag": "noindex",
}
def client_routes() -> list[BaseRoute]:
    """The browser client's page at /, the shareable links' page at /s/, and their files under
    /static/, when they are there."""
    if not (STATIC_DIR / "index.html").is_file():
        log.warning("no browser client at %s: only the API is served", STATIC_DIR)
        return []

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    async def share_page(request: Request) -> Response:
        return FileResponse(
            STATIC_DIR / "share.html", media_type="text/html; charset=utf-8",
            headers=SHARE_PAGE_HEADERS,
        )

    async def to_share_page(request: Request) -> Response:
        """Send `/s` to `/s/`, keeping no query (the link's token is in the fragment, which
        never reaches the server and which the browser keeps)."""
        return RedirectResponse("/s/", status_code=308)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/s/", share_page, methods=["GET", "HEAD"]),
        Route("/s", to_share_page, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
