"""SQL of the sync outbox: rows are added inside the caller's transaction, claimed by
dispatchers, and finished with their transport state. The caller commits.

Claims are safe with many dispatchers: on PostgreSQL `FOR UPDATE SKIP LOCKED` lets each take
different rows, on SQLite the write lock taken at BEGIN serializes them. A claim is a lease:
a dispatcher that dies mid-delivery leaves its rows to be claimed again once the lease ends,
which is why delivery is at least once and partners deduplicate by identifier.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlmodel import Session, col

from interop.store.repository import StoredVersion
from interop.store.tables import (
    INDEX_TABLE,
    OUTBOX_TABLE,
    RESOURCE_TABLE,
    OutboxRow,
    PartnerRow,
)

OUTBOX = OUTBOX_TABLE.c
_PARTNER = PartnerRow.__table__.c  # type: ignore[attr-defined]


class TransportState(StrEnum):
    """How far a change has got towards a partner; never the Task's own workflow state."""

    QUEUED = "queued"
    SENDING = "sending"  # claimed by a dispatcher, under lease
    SENT = "sent"  # handed over, no application acknowledgment (a file dropped)
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"  # the partner refused it, or it never got through in time
    WITHHELD = "withheld"  # the disclosure gate did not release it to this partner


PENDING = (TransportState.QUEUED, TransportState.SENDING)


@dataclass(frozen=True, slots=True)
class ChannelPartner:
    """A partner that is told of changes, and the Organization it is in the store."""

    client_id: str
    organization: str  # "Organization/{id}"
    channel: str


def pushing_partners(session: Session, organizations: Iterable[str]) -> list[ChannelPartner]:
    """Partners with a channel among these Organization ids, disabled ones included: what a
    partner must hear waits in the outbox while it is disabled (`claim` passes it over)
    and goes once it is enabled again, never lost."""
    ids = sorted(set(organizations))
    if not ids:
        return []
    statement = select(PartnerRow).where(
        col(PartnerRow.organization_id).in_(ids),
        col(PartnerRow.channel) != "none",
    )
    return [
        ChannelPartner(row.client_id, f"Organization/{row.organization_id}", row.channel)
        for row in session.execute(statement).scalars()
    ]


def add(session: Session, rows: Sequence[OutboxRow]) -> None:
    session.add_all(rows)
    session.flush()


def claim(session: Session, now: datetime, lease: timedelta, limit: int) -> list[OutboxRow]:
    """Due rows, oldest first, at most one per partner, resource and channel: a later change
    waits for the earlier one, so a cancellation never overtakes the referral it cancels; a
    partner's Subscription endpoint failing never holds back what its FHIR server is sent
    (transport state is the channel's own, REFERRALS.md; probe 15 #7). A disabled partner's
    rows wait until it is enabled again."""
    earlier = OUTBOX_TABLE.alias("earlier").c
    blocked_by_earlier = exists().where(
        earlier.partner_client_id == OUTBOX.partner_client_id,
        earlier.channel == OUTBOX.channel,
        earlier.resource_type == OUTBOX.resource_type,
        earlier.resource_id == OUTBOX.resource_id,
        earlier.pk < OUTBOX.pk,
        earlier.state.in_(list(PENDING)),
    )
    due = or_(
        and_(
            col(OutboxRow.state) == TransportState.QUEUED,
            col(OutboxRow.next_attempt_at) <= now,
        ),
        and_(
            col(OutboxRow.state) == TransportState.SENDING,
            col(OutboxRow.lease_until) < now,
        ),
    )
    partner_disabled = exists().where(
        _PARTNER.client_id == OUTBOX.partner_client_id, _PARTNER.enabled.is_(False)
    )
    statement = (
        select(OutboxRow)
        .where(due, ~blocked_by_earlier, ~partner_disabled)
        .order_by(col(OutboxRow.pk))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.execute(statement).scalars())
    for row in rows:
        row.state = TransportState.SENDING
        row.lease_until = now + lease
        row.attempts += 1
    session.flush()
    return rows


