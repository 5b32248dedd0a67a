"""The v2.5.1 writers: field positions, what our own reader reads back, and escaping of any text."""

from dataclasses import fields, is_dataclass, replace
from datetime import date, datetime, timedelta, timezone
from importlib import import_module
from importlib.util import find_spec
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.hl7v2.er7 import Message, decode, parse_message
from adapters.hl7v2.messages import (
    Coded,
    EntityIdentifier,
    HierarchicDesignator,
    Identifier,
    Inbound,
    PersonName,
    Referral,
    read_file,
    read_message,
)
from adapters.hl7v2.outbound import (
    PART2_NOTE_TYPE,
    Code,
    Envelope,
    OutgoingPatient,
    OutgoingReferral,
    Part2Marking,
    Party,
    Priority,
    ReferralStatus,
    ReturnedReferral,
    Sex,
    write_cancellation,
    write_referral,
    write_return,
)
from consent import NOTICE_FULL
from tests.conftest import corpus

EASTERN = timezone(timedelta(hours=-5))
T = TypeVar("T")


def envelope(control_id: str = "OUT-0001") -> Envelope:
    return Envelope(
        sending_application="RECOVERY-INTEROP",
        sending_facility="HARBOR",
        receiving_application="CLINIC-EHR",
        receiving_facility="NORTHSIDE",
        control_id=control_id,
        sent_at=datetime(2024, 3, 5, 14, 30, tzinfo=EASTERN),
    )


def patient() -> OutgoingPatient:
    return OutgoingPatient(
        identifiers=(
            Identifier(
                "MRN-555", "MR", HierarchicDesignator("HARBOR", "2.16.840.1.113883.3.77", "ISO")
            ),
            Identifier("123-45-6789", "SS", HierarchicDesignator("SSA")),
        ),
        names=(PersonName("O'Brien", "Patrick", "J", "Jr"),),
        birth_date=date(1985, 2, 14),
        sex=Sex.MALE,
    )


HARBOR = Party("Harbor Recovery", "1234567890", "NPI")
NORTHSIDE = Party("Northside Clinic", "9876543210", "NPI")


def referral(**changes: Any) -> OutgoingReferral:
    base = OutgoingReferral(
        originating_id=EntityIdentifier("R-2024-0042", "HARBOR"),
        patient=patient(),
        referring=HARBOR,
        referred_to=NORTHSIDE,
        priority=Priority.ASAP,
        effective=datetime(2024, 3, 5, 14, 0, tzinfo=EASTERN),
        reason="Step down to IOP.\r\nNeeds transport.",
        type=Code("Psy", "Psychiatric", "HL70281"),
        category=Code("O", "Outpatient", "HL70284"),
        diagnoses=(Code("F10.20", "Alcohol dependence, uncomplicated", "I10"),),
    )
    return replace(base, **changes)


def returned(
    status: ReferralStatus = ReferralStatus.REJECTED, reason: str = ""
) -> ReturnedReferral:
    return ReturnedReferral(
        originating_id=EntityIdentifier("NS-77", "NORTHSIDE"),
        status=status,
        patient=patient(),
        referring=NORTHSIDE,
        referred_to=HARBOR,
        reason=reason,
    )


