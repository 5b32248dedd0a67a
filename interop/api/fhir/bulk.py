"""Bulk Data $export (Bulk Data Access IG v2.0.0) and Patient/{id}/$everything: each route
parses, calls one service, renders.

Kick-off answers 202 with Content-Location (the job's status URL); polling answers 202 with
Retry-After and X-Progress while the job runs, 200 with the manifest (application/json) and
Expires once complete, 500 with an OperationOutcome if it failed; DELETE answers 202 and the
job is gone (404 afterwards); files are NDJSON (application/fhir+ndjson). Status, files and
delete need a token of the client that started the job: for any other, the job is unknown.
"""

from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response, StreamingResponse

from interop.api.deps import BaseUrlDep, FormatDep, OptionalBodyDep
from interop.api.formats import Format
from interop.api.responses import FhirResponse
from interop.api.security import RequesterDep, authenticated
from interop.auth.requester import Requester
from interop.services.bulk_export import BulkExports
from interop.services.errors import NotSupported, ResourceNotFound, ScopeInsufficient
from interop.services.everything import PatientEverything
from interop.services.export_request import GROUP, PATIENT, SYSTEM
from interop.services.operation_parameters import as_query
from interop.services.outcomes import outcome
from mappings.errors import Issue

router = APIRouter(prefix="/fhir", tags=["FHIR Bulk Data"], dependencies=[Depends(authenticated)])

NDJSON = "application/fhir+ndjson"
FHIR_MEDIA: dict[str, dict[str, Any]] = {"application/fhir+json": {}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"description": "An OperationOutcome describing the error", "content": FHIR_MEDIA}
}
PARAMETERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The operation's parameters, as a FHIR Parameters resource",
        "content": {
            "application/fhir+json": {"schema": {"type": "object"}},
            "application/fhir+xml": {"schema": {"type": "string"}},
        },
    }
}


def _patient_reader(requester: RequesterDep) -> Requester:
    """$everything starts from a Patient read: the token must allow reading Patients."""
    if not requester.may("Patient", "r"):
        raise ScopeInsufficient("the access token has no scope allowing 'r' on Patient")
    return requester


PatientReader = Annotated[Requester, Depends(_patient_reader)]


def _exports(request: Request) -> BulkExports:
    service: BulkExports = request.app.state.bulk_exports
    return service


def _everything(request: Request) -> PatientEverything:
    service: PatientEverything = request.app.state.everything
    return service


ExportsDep = Annotated[BulkExports, Depends(_exports)]
EverythingDep = Annotated[PatientEverything, Depends(_everything)]
PreferHeader = Annotated[str | None, Header()]


@router.get("/$export", operation_id="fhir_export_system", status_code=202, responses=RESPONSES)
@router.post(
    "/$export",
    operation_id="fhir_export_system_post",
    openapi_extra=PARAMETERS_BODY,
    status_code=202,
    responses=RESPONSES,
)
def export_system(
    request: Request,
    exports: ExportsDep,
    base: BaseUrlDep,
    requester: RequesterDep,
    body: OptionalBodyDep,
    prefer: PreferHeader = None,
) -> Response:
    """System-level export: every type the token reaches (IG "Endpoint - System Level");
    by POST, its parameters in a Parameters body."""
    return _kickoff(request, exports, base, requester, prefer, SYSTEM, None, body)


@router.get(
    "/Patient/$export", operation_id="fhir_export_patients", status_code=202, responses=RESPONSES
)
@router.post(
    "/Patient/$export",
    operation_id="fhir_export_patients_post",
    openapi_extra=PARAMETERS_BODY,
    status_code=202,
    responses=RESPONSES,
)
def export_patients(
    request: Request,
    exports: ExportsDep,
    base: BaseUrlDep,
    requester: RequesterDep,
    body: OptionalBodyDep,
    prefer: PreferHeader = None,
) -> Response:
    """All patients' compartments (IG "Endpoint - All Patients"); by POST, its parameters in
    a Parameters body."""
    return _kickoff(request, exports, base, requester, prefer, PATIENT, None, body)


@router.get(
    "/Group/{group_id}/$export",
    operation_id="fhir_export_group",
    status_code=202,
    responses=RESPONSES,
)
@router.post(
    "/Group/{group_id}/$export",
    operation_id="fhir_export_group_post",
    openapi_extra=PARAMETERS_BODY,
    status_code=202,
    responses=RESPONSES,
)
def export_group(
    group_id: str,
    request: Request,
    exports: ExportsDep,
    base: BaseUrlDep,
    requester: RequesterDep,
    body: OptionalBodyDep,
    prefer: PreferHeader = None,
) -> Response:
    """The compartments of the Group's member Patients (IG "Endpoint - Group of Patients");
    by POST, its parameters in a Parameters body."""
    return _kickoff(request, exports, base, requester, prefer, GROUP, group_id, body)


