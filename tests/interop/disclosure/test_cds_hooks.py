"""The CDS Hooks patient-consent-consult service, in the LEAP Consent Decision Service shape.

Every answer is checked against LEAP's published response schema (kept in leap/, see
leap/SOURCE.md) by `schema_errors`, a reader of the JSON Schema keywords that schema uses.
"""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from interop.audit.accounting import accounting
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.tables import DisclosureLogRow
from tests.builders import ACT_CODE, MRN, part2_consent, patient
from tests.conftest import RegisteredPartner, approve_part2_form, bearer, register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PARTNER_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"
SCHEMA: dict[str, Any] = json.loads(
    (
        Path(__file__).parent / "leap" / "patient-consent-consult-hook-response.schema.json"
    ).read_text()
)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where `value` breaks `schema` (draft-07: $ref, type, enum, required, properties, items,
    contains: the keywords LEAP's response schema uses; any other keyword fails loudly)."""
    known = {"$schema", "$id", "title", "description", "definitions", "$ref", "type", "enum"}
    known |= {"required", "properties", "items", "contains"}
    assert set(schema) <= known, f"unsupported keywords {set(schema) - known}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return schema_errors(value, SCHEMA["definitions"][name], path)
    if "type" in schema and not isinstance(value, _TYPES[schema["type"]]):
        return [f"{path}: not a {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errors += [
            f"{path}.{key}: required" for key in schema.get("required", ()) if key not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{path}.{key}")
    if isinstance(value, list):
        if "items" in schema:
            for number, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{path}[{number}]")
        if "contains" in schema and not any(
            not schema_errors(item, schema["contains"]) for item in value
        ):
            errors.append(f"{path}: no item matches 'contains'")
    return errors


def test_the_schema_reader_rejects_what_leap_would() -> None:
    """The checker itself must be able to fail: a card of the old shape breaks the schema."""
    old = {
        "cards": [
            {
                "summary": "CONSENT_DENY",
                "detail": "x",
                "indicator": "warning",
                "source": {"label": "no url"},
                "extension": {
                    "decision": "DENY",
                    "obligations": [{"obligation": {"system": "s", "code": "REDACT"}}],
                },
            }
        ]
    }
    assert schema_errors(old, SCHEMA) == ["$.cards: no item matches 'contains'"]
    card = old["cards"][0]
    assert set(schema_errors(card, SCHEMA["properties"]["cards"]["contains"])) == {
        "$.source.url: required",
        "$.extension.decision: 'DENY' not in ['CONSENT_PERMIT', 'CONSENT_DENY', 'NO_CONSENT']",
        "$.extension.obligations[0].id: required",
    }


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
    assert schema_errors(result, SCHEMA) == []
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
    approve_part2_form(anonymous)
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


def test_no_consent_in_force_for_another_actor_or_purpose(
    anonymous: TestClient, detox: RegisteredPartner
) -> None:
    """LEAP answers NO_CONSENT where nothing in force speaks to the question, not a denial."""
    other = consult(anonymous, detox, "Somebody Else")["cards"][0]
    assert (other["summary"], other["extension"]["decision"]) == ("NO_CONSENT", "NO_CONSENT")
    legal = consult(anonymous, detox, "Riverside Residential", purposes=("HLEGAL",))
    assert legal["cards"][0]["summary"] == "NO_CONSENT"


def _refusing_riverside(client: TestClient, **extra: Any) -> str:
    riverside = client.get("/fhir/Organization", params={"name": "Riverside Residential"})
    recipient = f"Organization/{riverside.json()['entry'][0]['resource']['id']}"
    person = client.get("/fhir/Patient", params={"identifier": f"{MRN}|MRN-CDS"})
    subject = f"Patient/{person.json()['entry'][0]['resource']['id']}"
    created = client.post(
        "/fhir/Consent", json=refusal(subject, recipient, **extra), headers=FHIR_JSON
    )
    assert created.status_code == 201, created.text
    return f"Consent/{created.json()['id']}"


def test_consent_deny_only_when_a_consent_refuses(
    client: TestClient, anonymous: TestClient, detox: RegisteredPartner
) -> None:
    """C8: the patient's later written refusal of Riverside turns the permit into a denial,
    and the card names the refusal to the program it binds."""
    assert consult(anonymous, detox, "Riverside Residential")["cards"][0]["summary"] == (
        "CONSENT_PERMIT"
    )
    created = _refusing_riverside(client, organization=[{"reference": detox.organization}])
    card = consult(anonymous, detox, "Riverside Residential")["cards"][0]
    assert (card["summary"], card["extension"]["decision"]) == ("CONSENT_DENY", "CONSENT_DENY")
    assert card["extension"]["basedOn"] == created


def test_a_refusal_the_caller_is_no_party_to_denies_without_its_id(
    client: TestClient, anonymous: TestClient, detox: RegisteredPartner
) -> None:
    """A consent naming no program is Part 2 data to each caller, no party to it: the denial
    counts, its id is not told (review 11 #2)."""
    _refusing_riverside(client)
    card = consult(anonymous, detox, "Riverside Residential")["cards"][0]
    assert (card["summary"], card["extension"]["decision"]) == ("CONSENT_DENY", "CONSENT_DENY")
    assert "basedOn" not in card["extension"]


def test_a_consult_is_logged_as_a_decision_not_a_disclosure(
    anonymous: TestClient, detox: RegisteredPartner, settings: Settings
) -> None:
    """Issue 10: CDS rows carry interaction cds-consult and stay out of the accounting (A2)."""
    consult(anonymous, detox, "Riverside Residential")
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(DisclosureLogRow).where(
                    col(DisclosureLogRow.requester) == detox.organization
                )
            ).all()
        )
    engine.dispose()
    [row] = rows
    assert (row.interaction, row.decision) == ("cds-consult", "permit")
    assert row.patient is not None
    report = accounting(row.patient, "Alex Testperson", rows, {}, row.recorded_at, row.recorded_at)
    assert report.with_consent == report.emergencies == ()


