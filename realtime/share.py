"""`realtime share`: make a shareable link from a script, as a client of the deployment.

It speaks only the wire contract: a session token from the environment, optional file uploads,
then `POST /api/links`; it prints the link and nothing else on standard output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx

TOKEN_VARIABLE = "REALTIME_TOKEN"  # noqa: S105 (the name of the variable, not a secret)
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class ShareError(Exception):
    """What stopped the link from being made, said for the person running the command."""


@dataclass(frozen=True)
class ShareRequest:
    url: str
    token: str = field(repr=False)
    secret: str = field(repr=False)
    subject: str
    expires_in: timedelta
    views: int = 1
    passphrase: str | None = field(default=None, repr=False)
    files: tuple[Path, ...] = ()
    email: tuple[str, ...] = ()
    note: str = ""


def read_secret(stdin: TextIO, *, passphrase_first: bool) -> tuple[str, str | None]:
    """The secret from standard input; with `passphrase_first`, its first line is the
    passphrase and the rest the secret."""
    text = stdin.read()
    passphrase = None
    if passphrase_first:
        first, _, text = text.partition("\n")
        passphrase = first.rstrip("\r")
        if not passphrase:
            raise ShareError("--passphrase-stdin: the first line of standard input is empty")
    if not text.strip():
        raise ShareError("nothing to share: standard input holds no secret")
    return text, passphrase


def share(request: ShareRequest) -> str:
    """Upload the files, create the link, and return its URL."""
    base = request.url.rstrip("/")
    headers = {"Authorization": f"Bearer {request.token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT) as http:
            attachments = [_upload(http, path) for path in request.files]
            body: dict[str, Any] = {
                "subject": request.subject, "body": request.secret,
                "expires_at": (datetime.now(UTC) + request.expires_in).isoformat(),
                "max_views": request.views, "passphrase": request.passphrase,
                "attachments": attachments,
            }
            if request.email:
                body["email"] = {"to": list(request.email), "note": request.note}
            answer = http.post("/api/links", json=body)
    except httpx.HTTPError as exc:
        raise ShareError(f"{base} did not answer: {type(exc).__name__}") from None
    if answer.status_code != 201:
        raise ShareError(_problem(answer))
    url: str = answer.json()["url"]
    return url


def _upload(http: httpx.Client, path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as data:
            answer = http.post("/api/uploads", params={"name": path.name}, content=data,
                               headers={"Content-Type": "application/octet-stream"})
    except OSError as exc:
        raise ShareError(f"{path}: {exc.strerror}") from None
    if answer.status_code != 201:
        raise ShareError(f"{path}: {_problem(answer)}")
    return {"kind": "file", "upload_id": answer.json()["upload_id"]}


def _problem(answer: httpx.Response) -> str:
    """The contract's error as one line: status, message, and the fields at fault."""
    try:
        error = answer.json()["error"]
        fields = error.get("fields") or {}
        detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
        return f"{answer.status_code} {error['message']}" + (f" ({detail})" if detail else "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{answer.status_code} {answer.reason_phrase}"

