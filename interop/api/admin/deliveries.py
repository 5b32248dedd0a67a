"""Deliveries to partners for staff: what is queued, sent, acknowledged, failed or withheld,
and sending a failed one again once its cause is fixed."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from interop.api.bounds import PageSize, RowNumber
from interop.api.security import AdministratorDep, requires_role
from interop.services.staff import Role, StaffSession
from interop.sync.deliveries import Deliveries, DeliveryView

router = APIRouter(prefix="/admin", tags=["Administration"])

WatcherDep = Annotated[
    StaffSession, Depends(requires_role(Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR))
]


def _deliveries(request: Request) -> Deliveries:
    service: Deliveries = request.app.state.deliveries
    return service


DeliveriesDep = Annotated[Deliveries, Depends(_deliveries)]


@router.get("/deliveries", operation_id="list_deliveries")
def list_deliveries(
    deliveries: DeliveriesDep,
    _: WatcherDep,
    state: Annotated[list[str], Query(max_length=6)] = [],  # noqa: B006
    partner: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[PageSize, Query()] = 100,
) -> list[DeliveryView]:
    """Newest first; filter by transport state (repeatable) and partner client_id."""
    return deliveries.list(state, partner, limit)


@router.post("/deliveries/{delivery_id}/retry", operation_id="retry_delivery")
def retry_delivery(
    delivery_id: RowNumber, deliveries: DeliveriesDep, _: AdministratorDep
) -> DeliveryView:
    """Queue a failed or withheld delivery again from its first attempt."""
    return deliveries.retry(delivery_id)