@router.get("/$export-status/{job_id}", operation_id="fhir_export_status", responses=RESPONSES)
def export_status(
    job_id: str, exports: ExportsDep, base: BaseUrlDep, requester: RequesterDep
) -> Response:
    """Poll a job (IG "Bulk Data Status Request")."""
    status = exports.status(job_id, requester, base)
    if status.manifest is not None:
        headers = {}
        if status.expires_at is not None:
            headers["Expires"] = format_datetime(status.expires_at, usegmt=True)
        return Response(
            orjson.dumps(status.manifest), media_type="application/json", headers=headers
        )
    if status.state == "failed":
        failed = outcome(Issue("error", "processing", status.error))
        return FhirResponse(failed, fmt=Format.JSON, status_code=500)
    headers = {"X-Progress": status.progress, "Retry-After": str(exports.retry_after_seconds)}
    return Response(status_code=202, headers=headers)


@router.delete("/$export-status/{job_id}", operation_id="fhir_export_delete", responses=RESPONSES)
def export_delete(job_id: str, exports: ExportsDep, requester: RequesterDep) -> Response:
    """Cancel a job or release its files (IG "Bulk Data Delete Request")."""
    exports.delete(job_id, requester)
    done = outcome(Issue("information", "informational", "the export job was deleted"))
    return FhirResponse(done, fmt=Format.JSON, status_code=202)


@router.get(
    "/$export-file/{job_id}/{file_name}",
    operation_id="fhir_export_file",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}, **RESPONSES},
)
def export_file(
    job_id: str, file_name: str, exports: ExportsDep, requester: RequesterDep
) -> StreamingResponse:
    """One NDJSON output file (IG "Bulk Data Output File Request"), streamed chunk by chunk."""
    resource_type, dot, extension = file_name.partition(".")
    if not dot or extension != "ndjson":
        raise ResourceNotFound("no such export file")
    found = exports.file(job_id, resource_type, requester)
    return StreamingResponse(found.chunks, media_type=NDJSON)


@router.get(
    "/Patient/{patient_id}/$everything",
    operation_id="fhir_patient_everything",
    responses=RESPONSES,
)
@router.post(
    "/Patient/{patient_id}/$everything",
    operation_id="fhir_patient_everything_post",
    openapi_extra=PARAMETERS_BODY,
    responses=RESPONSES,
)
def patient_everything(
    patient_id: str,
    request: Request,
    everything: EverythingDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: PatientReader,
    body: OptionalBodyDep,
) -> FhirResponse:
    """The patient's compartment, paged (R4 Patient-everything), through the gate; by POST,
    its parameters in a Parameters body (R4: every operation by POST)."""
    params = [*request.query_params.multi_items(), *as_query(body)]
    bundle = everything.everything(patient_id, params, requester, base_url=base)
    return FhirResponse(bundle, fmt=fmt)


@router.get("/Patient/$everything", operation_id="fhir_patients_everything", responses=RESPONSES)
@router.post(
    "/Patient/$everything", operation_id="fhir_patients_everything_post", responses=RESPONSES
)
def patients_everything(requester: PatientReader) -> Response:
    """Every patient's record at once is not served here: it is what a bulk export is for."""
    raise NotSupported(
        "Patient/$everything for all patients is not supported: ask for one patient "
        "(Patient/{id}/$everything) or export them (Patient/$export)"
    )


def _kickoff(
    request: Request,
    exports: BulkExports,
    base: str,
    requester: Requester,
    prefer: str | None,
    level: str,
    group_id: str | None,
    body: dict[str, Any] | None,
) -> Response:
    """Queue the job; a POST's parameters come from its body, and the manifest's request URL
    then leaves them out (IG)."""
    path = request.url.path.removeprefix("/fhir")
    query = request.url.query
    request_url = f"{base}{path}" + (f"?{query}" if query else "")
    params = [*request.query_params.multi_items(), *as_query(body)]
    job_id = exports.kickoff(
        level,
        params,
        requester,
        request_url=request_url,
        base_url=base,
        prefer=prefer,
        group_id=group_id,
    )
    accepted = outcome(Issue("information", "informational", "the export job was queued"))
    headers = {"Content-Location": f"{base}/$export-status/{job_id}"}
    return FhirResponse(accepted, fmt=Format.JSON, status_code=202, headers=headers)
