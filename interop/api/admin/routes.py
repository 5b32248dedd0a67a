"""Partner registrations for administrators: the API twin of `interop partners`."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import Request

from interop.api.deps import BaseUrlDep
from interop.api.security import AdministratorDep
from interop.services.errors import InvalidRequest
from interop.services.partners import NewPartner, Partner, PartnerService

router = APIRouter(prefix="/admin", tags=["Administration"])


class PartnerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    identifiers: list[str] = Field(min_length=1, description="SYSTEM|VALUE")
    scope: str = Field(min_length=1, description='e.g. "system/Task.cru system/ServiceRequest.rs"')
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    part2_program: bool = False
    covered_entity: bool = False
    first_party: bool = False
    endpoint: str | None = Field(default=None, description="The partner's FHIR base, if any")


class KeysIn(BaseModel):
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None


class PartnerOut(BaseModel):
    client_id: str
    name: str
    organization: str
    scope: str
    part2_program: bool
    covered_entity: bool
    first_party: bool
    enabled: bool
    token_url: str
    fhir_base: str


def _partners(request: Request) -> PartnerService:
    service: PartnerService = request.app.state.partners
    return service


PartnersDep = Annotated[PartnerService, Depends(_partners)]


def describe(partner: Partner, base: str) -> PartnerOut:
    """What the partner's developers need: their client_id and where to use it."""
    return PartnerOut(
        client_id=partner.client_id,
        name=partner.name,
        organization=partner.organization,
        scope=partner.scopes,
        part2_program=partner.part2_program,
        covered_entity=partner.covered_entity,
        first_party=partner.first_party,
        enabled=partner.enabled,
        token_url=base.removesuffix("/fhir") + "/auth/token",
        fhir_base=base,
    )


def split_identifier(text: str) -> tuple[str, str]:
    system, separator, value = text.partition("|")
    if not separator or not system or not value:
        raise InvalidRequest(f"identifiers are SYSTEM|VALUE, not {text[:80]!r}")
    return system, value


@router.get("/partners", operation_id="list_partners")
def list_partners(partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep) -> list[PartnerOut]:
    return [describe(partner, base) for partner in partners.list()]


@router.post("/partners", operation_id="register_partner", status_code=201)
def register_partner(
    body: PartnerIn, partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep
) -> PartnerOut:
    new = NewPartner(
        name=body.name,
        identifiers=[split_identifier(text) for text in body.identifiers],
        scopes=body.scope,
        jwks=body.jwks,
        jwks_url=body.jwks_url,
        part2_program=body.part2_program,
        covered_entity=body.covered_entity,
        first_party=body.first_party,
        endpoint=body.endpoint,
    )
    return describe(partners.register(new), base)


@router.post("/partners/{client_id}/disable", operation_id="disable_partner")
def disable_partner(
    client_id: str, partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep
) -> PartnerOut:
    return describe(partners.set_enabled(client_id, False), base)


@router.post("/partners/{client_id}/enable", operation_id="enable_partner")
def enable_partner(
    client_id: str, partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep
) -> PartnerOut:
    return describe(partners.set_enabled(client_id, True), base)


@router.put("/partners/{client_id}/keys", operation_id="rotate_partner_key")
def rotate_partner_key(
    client_id: str, body: KeysIn, partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep
) -> PartnerOut:
    return describe(partners.rotate_key(client_id, body.jwks, body.jwks_url), base)
