"""The organisation's settings (admins only)."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from realtime.api import schemas
from realtime.api.http import Call, Operation, json_response
from realtime.models import OrganisationSettings, SendRight


def settings_view(settings: OrganisationSettings) -> schemas.OrganisationSettingsOut:
    lifetime = settings.max_lifetime
    return schemas.OrganisationSettingsOut(
        send_messages=settings.send_messages.value, share_links=settings.share_links,
        max_file_mb=settings.max_file_mb,
        max_lifetime=None if lifetime is None else int(lifetime.total_seconds()),
    )


async def get_settings(call: Call) -> Response:
    return json_response(settings_view(await call.services.organisation.settings()))


async def change_settings(call: Call) -> Response:
    body: schemas.ChangeOrganisationSettingsRequest = call.body
    given = body.model_fields_set
    changed = await call.services.organisation.change(
        send_messages=None if body.send_messages is None else SendRight(body.send_messages),
        share_links=body.share_links,
        max_file_mb=body.max_file_mb,
        max_lifetime=(
            ... if "max_lifetime" not in given
            else None if body.max_lifetime is None else timedelta(seconds=body.max_lifetime)
        ),
    )
    return json_response(settings_view(changed))


_ADMIN = {401: None, 403: None}

OPERATIONS = (
    Operation("GET", "/api/admin/settings", get_settings,
              "The organisation's settings", admin=True,
              responses={200: schemas.OrganisationSettingsOut, **_ADMIN}),
    Operation("PATCH", "/api/admin/settings", change_settings,
              "Change the organisation's settings, at once for every user on every node",
              admin=True, body=schemas.ChangeOrganisationSettingsRequest,
              responses={200: schemas.OrganisationSettingsOut, 400: None, **_ADMIN}),
)
