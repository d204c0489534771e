"""Logging in and out, and who the caller is."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from realtime import protocol
from realtime.api import schemas
from realtime.api.http import (
    SESSION_COOKIE,
    Call,
    Operation,
    check_origin,
    client_address,
    json_response,
    no_content,
)
from realtime.models import User


def me_view(user: User) -> schemas.Me:
    return schemas.Me.model_validate(protocol.me(user))


def my_account(call: Call, user: User) -> schemas.MyAccount:
    """Who the caller is, their effective rights, and the organisation's limits the client
    shows (the largest file, the longest lifetime)."""
    lifetime = user.organisation.max_lifetime
    return schemas.MyAccount(
        **dict(me_view(user)),
        can_email_links=user.can_share_links and call.services.links.email_available,
        max_file_mb=user.organisation.max_file_mb,
        max_lifetime=None if lifetime is None else int(lifetime.total_seconds()),
    )


async def login(call: Call) -> Response:
    """Check the pair, open a session, and set it as the cookie too."""
    request = call.request
    check_origin(request, call.services.settings, required=False)
    body: schemas.LoginRequest = call.body
    session = await call.services.accounts.login(
        username=body.username, password=body.password, client_address=client_address(request)
    )
    response = json_response(
        schemas.LoginResponse(token=session.token, user=my_account(call, session.user))
    )
    lifetime = int(call.services.settings.session_lifetime.total_seconds())
    response.set_cookie(SESSION_COOKIE, session.token, max_age=lifetime, **_cookie_rules(call))
    return response


def _cookie_rules(call: Call) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, the whole site, and Secure whenever served over https."""
    return {"httponly": True, "samesite": "strict", "path": "/",
            "secure": call.request.url.scheme == "https"}


async def logout(call: Call) -> Response:
    assert call.auth is not None
    await call.services.accounts.logout(call.auth)
    response = no_content()
    response.delete_cookie(SESSION_COOKIE, **_cookie_rules(call))
    return response


async def me(call: Call) -> Response:
    return json_response(my_account(call, call.user))


OPERATIONS = (
    Operation(
        "POST", "/api/auth/login", login, "Log in: a token, and the session cookie",
        auth=False, body=schemas.LoginRequest,
        responses={200: schemas.LoginResponse, 400: None, 401: None, 403: None, 413: None,
                   429: None},
    ),
    Operation(
        "POST", "/api/auth/logout", logout, "End this session everywhere",
        responses={204: None, 401: None, 403: None},
    ),
    Operation(
        "GET", "/api/me", me, "The caller's account and rights",
        responses={200: schemas.MyAccount, 401: None},
    ),
)
