"""C-CDA documents from partners become records here, labelled and on the sender's behalf, or
are held for staff with their reason; nothing received is dropped (issue 12, item 4).

Documents come from our own writer (adapters.ccda.writer) and from ../shared/corpora/ccda;
the database is real (SQLite, and PostgreSQL when TEST_POSTGRES_URL names one)."""

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import Engine, select
from sqlmodel import col

from adapters.ccda import (
    Code,
    Identifier,
    LevelOfCareTransition,
    Organization,
    Recipient,
    write_document,
)
from interop.services import limits
from interop.services.ccda_intake import Channel, DocumentIntake, IntakeStatus, Sender
from interop.services.inbound import InboundService
from interop.services.partners import NewPartner, PartnerService
from interop.services.staff import Role, StaffService
from interop.store.database import unit_of_work
from interop.store.tables import ResourceRow, ResourceVersionRow
from mappings.terminology import LEVEL_OF_CARE
from tests.adapters.ccda.test_writer import (
    LEVELS,
    NPI,
    RXNORM,
    medication,
    part2,
    referral,
    transfer,
)
from tests.conftest import RegisteredPartner, bearer, corpus, register_partner
from tests.interop.auth.test_staff import PASSWORD, add_user, sign_in
from tests.keys import rsa_key

RECEIVER_NPI = "1992753883"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PART2_LABELS = {
    (CONFIDENTIALITY, "R"),
    (ACT_CODE, "SUD"),
    (ACT_CODE, "42CFRPart2"),
    (ACT_CODE, "NORDSCLCD"),
    (ACT_REASON, "TREAT"),
}
DROP_SCOPE = "system/ServiceRequest.c system/Task.c"
V3 = "urn:hl7-org:v3"


def receiving() -> Recipient:
    """The program here the documents are for (registered by `program` below)."""
    return Recipient(Organization(ids=(Identifier(NPI, RECEIVER_NPI),), names=("Northshore IOP",)))


def level(code: str) -> Code:
    """A level of care as our writer writes it (interop.services.exports)."""
    return Code(LEVELS, code, LEVEL_OF_CARE.display(code))


def transfer_summary(**changes: Any) -> bytes:
    moving = LevelOfCareTransition(level("3.5"), level("2.1"), "20240515", "20240401")
    return write_document(transfer(recipient=receiving(), transition=moving, **changes))


def referral_note(**changes: Any) -> bytes:
    return write_document(referral(recipient=receiving(), **changes))


@pytest.fixture
def engine(anonymous: TestClient) -> Engine:
    made: Engine = anonymous.app.state.partners._engine  # type: ignore[attr-defined]
    return made


@pytest.fixture
def intake(engine: Engine) -> DocumentIntake:
    return DocumentIntake(engine, lambda: datetime.now(UTC))


@pytest.fixture
def partner(anonymous: TestClient) -> RegisteredPartner:
    return register_partner(anonymous, scope=DROP_SCOPE, name="Harbor Recovery & Wellness")


@pytest.fixture
def sender(partner: RegisteredPartner) -> Sender:
    return Sender(partner.client_id, partner.organization)


@pytest.fixture
def program(client: TestClient) -> str:
    """Northshore IOP, the program here documents are sent to."""
    body = {
        "resourceType": "Organization",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": RECEIVER_NPI}],
        "name": "Northshore IOP",
    }
    response = client.post("/fhir/Organization", json=body)
    assert response.status_code == 201, response.text
    return f"Organization/{response.json()['id']}"


def stored(engine: Engine, resource_type: str) -> list[dict[str, Any]]:
    """Current resources of a type, as stored (read past the gate: this is the store's view)."""
    with unit_of_work(engine, writes=False) as session:
        rows = session.execute(
            select(ResourceRow).where(col(ResourceRow.resource_type) == resource_type)
        ).scalars()
        return [orjson.loads(row.content or b"{}") for row in rows]


def rxnorm(statement: dict[str, Any]) -> str:
    code: str = statement["medicationCodeableConcept"]["coding"][0]["code"]
    return code


