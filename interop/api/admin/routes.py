"""Partner registrations for administrators: the API twin of `interop partners`."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import Request

from interop.api.deps import BaseUrlDep
from interop.api.security import AdministratorDep
from interop.services.errors import InvalidRequest
from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, Partner, PartnerService

router = APIRouter(prefix="/admin", tags=["Administration"])


class ChannelIn(BaseModel):
    """How changes reach the partner; leave it out when the partner polls our FHIR API."""

    kind: Literal["fhir", "ccda-http", "ccda-directory", "hl7v2-mllp"]
    address: str = Field(
        min_length=1,
        max_length=2000,
        description="FHIR base URL, document drop URL, absolute directory, or host:port",
    )
    client_id: str | None = Field(
        default=None, max_length=200, description="Our client_id at the partner"
    )
    token_url: str | None = Field(
        default=None, max_length=2000, description="The partner's OAuth token URL"
    )

    def config(self) -> ChannelConfig:
        return ChannelConfig(ChannelKind(self.kind), self.address, self.client_id, self.token_url)


class PartnerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    identifiers: list[str] = Field(min_length=1, description="SYSTEM|VALUE")
    scope: str = Field(min_length=1, description='e.g. "system/Task.cru system/ServiceRequest.rs"')
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    part2_program: bool = False
    covered_entity: bool = False
    first_party: bool = False
    channel: ChannelIn | None = None


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
    channel: ChannelIn | None


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
        channel=_channel_out(partner.channel),
    )


def _channel_out(channel: ChannelConfig | None) -> ChannelIn | None:
    if channel is None:
        return None
    return ChannelIn(
        kind=channel.kind.value,
        address=channel.address,
        client_id=channel.client_id,
        token_url=channel.token_url,
    )


def split_identifier(text: str) -> tuple[str, str]:
    system, separator, value = text.partition("|")
    if not separator or not system or not value:
        raise InvalidRequest(f"identifiers are SYSTEM|VALUE, not {text[:80]!r}")
    return system, value


@router.get("/partners", operation_id="list_partners")
def list_partners(partners: PartnersDep, base: BaseUrlDep, _: AdministratorDep) -> list[PartnerOut]:
    return [describe(partner, base) for partner in partners.list()]


@router.post(
    "/partners",
    operation_id="register_partner",
    status_code=201,
    responses={409: {"description": "The organization has a registration already"}},
)
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
        channel=body.channel.config() if body.channel is not None else None,
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


@router.put("/partners/{client_id}/channel", operation_id="set_partner_channel")
def set_partner_channel(
    client_id: str,
    body: ChannelIn | None,
    partners: PartnersDep,
    base: BaseUrlDep,
    _: AdministratorDep,
) -> PartnerOut:
    """Change how changes reach the partner; a null body means the partner polls."""
    channel = body.config() if body is not None else None
    return describe(partners.set_channel(client_id, channel), base)
