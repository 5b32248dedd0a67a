"""The compliance officer's pages: the disclosure log (filters, CSV, each decision), the
break-the-glass review, the chain with its checkpoints, the chart, the accounting letter, the
consent registry and the consent forms awaiting approval."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from interop.api.bounds import RowNumber
from interop.api.console.pages import (
    ID,
    ConsoleRefused,
    ConsoleRoute,
    Reviewer,
    back,
    page,
)
from interop.audit.accounting import as_letter
from interop.services.console_chart import disclosure_chart
from interop.services.console_review import DecisionFilter, ReviewConsole, decisions_csv
from interop.services.errors import (
    BusinessRuleBroken,
    InvalidRequest,
    PreconditionFailed,
    ResourceNotFound,
)
from interop.services.forms import STATEMENTS
from interop.services.staff import StaffSession

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


def _console(request: Request) -> ReviewConsole:
    service: ReviewConsole = request.app.state.review_console
    return service


ConsoleDep = Annotated[ReviewConsole, Depends(_console)]


@router.get("/console/compliance")
def compliance(request: Request, session: Reviewer, console: ConsoleDep) -> HTMLResponse:
    """Audit-chain status, the chart of recent decisions, and the accounting letter."""
    return _compliancepage(request, session, console)


@router.post("/console/compliance/verify")
def verify_with_checkpoint(
    request: Request,
    session: Reviewer,
    console: ConsoleDep,
    checkpoint: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    """Walk the chain and check a checkpoint kept elsewhere (a cut end, a rolled-back copy)."""
    try:
        return _compliancepage(request, session, console, checked=[checkpoint])
    except InvalidRequest as refused:
        raise ConsoleRefused(422, str(refused)) from refused


@router.post("/console/compliance/checkpoint")
def sign_checkpoint(request: Request, session: Reviewer, console: ConsoleDep) -> HTMLResponse:
    """Sign the chain's head now and show it, for the officer to keep outside the database."""
    token = console.checkpoint(session.principal, datetime.now(UTC))
    return _compliancepage(request, session, console, signed=token)


def _compliancepage(
    request: Request,
    session: StaffSession,
    console: ReviewConsole,
    checked: list[str] | None = None,
    signed: str = "",
) -> HTMLResponse:
    chain = console.chain(checked or [])
    chart = disclosure_chart(console.decisions(DecisionFilter()))
    return page(
        request,
        session,
        "compliance.html",
        chain=chain,
        checked_at=datetime.now(UTC),
        with_checkpoint=bool(checked and checked[0].strip()),
        signed=signed,
        chart=Markup(chart),  # noqa: S704 - built by console_chart, every text escaped there
    )


@router.get("/console/accounting")
def accounting(
    session: Reviewer,
    console: ConsoleDep,
    patient: Annotated[str, Query(max_length=80)] = "",
) -> HTMLResponse:
    """The patient's printable accounting letter, the patient named by id or `Patient/id`
    as the other filters take it."""
    try:
        report = console.accounting(session.principal, patient, datetime.now(UTC))
    except InvalidRequest as refused:
        raise ConsoleRefused(400, str(refused)) from refused
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    return HTMLResponse(as_letter(report))


def _filters(
    patient: Annotated[str, Query(max_length=80)] = "",
    recipient: Annotated[str, Query(max_length=80)] = "",
    purpose: Annotated[str, Query(max_length=20)] = "",
    consent: Annotated[str, Query(max_length=100)] = "",
    rule: Annotated[str, Query(max_length=40)] = "",
    date_from: Annotated[str, Query(max_length=30)] = "",
    date_to: Annotated[str, Query(max_length=30)] = "",
    outcome: Annotated[str, Query(pattern="^(|released|withheld)$")] = "",
) -> DecisionFilter:
    return DecisionFilter(patient, recipient, purpose, consent, rule, date_from, date_to, outcome)


FiltersDep = Annotated[DecisionFilter, Depends(_filters)]


