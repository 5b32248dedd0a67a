"""Refusals and signers as partners write them, end to end through the gate (probe 2: F4, F5,
F9, D1).

The README's consent releases Alex's SUD record to Riverside Clinic; each case then stores one
more Consent (or Patient fact) as a partner would write it and reads the record again. An
opt-out (policyRule OPTOUT, the R4 example `consent-example-Out`) and a refusal naming the
patient by identifier only are the patient's refusals (PART2.md C8); a consent "signed" by a
patient after the recorded death is false, while the personal representative's is the one
§2.15(b) asks for; a research-scope consent is not a consent to disclose.
"""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from interop.services.compliance import ComplianceService
from tests.conftest import RegisteredPartner, corpus, needs_corpus
from tests.interop.disclosure.test_consents_as_written import (
    approve_the_form,
    as_partner,
    harbor_detox,
    put,
    readme_consent,
    riverside_for_treatment,
    store_the_patient_and_record,
)

ALEX = "Patient/alex-testperson"
MRN = {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "ALEX-1"}
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
RECORD = "/fhir/Condition/alex-oud"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


@pytest.fixture
def harbor(anonymous: TestClient) -> RegisteredPartner:
    return harbor_detox(anonymous)


@pytest.fixture
def ehr(anonymous: TestClient, harbor: RegisteredPartner) -> TestClient:
    return as_partner(anonymous, harbor, "system/*.cruds")


@pytest.fixture
def riverside(anonymous: TestClient) -> TestClient:
    """Riverside Clinic, the README consent's recipient, reading for treatment."""
    return riverside_for_treatment(anonymous)


@pytest.fixture
def released(anonymous: TestClient, ehr: TestClient, riverside: TestClient) -> None:
    """The README's consent on file and relied on: Riverside reads the record."""
    approve_the_form(anonymous)
    store_the_patient_and_record(ehr)
    put(ehr, readme_consent())
    assert riverside.get(RECORD).status_code == 200


def opt_out_example() -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(
        (corpus("fhir-r4-examples") / "Consent-consent-example-Out.json").read_text()
    )
    return resource


def _retargeted(consent: dict[str, Any], program: str) -> dict[str, Any]:
    """The example written for our patient and program instead of f001's."""
    text = json.dumps(consent)
    text = text.replace('"Patient/f001"', f'"{ALEX}"')
    return dict(json.loads(text.replace('"Organization/f001"', f'"{program}"')))


def _without_provision(consent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in consent.items() if k != "provision"}


def _oid_system(consent: dict[str, Any]) -> dict[str, Any]:
    rule = {"coding": [{"system": "urn:oid:2.16.840.1.113883.5.4", "code": "OPTOUT"}]}
    return {**consent, "policyRule": rule}


def _naming_the_recipient(consent: dict[str, Any]) -> dict[str, Any]:
    recipient = readme_consent()["provision"]["provision"][0]["actor"]
    return {**consent, "provision": {"actor": recipient}}


@pytest.mark.corpus
@needs_corpus("fhir-r4-examples")
@pytest.mark.usefixtures("released")
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda c: c, id="as-published"),
        pytest.param(_without_provision, id="no-provision"),
        pytest.param(_oid_system, id="oid-system"),
        pytest.param(_naming_the_recipient, id="untyped-provision-naming-the-recipient"),
    ],
)
def test_an_opt_out_consent_is_the_patients_refusal(
    harbor: RegisteredPartner, ehr: TestClient, riverside: TestClient, variant: Any
) -> None:
    """F4, C8: under policyRule OPTOUT the untyped provision is a deny and no provision is a
    blanket refusal; it stops the README consent's disclosure at once."""
    put(ehr, variant(_retargeted(opt_out_example(), harbor.organization)))

    assert riverside.get(RECORD).status_code == 404


