"""/cases/{kind}: case records as typed JSON (the mappings.model domain), for case managers.

Every kind has the same three routes: PUT one by id (create or replace), GET one, and GET the
client's records of that kind. Bodies and answers are the domain types themselves, so the
OpenAPI document describes each kind exactly; answers add the FHIR reference and version the
record is stored as, and anything the FHIR resource holds that the domain has no place for.
"""

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, create_model
from starlette.responses import Response

from interop.api.security import staff_session
from interop.services.cases import KINDS, CaseService, Kind, OverdueItem, Record, overdue_items
from interop.services.errors import InvalidRequest
from interop.services.exports import DocumentExports
from interop.services.staff import StaffSession

router = APIRouter(prefix="/cases", tags=["Case management"])
_ID = r"^[A-Za-z0-9\-.]{1,64}$"


class UnmappedOut(BaseModel):
    path: str
    reason: str


class ProblemOut(BaseModel):
    """Why a consent cannot be relied on: the §2.31 element, and where a partner puts it."""

    diagnostics: str
    expression: list[str]


def _cases(request: Request) -> CaseService:
    service: CaseService = request.app.state.cases
    return service


CasesDep = Annotated[CaseService, Depends(_cases)]
StaffDep = Annotated[StaffSession, Depends(staff_session)]


def _record_model(kind: Kind[Any]) -> type[BaseModel]:
    return create_model(
        f"{kind.model.__name__}Record",
        value=(kind.model, ...),
        reference=(str, ...),
        version=(int, ...),
        unmapped=(list[UnmappedOut], ...),
        problems=(list[ProblemOut], ...),
    )


def _out(record: Record[Any]) -> dict[str, Any]:
    return {
        "value": record.value,
        "reference": record.reference,
        "version": record.version,
        "unmapped": [{"path": u.path, "reason": u.reason} for u in record.unmapped],
        "problems": [
            {"diagnostics": p.diagnostics, "expression": list(p.expression)}
            for p in record.problems
        ],
    }


def _with_signature(endpoint: Callable[..., Any], **annotations: Any) -> Callable[..., Any]:
    """Give the endpoint its per-kind typed parameters, which FastAPI reads for validation
    and for the OpenAPI document."""
    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        for name, annotation in annotations.items()
    ]
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return endpoint


def _add_routes(kind: Kind[Any]) -> None:
    record_model = _record_model(kind)
    singular = kind.name.removesuffix("s").replace("-", "_")

    def put_record(
        ident: str, body: Any, staff: StaffSession, cases: CaseService
    ) -> dict[str, Any]:
        if str(getattr(body, "id", "")) != ident:
            raise InvalidRequest(f"the body's id must be {ident!r}")
        return _out(cases.put(kind, body, staff.principal))

    def get_record(ident: str, staff: StaffSession, cases: CaseService) -> dict[str, Any]:
        return _out(cases.get(kind, ident, staff.principal))

    def list_records(client: str, staff: StaffSession, cases: CaseService) -> list[dict[str, Any]]:
        return [_out(record) for record in cases.list(kind, client, staff.principal)]

    ident_type = Annotated[str, Path(alias="id", pattern=_ID)]
    router.add_api_route(
        f"/{kind.name}/{{id}}",
        _with_signature(
            put_record,
            ident=ident_type,
            body=Annotated[kind.model, Body()],
            staff=StaffDep,
            cases=CasesDep,
        ),
        methods=["PUT"],
        response_model=record_model,
        operation_id=f"put_{singular}",
        summary=f"Create or replace a {kind.model.__name__} ({kind.resource_type} in FHIR)",
    )
    router.add_api_route(
        f"/{kind.name}/{{id}}",
        _with_signature(get_record, ident=ident_type, staff=StaffDep, cases=CasesDep),
        methods=["GET"],
        response_model=record_model,
        operation_id=f"get_{singular}",
        summary=f"Read a {kind.model.__name__}",
    )
    if kind.client_param is not None and kind.name != "clients":
        router.add_api_route(
            f"/{kind.name}",
            _with_signature(
                list_records,
                client=Annotated[str, Query(pattern=_ID)],
                staff=StaffDep,
                cases=CasesDep,
            ),
            methods=["GET"],
            response_model=list[record_model],  # type: ignore[valid-type]
            operation_id=f"list_{kind.name.replace('-', '_')}",
            summary=f"A client's {kind.model.__name__} records",
        )


for _kind in KINDS:
    _add_routes(_kind)


def _exports(request: Request) -> DocumentExports:
    service: DocumentExports = request.app.state.exports
    return service


@router.get(
    "/handoffs/{id}/transfer-summary",
    operation_id="handoff_transfer_summary",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def handoff_transfer_summary(
    ident: Annotated[str, Path(alias="id", pattern=_ID)],
    staff: StaffDep,
    exports: Annotated[DocumentExports, Depends(_exports)],
) -> Response:
    """The handoff's C-CDA Transfer Summary, of what the receiving program may receive."""
    document = exports.transfer_summary(ident, staff.principal)
    return Response(document, media_type="application/xml")


@router.get(
    "/referrals/{id}/referral-note",
    operation_id="referral_note",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def referral_note(
    ident: Annotated[str, Path(alias="id", pattern=_ID)],
    staff: StaffDep,
    exports: Annotated[DocumentExports, Depends(_exports)],
) -> Response:
    """The referral's C-CDA Referral Note, of what the program asked may receive."""
    document = exports.referral_note(ident, staff.principal)
    return Response(document, media_type="application/xml")


@router.get("/overdue", operation_id="list_overdue", response_model=list[OverdueItem])
def list_overdue(
    program: Annotated[str, Query(pattern=_ID)], staff: StaffDep, cases: CasesDep
) -> list[OverdueItem]:
    """The program's referrals past their response deadline and handoffs past their planned
    date, on either side, across its clients (the FHIR searches are in the README)."""
    return overdue_items(cases, staff.principal, program, datetime.now(UTC))
