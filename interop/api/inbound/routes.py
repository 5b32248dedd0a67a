"""Inbound messages and documents: partners' C-CDA drops, and staff's view of what is held
because it could not be processed (nothing is dropped)."""

from dataclasses import asdict
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from interop.api.bounds import Offset, PageSize
from interop.api.problems import problem
from interop.api.security import RequesterDep, requires_role
from interop.auth.requester import Requester
from interop.services.ccda_intake import (
    MAX_DOCUMENT_BYTES,
    Channel,
    DocumentIntake,
    DocumentReceipt,
    IntakeStatus,
    Sender,
)
from interop.services.errors import ScopeInsufficient
from interop.services.inbound import InboundService
from interop.services.numbers import whole_number
from interop.services.staff import Role, StaffSession

router = APIRouter(prefix="/inbound", tags=["Inbound messages"])

StaffDep = Annotated[StaffSession, Depends(requires_role(Role.CASE_MANAGER, Role.ADMINISTRATOR))]
_XML_TYPES: Final = frozenset({"application/xml", "text/xml", "application/cda+xml"})
_MAX_KEY: Final = 200


def _inbound(request: Request) -> InboundService:
    service: InboundService = request.app.state.inbound
    return service


def _intake(request: Request) -> DocumentIntake:
    service: DocumentIntake = request.app.state.ccda_intake
    return service


@router.get("/held", operation_id="held_messages")
def held_messages(
    inbound: Annotated[InboundService, Depends(_inbound)],
    _: StaffDep,
    response: Response,
    after: Annotated[Offset, Query(description="the `pk` the page starts after")] = 0,
    limit: Annotated[PageSize, Query(description="at most this many (1 to 1000)")] = 100,
) -> list[dict[str, Any]]:
    """HL7 v2 messages answered AE or AR and C-CDA documents held (ack_code AR: the document
    was refused; AE: it could not be applied here), each with its problems; oldest first, at
    most `limit` of them, and while more follow a `Link` header (RFC 8288) with `rel="next"`
    names the next page (`after` the last one's `pk`)."""
    held = inbound.held(after, limit + 1)
    if len(held) > limit:
        held = held[:limit]
        following = urlencode({"after": held[-1].pk, "limit": limit})
        response.headers["Link"] = f'</inbound/held?{following}>; rel="next"'
    return [asdict(message) for message in held]


async def _document(request: Request) -> bytes | Response:
    """The drop's bytes (XML, at most the reader's limit), or the problem detail saying why
    not; nothing is read past the limit."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _XML_TYPES:
        return problem(415, "send the C-CDA document as application/xml (or text/xml)")
    declared = whole_number(request.headers.get("content-length", ""))
    too_large = problem(413, f"a document is at most {MAX_DOCUMENT_BYTES} bytes")
    if declared is not None and declared > MAX_DOCUMENT_BYTES:
        return too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DOCUMENT_BYTES:
            return too_large
    return bytes(body)


def _drop_key(value: str | None) -> str | Response | None:
    """The Idempotency-Key, a Structured Field string (quoted), or a bare token as some
    senders write it; printable ASCII, at most 200 characters."""
    if value is None:
        return None
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > _MAX_KEY or not all(" " <= c <= "~" for c in key):
        return problem(400, "Idempotency-Key is 1 to 200 printable ASCII characters")
    return key


def _sender(requester: Requester) -> Sender:
    """A drop makes a referral (a ServiceRequest and its Task), so it needs the scopes that
    create them; the partner's own registration is the sender."""
    for kind in ("ServiceRequest", "Task"):
        if not requester.may(kind, "c"):
            raise ScopeInsufficient(f"a C-CDA drop needs a scope allowing 'c' on {kind}")
    return Sender(requester.client_id, requester.organization)


@router.post(
    "/ccda",
    operation_id="receive_ccda",
    status_code=201,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/xml": {"schema": {"type": "string"}},
                "text/xml": {"schema": {"type": "string"}},
            },
        }
    },
    responses={
        201: {"description": "Processed: the records it made, the document's Location"},
        202: {"description": "Held for staff: well-formed, but it could not be applied here"},
        400: {"description": "A malformed Idempotency-Key (problem detail)"},
        401: {"description": "No valid bearer token"},
        403: {"description": "No scope allowing 'c' on ServiceRequest and Task"},
        413: {"description": "Larger than 10 MB (problem detail; not kept)"},
        415: {"description": "Not application/xml or text/xml (problem detail; not kept)"},
        422: {
            "description": "Refused and held: not well-formed or unsafe XML, not a C-CDA "
            "Referral Note or Transfer Summary, no patient; or an Idempotency-Key reused "
            "for another document (problem detail)"
        },
    },
)
def receive_ccda(
    requester: RequesterDep,
    intake: Annotated[DocumentIntake, Depends(_intake)],
    document: Annotated[bytes | Response, Depends(_document)],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """A partner's C-CDA document, as a Direct HISP or an interface engine posts it
    (SMART Backend Services bearer token; Content-Type application/xml or text/xml).

    - **201** processed: `{"status": "processed", "inbound_id", "resources"}`, Location the
      DocumentReference the document is kept as. A Referral Note becomes a ServiceRequest and
      its Task, a Transfer Summary a handoff with MedicationStatements; the document's security
      labels are on all of them, the partner's Organization their origin.
    - **202** held: a good document that could not be applied here (its recipient is no
      program here, a workflow rule); `{"status": "held", "inbound_id"}`, without the reason,
      which staff see at `GET /inbound/held`.
    - **422** refused (an RFC 9457 problem detail naming why, with `inbound_id`): not
      well-formed or unsafe XML, not a ClinicalDocument, not a Referral Note or Transfer
      Summary, no patient. The document is held too: nothing received is dropped.
    - 413 and 415 (problem details) are answered before anything is kept.

    `Idempotency-Key` (a quoted string, as `adapters.ccda.delivery` sends the file name): a
    retried drop with the same key is answered as the first one was, with
    `Idempotent-Replayed: true`, and processed once; the same key with another document is
    refused with 422."""
    if isinstance(document, Response):
        return document
    key = _drop_key(idempotency_key)
    if isinstance(key, Response):
        return key
    receipt = intake.receive(document, _sender(requester), Channel.HTTP, key)
    return _answer(receipt, keyed=key is not None)


def _answer(receipt: DocumentReceipt, *, keyed: bool) -> Response:
    """`Idempotent-Replayed` answers a repeated key; the same document sent again without
    one is answered as the first was too (its digest is the key), but no key was replayed."""
    headers = {"Idempotent-Replayed": "true"} if receipt.replayed and keyed else {}
    if receipt.status is IntakeStatus.REFUSED:
        return problem(422, receipt.reason, headers, inbound_id=receipt.inbound_id)
    body: dict[str, Any] = {"status": receipt.status.value, "inbound_id": receipt.inbound_id}
    if receipt.status is IntakeStatus.HELD:
        body["detail"] = receipt.reason
        return Response(orjson.dumps(body), 202, headers, "application/json")
    body["resources"] = list(receipt.resources)
    if receipt.document is not None:
        headers["Location"] = f"/fhir/{receipt.document}"
    return Response(orjson.dumps(body), 201, headers, "application/json")