@pytest.mark.corpus
@needs_corpus("fhir-r4-examples")
@pytest.mark.usefixtures("released")
@pytest.mark.parametrize(
    "example", ["Consent-consent-example-Emergency.json", "Consent-consent-example-grantor.json"]
)
def test_an_opt_out_whose_root_names_a_purpose_or_a_recipient_still_refuses(
    harbor: RegisteredPartner, ehr: TestClient, riverside: TestClient, example: str
) -> None:
    """Probe 8, M3 (C8): the R4 opt-outs "but for emergency treatment" and "but this one
    person" were read as refusing only the emergency, or only that person, and Riverside
    went on reading for treatment. Whether the root is the refusal's scope or its exception
    is not said; the refusal applies."""
    published = json.loads((corpus("fhir-r4-examples") / example).read_text())
    put(ehr, _retargeted(published, harbor.organization))

    assert riverside.get(RECORD).status_code == 404


NPI_SPELLINGS = ["http://hl7.org/fhir/sid/us-npi", "urn:oid:2.16.840.1.113883.4.6"]
"""The NPI as FHIR names it and as C-CDA, IHE and OID-based consent documents do."""


def _refusing_riverside(custodian: dict[str, Any]) -> dict[str, Any]:
    """The R4 example `consent-example-notOrg` ("withhold consent to disclose any instance of
    his health information to Good Health Clinic") for Alex, refusing Riverside (by NPI), the
    consent kept by `custodian` (R4: Consent.organization "manages the consent")."""
    published = json.loads(
        (corpus("fhir-r4-examples") / "Consent-consent-example-notOrg.json").read_text()
    )
    riverside = {"identifier": {"system": NPI_SPELLINGS[0], "value": "1992753883"}}
    published["patient"] = {"reference": ALEX}
    published["organization"] = [custodian]
    published["provision"]["actor"][0]["reference"] = riverside
    return dict(published)


@pytest.mark.corpus
@needs_corpus("fhir-r4-examples")
@pytest.mark.usefixtures("released")
@pytest.mark.parametrize(
    "custodian",
    [
        pytest.param(
            {"identifier": {"system": NPI_SPELLINGS[0], "value": "1992753883"}},
            id="kept-by-the-refused-clinic-as-published",
        ),
        pytest.param({"reference": "Organization/another-program"}, id="kept-by-another-program"),
    ],
)
def test_a_refusal_kept_by_another_organization_than_the_records_program_is_honoured(
    ehr: TestClient, riverside: TestClient, custodian: dict[str, Any]
) -> None:
    """Probe 12 #1 (C8): a deny was applied only to records of the programs its
    Consent.organization names, so the R4 example, kept by the refused clinic itself, let
    that clinic go on reading Harbor Detox's records. A refusal counts whoever would
    disclose; Consent.organization narrows only what a consent permits."""
    put(ehr, _refusing_riverside(custodian))

    assert riverside.get(RECORD).status_code == 404


def _with_mrn(ehr: TestClient) -> None:
    put(
        ehr,
        {
            "resourceType": "Patient",
            "id": "alex-testperson",
            "identifier": [MRN],
            "name": [{"family": "Testperson", "given": ["Alex"]}],
            "birthDate": "1990-04-12",
        },
    )


def _refusal(patient: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "alex-refuses-all",
        "status": "active",
        "scope": readme_consent()["scope"],
        "category": readme_consent()["category"],
        "patient": patient,
        "provision": {"type": "deny"},
    }


@pytest.mark.usefixtures("released")
def test_a_refusal_naming_the_patient_by_identifier_is_honoured(
    ehr: TestClient, riverside: TestClient
) -> None:
    """F5, C8: `Consent.patient` as a logical reference (identifier only) counts for the
    stored Patient carrying that identifier."""
    _with_mrn(ehr)
    assert riverside.get(RECORD).status_code == 200

    put(ehr, _refusal({"identifier": MRN}))

    assert riverside.get(RECORD).status_code == 404


