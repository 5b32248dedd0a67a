"""ACK^<trigger>: MSH swapped and echoed, MSA-1/MSA-2, ERR-2 location and table 0357 code."""

from collections.abc import Callable
from datetime import datetime

import pytest

from adapters.hl7v2.ack import (
    Condition,
    Outcome,
    Responder,
    acknowledge,
    acknowledge_batch,
    acknowledgments,
    build_ack,
    is_acknowledgment,
    refuse,
)
from adapters.hl7v2.er7 import MessageHeader, decode, parse_message
from adapters.hl7v2.errors import AckCode, ErrorCode, Location, Problem
from adapters.hl7v2.messages import read_file, read_message
from tests.conftest import corpus

from . import (
    AT,
    DISCHARGE,
    INCOMING_ACK,
    REFERRAL,
    REFERRAL_PID,
    REFERRAL_SEGMENTS,
    discharge_asking,
    message,
)


def lines(ack: bytes) -> list[str]:
    text = ack.decode("utf-8")
    assert text.endswith("\r")
    return text[:-1].split("\r")


class TestAcknowledge:
    def test_aa_for_a_referral(self) -> None:
        ack = acknowledge(read_message(REFERRAL), control_id="ACK-1", at=AT)
        assert lines(ack) == [
            "MSH|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|NORTHSIDE^2.16.840.1.113883.3.1234^ISO|"
            "20240310120000+0000||ACK^I12^ACK|ACK-1|P|2.5.1",
            "MSA|AA|REF-0001",
        ]

    def test_aa_for_a_discharge(self) -> None:
        ack = acknowledge(read_message(DISCHARGE), control_id="ACK-2", at=AT)
        assert lines(ack)[0].split("|")[8] == "ACK^A03^ACK"
        assert lines(ack)[1] == "MSA|AA|ADT-7781"

    def test_ae_names_segment_sequence_field_and_code(self) -> None:
        bad_pid = REFERRAL_PID.replace("|19850214|", "|1985-02-14|")
        raw = message(*(bad_pid if s == REFERRAL_PID else s for s in REFERRAL_SEGMENTS))
        ack = acknowledge(read_message(raw), control_id="ACK-3", at=AT)
        assert lines(ack)[1:] == [
            "MSA|AE|REF-0001|PID-7 is not a valid HL7 date/time",
            "ERR||PID^1^7^1|102^Data type error^HL70357|E||||PID-7 is not a valid HL7 date/time",
        ]

    def test_ar_for_an_unsupported_event(self) -> None:
        raw = REFERRAL.replace(b"REF^I12^REF_I12", b"REF^I15^REF_I12")
        ack = lines(acknowledge(read_message(raw), control_id="ACK-4", at=AT))
        assert ack[0].split("|")[8] == "ACK^I15^ACK"
        assert ack[1].startswith("MSA|AR|REF-0001|")
        assert ack[2].startswith("ERR||MSH^1^9^1^2|201^Unsupported event code^HL70357|E|")

    def test_several_problems_give_several_err_segments(self) -> None:
        raw = REFERRAL.replace(b"|19850214|", b"|bad|").replace(b"|20240305|", b"|bad|")
        ack = lines(acknowledge(read_message(raw), control_id="ACK-5", at=AT))
        errs = [line.split("|")[2] for line in ack if line.startswith("ERR")]
        assert errs == ["RF1^1^7^1", "PID^1^7^1"]

    def test_a_message_that_cannot_be_parsed_gets_ar_with_its_msh_echoed(self) -> None:
        raw = REFERRAL.replace(b"\rPID|", b"\rPID-")
        ack = lines(acknowledge(read_message(raw), control_id="ACK-6", at=AT))
        assert ack[0].startswith("MSH|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|")
        assert ack[1] == (
            "MSA|AR|REF-0001|a line does not start with a segment ID and the field separator"
        )
        assert ack[2].startswith("ERR||PID^1|100^Segment sequence error^HL70357|E|")

    def test_nothing_readable_gets_ar_with_a_minimal_msh(self) -> None:
        ack = lines(acknowledge(read_message(b"\x00garbage"), control_id="ACK-7", at=AT))
        assert ack[0] == "MSH|^~\\&|RECOVERY-INTEROP||||20240310120000+0000||ACK|ACK-7|P|2.5.1"
        assert ack[1].startswith("MSA|AR||")
        assert ack[2].startswith("ERR||???^1|100^")

    def test_the_responder_names_us_when_the_sender_did_not(self) -> None:
        raw = b"MSH|^~\\&|A|B|||20240101||ADT^A03|C9|T|2.5\r"
        ack = acknowledge(
            read_message(raw), control_id="X", at=AT, responder=Responder("US", "HERE")
        )
        assert lines(ack)[0] == "MSH|^~\\&|US|HERE|A|B|20240310120000+0000||ACK^A03^ACK|X|T|2.5"

    def test_the_sender_delimiters_are_echoed(self) -> None:
        raw = b"MSH#*!$%#APP#FAC*X$F$Y#ME#US###REF*I12#C1#P#2.5.1\r"
        ack = lines(acknowledge(read_message(raw), control_id="K", at=AT))
        assert ack[0] == "MSH#*!$%#ME#US#APP#FAC*X$F$Y#20240310120000+0000##ACK*I12*ACK#K#P#2.5.1"
        assert ack[1].startswith("MSA#AE#C1#RF1 is missing")
        parsed = parse_message(decode("\r".join(ack).encode()))
        assert parsed.header.receiving_facility == ((("FAC",), ("X#Y",)),)

    def test_pre_2_5_senders_get_err_1(self) -> None:
        raw = REFERRAL.replace(b"|P|2.5.1|", b"|P|2.3|").replace(b"|19850214|", b"|x|")
        ack = lines(acknowledge(read_message(raw), control_id="K", at=AT))
        assert ack[0].endswith("|K|P|2.3")
        assert ack[2] == "ERR|PID^1^7^102&Data type error&HL70357"