def test_patient_without_consents_has_no_consent(
    anonymous: TestClient, detox: RegisteredPartner
) -> None:
    card = consult(anonymous, detox, "Riverside Residential", mrn="MRN-NONE")["cards"][0]
    assert card["summary"] == "NO_CONSENT"
    assert card["extension"]["decision"] == "NO_CONSENT"


def sud_content(patient: str) -> dict[str, Any]:
    """A consult's content: a collection Bundle with one SUD-labelled Condition of `patient`."""
    condition = {
        "resourceType": "Condition",
        "meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]},
        "subject": {"reference": patient},
    }
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": condition}]}


def test_content_is_labelled_or_redacted(anonymous: TestClient, detox: RegisteredPartner) -> None:
    content = sud_content("Patient/x")
    content["entry"].append(
        {"resource": {"resourceType": "Organization", "name": "Not patient data"}}
    )
    permitted = consult(anonymous, detox, "Riverside Residential", content=content)["cards"][0]
    kept = permitted["extension"]["content"]["entry"]
    assert len(kept) == 2
    assert "42CFRPart2" in {c["code"] for c in kept[0]["resource"]["meta"]["security"]}
    denied = consult(anonymous, detox, "Somebody Else", content=content)["cards"][0]
    assert [e["resource"]["resourceType"] for e in denied["extension"]["content"]["entry"]] == [
        "Organization"
    ]
    redact = denied["extension"]["obligations"][0]
    assert redact["id"]["code"] == "REDACT"
    assert redact["parameters"]["codes"] == [{"system": ACT_CODE, "code": "SUD"}]


def test_callers_authenticate_like_any_partner(anonymous: TestClient) -> None:
    response = anonymous.post(
        "/cds-services/patient-consent-consult", json={"hook": "patient-consent-consult"}
    )
    assert response.status_code == 401


def test_storing_a_consent_says_why_it_cannot_be_relied_on(
    client: TestClient, anonymous: TestClient
) -> None:
    """C1: a draft missing §2.31 elements is stored, with the missing elements named."""
    approve_part2_form(anonymous)
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


