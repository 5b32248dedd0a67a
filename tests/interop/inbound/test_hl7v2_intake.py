"""HL7 v2 referrals and discharges become FHIR records; nothing received is dropped (issue 6)."""

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.hl7v2 import PART2_NOTE_TYPE, frame, serve_mllp, write_referral
from consent import NOTICE_SHORT
from consent.vocabulary import ACT_CODE, CONFIDENTIALITY
from interop.services.inbound import InboundService, authority_system, referral_namespace
from interop.services.resources import internal_operations
from interop.services.search_parser import Paging
from interop.services.staff import Role
from interop.store.database import make_engine, unit_of_work
from interop.store.migrate import upgrade
from mappings.terminology import BUSINESS_STATUS
from tests.adapters.hl7v2 import INCOMING_ACK, REFERRAL_SEGMENTS, message, segment
from tests.adapters.hl7v2.test_outbound import MARKING, envelope, referral
from tests.builders import organization
from tests.conftest import corpus
from tests.interop.auth.test_staff import add_user, sign_in

FHIR_JSON = {"Content-Type": "application/fhir+json"}
NPI = "http://hl7.org/fhir/sid/us-npi"


def msa(ack: bytes) -> str:
    line = next(line for line in ack.split(b"\r") if line.startswith(b"MSA"))
    return line.split(b"|")[1].decode()


@pytest.fixture
def inbound(anonymous: TestClient) -> InboundService:
    engine = anonymous.app.state.partners._engine  # type: ignore[attr-defined]
    return InboundService(engine, lambda: datetime.now(UTC))


RADIANT = "RADIANT HEALTH HOSPITAL"
"""The program REF-I12-01.hl7 refers to (its PRD RT names it in PRD-10)."""


