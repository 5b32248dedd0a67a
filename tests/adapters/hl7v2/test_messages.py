"""Typed reading of REF^I12 and ADT^A03, the problems found in bad messages, and files."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from adapters.hl7v2.errors import AckCode, ErrorCode, Location, Severity
from adapters.hl7v2.messages import (
    Address,
    Coded,
    Discharge,
    EntityIdentifier,
    HierarchicDesignator,
    Hl7DateTime,
    Identifier,
    Inbound,
    Note,
    PersonName,
    Referral,
    Telecom,
    read_file,
    read_message,
)
from adapters.hl7v2.mllp import frame

from . import (
    DISCHARGE,
    DISCHARGE_SEGMENTS,
    REFERRAL,
    REFERRAL_MSH,
    REFERRAL_PID,
    REFERRAL_RF1,
    REFERRAL_SEGMENTS,
    message,
)


def referral(raw: bytes = REFERRAL) -> Referral:
    inbound = read_message(raw)
    assert inbound.problems == ()
    assert isinstance(inbound.content, Referral)
    return inbound.content


def replaced(segments: tuple[str, ...], old: str, new: str | None) -> bytes:
    """The message with the segment line `old` replaced by `new` (None: removed)."""
    assert old in segments
    kept = [line for line in segments if new is not None or line != old]
    return message(*(new if line == old and new is not None else line for line in kept))


def only_problem(inbound: Inbound) -> tuple[Location, ErrorCode]:
    assert len(inbound.problems) == 1, inbound.problems
    return inbound.problems[0].location, inbound.problems[0].code


class TestReferral:
    def test_rf1(self) -> None:
        read = referral()
        assert read.status == Coded("A", "Accepted", "HL70283")
        assert read.priority == Coded("S", "STAT", "HL70280")
        assert read.type == Coded("RB", "Rehabilitation", "HL70281")
        assert read.category == Coded("O", "Outpatient", "HL70284")
        assert read.originating_id == EntityIdentifier("R-2024-0042", "NORTHSIDE")
        assert read.effective is not None
        assert read.effective.to_date() == date(2024, 3, 5)
        assert read.expiration is not None
        assert read.expiration.isoformat() == "2024-04-05"
        assert [r.code for r in read.reasons] == ["SUD", "F10.20"]
        assert read.external_ids == (EntityIdentifier("EXT-77", "HIE"),)

    def test_patient(self) -> None:
        patient = referral().patient
        assert patient.identifiers == (
            Identifier(
                "MRN-555",
                "MR",
                HierarchicDesignator("NORTHSIDE", "2.16.840.1.113883.3.1234", "ISO"),
            ),
            Identifier(
                "123-45-6789", "SS", HierarchicDesignator("SSA", "2.16.840.1.113883.4.1", "ISO")
            ),
        )
        assert patient.names == (
            PersonName("O'Brien&Sons", "Patrick", "J", "Jr"),
            PersonName("Pat", type_code="N"),
        )
        assert patient.birth_date is not None
        assert patient.birth_date.isoformat() == "1985-02-14"
        assert patient.sex == "M"
        assert patient.addresses == (
            Address(("77 Lake St~Apt 2",), "Springfield", "IL", "62703", "USA", "H"),
        )
        assert patient.phones == (
            Telecom("+1 217 5550123", "PRN", "PH"),
            Telecom("", "NET", "Internet", "pob@example.org"),
        )
        assert patient.business_phones == (Telecom("+1 217 5550456", "WPN", "PH"),)

    def test_providers_and_organizations(self) -> None:
        read = referral()
        referring, referred_to = read.referring, read.referred_to
        assert referring is not None
        assert referred_to is not None
        assert referring.role.code == "RP"
        assert referring.names == (PersonName("Nguyen", "Linh", "T", "", "Dr", "MD"),)
        assert referring.addresses[0].lines == ("12 Elm St", "Suite 4")
        assert referring.location is not None
        assert referring.location.facility == HierarchicDesignator("NORTHSIDE CLINIC")
        assert [t.email or t.value for t in referring.telecoms] == [
            "+1 217 5550100",
            "lnguyen@northside.example",
        ]
        assert [(i.value, i.type_code) for i in referring.identifiers] == [("1234567890", "NPI")]
        assert referring.organization is None
        assert referred_to.names[0].family == "Okafor"
        assert referred_to.organization is not None
        assert referred_to.organization.name == "Harbor Recovery Center"
        assert referred_to.organization.identifier == "H-01"
        assert referred_to.organization.assigning_authority == HierarchicDesignator("HARBOR")

    def test_authorization_diagnoses_visit_and_notes(self) -> None:
        read = referral()
        assert read.authorization is not None
        assert read.authorization.identifier == EntityIdentifier("AUTH-991", "MCDSTATE")
        assert read.authorization.authorized_treatments == "12"
        assert read.authorization.plan == Coded("MCD", "Medicaid plan", "L")
        assert [(d.code.code if d.code else "", d.type_code) for d in read.diagnoses] == [
            ("F10.20", "W")
        ]
        assert read.visit is not None
        assert read.visit.patient_class == "O"
        assert read.visit.referring[0].identifier == "1234567890"
        assert read.notes == (
            Note(
                "Patient prefers afternoon appointments.\nNeeds transport\\childcare help.",
                follows="PV1",
                source="P",
            ),
            Note("Line one\nline two", follows="PV1", source="P"),
        )

    def test_an_lf_separated_referral_reads_the_same(self) -> None:
        assert referral(message(*REFERRAL_SEGMENTS, terminator="\n")) == referral()

    def test_a_crlf_referral_with_a_bom_reads_the_same(self) -> None:
        crlf = b"\xef\xbb\xbf" + message(*REFERRAL_SEGMENTS, terminator="\r\n")
        assert referral(crlf) == referral()

    def test_the_raw_bytes_are_kept(self) -> None:
        assert read_message(REFERRAL).raw == REFERRAL


class TestDischarge:
    def test_discharge(self) -> None:
        inbound = read_message(DISCHARGE)
        assert inbound.ack_code is AckCode.ACCEPT
        read = inbound.content
        assert isinstance(read, Discharge)
        assert read.discharged_at is not None
        assert read.discharged_at.to_datetime() == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)
        assert read.disposition == Coded("01", "Discharged to home or self care", "HL70112")
        assert read.discharged_to == Coded("RES", "Residential treatment", "L")
        assert read.visit.discharged_to_effective is not None
        assert read.visit.discharged_to_effective.isoformat() == "2024-03-10"
        assert read.facility == HierarchicDesignator("MERCY")
        assert read.visit.servicing_facility == Coded("MERCY-MAIN")
        assert read.visit.location is not None
        assert (read.visit.location.point_of_care, read.visit.location.bed) == ("DETOX", "B")
        assert read.visit.visit_number == Identifier("VN-4455", "VN", HierarchicDesignator("MERCY"))
        assert read.patient.identifiers[0].value == "MRN-888"
        assert read.patient.names[0] == PersonName("Smith", "Jane", "Q")
        assert read.patient.sex == "F"
        assert read.event.occurred_at is not None
        assert read.event.occurred_at.isoformat() == "2024-03-10T09:00:00+00:00"
        assert read.diagnoses[0].code == Coded("F11.20", "Opioid dependence, uncomplicated", "I10")

    def test_without_pv1_45_the_event_time_is_the_discharge_time(self) -> None:
        pv1 = DISCHARGE_SEGMENTS[3]
        inbound = read_message(replaced(DISCHARGE_SEGMENTS, pv1, pv1.rsplit("|", 1)[0]))
        assert isinstance(inbound.content, Discharge)
        assert inbound.content.discharged_at == inbound.content.event.occurred_at


class TestProblems:
    def test_missing_patient_identifier_is_ae_at_pid_3(self) -> None:
        bad_pid = REFERRAL_PID.replace("MRN-555^^^NORTHSIDE&2.16.840.1.113883.3.1234&ISO^MR~", "")
        bad_pid = bad_pid.replace("123-45-6789^^^SSA&2.16.840.1.113883.4.1&ISO^SS", "")
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_PID, bad_pid))
        assert inbound.ack_code is AckCode.ERROR
        assert inbound.content is None
        assert inbound.raw.startswith(b"MSH|")
        assert only_problem(inbound) == (Location("PID", 1, 3), ErrorCode.REQUIRED_FIELD_MISSING)

    def test_an_invalid_date_is_a_data_type_error_naming_the_field(self) -> None:
        bad = REFERRAL_RF1.replace("20240405", "20241305")
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_RF1, bad))
        assert inbound.ack_code is AckCode.ERROR
        assert only_problem(inbound) == (Location("RF1", 1, 8, 1), ErrorCode.DATA_TYPE_ERROR)

    def test_an_invalid_date_in_the_second_dg1_names_its_sequence(self) -> None:
        segments = (*REFERRAL_SEGMENTS, "DG1|2||F17.210^Nicotine dependence^I10||2024-03-01|W")
        inbound = read_message(message(*segments))
        assert only_problem(inbound) == (Location("DG1", 2, 5, 1), ErrorCode.DATA_TYPE_ERROR)

    def test_the_originating_referral_id_is_required(self) -> None:
        bad = REFERRAL_RF1.replace("R-2024-0042^NORTHSIDE", "")
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_RF1, bad))
        assert only_problem(inbound) == (Location("RF1", 1, 6), ErrorCode.REQUIRED_FIELD_MISSING)

    def test_a_missing_rf1_is_a_segment_sequence_error(self) -> None:
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_RF1, None))
        assert inbound.ack_code is AckCode.ERROR
        assert only_problem(inbound) == (Location("RF1", 1), ErrorCode.SEGMENT_SEQUENCE_ERROR)

    def test_a_discharge_without_pv1(self) -> None:
        inbound = read_message(replaced(DISCHARGE_SEGMENTS, DISCHARGE_SEGMENTS[3], None))
        assert only_problem(inbound) == (Location("PV1", 1), ErrorCode.SEGMENT_SEQUENCE_ERROR)

    def test_an_unknown_sex_is_a_warning_and_still_accepted(self) -> None:
        bad = REFERRAL_PID.replace("|M|", "|Q|")
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_PID, bad))
        assert inbound.ack_code is AckCode.ACCEPT
        assert inbound.content is not None
        assert inbound.problems[0].severity is Severity.WARNING
        assert only_problem(inbound) == (Location("PID", 1, 8), ErrorCode.TABLE_VALUE_NOT_FOUND)

    @pytest.mark.parametrize(
        ("msh9", "location", "code"),
        [
            ("ORU^R01", Location("MSH", 1, 9), ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
            ("ADT^A04", Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE),
            ("REF^I15^REF_I12", Location("MSH", 1, 9, 1, 2), ErrorCode.UNSUPPORTED_EVENT_CODE),
            ("", Location("MSH", 1, 9), ErrorCode.REQUIRED_FIELD_MISSING),
        ],
    )
    def test_unsupported_messages_are_rejected(
        self, msh9: str, location: Location, code: ErrorCode
    ) -> None:
        msh = REFERRAL_MSH.replace("REF^I12^REF_I12", msh9)
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_MSH, msh))
        assert inbound.ack_code is AckCode.REJECT
        assert inbound.content is None
        assert inbound.header is not None
        assert inbound.header.control_id == "REF-0001"
        assert only_problem(inbound) == (location, code)

    @pytest.mark.parametrize(
        ("old", "new", "field", "code"),
        [
            ("|P|2.5.1|", "|X|2.5.1|", 11, ErrorCode.UNSUPPORTED_PROCESSING_ID),
            ("|P|2.5.1|", "|P|3.0|", 12, ErrorCode.UNSUPPORTED_VERSION_ID),
            ("|REF-0001|", "||", 10, ErrorCode.REQUIRED_FIELD_MISSING),
        ],
    )
    def test_envelope_errors_are_rejected(
        self, old: str, new: str, field: int, code: ErrorCode
    ) -> None:
        msh = REFERRAL_MSH.replace(old, new)
        inbound = read_message(replaced(REFERRAL_SEGMENTS, REFERRAL_MSH, msh))
        assert inbound.ack_code is AckCode.REJECT
        assert only_problem(inbound) == (Location("MSH", 1, field), code)

    def test_an_unparseable_message_is_rejected_with_what_could_be_read(self) -> None:
        raw = REFERRAL.replace(b"\rPRD|RT", b"\rprd|RT")
        inbound = read_message(raw)
        assert inbound.ack_code is AckCode.REJECT
        assert inbound.raw == raw
        assert inbound.message is None
        assert inbound.header is not None
        assert inbound.header.control_id == "REF-0001"
        assert only_problem(inbound) == (Location("???", 1), ErrorCode.SEGMENT_SEQUENCE_ERROR)

    @pytest.mark.parametrize("raw", [b"", b"\x00\xff garbage", b"PID|1||X\r", b"MSH|"])
    def test_garbage_is_rejected_never_raised(self, raw: bytes) -> None:
        inbound = read_message(raw)
        assert inbound.ack_code is AckCode.REJECT
        assert inbound.raw == raw
        assert len(inbound.problems) == 1


class TestDateTime:
    @pytest.mark.parametrize(
        ("text", "iso"),
        [
            ("1961", "1961"),
            ("196106", "1961-06"),
            ("19610615", "1961-06-15"),
            ("1988081811", "1988-08-18T11:00:00"),
            ("198808181126+0215", "1988-08-18T11:26:00+02:15"),
            ("20210817151943.4+0200", "2021-08-17T15:19:43.400000+02:00"),
            ("20240101000000-0500", "2024-01-01T00:00:00-05:00"),
        ],
    )
    def test_precision_is_kept(self, text: str, iso: str) -> None:
        assert Hl7DateTime.parse(text).isoformat() == iso

    @pytest.mark.parametrize(
        "text",
        ["196203520", "20241305", "20240230", "2024010125", "1961.5", "19610615+2400", "x", ""],
    )
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"."):
            Hl7DateTime.parse(text)

    def test_aware_datetime(self) -> None:
        parsed = Hl7DateTime.parse("202401011200-0330").to_datetime()
        assert parsed == datetime(2024, 1, 1, 12, 0, tzinfo=timezone(-timedelta(hours=3.5)))


class TestReadFile:
    def test_several_bare_messages(self) -> None:
        read = read_file(REFERRAL + DISCHARGE.replace(b"\r", b"\n"))
        assert [type(i.content).__name__ for i in read.items] == ["Referral", "Discharge"]
        assert read.items[0].raw == REFERRAL
        assert read.problems == ()

    def test_mllp_framed_messages_with_garbage_between(self) -> None:
        data = frame(REFERRAL) + b"\r\n" + b"noise" + frame(DISCHARGE) + b"\n" + b"\x0bMSH|^~"
        read = read_file(data)
        kinds = [(i.ack_code, type(i.content).__name__, i.raw) for i in read.items]
        assert kinds == [
            (AckCode.ACCEPT, "Referral", REFERRAL),
            (AckCode.REJECT, "NoneType", b"\r\nnoise"),  # nothing is silently dropped
            (AckCode.ACCEPT, "Discharge", DISCHARGE),
            (AckCode.REJECT, "NoneType", b"MSH|^~"),  # the frame that never ended
        ]

    def test_a_batch_with_its_envelope(self) -> None:
        data = b"FHS|^~\\&|SENDER\rBHS|^~\\&|SENDER\r" + REFERRAL + DISCHARGE + b"BTS|2\rFTS|1\r"
        read = read_file(data)
        assert [i.ack_code for i in read.items] == [AckCode.ACCEPT, AckCode.ACCEPT]
        assert [s.name for s in read.envelope] == ["FHS", "BHS", "BTS", "FTS"]
        assert read.problems == ()

    def test_a_batch_count_that_does_not_match_is_reported(self) -> None:
        read = read_file(b"BHS|^~\\&|SENDER\r" + REFERRAL + b"BTS|3\r")
        assert [(p.location, p.severity) for p in read.problems] == [
            (Location("BTS", 1, 1), Severity.WARNING)
        ]

    def test_segments_before_any_msh_are_an_item_not_dropped(self) -> None:
        read = read_file(b"BHS|^~\\&|X\rEVN|A03\rPID|1\rBTS|1\r")
        assert len(read.items) == 1
        assert read.items[0].raw == b"EVN|A03\rPID|1\r"
        assert only_problem(read.items[0]) == (
            Location("EVN", 1),
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
        )