class TestBuildAck:
    def test_the_time_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            build_ack(None, read_message(b"").ack_code, control_id="X", at=datetime(2024, 1, 1))

    def test_refuse_ignores_a_cut_last_line(self) -> None:
        problem = Problem(Location("MSH", 1), ErrorCode.VALUE_TOO_LONG, "too large")
        head = REFERRAL[: REFERRAL.index(b"REF-0001") + 3]  # MSH-10 cut to "REF"
        [cut] = refuse(head, problem, control_id="K", at=AT, truncated=True)
        assert lines(cut)[1] == "MSA|AR||too large"  # no MSH-15 read: original mode
        [whole] = refuse(REFERRAL[:300], problem, control_id="K", at=AT, truncated=True)
        assert lines(whole)[1] == "MSA|CE|REF-0001|too large"  # MSH-15 AL: commit error
        assert lines(whole)[2] == "ERR||MSH^1|104^Value too long^HL70357|E||||too large"

    def test_refuse_answers_an_original_mode_message_ar(self) -> None:
        problem = Problem(Location("MSH", 1), ErrorCode.APPLICATION_INTERNAL_ERROR, "failed")
        [ack] = refuse(DISCHARGE, problem, control_id="K", at=AT)
        assert lines(ack)[1:] == [
            "MSA|AR|ADT-7781|failed",
            "ERR||MSH^1|207^Application internal error^HL70357|E||||failed",
        ]

    def test_refuse_answers_an_acknowledgment_with_nothing(self) -> None:
        problem = Problem(Location("MSH", 1), ErrorCode.VALUE_TOO_LONG, "too large")
        assert refuse(INCOMING_ACK, problem, control_id="K", at=AT) == ()


