"""Whose consents the gate relies on: a consent the program holds (recorded by its own side, or
by a program the consent names as disclosing), never a permit a recipient wrote itself; a
refusal counts whoever recorded it (PART2.md C5, C8), and only a partner that may see the
patient records one at all."""

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from interop.services.staff import Role, StaffService
from tests.builders import care_plan, part2_consent
from tests.conftest import RegisteredPartner, register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def forger(anonymous: TestClient) -> RegisteredPartner:
    """A clinic that may write Consents (system/*.cruds) and wants the detox unit's records."""
    return register_partner(anonymous, name="Forging Clinic")


def served(anonymous: TestClient, world: World) -> RegisteredPartner:
    """A forging clinic the patient consents to for treatment: it may see the patient's
    records, and so record consents for the patient (PART2.md C5 decides which count)."""
    clinic = register_partner(anonymous, name="Treating Clinic")
    write(
        anonymous,
        world.detox_partner,
        part2_consent(world.client_ref, world.detox, clinic.organization),
    )
    return clinic


def paying(anonymous: TestClient, partner: RegisteredPartner) -> dict[str, str]:
    """The partner asking for payment, which no consent the program holds allows."""
    return as_(anonymous, partner, purposes=["HPAYMT"])


def write(anonymous: TestClient, author: RegisteredPartner, consent: dict[str, Any]) -> str:
    written = acting_as(anonymous, author).post("/fhir/Consent", json=consent, headers=FHIR_JSON)
    assert written.status_code == 201, written.text
    ident: str = written.json()["id"]
    return ident


def test_a_recipient_cannot_write_itself_a_consent(anonymous: TestClient, world: World) -> None:
    stranger = forger(anonymous)
    refused = acting_as(anonymous, stranger).post(
        "/fhir/Consent",
        json=part2_consent(world.client_ref, world.detox, stranger.organization),
        headers=FHIR_JSON,
    )
    assert refused.status_code == 422, "it may not see the patient: no consent of its own"
    read = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, stranger))
    assert read.status_code == 404
    assert "Partwo" not in read.text
    found = anonymous.get(
        "/fhir/CarePlan", params={"patient": world.client_ref}, headers=as_(anonymous, stranger)
    ).json()
    assert found["total"] == 0
    clinic = served(anonymous, world)
    wider = part2_consent(world.client_ref, world.detox, clinic.organization, purposes=("HPAYMT",))
    write(anonymous, clinic, wider)
    paid = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=paying(anonymous, clinic))
    assert paid.status_code == 404, "a permit it wrote itself grounds nothing"


def test_the_same_consent_recorded_by_the_disclosing_program_is_relied_on(
    anonymous: TestClient, world: World
) -> None:
    clinic = forger(anonymous)
    write(
        anonymous,
        world.detox_partner,
        part2_consent(world.client_ref, world.detox, clinic.organization),
    )
    read = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, clinic))
    assert read.status_code == 200, read.text
    assert read.json()["id"] == world.plan_id


def test_a_refusal_counts_whoever_recorded_it(anonymous: TestClient, world: World) -> None:
    """Partner A holds the patient's consent; a refusal recorded by anyone stops it (a written
    refusal works as a revocation in writing, C8)."""
    before = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
    assert before.status_code == 200
    refusal = part2_consent(world.client_ref, world.detox, world.a.organization)
    refusal["provision"]["provision"][0]["type"] = "deny"  # the nested permit, now a deny
    write(anonymous, served(anonymous, world), refusal)
    after = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
    assert after.status_code == 404


def test_naming_itself_beside_the_program_as_discloser_grounds_nothing(
    anonymous: TestClient, world: World
) -> None:
    """An outside program holds a consent only for its own records: a partner naming itself
    beside the detox unit in Consent.organization cannot release the unit's records."""
    clinic = served(anonymous, world)
    consent = part2_consent(
        world.client_ref, world.detox, clinic.organization, purposes=("HPAYMT",)
    )
    consent["organization"].append({"reference": clinic.organization})
    write(anonymous, clinic, consent)
    read = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=paying(anonymous, clinic))
    assert read.status_code == 404


def test_a_program_whose_staff_work_here_records_consents_for_itself_while_they_do(
    anonymous: TestClient, world: World
) -> None:
    """A consent naming several disclosing programs is the holder's record when the program
    recording it works here (a staff account of it); switching that account off ends it,
    without a restart: the kept directives follow who may record consents."""
    clinic = forger(anonymous)
    consent = part2_consent(world.client_ref, world.detox, clinic.organization)
    consent["organization"].append({"reference": world.b.organization})
    write(anonymous, world.detox_partner, consent)

    def status() -> int:
        read = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, clinic))
        return read.status_code

    assert status() == 404, "an outside program naming another beside itself holds nothing"
    staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    unit = world.detox.removeprefix("Organization/")
    staff.add("detox.manager", None, Role.CASE_MANAGER, (unit,), datetime.now(UTC))
    assert status() == 200
    staff.set_enabled("detox.manager", False)
    assert status() == 404


