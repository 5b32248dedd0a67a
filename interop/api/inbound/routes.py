"""Held inbound messages, for case managers and administrators to inspect (nothing is dropped)."""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from interop.api.security import requires_role
from interop.services.inbound import InboundService
from interop.services.staff import Role, StaffSession

router = APIRouter(prefix="/inbound", tags=["Inbound messages"])

StaffDep = Annotated[StaffSession, Depends(requires_role(Role.CASE_MANAGER, Role.ADMINISTRATOR))]


def _inbound(request: Request) -> InboundService:
    service: InboundService = request.app.state.inbound
    return service


@router.get("/held", operation_id="held_messages")
def held_messages(
    inbound: Annotated[InboundService, Depends(_inbound)], _: StaffDep
) -> list[dict[str, Any]]:
    """Messages answered AE or AR, with the segment and field each problem names."""
    return [asdict(message) for message in inbound.held()]
