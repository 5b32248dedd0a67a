"""A detox unit (a Part 2 program) holding a client's record; partner A has the client's
consent, partner B has none."""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import care_plan, part2_consent, part2_program, patient
from tests.conftest import RegisteredPartner, bearer, register_partner

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


def make(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def world(client: TestClient, anonymous: TestClient) -> World:
    detox = f"Organization/{make(client, part2_program())['id']}"
    a = register_partner(anonymous, scope="system/*.rs", name="Riverside Residential")
    b = register_partner(anonymous, scope="system/*.rs", name="Unrelated Clinic")
    person = make(
        client, patient(family="Partwo", mrn="MRN-P2", managingOrganization={"reference": detox})
    )
    client_ref = f"Patient/{person['id']}"
    plan = make(client, care_plan(client_ref, author={"reference": detox}))
    ordinary = make(client, patient(family="Ordinary", mrn="MRN-ORD"))
    consent = make(client, part2_consent(client_ref, detox, a.organization))
    return World(detox, client_ref, plan["id"], f"Patient/{ordinary['id']}", consent["id"], a, b)


def as_(anonymous: TestClient, partner: RegisteredPartner, **claims: Any) -> dict[str, str]:
    return {"Authorization": bearer(anonymous, partner, scope="system/*.rs", **claims)}
