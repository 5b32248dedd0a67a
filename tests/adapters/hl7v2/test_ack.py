"""ACK^<trigger>: MSH swapped and echoed, MSA-1/MSA-2, ERR-2 location and table 0357 code."""

from datetime import datetime

import pytest

from adapters.hl7v2.ack import Responder, acknowledge, acknowledge_batch, build_ack, refuse
from adapters.hl7v2.er7 import decode, parse_message
from adapters.hl7v2.errors import ErrorCode, Location, Problem
from adapters.hl7v2.messages import read_file, read_message
from tests.conftest import corpus

from . import AT, DISCHARGE, REFERRAL, REFERRAL_PID, REFERRAL_SEGMENTS, message


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
        cut = lines(refuse(head, problem, control_id="K", at=AT, truncated=True))
        assert cut[1] == "MSA|AR||too large"
        whole = lines(refuse(REFERRAL[:300], problem, control_id="K", at=AT, truncated=True))
        assert whole[1] == "MSA|AR|REF-0001|too large"
        assert whole[2] == "ERR||MSH^1|104^Value too long^HL70357|E||||too large"


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
