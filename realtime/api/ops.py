"""Operations: liveness, readiness and metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from realtime.api import schemas
from realtime.api.http import Call, Operation, json_response
from realtime.expiry import measure_backlog
from realtime.metrics import REGISTRY, broker_connected


async def healthz(call: Call) -> Response:
    return json_response(schemas.Health(status="ok"))


async def readyz(call: Call) -> Response:
    """Ready when the database answers (and, once there is one, the broker)."""
    checks = {"database": await call.services.db.ping(), "broker": call.services.broker.healthy}
    ready = all(checks.values())
    return json_response(
        schemas.Health(status="ok" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )


async def metrics(call: Call) -> Response:
    """Prometheus text; the broker's state and the expiry backlog are measured at the scrape."""
    broker_connected.set(1 if call.services.broker.healthy else 0)
    await measure_backlog(call.services.db)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


OPERATIONS = (
    Operation("GET", "/healthz", healthz, "The process is up", auth=False, database=False,
              responses={200: schemas.Health}),
    Operation("GET", "/readyz", readyz, "The database and the broker answer", auth=False,
              responses={200: schemas.Health, 503: schemas.Health}),
    Operation("GET", "/metrics", metrics, "Prometheus metrics", auth=False, database=False,
              responses={200: None}),
)