@router.get("/console/disclosures")
def disclosures(
    request: Request, session: Reviewer, console: ConsoleDep, wanted: FiltersDep
) -> HTMLResponse:
    try:
        found = console.decisions(wanted)
    except InvalidRequest as bad:
        return page(request, session, "disclosures.html", 400, wanted=wanted, rows=[], error=bad)
    return page(request, session, "disclosures.html", wanted=wanted, rows=found)


@router.get("/console/disclosures.csv")
def disclosures_csv(session: Reviewer, console: ConsoleDep, wanted: FiltersDep) -> Response:
    try:
        found = console.decisions(wanted)
    except InvalidRequest as bad:
        raise ConsoleRefused(400, str(bad)) from bad
    return Response(
        decisions_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="disclosures.csv"'},
    )


@router.get("/console/disclosures/{seq}")
def disclosure(
    request: Request, seq: RowNumber, session: Reviewer, console: ConsoleDep
) -> HTMLResponse:
    try:
        found = console.decision(seq)
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    return page(request, session, "decision.html", d=found)


@router.get("/console/emergencies")
def emergencies(
    request: Request, session: Reviewer, console: ConsoleDep, notice: str = ""
) -> HTMLResponse:
    return page(
        request, session, "emergencies.html", rows=console.emergencies(), notice=notice[:200]
    )


@router.post("/console/emergencies/{seq}/sign-off")
def sign_off(seq: RowNumber, session: Reviewer, console: ConsoleDep) -> Response:
    """The §2.51 review: a compliance officer signs the emergency disclosure off."""
    try:
        console.sign_off(seq, session.principal, datetime.now(UTC))
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    except (InvalidRequest, BusinessRuleBroken) as refused:
        raise ConsoleRefused(409, str(refused)) from refused
    return back("/console/emergencies", f"Decision {seq} signed off")


@router.get("/console/consents")
def consents(
    request: Request,
    session: Reviewer,
    console: ConsoleDep,
    patient: Annotated[str, Query(max_length=80)] = "",
    notice: str = "",
) -> HTMLResponse:
    """The consent registry: validity with the missing §2.31 elements named."""
    lines = console.consents(session.principal, patient, datetime.now(UTC))
    return page(request, session, "consents.html", rows=lines, patient=patient, notice=notice[:200])


@router.post("/console/consents/{consent_id}/revoke")
def revoke(
    consent_id: Annotated[str, Path(pattern=ID)],
    session: Reviewer,
    console: ConsoleDep,
    version: Annotated[RowNumber, Form()],
    received: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    """The patient's written revocation (C6), recorded against the version shown."""
    try:
        console.revoke_consent(session.principal, consent_id, version, received)
    except (InvalidRequest, BusinessRuleBroken) as refused:
        raise ConsoleRefused(422, str(refused)) from refused
    except PreconditionFailed as stale:
        raise ConsoleRefused(
            412, "The consent changed since the page was shown: reload it."
        ) from stale
    except ResourceNotFound as missing:
        raise ConsoleRefused(404, str(missing)) from missing
    return back("/console/consents", f"Consent {consent_id} revoked")


@router.get("/console/forms")
def forms(
    request: Request, session: Reviewer, console: ConsoleDep, notice: str = ""
) -> HTMLResponse:
    """Consent forms awaiting approval (C9), and those approved."""
    return page(
        request,
        session,
        "forms.html",
        view=console.forms(session.principal),
        statements=STATEMENTS,
        notice=notice[:200],
    )


@router.post("/console/forms/approve")
def approve_form(
    session: Reviewer,
    console: ConsoleDep,
    form: Annotated[str, Form(max_length=1024)],
    title: Annotated[str, Form(max_length=200)] = "",
    statements: Annotated[list[str], Form(max_length=len(STATEMENTS))] = [],  # noqa: B006
) -> Response:
    try:
        console.approve_form(session.principal, form, title, statements)
    except InvalidRequest as refused:
        raise ConsoleRefused(422, str(refused)) from refused
    return back("/console/forms", "Form approved")
