"""Partner registration: an OAuth client with its keys and grants, plus its FHIR Organization.

The Organization is an ordinary resource in the store, so partners and case managers can
reference it; whether the partner is a Part 2 program or a HIPAA covered entity is recorded on
it as extensions (the disclosure gate reads those facts from the token's partner row).
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from interop.auth.scopes import InvalidScope, format_scopes, parse_scopes
from interop.services.errors import InvalidRequest, ResourceNotFound
from interop.services.resources import ResourceOperations
from interop.services.search_parser import Paging
from interop.services.write_policy import REGISTRATION_TAG_CODE
from interop.store.database import unit_of_work
from interop.store.fhirdates import now_ms
from interop.store.repository import ResourceRepository
from interop.store.tables import PartnerRow
from mappings.terminology import (
    COVERED_ENTITY_EXTENSION,
    PART2_PROGRAM_EXTENSION,
    REGISTRATION_TAG_SYSTEM,
)

REGISTRATION_TAG = {"system": REGISTRATION_TAG_SYSTEM, "code": REGISTRATION_TAG_CODE[1]}


@dataclass(frozen=True, slots=True)
class Partner:
    client_id: str
    name: str
    organization: str  # "Organization/{id}"
    scopes: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    part2_program: bool
    covered_entity: bool
    first_party: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class NewPartner:
    """A registration; `first_party` marks the operating program's own systems (its EHR),
    which author any resource, where an outside partner writes only its own referrals."""

    name: str
    identifiers: Sequence[tuple[str, str]]
    scopes: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    part2_program: bool = False
    covered_entity: bool = False
    first_party: bool = False
    endpoint: str | None = None  # the partner's own FHIR server, when it has one


class PartnerService:
    """Registers, lists, disables partners and rotates their keys."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, new: NewPartner) -> Partner:
        _check_scopes(new.scopes)
        jwks = _checked_jwks(new.jwks, new.jwks_url)
        with unit_of_work(self._engine) as session:
            operations = ResourceOperations(ResourceRepository(session), Paging(1, 1))
            organization_id = str(uuid.uuid4())
            endpoint_id = None
            if new.endpoint is not None:
                endpoint_id = str(uuid.uuid4())
                endpoint = _endpoint(new.name, new.endpoint, organization_id)
                operations.create("Endpoint", endpoint, base_url="", resource_id=endpoint_id)
            organization = operations.create(
                "Organization",
                _organization(new, endpoint_id),
                base_url="",
                resource_id=organization_id,
            ).stored
            row = PartnerRow(
                client_id=str(uuid.uuid4()),
                name=new.name,
                organization_id=organization.resource_id,
                scopes=format_scopes(parse_scopes(new.scopes)),
                jwks=json.dumps(jwks) if jwks is not None else None,
                jwks_url=new.jwks_url,
                part2_program=new.part2_program,
                covered_entity=new.covered_entity,
                first_party=new.first_party,
                created_at=now_ms(),
            )
            session.add(row)
            return _partner(row)

    def list(self) -> list[Partner]:
        with unit_of_work(self._engine, writes=False) as session:
            rows = session.execute(
                select(PartnerRow).order_by(col(PartnerRow.created_at))
            ).scalars()
            return [_partner(row) for row in rows]

    def find(self, client_id: str) -> Partner | None:
        with unit_of_work(self._engine, writes=False) as session:
            row = _row(session, client_id)
            return _partner(row) if row is not None else None

    def set_enabled(self, client_id: str, enabled: bool) -> Partner:
        with unit_of_work(self._engine) as session:
            row = _existing(session, client_id)
            row.enabled = enabled
            session.add(row)
            return _partner(row)

    def rotate_key(
        self, client_id: str, jwks: dict[str, Any] | None, jwks_url: str | None
    ) -> Partner:
        """Replace the partner's keys; assertions signed with the old ones stop working."""
        checked = _checked_jwks(jwks, jwks_url)
        with unit_of_work(self._engine) as session:
            row = _existing(session, client_id)
            row.jwks = json.dumps(checked) if checked is not None else None
            row.jwks_url = jwks_url
            session.add(row)
            return _partner(row)


