"""This service as an intermediary (42 CFR §2.31(a)(4)(ii), §2.24 as amended in 2024), and
consent forms identified by the Questionnaire they were filled on (PART2.md C9), with real
tokens through the gate.

The service is configured as `Organization/state-hie`. Alex's consent names it as the
intermediary, Riverside Clinic by name (A), and "participants who have a treating provider
relationship with me" (B). Hilltop Family Practice receives only once the store shows it
undertaking Alex's care; Lakeside, another covered entity with no such relationship, never
does. The §2.24 list names Hilltop (reached through the designation), not Riverside (named).
"""

import copy
import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.settings import Settings
from mappings.consent import INTERMEDIARY
from tests.conftest import RegisteredPartner
from tests.consent import PARTICIPANTS_WHO_TREAT_ME
from tests.interop.auth.test_staff import sign_in
from tests.interop.disclosure.test_consents_as_written import (
    PURPOSE_OF_USE,
    README_STATEMENTS,
    approve_the_form,
    as_partner,
    partner,
    put,
    readme_consent,
    store_the_patient_and_record,
)
from tests.interop.disclosure.test_consents_as_written import (
    detox_ehr as detox_ehr,
)
from tests.interop.disclosure.test_consents_as_written import (
    riverside as riverside,
)

HIE = "Organization/state-hie"
QUESTIONNAIRE = "https://forms.harbor-detox.example.org/fhir/Questionnaire/part2-consent"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        public_base_url="http://testserver",
        intermediary_organization=HIE,
    )


def reader(anonymous: TestClient, name: str, npi: str) -> tuple[RegisteredPartner, TestClient]:
    """A covered entity reading for treatment with a real token."""
    registered = partner(anonymous, name, npi, "system/*.rs", covered_entity=True)
    purposes = {"hl7-b2b": {"version": "1", "purpose_of_use": [PURPOSE_OF_USE + "TREAT"]}}
    return registered, as_partner(
        anonymous, registered, "system/*.rs", extra={"extensions": purposes}
    )


def hie_consent() -> dict[str, Any]:
    """The README consent, its recipients now the HIE, Riverside by name, and a designation."""
    consent = copy.deepcopy(readme_consent())
    consent["id"] = "alex-part2-hie"
    permit = consent["provision"]["provision"][0]
    [riverside_actor] = permit["actor"]
    hie_actor = {
        "extension": [{"url": INTERMEDIARY, "valueBoolean": True}],
        "role": riverside_actor["role"],
        "reference": {"reference": HIE, "display": "State HIE"},
    }
    designated = {
        "role": riverside_actor["role"],
        "reference": {"display": PARTICIPANTS_WHO_TREAT_ME},
    }
    permit["actor"] = [hie_actor, riverside_actor, designated]
    return consent


def compliance_browser(anonymous: TestClient) -> tuple[TestClient, dict[str, str]]:
    """Cora (added by `approve_the_form`) signed in, and her CSRF header."""
    browser = TestClient(anonymous.app)
    signed_in = sign_in(browser, "cora.compliance")
    assert signed_in.status_code == 200, signed_in.text
    return browser, {"X-CSRF-Token": signed_in.json()["csrf_token"]}