def refusal(subject: str, recipient: str, **extra: Any) -> dict[str, Any]:
    """The patient's written refusal of any disclosure to `recipient` (C8)."""
    ircp = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": subject},
        "provision": {
            "type": "deny",
            "actor": [
                {
                    "role": {"coding": [{"system": ircp, "code": "IRCP"}]},
                    "reference": {"reference": recipient},
                }
            ],
        },
        **extra,
    }


def consult_rows(settings: Settings, caller: RegisteredPartner) -> list[tuple[Any, ...]]:
    """The caller's consult decisions on the log, as (patient, decision, rule, consent,
    resources), oldest first."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = session.exec(
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.requester) == caller.organization)
            .where(col(DisclosureLogRow.interaction) == "cds-consult")
            .order_by(col(DisclosureLogRow.seq))
        ).all()
        found = [(r.patient, r.decision, r.rule, r.consent, r.resources) for r in rows]
    engine.dispose()
    return found


def test_a_withheld_client_with_a_refusal_is_answered_for_as_nobody(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    """F6, §2.13(c), S3: a partner the detox unit's client is withheld from learns from the
    consult neither that the client exists nor that a refusal names a recipient, nor the
    refusal's id: the answer (and the log of the consult's decision) is the one for an MRN
    nobody registered. The program holding the record is still told of the refusal."""
    refused = make(
        acting_as(anonymous, world.detox_partner), refusal(world.client_ref, world.a.organization)
    )
    holder = consult(anonymous, world.detox_partner, "Riverside Residential", mrn="MRN-P2")
    assert holder["cards"][0]["summary"] == "CONSENT_DENY"
    assert holder["cards"][0]["extension"]["basedOn"] == f"Consent/{refused['id']}"
    assert anonymous.get(
        f"/fhir/{world.client_ref}", headers=as_(anonymous, world.b)
    ).status_code == (404)
    content = sud_content(world.client_ref)

    for asked in (None, content):
        before = len(consult_rows(settings, world.b))
        withheld = consult(anonymous, world.b, "Riverside Residential", mrn="MRN-P2", content=asked)
        about_withheld = consult_rows(settings, world.b)[before:]
        nobody = consult(anonymous, world.b, "Riverside Residential", mrn="NOBODY-1", content=asked)
        about_nobody = consult_rows(settings, world.b)[before + len(about_withheld) :]

        assert withheld == nobody
        assert withheld["cards"][0]["summary"] == "NO_CONSENT"
        assert refused["id"] not in json.dumps(withheld)
        # The gate's denial of the withheld Patient is logged as any denial; the consult's own
        # decision is logged as for a patient nobody registered.
        assert [r for r in about_withheld if r[4] != world.client_ref] == about_nobody


def test_a_strangers_patient_carrying_the_clients_mrn_changes_no_answer(
    anonymous: TestClient, world: World
) -> None:
    """Anyone may create a Patient carrying any MRN: the program holding the client is
    answered on the client it holds, not on a stranger's Patient with the same MRN and the
    stranger's refusal for it (whichever of the two ids sorts first)."""
    refused = make(
        acting_as(anonymous, world.detox_partner), refusal(world.client_ref, world.a.organization)
    )
    stranger = acting_as(anonymous, register_partner(anonymous, name="Westside Clinic"))
    for _ in range(3):
        shadow = make(stranger, patient(family="Shadow", mrn="MRN-P2"))
        make(stranger, refusal(f"Patient/{shadow['id']}", world.b.organization))
    for _ in range(3):
        held = consult(anonymous, world.detox_partner, "Riverside Residential", mrn="MRN-P2")
        assert held["cards"][0]["summary"] == "CONSENT_DENY"
        assert held["cards"][0]["extension"]["basedOn"] == f"Consent/{refused['id']}"
        other = consult(anonymous, world.detox_partner, "Unrelated Clinic", mrn="MRN-P2")
        assert other["cards"][0]["summary"] == "NO_CONSENT", other


