"""Every file of ../shared/corpora/hl7v2 read end to end: what each yields, and that nothing is
dropped; expected-fhir/ (another converter's output) is used as a hint for a few values."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.hl7v2.ack import acknowledge
from adapters.hl7v2.er7 import decode, encode_message, parse_message
from adapters.hl7v2.errors import AckCode, ErrorCode, Location
from adapters.hl7v2.messages import Discharge, FileRead, Referral, read_file
from tests.conftest import corpus

from . import AT

pytestmark = pytest.mark.corpus

# file -> [(MSA-1, content type, (ERR-2 location, table 0357 code) of the first problem)]
EXPECTED: dict[str, list[tuple[AckCode, type | None, tuple[Location, ErrorCode] | None]]] = {
    "REF-I12-01.hl7": [(AckCode.ACCEPT, Referral, None)],
    "ADT-A03-01.hl7": [(AckCode.ACCEPT, Discharge, None)],
    "REF-I14-01.hl7": [(AckCode.ACCEPT, Referral, None)],
    "ADT-A04-01.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "ADT-A04-02.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "ADT04-23.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "ADT04-251.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "MDM-T02-01.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9), ErrorCode.UNSUPPORTED_MESSAGE_TYPE))
    ],
    "python-hl7_sample_hl7.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9), ErrorCode.UNSUPPORTED_MESSAGE_TYPE))
    ],
    "python-hl7_sample_batch.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "python-hl7_sample_file.hl7": [
        (AckCode.REJECT, None, (Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE))
    ],
    "python-hl7_sample_bad_batch.hl7": [
        (AckCode.REJECT, None, (Location("EVN", 1), ErrorCode.SEGMENT_SEQUENCE_ERROR))
    ],
    "python-hl7_sample_bad_file.hl7": [
        (AckCode.REJECT, None, (Location("EVN", 1), ErrorCode.SEGMENT_SEQUENCE_ERROR))
    ],
}


def lines(data: bytes) -> list[str]:
    return [line for line in decode(data).split("\r") if line.strip()]


def folder() -> Path:
    return corpus("hl7v2")


def read(name: str) -> FileRead:
    return read_file((folder() / name).read_bytes())


def expected_fhir(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((folder() / "expected-fhir" / name).read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def test_every_corpus_file_is_listed() -> None:
    assert {p.name for p in folder().glob("*.hl7")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
class TestEveryFile:
    def test_what_it_yields(self, name: str) -> None:
        items = read(name).items
        got = [
            (
                item.ack_code,
                None if item.content is None else type(item.content),
                (item.problems[0].location, item.problems[0].code) if item.problems else None,
            )
            for item in items
        ]
        assert got == EXPECTED[name]

    def test_nothing_is_dropped(self, name: str) -> None:
        data = (folder() / name).read_bytes()
        read_back = read(name)
        kept = sum(len(lines(item.raw)) for item in read_back.items) + len(read_back.envelope)
        assert kept == len(lines(data))
        for item in read_back.items:
            assert item.raw in data

    def test_the_ack_answers_the_control_id(self, name: str) -> None:
        for item in read(name).items:
            ack = parse_message(decode(acknowledge(item, control_id="K", at=AT)))
            msa = ack.segments[1]
            assert msa.value(1) == item.ack_code.value
            assert msa.value(2) == (item.header.control_id if item.header else "")
            errors = ack.named("ERR")
            assert len(errors) == len(item.problems)

    def test_parsed_messages_round_trip(self, name: str) -> None:
        for item in read(name).items:
            if item.message is not None:
                assert parse_message(encode_message(item.message)) == item.message

    def test_cr_or_lf_endings_read_the_same(self, name: str) -> None:
        data = (folder() / name).read_bytes()
        as_cr = read_file(data.replace(b"\r\n", b"\r").replace(b"\n", b"\r"))
        as_lf = read_file(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        assert [i.content for i in as_cr.items] == [i.content for i in as_lf.items]
        assert [i.problems for i in as_cr.items] == [i.problems for i in as_lf.items]


class TestReferralSample:
    def referral(self) -> Referral:
        content = read("REF-I12-01.hl7").items[0].content
        assert isinstance(content, Referral)
        return content

    def test_rf1(self) -> None:
        referral = self.referral()
        assert referral.originating_id.value == "226839"
        assert referral.originating_id.namespace_id == "EPIC"
        assert [e.value for e in referral.external_ids] == ["11001"]
        assert referral.status is not None
        assert referral.status.code == "P"
        assert referral.priority is not None
        assert referral.priority.code == "R"
        assert referral.type is not None
        assert referral.type.code == "Med"
        assert referral.category is not None
        assert referral.category.code == "O"
        assert [r.code for r in referral.reasons] == ["O"]
        assert referral.authorization is not None
        assert referral.authorization.identifier is not None
        assert referral.authorization.identifier.value == "HL71001111111111"

    def test_parties(self) -> None:
        referral = self.referral()
        assert referral.referring is not None
        assert referral.referred_to is not None
        assert referral.referring.names[0].family == "POWELL"
        assert referral.referred_to.names[0].family == "McWILLIAMS"
        assert referral.referred_to.organization is not None
        assert referral.referred_to.organization.name == "RADIANT HEALTH HOSPITAL"
        assert [d.code.code for d in referral.diagnoses if d.code] == ["K63.3"]
        assert [n.follows for n in referral.notes] == ["OBR", "PRT", "PV2"]

    def test_agrees_with_the_other_converter_where_it_should(self) -> None:
        referral = self.referral()
        resources = expected_fhir("REF-I12-01-expected.json")
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        request = next(
            r for r in resources if r["resourceType"] == "ServiceRequest" and "identifier" in r
        )
        assert referral.patient.birth_date is not None
        assert referral.patient.birth_date.isoformat() == patient["birthDate"]
        ours = {i.value for i in referral.patient.identifiers}
        assert ours <= {i["value"] for i in patient["identifier"]}
        assert [i["value"] for i in request["identifier"]] == [
            referral.originating_id.value,
            *(e.value for e in referral.external_ids),
        ]
        assert referral.effective is not None
        assert referral.expiration is not None
        assert request["occurrencePeriod"] == {
            "start": referral.effective.isoformat(),
            "end": referral.expiration.isoformat(),
        }


class TestDischargeSample:
    def discharge(self) -> Discharge:
        content = read("ADT-A03-01.hl7").items[0].content
        assert isinstance(content, Discharge)
        return content

    def test_discharge(self) -> None:
        discharge = self.discharge()
        assert discharge.discharged_at is not None
        assert discharge.discharged_at.isoformat() == "2015-02-09T11:34:19+01:10"
        assert discharge.disposition is not None
        assert discharge.disposition.code == "Admitted as Inpatient"
        assert discharge.discharged_to is not None
        assert (discharge.discharged_to.code, discharge.discharged_to.display) == ("22", "Homes")
        assert discharge.facility is not None
        assert discharge.facility.namespace_id == "HOMERTON UNIVER"
        assert discharge.patient.identifiers[0].value == "PATID1234"
        authority = discharge.patient.identifiers[0].assigning_authority
        assert authority is not None
        assert authority.universal_id == "2.16.1"
        assert discharge.visit.admit_source == "NHS Provider-General (inc.A&E-this Hosp)"

    def test_agrees_with_the_other_converter_where_it_should(self) -> None:
        discharge = self.discharge()
        resources = expected_fhir("ADT-A03-01-expected.json")
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        encounter = next(r for r in resources if r["resourceType"] == "Encounter")
        assert discharge.patient.birth_date is not None
        assert discharge.patient.birth_date.isoformat()[:10] == patient["birthDate"]
        assert discharge.discharged_at is not None
        assert discharge.discharged_at.to_datetime() == datetime.fromisoformat(
            encounter["period"]["end"]
        )
        disposition = encounter["hospitalization"]["dischargeDisposition"]["coding"][0]
        assert discharge.disposition is not None
        assert discharge.disposition.code == disposition["code"]


class TestBatches:
    def test_the_valid_batch_keeps_its_envelope(self) -> None:
        read_back = read("python-hl7_sample_file.hl7")
        assert [s.name for s in read_back.envelope] == ["FHS", "BHS", "BTS", "FTS"]
        assert read_back.problems == ()

    def test_the_bad_batch_keeps_the_orphan_segments_for_staff(self) -> None:
        read_back = read("python-hl7_sample_bad_batch.hl7")
        (item,) = read_back.items
        assert item.raw.startswith(b"EVN|A04|")
        assert item.raw.endswith(b"PV1|1|O||||^^^^^1\r")
        assert [p.location for p in read_back.problems] == [Location("BTS", 1, 1)]
