"""A handoff's C-CDA Transfer Summary: only what the receiving program may receive, with the
Part 2 markings when Part 2 data goes (issue 6, through the gate of issue 5)."""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.ccda import read_document
from adapters.ccda.templates import DocumentKind
from interop.services.staff import Role
from tests.interop.cases.test_story import enter_story, staff

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SUMMARY = "/cases/handoffs/handoff-to-iop/transfer-summary"


def opioid_use_disorder() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "oud-jordan",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "5602001", "display": "Opioid abuse"}
            ],
            "text": "Opioid use disorder",
        },
        "subject": {"reference": "Patient/jordan-rivers"},
        "asserter": {"reference": "Organization/riverside-residential"},
        "recordedDate": "2026-06-09",
    }


@pytest.fixture
def admin(anonymous: TestClient, client: TestClient) -> TestClient:
    browser, csrf = staff(anonymous, "ada.admin", Role.ADMINISTRATOR)
    enter_story(browser, csrf)
    assert (
        client.put(
            "/fhir/Condition/oud-jordan", json=opioid_use_disorder(), headers=FHIR_JSON
        ).status_code
        == 201
    )
    return browser


def revoke_consent(client: TestClient) -> None:
    """The story's consent revoked (inactive, as a written revocation is recorded)."""
    stored = client.get("/fhir/Consent/consent-jordan").json()
    stored.pop("meta", None)
    response = client.put(
        "/fhir/Consent/consent-jordan", json={**stored, "status": "inactive"}, headers=FHIR_JSON
    )
    assert response.status_code == 200, response.text


def test_without_consent_no_document_leaves(admin: TestClient, client: TestClient) -> None:
    """P1/P2: the handoff itself is a Part 2 record (the residential program wrote it, and it
    names the client as its patient), so without a consent for the receiver no Transfer
    Summary is written at all, and the refusal names no one."""
    revoke_consent(client)
    response = admin.get(SUMMARY)
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["detail"] == "no consent on file lets the receiving program have this referral"
    assert "Rivers" not in response.text
    assert "Opioid" not in response.text


def test_with_consent_the_document_carries_the_records_and_the_part2_markings(
    admin: TestClient,
) -> None:
    """The story's consent lets the residential program disclose to the outpatient program."""
    response = admin.get(SUMMARY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    document = read_document(response.content)
    assert document.kind is DocumentKind.TRANSFER_SUMMARY
    assert document.patient is not None
    assert document.patient.names[0].family == ("Rivers",)
    assert [p.value.code for p in document.problems if p.value] == ["5602001"]
    assert document.confidentiality.value == "R"
    codes = {label.code for label in document.security_labels}
    assert {"SUD", "42CFRPart2", "NORDSCLCD"} <= codes
    assert "NORDSLCD" not in response.text


def test_a_referral_note_goes_to_the_program_asked_only_with_consent(
    admin: TestClient, client: TestClient
) -> None:
    """The detox program's referral is Part 2 data: the residential program gets its Referral
    Note while the client consents to that disclosure, and not once the consent is revoked."""
    note = "/cases/referrals/referral-residential/referral-note"
    response = admin.get(note)
    assert response.status_code == 200, response.text
    document = read_document(response.content)
    assert document.kind is DocumentKind.REFERRAL_NOTE
    assert "withdrawal management" in (document.reason_for_referral or "").lower()
    assert document.confidentiality.value == "R"
    revoke_consent(client)
    assert admin.get(note).status_code == 403


def accounted(client: TestClient) -> list[Any]:
    """Jordan's accounting of disclosures made with consent, as compliance staff read it."""
    compliance = client.app.state.compliance  # type: ignore[attr-defined]
    return list(compliance.accounting("jordan-rivers", datetime.now(UTC)).with_consent)


def test_the_receivers_staff_fetching_the_summary_is_a_disclosure_accounted_by_content(
    admin: TestClient, anonymous: TestClient, client: TestClient
) -> None:
    """A2: the receiving program's case manager holds the document, so it has left for that
    program; the accounting names everything in it, as when a channel sends it."""
    programs = ("northside-primary", "bayview-iop")  # the receiving one not first
    browser, _csrf = staff(anonymous, "cy.iop", Role.CASE_MANAGER, programs)
    before = len(accounted(client))
    response = browser.get(SUMMARY)
    assert response.status_code == 200, response.text
    # One fetch, one disclosure (probe 7, L3: the lookup of the handoff was a second one).
    assert [d.row.interaction for d in accounted(client)[before:]] == ["ccda-send"]
    sent = [d for d in accounted(client) if d.row.interaction == "ccda-send"]
    assert {d.recipient for d in sent} == {"Organization/bayview-iop"}
    described = " ".join(d.description for d in sent)
    assert "problem" in described
    assert "referral" in described
