"""The world of the delivery tests: our service with its EHR client, a dispatcher's settings
and clock, and the referral every test sends (a synthetic client, Robin Quill)."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, PartnerService, is_npi
from interop.settings import Settings
from interop.store import outbox
from interop.store.database import make_engine, unit_of_work
from interop.store.tables import OutboxRow
from interop.sync.runtime import dispatcher
from mappings import model as m
from mappings import service_request, task
from mappings.terminology import PATIENT_REFERRAL
from tests.builders import organization, part2_consent, part2_program, patient
from tests.conftest import RegisteredPartner, approve_part2_form, bearer
from tests.e2e.partners import FhirPartner
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "http://testserver/fhir"


class Clock:
    """The dispatcher's time: the wall clock, moved on by the test to make retries due."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def now(self) -> datetime:
        return self()

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class World:
    client: TestClient
    engine: Engine
    settings: Settings
    clock: Clock
    partners: PartnerService
    key_jwks: dict[str, Any]

    def register(self, name: str, channel: ChannelConfig) -> str:
        """A partner with a channel; its Organization id."""
        partner = self.partners.register(
            NewPartner(
                name=name,
                identifiers=[("http://hl7.org/fhir/sid/us-npi", synthetic_npi(name))],
                scopes="system/*.rs",
                jwks=rsa_key().jwks(),
                covered_entity=True,
                channel=channel,
            )
        )
        return partner.organization.split("/")[1]

    @property
    def rows(self) -> list[OutboxRow]:
        with unit_of_work(self.engine, writes=False) as session:
            return list(reversed(outbox.listing(session, (), None, 100)))

    def held(self) -> list[dict[str, Any]]:
        """What staff see at GET /inbound/held, read through the service."""
        inbound = self.client.app.state.inbound  # type: ignore[attr-defined]
        return [{"channel": held.channel, "problems": held.problems} for held in inbound.held()]

    def run(self, **overrides: Any) -> list[Any]:
        settings = self.settings.model_copy(update=overrides)
        with dispatcher(settings, self.engine, self.clock) as worker:
            return worker.run_once()


@pytest.fixture
def world(client: TestClient, settings: Settings, tmp_path: Path) -> Iterator[World]:
    key = rsa_key("sync-1")
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "sync.pem").write_bytes(pem)
    configured = settings.model_copy(
        update={
            "sync_signing_key_file": tmp_path / "sync.pem",
            "sync_signing_kid": "sync-1",
            "sync_timeout_seconds": 0.5,
            "sync_backoff_seconds": 10.0,
            "sync_max_attempts": 3,
        }
    )
    engine = make_engine(settings.database_url, chain_key=settings.chain_key())
    yield World(client, engine, configured, Clock(), PartnerService(engine), key.jwks())
    engine.dispose()


def synthetic_npi(name: str) -> str:
    """A valid NPI (Luhn check digit over the 80840 prefix) derived from the name."""
    body = str(int(hashlib.sha256(name.encode()).hexdigest(), 16))[:9]
    for check in "0123456789":
        if is_npi(body + check):
            return body + check
    raise AssertionError("every nine digits have one check digit")


def put(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def refer(client: TestClient, to: str, *, part2: bool = False, status: str = "requested") -> None:
    """Our program refers the client to `to`: the ServiceRequest and its Task (owner `to`),
    written by the program's own EHR, so that the program is their recorded origin."""
    client = as_sender(client, part2)
    put(client, {**patient(family="Quill", given="Robin"), "id": "robin"})
    referral = m.Referral(
        id=m.Id("referral-1"),
        client_id=m.Ref("robin"),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref("sender")),
        status=m.RequestStatus.ACTIVE,
        service=PATIENT_REFERRAL,
        authored_on=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        performer_id=m.Ref(to),
        reason="Needs outpatient counselling after withdrawal management",
        placer_identifier=m.Identifier("urn:oid:2.16.840.1.113883.3.9999.20", "PLAC-77"),
    )
    put(client, service_request.to_fhir(referral))
    set_task(client, to, status)


SENDER_IDENTIFIER = ("urn:oid:2.16.840.1.113883.3.9999.10", "harbor-sender")


def as_sender(client: TestClient, part2: bool) -> TestClient:
    """The sending program's own EHR: a first-party registration linked to Organization/sender
    by its identifier, as an operator registers it (one per app)."""
    state = client.app.state  # type: ignore[attr-defined]
    if not hasattr(state, "sender_client"):
        made = part2_program("Harbor Detox") if part2 else organization("Harbor Clinic")
        system, value = SENDER_IDENTIFIER
        put(client, {**made, "id": "sender", "identifier": [{"system": system, "value": value}]})
        key = rsa_key()
        service: PartnerService = state.partners
        registered = service.register(
            NewPartner(
                name="Harbor EHR",
                identifiers=[SENDER_IDENTIFIER],
                scopes="system/*.cruds",
                jwks=key.jwks(),
                part2_program=part2,
                first_party=True,
            )
        )
        sender = TestClient(client.app)
        partner = RegisteredPartner(registered.client_id, registered.organization, key)
        sender.headers["Authorization"] = bearer(client, partner)
        state.sender_client = sender
    sender_client: TestClient = state.sender_client
    return sender_client


def set_task(client: TestClient, owner: str, status: str) -> dict[str, Any]:
    fulfillment = m.ReferralTask(
        id=m.Id("task-1"),
        referral_id=m.Ref("referral-1"),
        client_id=m.Ref("robin"),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref("sender")),
        status=m.TaskStatus(status),
        authored_on=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        owner=m.Party(m.PartyKind.PROGRAM, m.Ref(owner)),
        status_reason=m.StatusReason(m.StatusReasonCode.OUT_OF_AREA, "Client moved away")
        if status == "cancelled"
        else None,
    )
    return put(client, task.to_fhir(fulfillment))


def consent_for(client: TestClient, recipient: str) -> None:
    approve_part2_form(client)
    consent = part2_consent("Patient/robin", "Organization/sender", f"Organization/{recipient}")
    put(as_sender(client, part2=True), {**consent, "id": "consent-robin"})


def fhir_channel(partner: FhirPartner) -> ChannelConfig:
    return ChannelConfig(ChannelKind.FHIR, partner.base, partner.client_id, partner.token_url)
