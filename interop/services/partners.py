"""Partner registration: an OAuth client with its keys and grants, plus its FHIR Organization.

The Organization is an ordinary resource in the store, so partners and case managers can
reference it; whether the partner is a Part 2 program or a HIPAA covered entity is recorded on
it as extensions (the disclosure gate reads those facts from the token's partner row). A
partner whose identifier names a stored Organization (a program entered through the case API)
is registered as that Organization, so that what was written about the program is what the
partner is: one registration per Organization.
"""

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlmodel import col

from consent.vocabulary import canonical_identifier_system
from interop.auth.scopes import InvalidScope, format_scopes, parse_scopes
from interop.services.bundle_builder import plain
from interop.services.errors import AlreadyExists, InvalidRequest, ResourceNotFound
from interop.services.numbers import whole_number
from interop.services.outbox import ChannelKind
from interop.services.resources import ResourceOperations, internal_operations
from interop.services.search_parser import Paging
from interop.services.urls import require_https
from interop.services.write_policy import REGISTRATION_TAG_CODE
from interop.store import markers, outbox
from interop.store.database import unit_of_work
from interop.store.fhirdates import as_utc, now_ms
from interop.store.tables import PartnerRow
from mappings.terminology import (
    COVERED_ENTITY_EXTENSION,
    NPI_SYSTEM,
    PART2_PROGRAM_EXTENSION,
    REGISTRATION_TAG_SYSTEM,
)

