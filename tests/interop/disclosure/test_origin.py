"""PART2.md P1 on known origins: a record is Part 2 data because a Part 2 program wrote it,
which the service records from who asks, never from what the body says (issue 10, point 1)."""

from typing import Any

from fastapi.testclient import TestClient

from interop.services.compliance import attribute_operator_records
from interop.services.resources import internal_operations
from interop.services.search_parser import Paging
from interop.settings import Settings
from interop.store.database import make_engine, unit_of_work
from tests.builders import part2_consent, patient
from tests.conftest import register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make


def goal(patient_ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Buprenorphine continued without a gap across every handoff"},
        "subject": {"reference": patient_ref},
        **extra,
    }


def test_a_part2_programs_record_is_part2_data_whatever_its_elements_say(
    anonymous: TestClient, world: World
) -> None:
    """A Goal with no author, no labels and a meta.source naming someone else is still the
    detox unit's record: an unrelated partner learns nothing of it, or of the client."""
    detox = acting_as(anonymous, world.detox_partner)
    elsewhere = {"source": "http://clinic.example.org/fhir/Organization/other"}
    written = make(detox, goal(world.client_ref, meta=elsewhere))
    headers = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Goal/{written['id']}", headers=headers).status_code == 404
    searched = anonymous.get("/fhir/Goal", params={"patient": world.client_ref}, headers=headers)
    assert searched.json()["total"] == 0
    assert "Buprenorphine" not in searched.text
    assert anonymous.get(f"/fhir/{world.client_ref}", headers=headers).status_code == 404


def test_naming_a_part2_program_in_the_body_does_not_make_a_record_its(
    anonymous: TestClient, world: World
) -> None:
    """A clinic's Goal that names the detox unit as its author stays the clinic's record: the
    origin is who wrote it (not Part 2 data, so it follows ordinary HIPAA sharing, P1)."""
    clinic = acting_as(anonymous, register_partner(anonymous, name="Primary Care Clinic"))
    person = make(clinic, patient(family="Clinicpatient", mrn="MRN-CL"))
    written = make(
        clinic,
        goal(f"Patient/{person['id']}", expressedBy={"reference": world.detox}),
    )
    answer = anonymous.get(f"/fhir/Goal/{written['id']}", headers=as_(anonymous, world.b))
    assert answer.status_code == 200, answer.text
    assert "42CFRPart2" not in answer.text