@pytest.mark.usefixtures("released")
@pytest.mark.parametrize("system", NPI_SPELLINGS)
def test_a_refusal_naming_the_recipient_by_its_npi_in_either_spelling_is_honoured(
    ehr: TestClient, riverside: TestClient, system: str
) -> None:
    """Probe 9 H1, C8: the OID spelling was compared as another system, so the refusal was
    stored and applied to no one."""
    recipient = {"identifier": {"system": system, "value": "1992753883"}}
    refusal = _refusal({"reference": ALEX})
    refusal["provision"]["actor"] = [
        {"role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]}, "reference": recipient}
    ]
    put(ehr, refusal)

    assert riverside.get(RECORD).status_code == 404


SSN_SPELLINGS = ["http://hl7.org/fhir/sid/us-ssn", "urn:oid:2.16.840.1.113883.4.1"]
"""The SSN as FHIR names it and as C-CDA, IHE and OID-based consent documents do."""


@pytest.mark.usefixtures("released")
@pytest.mark.parametrize("on_patient", SSN_SPELLINGS, ids=["patient-url", "patient-oid"])
@pytest.mark.parametrize("in_refusal", SSN_SPELLINGS, ids=["refusal-url", "refusal-oid"])
def test_a_refusal_naming_the_patient_by_ssn_in_either_spelling_is_honoured(
    ehr: TestClient, riverside: TestClient, on_patient: str, in_refusal: str
) -> None:
    """Review 9 F7, C8: the Patient's identifier was indexed, and the refusal's looked up, with
    the system as written, so a refusal naming its patient by the SSN's OID applied to no one
    whose Patient carries FHIR's SSN URL (and the other way round)."""
    put(
        ehr,
        {
            "resourceType": "Patient",
            "id": "alex-testperson",
            "identifier": [{"system": on_patient, "value": "123-45-6789"}],
            "name": [{"family": "Testperson", "given": ["Alex"]}],
            "birthDate": "1990-04-12",
        },
    )
    assert riverside.get(RECORD).status_code == 200
    refusal = _refusal({"identifier": {"system": in_refusal, "value": "123-45-6789"}})
    riverside_npi = {"identifier": {"system": NPI_SPELLINGS[1], "value": "1992753883"}}
    refusal["provision"]["actor"] = [
        {
            "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
            "reference": riverside_npi,
        }
    ]
    put(ehr, refusal)

    assert riverside.get(RECORD).status_code == 404


@pytest.mark.usefixtures("released")
@pytest.mark.parametrize(
    "reference",
    [
        "http://testserver/fhir/Patient/alex-testperson",
        "https://elsewhere.example.org/fhir/Patient/alex-testperson",
        "Patient/alex-testperson/_history/1",
    ],
    ids=["absolute-to-this-server", "absolute-elsewhere", "versioned"],
)
def test_a_refusal_naming_its_patient_as_no_record_here_is_refused_not_ignored(
    ehr: TestClient, riverside: TestClient, reference: str
) -> None:
    """Probe 8, H1 (C8): a refusal whose patient is an absolute URL or a version of the record
    was stored (201) and never applied to the patient's records. It is refused with a reason,
    so that whoever records it knows, and nothing is stored."""
    refusal = _refusal({"reference": reference})
    answer = ehr.put(f"/fhir/Consent/{refusal['id']}", json=refusal, headers=FHIR_JSON)
    assert answer.status_code == 422, answer.text
    assert "Patient/{id}" in answer.json()["issue"][0]["diagnostics"]
    assert ehr.get(f"/fhir/Consent/{refusal['id']}").status_code == 404
    put(ehr, _refusal({"reference": ALEX}))
    assert riverside.get(RECORD).status_code == 404


@pytest.mark.usefixtures("released")
def test_a_record_about_another_servers_patient_is_not_released_under_a_local_consent(
    ehr: TestClient, riverside: TestClient
) -> None:
    """Probe 8, M1 (P2): a detox unit's record about a patient on another server, who has the
    same id as the README's Alex here, was released to Riverside under Alex's consent."""
    elsewhere = "https://elsewhere.example.org/fhir/Patient/alex-testperson"
    record = {
        "resourceType": "Condition",
        "id": "someone-elses-oud",
        "meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "5602001"}]},
        "subject": {"reference": elsewhere},
    }
    put(ehr, record)
    assert riverside.get("/fhir/Condition/someone-elses-oud").status_code == 404
    found = riverside.get("/fhir/Condition", params={"_id": "someone-elses-oud"}).json()
    assert found["total"] == 0


def test_a_permit_by_identifier_is_relied_on_only_while_one_patient_carries_it(
    anonymous: TestClient, ehr: TestClient, riverside: TestClient
) -> None:
    """F5: a complete consent naming its patient by identifier is read like any other, with
    the name of the one Patient carrying it; once two stored Patients carry the identifier,
    whose consent it is cannot be told and it is no longer relied on (§2.31(a)(1))."""
    approve_the_form(anonymous)
    store_the_patient_and_record(ehr)
    _with_mrn(ehr)
    consent = {**readme_consent(), "patient": {"identifier": MRN}}
    consent["performer"] = [{"reference": ALEX}]

    stored = put(ehr, consent, Prefer="return=OperationOutcome")

    assert riverside.get(RECORD).status_code == 200, stored.text
    twin = {"resourceType": "Patient", "id": "alex-twin", "identifier": [MRN]}
    put(ehr, {**twin, "name": [{"family": "Twin"}]})
    assert riverside.get(RECORD).status_code == 404


def test_validate_reads_a_consent_by_identifier_as_the_gate_does(
    anonymous: TestClient, ehr: TestClient, riverside: TestClient
) -> None:
    """C1 (F10 for logical references): `$validate` and the answer to storing resolve the
    identifier to the Patient the recorder holds, as the gate does, so a consent the gate
    relies on draws no complaint of a missing name, form or signature."""
    approve_the_form(anonymous)
    store_the_patient_and_record(ehr)
    _with_mrn(ehr)
    consent = {**readme_consent(), "patient": {"identifier": MRN}}
    consent["performer"] = [{"reference": ALEX}]

    validated = ehr.post(
        "/fhir/Consent/$validate", json=consent, headers={"Content-Type": "application/fhir+json"}
    )
    stored = put(ehr, consent, Prefer="return=OperationOutcome")

    assert riverside.get(RECORD).status_code == 200
    for answer in (validated, stored):
        complaints = [i for i in answer.json()["issue"] if i["severity"] != "information"]
        assert complaints == [], answer.text


def _deceased_patient(ehr: TestClient, death: dict[str, Any]) -> None:
    put(
        ehr,
        {
            "resourceType": "Patient",
            "id": "alex-testperson",
            "name": [{"family": "Testperson", "given": ["Alex"]}],
            "birthDate": "1970-01-01",
            **death,
        },
    )
    put(
        ehr,
        {
            "resourceType": "RelatedPerson",
            "id": "alex-executor",
            "patient": {"reference": ALEX},
            "relationship": [{"coding": [{"system": ROLE_CODE, "code": "EXCEST"}]}],
            "name": [{"family": "Executor", "given": ["Erin"]}],
        },
    )
    put(ehr, {"resourceType": "Patient", "id": "someone-else", "name": [{"family": "Else"}]})
    put(
        ehr,
        {
            "resourceType": "RelatedPerson",
            "id": "someone-elses-executor",
            "patient": {"reference": "Patient/someone-else"},
            "relationship": [{"coding": [{"system": ROLE_CODE, "code": "EXCEST"}]}],
            "name": [{"family": "Executor", "given": ["Sam"]}],
        },
    )


def _signed(signer: str, when: str) -> dict[str, Any]:
    return {**readme_consent(), "dateTime": when, "performer": [{"reference": signer}]}


@pytest.mark.parametrize(
    ("death", "signer", "when", "relied_on"),
    [
        ({"deceasedDateTime": "2026-01-05"}, ALEX, "2026-01-10T09:30:00Z", False),
        ({"deceasedDateTime": "2026-01-05"}, "RelatedPerson/alex-executor", "2026-01-10", True),
        ({"deceasedBoolean": True}, ALEX, "2026-01-10T09:30:00Z", False),
        ({"deceasedBoolean": True}, "RelatedPerson/alex-executor", "2026-01-10", True),
        ({"deceasedBoolean": True}, "RelatedPerson/someone-elses-executor", "2026-01-10", False),
    ],
    ids=[
        "patient-signs-after-death",
        "executor-signs-after-death",
        "patient-signs-death-date-unknown",
        "executor-signs-death-date-unknown",
        "another-patients-executor-signs",
    ],
)
def test_a_deceased_patients_consent_is_the_personal_representatives(
    anonymous: TestClient,
    ehr: TestClient,
    riverside: TestClient,
    death: dict[str, Any],
    signer: str,
    when: str,
    relied_on: bool,
) -> None:
    """F9, C5, C7 (§2.15(b)): for a deceased patient the executor signs; the patient's own
    "signature" dated after the recorded death is false, and with no date of death only the
    representative's consent can be relied on. Another patient's executor signs nothing."""
    approve_the_form(anonymous)
    store_the_patient_and_record(ehr)
    _deceased_patient(ehr, death)

    put(ehr, _signed(signer, when))

    assert (riverside.get(RECORD).status_code == 200) is relied_on


def test_a_research_scope_consent_is_not_a_consent_to_disclose(
    anonymous: TestClient, ehr: TestClient, riverside: TestClient
) -> None:
    """D1: R4 Consent.scope is a modifier; a research consent does not release the record
    for treatment, and storing it says why."""
    approve_the_form(anonymous)
    store_the_patient_and_record(ehr)
    research = {"coding": [{"system": readme_consent()["scope"]["coding"][0]["system"]}]}
    research["coding"][0]["code"] = "research"

    stored = put(ehr, {**readme_consent(), "scope": research}, Prefer="return=OperationOutcome")

    assert riverside.get(RECORD).status_code == 404
    warnings = [i["diagnostics"] for i in stored.json()["issue"] if i["severity"] == "warning"]
    assert any("scope is research" in text for text in warnings), warnings


def _plan(ident: str, contained: list[dict[str, Any]]) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": ident,
        "status": "active",
        "intent": "plan",
        "subject": {"reference": ALEX},
    }
    if contained:
        plan["contained"] = contained
        plan["addresses"] = [{"reference": f"#{inner['id']}"} for inner in contained]
    return plan