def notifications_sent(
    session: Session, subscription_id: str, event: str, *, besides: int = 0
) -> int:
    """The `event` notifications a Subscription was sent and its partner took (besides the
    row `besides`): withheld ones are not counted, since a gap would tell that one was."""
    statement = select(func.count()).where(
        col(OutboxRow.subscription_id) == subscription_id,
        col(OutboxRow.event) == event,
        col(OutboxRow.state).in_([TransportState.SENT, TransportState.ACKNOWLEDGED]),
        col(OutboxRow.pk) != besides,
    )
    return int(session.execute(statement).scalar_one())


def get(session: Session, pk: int, *, lock: bool = False) -> OutboxRow | None:
    statement = select(OutboxRow).where(col(OutboxRow.pk) == pk)
    if lock:
        statement = statement.with_for_update()
    row: OutboxRow | None = session.execute(statement).scalars().first()
    return row


def listing(
    session: Session, states: Sequence[str], partner: str | None, limit: int
) -> list[OutboxRow]:
    """Newest first, for staff watching deliveries."""
    statement = select(OutboxRow).order_by(col(OutboxRow.pk).desc()).limit(limit)
    if states:
        statement = statement.where(col(OutboxRow.state).in_(list(states)))
    if partner is not None:
        statement = statement.where(col(OutboxRow.partner_client_id) == partner)
    return list(session.execute(statement).scalars())


def listing_concerning(
    session: Session, states: Sequence[str], programs: Collection[str], limit: int
) -> list[OutboxRow]:
    """Newest first, the deliveries of records these programs (Organization ids) wrote or are
    a party to; filtered in the query, so that other programs' newer deliveries never use up
    the limit and hide a program's own."""
    statement = (
        select(OutboxRow)
        .where(_concerning(programs))
        .order_by(col(OutboxRow.pk).desc())
        .limit(limit)
    )
    if states:
        statement = statement.where(col(OutboxRow.state).in_(list(states)))
    return list(session.execute(statement).scalars())


def get_concerning(session: Session, pk: int, programs: Collection[str]) -> OutboxRow | None:
    """The delivery, if it is of a record these programs wrote or are a party to."""
    statement = select(OutboxRow).where(col(OutboxRow.pk) == pk, _concerning(programs))
    row: OutboxRow | None = session.execute(statement).scalars().first()
    return row


_PARTIES: Final = {
    "Task": ("owner", "requester"),
    "ServiceRequest": ("requester", "performer"),
    "Consent": ("consentor",),
}
"""The search parameters (interop.store.search_params) that index a record's parties: the
`requester`, `owner` and `performer` elements of the types that have them."""

_INDEX = INDEX_TABLE.c
_RESOURCE = RESOURCE_TABLE.c


def _concerning(programs: Collection[str]) -> ColumnElement[bool]:
    """A delivery whose record one of the programs wrote (a custodian of it) or names as a
    party (requester, owner, performer): by `custodians` and the search index, which are kept
    with each write, so no record has to be read to decide."""
    ids = sorted(set(programs))
    if not ids:
        return false()
    padded = literal(" ") + _RESOURCE.custodians + literal(" ")
    wrote = or_(*(padded.like(f"% {_like(f'Organization/{id_}')} %", escape="\\") for id_ in ids))
    party = exists().where(
        _INDEX.resource_pk == _RESOURCE.pk,
        _INDEX.system == "Organization",
        _INDEX.value.in_(ids),
        _INDEX.norm.is_(None),  # ours, not another server's Organization of the same id
        or_(
            *(
                and_(_INDEX.resource_type == kind, _INDEX.param.in_(params))
                for kind, params in _PARTIES.items()
            )
        ),
    )
    return exists().where(
        _RESOURCE.resource_type == OUTBOX.resource_type,
        _RESOURCE.resource_id == OUTBOX.resource_id,
        or_(wrote, party),
    )


