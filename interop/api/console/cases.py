"""The case manager's pages: the referral inbox and outbox with their moves, the clients of
their programs, and deliveries to partners that failed or were withheld."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import HTMLResponse, Response

from interop.api.bounds import RowNumber
from interop.api.console.pages import ID, CaseManager, ConsoleRefused, ConsoleRoute, back, page
from interop.services.console_cases import DECLINE_REASONS, MOVES, CaseConsole
from interop.services.errors import (
    BusinessRuleBroken,
    Forbidden,
    InvalidRequest,
    ResourceNotFound,
)
from interop.sync.deliveries import Deliveries

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


def _console(request: Request) -> CaseConsole:
    service: CaseConsole = request.app.state.case_console
    return service


ConsoleDep = Annotated[CaseConsole, Depends(_console)]


@router.get("/console/referrals")
def referrals(
    request: Request, session: CaseManager, console: ConsoleDep, notice: str = ""
) -> HTMLResponse:
    now = datetime.now(UTC)
    return page(
        request,
        session,
        "referrals.html",
        referrals=console.referrals(session.principal, now),
        reasons=[code.value for code in DECLINE_REASONS],
        notice=notice[:200],
    )


@router.post("/console/referrals/{task_id}/{move}")
def move_referral(
    task_id: Annotated[str, Path(pattern=ID)],
    move: str,
    session: CaseManager,
    console: ConsoleDep,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if move not in MOVES:
        raise ConsoleRefused(404, "no such action")
    try:
        outcome = console.move_referral(session.principal, task_id, move, reason, datetime.now(UTC))
    except (InvalidRequest, BusinessRuleBroken) as refused:
        raise ConsoleRefused(422, str(refused)) from refused
    except (ResourceNotFound, Forbidden) as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    return back("/console/referrals", f"Referral {task_id}: {outcome}")


@router.get("/console/clients")
def clients(request: Request, session: CaseManager, console: ConsoleDep) -> HTMLResponse:
    return page(request, session, "clients.html", listing=console.clients(session.principal))


@router.get("/console/clients/{client_id}")
def client(
    request: Request,
    client_id: Annotated[str, Path(pattern=ID)],
    session: CaseManager,
    console: ConsoleDep,
) -> HTMLResponse:
    """A client's page, every record read through the gate and logged as the API's are."""
    try:
        found = console.client_file(session.principal, client_id)
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, "No client you may read has that id.") from missing
    return page(request, session, "client.html", file=found)


def _deliveries(request: Request) -> Deliveries:
    service: Deliveries = request.app.state.deliveries
    return service


DeliveriesDep = Annotated[Deliveries, Depends(_deliveries)]
_FAILED_STATES = ("failed", "withheld")


@router.get("/console/deliveries")
def deliveries(
    request: Request, session: CaseManager, outbox: DeliveriesDep, notice: str = ""
) -> HTMLResponse:
    """Sends to partners that failed or that the gate withheld, to retry once fixed."""
    rows = outbox.list_for(session.principal, _FAILED_STATES)
    return page(request, session, "deliveries.html", rows=rows, notice=notice[:200])


@router.post("/console/deliveries/{delivery_id}/retry")
def retry(delivery_id: RowNumber, session: CaseManager, outbox: DeliveriesDep) -> Response:
    try:
        outbox.retry_for(session.principal, delivery_id)
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    return back("/console/deliveries", f"Delivery {delivery_id} queued again")
