"""For compliance officers (and administrators): read-only views of the disclosure log."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import HTMLResponse, Response

from interop.api.bounds import Offset, PageSize
from interop.api.deps import BaseUrlDep
from interop.api.formats import Format
from interop.api.responses import FhirResponse
from interop.api.security import requires_role
from interop.audit import accounting as acc
from interop.services.compliance import ComplianceService, LogQuery, PageAddress, date_bounds
from interop.services.staff import Role, StaffSession

router = APIRouter(prefix="/audit", tags=["Compliance"])

ReviewerDep = Annotated[
    StaffSession, Depends(requires_role(Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR))
]


def _compliance(request: Request) -> ComplianceService:
    service: ComplianceService = request.app.state.compliance
    return service


ComplianceDep = Annotated[ComplianceService, Depends(_compliance)]
CountParam = Annotated[PageSize, Query(alias="_count")]
OffsetParam = Annotated[Offset, Query(alias="_offset")]


def _address(base: str, path: str, filters: list[tuple[str, str | None]]) -> PageAddress:
    """The page's absolute URL (beside the FHIR base partners see) and the filters it was
    asked with, those given, for its paging links."""
    given = [(name, value) for name, value in filters if value is not None]
    return PageAddress(base.removesuffix("/fhir") + path, given)


@router.get("/verify", operation_id="verify_audit_chain")
def verify_chain(compliance: ComplianceDep, _: ReviewerDep) -> dict[str, Any]:
    """Walk the hash chain; the first edited, deleted or reordered row is named."""
    report = compliance.verify()
    return {
        "intact": report.intact,
        "rows": report.rows,
        "first_broken_seq": report.first_broken_seq,
        "problem": report.problem,
    }


@router.get("/AuditEvent", operation_id="search_audit_events")
def search_audit_events(
    compliance: ComplianceDep,
    _: ReviewerDep,
    base: BaseUrlDep,
    patient: Annotated[str | None, Query(pattern=r"^Patient/[A-Za-z0-9\-.]{1,64}$")] = None,
    agent: Annotated[str | None, Query(pattern=r"^Organization/[A-Za-z0-9\-.]{1,64}$")] = None,
    consent: Annotated[str | None, Query(max_length=100)] = None,
    date_from: Annotated[str | None, Query(alias="date-from", max_length=40)] = None,
    date_to: Annotated[str | None, Query(alias="date-to", max_length=40)] = None,
    outcome: Annotated[Literal["released", "withheld"] | None, Query()] = None,
    emergency: bool | None = None,
    count: CountParam = 100,
    offset: OffsetParam = 0,
) -> FhirResponse:
    """Disclosure decisions as FHIR AuditEvents, newest first (A3: by patient or consent),
    a page at a time: `link` names this page and the next while more follow."""
    since, until = date_bounds(date_from, date_to)
    query = LogQuery(
        patient=patient,
        requester=agent,
        consent=consent,
        since=since,
        until=until,
        decision={"released": "permit", "withheld": "deny", None: None}[outcome],
        emergency=emergency,
        offset=offset,
        count=count,
    )
    page = _address(
        base,
        "/audit/AuditEvent",
        [
            ("patient", patient),
            ("agent", agent),
            ("consent", consent),
            ("date-from", date_from),
            ("date-to", date_to),
            ("outcome", outcome),
            ("emergency", None if emergency is None else str(emergency).lower()),
        ],
    )
    return FhirResponse(compliance.audit_events(query, page), fmt=Format.JSON)


@router.get("/emergencies", operation_id="emergency_disclosures")
def emergency_disclosures(
    compliance: ComplianceDep,
    _: ReviewerDep,
    base: BaseUrlDep,
    count: CountParam = 100,
    offset: OffsetParam = 0,
) -> FhirResponse:
    """Every break-the-glass disclosure, for compliance review (E1), newest first and a page
    at a time: `total` counts them all and `link` names the next page while more follow."""
    query = LogQuery(emergency=True, decision="permit", offset=offset, count=count)
    page = _address(base, "/audit/emergencies", [])
    return FhirResponse(compliance.audit_events(query, page), fmt=Format.JSON)


@router.get("/accounting/Patient/{patient_id}", operation_id="accounting_of_disclosures")
def accounting_of_disclosures(
    patient_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")],
    compliance: ComplianceDep,
    _: ReviewerDep,
    format: Literal["fhir", "csv", "html"] = "html",
) -> Response:
    """The patient's accounting of disclosures for the past three years (A2)."""
    report = compliance.accounting(patient_id, datetime.now(UTC))
    return _rendered(report, patient_id, format)


@router.get(
    "/accounting/Patient/{patient_id}/general-designation",
    operation_id="general_designation_disclosures",
)
def general_designation_disclosures(
    patient_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")],
    compliance: ComplianceDep,
    _: ReviewerDep,
    format: Literal["fhir", "csv", "html"] = "html",
) -> Response:
    """§2.24: for a patient who consented through an intermediary with a general designation
    of its participants, the participants their records went to, when, and what, for the past
    three years (the list the patient may ask for in writing)."""
    report = compliance.general_designation_list(patient_id, datetime.now(UTC))
    return _rendered(report, patient_id, format, "general-designation")


def _rendered(
    report: acc.Accounting, patient_id: str, format: str, name: str = "accounting"
) -> Response:
    if format == "fhir":
        return FhirResponse(acc.as_bundle(report), fmt=Format.JSON)
    if format == "csv":
        return Response(
            acc.as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{patient_id}.csv"'},
        )
    return HTMLResponse(acc.as_letter(report))