def origins(engine: Engine, references: tuple[str, ...]) -> set[str]:
    """The origin of every stored version of these resources."""
    found = set()
    with unit_of_work(engine, writes=False) as session:
        for reference in references:
            kind, _, ident = reference.partition("/")
            rows = session.execute(
                select(ResourceVersionRow).where(
                    col(ResourceVersionRow.resource_type) == kind,
                    col(ResourceVersionRow.resource_id) == ident,
                )
            ).scalars()
            found |= {row.origin for row in rows}
    return found


def labels(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in resource.get("meta", {}).get("security", [])}


def one(engine: Engine, resource_type: str) -> dict[str, Any]:
    [resource] = stored(engine, resource_type)
    return resource


class TestReferralNote:
    def test_becomes_a_referral_owned_here_requested_by_the_sender(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        raw = referral_note(part2=part2())
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert receipt.status is IntakeStatus.PROCESSED, receipt
        order, fulfillment = one(engine, "ServiceRequest"), one(engine, "Task")
        assert order["requester"]["reference"] == sender.organization
        assert order["performer"][0]["reference"] == program
        assert order["code"]["coding"][0]["code"] == "3457005"  # Patient referral
        assert "IOP 3x weekly" in order["reasonCode"][0]["text"]
        assert fulfillment["status"] == "requested"
        assert fulfillment["focus"]["reference"] == f"ServiceRequest/{order['id']}"
        assert fulfillment["owner"]["reference"] == program
        assert fulfillment["requester"]["reference"] == sender.organization
        patient = one(engine, "Patient")
        assert patient["identifier"][0] == {
            "system": "urn:oid:2.16.840.1.113883.19.5.99999.1",
            "value": "MRN-42",
        }
        assert (patient["name"][0]["family"], patient["birthDate"]) == ("O'Neil", "1985-02-14")
        kept = one(engine, "DocumentReference")
        assert base64.b64decode(kept["content"][0]["attachment"]["data"]) == raw
        assert kept["type"]["coding"][0]["code"] == "57133-1"
        assert {"reference": f"DocumentReference/{kept['id']}"} in order["supportingInfo"]

    def test_its_part2_labels_are_on_everything_stored_and_the_sender_is_the_origin(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        receipt = intake.receive(referral_note(part2=part2()), sender, Channel.FILE)
        assert len(receipt.resources) == 4
        for kind in ("Patient", "DocumentReference", "ServiceRequest", "Task"):
            assert labels(one(engine, kind)) >= PART2_LABELS, kind
        assert origins(engine, receipt.resources) == {sender.organization}

    def test_a_section_label_reaches_everything_stored(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        """A normal document whose Medications section alone is very restricted (DS4P's
        section-level confidentialityCode): the labels of the whole are at least the section's."""
        root = etree.fromstring(referral_note())
        medications = f"{{{V3}}}code[@code='10160-0']"
        section = next(s for s in root.iter(f"{{{V3}}}section") if s.find(medications) is not None)
        marking = etree.Element(f"{{{V3}}}confidentialityCode")
        marking.set("code", "V")
        marking.set("codeSystem", "2.16.840.1.113883.5.25")
        text = section.find(f"{{{V3}}}text")
        assert text is not None
        text.addnext(marking)
        raw = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        assert intake.receive(raw, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        for kind in ("Patient", "DocumentReference", "ServiceRequest", "Task"):
            assert (CONFIDENTIALITY, "V") in labels(one(engine, kind)), kind

    def test_a_document_sent_again_writes_nothing_twice(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        raw = referral_note()
        first = intake.receive(raw, sender, Channel.FILE)
        again = intake.receive(raw, sender, Channel.DIRECTORY)
        assert (again.replayed, again.resources) == (True, first.resources)
        # the same document in other bytes (a new transmission) finds what it wrote
        other = intake.receive(raw.replace(b"<title>", b"<title>Re: "), sender, Channel.FILE)
        assert (other.status, other.replayed) == (IntakeStatus.PROCESSED, False)
        assert set(other.resources) == set(first.resources)
        for kind in ("Patient", "ServiceRequest", "Task", "DocumentReference"):
            assert len(stored(engine, kind)) == 1, kind

    def test_an_mrn_names_the_senders_patient_never_another_partys_client(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine, client: Any
    ) -> None:
        """A client here carries the MRN the document gives: the document is filed on a
        patient of the sender's own, so the client's chart gets nothing and the answer names
        no patient the sender could not see (§2.13(c))."""
        mrn = {"system": "urn:oid:2.16.840.1.113883.19.5.99999.1", "value": "MRN-42"}
        ours = {"resourceType": "Patient", "identifier": [mrn], "name": [{"family": "Rivers"}]}
        made = client.post("/fhir/Patient", json=ours)
        assert made.status_code == 201, made.text
        theirs = f"Patient/{made.json()['id']}"
        first = intake.receive(referral_note(), sender, Channel.FILE)
        assert first.status is IntakeStatus.PROCESSED, first
        [filed_on] = [ref for ref in first.resources if ref.startswith("Patient/")]
        assert filed_on != theirs
        assert one(engine, "Task")["for"]["reference"] == filed_on
        again = intake.receive(
            referral_note(id=Identifier("2.16.840.1.113883.19.5.99999.9", "doc-2")),
            sender,
            Channel.FILE,
        )
        assert filed_on in again.resources
        assert len(stored(engine, "Patient")) == 2

    def test_a_later_version_marked_part2_labels_the_referral_it_names(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        """Probe 8, M2 (P1): version 2 of a Referral Note (same setId) with DS4P markings
        labelled only its own DocumentReference; the Patient, order and Task stayed unmarked
        and readable to anyone. What it marks, the referral is marked as."""
        set_id = Identifier("2.16.840.1.113883.19.5.99999.19", "referral-set-1")
        first = referral_note(set_id=set_id, version_number=1)
        assert intake.receive(first, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        second = referral_note(
            id=Identifier("2.16.840.1.113883.19.5.99999.9", "referral-doc-2"),
            set_id=set_id,
            version_number=2,
            part2=part2(),
        )
        assert intake.receive(second, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        for resource_type in ("Patient", "ServiceRequest", "Task"):
            assert labels(one(engine, resource_type)) >= PART2_LABELS, resource_type

    def test_a_later_version_supersedes_the_earlier_document(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        """A reader of the client's documents finds one current version of the note, as of a
        Transfer Summary; the referral stays the one it started."""
        set_id = Identifier("2.16.840.1.113883.19.5.99999.19", "referral-set-2")
        first = referral_note(set_id=set_id, version_number=1)
        assert intake.receive(first, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        second = referral_note(
            id=Identifier("2.16.840.1.113883.19.5.99999.9", "referral-doc-3"),
            set_id=set_id,
            version_number=2,
            effective_time="202405021030-0400",
        )
        assert intake.receive(second, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        kept = sorted(d["status"] for d in stored(engine, "DocumentReference"))
        assert kept == ["current", "superseded"]
        assert len(stored(engine, "Task")) == 1


class TestTransferSummary:
    def test_starts_a_handoff_with_its_medications_to_reconcile(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        receipt = intake.receive(transfer_summary(part2=part2()), sender, Channel.FILE)
        assert receipt.status is IntakeStatus.PROCESSED, receipt
        order, handoff = one(engine, "ServiceRequest"), one(engine, "Task")
        kept = one(engine, "DocumentReference")
        assert order["code"]["coding"][0]["code"] == "4266003"
        assert order["orderDetail"][0]["coding"][0]["code"] == "2.1"
        assert order["occurrenceDateTime"] == "2024-05-15"
        assert order["performer"][0]["reference"] == program
        inputs = {i["type"]["coding"][0]["code"]: i for i in handoff["input"]}
        assert inputs["18761-7"]["valueReference"] == {
            "reference": f"DocumentReference/{kept['id']}"
        }
        assert inputs["from-level-of-care"]["valueCodeableConcept"]["coding"][0]["code"] == "3.5"
        statement = one(engine, "MedicationStatement")
        assert statement["status"] == "active"
        assert statement["medicationCodeableConcept"]["coding"][0] == {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "1010600",
            "display": "buprenorphine 8 MG / naloxone 2 MG Sublingual Film",  # probe 12 #6
        }
        assert statement["informationSource"]["reference"] == sender.organization
        assert statement["derivedFrom"] == [{"reference": f"DocumentReference/{kept['id']}"}]
        assert statement["dosage"][0]["text"] == "Dissolve one film under the tongue daily"
        assert labels(statement) >= PART2_LABELS
        assert origins(engine, receipt.resources) == {sender.organization}

    def test_a_new_version_replaces_the_medications_no_one_has_changed(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine,
        client: TestClient,
    ) -> None:  # fmt: skip
        """Version 2 of the summary (same setId, written later) supersedes version 1: its
        untouched medications go, one a case manager has reconciled stays, the new list is
        there to reconcile, and the handoff is still the one it started."""
        set_id = Identifier("2.16.840.1.113883.19.5.99999.19", "summary-set-1")
        bridge = replace(
            medication(),
            ids=(Identifier("2.16.840.1.113883.19.5.99999.3", "rx-2"),),
            product=Code(RXNORM, "197591", "diazepam 5 MG Oral Tablet"),
        )
        first = transfer_summary(
            set_id=set_id, version_number=1, medications=(medication(), bridge)
        )
        assert intake.receive(first, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        statements = {rxnorm(s): s for s in stored(engine, "MedicationStatement")}
        reconciled = {**statements["197591"], "status": "stopped"}
        changed = client.put(f"/fhir/MedicationStatement/{reconciled['id']}", json=reconciled)
        assert changed.status_code == 200, changed.text

        second = transfer_summary(
            id=Identifier("2.16.840.1.113883.19.5.99999.9", "doc-2"),
            set_id=set_id,
            version_number=2,
            effective_time="202405021030-0400",
            medications=(
                replace(
                    medication(),
                    ids=(Identifier("2.16.840.1.113883.19.5.99999.3", "rx-3"),),
                    product=Code(RXNORM, "1666383", "naloxone 4 MG/ACTUAT Nasal Spray"),
                ),
            ),
        )
        assert intake.receive(second, sender, Channel.FILE).status is IntakeStatus.PROCESSED
        kept = {d["id"]: d["status"] for d in stored(engine, "DocumentReference")}
        assert sorted(kept.values()) == ["current", "superseded"]
        left = {rxnorm(s): s["status"] for s in stored(engine, "MedicationStatement") if s}
        assert left == {"197591": "stopped", "1666383": "active"}
        [handoff] = stored(engine, "Task")
        [current] = [ident for ident, status in kept.items() if status == "current"]
        [old] = [ident for ident, status in kept.items() if status == "superseded"]
        named = [
            i["valueReference"]["reference"] for i in handoff["input"] if "valueReference" in i
        ]
        assert named == [f"DocumentReference/{current}"]
        [document] = [d for d in stored(engine, "DocumentReference") if d["id"] == current]
        assert document["relatesTo"] == [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{old}"}}
        ]

    def test_the_programs_case_managers_work_the_received_handoff(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine,
        anonymous: TestClient,
    ) -> None:  # fmt: skip
        """The program the summary is for runs this service (its EHR is registered first
        party): its case managers read the handoff in the case API as its EHR reads the FHIR
        resources, since use among a program's personnel is no disclosure (§2.12(c)(3)). The
        episode left and the consent are the sender's: the handoff names neither."""
        partners: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        own = partners.register(
            NewPartner("Northshore EHR", [(NPI_SYSTEM, RECEIVER_NPI)], "system/*.cruds",
                       jwks=rsa_key().jwks(), first_party=True)
        )  # fmt: skip
        assert own.organization == program
        receipt = intake.receive(transfer_summary(part2=part2()), sender, Channel.FILE)
        assert receipt.status is IntakeStatus.PROCESSED, receipt
        task = one(engine, "Task")
        staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
        unit = program.removeprefix("Organization/")
        staff.add("nia.northshore", PASSWORD, Role.CASE_MANAGER, (unit,), datetime.now(UTC))
        assert sign_in(anonymous, "nia.northshore").status_code == 200
        read = anonymous.get(f"/cases/handoffs/{task['id']}")
        assert read.status_code == 200, read.text
        handoff = read.json()["value"]
        assert (handoff["from_level"], handoff["to_level"]) == ("3.5", "2.1")
        assert handoff["to_program_id"] == unit
        assert (handoff["from_episode_id"], handoff["consent"]) == (None, None)
        assert handoff["transfer_summary"] == one(engine, "DocumentReference")["id"]

    def test_the_hl7_example_keeps_its_medications_with_unknown_status(
        self, intake: DocumentIntake, sender: Sender, client: TestClient, engine: Engine
    ) -> None:
        raw = (corpus("ccda", "hl7-examples") / "Transfer_Summary.xml").read_bytes()
        client.post(
            "/fhir/Organization",
            json={"resourceType": "Organization", "name": "The DoctorsApart Physician Group"},
        )
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert receipt.status is IntakeStatus.PROCESSED, receipt
        statements = stored(engine, "MedicationStatement")
        assert len(statements) == 2
        assert {s["status"] for s in statements} <= {"active", "unknown", "not-taken"}
        assert all(s["subject"] == one(engine, "ServiceRequest")["subject"] for s in statements)
        patient = one(engine, "Patient")
        assert patient["name"][0]["given"][0] == "Eve"

    def test_a_transfer_summary_sharing_a_referral_notes_set_id_starts_its_own_handoff(
        self, intake: DocumentIntake, sender: Sender, client: TestClient, engine: Engine
    ) -> None:
        """Probe 12 #2: HL7's example Referral Note and Transfer Summary carry the same setId;
        the summary was answered "processed" but landed on the referral (no handoff for its
        recipient, no transfer summary input) and superseded the note."""
        examples = corpus("ccda", "hl7-examples")
        organizations = {}
        for name in ("Community Health and Hospitals", "The DoctorsApart Physician Group"):
            made = client.post(
                "/fhir/Organization", json={"resourceType": "Organization", "name": name}
            )
            organizations[name] = made.json()["id"]
        for example in ("Referral_Note.xml", "Transfer_Summary.xml"):
            receipt = intake.receive((examples / example).read_bytes(), sender, Channel.FILE)
            assert receipt.status is IntakeStatus.PROCESSED, receipt
        owners = {t["owner"]["reference"]: t for t in stored(engine, "Task")}
        assert owners.keys() == {f"Organization/{i}" for i in organizations.values()}
        handoff = owners[f"Organization/{organizations['The DoctorsApart Physician Group']}"]
        assert any(
            i.get("valueReference", {}).get("reference", "").startswith("DocumentReference/")
            for i in handoff.get("input", [])
        ), handoff
        assert len(stored(engine, "ServiceRequest")) == 2
        assert {d["status"] for d in stored(engine, "DocumentReference")} == {"current"}


class TestHeld:
    def test_a_document_whose_patient_the_sender_holds_twice_is_held_not_filed_anew(
        self, anonymous: TestClient, client: TestClient, intake: DocumentIntake, engine: Engine
    ) -> None:
        """Probe 12 #3: a sender holding two Patients carrying the document's SSN got a third
        with each document, and every later one another: the client's referral, documents
        and medications split over ever more records. Staff choose instead."""
        partner = register_partner(anonymous, scope="system/*.cruds", name="Two Charts Clinic")
        writer = TestClient(anonymous.app)
        writer.headers["Authorization"] = bearer(anonymous, partner)
        ssn = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "444222222"}
        for family in ("Betterhalf", "Better-Half"):
            body = {"resourceType": "Patient", "identifier": [ssn], "name": [{"family": family}]}
            assert writer.post("/fhir/Patient", json=body).status_code == 201
        client.post(
            "/fhir/Organization",
            json={"resourceType": "Organization", "name": "Community Health and Hospitals"},
        )
        raw = (corpus("ccda", "hl7-examples") / "Referral_Note.xml").read_bytes()
        sender = Sender(partner.client_id, partner.organization)
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert receipt.status is IntakeStatus.HELD, receipt
        assert "which one is meant cannot be told" in receipt.held_for
        assert "444222222" not in receipt.held_for
        assert len(stored(engine, "Patient")) == 2
        assert stored(engine, "Task") == []

    def test_a_document_for_no_program_here_is_held_then_taken_once_fixed(
        self, intake: DocumentIntake, sender: Sender, client: TestClient, engine: Engine
    ) -> None:
        raw = (corpus("ccda", "onc-testdata") / "b1_toc_amb_rn_r21_sample1_v13.xml").read_bytes()
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert receipt.status is IntakeStatus.HELD
        assert receipt.reason == "the document could not be applied; it is held for staff to review"
        [held] = [h for h in DocumentIntakeView(engine).held() if h.pk == receipt.inbound_id]
        assert (held.channel, held.sender, held.message_type) == (
            "ccda-file",
            sender.client_id,
            "C-CDA referral-note",
        )
        assert "names no program here" in held.problems[0]
        assert stored(engine, "ServiceRequest") == []
        client.post(
            "/fhir/Organization",
            json={"resourceType": "Organization", "name": "Neighborhood Physicians Practice"},
        )
        again = intake.receive(raw, sender, Channel.FILE)  # a held file may be imported again
        assert again.status is IntakeStatus.PROCESSED
        assert one(engine, "Patient")["name"][0]["family"] == "Banks"

    @pytest.mark.parametrize(
        ("path", "reason"),
        [
            ("negative/NT_BadXml_r11_v2.xml", "not well-formed XML (at line 59, column 4)"),
            ("negative/GetRealHealth_Larson_BAD_ENCODING.xml", "invalid in its character"),
            ("ds4p/b8_ds4p_amb_sample1_v8.xml", "a CCD is not taken here"),
            ("hl7-examples/Care_Plan.xml", "a care-plan document is not taken here"),
            ("fragments/Care_Plan_Goals_and_Instructions.xml", "not an HL7 v3 ClinicalDocument"),
            (  # probe 12 #8: "found 'ClinicalDocument' in none"
                "fragments/Intervention_Planned_Referral_and_Note.xml",
                "found 'ClinicalDocument' in no namespace, expected ClinicalDocument in "
                "namespace 'urn:hl7-org:v3'",
            ),
            (  # probe 12 #8: "a other document"
                "hl7-examples/Discharge_Summary.xml",
                "a document of another kind (no Referral Note or Transfer Summary templateId)",
            ),
        ],
    )
    def test_what_is_no_referral_note_or_transfer_summary_is_refused_and_held(
        self, intake: DocumentIntake, sender: Sender, engine: Engine, path: str, reason: str
    ) -> None:
        raw = (corpus("ccda") / path).read_bytes()
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert receipt.status is IntakeStatus.REFUSED
        assert reason in receipt.reason
        [held] = DocumentIntakeView(engine).held()
        assert (held.pk, held.ack_code, held.problems) == (
            receipt.inbound_id,
            "AR",
            [receipt.reason],
        )
        assert stored(engine, "DocumentReference") == []

    def test_a_document_without_a_patient_is_refused(
        self, intake: DocumentIntake, sender: Sender, program: str
    ) -> None:
        root = etree.fromstring(referral_note())
        target = root.find(f"{{{V3}}}recordTarget")
        assert target is not None
        root.remove(target)
        raw = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        receipt = intake.receive(raw, sender, Channel.FILE)
        assert (receipt.status, receipt.reason) == (
            IntakeStatus.REFUSED,
            "the document names no patient (recordTarget/patientRole)",
        )

    def test_a_document_with_more_entries_than_one_write_takes_is_refused(
        self, intake: DocumentIntake, sender: Sender, program: str, engine: Engine
    ) -> None:
        """Probe 7, H2: a Transfer Summary of 23,000 medications was written in one
        transaction, holding the write lock for half a minute while everyone else waited."""
        many = tuple(
            replace(medication(), ids=(Identifier("2.16.840.1.113883.19.5.99999.3", f"rx-{n}"),))
            for n in range(limits.MAX_BUNDLE_ENTRIES + 1)
        )
        receipt = intake.receive(transfer_summary(medications=many), sender, Channel.FILE)
        assert receipt.status is IntakeStatus.REFUSED
        assert f"at most {limits.MAX_BUNDLE_ENTRIES} are taken from one document" in receipt.reason
        assert stored(engine, "MedicationStatement") == []
        [held] = DocumentIntakeView(engine).held()
        assert held.ack_code == "AR"

    def test_staff_see_held_documents_beside_held_messages(
        self, intake: DocumentIntake, sender: Sender, anonymous: TestClient
    ) -> None:
        intake.receive(b"<not-closed>", sender, Channel.DIRECTORY)
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        sign_in(anonymous, "casey.manager")
        [held] = anonymous.get("/inbound/held").json()
        assert (held["channel"], held["message_type"], held["ack_code"]) == (
            "ccda-directory",
            "C-CDA",
            "AR",
        )
        assert held["problems"][0].startswith("the document is not well-formed XML")


class DocumentIntakeView:
    """Staff's list of what is held (interop.services.inbound, shared with HL7 v2)."""

    def __init__(self, engine: Engine) -> None:
        self._inbound = InboundService(engine, lambda: datetime.now(UTC))

    def held(self) -> list[Any]:
        return list(self._inbound.held())


class TestDrop:
    """POST /inbound/ccda through the app (ASGI); tests/e2e/test_ccda_inbound.py does it
    against a real server process."""

    def token(self, anonymous: TestClient, partner: RegisteredPartner) -> dict[str, str]:
        return {"Authorization": bearer(anonymous, partner, DROP_SCOPE)}

    def test_a_drop_is_processed_once_under_its_idempotency_key(
        self,
        anonymous: TestClient,
        partner: RegisteredPartner,
        program: str,
        engine: Engine,
    ) -> None:
        headers = {
            **self.token(anonymous, partner),
            "Content-Type": "application/xml",
            "Idempotency-Key": '"referral-note-doc-1.xml"',
        }
        raw = referral_note(part2=part2())
        first = anonymous.post("/inbound/ccda", content=raw, headers=headers)
        assert first.status_code == 201, first.text
        kept = one(engine, "DocumentReference")
        assert first.headers["location"] == f"/fhir/DocumentReference/{kept['id']}"
        assert first.json()["status"] == "processed"
        retried = anonymous.post("/inbound/ccda", content=raw, headers=headers)
        assert (retried.status_code, retried.json()) == (201, first.json())
        assert retried.headers["idempotent-replayed"] == "true"
        other = anonymous.post("/inbound/ccda", content=transfer_summary(), headers=headers)
        assert other.status_code == 422
        assert "Idempotency-Key was used for another document" in other.json()["detail"]
        assert len(stored(engine, "Task")) == 1
        assert origins(engine, tuple(first.json()["resources"])) == {partner.organization}
        unkeyed = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
        resent = anonymous.post("/inbound/ccda", content=raw, headers=unkeyed)
        assert "idempotent-replayed" not in resent.headers  # probe 11 L7: no key was replayed
        assert len(stored(engine, "Task")) == 1

    def test_a_retry_racing_its_original_is_processed_once(
        self,
        anonymous: TestClient,
        partner: RegisteredPartner,
        program: str,
        engine: Engine,
    ) -> None:
        """A HISP retrying before the first answer came back: both arrive at once."""
        headers = {
            **self.token(anonymous, partner),
            "Content-Type": "application/xml",
            "Idempotency-Key": '"referral-note-doc-2.xml"',
        }
        raw = referral_note(part2=part2())

        def drop(_: int) -> tuple[int, str]:
            answer = anonymous.post("/inbound/ccda", content=raw, headers=headers)
            return answer.status_code, answer.headers.get("location", "")

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = set(pool.map(drop, range(4)))
        assert len(answers) == 1, answers
        assert next(iter(answers))[0] == 201
        assert len(stored(engine, "Task")) == 1
        assert len(stored(engine, "DocumentReference")) == 1

    @pytest.mark.parametrize(
        ("document", "status"),
        [
            (lambda: referral_note(), 202),  # no program here: held
            (lambda: b"<ClinicalDocument", 422),  # not XML: refused
        ],
        ids=["held", "refused"],
    )
    def test_a_retry_racing_its_original_is_held_once(
        self,
        anonymous: TestClient,
        partner: RegisteredPartner,
        engine: Engine,
        document: Any,
        status: int,
    ) -> None:
        """What cannot be processed is held once per Idempotency-Key, however many copies of
        the drop arrive at once: staff review one document, and each retry is told of it."""
        token, raw = self.token(anonymous, partner), document()

        def drop(key: str) -> tuple[int, int]:
            headers = {**token, "Content-Type": "application/xml", "Idempotency-Key": key}
            answer = anonymous.post("/inbound/ccda", content=raw, headers=headers)
            return answer.status_code, answer.json()["inbound_id"]

        keys = [f'"racing-{status}-{n}.xml"' for n in range(5)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = {key: set(pool.map(drop, [key] * 4)) for key in keys}
        held = DocumentIntakeView(engine).held()
        assert sorted(h.pk for h in held) == sorted(
            inbound for answered in answers.values() for _status, inbound in answered
        )
        assert all(len(answered) == 1 for answered in answers.values()), answers
        assert {status} == {code for answered in answers.values() for code, _inbound in answered}

    def test_a_refused_drop_is_a_problem_detail_and_held(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        headers = {**self.token(anonymous, partner), "Content-Type": "text/xml"}
        raw = (corpus("ccda", "negative") / "NT_BadXml_r11_v2.xml").read_bytes()
        answer = anonymous.post("/inbound/ccda", content=raw, headers=headers)
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == 422
        assert problem["detail"].startswith("the document is not well-formed XML")
        assert isinstance(problem["inbound_id"], int)

    def test_a_drop_for_no_program_here_is_held_without_saying_why(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        headers = {**self.token(anonymous, partner), "Content-Type": "application/xml"}
        answer = anonymous.post("/inbound/ccda", content=referral_note(), headers=headers)
        assert answer.status_code == 202
        assert answer.json()["detail"] == (
            "the document could not be applied; it is held for staff to review"
        )

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({"Content-Type": "application/json"}, 415),
            ({"Content-Type": "application/xml", "Idempotency-Key": '""'}, 400),
        ],
    )
    def test_what_is_not_a_drop_is_answered_before_anything_is_kept(
        self,
        anonymous: TestClient,
        partner: RegisteredPartner,
        engine: Engine,
        headers: dict[str, str],
        status: int,
    ) -> None:
        sent = {**self.token(anonymous, partner), **headers}
        answer = anonymous.post("/inbound/ccda", content=referral_note(), headers=sent)
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert DocumentIntakeView(engine).held() == []

    def test_a_drop_needs_a_partner_token_that_may_create_referrals(
        self, anonymous: TestClient
    ) -> None:
        reader = register_partner(anonymous, scope="system/*.rs", name="Reader Clinic")
        headers = {"Content-Type": "application/xml"}
        unauthenticated = anonymous.post("/inbound/ccda", content=b"<x/>", headers=headers)
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == "application/problem+json"
        headers["Authorization"] = bearer(anonymous, reader, "system/*.rs")
        refused = anonymous.post("/inbound/ccda", content=b"<x/>", headers=headers)
        assert refused.status_code == 403
        assert "'c' on ServiceRequest" in refused.json()["detail"]