def test_a_consent_the_caller_may_not_read_is_not_named(
    client: TestClient, anonymous: TestClient, detox: RegisteredPartner
) -> None:
    """S3: a refusal the caller may not read (SUD-labelled, so Part 2 data) still refuses
    (C8), but the card names it nowhere: no basedOn, no id in the detail."""
    riverside = client.get("/fhir/Organization", params={"name": "Riverside Residential"})
    recipient = f"Organization/{riverside.json()['entry'][0]['resource']['id']}"
    person = client.get("/fhir/Patient", params={"identifier": f"{MRN}|MRN-CDS"})
    subject = f"Patient/{person.json()['entry'][0]['resource']['id']}"
    labelled = refusal(subject, recipient, meta={"security": [{"system": ACT_CODE, "code": "SUD"}]})
    created = make(client, labelled)
    as_detox = {"Authorization": bearer(anonymous, detox, scope="system/Consent.rs")}
    assert anonymous.get(f"/fhir/Consent/{created['id']}", headers=as_detox).status_code == 404

    card = consult(anonymous, detox, "Riverside Residential")["cards"][0]

    assert card["summary"] == "CONSENT_DENY"
    assert "basedOn" not in card["extension"]
    assert created["id"] not in json.dumps(card)


A_CALL = {
    "hook": "patient-consent-consult",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {
        "patientId": [{"system": MRN, "value": "MRN-CDS"}],
        "actor": [{"system": PARTNER_SYSTEM, "value": "Riverside Residential"}],
        "purposeOfUse": ["TREAT"],
    },
}
AUTHORIZATION = {
    "access_token": "opaque",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "system/Patient.rs",
    "subject": "cds-service",
}


@pytest.mark.parametrize(
    ("changed", "detail"),
    [
        ({"hookInstance": None}, "hookInstance is required: a UUID naming this call"),
        ({"hookInstance": "call-7"}, "hookInstance is required: a UUID naming this call"),
        ({"hookInstance": 7}, "hookInstance is required: a UUID naming this call"),
        ({"hook": None}, "this service answers the patient-consent-consult hook"),
        ({"hook": "patient-view"}, "this service answers the patient-consent-consult hook"),
        ({"context": None}, "context is required: an object, the hook's context"),
        ({"context": ["TREAT"]}, "context is required: an object, the hook's context"),
        ({"fhirServer": "not a url"}, "fhirServer is the base URL of the client's FHIR server"),
        ({"fhirAuthorization": AUTHORIZATION}, "fhirAuthorization needs the fhirServer it is for"),
        (
            {
                "fhirServer": "https://ehr.example.org/fhir",
                "fhirAuthorization": {**AUTHORIZATION, "expires_in": "300"},
            },
            "fhirAuthorization.expires_in is required (int)",
        ),
        (
            {
                "fhirServer": "https://ehr.example.org/fhir",
                "fhirAuthorization": {**AUTHORIZATION, "token_type": "MAC"},
            },
            "fhirAuthorization.token_type is Bearer",
        ),
        ({"prefetch": []}, "prefetch is an object of the prefetched data by key"),
    ],
)
def test_a_call_missing_what_cds_hooks_requires_is_a_bad_request(
    anonymous: TestClient, detox: RegisteredPartner, changed: dict[str, Any], detail: str
) -> None:
    """CDS Hooks 2.0, "Calling a CDS Service": `hook`, `hookInstance` (a UUID) and `context`
    are required, `fhirServer` comes with `fhirAuthorization`, whose fields are required. A
    call without them was answered (200)."""
    call = {key: value for key, value in {**A_CALL, **changed}.items() if value is not None}
    answer = anonymous.post(
        "/cds-services/patient-consent-consult",
        json=call,
        headers={"Authorization": bearer(anonymous, detox, scope="system/Consent.rs")},
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == detail
    assert answer.json()["title"] == "Bad Request"


def test_a_call_with_every_field_the_spec_names_is_answered(
    anonymous: TestClient, detox: RegisteredPartner
) -> None:
    call = {
        **A_CALL,
        "fhirServer": "https://ehr.example.org/fhir",
        "fhirAuthorization": AUTHORIZATION,
        "prefetch": {"patient": None},
    }
    answer = anonymous.post(
        "/cds-services/patient-consent-consult",
        json=call,
        headers={"Authorization": bearer(anonymous, detox, scope="system/Consent.rs")},
    )
    assert answer.status_code == 200, answer.text
    assert schema_errors(answer.json(), SCHEMA) == []
