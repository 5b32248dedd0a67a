"""A version several Part 2 programs wrote is each one's record (probe 11 H1): the owner's
status and note, written into the requester's shared Task, stay behind the owner's consent
even after the requester writes the Task again."""

from typing import Any

from fastapi.testclient import TestClient

from mappings.terminology import BUSINESS_STATUS
from tests.builders import part2_consent, patient, service_request, task
from tests.conftest import RegisteredPartner, approve_part2_form, bearer, register_partner

FHIR_JSON = {"Content-Type": "application/fhir+json"}
ADMITTED = {
    "coding": [
        {
            "system": BUSINESS_STATUS.url,
            "code": "admitted",
        }
    ]
}


def as_(anonymous: TestClient, partner: RegisteredPartner) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": bearer(anonymous, partner, scope="system/*.cruds")}


def test_the_owners_words_stay_behind_its_consent_when_the_requester_writes_again(
    anonymous: TestClient,
) -> None:
    """Harbor Detox runs this service (its EHR registered first party) and refers to
    Riverside, another Part 2 program, which works the Task here."""
    harbor = register_partner(anonymous, name="Harbor Detox", part2_program=True, first_party=True)
    riverside = register_partner(anonymous, name="Riverside Residential", part2_program=True)
    northside = register_partner(anonymous, name="Northside Primary Care")
    ehr = as_(anonymous, harbor)
    person = anonymous.post("/fhir/Patient", json=patient(), headers=ehr).json()
    subject = f"Patient/{person['id']}"
    approve_part2_form(anonymous)
    for recipient in (riverside, northside):  # Harbor may tell both; Riverside no one
        consent = part2_consent(subject, harbor.organization, recipient.organization)
        assert anonymous.post("/fhir/Consent", json=consent, headers=ehr).status_code == 201
    order = anonymous.post(
        "/fhir/ServiceRequest",
        json=service_request(subject, requester=harbor.organization),
        headers=ehr,
    ).json()
    body = task(
        f"ServiceRequest/{order['id']}",
        subject,
        requester=harbor.organization,
        owner={"reference": riverside.organization},
    )
    shared = anonymous.post("/fhir/Task", json=body, headers=ehr).json()

    def northside_reads() -> Any:
        return anonymous.get(f"/fhir/Task/{shared['id']}", headers=as_(anonymous, northside))

    assert northside_reads().status_code == 200  # Harbor's, under Harbor's consent
    path = f"/fhir/Task/{shared['id']}"
    current = anonymous.get(path, headers=as_(anonymous, riverside)).json()
    for status, extra in (
        ("accepted", {}),
        (
            "in-progress",
            {
                "executionPeriod": {"start": "2026-12-07T12:00:00Z"},
                "businessStatus": ADMITTED,
                "note": [{"text": "Admitted to bed 4; withdrawal symptoms moderate"}],
            },
        ),
    ):
        body = {k: v for k, v in current.items() if k != "meta"} | {"status": status, **extra}
        answer = anonymous.put(path, json=body, headers=as_(anonymous, riverside))
        assert answer.status_code == 200, answer.text
        current = answer.json()
    assert northside_reads().status_code == 404  # Riverside's words, no consent of Riverside's
    ours = anonymous.get(path, headers=ehr).json()  # the program's own systems see all
    noted = {k: v for k, v in ours.items() if k != "meta"}
    noted["note"] = [*noted["note"], {"text": "Transport arranged"}]
    assert anonymous.put(path, json=noted, headers=ehr).status_code == 200
    hidden = northside_reads()
    assert hidden.status_code == 404, hidden.text
    assert "withdrawal" not in hidden.text