REGISTRATION_TAG = {"system": REGISTRATION_TAG_SYSTEM, "code": REGISTRATION_TAG_CODE[1]}
ACCEPTED_ALGORITHMS = ("RS384", "ES384")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_LOOKUP = Paging(10, 10)
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|[0-9A-Fa-f:]{2,39}")
_CONNECTION_TYPES = {ChannelKind.FHIR: "hl7-fhir-rest", ChannelKind.HL7V2_MLLP: "hl7v2-mllp"}


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Where and how changes reach the partner (REFERRALS.md, "How partners learn of changes").

    `address` is a FHIR base URL (fhir), a URL documents are POSTed to (ccda-http), a directory
    the partner picks documents up from (ccda-directory), or host:port (hl7v2-mllp).
    `client_id` and `token_url` are our registration at the partner's authorization server,
    for SMART Backend Services tokens (fhir, ccda-http); without them nothing is signed.
    """

    kind: ChannelKind
    address: str
    client_id: str | None = None
    token_url: str | None = None


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
    channel: ChannelConfig | None
    credentials_since: datetime | None = None
    """When its keys were last rotated: a key set fetched before then is stale."""


@dataclass(frozen=True, slots=True)
class Standing:
    """A partner as a request sees it: may it act, and what is it in law."""

    enabled: bool
    part2_program: bool
    covered_entity: bool
    first_party: bool
    credentials_since: datetime | None

    def issued_with_current_keys(self, issued_at: datetime) -> bool:
        """Whether a token issued at `issued_at` (to the millisecond, as this service writes
        iat) was issued no earlier than the partner's keys were last rotated. A token whose iat
        is whole seconds (issued before iat carried milliseconds) reads as issued at the
        start of its second, so it never outlives a rotation later in that second."""
        if self.credentials_since is None:
            return True
        return issued_at >= as_utc(self.credentials_since)


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
    channel: ChannelConfig | None = None  # None: the partner polls our FHIR API


class PartnerService:
    """Registers, lists, disables partners and rotates their keys."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, new: NewPartner) -> Partner:
        """Register the partner, linked to the stored Organization its identifiers name (a
        program the case API or the demo created), or to a new one; a second registration of
        the same organization is refused, since tokens would then be told apart by key alone."""
        _check_scopes(new.scopes)
        new = replace(new, identifiers=_canonical_identifiers(new.identifiers))
        _check_identifiers(new.identifiers)
        jwks = _checked_jwks(new.jwks, new.jwks_url)
        channel = _checked_channel(new.channel)
        with (
            unit_of_work(self._engine) as session,
            internal_operations(session, "partner-registry", paging=_LOOKUP) as operations,
        ):
            existing = _organization_named(operations, new.identifiers)
            if existing is None:
                organization_id = str(uuid.uuid4())
                endpoint_id = _publish_endpoint(operations, new.name, organization_id, channel)
                operations.create(
                    "Organization",
                    _organization(new, endpoint_id),
                    base_url="",
                    resource_id=organization_id,
                )
            else:
                organization_id = existing
                _refuse_second_registration(session, organization_id, new.identifiers)
                _settle_flag(operations, organization_id, new)
                endpoint_id = _publish_endpoint(operations, new.name, organization_id, channel)
                if endpoint_id is not None:
                    _link_endpoint(operations, organization_id, endpoint_id)
            row = PartnerRow(
                client_id=str(uuid.uuid4()),
                name=new.name,
                organization_id=organization_id,
                scopes=format_scopes(parse_scopes(new.scopes)),
                jwks=json.dumps(jwks) if jwks is not None else None,
                jwks_url=new.jwks_url,
                part2_program=new.part2_program,
                covered_entity=new.covered_entity,
                first_party=new.first_party,
                created_at=now_ms(),
            )
            _set_channel_columns(row, channel)
            session.add(row)
            if row.first_party:
                markers.note_write(session, markers.CONSENT_HOLDERS)
            return _partner(row)

    def registered(self, system: str, value: str) -> Partner | None:
        """The partner registered for the Organization with this identifier, if any."""
        with (
            unit_of_work(self._engine) as session,
            internal_operations(session, "partner-registry", paging=_LOOKUP) as operations,
        ):
            organization_id = _organization_named(operations, [(system, value)])
            if organization_id is None:
                return None
            row = _registration_of(session, organization_id)
            return _partner(row) if row is not None else None

    def list(self) -> list[Partner]:
        with unit_of_work(self._engine, writes=False) as session:
            rows = session.execute(
                select(PartnerRow).order_by(col(PartnerRow.created_at))
            ).scalars()
            return [_partner(row) for row in rows]

    def find(self, client_id: str) -> Partner | None:
        with unit_of_work(self._engine, writes=False) as session:
            row = outbox.partner(session, client_id)
            return _partner(row) if row is not None else None

    def standing(self, client_id: str) -> Standing | None:
        """What a request needs to know of its partner, by the cheapest query there is:
        every authenticated request asks, so that a partner disabled a moment ago is
        refused on its next request."""
        row = outbox.partner_standing(self._engine, client_id)
        return None if row is None else Standing(**row)

    def set_enabled(self, client_id: str, enabled: bool) -> Partner:
        with unit_of_work(self._engine) as session:
            row = _existing(session, client_id)
            row.enabled = enabled
            session.add(row)
            if row.first_party:
                markers.note_write(session, markers.CONSENT_HOLDERS)
            return _partner(row)

    def rotate_key(
        self, client_id: str, jwks: dict[str, Any] | None, jwks_url: str | None
    ) -> Partner:
        """Replace the partner's keys: assertions signed with the old ones stop working, and
        so do the access tokens issued before (a rotation is what follows a stolen key)."""
        checked = _checked_jwks(jwks, jwks_url)
        with unit_of_work(self._engine) as session:
            row = _existing(session, client_id)
            row.jwks = json.dumps(checked) if checked is not None else None
            row.jwks_url = jwks_url
            row.credentials_since = now_ms()  # the tokens the old keys got end here
            session.add(row)
            return _partner(row)

    def set_channel(self, client_id: str, channel: ChannelConfig | None) -> Partner:
        """Change how the partner is reached; its Organization's Endpoint follows. Changes
        already queued go out through the new channel."""
        checked = _checked_channel(channel)
        with (
            unit_of_work(self._engine) as session,
            internal_operations(session, "partner-registry", paging=Paging(1, 1)) as operations,
        ):
            row = _existing(session, client_id)
            endpoint_id = _publish_endpoint(operations, row.name, row.organization_id, checked)
            organization = orjson.loads(
                operations.read("Organization", row.organization_id).content or b"{}"
            )
            for old in organization.pop("endpoint", []):
                _switch_off(operations, str(old.get("reference", "")))
            if endpoint_id is not None:
                organization["endpoint"] = [{"reference": f"Endpoint/{endpoint_id}"}]
            operations.update("Organization", row.organization_id, organization)
            _set_channel_columns(row, checked)
            session.add(row)
            return _partner(row)


def _existing(session: Any, client_id: str) -> PartnerRow:
    row = outbox.partner(session, client_id)
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
        channel=_channel(row),
        credentials_since=row.credentials_since,
    )


def _channel(row: PartnerRow) -> ChannelConfig | None:
    if row.channel == ChannelKind.NONE or row.channel_address is None:
        return None
    return ChannelConfig(
        ChannelKind(row.channel), row.channel_address, row.channel_client_id, row.channel_token_url
    )