@pytest.fixture
def radiant(client: TestClient) -> str:
    """The corpus referral's program, one of ours here: its Organization id."""
    created = client.post("/fhir/Organization", json=organization(RADIANT), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    ident: str = created.json()["id"]
    return ident


def program_with_npi(client: TestClient, name: str, npi: str) -> dict[str, Any]:
    """A program here known by its NPI (as a REF^I12's PRD RT may name it)."""
    body = {**organization(name), "identifier": [{"system": NPI, "value": npi}]}
    created = client.post("/fhir/Organization", json=body, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    stored: dict[str, Any] = created.json()
    return stored


def total(client: TestClient, resource_type: str, **params: str) -> int:
    count: int = client.get(
        f"/fhir/{resource_type}", params={**params, "_summary": "count"}
    ).json()["total"]
    return count


def test_a_referral_becomes_a_service_request_and_its_task(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
    assert msa(*inbound.receive(raw, "mllp")) == "AA"
    referrals = client.get("/fhir/ServiceRequest").json()["entry"]
    assert len(referrals) == 1
    referral = referrals[0]["resource"]
    placer = referral["identifier"][0]
    assert (placer["system"], placer["value"]) == (
        "urn:recovery-interop:hl7v2:referral:EPIC",
        "226839",
    )
    assert placer["type"]["coding"][0]["code"] == "PLAC"
    tasks = client.get("/fhir/Task", params={"focus": f"ServiceRequest/{referral['id']}"}).json()
    assert tasks["total"] == 1
    fulfillment = tasks["entry"][0]["resource"]
    assert fulfillment["status"] == "requested"
    assert fulfillment["code"]["coding"][0]["code"] == "fulfill"
    patient = client.get(f"/fhir/{referral['subject']['reference']}").json()
    assert patient["birthDate"] == "1961-06-15"


def test_a_referral_names_the_referrers_patient_never_another_partys_client(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    """A client here carries PID-3's number: the referral is filed on a patient of the
    referrer's own, and the client's chart gets nothing (an MRN is only as good as who
    assigned it)."""
    number = {"system": authority_system("ADT1"), "value": "PATID1234"}
    ours = {"resourceType": "Patient", "identifier": [number], "name": [{"family": "Rivers"}]}
    made = client.post("/fhir/Patient", json=ours, headers=FHIR_JSON)
    assert made.status_code == 201, made.text
    raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
    assert msa(*inbound.receive(raw, "mllp")) == "AA"
    [referral] = [e["resource"] for e in client.get("/fhir/ServiceRequest").json()["entry"]]
    assert referral["subject"]["reference"] != f"Patient/{made.json()['id']}"
    assert total(client, "Task", patient=f"Patient/{made.json()['id']}") == 0
    referred = client.get(f"/fhir/{referral['subject']['reference']}").json()
    assert number in referred["identifier"]


def test_another_referrer_reusing_an_rf1_6_has_a_referral_of_its_own(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    """RF1-6 is unique within its referrer only ("226839^EPIC" could be any Epic hospital's):
    another referrer's REF^I12 with it is a referral of its own, and its REF^I14 cancels that
    one, never the first referrer's."""
    folder = corpus("hl7v2")
    assert msa(*inbound.receive((folder / "REF-I12-01.hl7").read_bytes(), "mllp")) == "AA"
    [first] = [e["resource"] for e in client.get("/fhir/ServiceRequest").json()["entry"]]

    def from_mallory(name: str) -> bytes:
        raw = (folder / name).read_bytes().replace(b"|GOOD HEALTH HOSPITAL|", b"|MALLORY CLINIC|")
        return raw.replace(b"PATID1234", b"PATID9999")

    assert msa(*inbound.receive(from_mallory("REF-I12-01.hl7"), "mllp")) == "AA"
    assert msa(*inbound.receive(from_mallory("REF-I14-01.hl7"), "mllp")) == "AA"
    orders = {
        e["resource"]["id"]: e["resource"]
        for e in client.get("/fhir/ServiceRequest").json()["entry"]
    }
    assert len(orders) == 2
    assert (orders[first["id"]]["subject"], orders[first["id"]]["requester"]) == (
        first["subject"],
        first["requester"],
    )
    tasks = {
        e["resource"]["focus"]["reference"]: e["resource"]["status"]
        for e in client.get("/fhir/Task", params={"code": "fulfill"}).json()["entry"]
    }
    assert tasks.pop(f"ServiceRequest/{first['id']}") == "requested"
    assert list(tasks.values()) == ["cancelled"]


def test_a_resent_referral_without_its_marking_keeps_its_labels(
    inbound: InboundService, client: TestClient
) -> None:
    """A resend updates the order: what it is labelled as it keeps (a label is never taken
    away by the sender's next message)."""
    program_with_npi(client, "Northside Clinic", "9876543210")  # whom `referral()` refers to
    assert (
        msa(*inbound.receive(write_referral(referral(part2=MARKING), envelope()), "mllp")) == "AA"
    )
    assert msa(*inbound.receive(write_referral(referral(), envelope("OUT-0002")), "mllp")) == "AA"
    [order] = client.get("/fhir/ServiceRequest").json()["entry"]
    codes = {label["code"] for label in order["resource"]["meta"]["security"]}
    assert {"R", "42CFRPart2"} <= codes


def test_a_referral_resent_marked_labels_what_it_named_unmarked(
    inbound: InboundService, client: TestClient
) -> None:
    """Probe 8, M2 (P1): a referral first sent unmarked, then resent marked Part 2, labelled
    only the order; its Task and Patient stayed readable to anyone. The resend labels all
    three, and the Task keeps its workflow state."""
    program_with_npi(client, "Northside Clinic", "9876543210")  # whom `referral()` refers to
    assert msa(*inbound.receive(write_referral(referral(), envelope()), "mllp")) == "AA"
    [task] = client.get("/fhir/Task").json()["entry"]
    accepted = {**task["resource"], "status": "accepted"}
    moved = client.put(f"/fhir/Task/{accepted['id']}", json=accepted)
    assert moved.status_code == 200, moved.text
    resent = write_referral(referral(part2=MARKING), envelope("OUT-0002"))
    assert msa(*inbound.receive(resent, "mllp")) == "AA"
    for kind in ("Patient", "ServiceRequest", "Task"):
        [entry] = client.get(f"/fhir/{kind}").json()["entry"]
        codes = {label["code"] for label in entry["resource"]["meta"].get("security", [])}
        assert {"R", "42CFRPart2"} <= codes, kind
    [task] = client.get("/fhir/Task").json()["entry"]
    assert task["resource"]["status"] == "accepted"


def test_a_resent_referral_updates_instead_of_doubling(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
    inbound.receive(raw, "mllp")
    inbound.receive(raw, "mllp")
    assert (total(client, "ServiceRequest"), total(client, "Patient", identifier="PATID1234")) == (
        1,
        1,
    )
    referral = client.get("/fhir/ServiceRequest").json()["entry"][0]["resource"]
    assert referral["meta"]["versionId"] == "2"


def test_a_discharge_starts_a_handoff_for_the_case_manager(
    inbound: InboundService, client: TestClient
) -> None:
    raw = (corpus("hl7v2") / "ADT-A03-01.hl7").read_bytes()
    assert msa(*inbound.receive(raw, "mllp")) == "AA"
    actions = client.get("/fhir/Task", params={"status": "requested"}).json()["entry"]
    titles = [a["resource"]["code"]["text"] for a in actions]
    assert titles == ["Plan the handoff after discharge from HOMERTON UNIVER"]


def test_a_malformed_message_is_refused_and_held_for_staff(
    inbound: InboundService, client: TestClient
) -> None:
    raw = (corpus("hl7v2") / "python-hl7_sample_bad_file.hl7").read_bytes()
    acks = inbound.receive_file(raw)
    assert [msa(ack) for ack in acks] == ["AR"]
    held = inbound.held()
    assert len(held) == 1
    assert "EVN" in held[0].problems[0]
    assert total(client, "ServiceRequest") == 0


def test_an_unsupported_message_type_is_held_with_its_reason(inbound: InboundService) -> None:
    raw = (corpus("hl7v2") / "MDM-T02-01.hl7").read_bytes()
    [ack] = inbound.receive(raw, "mllp")
    assert msa(ack) == "AR"
    assert b"(REF\\S\\I12, REF\\S\\I14" in ack  # the reason, escaped as ER7 text must be
    assert inbound.held()[0].message_type == "MDM^T02"


def test_lf_separated_messages_are_read_as_their_segments(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    raw = (
        (corpus("hl7v2") / "REF-I12-01.hl7")
        .read_bytes()
        .replace(b"\r\n", b"\n")
        .replace(b"\r", b"\n")
    )
    assert msa(*inbound.receive(raw, "file")) == "AA"
    assert total(client, "ServiceRequest") == 1


def test_staff_see_held_messages(inbound: InboundService, anonymous: TestClient) -> None:
    inbound.receive((corpus("hl7v2") / "MDM-T02-01.hl7").read_bytes(), "mllp")
    add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
    sign_in(anonymous, "casey.manager")
    held = anonymous.get("/inbound/held").json()
    assert [(m["message_type"], m["ack_code"]) for m in held] == [("MDM^T02", "AR")]
    assert "200" in held[0]["problems"][0]


class TestCancellation:
    """REF^I14 withdraws a referral received as REF^I12 (matched by RF1-6), as the
    requester's move of the referral workflow."""

    def test_the_corpus_cancellation_cancels_the_corpus_referral(
        self, inbound: InboundService, client: TestClient, radiant: str
    ) -> None:
        folder = corpus("hl7v2")
        assert msa(*inbound.receive((folder / "REF-I12-01.hl7").read_bytes(), "mllp")) == "AA"
        assert msa(*inbound.receive((folder / "REF-I14-01.hl7").read_bytes(), "mllp")) == "AA"
        [entry] = client.get("/fhir/Task", params={"code": "fulfill"}).json()["entry"]
        task = entry["resource"]
        assert task["status"] == "cancelled"
        assert task["statusReason"]["text"] == "Lab test"  # its note on the referral (after PV2)

    def test_a_cancellation_of_an_unknown_referral_is_held_with_its_reason(
        self, inbound: InboundService
    ) -> None:
        raw = (corpus("hl7v2") / "REF-I14-01.hl7").read_bytes()
        [ack] = inbound.receive(raw, "mllp")
        assert msa(ack) == "AE"
        err = next(line for line in ack.split(b"\r") if line.startswith(b"ERR")).split(b"|")
        # probe 12 #5: ERR named MSH-1 and 207 "application internal error"
        assert (err[2], err[3].split(b"^")[0]) == (b"RF1^1^6", b"204")
        [held] = inbound.held()
        assert held.message_type == "REF^I14"
        assert "no referral with RF1-6 '226839' from this referrer is known" in held.problems[0]

    def test_work_in_progress_is_not_cancelled_by_the_referrer(
        self, inbound: InboundService, client: TestClient, radiant: str
    ) -> None:
        folder = corpus("hl7v2")
        inbound.receive((folder / "REF-I12-01.hl7").read_bytes(), "mllp")
        [entry] = client.get("/fhir/Task", params={"code": "fulfill"}).json()["entry"]
        task = {k: v for k, v in entry["resource"].items() if k != "meta"}
        for status, extra in (
            ("accepted", {}),
            (
                "in-progress",
                {
                    "executionPeriod": {"start": "2026-11-20"},
                    "businessStatus": {
                        "coding": [{"system": BUSINESS_STATUS.url, "code": "admitted"}]
                    },
                },
            ),
        ):
            task = {**task, "status": status, **extra}
            response = client.put(f"/fhir/Task/{task['id']}", json=task, headers=FHIR_JSON)
            assert response.status_code == 200, response.text
        assert msa(*inbound.receive((folder / "REF-I14-01.hl7").read_bytes(), "mllp")) == "AE"
        assert (
            "only the owner moves a Task from in-progress to cancelled"
            in (inbound.held()[0].problems[0])
        )
        current = client.get(f"/fhir/Task/{task['id']}").json()
        assert current["status"] == "in-progress"


def test_the_program_referred_to_is_found_by_its_npi_whatever_its_name(
    inbound: InboundService, client: TestClient
) -> None:
    """PRD-10 (XON) names the program by an identifier with its assigning authority: an NPI
    finds the stored Organization even when the message spells its name otherwise."""
    stored = program_with_npi(client, "Harbor Recovery (Springfield campus)", "1234567893")
    referred_to = segment(
        "PRD",
        {
            1: "RT^Referred to Provider^HL70286",
            2: "Okafor^Ada",
            10: "Harbor Recovery Center^^^^^NPI^XX^^^1234567893",
        },
    )
    segments = [referred_to if s.startswith("PRD|RT^") else s for s in REFERRAL_SEGMENTS]
    assert msa(*inbound.receive(message(*segments), "mllp")) == "CA"  # MSH-15 AL, MSH-16 NE
    referral = client.get("/fhir/ServiceRequest").json()["entry"][0]["resource"]
    assert referral["performer"] == [{"reference": f"Organization/{stored['id']}"}]
    assert total(client, "Organization", name="Harbor Recovery Center") == 0


class TestReferredTo:
    """The program PRD RT names must be one here, found as a C-CDA document's recipient is: an
    unauthenticated message registers no program of its own choosing (README, HL7 v2 partners)."""

    def test_a_referral_for_no_program_here_is_held_and_writes_nothing(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
        organizations = total(client, "Organization")
        [ack] = inbound.receive(raw, "mllp")
        assert msa(ack) == "AE"
        err = next(line for line in ack.split(b"\r") if line.startswith(b"ERR"))
        assert err.split(b"|")[2] == b"PRD^2"  # where: the second PRD, the RT
        assert RADIANT.encode() not in ack  # why is for staff only
        [held] = inbound.held()
        assert held.problems[0].startswith("PRD[2]: the referred-to provider (RT) names no")
        assert RADIANT in held.problems[0]
        assert total(client, "Organization") == organizations
        assert [total(client, kind) for kind in ("Patient", "ServiceRequest", "Task")] == [0] * 3

    def test_a_referral_naming_no_referred_to_provider_is_held(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        segments = [s for s in REFERRAL_SEGMENTS if not s.startswith("PRD|RT^")]
        # kept (CA); the AE is not sent, since MSH-16 NE asks for no application ack
        assert msa(*inbound.receive(message(*segments), "mllp")) == "CA"
        assert "no PRD with role RT" in inbound.held()[0].problems[0]
        assert total(client, "ServiceRequest") == 0

    def test_the_npi_in_prd_7_finds_the_program_as_our_own_messages_name_it(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        """adapters.hl7v2.outbound names a program as PRD-4's facility and its NPI in PRD-7:
        the NPI finds it here even when the sender spells its name otherwise."""
        stored = program_with_npi(client, "Harbor Recovery", "1234567893")
        referred_to = segment(
            "PRD",
            {
                1: "RT^Referred to Provider^HL70286",
                4: "^^^Harbor Recovery Inc",
                7: "1234567893^NPI",
            },
        )
        segments = [referred_to if s.startswith("PRD|RT^") else s for s in REFERRAL_SEGMENTS]
        assert msa(*inbound.receive(message(*segments), "mllp")) == "CA"  # MSH-15 AL, -16 NE
        referral = client.get("/fhir/ServiceRequest").json()["entry"][0]["resource"]
        assert referral["performer"] == [{"reference": f"Organization/{stored['id']}"}]


def test_the_part2_notice_is_not_read_as_the_reason_for_a_cancellation(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    """The NTE of comment type 42CFRPart2 (adapters.hl7v2.outbound) is about the disclosure,
    not the referral: the cancellation's reason is the referral's own note."""
    folder = corpus("hl7v2")
    assert msa(*inbound.receive((folder / "REF-I12-01.hl7").read_bytes(), "mllp")) == "AA"
    kind = f"{PART2_NOTE_TYPE.code}^{PART2_NOTE_TYPE.text}^{PART2_NOTE_TYPE.system}"
    notice = f"NTE|2|P|{NOTICE_SHORT}~Security labels: R 42CFRPart2|{kind}\r".encode()
    cancellation = (folder / "REF-I14-01.hl7").read_bytes().rstrip(b"\r\n") + b"\r" + notice
    assert msa(*inbound.receive(cancellation, "mllp")) == "AA"
    [entry] = client.get("/fhir/Task", params={"code": "fulfill"}).json()["entry"]
    assert entry["resource"]["statusReason"]["text"] == "Lab test"


@pytest.mark.parametrize("marked", [True, False])
def test_a_referral_marked_as_part2_data_is_stored_labelled_as_it(
    inbound: InboundService, client: TestClient, marked: bool
) -> None:
    """PART2.md P1: data labelled Part 2 is Part 2 data whoever sent it. A referral our own
    writer marks (MSH-8 R, the notice NTE with its labels) is stored with those labels on
    the Patient, ServiceRequest and Task, so the gate guards it even when its sender is no
    Part 2 program known here; an unmarked one gets none."""
    program_with_npi(client, "Northside Clinic", "9876543210")  # whom `referral()` refers to
    sent = referral(part2=MARKING) if marked else referral()
    assert msa(*inbound.receive(write_referral(sent, envelope()), "mllp")) == "AA"
    expected = {
        (CONFIDENTIALITY, "R"),
        (ACT_CODE, "42CFRPart2"),
        (ACT_CODE, "NORDSCLCD"),
        (ACT_CODE, "SUD"),
    }
    for kind in ("Patient", "ServiceRequest", "Task"):
        [entry] = client.get(f"/fhir/{kind}").json()["entry"]
        security = {(c["system"], c["code"]) for c in entry["resource"]["meta"].get("security", [])}
        assert (security >= expected) is marked, (kind, security)
        assert (security & expected == set()) is not marked, (kind, security)


def test_a_database_that_cannot_write_answers_ar_and_a_resend_lands_once(tmp_path: Path) -> None:
    """Another writer holds SQLite's lock past the busy timeout: the message is answered AR (send
    again) rather than left unanswered, nothing of it is half-written, and the resend lands."""
    url = f"sqlite:///{tmp_path / 'v2.sqlite3'}"
    engine = make_engine(url, busy_timeout=0.2)
    upgrade(engine)
    with (
        unit_of_work(engine) as session,
        internal_operations(session, "test", paging=Paging(2, 2)) as operations,
    ):
        operations.update("Organization", "radiant", organization(RADIANT, id="radiant"))
    inbound = InboundService(engine, lambda: datetime.now(UTC))
    raw = (corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()
    blocker = sqlite3.connect(tmp_path / "v2.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        [refused] = inbound.receive(raw, "mllp")
    finally:
        blocker.execute("ROLLBACK")
    assert msa(refused) == "AR"
    assert b"send it again" in refused
    assert _rows(engine, "SELECT count(*) FROM resource") == 1  # the program alone
    assert msa(*inbound.receive(raw, "mllp")) == "AA"
    assert (
        _rows(engine, "SELECT count(*) FROM resource WHERE resource_type = 'ServiceRequest'") == 1
    )


def test_an_assigning_authority_with_spaces_and_bars_is_a_valid_system(
    inbound: InboundService, client: TestClient, radiant: str
) -> None:
    """RF1-6's namespace becomes part of an identifier system: percent-encoded, it stays a valid
    FHIR uri (no whitespace) and a token search with `|` still finds the referral."""
    raw = (
        (corpus("hl7v2") / "REF-I12-01.hl7")
        .read_bytes()
        .replace(b"226839^EPIC", b"226839^ST MARY\\F\\S")
    )
    assert msa(*inbound.receive(raw, "mllp")) == "AA"
    placer = client.get("/fhir/ServiceRequest").json()["entry"][0]["resource"]["identifier"][0]
    assert placer["system"] == "urn:recovery-interop:hl7v2:referral:ST%20MARY%7CS"
    assert referral_namespace(placer["system"]) == "ST MARY|S"
    found = client.get(
        "/fhir/ServiceRequest", params={"identifier": f"{placer['system']}|{placer['value']}"}
    ).json()
    assert found["total"] == 1


def _rows(engine: Engine, query: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(query).scalar_one())


# --- acknowledgments: original and enhanced mode, and incoming ACKs ------------------------


def enhanced(name: str, accept: str, application: str, control_id: str = "") -> bytes:
    """A corpus message asking for acknowledgments in enhanced mode: MSH-15 `accept`, MSH-16
    `application` (table 0155), and MSH-10 `control_id` when given."""
    raw = (corpus("hl7v2") / name).read_bytes()
    msh, separator, rest = re.split(rb"(\r\n|\r|\n)", raw, maxsplit=1)
    fields = msh.split(b"|")
    fields += [b""] * (16 - len(fields))
    fields[14], fields[15] = accept.encode(), application.encode()
    if control_id:
        fields[9] = control_id.encode()
    return b"|".join(fields) + separator + rest


def ack_lines(ack: bytes) -> list[str]:
    return ack.decode().rstrip("\r").split("\r")


def msh_fields(ack: bytes) -> list[str]:
    return ack_lines(ack)[0].split("|")


REFERRAL_FILE = "REF-I12-01.hl7"  # MSH-10 MSG00112, MSH-15 and MSH-16 empty
HELD_TEXT = "the message could not be applied; it is held for staff to review"


class TestEnhancedMode:
    """MSH-15 asks for the accept acknowledgment (CA once the message is committed, CR when it
    is refused, CE when it could not be committed), MSH-16 for the application one (AA, AE,
    AR) after it (HL7 v2.5.1 section 2.9.3, table 0155); both empty is original mode."""

    def test_original_mode_is_one_ack_as_before(
        self, inbound: InboundService, radiant: str
    ) -> None:
        [ack] = inbound.receive((corpus("hl7v2") / REFERRAL_FILE).read_bytes(), "mllp")
        assert msh_fields(ack)[8:] == ["ACK^I12^ACK", msh_fields(ack)[9], "P", "2.8"]
        assert ack_lines(ack)[1:] == ["MSA|AA|MSG00112"]

    def test_al_ne_gets_the_commit_accept_alone_once_committed(
        self, inbound: InboundService, client: TestClient, radiant: str
    ) -> None:
        [commit] = inbound.receive(enhanced(REFERRAL_FILE, "AL", "NE"), "mllp")
        assert msh_fields(commit)[8] == "ACK^I12^ACK"
        assert msh_fields(commit)[12:] == ["", "", "NE", "NE"]  # our ACK wants no answer
        assert ack_lines(commit)[1:] == ["MSA|CA|MSG00112"]
        assert total(client, "ServiceRequest") == 1

    def test_al_al_gets_the_commit_accept_then_the_application_accept(
        self, inbound: InboundService, client: TestClient, radiant: str
    ) -> None:
        commit, application = inbound.receive(enhanced(REFERRAL_FILE, "AL", "AL"), "mllp")
        assert ack_lines(commit)[1:] == ["MSA|CA|MSG00112"]
        assert ack_lines(application)[1:] == ["MSA|AA|MSG00112"]
        assert msh_fields(commit)[9] != msh_fields(application)[9]  # each its own MSH-10
        assert total(client, "ServiceRequest") == 1

    @pytest.mark.parametrize(("accept", "application"), [("NE", "NE"), ("ER", "ER")])
    def test_nothing_is_sent_when_nothing_is_due_and_the_message_is_processed(
        self,
        inbound: InboundService,
        client: TestClient,
        radiant: str,
        accept: str,
        application: str,
    ) -> None:
        assert inbound.receive(enhanced(REFERRAL_FILE, accept, application), "mllp") == ()
        assert total(client, "ServiceRequest") == 1

    def test_only_msh_16_valued_gets_the_application_acknowledgment_alone(
        self, inbound: InboundService, radiant: str
    ) -> None:
        [application] = inbound.receive(enhanced(REFERRAL_FILE, "", "AL"), "mllp")
        assert ack_lines(application)[1:] == ["MSA|AA|MSG00112"]

    def test_a_message_held_for_staff_is_committed_then_answered_ae(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        """No program here is the one referred to: the message is kept (CA), held, AE 204."""
        commit, application = inbound.receive(enhanced(REFERRAL_FILE, "AL", "AL"), "mllp")
        assert ack_lines(commit)[1:] == ["MSA|CA|MSG00112"]
        assert ack_lines(application)[1] == f"MSA|AE|MSG00112|{HELD_TEXT}"
        assert "|204^Unknown key identifier^HL70357|E|" in ack_lines(application)[2]
        assert [held.ack_code for held in inbound.held()] == ["AE"]
        assert total(client, "ServiceRequest") == 0

    def test_er_er_tells_of_the_error_alone(self, inbound: InboundService) -> None:
        [application] = inbound.receive(enhanced(REFERRAL_FILE, "ER", "ER"), "mllp")
        assert ack_lines(application)[1] == f"MSA|AE|MSG00112|{HELD_TEXT}"

    def test_an_unsupported_message_type_is_refused_cr_with_no_application_ack(
        self, inbound: InboundService
    ) -> None:
        [refused] = inbound.receive(enhanced("MDM-T02-01.hl7", "AL", "AL"), "mllp")
        msa_line, err = ack_lines(refused)[1:]
        assert msa_line.startswith("MSA|CR|")
        assert "message type MDM is not accepted" in msa_line
        assert err.startswith("ERR||MSH^1^9|200^Unsupported message type^HL70357|E|")
        assert [held.message_type for held in inbound.held()] == ["MDM^T02"]  # still kept

    def test_su_is_not_told_of_a_refusal(self, inbound: InboundService) -> None:
        assert inbound.receive(enhanced("MDM-T02-01.hl7", "SU", "AL"), "mllp") == ()

    def test_a_database_that_cannot_write_answers_ce_and_never_ca(self, tmp_path: Path) -> None:
        """Nothing was committed: CE (send again) with code 207, no application ack; the
        resend, once the database writes again, gets CA then AA and lands once."""
        engine = make_engine(f"sqlite:///{tmp_path / 'v2.sqlite3'}", busy_timeout=0.2)
        upgrade(engine)
        with (
            unit_of_work(engine) as session,
            internal_operations(session, "test", paging=Paging(2, 2)) as operations,
        ):
            operations.update("Organization", "radiant", organization(RADIANT, id="radiant"))
        inbound = InboundService(engine, lambda: datetime.now(UTC))
        raw = enhanced(REFERRAL_FILE, "AL", "AL")
        blocker = sqlite3.connect(tmp_path / "v2.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            [failed] = inbound.receive(raw, "mllp")
        finally:
            blocker.execute("ROLLBACK")
        assert (
            ack_lines(failed)[1]
            == "MSA|CE|MSG00112|the message could not be stored now; send it again"
        )
        assert "|207^Application internal error^HL70357|E|" in ack_lines(failed)[2]
        assert [msa(ack) for ack in inbound.receive(raw, "mllp")] == ["CA", "AA"]
        query = "SELECT count(*) FROM resource WHERE resource_type = 'ServiceRequest'"
        assert _rows(engine, query) == 1


class TestIncomingAcknowledgments:
    """An ACK is never answered, whatever it says: acknowledging acknowledgments loops."""

    def test_an_ack_is_consumed_unanswered_unkept_and_logged_without_its_texts(
        self, inbound: InboundService, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="interop.services.inbound"):
            assert inbound.receive(INCOMING_ACK, "mllp") == ()
        assert inbound.held() == []
        [record] = caplog.records
        assert "'NS-ACK-9' from 'NORTHSIDE' (answering 'OUT-0001')" in record.getMessage()
        assert "O'Brien" not in caplog.text

    def test_an_ack_framed_with_more_after_it_is_unanswered_but_kept_for_staff(
        self, inbound: InboundService
    ) -> None:
        raw = INCOMING_ACK + (corpus("hl7v2") / REFERRAL_FILE).read_bytes()
        assert inbound.receive(raw, "mllp") == ()
        [held] = inbound.held()
        assert held.message_type == "ACK^I12"
        assert "MSH inside a message" in held.problems[0]

    def test_in_enhanced_mode_too(self, inbound: InboundService) -> None:
        asking = INCOMING_ACK.replace(b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r", 1)
        assert inbound.receive(asking, "mllp") == ()

    def test_a_batch_of_acknowledgments_is_not_answered(self, inbound: InboundService) -> None:
        second = INCOMING_ACK.replace(b"|NS-ACK-9|", b"|NS-ACK-10|")
        batch = (
            b"BHS|^~\\&|CLINIC-EHR|NORTHSIDE|RECOVERY-INTEROP|HARBOR|20240310120500||||B-1\r"
            + INCOMING_ACK + second + b"BTS|2\r"
        )  # fmt: skip
        assert inbound.receive(batch, "mllp") == ()
        assert inbound.held() == []


class Link:
    """One MLLP connection to a listener, as a partner's interface engine holds it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, payload: bytes) -> None:
        self.writer.write(frame(payload))
        await self.writer.drain()

    async def answer(self) -> bytes:
        """The next frame back, unframed; fails after a few seconds rather than hang."""
        data = await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), 10)
        assert data.startswith(b"\x0b")
        return data[1:-2]


def over_mllp(inbound: InboundService, scenario: Callable[[Link], Awaitable[None]]) -> None:
    """The MLLP listener `interop mllp` runs (serve_mllp around InboundService.receive), on
    loopback, and `scenario` acting out a partner on one connection to it."""

    async def main() -> None:
        async def handle(payload: bytes) -> tuple[bytes, ...]:
            return await asyncio.to_thread(inbound.receive, payload, "mllp")

        server = await serve_mllp(
            "127.0.0.1", 0, handle, max_message_bytes=1_048_576, idle_timeout=10
        )
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                await asyncio.wait_for(scenario(Link(reader, writer)), 30)
            finally:
                writer.close()
                await writer.wait_closed()

    asyncio.run(main())


class TestOverMllp:
    """The acknowledgments on a real loopback MLLP connection: what is not due is not sent,
    so the next frame a partner reads answers its next message."""

    def test_an_incoming_ack_gets_no_frame_and_the_link_goes_on(
        self, inbound: InboundService, radiant: str
    ) -> None:
        async def partner(link: Link) -> None:
            await link.send(INCOMING_ACK)
            await link.send((corpus("hl7v2") / REFERRAL_FILE).read_bytes())
            assert ack_lines(await link.answer())[1] == "MSA|AA|MSG00112"

        over_mllp(inbound, partner)

    def test_enhanced_mode_frames_follow_msh_15_and_16(
        self, inbound: InboundService, client: TestClient, radiant: str
    ) -> None:
        async def partner(link: Link) -> None:
            await link.send(enhanced(REFERRAL_FILE, "AL", "AL"))
            commit = await link.answer()
            assert ack_lines(commit)[1] == "MSA|CA|MSG00112"
            # the commit accept went out once the referral was committed, readable by all
            assert await asyncio.to_thread(total, client, "ServiceRequest") == 1
            assert ack_lines(await link.answer())[1] == "MSA|AA|MSG00112"
            await link.send(enhanced(REFERRAL_FILE, "NE", "NE", "MSG00113"))
            await link.send(enhanced(REFERRAL_FILE, "AL", "NE", "MSG00114"))
            assert ack_lines(await link.answer())[1] == "MSA|CA|MSG00114"

        over_mllp(inbound, partner)
