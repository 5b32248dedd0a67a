"""What staff see of deliveries to partners, and the one thing they may do: send again."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from interop.services.errors import InvalidRequest, ResourceNotFound
from interop.services.staff import Role, StaffPrincipal
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.outbox import TransportState
from interop.store.tables import OutboxRow


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One queued change and how far it got; names resources by id only, never by content."""

    id: int
    partner: str
    channel: str
    event: str
    resource: str
    version: int
    state: str
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None
    error: str
    receipt: str


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    views: list[DeliveryView]
    truncated: bool
    """More deliveries match than were listed (the newest are)."""


class Deliveries:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def list(
        self, states: Sequence[str] = (), partner: str | None = None, limit: int = 100
    ) -> list[DeliveryView]:
        _check(states)
        with unit_of_work(self._engine, writes=False) as session:
            rows = outbox.listing(session, states, partner, limit)
            return [_view(row) for row in rows]

    def page(
        self, states: Sequence[str] = (), partner: str | None = None, limit: int = 100
    ) -> DeliveryPage:
        """The newest `limit` deliveries, and whether more match: a listing that stops at its
        limit says so, so an operator never takes the first hundred for all there is."""
        found = self.list(states, partner, limit + 1)
        return DeliveryPage(found[:limit], truncated=len(found) > limit)

    def retry(self, pk: int) -> DeliveryView:
        """Send a failed or withheld delivery again; others are left as they are."""
        with unit_of_work(self._engine) as session:
            row = outbox.requeue(session, pk, self._clock())
            if row is None:
                raise ResourceNotFound(f"no delivery has id {pk}")
            return _view(row)

    def list_for(
        self, staff: StaffPrincipal, states: Sequence[str], limit: int = 100
    ) -> Sequence[DeliveryView]:
        """As `list`, as a person may see them: an administrator every delivery, a case
        manager those of the records its programs wrote or are a party to (requester, owner,
        performer), the newest `limit` of those. Another program's failed sends, and the
        errors that quote them, are that program's business: they tell whom it referred and
        that a consent was missing."""
        if staff.role is Role.ADMINISTRATOR:
            return self.list(states, None, limit)
        _check(states)
        with unit_of_work(self._engine, writes=False) as session:
            rows = outbox.listing_concerning(session, states, staff.programs, limit)
            return [_view(row) for row in rows]

    def retry_for(self, staff: StaffPrincipal, pk: int) -> DeliveryView:
        """`retry`, of a delivery the person may see (any other is unknown to it)."""
        if staff.role is not Role.ADMINISTRATOR:
            with unit_of_work(self._engine, writes=False) as session:
                if outbox.get_concerning(session, pk, staff.programs) is None:
                    raise ResourceNotFound(f"no delivery has id {pk}")
        return self.retry(pk)


def _check(states: Sequence[str]) -> None:
    """Refuse a state that is no transport state, rather than list nothing for a typo."""
    known = {state.value for state in TransportState}
    unknown = [state for state in states if state not in known]
    if unknown:
        raise InvalidRequest(f"unknown state {unknown[0][:20]!r}; one of {sorted(known)}")


def _view(row: OutboxRow) -> DeliveryView:
    assert row.pk is not None
    pending = row.state == TransportState.QUEUED
    return DeliveryView(
        id=row.pk,
        partner=row.partner_client_id,
        channel=row.channel,
        event=row.event,
        resource=f"{row.resource_type}/{row.resource_id}",
        version=row.version_id,
        state=row.state,
        attempts=row.attempts,
        queued_at=row.created_at,
        next_attempt_at=row.next_attempt_at if pending else None,
        finished_at=row.finished_at,
        error=row.error,
        receipt=row.receipt,
    )