def _set_channel_columns(row: PartnerRow, channel: ChannelConfig | None) -> None:
    row.channel = channel.kind if channel is not None else ChannelKind.NONE
    row.channel_address = channel.address if channel is not None else None
    row.channel_client_id = channel.client_id if channel is not None else None
    row.channel_token_url = channel.token_url if channel is not None else None


def _checked_channel(channel: ChannelConfig | None) -> ChannelConfig | None:
    """Refuse a channel that could not work, or would send patient data in the clear."""
    if channel is None or channel.kind is ChannelKind.NONE:
        return None
    if channel.kind in (ChannelKind.FHIR, ChannelKind.CCDA_HTTP):
        require_https(channel.address, "a partner's channel URL")
    elif channel.kind is ChannelKind.CCDA_DIRECTORY:
        if not PurePosixPath(channel.address).is_absolute():
            raise InvalidRequest("a drop directory must be an absolute path")
    else:
        _check_host_port(channel.address)
    if channel.token_url is not None:
        require_https(channel.token_url, "a partner's token URL")
        if not channel.client_id:
            raise InvalidRequest("a token URL needs the client_id the partner gave us")
    return channel


def _check_host_port(address: str) -> None:
    host, _, port = address.rpartition(":")
    number = whole_number(port)
    if not _HOST.fullmatch(host.removeprefix("[").removesuffix("]")) or number is None:
        raise InvalidRequest(f"an MLLP address is host:port, not {address[:80]!r}")
    if not 0 < number < 65536:
        raise InvalidRequest(f"an MLLP address is host:port, not {address[:80]!r}")


def _switch_off(operations: ResourceOperations, reference: str) -> None:
    """A replaced channel's Endpoint stays on record, as status "off" (R4 endpoint-status)."""
    kind, _, ident = reference.partition("/")
    if kind != "Endpoint" or not ident:
        return
    endpoint = orjson.loads(operations.read("Endpoint", ident).content or b"{}")
    operations.update("Endpoint", ident, {**endpoint, "status": "off"})


def _publish_endpoint(
    operations: ResourceOperations, name: str, organization_id: str, channel: ChannelConfig | None
) -> str | None:
    """An R4 Endpoint for channels other systems can address (FHIR, MLLP); documents dropped
    in a directory or posted to a drop URL are not published."""
    if channel is None or channel.kind not in _CONNECTION_TYPES:
        return None
    endpoint_id = str(uuid.uuid4())
    endpoint = _endpoint(name, channel, organization_id)
    operations.create("Endpoint", endpoint, base_url="", resource_id=endpoint_id)
    return endpoint_id


def _endpoint(name: str, channel: ChannelConfig, organization_id: str) -> dict[str, Any]:
    fhir = channel.kind is ChannelKind.FHIR
    return {
        "resourceType": "Endpoint",
        "meta": {"tag": [REGISTRATION_TAG]},
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": _CONNECTION_TYPES[channel.kind],
        },
        "name": f"{name} FHIR R4 server" if fhir else f"{name} HL7 v2 interface",
        "managingOrganization": {"reference": f"Organization/{organization_id}"},
        "payloadType": [{"text": "FHIR R4 resources" if fhir else "HL7 v2.5.1 REF/RRI messages"}],
        "payloadMimeType": ["application/fhir+json" if fhir else "x-application/hl7-v2+er7"],
        "address": channel.address if fhir else f"mllp://{channel.address}",
    }


def _organization(new: NewPartner, endpoint_id: str | None) -> dict[str, Any]:
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