class TestBatchAcknowledgment:
    """A batch sent in one piece is answered by a batch of every message's ACK (HL7 v2.5.1
    section 2.10.3.3): its BHS answers theirs, and a strict reader takes it as a batch."""

    def batch(self, *, file: bool, count: str = "2") -> bytes:
        second = REFERRAL.replace(b"|REF-0001|", b"|REF-0002|")
        bhs = b"BHS|^~\\&|CLINIC-EHR|NORTHSIDE|RECOVERY-INTEROP|HARBOR|20240305143000||||B-77\r"
        body = bhs + REFERRAL + second + f"BTS|{count}\r".encode()
        if not file:
            return body
        return (
            b"FHS|^~\\&|CLINIC-EHR|NORTHSIDE|RECOVERY-INTEROP|HARBOR|||||F-9\r" + body + b"FTS|1\r"
        )

    def answer(self, batch: bytes) -> bytes:
        read = read_file(batch)
        acks = [
            acknowledge(item, control_id=f"ACK-{n}", at=AT) for n, item in enumerate(read.items)
        ]
        comment = read.problems[0].reason if read.problems else ""
        return acknowledge_batch(read.envelope, acks, control_id="B-1", at=AT, comment=comment)

    def test_every_message_is_acknowledged_in_a_batch_answering_theirs(self) -> None:
        answer = lines(self.answer(self.batch(file=False)))
        assert answer[0] == (
            "BHS|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|NORTHSIDE|20240310120000+0000||||B-1|B-77"
        )
        assert [line for line in answer if line.startswith("MSA")] == [
            "MSA|AA|REF-0001",
            "MSA|AA|REF-0002",
        ]
        assert answer[-1] == "BTS|2"

    def test_a_file_is_answered_with_a_file_and_reads_back_as_a_valid_batch(self) -> None:
        answer = self.answer(self.batch(file=True))
        assert lines(answer)[0].endswith("|F-9")
        assert lines(answer)[-2:] == ["BTS|2", "FTS|1"]
        read = read_file(answer)
        assert read.problems == ()
        assert [item.header.control_id for item in read.items if item.header] == ["ACK-0", "ACK-1"]

    def test_a_count_that_does_not_match_is_said_in_bts_2(self) -> None:
        batch = self.batch(file=False, count="5")
        [problem] = read_file(batch).problems
        answer = lines(self.answer(batch))
        assert answer[-1] == f"BTS|2|{problem.reason}"
        assert "5" in problem.reason

    def test_the_published_sample_file_is_answered_message_for_message(self) -> None:
        sample = corpus("hl7v2") / "python-hl7_sample_file.hl7"
        answer = lines(self.answer(sample.read_bytes().replace(b"\n", b"\r")))
        assert answer[0].startswith("FHS|^~\\&|RECOVERY-INTEROP|AUSDHSV||ABCHS|")
        assert answer[1].endswith("|abchs20070101123401-1")
        assert [line.split("|")[2] for line in answer if line.startswith("MSA")] == [
            "12334456778890"
        ]
        assert answer[-2:] == ["BTS|1", "FTS|1"]


def header_asking(accept: str, application: str) -> MessageHeader:
    """The discharge's MSH with MSH-15 `accept` and MSH-16 `application`."""
    header = read_message(discharge_asking(accept, application)).header
    assert header is not None
    return header


def numbered() -> Callable[[], str]:
    """New control ids ACK-1, ACK-2..., so each ACK shows it has its own MSH-10."""
    count = iter(range(1, 100))
    return lambda: f"ACK-{next(count)}"


def answered(header: MessageHeader | None, outcome: Outcome) -> list[list[str]]:
    """Each ACK due, as its lines after MSH, preceded by its MSH-10."""
    acks = acknowledgments(header, outcome, new_control_id=numbered(), at=AT)
    return [[lines(ack)[0].split("|")[9], *lines(ack)[1:]] for ack in acks]


