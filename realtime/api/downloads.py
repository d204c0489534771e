"""Files sent back to a browser: streamed, as downloads, never as content it would run."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import StreamingResponse

from realtime.api.fields import Response as Model
from realtime.files import Download
from realtime.models import FileInfo

# Served under their own type: a browser shows them inertly, or only saves them.
SAFE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "application/pdf", "application/zip", "text/plain",
})
NEUTRAL_TYPE = "application/octet-stream"


class FileOut(Model):
    name: str
    size: int
    content_type: str


def file_out(info: FileInfo) -> FileOut:
    return FileOut(name=info.name, size=info.size, content_type=info.content_type)


def content_disposition(name: str) -> str:
    """`attachment` with the name twice: plain ASCII for old clients, and RFC 6266's UTF-8
    form; neither can break out of the header."""
    fallback = "".join(
        ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in name
    ) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def stream_file(download: Download) -> StreamingResponse:
    info = download.info
    media_type = info.content_type if info.content_type in SAFE_TYPES else NEUTRAL_TYPE
    if media_type == "text/plain":
        media_type = "text/plain; charset=utf-8"
    return StreamingResponse(
        download.chunks,
        media_type=media_type,
        headers={
            "content-length": str(info.size),
            "content-disposition": content_disposition(info.name),
            "content-security-policy": "default-src 'none'; sandbox",
        },
    )

