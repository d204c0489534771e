"""The security headers every HTTP answer carries, a refused websocket handshake's included."""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    b"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cache-control", b"no-store"),
]
# Sent only over https (directly, or as a trusted proxy reports it): browsers then refuse http.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")


def security_headers(scheme: str) -> list[tuple[bytes, bytes]]:
    """The headers every HTTP response carries, HSTS included when it was served over https."""
    return [*SECURITY_HEADERS, HSTS_HEADER] if scheme == "https" else SECURITY_HEADERS
