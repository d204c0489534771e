"""Shareable links: created, listed and revoked by their creator; opened by anyone holding one."""

from __future__ import annotations

from starlette.responses import Response

from realtime.api import link_schemas as schemas
from realtime.api.downloads import stream_file
from realtime.api.http import Call, Operation, client_address, json_response, no_content, path_id
from realtime.api.messages import attachment_request
from realtime.files import Download
from realtime.link_content import LinkDraft, LinkEmail, LinkFile, OpenedAttachment
from realtime.links import link_url

_NOT_FOUND = {404: None}
# What opening a link answers is for the one who opened it: never kept by a cache or proxy.
_PRIVATE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


async def create(call: Call) -> Response:
    body: schemas.CreateLinkRequest = call.body
    draft = LinkDraft(
        subject=body.subject, body=body.body, expires_at=body.expires_at,
        max_views=body.max_views, passphrase=body.passphrase,
        attachments=tuple(attachment_request(a) for a in body.attachments),
        email=None if body.email is None else LinkEmail(tuple(body.email.to), body.email.note),
    )
    origin = call.services.settings.public_url or str(call.request.base_url)
    created = await call.services.links.create(call.user, draft, origin)
    return json_response(
        schemas.CreatedLinkOut(
            id=created.id, url=link_url(origin, created.token), expires_at=created.expires_at,
            max_views=created.max_views,
        ),
        status=201, headers=_PRIVATE,
    )


async def list_links(call: Call) -> Response:
    links = await call.services.links.list_links(call.user)
    return json_response(schemas.LinkList(links=[
        schemas.LinkOut(
            id=link.id, subject=link.subject, created_at=link.created_at,
            expires_at=link.expires_at, max_views=link.max_views, views=link.views,
            last_viewed_at=link.last_viewed_at, has_passphrase=link.has_passphrase,
            emailed_to=list(link.emailed_to),
        )
        for link in links
    ]))


async def revoke(call: Call) -> Response:
    await call.services.links.revoke(call.user, path_id(call.request))
    return no_content()


async def open_link(call: Call) -> Response:
    body: schemas.OpenLinkRequest = call.body
    opened = await call.services.links.open(
        body.token, body.passphrase, client_address(call.request)
    )
    return json_response(
        schemas.OpenedLinkOut(
            subject=opened.subject, body=opened.body, expires_at=opened.expires_at,
            views_left=opened.views_left,
            attachments=[_attachment_out(a) for a in opened.attachments],
        ),
        headers=_PRIVATE,
    )


async def open_attachment(call: Call) -> Response:
    body: schemas.OpenLinkRequest = call.body
    found = await call.services.links.attachment(
        body.token, body.passphrase, path_id(call.request, "attachment_id"),
        client_address(call.request),
    )
    if isinstance(found, LinkFile):
        assert found.info.file is not None
        response = stream_file(Download(found.info.file, found.chunks))
        response.headers.update(_PRIVATE)
        return response
    return json_response(_attachment_out(found), headers=_PRIVATE)


def _attachment_out(
    attachment: OpenedAttachment,
) -> schemas.LinkCredentialOut | schemas.LinkFileOut:
    if attachment.credential is not None:
        fields = attachment.credential
        return schemas.LinkCredentialOut(
            id=attachment.id, kind="credential", name=attachment.name, title=fields.title,
            username=fields.username, password=fields.password, url=fields.url,
            notes=fields.notes,
        )
    assert attachment.file is not None
    return schemas.LinkFileOut(
        id=attachment.id, kind="file", name=attachment.name, size=attachment.file.size,
        content_type=attachment.file.content_type,
    )


_OPEN_ERRORS = {400: None, 401: None, 429: None, **_NOT_FOUND}

OPERATIONS = (
    Operation(
        "POST", "/api/links", create,
        "Create a shareable link (and send it by email); its url is answered this once",
        body=schemas.CreateLinkRequest,
        responses={201: schemas.CreatedLinkOut, 400: None, 401: None, 403: None, 409: None,
                   413: None, 429: None},
    ),
    Operation(
        "GET", "/api/links", list_links, "The caller's live links, newest first",
        responses={200: schemas.LinkList, 401: None},
    ),
    Operation(
        "POST", "/api/links/open", open_link,
        "Open a link: its content, counting one view (no account needed)",
        auth=False, body=schemas.OpenLinkRequest,
        responses={200: schemas.OpenedLinkOut, **_OPEN_ERRORS},
    ),
    Operation(
        "POST", "/api/links/open/attachments/{attachment_id}", open_attachment,
        "An attachment of a link viewed in the last 10 minutes, counting no view: a "
        "credential as JSON, a file as its bytes",
        auth=False, body=schemas.OpenLinkRequest,
        responses={200: None, **_OPEN_ERRORS},
    ),
    Operation(
        "DELETE", "/api/links/{id}", revoke, "Revoke a link at once",
        responses={204: None, 401: None, **_NOT_FOUND},
    ),
)
