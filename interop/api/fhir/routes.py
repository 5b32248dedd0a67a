"""FHIR R4 RESTful interactions (R4 §3.1.0): each route parses, calls one service, renders."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from interop.api.auth.routes import endpoints
from interop.api.deps import (
    BaseUrlDep,
    BodyDep,
    BundlesDep,
    FormatDep,
    OptionalBodyDep,
    ResourcesDep,
    StrictDep,
)
from interop.api.fhir.bulk import PARAMETERS_BODY
from interop.api.formats import Format, UnsupportedMediaType
from interop.api.responses import FhirResponse, version_headers
from interop.api.security import (
    RequesterDep,
    authenticated,
    requires,
    scope_authorizer,
    subscription_reader,
    system_reader,
    write_guard,
)
from interop.auth.requester import Requester
from interop.services.capability import security
from interop.services.operation_parameters import as_query
from interop.services.operations import validated_resource
from interop.services.outcomes import outcome
from interop.services.resources import WriteOutcome
from interop.services.subsetting import requested_subset, subset_content
from mappings.errors import Issue

public_router = APIRouter(prefix="/fhir", tags=["FHIR R4"])
router = APIRouter(prefix="/fhir", tags=["FHIR R4"], dependencies=[Depends(authenticated)])
"""Every interaction but metadata needs a valid token; each route adds the scope it needs."""

Reader = Annotated[Requester, Depends(requires("r"))]
Searcher = Annotated[Requester, Depends(requires("s"))]
Creator = Annotated[Requester, Depends(requires("c"))]
Updater = Annotated[Requester, Depends(requires("u"))]
Deleter = Annotated[Requester, Depends(requires("d"))]
SystemReader = Annotated[Requester, Depends(system_reader)]
Validator = Annotated[Requester, Depends(requires("c"))]
SubscriptionReader = Annotated[Requester, Depends(subscription_reader)]

FHIR_MEDIA: dict[str, dict[str, Any]] = {"application/fhir+json": {}, "application/fhir+xml": {}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"description": "An OperationOutcome describing the error", "content": FHIR_MEDIA}
}


@public_router.get("/metadata", operation_id="fhir_capabilities", responses=RESPONSES)
def capabilities(request: Request, fmt: FormatDep, base: BaseUrlDep) -> FhirResponse:
    """The CapabilityStatement (R4 §3.1.0.13), naming the base URL it was reached at."""
    statement = request.app.state.capability
    implementation = {**statement["implementation"], "url": base}
    [rest] = statement["rest"]
    secured = {**rest, "security": security(endpoints(base).token_url)}
    served = {**statement, "implementation": implementation, "rest": [secured]}
    return FhirResponse(served, fmt=fmt)


@router.post("", operation_id="fhir_transaction", responses=RESPONSES)
def transaction(
    bundles: BundlesDep, body: BodyDep, fmt: FormatDep, base: BaseUrlDep, requester: RequesterDep
) -> FhirResponse:
    """Process a transaction or batch Bundle (R4 §3.1.0.11); each entry is authorized."""
    result = bundles.process(
        body,
        requester,
        base_url=base,
        authorize=scope_authorizer(requester),
        guard=write_guard(requester, base),
    )
    return FhirResponse(result, fmt=fmt)


@router.get("/_history", operation_id="fhir_history_system", responses=RESPONSES)
def history_system(
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: SystemReader,
    strict: StrictDep,
) -> FhirResponse:
    """Every change to every resource, newest first (R4 §3.1.0.10)."""
    params = list(request.query_params.multi_items())
    bundle = resources.history(None, None, params, requester, base_url=base, strict=strict)
    return FhirResponse(bundle, fmt=fmt)


@router.get("/{resource_type}", operation_id="fhir_search", responses=RESPONSES)
def search(
    resource_type: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    strict: StrictDep,
    requester: Searcher,
) -> FhirResponse:
    """Search by GET (R4 §3.1.0.9)."""
    params = list(request.query_params.multi_items())
    bundle = resources.search(resource_type, params, requester, base_url=base, strict=strict)
    return FhirResponse(bundle, fmt=fmt)


@router.post("/{resource_type}/_search", operation_id="fhir_search_post", responses=RESPONSES)
async def search_post(
    resource_type: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    strict: StrictDep,
    requester: Searcher,
) -> FhirResponse:
    """Search by POST, form-encoded: for criteria too long, or too private, for a URL. A
    body in any other format is refused, not ignored: searching without its criteria would
    answer with every record the requester may see (R4 §3.1.0.9)."""
    _check_form_encoded(request)
    form: FormData = await request.form()
    params = list(request.query_params.multi_items()) + [
        (name, value) for name, value in form.multi_items() if isinstance(value, str)
    ]
    bundle = await run_in_threadpool(
        resources.search, resource_type, params, requester, base_url=base, strict=strict
    )
    return FhirResponse(bundle, fmt=fmt)


def _check_form_encoded(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if has_body and media_type != _FORM:
        raise UnsupportedMediaType(f"a search by POST sends its parameters as {_FORM}")


_FORM = "application/x-www-form-urlencoded"


@router.post("/{resource_type}", operation_id="fhir_create", status_code=201, responses=RESPONSES)
def create(
    resource_type: str,
    resources: ResourcesDep,
    body: BodyDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Creator,
    if_none_exist: Annotated[str | None, Header()] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """Create with a server-assigned id; conditional with If-None-Exist (R4 §3.1.0.7-8)."""
    written = resources.create(
        resource_type,
        body,
        requester,
        base_url=base,
        if_none_exist=if_none_exist,
        guard=write_guard(requester, base),
        answered=_answers_with_resource(prefer),
    )
    return _written(written, fmt, base, prefer)


@router.post("/{resource_type}/$validate", operation_id="fhir_validate", responses=RESPONSES)
def validate(
    resource_type: str,
    request: Request,
    resources: ResourcesDep,
    body: BodyDep,
    fmt: FormatDep,
    requester: Validator,
) -> FhirResponse:
    """$validate (R4 Resource-validate): an OperationOutcome, errors included, with 200 OK.
    The resource is the body, or the `resource` parameter of a Parameters body (the
    operation's own form; mode `create`, in the body or the URL, is the one a type-level call
    can answer)."""
    resource = validated_resource(body, list(request.query_params.multi_items()))
    return FhirResponse(resources.validate(resource_type, resource, requester), fmt=fmt)


@router.get("/{resource_type}/_history", operation_id="fhir_history_type", responses=RESPONSES)
def history_type(
    resource_type: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Searcher,
    strict: StrictDep,
) -> FhirResponse:
    params = list(request.query_params.multi_items())
    bundle = resources.history(resource_type, None, params, requester, base_url=base, strict=strict)
    return FhirResponse(bundle, fmt=fmt)


# Routed before the read, whose path would take `$status` for an id.
@router.get("/Subscription/$status", operation_id="fhir_subscriptions_status", responses=RESPONSES)
@router.post(
    "/Subscription/$status",
    operation_id="fhir_subscriptions_status_post",
    openapi_extra=PARAMETERS_BODY,
    responses=RESPONSES,
)
def subscriptions_status(
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: SubscriptionReader,
    body: OptionalBodyDep,
) -> FhirResponse:
    """The status of the requester's Subscriptions, those `id` names or every one (Backport
    IG `$status` at the type level); by POST, its parameters in a Parameters body."""
    params = [*request.query_params.multi_items(), *as_query(body)]
    bundle = resources.subscription_statuses(params, requester, base_url=base)
    return FhirResponse(bundle, fmt=fmt)


@router.get("/{resource_type}/{resource_id}", operation_id="fhir_read", responses=RESPONSES)
async def read(
    resource_type: str,
    resource_id: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    requester: Reader,
) -> FhirResponse:
    """The current version (R4 §3.1.0.2); 410 once deleted."""
    wanted = requested_subset(request.query_params.multi_items())
    stored = await resources.read_on_loop(resource_type, resource_id, requester)
    return FhirResponse(
        subset_content(stored.content, wanted), fmt=fmt, headers=version_headers(stored)
    )


@router.put("/{resource_type}/{resource_id}", operation_id="fhir_update", responses=RESPONSES)
def update(
    resource_type: str,
    resource_id: str,
    resources: ResourcesDep,
    body: BodyDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Updater,
    if_match: Annotated[str | None, Header()] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """Update, or create with the client's id; If-Match prevents lost updates (R4 §3.1.0.4)."""
    written = resources.update(
        resource_type,
        resource_id,
        body,
        requester,
        if_match=if_match,
        guard=write_guard(requester, base),
        answered=_answers_with_resource(prefer),
    )
    return _written(written, fmt, base, prefer)