PROCESSED = Outcome(AckCode.ACCEPT, AckCode.COMMIT_ACCEPT)
HELD = Outcome(
    AckCode.ERROR,
    AckCode.COMMIT_ACCEPT,
    (Problem(Location("PRD", 2), ErrorCode.UNKNOWN_KEY_IDENTIFIER, "held for staff"),),
)
REFUSED = Outcome(
    AckCode.REJECT,
    AckCode.COMMIT_REJECT,
    (Problem(Location("MSH", 1, 9), ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "ORU is not taken"),),
)
NOT_STORED = Outcome(
    AckCode.REJECT,
    AckCode.COMMIT_ERROR,
    (Problem(Location("MSH"), ErrorCode.APPLICATION_INTERNAL_ERROR, "send it again"),),
)
HELD_ERR = "ERR||PRD^2|204^Unknown key identifier^HL70357|E||||held for staff"
REFUSED_ERR = "ERR||MSH^1^9|200^Unsupported message type^HL70357|E||||ORU is not taken"
NOT_STORED_ERR = "ERR||MSH^1|207^Application internal error^HL70357|E||||send it again"


class TestConditions:
    """HL7 table 0155, as MSH-15 and MSH-16 use it."""

    @pytest.mark.parametrize(
        ("condition", "on_success", "on_failure"),
        [
            (Condition.ALWAYS, True, True),
            (Condition.NEVER, False, False),
            (Condition.ERROR, False, True),
            (Condition.SUCCESS, True, False),
        ],
    )
    def test_when_each_calls_for_an_acknowledgment(
        self, condition: Condition, on_success: bool, on_failure: bool
    ) -> None:
        assert (condition.calls_for(True), condition.calls_for(False)) == (on_success, on_failure)

    def test_an_outcome_not_committed_is_ar_in_original_mode(self) -> None:
        with pytest.raises(ValueError, match="AR"):
            Outcome(AckCode.ACCEPT, AckCode.COMMIT_ERROR)
        with pytest.raises(ValueError, match="application code"):
            Outcome(AckCode.COMMIT_ACCEPT, AckCode.COMMIT_ACCEPT)


class TestOriginalMode:
    def test_one_ack_with_the_application_code_and_no_msh_15_or_16(self) -> None:
        header = read_message(DISCHARGE).header
        acks = acknowledgments(header, HELD, new_control_id=numbered(), at=AT)
        [ack] = acks
        assert lines(ack)[0].endswith("|ACK^A03^ACK|ACK-1|P|2.5.1")
        assert lines(ack)[1:] == ["MSA|AE|ADT-7781|held for staff", HELD_ERR]

    @pytest.mark.parametrize("outcome", [REFUSED, NOT_STORED])
    def test_a_message_not_committed_gets_ar(self, outcome: Outcome) -> None:
        [[_, msa, _]] = answered(read_message(DISCHARGE).header, outcome)
        assert msa.startswith("MSA|AR|ADT-7781|")

    def test_nothing_readable_gets_ar(self) -> None:
        assert answered(None, NOT_STORED) == [["ACK-1", "MSA|AR||send it again", NOT_STORED_ERR]]


