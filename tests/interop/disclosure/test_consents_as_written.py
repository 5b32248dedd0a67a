"""Consents as the world writes them, end to end with real tokens (issue 11).

The README's "Writing a Part 2 consent" example, posted exactly as written on a form compliance
staff approved, releases the patient's SUD record to the named recipient, labelled and with
the §2.32 notice; a later refusal by the same patient stops it at once (PART2.md C8). The
program that wrote the record is a registered Part 2 program (its own EHR), so the record is
Part 2 data by its recorded origin, and carries the SUD label too.
"""

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.forms import ConsentForms
from interop.services.partners import NewPartner, PartnerService
from interop.services.staff import Role, StaffService
from tests.conftest import REPOSITORY, RegisteredPartner, bearer
from tests.interop.auth.test_staff import sign_in
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}
NPI = "http://hl7.org/fhir/sid/us-npi"
PURPOSE_OF_USE = "urn:oid:2.16.840.1.113883.5.8#"
FORM = "https://forms.harbor-detox.example.org/part2-consent/v3"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NOTICE = "http://recovery-interop.example.org/fhir/StructureDefinition/part2-disclosure-notice"


def readme_consent() -> dict[str, Any]:
    """The one complete example of the README section, as a reader would copy it."""
    text = (REPOSITORY / "README.md").read_text()
    found = re.search(
        r"<!-- part2-consent-example:start -->\s*```json\n(.*?)```\s*"
        r"<!-- part2-consent-example:end -->",
        text,
        re.DOTALL,
    )
    assert found is not None, "README lost its Part 2 consent example"
    consent: dict[str, Any] = json.loads(found.group(1))
    return consent


def partner(
    anonymous: TestClient, name: str, npi: str, scope: str, **flags: bool
) -> RegisteredPartner:
    """A partner registered with its NPI, the identifier the README's consent names it by."""
    key = rsa_key()
    service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
    registered = service.register(
        NewPartner(name=name, identifiers=[(NPI, npi)], scopes=scope, jwks=key.jwks(), **flags)
    )
    return RegisteredPartner(registered.client_id, registered.organization, key)


def as_partner(
    anonymous: TestClient, who: RegisteredPartner, scope: str, **claims: Any
) -> TestClient:
    browser = TestClient(anonymous.app)
    browser.headers["Authorization"] = bearer(anonymous, who, scope=scope, **claims)
    return browser


def harbor_detox(anonymous: TestClient) -> RegisteredPartner:
    """Harbor Detox's own EHR: a first-party Part 2 program writing its records here."""
    return partner(
        anonymous,
        "Harbor Detox",
        "1234567893",
        "system/*.cruds",
        first_party=True,
        part2_program=True,
    )


def riverside_for_treatment(anonymous: TestClient) -> TestClient:
    """Riverside Clinic reading for treatment, with a real token carrying its purpose."""
    clinic = partner(
        anonymous, "Riverside Clinic", "1992753883", "system/*.rs", covered_entity=True
    )
    purposes = {"hl7-b2b": {"version": "1", "purpose_of_use": [PURPOSE_OF_USE + "TREAT"]}}
    return as_partner(anonymous, clinic, "system/*.rs", extra={"extensions": purposes})


@pytest.fixture
def detox_ehr(anonymous: TestClient) -> TestClient:
    return as_partner(anonymous, harbor_detox(anonymous), "system/*.cruds")


@pytest.fixture
def riverside(anonymous: TestClient) -> TestClient:
    return riverside_for_treatment(anonymous)


README_STATEMENTS = ("right-to-revoke", "redisclosure-risk")
"""What the README's form states: the right to revoke (§2.31(a)(6)) and, Riverside Clinic
being a covered entity receiving for treatment, HIPAA redisclosure (§2.31(a)(4)(iii))."""


def approve_the_form(anonymous: TestClient, statements: Sequence[str] = README_STATEMENTS) -> None:
    """Compliance staff approve the form once (PART2.md C9), through the admin API, as the
    README's command does."""
    staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    staff.add(
        "cora.compliance",
        "correct horse battery staple",
        Role.COMPLIANCE_OFFICER,
        (),
        datetime.now(UTC),
    )
    browser = TestClient(anonymous.app)
    signed_in = sign_in(browser, "cora.compliance")
    assert signed_in.status_code == 200, signed_in.text
    csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    approved = browser.post(
        "/admin/consent-forms",
        json={"form": FORM, "title": "Part 2 consent v3", "statements": list(statements)},
        headers=csrf,
    )
    assert approved.status_code == 201, approved.text
    listed = browser.get("/admin/consent-forms").json()
    assert [(f["form"], f["statements"], f["approved_by"]) for f in listed] == [
        (FORM, list(statements), "cora.compliance")
    ]