def test_records_without_a_recorded_writer_are_withheld_until_attributed(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    """Seeded or migrated data carries the operator's origin, which the gate cannot vouch
    for (fail closed); once the operator names the (non Part 2) clinic that wrote it, it is
    that clinic's record."""
    clinic = register_partner(anonymous, name="Primary Care Clinic")
    engine = make_engine(settings.database_url, chain_key=settings.chain_key())
    seeded = {**patient(family="Seeded", mrn="MRN-SEED"), "id": "seeded-1"}
    with (
        unit_of_work(engine) as session,
        internal_operations(session, "test-seed", paging=Paging(1, 1)) as operations,
    ):
        operations.update("Patient", "seeded-1", seeded)
    headers = as_(anonymous, world.b)
    assert anonymous.get("/fhir/Patient/seeded-1", headers=headers).status_code == 404
    assert attribute_operator_records(engine, clinic.organization) >= 1
    engine.dispose()
    assert anonymous.get("/fhir/Patient/seeded-1", headers=headers).status_code == 200


def test_a_part2_consent_is_part2_data_whoever_recorded_it(
    anonymous: TestClient, world: World
) -> None:
    """A consent directive under 42 CFR Part 2 names its patient as a client of the programs it
    lets disclose (§2.13(c)): recorded by a system that is no Part 2 program (an operator's EHR
    registered without the flag), it still tells an unrelated partner nothing (probe 13 #1);
    the parties it names read it as before."""
    registered = register_partner(anonymous, name="Operator EHR", first_party=True)
    written = make(
        acting_as(anonymous, registered),
        part2_consent(world.client_ref, world.detox, world.a.organization),
    )
    headers = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Consent/{written['id']}", headers=headers).status_code == 404
    for params in ({"patient": world.client_ref}, {"_id": written["id"]}):
        searched = anonymous.get("/fhir/Consent", params=params, headers=headers)
        assert searched.status_code == 200, searched.text
        assert searched.json()["total"] == 0
        assert "Partwo" not in searched.text
        assert world.client_ref not in searched.text
    history = anonymous.get(f"/fhir/Consent/{written['id']}/_history", headers=headers)
    assert history.status_code == 404
    assert "Partwo" not in history.text
    named = anonymous.get(f"/fhir/Consent/{written['id']}", headers=as_(anonymous, world.a))
    assert named.status_code == 200, named.text  # the recipient it names acts under it
    assert named.json()["id"] == written["id"]


V3 = "http://terminology.hl7.org/CodeSystem/v3-"
IRCP = {"coding": [{"system": f"{V3}ParticipationType", "code": "IRCP"}]}


def _recorded_by_the_operator(anonymous: TestClient, consent: dict[str, Any]) -> str:
    registered = register_partner(anonymous, name="Operator EHR", first_party=True)
    written: str = make(acting_as(anonymous, registered), consent)["id"]
    return written


def test_a_party_a_consent_refuses_is_no_party_to_it(anonymous: TestClient, world: World) -> None:
    """Review 11 #1: an actor of a deny is refused, not a party: it learns nothing."""
    refusing = {"actor": [{"role": IRCP, "reference": {"reference": world.b.organization}}]}
    consent = part2_consent(
        world.client_ref, world.detox, world.a.organization, nested_deny=refusing
    )
    ident = _recorded_by_the_operator(anonymous, consent)
    answer = anonymous.get(f"/fhir/Consent/{ident}", headers=as_(anonymous, world.b))
    assert answer.status_code == 404
    assert "Partwo" not in answer.text


def test_any_consent_is_withheld_from_those_it_does_not_name(
    anonymous: TestClient, world: World
) -> None:
    """Review 11 #2: coded only as a privacy consent (LOINC 64292-6, no 42CFRPart2CD), it still
    names the detox unit as discloser, and the engine reads it as a directive all the same."""
    consent = part2_consent(world.client_ref, world.detox, world.a.organization)
    consent["category"] = consent["category"][:1]
    del consent["policyRule"]
    ident = _recorded_by_the_operator(anonymous, consent)
    assert (
        anonymous.get(f"/fhir/Consent/{ident}", headers=as_(anonymous, world.b)).status_code == 404
    )


def test_a_recipient_named_by_identifier_is_a_party(anonymous: TestClient, world: World) -> None:
    consent = part2_consent(world.client_ref, world.detox, world.a.organization)
    by_identifier = {
        "system": "urn:oid:2.16.840.1.113883.3.9999.10",
        "value": "Riverside Residential",
    }
    consent["provision"]["provision"][0]["actor"][0]["reference"] = {"identifier": by_identifier}
    ident = _recorded_by_the_operator(anonymous, consent)
    named = anonymous.get(f"/fhir/Consent/{ident}", headers=as_(anonymous, world.a))
    assert named.status_code == 200, named.text
    assert named.json()["id"] == ident
    assert (
        anonymous.get(f"/fhir/Consent/{ident}", headers=as_(anonymous, world.b)).status_code == 404
    )


def test_a_record_marked_no_redisclosure_without_consent_is_withheld_like_part2_data(
    anonymous: TestClient, world: World
) -> None:
    """Probe 15 #1: the ONC's DS4P Part 2 documents mark what they hold R and NORDSCLCD (no
    redisclosure without a consent directive), with no 42CFRPart2 code. A record so marked,
    from a sender that is no Part 2 program, reaches no one its patient's consent does not
    name; its writer still reads it (its own record)."""
    clinic = acting_as(anonymous, register_partner(anonymous, name="Sender Clinic"))
    marks = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NORDSCLCD"},
        ]
    }
    person = make(clinic, patient(family="Marked", mrn="MRN-MARK", meta=marks))
    written = make(clinic, goal(f"Patient/{person['id']}", meta=marks))
    for path in (f"/fhir/Goal/{written['id']}", f"/fhir/Patient/{person['id']}"):
        assert anonymous.get(path, headers=as_(anonymous, world.b)).status_code == 404
        assert clinic.get(path).status_code == 200
    searched = anonymous.get("/fhir/Goal", headers=as_(anonymous, world.b)).json()
    assert written["id"] not in str(searched)
