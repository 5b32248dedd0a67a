"""A detox unit (a Part 2 program) holding a client's record; partner A has the client's
consent, partner B has none."""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import care_plan, part2_consent, patient
from tests.conftest import RegisteredPartner, approve_part2_form, bearer, register_partner

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@dataclass
class World:
    detox: str
    client_ref: str
    plan_id: str
    ordinary_ref: str
    consent_id: str
    a: RegisteredPartner
    b: RegisteredPartner
    detox_partner: RegisteredPartner


def make(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def acting_as(anonymous: TestClient, partner: RegisteredPartner) -> TestClient:
    """A client of the same app holding the partner's token: what it writes is the partner's
    record (its recorded origin), whatever the body says."""
    acting = TestClient(anonymous.app)
    acting.headers["Authorization"] = bearer(anonymous, partner, scope="system/*.cruds")
    return acting


@pytest.fixture
def world(anonymous: TestClient) -> World:
    """The detox unit writes its own records through its own registration (a Part 2 program),
    so they are Part 2 data by their recorded origin (PART2.md P1), not by their elements."""
    unit = register_partner(anonymous, name="Harbor Detox Unit", part2_program=True)
    detox_client = acting_as(anonymous, unit)
    a = register_partner(anonymous, scope="system/*.rs", name="Riverside Residential")
    b = register_partner(anonymous, scope="system/*.rs", name="Unrelated Clinic")
    person = make(
        detox_client,
        patient(
            family="Partwo", mrn="MRN-P2", managingOrganization={"reference": unit.organization}
        ),
    )
    client_ref = f"Patient/{person['id']}"
    plan = make(detox_client, care_plan(client_ref))
    clinic = register_partner(anonymous, name="Ordinary Clinic")
    ordinary = make(acting_as(anonymous, clinic), patient(family="Ordinary", mrn="MRN-ORD"))
    approve_part2_form(anonymous)
    consent = make(detox_client, part2_consent(client_ref, unit.organization, a.organization))
    return World(
        unit.organization,
        client_ref,
        plan["id"],
        f"Patient/{ordinary['id']}",
        consent["id"],
        a,
        b,
        unit,
    )


def as_(anonymous: TestClient, partner: RegisteredPartner, **claims: Any) -> dict[str, str]:
    return {"Authorization": bearer(anonymous, partner, scope="system/*.rs", **claims)}