def put(ehr: TestClient, resource: dict[str, Any], **headers: str) -> Any:
    response = ehr.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**FHIR_JSON, **headers},
    )
    assert response.status_code in (200, 201), response.text
    return response


def store_the_patient_and_record(ehr: TestClient) -> None:
    put(
        ehr,
        {
            "resourceType": "Patient",
            "id": "alex-testperson",
            "name": [{"family": "Testperson", "given": ["Alex"]}],
            "birthDate": "1990-04-12",
        },
    )
    put(
        ehr,
        {
            "resourceType": "Condition",
            "id": "alex-oud",
            "meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "5602001"}]},
            "subject": {"reference": "Patient/alex-testperson"},
        },
    )


def test_the_readme_consent_releases_and_a_later_refusal_stops_it(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)

    stored = put(detox_ehr, readme_consent(), Prefer="return=OperationOutcome")

    issues = stored.json()["issue"]
    assert [i for i in issues if i["severity"] != "information"] == [], issues
    released = riverside.get("/fhir/Condition/alex-oud")
    assert released.status_code == 200, released.text
    meta = released.json()["meta"]
    assert {"R", "SUD", "42CFRPart2", "NORDSCLCD"} <= {c["code"] for c in meta["security"]}
    [notice] = [e for e in meta["extension"] if e["url"] == NOTICE]
    parts = {part["url"]: part for part in notice["extension"]}
    assert parts["statement"]["valueString"].startswith("This record which has been disclosed")
    assert parts["consent"]["valueReference"]["reference"] == "Consent/alex-part2-riverside"

    refusal = {
        "resourceType": "Consent",
        "id": "alex-refuses-riverside",
        "status": "active",
        "scope": readme_consent()["scope"],
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/alex-testperson"},
        "provision": {
            "type": "deny",
            "actor": [
                {
                    "role": readme_consent()["provision"]["provision"][0]["actor"][0]["role"],
                    "reference": {"identifier": {"system": NPI, "value": "1992753883"}},
                }
            ],
        },
    }
    put(detox_ehr, refusal)

    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404


def test_without_the_approval_the_form_cannot_be_verified(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    store_the_patient_and_record(detox_ehr)

    stored = put(detox_ehr, readme_consent(), Prefer="return=OperationOutcome")

    warnings = [i for i in stored.json()["issue"] if i["severity"] == "warning"]
    assert len(warnings) == 1, warnings
    assert "(f) cannot be verified: the form is not approved" in warnings[0]["diagnostics"]
    assert "policy.uri" in warnings[0]["diagnostics"]
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404


def test_validate_reports_what_storing_reports_and_no_more(
    anonymous: TestClient, detox_ehr: TestClient
) -> None:
    """C1, C9 (F10): `$validate` reads a Consent with the facts storing it reads (the stored
    Patient's name, the approved forms), so it reports the same §2.31 problems as `Prefer:
    return=OperationOutcome`: none for the README's consent, the real one for a deficient
    copy. For a requester the Patient is withheld from, the name is unknown exactly as for a
    Patient that is not stored here (§2.13(c))."""
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)
    deficient = {k: v for k, v in readme_consent().items() if k != "dateTime"}

    def problems(response: Any) -> list[tuple[str, str, tuple[str, ...]]]:
        assert response.status_code in (200, 201), response.text
        return [
            (i["severity"], i["diagnostics"], tuple(i.get("expression", ())))
            for i in response.json()["issue"]
            if i["severity"] != "information"
        ]

    for consent in (readme_consent(), deficient):
        validated = detox_ehr.post("/fhir/Consent/$validate", json=consent, headers=FHIR_JSON)
        stored = put(detox_ehr, consent, Prefer="return=OperationOutcome")
        assert problems(validated) == problems(stored)
    assert problems(detox_ehr.post("/fhir/Consent/$validate", json=readme_consent())) == []
    assert [p[2] for p in problems(stored)] == [("Consent.dateTime",)]

    westside = as_partner(
        anonymous, partner(anonymous, "Westside", "1003000126", "system/*.cruds"), "system/*.cruds"
    )
    assert westside.get("/fhir/Patient/alex-testperson").status_code == 404
    nobody = json.loads(json.dumps(readme_consent()).replace("alex-testperson", "nobody-here"))
    withheld = westside.post("/fhir/Consent/$validate", json=readme_consent())
    unknown = westside.post("/fhir/Consent/$validate", json=nobody)
    assert problems(withheld) == problems(unknown)
    assert any("(a)" in diagnostics for _, diagnostics, _ in problems(withheld))


STATEMENT_EXTENSION = (
    "http://recovery-interop.example.org/fhir/StructureDefinition/consent-form-statement"
)