DIAGNOSIS = {
    "resourceType": "Condition",
    "id": "dx",
    "subject": {"reference": ALEX},
    "code": {"text": "Opioid use disorder, severe"},
}


def _limited_to(*classes: str) -> dict[str, Any]:
    """The README consent with its permit limited to these data classes (resource types)."""
    consent = readme_consent()
    consent["provision"]["provision"][0]["class"] = [
        {"system": "http://hl7.org/fhir/resource-types", "code": kind} for kind in classes
    ]
    return consent


@pytest.mark.usefixtures("released")
def test_a_resource_contained_in_a_record_is_decided_as_the_data_it_is(
    anonymous: TestClient, ehr: TestClient, riverside: TestClient
) -> None:
    """Probe 10 F1 (S3): a consent limited to care plans released the diagnosis a CarePlan
    carried in `contained`, and the accounting named only the care plan."""
    put(ehr, _limited_to("CarePlan"))
    put(ehr, _plan("alex-plan-bare", []))
    put(ehr, _plan("alex-plan-dx", [DIAGNOSIS]))

    assert riverside.get("/fhir/CarePlan/alex-plan-bare").status_code == 200
    withheld = riverside.get("/fhir/CarePlan/alex-plan-dx")
    assert withheld.status_code == 404
    assert "Opioid" not in withheld.text
    found = riverside.get("/fhir/CarePlan", params={"patient": ALEX}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["alex-plan-bare"]

    put(ehr, _limited_to("CarePlan", "Condition"))
    released = riverside.get("/fhir/CarePlan/alex-plan-dx")
    assert released.status_code == 200, released.text
    assert released.json()["contained"][0]["code"]["text"] == "Opioid use disorder, severe"
    compliance: ComplianceService = anonymous.app.state.compliance  # type: ignore[attr-defined]
    letter = compliance.accounting("alex-testperson", datetime.now(UTC))
    described = [d.description for d in letter.with_consent]
    assert "1 care plan, 1 problem or health concern" in described


@pytest.mark.usefixtures("released")
def test_a_contained_resource_is_logged_and_accounted_under_the_consent_that_released_it(
    anonymous: TestClient, ehr: TestClient, riverside: TestClient
) -> None:
    """Review 9 #9: a consent for care plans and another for diagnoses each release their
    part of a CarePlan carrying its diagnosis; the log and the accounting named the care
    plan's consent for both."""
    plans_only = _limited_to("CarePlan")
    conditions_only = {**_limited_to("Condition"), "id": "alex-conditions-only"}
    put(ehr, plans_only)
    put(ehr, conditions_only)
    put(ehr, _plan("alex-plan-dx", [DIAGNOSIS]))
    released = riverside.get("/fhir/CarePlan/alex-plan-dx")
    assert released.status_code == 200, released.text
    compliance: ComplianceService = anonymous.app.state.compliance  # type: ignore[attr-defined]
    letter = compliance.accounting("alex-testperson", datetime.now(UTC))
    described = {(d.description, d.consent) for d in letter.with_consent}
    assert ("1 care plan", f"Consent/{plans_only['id']}") in described
    assert ("1 problem or health concern", "Consent/alex-conditions-only") in described


CONTAINED_IDS = [f"{n:04d}" + "x" * 60 for n in range(900)]


@pytest.mark.usefixtures("released")
def test_a_record_naming_hundreds_of_contained_resources_is_read_and_logged_in_full(
    ehr: TestClient, riverside: TestClient, database_url: str
) -> None:
    """Review 9 #3: the log names each contained resource; its rows are cut to fit their
    column (PostgreSQL enforces the length, so every reader got a 500; SQLite does not)."""
    diagnoses = [{**DIAGNOSIS, "id": ident} for ident in CONTAINED_IDS]
    plan = _plan("alex-plan-many", diagnoses)
    plan["meta"] = {"security": [{"system": ACT_CODE, "code": "SUD"}]}
    put(ehr, plan)
    read = riverside.get("/fhir/CarePlan/alex-plan-many")
    assert read.status_code == 200, read.text[:500]
    assert len(read.json()["contained"]) == len(CONTAINED_IDS)
    searched = riverside.get("/fhir/CarePlan", params={"patient": ALEX}).json()
    assert "alex-plan-many" in [e["resource"]["id"] for e in searched["entry"]]
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            logged = list(
                connection.execute(text("SELECT resources FROM disclosure_log")).scalars()
            )
    finally:
        engine.dispose()
    assert all(len(row) <= 100_000 for row in logged)
    named = {name for row in logged for name in row.split()}
    assert {f"Condition/alex-plan-many#{ident}" for ident in CONTAINED_IDS} <= named


def _refusing_opioid_diagnoses() -> dict[str, Any]:
    """The README consent, with a refusal of ICD-10-CM F11 (and all beneath it) inside."""
    consent = readme_consent()
    consent["provision"]["provision"][0]["provision"] = [
        {"type": "deny", "code": [{"coding": [{"system": ICD10CM, "code": "F11"}]}]}
    ]
    return consent


def _for_reason(reason: dict[str, Any]) -> list[dict[str, Any]]:
    """A referral and an encounter, each for `reason`."""
    sud = {"security": [{"system": ACT_CODE, "code": "SUD"}]}
    subject = {"reference": ALEX}
    return [
        {
            "resourceType": "ServiceRequest",
            "id": "referral-1",
            "meta": sud,
            "status": "active",
            "intent": "order",
            "subject": subject,
            "code": {"text": "Residential SUD treatment"},
            "reasonCode": [reason],
        },
        {
            "resourceType": "Encounter",
            "id": "intake-1",
            "meta": sud,
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB"},
            "subject": subject,
            "reasonCode": [reason],
        },
    ]


@pytest.mark.usefixtures("released")
def test_a_refused_diagnosis_as_a_referrals_or_an_encounters_reason_stays(
    ehr: TestClient, riverside: TestClient
) -> None:
    """Review 9 #11: a refusal by diagnosis reaches every record where the diagnosis travels,
    the reason for a referral or an encounter, not only the Condition; other reasons leave."""
    put(ehr, _refusing_opioid_diagnoses())
    for record in _for_reason({"coding": [{"system": ICD10CM, "code": "F11.20"}]}):
        put(ehr, record)
    for path in ("ServiceRequest/referral-1", "Encounter/intake-1"):
        assert riverside.get(f"/fhir/{path}").status_code == 404, path
    alcohol = {"coding": [{"system": ICD10CM, "code": "F10.20"}]}
    for record in _for_reason(alcohol):
        put(ehr, record)
    assert riverside.get("/fhir/ServiceRequest/referral-1").json()["reasonCode"] == [alcohol]
    assert riverside.get("/fhir/Encounter/intake-1").json()["reasonCode"] == [alcohol]