def lines(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    assert text.endswith("\r")
    return text[:-1].split("\r")


def parsed(data: bytes) -> Message:
    return parse_message(decode(data))


def read_referral(data: bytes) -> Referral:
    inbound = read_message(data)
    assert inbound.problems == ()
    assert isinstance(inbound.content, Referral)
    return inbound.content


def as_read(value: T) -> T:
    """A written value as the reader gives it back: every text without surrounding whitespace
    (the reader strips each leaf, str.strip(), so also \\x1c-\\x1f and \\x85)."""
    if isinstance(value, str):
        return value.strip()  # type: ignore[return-value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: as_read(getattr(value, f.name)) for f in fields(value)})
    return value


class TestReferral:
    def test_every_segment_and_field_position(self) -> None:
        assert lines(write_referral(referral(), envelope())) == [
            "MSH|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|NORTHSIDE|20240305143000-0500||"
            "REF^I12^REF_I12|OUT-0001|P|2.5.1||||||UNICODE UTF-8",
            "RF1|P^Pending^HL70283|A^ASAP^HL70280|Psy^Psychiatric^HL70281||O^Outpatient^HL70284|"
            "R-2024-0042^HARBOR|20240305140000-0500",
            "PRD|RP^Referring Provider^HL70286|||^^^Harbor Recovery|||1234567890^NPI",
            "PRD|RT^Referred to Provider^HL70286|||^^^Northside Clinic|||9876543210^NPI",
            "PID|1||MRN-555^^^HARBOR&2.16.840.1.113883.3.77&ISO^MR~123-45-6789^^^SSA^SS||"
            "O'Brien^Patrick^J^Jr||19850214|M",
            "DG1|1||F10.20^Alcohol dependence, uncomplicated^I10|||W",
            "NTE|1|P|Step down to IOP.\\.br\\Needs transport.|1R^Primary Reason^HL70364",
        ]

    def test_our_reader_accepts_it_and_reads_the_same_referral(self) -> None:
        sent = referral()
        read = read_referral(write_referral(sent, envelope()))
        assert read.originating_id == sent.originating_id
        assert read.status == Coded("P", "Pending", "HL70283")
        assert read.priority == Coded("A", "ASAP", "HL70280")
        assert read.type == Coded("Psy", "Psychiatric", "HL70281")
        assert read.category == Coded("O", "Outpatient", "HL70284")
        assert read.effective is not None
        assert read.effective.to_datetime() == sent.effective
        assert read.patient.identifiers == sent.patient.identifiers
        assert read.patient.names == sent.patient.names
        assert read.patient.birth_date is not None
        assert read.patient.birth_date.to_date() == date(1985, 2, 14)
        assert read.patient.sex == "M"
        assert [d.code for d in read.diagnoses] == [
            Coded("F10.20", "Alcohol dependence, uncomplicated", "I10")
        ]
        assert [d.type_code for d in read.diagnoses] == ["W"]
        assert [(n.text, n.source) for n in read.notes] == [
            ("Step down to IOP.\nNeeds transport.", "P")
        ]

    def test_each_program_is_read_back_as_the_facility_and_identifier_of_its_prd(self) -> None:
        read = read_referral(write_referral(referral(), envelope()))
        for provider, party in ((read.referring, HARBOR), (read.referred_to, NORTHSIDE)):
            assert provider is not None
            assert provider.location is not None
            assert provider.location.facility == HierarchicDesignator(party.name)
            assert [(i.value, i.type_code) for i in provider.identifiers] == [
                (party.identifier, party.identifier_type)
            ]

    def test_optional_parts_write_nothing(self) -> None:
        bare = referral(
            patient=OutgoingPatient((Identifier("MRN-1"),), (PersonName("Doe"),)),
            reason=" \n ",
            type=None,
            category=None,
            diagnoses=(),
        )
        written = lines(write_referral(bare, envelope()))
        assert [line[:3] for line in written] == ["MSH", "RF1", "PRD", "PRD", "PID"]
        assert written[1] == (
            "RF1|P^Pending^HL70283|A^ASAP^HL70280||||R-2024-0042^HARBOR|20240305140000-0500"
        )
        assert written[4] == "PID|1||MRN-1||Doe"
        assert read_message(write_referral(bare, envelope())).accepted

    def test_delimiters_in_values_are_escaped_and_read_back(self) -> None:
        odd = referral(
            patient=OutgoingPatient((Identifier("A|1^2"),), (PersonName("Smith & Wesson", "J~R"),)),
            referring=Party("Harbor\\Recovery", "12&3", "NPI"),
        )
        written = lines(write_referral(odd, envelope()))
        assert written[2].endswith("|||^^^Harbor\\E\\Recovery|||12\\T\\3^NPI")
        assert written[4] == "PID|1||A\\F\\1\\S\\2||Smith \\T\\ Wesson^J\\R\\R"
        read = read_referral(write_referral(odd, envelope()))
        assert read.patient.identifiers == (Identifier("A|1^2"),)
        assert read.patient.names == (PersonName("Smith & Wesson", "J~R"),)

    def test_a_sender_in_another_zone_keeps_its_offset(self) -> None:
        kolkata = timezone(timedelta(hours=5, minutes=30))
        at = datetime(2024, 3, 5, 1, 2, 3, tzinfo=kolkata)
        written = lines(write_referral(referral(effective=at), envelope()))
        assert "|20240305010203+0530" in written[1]


@pytest.mark.corpus
def test_the_shape_follows_a_real_ref_i12() -> None:
    """Our segments come in the order a real sender's REF^I12 has them, and the reader finds the
    referral identifier and the programs at the same places in both."""
    theirs = read_file((corpus("hl7v2") / "REF-I12-01.hl7").read_bytes()).items[0]
    ours = read_message(write_referral(referral(), envelope()))

    def order(inbound: Inbound) -> list[str]:
        assert inbound.message is not None
        return [segment.name for segment in inbound.message.segments]

    remaining = iter(order(theirs))
    assert all(name in remaining for name in order(ours))  # a subsequence, in order
    for inbound in (theirs, ours):
        assert isinstance(inbound.content, Referral)
        assert inbound.content.originating_id.value
        assert inbound.content.referring is not None
        assert inbound.content.referring.location is not None
        assert inbound.content.referring.location.facility is not None


class TestCancellation:
    def test_it_names_the_referral_by_rf1_6_and_restates_nothing_else(self) -> None:
        written = lines(write_cancellation(referral(), envelope("OUT-0002")))
        assert written[0].split("|")[8:10] == ["REF^I14^REF_I12", "OUT-0002"]
        assert written[1] == "RF1||||||R-2024-0042^HARBOR"
        assert [line[:3] for line in written] == ["MSH", "RF1", "PRD", "PRD", "PID"]
        referral_lines = lines(write_referral(referral(), envelope()))
        assert written[2:] == referral_lines[2:5]

    def test_it_says_why_in_a_note_and_a_partner_reads_it_back(self) -> None:
        """Probe 11 L6: the partner was not told why its referral was cancelled."""
        written = write_cancellation(referral(), envelope(), "Client chose another clinic")
        assert lines(written)[-1].startswith("NTE|1|P|Client chose another clinic")
        read = read_referral(written)
        assert [(n.text, n.source) for n in read.notes] == [("Client chose another clinic", "P")]


class TestReturn:
    @pytest.mark.parametrize(
        ("status", "rf1_1"),
        [
            (ReferralStatus.ACCEPTED, "A^Accepted^HL70283"),
            (ReferralStatus.PENDING, "P^Pending^HL70283"),
            (ReferralStatus.REJECTED, "R^Rejected^HL70283"),
            (ReferralStatus.EXPIRED, "E^Expired^HL70283"),
        ],
    )
    def test_rf1_carries_the_status_and_the_referrers_identifier(
        self, status: ReferralStatus, rf1_1: str
    ) -> None:
        written = lines(write_return(returned(status), envelope()))
        assert written[0].split("|")[8] == "RRI^I12^RRI_I12"
        assert written[1] == f"RF1|{rf1_1}|||||NS-77^NORTHSIDE"
        assert [line[:3] for line in written] == ["MSH", "RF1", "PRD", "PRD", "PID"]

    def test_a_decline_says_why_in_an_nte_from_the_filler(self) -> None:
        written = lines(write_return(returned(reason="No bed until May | sorry"), envelope()))
        assert written[2:4] == [
            "PRD|RP^Referring Provider^HL70286|||^^^Northside Clinic|||9876543210^NPI",
            "PRD|RT^Referred to Provider^HL70286|||^^^Harbor Recovery|||1234567890^NPI",
        ]
        assert written[-1] == "NTE|1|L|No bed until May \\F\\ sorry|1R^Primary Reason^HL70364"
        assert "MSA" not in [line[:3] for line in written]


MARKING = Part2Marking(
    notice=NOTICE_FULL,
    confidentiality="R",
    labels=("42CFRPart2", "NORDSCLCD", "SUD"),
    consents=("Consent/consent-robin",),
)
MARKING_NTE = (
    f"{NOTICE_FULL}~Consent relied on: Consent/consent-robin"
    "~Security labels: R 42CFRPart2 NORDSCLCD SUD|42CFRPart2^42 CFR Part 2 notice^L"
)


def python_hl7_reads_the_marking(data: bytes) -> None:
    """python-hl7, a second reader beside our own, finds MSH-8 and the notice, when installed."""
    if find_spec("hl7") is None:
        return
    message = import_module("hl7").parse(data.decode("utf-8"))
    assert str(message.segment("MSH")[8]) == "R"
    [notice] = [nte for nte in message.segments("NTE") if str(nte[4]).startswith("42CFRPart2^")]
    assert [str(line) for line in notice[3]] == list(MARKING.lines())


def unmarked(data: bytes) -> bool:
    """Neither MSH-8 nor an NTE of type 42CFRPart2."""
    message = parsed(data)
    notes = [nte.value(4) for nte in message.named("NTE")]
    return message.header.segment.value(8) == "" and PART2_NOTE_TYPE.code not in notes


class TestPart2Marking:
    """§2.32(a), PART2.md S1 and S2 in v2.5.1: MSH-8 Security carries the confidentiality, and
    a message-level NTE (allowed at the end of REF_I12 and RRI_I12) the notice, the consent
    relied on and every label; a message without Part 2 data carries neither."""

    def test_a_referral_carries_the_notice_the_consent_and_the_labels(self) -> None:
        data = write_referral(referral(part2=MARKING), envelope())
        written = lines(data)
        assert written[0].split("|")[7] == "R"
        assert written[-2:] == [
            "NTE|1|P|Step down to IOP.\\.br\\Needs transport.|1R^Primary Reason^HL70364",
            f"NTE|2|P|{MARKING_NTE}",
        ]
        read = read_referral(data)  # no problems: a strict reading accepts it
        assert [(note.type, note.text) for note in read.notes][1] == (
            Coded(PART2_NOTE_TYPE.code, PART2_NOTE_TYPE.text, PART2_NOTE_TYPE.system),
            "\n".join(MARKING.lines()),
        )
        python_hl7_reads_the_marking(data)
        assert unmarked(write_referral(referral(), envelope()))

    def test_a_cancellation_and_an_answer_carry_it_too(self) -> None:
        answer = returned(ReferralStatus.ACCEPTED)
        cancellation = write_cancellation(referral(), envelope())
        for data, bare in (
            (write_cancellation(referral(part2=MARKING), envelope()), cancellation),
            (
                write_return(replace(answer, part2=MARKING), envelope()),
                write_return(answer, envelope()),
            ),
        ):
            written = lines(data)
            assert written[0].split("|")[7] == "R"
            assert written[-1].startswith("NTE|1|")
            assert written[-1].endswith(MARKING_NTE)
            assert read_message(data).problems == ()
            python_hl7_reads_the_marking(data)
            assert unmarked(bare)

    def test_a_marking_needs_the_notice_and_a_restricted_confidentiality(self) -> None:
        with pytest.raises(ValueError, match="notice"):
            replace(MARKING, notice=" ")
        with pytest.raises(ValueError, match="MSH-8"):
            replace(MARKING, confidentiality="N")


class TestValues:
    def test_the_envelope_needs_an_aware_time(self) -> None:
        with pytest.raises(ValueError, match="MSH-7"):
            replace(envelope(), sent_at=datetime(2024, 3, 5, 14, 30))

    @pytest.mark.parametrize("control_id", ["", "  ", "X" * 21])
    def test_the_control_id_fits_msh_10(self, control_id: str) -> None:
        with pytest.raises(ValueError, match="MSH-10"):
            envelope(control_id)

    def test_the_processing_id_is_msh_11(self) -> None:
        written = lines(write_referral(referral(), replace(envelope(), processing_id="T")))
        assert written[0].split("|")[10] == "T"

    def test_a_referral_needs_its_originating_identifier(self) -> None:
        with pytest.raises(ValueError, match="RF1-6"):
            referral(originating_id=EntityIdentifier(" ", "HARBOR"))
        with pytest.raises(ValueError, match="RF1-6"):
            ReturnedReferral(
                EntityIdentifier(""), ReferralStatus.ACCEPTED, patient(), NORTHSIDE, HARBOR
            )

    def test_a_referral_needs_an_aware_effective_time(self) -> None:
        with pytest.raises(ValueError, match="RF1-7"):
            referral(effective=datetime(2024, 3, 5))

    def test_a_patient_needs_an_identifier_and_a_name(self) -> None:
        with pytest.raises(ValueError, match="PID-3"):
            OutgoingPatient((Identifier(" "),), (PersonName("Doe"),))
        with pytest.raises(ValueError, match="PID-5"):
            OutgoingPatient((Identifier("MRN-1"),), ())
        with pytest.raises(ValueError, match="PID-5"):
            OutgoingPatient((Identifier("MRN-1"),), (PersonName(" ", prefix="Dr"),))


# --- properties: any text survives ------------------------------------------------------------

any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("|^~\\&\r\n\x0b\x1c\t X.éß漢😀"),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
some_text = any_text.filter(lambda text: text != "")
visible_text = any_text.filter(lambda text: text.strip() != "")

designators = st.builds(HierarchicDesignator, some_text, any_text, any_text)
identifiers = st.builds(
    Identifier, some_text, any_text, st.none() | designators, st.none() | designators
)
names = st.builds(PersonName, some_text, any_text, any_text, any_text, any_text, any_text, any_text)
parties = st.builds(Party, visible_text, visible_text, visible_text)
codes = st.builds(Code, some_text, any_text, any_text)
patients = st.builds(
    OutgoingPatient,
    st.tuples(identifiers.filter(lambda i: i.value.strip() != "")).map(tuple)
    | st.lists(identifiers, min_size=2, max_size=3)
    .filter(lambda found: any(i.value.strip() for i in found))
    .map(tuple),
    st.lists(names, min_size=1, max_size=3)
    .filter(lambda found: any(n.family.strip() or n.given.strip() for n in found))
    .map(tuple),
    st.none() | st.dates(date(1900, 1, 1), date(2100, 12, 31)),
    st.none() | st.sampled_from(Sex),
)
referrals = st.builds(
    OutgoingReferral,
    originating_id=st.builds(EntityIdentifier, visible_text, any_text, any_text, any_text),
    patient=patients,
    referring=parties,
    referred_to=parties,
    priority=st.sampled_from(Priority),
    effective=st.datetimes(
        datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(EASTERN)
    ),
    reason=any_text,
    type=st.none() | codes,
    category=st.none() | codes,
    diagnoses=st.lists(codes, max_size=3).map(tuple),
)


def expected_note(reason: str) -> list[str]:
    """The one normalization of free text: CR LF and a lone CR become LF (FT has only \\.br\\)."""
    if not reason.strip():
        return []
    return [reason.replace("\r\n", "\n").replace("\r", "\n")]


class TestAnyText:
    @given(referrals)
    def test_the_reader_gets_back_what_was_written(self, sent: OutgoingReferral) -> None:
        written = write_referral(sent, envelope())
        read = read_referral(written)
        assert read.originating_id == as_read(sent.originating_id)
        assert read.patient.identifiers == tuple(as_read(i) for i in sent.patient.identifiers)
        assert read.patient.names == tuple(as_read(n) for n in sent.patient.names)
        birth = read.patient.birth_date
        assert (birth.to_date() if birth else None) == sent.patient.birth_date
        assert read.patient.sex == (sent.patient.sex or "")
        assert read.priority == Coded(sent.priority.value, sent.priority.text, "HL70280")
        effective = read.effective.to_datetime() if read.effective else None
        assert effective == sent.effective.replace(microsecond=0)
        for provider, party, role in (
            (read.referring, sent.referring, "RP"),
            (read.referred_to, sent.referred_to, "RT"),
        ):
            assert provider is not None
            assert provider.role.code == role
            assert provider.location is not None
            assert provider.location.facility == HierarchicDesignator(party.name.strip())
            assert [(i.value, i.type_code) for i in provider.identifiers] == [
                (party.identifier.strip(), party.identifier_type.strip())
            ]
        assert [d.code for d in read.diagnoses] == [
            Coded(c.code.strip(), c.text.strip(), c.system.strip()) for c in sent.diagnoses
        ]
        assert [note.text for note in read.notes] == expected_note(sent.reason)

    @given(referrals)
    def test_no_text_can_add_a_segment_or_an_mllp_byte(self, sent: OutgoingReferral) -> None:
        written = write_referral(sent, envelope())
        assert b"\x0b" not in written
        assert b"\x1c" not in written
        assert b"\n" not in written
        assert [s.name for s in parsed(written).segments] == [
            "MSH",
            "RF1",
            "PRD",
            "PRD",
            "PID",
            *["DG1"] * len(sent.diagnoses),
            *["NTE"] * len(expected_note(sent.reason)),
        ]

    @given(referrals, st.sampled_from(ReferralStatus), any_text)
    def test_a_return_carries_any_reason_and_identifier(
        self, sent: OutgoingReferral, status: ReferralStatus, reason: str
    ) -> None:
        answer = ReturnedReferral(
            sent.originating_id, status, sent.patient, sent.referred_to, sent.referring, reason
        )
        message = parsed(write_return(answer, envelope()))
        rf1 = message.first("RF1")
        assert rf1 is not None
        identifier = sent.originating_id
        assert [rf1.value(6, n) for n in (1, 2, 3, 4)] == [
            identifier.value,
            identifier.namespace_id,
            identifier.universal_id,
            identifier.universal_id_type,
        ]
        assert rf1.value(1) == status.value
        assert [nte.value(3) for nte in message.named("NTE")] == expected_note(reason)