def _canonical_identifiers(identifiers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The identifiers with their systems in the spelling consents are matched in (the NPI's
    OID is the NPI), so that a twin registration under the other spelling is refused as the
    same organization, and an NPI is checked whichever way it is written; a misspelt NPI
    system, which would name no one, is refused."""
    canonical: list[tuple[str, str]] = []
    for system, value in identifiers:
        system = canonical_identifier_system(system) or system
        if system != NPI_SYSTEM and _looks_like_npi_system(system):
            raise InvalidRequest(f"the NPI's system is written {NPI_SYSTEM}, not {system[:80]!r}")
        canonical.append((system, value))
    return canonical


def _looks_like_npi_system(system: str) -> bool:
    bare = system.lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    return bare == NPI_SYSTEM.removeprefix("http://")


def _check_identifiers(identifiers: Sequence[tuple[str, str]]) -> None:
    if not identifiers:
        raise InvalidRequest("a partner needs at least one identifier (SYSTEM|VALUE)")
    for system, value in identifiers:
        if system == NPI_SYSTEM and not is_npi(value):
            raise InvalidRequest(
                f"{value[:20]!r} is not an NPI: ten digits whose last is the Luhn check digit "
                "over the 80840 prefix (e.g. 1234567893)"
            )


def is_npi(value: str) -> bool:
    """CMS's NPI check digit: the Luhn formula over the value prefixed with 80840 (the
    ISO 7812 card issuer prefix for US health applications)."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    total = 0
    for position, digit in enumerate(int(char) for char in reversed("80840" + value)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _organization_named(
    operations: ResourceOperations, identifiers: Sequence[tuple[str, str]]
) -> str | None:
    """The id of the one stored Organization the identifiers name; None when none does."""
    found: set[str] = set()
    for system, value in identifiers:
        bundle = operations.search(
            "Organization", [("identifier", f"{system}|{value}")], base_url=""
        )
        found.update(str(plain(entry["resource"])["id"]) for entry in bundle.get("entry", []))
    if len(found) > 1:
        raise InvalidRequest(
            "the identifiers name more than one stored Organization: give the one "
            "the partner is known by"
        )
    return next(iter(found), None)


def _registration_of(session: Any, organization_id: str) -> PartnerRow | None:
    statement = select(PartnerRow).where(col(PartnerRow.organization_id) == organization_id)
    row: PartnerRow | None = session.execute(statement).scalars().first()
    return row


def _refuse_second_registration(
    session: Any, organization_id: str, identifiers: Sequence[tuple[str, str]]
) -> None:
    row = _registration_of(session, organization_id)
    if row is not None:
        system, value = identifiers[0]
        raise AlreadyExists(
            f"a partner is already registered for {system}|{value} (client_id {row.client_id}): "
            "rotate its key or change its channel instead of registering it again"
        )


def _settle_flag(operations: ResourceOperations, organization_id: str, new: NewPartner) -> None:
    """The stored Organization says what the registration says of being a Part 2 program,
    since the gate reads that fact from it: a program flagged Part 2 is never registered as
    ordinary data's source (refused), and an Organization someone else recorded without the
    flag, or with it false (a partner's or an HL7 v2 message's), takes the operator's word."""
    organization = orjson.loads(operations.read("Organization", organization_id).content or b"{}")
    extensions = organization.get("extension", [])
    stored = [e.get("valueBoolean") for e in extensions if e.get("url") == PART2_PROGRAM_EXTENSION]
    if True in stored and not new.part2_program:
        raise InvalidRequest(
            f"Organization/{organization_id} is a Part 2 program: register it with --part2-program"
        )
    if stored == [new.part2_program]:
        return
    flag = {"url": PART2_PROGRAM_EXTENSION, "valueBoolean": new.part2_program}
    others = [e for e in extensions if e.get("url") != PART2_PROGRAM_EXTENSION]
    operations.update(
        "Organization", organization_id, {**organization, "extension": [*others, flag]}
    )


def _link_endpoint(operations: ResourceOperations, organization_id: str, endpoint_id: str) -> None:
    organization = orjson.loads(operations.read("Organization", organization_id).content or b"{}")
    endpoints = [*organization.get("endpoint", []), {"reference": f"Endpoint/{endpoint_id}"}]
    operations.update("Organization", organization_id, {**organization, "endpoint": endpoints})


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
        require_https(jwks_url, "a JWKS URL")
        return None
    assert jwks is not None
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest("the JWKS has no keys")
    for key in keys:
        _check_public_key(key)
    return jwks


def _check_public_key(key: Any) -> None:
    """A public RSA or EC signing key with a kid: a symmetric key would be a shared secret,
    a private one a leak, and an HS256 key lets anyone holding the JWKS sign as the partner."""
    if not isinstance(key, dict) or not key.get("kid"):
        raise InvalidRequest("every key in the JWKS needs a kid")
    if key.get("kty") not in ("RSA", "EC"):
        raise InvalidRequest(
            f"key {str(key['kid'])[:40]!r} is a {str(key.get('kty'))[:10]!r} key: the JWKS must "
            "hold public RSA or EC keys only (no symmetric keys)"
        )
    if _PRIVATE_MEMBERS & key.keys():
        raise InvalidRequest(
            f"key {str(key['kid'])[:40]!r} holds private key material: the JWKS must hold "
            "public RSA or EC keys only"
        )
    algorithm = key.get("alg")
    if algorithm is not None and algorithm not in ACCEPTED_ALGORITHMS:
        raise InvalidRequest(
            f"key {str(key['kid'])[:40]!r} is marked alg {str(algorithm)[:10]!r}: client "
            f"assertions are signed with {' or '.join(ACCEPTED_ALGORITHMS)}"
        )