@router.put("/{resource_type}", operation_id="fhir_conditional_update", responses=RESPONSES)
def conditional_update(
    resource_type: str,
    request: Request,
    resources: ResourcesDep,
    body: BodyDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Updater,
    if_match: Annotated[str | None, Header()] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """PUT [type]?[criteria]: update the one match, or create (R4 §3.1.0.4.3)."""
    written = resources.conditional_update(
        resource_type,
        list(request.query_params.multi_items()),
        body,
        requester,
        base_url=base,
        if_match=if_match,
        guard=write_guard(requester, base),
        answered=_answers_with_resource(prefer),
    )
    return _written(written, fmt, base, prefer)


@router.delete(
    "/{resource_type}/{resource_id}",
    operation_id="fhir_delete",
    status_code=204,
    responses=RESPONSES,
)
def delete(
    resource_type: str,
    resource_id: str,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Deleter,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    """Delete; If-Match deletes only the version the client read (RFC 9110 §13.1.1)."""
    guard = write_guard(requester, base)
    resources.delete(resource_type, resource_id, requester, guard=guard, if_match=if_match)
    return FhirResponse(None, fmt=fmt, status_code=204)


@router.get(
    "/{resource_type}/{resource_id}/_history",
    operation_id="fhir_history_instance",
    responses=RESPONSES,
)
def history_instance(
    resource_type: str,
    resource_id: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: Reader,
    strict: StrictDep,
) -> FhirResponse:
    params = list(request.query_params.multi_items())
    bundle = resources.history(
        resource_type, resource_id, params, requester, base_url=base, strict=strict
    )
    return FhirResponse(bundle, fmt=fmt)


@router.get(
    "/Subscription/{subscription_id}/$status",
    operation_id="fhir_subscription_status",
    responses=RESPONSES,
)
@router.post(
    "/Subscription/{subscription_id}/$status",
    operation_id="fhir_subscription_status_post",
    openapi_extra=PARAMETERS_BODY,
    responses=RESPONSES,
)
def subscription_status(
    subscription_id: str,
    resources: ResourcesDep,
    fmt: FormatDep,
    base: BaseUrlDep,
    requester: SubscriptionReader,
    body: OptionalBodyDep,
) -> FhirResponse:
    """The Subscription's status and event count (Subscriptions Backport IG `$status`); by
    POST too, as R4 has every operation take, with a Parameters body or none (its `id` is
    ignored at the instance level, as the IG says)."""
    as_query(body)  # a body that is no Parameters is refused all the same
    bundle = resources.subscription_status(subscription_id, requester, base_url=base)
    return FhirResponse(bundle, fmt=fmt)


@router.get(
    "/{resource_type}/{resource_id}/_history/{version_id}",
    operation_id="fhir_vread",
    responses=RESPONSES,
)
async def vread(
    resource_type: str,
    resource_id: str,
    version_id: str,
    request: Request,
    resources: ResourcesDep,
    fmt: FormatDep,
    requester: Reader,
) -> FhirResponse:
    """One version as it was (R4 §3.1.0.3)."""
    wanted = requested_subset(request.query_params.multi_items())
    stored = await resources.vread_on_loop(resource_type, resource_id, version_id, requester)
    return FhirResponse(
        subset_content(stored.content, wanted), fmt=fmt, headers=version_headers(stored)
    )


def _answers_with_resource(prefer: str | None) -> bool:
    """Whether the answer carries the resource (R4 §3.1.0.5: `Prefer: return=representation`,
    the default): only then does the write disclose it back to its writer."""
    wanted = (prefer or "").replace(" ", "")
    return "return=minimal" not in wanted and "return=OperationOutcome" not in wanted


def _written(written: WriteOutcome, fmt: Format, base: str, prefer: str | None) -> FhirResponse:
    """201 with Location after a creation, 200 otherwise; the body as `Prefer: return=` asks."""
    stored = written.stored
    location = f"{base}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"
    headers = version_headers(stored, location)
    status = 201 if written.created else 200
    wanted = (prefer or "").replace(" ", "")
    if "return=minimal" in wanted:
        return FhirResponse(None, fmt=fmt, status_code=status, headers=headers)
    if "return=OperationOutcome" in wanted:
        saved = Issue("information", "informational", "the resource was saved")
        done = outcome(saved, *written.warnings)
        return FhirResponse(done, fmt=fmt, status_code=status, headers=headers)
    return FhirResponse(stored.content, fmt=fmt, status_code=status, headers=headers)