def test_a_consent_vouching_for_its_own_form_releases_nothing(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    """Probe (PART2.md C9): the README's consent with its signed form given by a title and the
    consent's own word that the form states the right to revoke (an extension), no form
    approved. Before, Riverside read the record (200); now the consent cannot be verified, is
    no signed form, and releases nothing."""
    store_the_patient_and_record(detox_ehr)
    consent = {k: v for k, v in readme_consent().items() if k != "policy"}
    consent["sourceAttachment"] = {
        "title": "Signed consent to disclose SUD records",
        "extension": [{"url": STATEMENT_EXTENSION, "valueCode": "right-to-revoke"}],
    }

    validated = detox_ehr.post("/fhir/Consent/$validate", json=consent, headers=FHIR_JSON)
    stored = put(detox_ehr, consent, Prefer="return=OperationOutcome")

    for answer in (validated, stored):
        warnings = [i["diagnostics"] for i in answer.json()["issue"] if i["severity"] == "warning"]
        assert any("C9: (f) cannot be verified" in w for w in warnings), warnings
        assert any(w.startswith("C1: (h)") for w in warnings), warnings
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404


def test_a_tpo_grant_declared_general_needs_the_tpo_statements(
    anonymous: TestClient, detox_ehr: TestClient
) -> None:
    """Probe (PART2.md C1, C2): the README's consent declared `general` while permitting
    treatment, payment and operations is a TPO consent: on a form approved without the TPO
    statements Riverside's payment read is refused (404), where it was released."""
    approve_the_form(anonymous)
    store_the_patient_and_record(detox_ehr)
    consent = readme_consent()
    consent["extension"] = [
        {
            "url": "http://recovery-interop.example.org/fhir/StructureDefinition/"
            "part2-consent-kind",
            "valueCode": "general",
        }
    ]
    permit = consent["provision"]["provision"][0]
    permit["purpose"] = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code}
        for code in ("TREAT", "HPAYMT", "HOPERAT")
    ]

    stored = put(detox_ehr, consent, Prefer="return=OperationOutcome")

    warnings = [i["diagnostics"] for i in stored.json()["issue"] if i["severity"] == "warning"]
    assert any("consequences of refusing to sign" in w for w in warnings), warnings
    clinic = partner(
        anonymous, "Riverside Clinic", "1992753883", "system/*.rs", covered_entity=True
    )
    purposes = {"hl7-b2b": {"version": "1", "purpose_of_use": [PURPOSE_OF_USE + "HPAYMT"]}}
    payer = as_partner(anonymous, clinic, "system/*.rs", extra={"extensions": purposes})
    assert payer.get("/fhir/Condition/alex-oud").status_code == 404

    forms: ConsentForms = anonymous.app.state.consent_forms  # type: ignore[attr-defined]
    statements = (*README_STATEMENTS, "refusal-consequences")
    forms.approve(FORM, "Part 2 consent v3", statements, "cora.compliance")
    assert payer.get("/fhir/Condition/alex-oud").status_code == 200


def test_a_covered_entity_reads_for_treatment_only_on_a_form_stating_hipaa_redisclosure(
    anonymous: TestClient, detox_ehr: TestClient, riverside: TestClient
) -> None:
    """Probe (§2.31(a)(4)(iii)): Riverside Clinic, registered as a covered entity, reads for
    treatment under the README's general consent: on a form approved with the right to revoke
    alone it is refused (404), where it was released; once the form is approved as stating
    that a covered entity may redisclose under HIPAA, the record is released."""
    approve_the_form(anonymous, ("right-to-revoke",))
    store_the_patient_and_record(detox_ehr)
    put(detox_ehr, readme_consent())

    assert riverside.get("/fhir/Condition/alex-oud").status_code == 404

    forms: ConsentForms = anonymous.app.state.consent_forms  # type: ignore[attr-defined]
    forms.approve(FORM, "Part 2 consent v3", README_STATEMENTS, "cora.compliance")
    assert riverside.get("/fhir/Condition/alex-oud").status_code == 200


def test_a_recipient_that_is_no_covered_entity_needs_no_hipaa_statement(
    anonymous: TestClient, detox_ehr: TestClient
) -> None:
    """§2.31(a)(4)(iii) asks the statement only where the recipient is a covered entity or
    business associate: a Part 2 program that is neither reads on the right to revoke alone."""
    approve_the_form(anonymous, ("right-to-revoke",))
    store_the_patient_and_record(detox_ehr)
    put(detox_ehr, readme_consent())
    program = partner(
        anonymous, "Riverside Clinic", "1992753883", "system/*.rs", part2_program=True
    )
    purposes = {"hl7-b2b": {"version": "1", "purpose_of_use": [PURPOSE_OF_USE + "TREAT"]}}
    reader = as_partner(anonymous, program, "system/*.rs", extra={"extensions": purposes})

    assert reader.get("/fhir/Condition/alex-oud").status_code == 200