class TestEnhancedMode:
    """HL7 v2.5.1 section 2.9.3: MSH-15 decides the accept acknowledgment (CA, CE, CR), MSH-16
    the application acknowledgment (AA, AE, AR) that follows it as an ACK of its own."""

    def test_each_ack_says_it_wants_no_answer_in_its_own_msh_15_and_16(self) -> None:
        acks = acknowledgments(
            header_asking("AL", "AL"), PROCESSED, new_control_id=numbered(), at=AT
        )
        assert [lines(ack)[0].split("|")[8:] for ack in acks] == [
            ["ACK^A03^ACK", "ACK-1", "P", "2.5.1", "", "", "NE", "NE"],
            ["ACK^A03^ACK", "ACK-2", "P", "2.5.1", "", "", "NE", "NE"],
        ]

    @pytest.mark.parametrize(
        ("accept", "application", "codes"),
        [
            ("AL", "AL", ["CA", "AA"]),
            ("AL", "NE", ["CA"]),
            ("NE", "AL", ["AA"]),
            ("NE", "NE", []),
            ("ER", "ER", []),
            ("SU", "SU", ["CA", "AA"]),
            ("ER", "SU", ["AA"]),
            ("AL", "", ["CA"]),  # a field left empty asks for nothing
            ("", "AL", ["AA"]),
            ("XX", "NE", ["CA"]),  # a value outside table 0155 is answered
        ],
    )
    def test_a_processed_message(self, accept: str, application: str, codes: list[str]) -> None:
        answers = answered(header_asking(accept, application), PROCESSED)
        assert [answer[1] for answer in answers] == [f"MSA|{code}|ADT-7781" for code in codes]
        assert [answer[0] for answer in answers] == [f"ACK-{n}" for n in range(1, len(codes) + 1)]

    @pytest.mark.parametrize(
        ("accept", "application", "due"),
        [
            ("AL", "AL", [["MSA|CA|ADT-7781"], ["MSA|AE|ADT-7781|held for staff", HELD_ERR]]),
            ("ER", "ER", [["MSA|AE|ADT-7781|held for staff", HELD_ERR]]),
            ("SU", "SU", [["MSA|CA|ADT-7781"]]),
            ("AL", "NE", [["MSA|CA|ADT-7781"]]),
        ],
    )
    def test_a_message_committed_and_held_is_accepted_then_answered_ae(
        self, accept: str, application: str, due: list[list[str]]
    ) -> None:
        answers = answered(header_asking(accept, application), HELD)
        assert [answer[1:] for answer in answers] == due

    @pytest.mark.parametrize(
        ("accept", "due"),
        [
            ("AL", [["MSA|CR|ADT-7781|ORU is not taken", REFUSED_ERR]]),
            ("ER", [["MSA|CR|ADT-7781|ORU is not taken", REFUSED_ERR]]),
            ("SU", []),
            ("NE", []),
        ],
    )
    def test_a_refused_message_gets_cr_and_never_an_application_ack(
        self, accept: str, due: list[list[str]]
    ) -> None:
        answers = answered(header_asking(accept, "AL"), REFUSED)
        assert [answer[1:] for answer in answers] == due

    @pytest.mark.parametrize("accept", ["AL", "ER"])
    def test_a_message_not_committed_gets_ce_and_never_an_application_ack(
        self, accept: str
    ) -> None:
        answers = answered(header_asking(accept, "AL"), NOT_STORED)
        assert [answer[1:] for answer in answers] == [
            ["MSA|CE|ADT-7781|send it again", NOT_STORED_ERR]
        ]


class TestAcknowledgmentsAreNotAnswered:
    """Acknowledging acknowledgments results in an infinite loop (HL7 v2 chapter 2)."""

    def test_an_ack_is_an_acknowledgment(self) -> None:
        assert is_acknowledgment(read_message(INCOMING_ACK).header)
        assert not is_acknowledgment(read_message(DISCHARGE).header)
        assert not is_acknowledgment(None)

    @pytest.mark.parametrize("outcome", [PROCESSED, HELD, REFUSED, NOT_STORED])
    def test_whatever_the_outcome(self, outcome: Outcome) -> None:
        header = read_message(INCOMING_ACK).header
        assert acknowledgments(header, outcome, new_control_id=numbered(), at=AT) == ()

    def test_in_enhanced_mode_too(self) -> None:
        enhanced = INCOMING_ACK.replace(b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r")
        header = read_message(enhanced).header
        assert header is not None
        assert header.accept_ack_type == "AL"
        assert acknowledgments(header, REFUSED, new_control_id=numbered(), at=AT) == ()