def _like(text: str) -> str:
    """`text` matched literally by LIKE."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def partner(session: Session, client_id: str) -> PartnerRow | None:
    statement = select(PartnerRow).where(col(PartnerRow.client_id) == client_id)
    row: PartnerRow | None = session.execute(statement).scalars().first()
    return row


_STANDING_QMARK: Final = (
    "SELECT enabled, part2_program, covered_entity, first_party, credentials_since"
    " FROM partner WHERE client_id = ?"
)
_STANDING_NAMES: Final = (
    "enabled", "part2_program", "covered_entity", "first_party", "credentials_since",
)  # fmt: skip
"""The selected columns, in the statement's order."""
_STANDING: Final = {
    "qmark": _STANDING_QMARK,
    "pyformat": _STANDING_QMARK.replace("?", "%s"),
    "format": _STANDING_QMARK.replace("?", "%s"),
}
"""By the driver's parameter style: SQLite's is qmark, psycopg's pyformat."""


def partner_standing(engine: Engine, client_id: str) -> dict[str, Any] | None:
    """enabled, part2_program, covered_entity, first_party and credentials_since of a
    registered partner, by name. Every authenticated request asks, so it goes on the driver's
    own pooled connection: SQLAlchemy's statement machinery cost ten times the lookup."""
    statement = _STANDING.get(engine.dialect.paramstyle)
    if statement is None:
        raise RuntimeError(f"no partner lookup for parameter style {engine.dialect.paramstyle}")
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(statement, (client_id,))
        row = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()
    if row is None:
        return None
    found = dict(zip(_STANDING_NAMES, row, strict=True))
    since = found["credentials_since"]
    if isinstance(since, str):  # SQLite keeps a datetime as its ISO text
        found["credentials_since"] = datetime.fromisoformat(since)
    for flag in _STANDING_NAMES[:4]:
        found[flag] = bool(found[flag])  # SQLite keeps booleans as 0 and 1
    return found


def requeue(session: Session, pk: int, now: datetime) -> OutboxRow | None:
    """A failed or withheld delivery sent again from the start (staff fixed the cause)."""
    row = get(session, pk, lock=True)
    if row is None or row.state not in (TransportState.FAILED, TransportState.WITHHELD):
        return row
    row.state = TransportState.QUEUED
    row.attempts = 0
    row.next_attempt_at = now
    row.finished_at = None
    row.error = ""
    session.add(row)
    return row


def subscriptions(session: Session) -> list[bytes]:
    """Every current Subscription; few (one or two per partner), read whole."""
    statement = select(RESOURCE_TABLE.c.content).where(
        RESOURCE_TABLE.c.resource_type == "Subscription", RESOURCE_TABLE.c.deleted.is_(False)
    )
    return [content for content in session.execute(statement).scalars() if content]


def fhir_bases(session: Session) -> list[tuple[str, str]]:
    """(organization id, FHIR base) of every partner reached at its FHIR server."""
    statement = select(_PARTNER.organization_id, _PARTNER.channel_address).where(
        _PARTNER.channel == "fhir", _PARTNER.channel_address.is_not(None)
    )
    return [(organization, base) for organization, base in session.execute(statement).all()]


def partner_of(session: Session, organization_id: str) -> PartnerRow | None:
    """The enabled partner registered for this Organization."""
    statement = select(PartnerRow).where(
        col(PartnerRow.organization_id) == organization_id, col(PartnerRow.enabled).is_(True)
    )
    row: PartnerRow | None = session.execute(statement).scalars().first()
    return row


def was_sent(session: Session, stored: StoredVersion, event: str) -> bool:
    """Whether this resource was queued to a partner with this event (any version, any state):
    an answer over a channel is taken only for what went out over it."""
    statement = select(col(OutboxRow.pk)).where(
        col(OutboxRow.resource_type) == stored.resource_type,
        col(OutboxRow.resource_id) == stored.resource_id,
        col(OutboxRow.event) == event,
    )
    return session.execute(statement.limit(1)).first() is not None