def _row(session: Any, client_id: str) -> PartnerRow | None:
    statement = select(PartnerRow).where(col(PartnerRow.client_id) == client_id)
    row: PartnerRow | None = session.execute(statement).scalars().first()
    return row


def _existing(session: Any, client_id: str) -> PartnerRow:
    row = _row(session, client_id)
    if row is None:
        raise ResourceNotFound(f"no partner has client_id {client_id[:64]!r}")
    return row


def _partner(row: PartnerRow) -> Partner:
    return Partner(
        client_id=row.client_id,
        name=row.name,
        organization=f"Organization/{row.organization_id}",
        scopes=row.scopes,
        jwks=json.loads(row.jwks) if row.jwks else None,
        jwks_url=row.jwks_url,
        part2_program=row.part2_program,
        covered_entity=row.covered_entity,
        first_party=row.first_party,
        enabled=row.enabled,
    )


def _endpoint(name: str, address: str, organization_id: str) -> dict[str, Any]:
    """The partner's FHIR server (R4 Endpoint), where referrals to it are delivered."""
    if not address.startswith("https://") and not address.startswith("http://127.0.0.1"):
        raise InvalidRequest("a partner's FHIR endpoint must use https")
    return {
        "resourceType": "Endpoint",
        "meta": {"tag": [REGISTRATION_TAG]},
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-rest",
        },
        "name": f"{name} FHIR R4 server",
        "managingOrganization": {"reference": f"Organization/{organization_id}"},
        "payloadType": [{"text": "FHIR R4 resources"}],
        "payloadMimeType": ["application/fhir+json"],
        "address": address,
    }


def _organization(new: NewPartner, endpoint_id: str | None) -> dict[str, Any]:
    if not new.identifiers:
        raise InvalidRequest("a partner needs at least one identifier (SYSTEM|VALUE)")
    endpoint = {"endpoint": [{"reference": f"Endpoint/{endpoint_id}"}]} if endpoint_id else {}
    return {
        "resourceType": "Organization",
        "meta": {"tag": [REGISTRATION_TAG]},
        "extension": [
            {"url": PART2_PROGRAM_EXTENSION, "valueBoolean": new.part2_program},
            {"url": COVERED_ENTITY_EXTENSION, "valueBoolean": new.covered_entity},
        ],
        "identifier": [{"system": system, "value": value} for system, value in new.identifiers],
        "active": True,
        "name": new.name,
        **endpoint,
    }


def _check_scopes(scopes: str) -> None:
    try:
        parsed = parse_scopes(scopes)
    except InvalidScope as error:
        raise InvalidRequest(str(error)) from None
    if not parsed or any(scope.context != "system" for scope in parsed):
        raise InvalidRequest("a partner is granted system/ scopes, e.g. 'system/Task.cru'")


def _checked_jwks(jwks: dict[str, Any] | None, jwks_url: str | None) -> dict[str, Any] | None:
    """Exactly one of a JWKS or a JWKS URL; public keys only, each with a kid."""
    if (jwks is None) == (jwks_url is None):
        raise InvalidRequest("give either a JWKS or a JWKS URL")
    if jwks_url is not None:
        if not jwks_url.startswith("https://") and not jwks_url.startswith("http://127.0.0.1"):
            raise InvalidRequest("a JWKS URL must use https")
        return None
    assert jwks is not None
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest("the JWKS has no keys")
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid"):
            raise InvalidRequest("every key in the JWKS needs a kid")
        if key.get("kty") not in ("RSA", "EC") or "d" in key:
            raise InvalidRequest("the JWKS must hold public RSA or EC keys only")
    return jwks
