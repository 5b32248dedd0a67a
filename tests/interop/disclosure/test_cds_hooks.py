"""The CDS Hooks patient-consent-consult service, in the LEAP Consent Decision Service shape."""

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import MRN, part2_consent, patient
from tests.conftest import RegisteredPartner, bearer, register_partner

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PARTNER_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"


def consult(
    anonymous: TestClient,
    caller: RegisteredPartner,
    actor: str,
    *,
    mrn: str = "MRN-CDS",
    purposes: tuple[str, ...] = ("TREAT",),
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "patientId": [{"system": MRN, "value": mrn}],
        "actor": [{"system": PARTNER_SYSTEM, "value": actor}],
        "purposeOfUse": list(purposes),
    }
    if content is not None:
        context["content"] = content
    body = {
        "hook": "patient-consent-consult",
        "hookInstance": str(uuid.uuid4()),
        "context": context,
    }
    response = anonymous.post(
        "/cds-services/patient-consent-consult",
        json=body,
        headers={"Authorization": bearer(anonymous, caller, scope="system/Consent.rs")},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def detox(client: TestClient, anonymous: TestClient) -> RegisteredPartner:
    """The Part 2 program asking before it discloses; its client has a consent for Riverside."""
    program = register_partner(
        anonymous, scope="system/Consent.rs", name="Harbor Detox EHR", part2_program=True
    )
    riverside = register_partner(anonymous, scope="system/*.rs", name="Riverside Residential")
    person = client.post("/fhir/Patient", json=patient(mrn="MRN-CDS"), headers=FHIR_JSON).json()
    client.post(
        "/fhir/Patient", json=patient(family="Noconsent", mrn="MRN-NONE"), headers=FHIR_JSON
    )
    consent = part2_consent(f"Patient/{person['id']}", program.organization, riverside.organization)
    created = client.post("/fhir/Consent", json=consent, headers=FHIR_JSON)
    assert created.status_code == 201
    return program


def test_discovery_lists_the_service(anonymous: TestClient) -> None:
    services = anonymous.get("/cds-services").json()["services"]
    assert services[0]["hook"] == "patient-consent-consult"
    assert services[0]["id"] == "patient-consent-consult"


def test_consented_actor_is_permitted_with_the_consent_named(
    anonymous: TestClient, detox: RegisteredPartner
) -> None:
    card = consult(anonymous, detox, "Riverside Residential")["cards"][0]
    assert card["summary"] == "CONSENT_PERMIT"
    assert card["extension"]["decision"] == "CONSENT_PERMIT"
    assert card["extension"]["basedOn"].startswith("Consent/")


def test_other_actor_or_purpose_is_denied(anonymous: TestClient, detox: RegisteredPartner) -> None:
    assert consult(anonymous, detox, "Somebody Else")["cards"][0]["summary"] == "CONSENT_DENY"
    legal = consult(anonymous, detox, "Riverside Residential", purposes=("HLEGAL",))
    assert legal["cards"][0]["summary"] == "CONSENT_DENY"


def test_patient_without_consents_has_no_consent(
    anonymous: TestClient, detox: RegisteredPartner
) -> None:
    card = consult(anonymous, detox, "Riverside Residential", mrn="MRN-NONE")["cards"][0]
    assert card["summary"] == "NO_CONSENT"
    assert card["extension"]["decision"] == "NO_CONSENT"


def test_content_is_labelled_or_redacted(anonymous: TestClient, detox: RegisteredPartner) -> None:
    sud = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}
    content = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "meta": {"security": [sud]},
                    "subject": {"reference": "Patient/x"},
                }
            },
            {"resource": {"resourceType": "Organization", "name": "Not patient data"}},
        ],
    }
    permitted = consult(anonymous, detox, "Riverside Residential", content=content)["cards"][0]
    kept = permitted["extension"]["content"]["entry"]
    assert len(kept) == 2
    assert "42CFRPart2" in {c["code"] for c in kept[0]["resource"]["meta"]["security"]}
    denied = consult(anonymous, detox, "Somebody Else", content=content)["cards"][0]
    assert [e["resource"]["resourceType"] for e in denied["extension"]["content"]["entry"]] == [
        "Organization"
    ]
    redact = denied["extension"]["obligations"][0]
    assert redact["obligation"]["code"] == "REDACT"
    assert redact["content"]["codes"] == [sud]


def test_callers_authenticate_like_any_partner(anonymous: TestClient) -> None:
    response = anonymous.post(
        "/cds-services/patient-consent-consult", json={"hook": "patient-consent-consult"}
    )
    assert response.status_code == 401


def test_storing_a_consent_says_why_it_cannot_be_relied_on(client: TestClient) -> None:
    """C1: a draft missing §2.31 elements is stored, with the missing elements named."""
    draft = part2_consent("Patient/p1", "Organization/detox", "Organization/clinic")
    del draft["dateTime"]
    del draft["provision"]["provision"][0]["purpose"]
    response = client.post(
        "/fhir/Consent", json=draft, headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"}
    )
    assert response.status_code == 201
    issues = response.json()["issue"]
    warnings = {tuple(i.get("expression", [])) for i in issues if i["severity"] == "warning"}
    assert ("Consent.dateTime",) in warnings
    assert ("Consent.provision.purpose",) in warnings
    complete = client.post(
        "/fhir/Consent/$validate",
        json=part2_consent("Patient/p1", "Organization/detox", "Organization/clinic"),
        headers=FHIR_JSON,
    )
    assert [i["severity"] for i in complete.json()["issue"]] == ["information"]
