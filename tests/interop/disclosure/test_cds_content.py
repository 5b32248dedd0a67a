"""The CDS consent service decides the records a caller sends as the gate decides ours: by
their codes, and each resource they contain as the data it is (review 9 #4)."""

from typing import Any

from fastapi.testclient import TestClient

from tests.builders import ACT_CODE, part2_consent, patient
from tests.conftest import RegisteredPartner, approve_part2_form, register_partner
from tests.interop.disclosure.test_cds_hooks import FHIR_JSON, consult

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SUD = {"meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]}}
SUBJECT = {"subject": {"reference": "Patient/x"}}


def program_with_consent(
    client: TestClient, anonymous: TestClient, nested_deny: dict[str, Any]
) -> RegisteredPartner:
    """Harbor, whose client consents to Riverside with the refusal `nested_deny` inside."""
    program = register_partner(
        anonymous, scope="system/Consent.rs", name="Harbor Detox EHR", part2_program=True
    )
    riverside = register_partner(anonymous, scope="system/*.rs", name="Riverside Residential")
    person = client.post("/fhir/Patient", json=patient(mrn="MRN-CDS"), headers=FHIR_JSON).json()
    approve_part2_form(anonymous)
    consent = part2_consent(
        f"Patient/{person['id']}",
        program.organization,
        riverside.organization,
        nested_deny=nested_deny,
    )
    assert client.post("/fhir/Consent", json=consent, headers=FHIR_JSON).status_code == 201
    return program


def released(anonymous: TestClient, program: RegisteredPartner, *records: Any) -> list[Any]:
    content = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": record} for record in records],
    }
    card = consult(anonymous, program, "Riverside Residential", content=content)["cards"][0]
    return [entry["resource"] for entry in card["extension"]["content"].get("entry", [])]


def test_a_refused_kind_of_record_stays_when_another_record_contains_it(
    client: TestClient, anonymous: TestClient
) -> None:
    conditions = {"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Condition"}]}
    program = program_with_consent(client, anonymous, conditions)
    diagnosis = {"resourceType": "Condition", **SUD, **SUBJECT, "code": {"text": "OUD, severe"}}
    holding = {
        "resourceType": "CarePlan",
        **SUD,
        **SUBJECT,
        "status": "active",
        "intent": "plan",
        "contained": [{**diagnosis, "id": "dx", "meta": {}}],
        "addresses": [{"reference": "#dx"}],
    }
    plain = {k: v for k, v in holding.items() if k not in ("contained", "addresses")}
    kept = released(anonymous, program, diagnosis, holding, plain)
    assert [(r["resourceType"], "contained" in r) for r in kept] == [("CarePlan", False)]


def test_a_refused_code_stays_and_others_go(client: TestClient, anonymous: TestClient) -> None:
    refused = {"code": [{"coding": [{"system": ICD, "code": "F11.20"}]}]}
    program = program_with_consent(client, anonymous, refused)
    opioid, alcohol = (
        {
            "resourceType": "Condition",
            **SUD,
            **SUBJECT,
            "code": {"coding": [{"system": ICD, "code": c}]},
        }
        for c in ("F11.20", "F10.20")
    )
    kept = released(anonymous, program, opioid, alcohol)
    assert [r["code"]["coding"][0]["code"] for r in kept] == ["F10.20"]
