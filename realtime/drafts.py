"""What a draft message is, whether it may be sent, and whom it reaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from realtime import codec
from realtime.db import Connection
from realtime.errors import Forbidden, InvalidInput
from realtime.models import Addressee, AddresseeKind, AttachmentKind, EntryFields, User
from realtime.store import groups as group_store
from realtime.store import users as user_store

MAX_ADDRESSEES = 1_000
MAX_RECIPIENTS = 10_000
MAX_ATTACHMENTS = 20
# Later ones overflow Python's datetime once PostgreSQL turns them into UTC.
LATEST_EXPIRY = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    """One entry of the To field as sent: a user or a group, by id."""

    kind: AddresseeKind
    id: UUID


@dataclass(frozen=True)
class AttachmentRequest:
    """One attachment as sent: a credential typed in, or the id of the sender's entry, folder
    or upload."""

    kind: AttachmentKind
    ref: UUID | None = None
    credential: EntryFields | None = None


@dataclass(frozen=True)
class Draft:
    to: tuple[Target, ...]
    subject: str = field(repr=False)
    body: str = field(repr=False)
    expires_at: datetime | None = None
    high_priority: bool = False
    reply_to: UUID | None = None
    attachments: tuple[AttachmentRequest, ...] = ()

    def canonical(self) -> bytes:
        """The request in one canonical encoding, to tell a retry from a different send."""
        return codec.encode(asdict(self))


def check_draft(sender: User, draft: Draft) -> Draft:
    """The sender's rights and the expiry time; raise what forbids sending. Return the draft as
    it is sent: under the organisation's maximum lifetime, one without an expiry gets it."""
    if not sender.can_send:
        raise Forbidden("you are not allowed to send messages")
    if draft.attachments and not sender.can_attach:
        raise Forbidden("you are not allowed to send attachments")
    if len(draft.attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(
            "too many attachments", {"attachments": f"at most {MAX_ATTACHMENTS}"}
        )
    check_ahead(draft.expires_at, "expires_at", "expiry time")
    lifetime = sender.organisation.max_lifetime
    if lifetime is None:
        return draft
    latest = datetime.now(UTC) + lifetime
    if draft.expires_at is None:
        return replace(draft, expires_at=latest)
    check_within_lifetime(draft.expires_at, lifetime, latest)
    return draft


def check_within_lifetime(expires_at: datetime, lifetime: timedelta, latest: datetime) -> None:
    """An expiry no later than `latest`, now plus the organisation's maximum lifetime; else
    400 naming `expires_at`."""
    if expires_at > latest:
        seconds = int(lifetime.total_seconds())
        raise InvalidInput(
            "the expiry time is past the organisation's maximum lifetime",
            {"expires_at": f"at most {seconds} seconds ahead"},
        )


def check_ahead(moment: datetime | None, field: str, what: str) -> None:
    """A time set ahead (an expiry, an end), when given, lies in the future and before the
    year 9999; else 400 naming `field`."""
    if moment is None:
        return
    if moment <= datetime.now(UTC):
        raise InvalidInput(f"the {what} has passed", {field: "in the past"})
    if moment >= LATEST_EXPIRY:
        raise InvalidInput(f"the {what} is too far", {field: "before the year 9999"})


@dataclass(frozen=True)
class Addressing:
    """The To field with the names at send time, and the users the message reaches."""

    addressees: list[Addressee]
    recipients: list[UUID]


async def address(conn: Connection, sender: User, targets: Sequence[Target]) -> Addressing:
    """Name each target (an unknown user or group is a field error) and expand the targets to
    the named enabled users plus the groups' enabled members, once each, in id order.

    The sender receives their own message only when they named themselves.
    """
    user_ids = [t.id for t in targets if t.kind is AddresseeKind.USER]
    group_ids = [t.id for t in targets if t.kind is AddresseeKind.GROUP]
    users = await user_store.names_and_states(conn, user_ids) if user_ids else {}
    groups = await group_store.group_names(conn, group_ids) if group_ids else {}
    names = {
        AddresseeKind.USER: {user_id: name for user_id, (name, _) in users.items()},
        AddresseeKind.GROUP: groups,
    }
    errors = {
        f"to.{i}.id": f"no such {t.kind.value}"
        for i, t in enumerate(targets)
        if t.id not in names[t.kind]
    }
    if errors:
        raise InvalidInput("some recipients do not exist", errors)
    addressees = [Addressee(t.kind, t.id, names[t.kind][t.id]) for t in dict.fromkeys(targets)]
    members = await group_store.enabled_members(conn, group_ids) if group_ids else set()
    members.discard(sender.id)
    direct = {user_id for user_id, (_, enabled) in users.items() if enabled}
    recipients = sorted(direct | members)
    if not recipients:
        raise InvalidInput("nobody would receive this message", {"to": "no enabled recipient"})
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidInput(
            "too many recipients",
            {"to": f"{len(recipients)} recipients, at most {MAX_RECIPIENTS}"},
        )
    return Addressing(addressees, recipients)