def test_the_answer_to_a_forged_permit_says_it_is_not_relied_on(
    anonymous: TestClient, world: World
) -> None:
    """The writer is told, as compliance staff are, why its permit grounds nothing (C5); the
    same consent recorded by the program that holds it draws no such warning."""

    def warnings(author: RegisteredPartner, consent: dict[str, Any]) -> list[str]:
        answered = acting_as(anonymous, author).post(
            "/fhir/Consent",
            json=consent,
            headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
        )
        assert answered.status_code == 201, answered.text
        return [
            issue["diagnostics"]
            for issue in answered.json()["issue"]
            if issue["severity"] == "warning"
        ]

    clinic = served(anonymous, world)
    consent = part2_consent(world.client_ref, world.detox, clinic.organization)
    forged = warnings(clinic, consent)
    assert any("recipient cannot record its own authorization" in w for w in forged), forged
    assert warnings(world.detox_partner, consent) == []


def test_only_the_consents_recorder_signs_it_into_force(
    anonymous: TestClient, world: World
) -> None:
    """A consent recorded without its signer (no Consent.performer) is signed by a Provenance
    targeting it (the R4 consent-signature pattern): counted when its recorder writes it,
    never when another partner does, who would be signing for the patient."""
    clinic = forger(anonymous)
    unsigned = part2_consent(world.client_ref, world.detox, clinic.organization)
    del unsigned["performer"]
    ident = write(anonymous, world.detox_partner, unsigned)
    signature = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Consent/{ident}"}],
        "recorded": "2026-01-05T10:00:00Z",
        "agent": [{"who": {"reference": world.client_ref}}],
        "signature": [
            {
                "type": [
                    {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.7"}
                ],
                "when": "2026-01-05T10:00:00Z",
                "who": {"reference": world.client_ref},
                "sigFormat": "application/pdf",
                "data": "JVBERi0xLjQK",
            }
        ],
    }

    def status() -> int:
        read = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, clinic))
        return read.status_code

    assert status() == 404, "unsigned: not relied on"
    forged = acting_as(anonymous, clinic).post(
        "/fhir/Provenance", json=signature, headers=FHIR_JSON
    )
    assert forged.status_code == 201, forged.text
    assert status() == 404, "a signature another partner records signs nothing"
    signed = acting_as(anonymous, world.detox_partner).post(
        "/fhir/Provenance", json=signature, headers=FHIR_JSON
    )
    assert signed.status_code == 201, signed.text
    assert status() == 200


def test_the_patients_name_counts_as_the_consents_trusted_writers_recorded_it(
    anonymous: TestClient, world: World
) -> None:
    """§2.31(a)(1) asks for the patient's name, read from the Patient the consent names. A
    consent whose Patient carries no name is not relied on. A partner adding the name to the
    Patient (the clinic, whose own consent lets it read the client's records) is refused, as
    it did not write the Patient, and completes nothing; the program that registered the
    patient does."""
    clinic = forger(anonymous)
    detox = acting_as(anonymous, world.detox_partner)
    nameless = make(
        detox,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.1", "value": "MRN-NL"}],
            "birthDate": "1990-04-12",
        },
    )
    reference = f"Patient/{nameless['id']}"
    plan = make(detox, care_plan(reference))
    write(
        anonymous, world.detox_partner, part2_consent(reference, world.detox, clinic.organization)
    )
    incomplete = part2_consent(reference, world.detox, world.a.organization)
    incomplete["patient"] = {"reference": reference}
    write(anonymous, world.detox_partner, incomplete)

    def status() -> int:
        read = anonymous.get(f"/fhir/CarePlan/{plan['id']}", headers=as_(anonymous, world.a))
        return read.status_code

    assert status() == 404, "no patient name: not relied on"
    named = {**nameless, "name": [{"family": "Nameless", "given": ["Robin"]}]}
    del named["meta"]
    forged = acting_as(anonymous, clinic).put(f"/fhir/{reference}", json=named, headers=FHIR_JSON)
    assert forged.status_code == 403, "a partner changes only records it wrote"
    assert status() == 404, "a name another partner records completes nothing"
    assert detox.put(f"/fhir/{reference}", json=named, headers=FHIR_JSON).status_code == 200
    assert status() == 200
