"""The error types, each carrying the contract's code and HTTP status (`protocol.close_code`
maps them to websocket close codes).

    RealtimeError          500 internal     (the root; never raised for bad input)
    ├── ConfigError                          a bad setting: stops the start
    ├── CryptoError        500 internal     a ciphertext or wrapped key that does not open
    ├── InvalidInput       400 invalid      with `fields` where a field is at fault
    ├── Unauthenticated    401 unauthenticated, close 4401
    ├── PassphraseError    401 passphrase_required | passphrase_wrong, with `attempts_left`
    ├── Forbidden          403 forbidden
    ├── NotFound           404 not_found    also for what the caller may not see
    ├── Conflict           409 conflict
    │   └── EmailUnavailable  409 email_unavailable: no mail relay is configured
    ├── TooLarge           413 too_large    with `fields` where a field is at fault
    ├── RateLimited        429 rate_limited with `retry_after` seconds
    └── Unavailable        503 unavailable  with `retry_after` seconds, close 1013: a pool,
                                            database or broker that does not answer in time
"""

from __future__ import annotations

from collections.abc import Mapping


class RealtimeError(Exception):
    """The root of every error the server raises on purpose."""

    code = "internal"
    status = 500
    default_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class ConfigError(RealtimeError):
    """A setting is missing or malformed; the message names the variable."""


class CryptoError(RealtimeError):
    """A ciphertext or wrapped key failed to open: wrong key, wrong row, or tampered."""

    default_message = "stored data could not be decrypted"


class InvalidInput(RealtimeError):
    code = "invalid"
    status = 400
    default_message = "the request is not valid"

    def __init__(self, message: str | None = None, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class Unauthenticated(RealtimeError):
    code = "unauthenticated"
    status = 401
    default_message = "authentication required"


class PassphraseError(RealtimeError):
    """A shareable link's passphrase is missing (`passphrase_required`) or wrong
    (`passphrase_wrong`, with the attempts left before the link is destroyed)."""

    status = 401

    def __init__(self, code: str, message: str, attempts_left: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.attempts_left = attempts_left


class Forbidden(RealtimeError):
    code = "forbidden"
    status = 403
    default_message = "not allowed"


class NotFound(RealtimeError):
    code = "not_found"
    status = 404
    default_message = "not found"


class Conflict(RealtimeError):
    code = "conflict"
    status = 409
    default_message = "conflicts with the current state"


class EmailUnavailable(Conflict):
    code = "email_unavailable"
    default_message = "Send by email is not set up on this server"


class TooLarge(RealtimeError):
    code = "too_large"
    status = 413
    default_message = "too large"

    def __init__(self, message: str | None = None, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class RateLimited(RealtimeError):
    code = "rate_limited"
    status = 429
    default_message = "too many attempts, try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Unavailable(RealtimeError):
    """Something the request needs (a pooled connection, the database, the broker) did not
    answer in time: nothing was done, and the same request may be made again later."""

    code = "unavailable"
    status = 503
    default_message = "the service is unavailable, try again later"

    def __init__(self, retry_after: int = 2, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
