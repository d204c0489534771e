"""What logging in, staying logged in and managing users mean."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from realtime import crypto
from realtime.audit import Audit
from realtime.config import Settings
from realtime.db import Database
from realtime.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from realtime.events import EventSink
from realtime.hashing import hashing
from realtime.models import (
    AuthContext,
    ListedUser,
    NewSession,
    User,
    UserSearch,
    under_organisation,
)
from realtime.store import budgets as budget_store
from realtime.store import organisation as organisation_store
from realtime.store import sessions as session_store
from realtime.store import throttle
from realtime.store import users as user_store
from realtime.store.sessions import Spending

FIRST_ADMIN = "admin"
USERNAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
PASSWORD_LENGTHS = (8, 1024)
_WRONG_PAIR = "wrong username or password"


def generate_account_password() -> str:
    """A password for a new account: 16 URL-safe characters, about 96 bits."""
    return secrets.token_urlsafe(12)


def check_account(*, username: str | None = None, password: str | None = None) -> None:
    """The rules for usernames and passwords, whoever creates or changes the account."""
    fields = {}
    if username is not None and not re.fullmatch(USERNAME_PATTERN, username):
        fields["username"] = "1 to 64 letters, digits and . _ @ -, starting with a letter or digit"
    low, high = PASSWORD_LENGTHS
    if password is not None and not (low <= len(password) <= high and "\x00" not in password):
        fields["password"] = f"{low} to {high} characters, no NUL"
    if fields:
        raise InvalidInput("the account is not valid", fields)


def check_admin_password(password: str | None) -> None:
    """Hold REALTIME_ADMIN_PASSWORD to the password rules; the error never shows the value."""
    if password is None:
        return
    try:
        check_account(password=password)
    except InvalidInput as exc:
        raise ConfigError(f"REALTIME_ADMIN_PASSWORD must be {exc.fields['password']}") from None


def login_name(typed: str) -> str | None:
    """The one form of a typed login name that the throttle counts and the lookup matches.

    Surrounding spaces dropped and letters in lower case: usernames are ASCII, so no Unicode
    case folding (which differs between Python and the database's locale) is ever involved.
    None when no account can bear the name.
    """
    name = typed.strip()
    return name.lower() if re.fullmatch(USERNAME_PATTERN, name) else None


# The budget of a user's websocket handshakes: its bucket's key is this and the user's id.
HANDSHAKE_BUDGET = "handshake:"


class Accounts:
    """Users, their sessions, and the login throttle."""

    def __init__(
        self, db: Database, settings: Settings, sink: EventSink, audit: Audit | None = None
    ) -> None:
        """`sink` is told of the sessions that end, once their end is committed."""
        self._db = db
        self._settings = settings
        self._sink = sink
        self._audit = audit or Audit(db, enabled=settings.audit)

    async def login(self, *, username: str, password: str, client_address: str) -> NewSession:
        """Open a session for a right pair; the same 401, in the same time, for any wrong one.

        Every attempt counts against the username and the client address before the password
        is checked; over either limit the answer is 429 until the window ends.
        """
        name = login_name(username)
        user_key, address_key = f"user:{name or username}", f"addr:{client_address}"
        limits = [self._settings.login_max_failures, self._settings.login_max_failures_per_address]
        async with self._db.connection() as conn:
            wait = await throttle.count_attempt(
                conn, [user_key, address_key], limits, self._settings.login_lockout
            )
            if wait:
                raise RateLimited(wait, "too many failed logins, try again later")
            found = await user_store.get_credentials(conn, name) if name else None
        password_hash = found.password_hash if found else crypto.DECOY_PASSWORD_HASH
        matches = await hashing(crypto.verify_password, password, password_hash)
        if found is None or not matches or found.user.disabled:
            await self._audit.record(self._audit.new(
                "login", "failed", actor_id=found.user.id if found else None))
            raise Unauthenticated(_WRONG_PAIR)
        async with self._db.transaction() as conn:
            await throttle.forgive(conn, cleared=user_key, refunded=address_key)
            token, session_id = crypto.new_token(), uuid.uuid4()
            expires_at = await session_store.insert_session(
                conn,
                session_id=session_id,
                token_hash=crypto.token_digest(token),
                user_id=found.user.id,
                password_hash=found.password_hash,
                lifetime=self._settings.session_lifetime,
            )
            if expires_at is not None:
                await self._audit.record(self._audit.new(
                    "login", actor_id=found.user.id, target=("session", session_id)), conn=conn)
            organisation = await organisation_store.get_settings(conn)
        if expires_at is None:
            raise Unauthenticated(_WRONG_PAIR)
        # The answer tells the effective rights, as every authenticated request does.
        user = under_organisation(found.user, organisation)
        return NewSession(token, session_id, user, expires_at)

    async def authenticate(self, token: str) -> AuthContext:
        """The user and session a token speaks for; Unauthenticated when it is not live."""
        async with self._db.connection() as conn:
            found = await session_store.find_live_session(
                conn, crypto.token_digest(token), self._settings.session_idle_timeout
            )
        if found is None:
            raise Unauthenticated("the session has ended, log in again")
        session_id, user, deadline, _ = found
        return AuthContext(user, session_id, deadline)

    async def authenticate_socket(
        self, token: str, *, handshakes_per_minute: int
    ) -> tuple[AuthContext, float]:
        """As `authenticate`, spending in the same statement one of the user's websocket
        handshakes a minute (a budget shared by every node): with the seconds to wait when
        none is left, the handshake to be refused then."""
        return await self.authenticate_spending(
            token, prefix=HANDSHAKE_BUDGET, per_minute=handshakes_per_minute
        )

    async def authenticate_spending(
        self, token: str, *, prefix: str, per_minute: int
    ) -> tuple[AuthContext, float]:
        """As `authenticate`, taking in the same statement one unit of the user's budget whose
        bucket is `{prefix}{user id}` (`per_minute`, shared by every node): with the seconds to
        wait when none is left (nothing taken then)."""
        spending = Spending(prefix, per_minute)
        async with self._db.connection() as conn:
            for _ in range(budget_store.RACES_ALLOWED):
                found = await session_store.find_live_session(
                    conn, crypto.token_digest(token), self._settings.session_idle_timeout,
                    spending,
                )
                if found is None or found[3] != budget_store.RACED:
                    break  # else the user's bucket was made meanwhile: take from it
            else:
                raise Unavailable(1, "a budget could not be read: try again")
        if found is None:
            raise Unauthenticated("the session has ended, log in again")
        session_id, user, deadline, wait = found
        return AuthContext(user, session_id, deadline), wait

    async def logout(self, auth: AuthContext) -> None:
        """End this session: its token stops working and its sockets close."""
        async with self._db.transaction() as conn:
            await session_store.delete_session(conn, auth.session_id)
            await self._audit.record(self._audit.new(
                "logout", actor_id=auth.user.id, target=("session", auth.session_id)), conn=conn)
        await self._sink.sessions_ended(auth.user.id, [auth.session_id])

    async def session_alive(self, session_id: UUID) -> bool:
        async with self._db.connection() as conn:
            return await session_store.session_exists(conn, session_id)

    async def session_deadline(self, session_id: UUID) -> float | None:
        """When the session ends at the latest (seconds since the epoch), idle or past its
        lifetime; None when it has ended."""
        async with self._db.connection() as conn:
            return await session_store.session_deadline(
                conn, session_id, self._settings.session_idle_timeout
            )

    async def ids_by_username(self, usernames: Sequence[str]) -> dict[str, UUID]:
        async with self._db.connection() as conn:
            return await user_store.ids_by_username(conn, usernames)

    async def page_users(self, search: UserSearch, limit: int) -> list[ListedUser]:
        async with self._db.connection() as conn:
            return await user_store.page_users(conn, search, limit)

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        display_name: str | None = None,
        is_admin: bool = False,
        can_send: bool = True,
        can_attach: bool = True,
        can_share_links: bool = True,
    ) -> User:
        check_account(username=username, password=password)
        password_hash = await hashing(crypto.hash_password, password)
        user_id = uuid.uuid4()
        async with self._db.transaction() as conn:
            await self._audit.record(self._audit.new(
                "user.created", target=("user", user_id),
                detail={"is_admin": is_admin, "can_send": can_send, "can_attach": can_attach,
                        "can_share_links": can_share_links}), conn=conn)
            return await user_store.insert_user(
                conn,
                user_id=user_id,
                username=username,
                display_name=display_name or username,
                password_hash=password_hash,
                is_admin=is_admin,
                can_send=can_send,
                can_attach=can_attach,
                can_share_links=can_share_links,
            )

    async def update_user(self, user_id: UUID, changes: dict[str, Any]) -> User:
        """Change a user; a new password or disabling ends every session of theirs at once.

        The last enabled admin can neither be disabled nor lose the admin flag.
        """
        columns = {k: v for k, v in changes.items() if k != "password"}
        if changes.get("password") is not None:
            check_account(password=changes["password"])
            columns["password_hash"] = await hashing(crypto.hash_password, changes["password"])
        async with self._db.transaction() as conn:
            admins = await user_store.lock_admins(conn)
            demoted = columns.get("is_admin") is False or columns.get("disabled") is True
            if demoted and admins == [user_id]:
                raise Conflict("this is the last enabled admin: appoint another one first")
            user = await user_store.update_user(conn, user_id, columns)
            if user is None:
                raise NotFound("no such user")
            ended = columns.get("disabled") is True or "password_hash" in columns
            if ended:
                await session_store.delete_user_sessions(conn, user_id)
            await self._audit.record(self._audit.new(
                "user.changed", target=("user", user_id),
                detail={k: ("changed" if k == "password_hash" else v)
                        for k, v in columns.items() if k != "display_name"}), conn=conn)
        if ended:
            await self._sink.sessions_ended(user_id, None)
        return user

    async def ensure_first_admin(self, password: str | None) -> str | None:
        """Create `admin` when there is no account at all; return its password if generated."""
        check_admin_password(password)
        chosen = password or generate_account_password()
        async with self._db.transaction() as conn:
            if await user_store.count_users_exclusively(conn):
                return None
            await user_store.insert_user(
                conn,
                user_id=uuid.uuid4(),
                username=FIRST_ADMIN,
                display_name="Administrator",
                password_hash=await hashing(crypto.hash_password, chosen),
                is_admin=True,
                can_send=True,
                can_attach=True,
            )
        return None if password else chosen
