"""Operations: liveness, readiness and metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from realtime.api import schemas
from realtime.api.http import Call, Operation, json_response


async def healthz(call: Call) -> Response:
    return json_response(schemas.Health(status="ok"))


async def readyz(call: Call) -> Response:
    """Ready when the database answers (and, once there is one, the broker)."""
    checks = await call.services.health.checks()
    ready = all(checks.values())
    return json_response(
        schemas.Health(status="ok" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )


async def metrics(call: Call) -> Response:
    """Prometheus text; the broker's state and the expiry backlog are measured at the scrape."""
    return Response(await call.services.health.metrics(), media_type=CONTENT_TYPE_LATEST)


OPERATIONS = (
    Operation("GET", "/healthz", healthz, "The process is up", auth=False, database=False,
              responses={200: schemas.Health}),
    Operation("GET", "/readyz", readyz, "The database and the broker answer", auth=False,
              responses={200: schemas.Health, 503: schemas.Health}),
    Operation("GET", "/metrics", metrics, "Prometheus metrics", auth=False, database=False,
              responses={200: None}),
)
