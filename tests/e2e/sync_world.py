"""The world of the delivery tests: our service with its EHR client, a dispatcher's settings
and clock, and the referral every test sends (a synthetic client, Robin Quill)."""

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
from interop.services.partners import ChannelConfig, NewPartner, PartnerService
from interop.settings import Settings
from interop.store import outbox
from interop.store.database import make_engine, unit_of_work
from interop.store.tables import OutboxRow
from interop.sync.runtime import dispatcher
from mappings import model as m
from mappings import service_request, task
from mappings.terminology import PATIENT_REFERRAL
from tests.builders import organization, part2_consent, part2_program, patient
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
                identifiers=[("http://hl7.org/fhir/sid/us-npi", str(abs(hash(name)))[:10])],
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
    engine = make_engine(settings.database_url)
    yield World(client, engine, configured, Clock(), PartnerService(engine), key.jwks())
    engine.dispose()


def put(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def refer(client: TestClient, to: str, *, part2: bool = False, status: str = "requested") -> None:
    """Our program refers the client to `to`: the ServiceRequest and its Task (owner `to`)."""
    sender = part2_program("Harbor Detox") if part2 else organization("Harbor Clinic")
    put(client, {**sender, "id": "sender"})
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
    consent = part2_consent("Patient/robin", "Organization/sender", f"Organization/{recipient}")
    put(client, {**consent, "id": "consent-robin"})


def fhir_channel(partner: FhirPartner) -> ChannelConfig:
    return ChannelConfig(ChannelKind.FHIR, partner.base, partner.client_id, partner.token_url)
