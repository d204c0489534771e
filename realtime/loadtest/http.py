"""The deployment's HTTP API as the load tester calls it: one client per URL, answers as JSON."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from realtime.loadtest.options import LoadTestError

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RATE_LIMIT_RETRIES = 20
CONNECTIONS_PER_CLIENT = 4


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded JSON, or None
    retry_after: float | None = None  # from a 429's Retry-After

    @property
    def problem(self) -> str:
        """The contract's error message, or the status alone."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            error = self.body["error"]
            fields = error.get("fields") or {}
            detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
            return f"{self.status} {error.get('message', '')}" + (f" ({detail})" if detail else "")
        return str(self.status)


class Deployment:
    """HTTP clients for every URL of the deployment; `node` picks one by a number, round-robin.

    `connections` to each URL are shared by clients of CONNECTIONS_PER_CLIENT each: a client
    looks at every connection of its pool on each request (a system call each), which with 64
    in one pool cost more CPU than the request itself.
    """

    def __init__(self, urls: tuple[str, ...], *, connections: int) -> None:
        self.urls = tuple(url.rstrip("/") for url in urls)
        per_client = min(connections, CONNECTIONS_PER_CLIENT)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        # Client i serves URL i modulo the URLs, so that `node` picks the URL as before.
        self._clients = [
            httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits)
            for _ in range(-(-connections // per_client)) for url in self.urls
        ]

    async def __aenter__(self) -> Deployment:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))

    def websocket_url(self, node: int) -> str:
        url = self.urls[node % len(self.urls)]
        scheme, rest = url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    async def call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None,
        node: int = 0,
    ) -> Answer:
        """One request; transport failures raise `httpx.TransportError`."""
        client = self._clients[node % len(self._clients)]
        headers = {"Authorization": f"Bearer {token}"} if token else None
        response = await client.request(method, path, json=json, headers=headers)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return Answer(response.status_code, body, _seconds(response.headers.get("retry-after")))

    async def setup_call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None,
        expect: int = 200, fields: tuple[str, ...] = (),
    ) -> Any:
        """A call of the set-up: waits out 429s, and stops the test on any other failure or an
        answer without the JSON `fields` it must have."""
        for _ in range(RATE_LIMIT_RETRIES):
            try:
                answer = await self.call(method, path, token=token, json=json)
            except httpx.TransportError as exc:
                raise LoadTestError(f"{method} {self.urls[0]}{path}: {exc!r}") from None
            if answer.status != 429:
                break
            await asyncio.sleep(min(max(answer.retry_after or 1.0, 0.1), 10.0))
        if answer.status != expect:
            raise LoadTestError(f"{method} {path} answered {answer.problem}")
        if fields and not (isinstance(answer.body, dict) and set(fields) <= answer.body.keys()):
            raise LoadTestError(
                f"{method} {path} answered without {', '.join(fields)}: is {self.urls[0]} a "
                "realtime server?"
            )
        return answer.body


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None