def test_a_designated_participant_receives_only_while_it_treats_the_patient(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)
    put(detox_ehr, {"resourceType": "Organization", "id": "state-hie", "name": "State HIE"})
    hilltop, hilltop_reads = reader(anonymous, "Hilltop Family Practice", "1457389017")
    _, lakeside_reads = reader(anonymous, "Lakeside Medical", "1336281914")
    stored = put(detox_ehr, hie_consent(), Prefer="return=OperationOutcome")
    assert [i for i in stored.json()["issue"] if i["severity"] != "information"] == []

    assert riverside.get("/fhir/Condition/alex-oud").status_code == 200
    assert hilltop_reads.get("/fhir/Condition/alex-oud").status_code == 404

    put(
        detox_ehr,
        {
            "resourceType": "EpisodeOfCare",
            "id": "alex-primary-care",
            "status": "active",
            "patient": {"reference": "Patient/alex-testperson"},
            "managingOrganization": {"reference": hilltop.organization},
        },
    )

    released = hilltop_reads.get("/fhir/Condition/alex-oud")
    assert released.status_code == 200, released.text
    assert {"SUD", "42CFRPart2", "NORDSCLCD"} <= {
        c["code"] for c in released.json()["meta"]["security"]
    }
    assert lakeside_reads.get("/fhir/Condition/alex-oud").status_code == 404

    staff, _ = compliance_browser(anonymous)
    listed = staff.get(
        "/audit/accounting/Patient/alex-testperson/general-designation", params={"format": "csv"}
    )
    assert listed.status_code == 200, listed.text
    rows = list(csv.DictReader(io.StringIO(listed.text)))
    assert [(r["recipient"], r["recipient_reference"]) for r in rows] == [
        ("Hilltop Family Practice", hilltop.organization)
    ]
    assert rows[0]["description"] == "1 problem or health concern"
    assert rows[0]["consent"] == "Consent/alex-part2-hie"

    everything = staff.get("/audit/accounting/Patient/alex-testperson", params={"format": "csv"})
    recipients = {r["recipient"] for r in csv.DictReader(io.StringIO(everything.text))}
    assert recipients == {"Riverside Clinic", "Hilltop Family Practice"}


def test_without_the_service_named_as_intermediary_the_designation_reaches_no_one(
    anonymous: TestClient, detox_ehr: TestClient
) -> None:
    """A consent naming another HIE: what passes through this service is not through it."""
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)
    hilltop, hilltop_reads = reader(anonymous, "Hilltop Family Practice", "1457389017")
    consent = hie_consent()
    consent["provision"]["provision"][0]["actor"][0]["reference"] = {
        "reference": "Organization/other-hie"
    }
    put(detox_ehr, consent)
    put(
        detox_ehr,
        {
            "resourceType": "CareTeam",
            "id": "alex-team",
            "status": "active",
            "subject": {"reference": "Patient/alex-testperson"},
            "participant": [{"member": {"reference": hilltop.organization}}],
        },
    )

    assert hilltop_reads.get("/fhir/Condition/alex-oud").status_code == 404


def approve(anonymous: TestClient, form: str) -> None:
    browser, csrf = compliance_browser(anonymous)
    approved = browser.post(
        "/admin/consent-forms",
        json={"form": form, "title": "Part 2 consent", "statements": list(README_STATEMENTS)},
        headers=csrf,
    )
    assert approved.status_code == 201, approved.text


def questionnaire_consent() -> dict[str, Any]:
    """The README consent signed as a QuestionnaireResponse instead of a PDF on a policy."""
    consent = copy.deepcopy(readme_consent())
    consent["id"] = "alex-part2-questionnaire"
    del consent["sourceAttachment"]
    del consent["policy"]
    consent["sourceReference"] = {"reference": "QuestionnaireResponse/alex-signed-form"}
    return consent


def signed_form(version: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "alex-signed-form",
        "questionnaire": f"{QUESTIONNAIRE}|{version}",
        "status": "completed",
        "subject": {"reference": "Patient/alex-testperson"},
        "authored": "2026-01-10T09:30:00Z",
    }


def test_a_form_filled_as_a_questionnaire_is_approved_by_canonical_and_version(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)
    put(detox_ehr, signed_form("3"))
    stored = put(detox_ehr, questionnaire_consent(), Prefer="return=OperationOutcome")
    warnings = [i["diagnostics"] for i in stored.json()["issue"] if i["severity"] == "warning"]
    assert len(warnings) == 1
    assert "(f) cannot be verified: the form is not approved" in warnings[0]
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404

    approve(anonymous, f"{QUESTIONNAIRE}|2")
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404

    approve(anonymous, f"{QUESTIONNAIRE}|3")
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 200

    put(detox_ehr, signed_form("4"))
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404
