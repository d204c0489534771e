"""`realtime share`: a script makes a link of its standard input with a session token from the
environment, and prints only the link; what goes wrong is said on standard error."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from tests.conftest import MakeUser
from tests.live_server import LiveServer
from tests.test_links_api import listed, open_link, token_of

SHARE_TIMEOUT = 60.0


async def share(
    *args: str, stdin: bytes, token: str | None
) -> tuple[int, str, str]:
    """Run `python -m realtime share ARGS` with `stdin`; return its status, output, errors."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REALTIME_")}
    if token is not None:
        env["REALTIME_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "realtime", "share", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(SHARE_TIMEOUT):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_share_prints_a_link_that_opens_to_the_secret_with_its_passphrase(
    live: LiveServer, make_user: MakeUser, tmp_path: Path
) -> None:
    """With --passphrase-stdin the first line is the passphrase and the rest the secret; the
    link printed alone on standard output opens with it, shows the secret and the file, and
    has the views and expiry asked for."""
    alice = await make_user(on=live)
    attached = tmp_path / "id_ed25519.pub"
    attached.write_bytes(b"ssh-ed25519 AAAA operator")
    status, out, err = await share(
        live.url, "--expires-in", "1h", "--views", "2", "--passphrase-stdin",
        "--subject", "db credentials", "--file", str(attached),
        stdin=b"a passphrase line\nuser: app\npassword: hunter22\n", token=alice.token,
    )
    assert status == 0, err
    (url,) = out.split()
    assert url.startswith(f"{live.url}/s/#")
    (link,) = await listed(alice)
    assert (link["subject"], link["max_views"], link["has_passphrase"]) == (
        "db credentials", 2, True
    )
    async with httpx.AsyncClient(base_url=live.url) as stranger:
        opened = await open_link(stranger, token_of({"url": url}), "a passphrase line")
    assert opened.status_code == 200, opened.text
    assert opened.json()["body"] == "user: app\npassword: hunter22\n"
    assert [a["name"] for a in opened.json()["attachments"]] == ["id_ed25519.pub"]


async def test_share_without_a_token_or_secret_or_with_a_bad_one_says_why(
    live: LiveServer, make_user: MakeUser
) -> None:
    """No token in the environment, an empty standard input, a session that is not one and an
    expiry the server refuses: each exits 1 with a reason on standard error and prints no
    link."""
    alice = await make_user(on=live)
    cases = [
        (("--expires-in", "1h"), b"secret", None, "REALTIME_TOKEN"),
        (("--expires-in", "1h"), b"  \n", alice.token, "no secret"),
        (("--expires-in", "1h"), b"secret", "not-a-session", "401"),
        (("--expires-in", "40d"), b"secret", alice.token, "expires_at"),
    ]
    for args, stdin, token, reason in cases:
        status, out, err = await share(live.url, *args, stdin=stdin, token=token)
        assert (status, out) == (1, ""), (args, err)
        assert reason in err
    assert await listed(alice) == []
