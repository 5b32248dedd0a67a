"""MllpChannel against real TCP servers on loopback: our own listener answering AA, AE and AR,
and raw sockets that stay silent, hang up, talk nonsense or answer for another message."""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.hl7v2.ack import acknowledge, build_ack, encode_ack
from adapters.hl7v2.client import DETAIL_LIMIT, MllpChannel
from adapters.hl7v2.er7 import decode, sniff_header
from adapters.hl7v2.errors import AckCode, ErrorCode, Location, Problem
from adapters.hl7v2.messages import read_message
from adapters.hl7v2.mllp import FrameReceived, MllpDecoder, frame, serve_mllp
from adapters.hl7v2.outbound import write_cancellation, write_referral, write_return
from adapters.ports import Channel, Delivery, Receipt

from . import AT
from .test_outbound import envelope, referral, returned

WAIT = 5.0  # seconds; bounds every wait, so a failing test ends by itself even on a busy machine
QUICK = 0.3  # the ACK timeout where the test is the timeout
REFERRAL = write_referral(referral(), envelope("OUT-0001"))

Handler = Callable[[bytes], Awaitable[tuple[bytes, ...]]]
Behaviour = Callable[[socket.socket], object]


def channel(port: int, *, ack_timeout: float = WAIT, max_ack_bytes: int = 65536) -> MllpChannel:
    """Every other outcome ends the wait by an event (an answer, a hang-up), never the clock."""
    return MllpChannel(
        "127.0.0.1",
        port,
        connect_timeout=WAIT,
        ack_timeout=ack_timeout,
        max_ack_bytes=max_ack_bytes,
    )


@contextlib.contextmanager
def listener(handler: Handler) -> Iterator[int]:
    """Our own asyncio MLLP listener, run on an event loop in a thread; yields its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        started = serve_mllp(
            "127.0.0.1",
            0,
            handler,
            max_message_bytes=65536,
            idle_timeout=WAIT,
            clock=lambda: AT,
            new_control_id=lambda: "SRV",
        )
        server = asyncio.run_coroutine_threadsafe(started, loop).result(WAIT)
        try:
            yield server.port
        finally:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(WAIT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


@contextlib.contextmanager
def raw_server(behave: Behaviour) -> Iterator[int]:
    """A plain socket server that accepts one connection and acts out `behave` on it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT)

        def serve() -> None:
            with contextlib.suppress(OSError):  # the client hanging up is part of every story
                connection, _ = server.accept()
                with connection:
                    connection.settimeout(WAIT)
                    behave(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        thread.join(WAIT)


def read_frame(connection: socket.socket) -> bytes:
    decoder = MllpDecoder()
    while data := connection.recv(4096):
        for event in decoder.feed(data):
            if isinstance(event, FrameReceived):
                return event.payload
    return b""


def drain(connection: socket.socket) -> None:
    """Wait for the client to hang up."""
    while connection.recv(4096):
        pass


def replying(answer: Callable[[str], bytes]) -> Behaviour:
    """Read the message, send `answer(its MSH-10)` as it is, then wait for the client to go."""

    def behave(connection: socket.socket) -> None:
        header = sniff_header(decode(read_frame(connection)))
        connection.sendall(answer(header.control_id if header else ""))
        drain(connection)

    return behave


def ack(code: str, control_id: str, text: str = "", *more: str) -> bytes:
    """An ACK as a partner writes it, framed."""
    lines = [
        "MSH|^~\\&|CLINIC-EHR|NORTHSIDE|RECOVERY-INTEROP|HARBOR|20240310120000+0000||"
        "ACK^I12^ACK|NS-1|P|2.5.1",
        f"MSA|{code}|{control_id}|{text}",
        *more,
    ]
    return frame("".join(line + "\r" for line in lines).encode())


async def answer_aa(payload: bytes) -> tuple[bytes, ...]:
    return (acknowledge(read_message(payload), control_id="ACK1", at=AT),)


class TestAcknowledged:
    def test_our_own_listener_reads_the_referral_and_answers_aa(self) -> None:
        received: list[bytes] = []

        async def handler(payload: bytes) -> tuple[bytes, ...]:
            received.append(payload)
            return await answer_aa(payload)

        with listener(handler) as port:
            receipt = channel(port).deliver(REFERRAL)
        assert receipt == Receipt(Delivery.ACKNOWLEDGED, "OUT-0001")
        assert received == [REFERRAL]

    def test_an_enhanced_mode_commit_accept_counts(self) -> None:
        with raw_server(replying(lambda control_id: ack("CA", control_id))) as port:
            assert channel(port).deliver(REFERRAL) == Receipt(Delivery.ACKNOWLEDGED, "OUT-0001")

    def test_it_is_a_channel_for_bytes(self) -> None:
        with listener(answer_aa) as port:
            partner: Channel[bytes] = channel(port)
            assert partner.deliver(REFERRAL).state is Delivery.ACKNOWLEDGED


class TestRejected:
    def test_ae_with_the_partners_reason(self) -> None:
        async def handler(payload: bytes) -> tuple[bytes, ...]:
            problem = Problem(
                Location("PID", 1, 3), ErrorCode.UNKNOWN_KEY_IDENTIFIER, "no such patient here"
            )
            header = read_message(payload).header
            answer = build_ack(header, AckCode.ERROR, (problem,), control_id="ACK1", at=AT)
            return (encode_ack(answer),)

        with listener(handler) as port, pytest.raises(PartnerRejected) as refused:
            channel(port).deliver(REFERRAL)
        assert (refused.value.reason, refused.value.detail) == ("AE 204", "no such patient here")

    @pytest.mark.parametrize(
        ("message", "reason", "detail"),
        [
            (
                write_cancellation(referral(), envelope("OUT-0002")).replace(
                    b"REF^I14^REF_I12", b"REF^I15^REF_I12"
                ),
                "AR 201",
                "event REF^I15 is not accepted (REF^I12, REF^I14, RRI^I12, ADT^A03 are)",
            ),
            (
                write_return(returned(), envelope("OUT-0003")).replace(
                    b"RRI^I12^RRI_I12", b"ORU^R01^ORU_R01"
                ),
                "AR 200",
                "message type ORU is not accepted (REF^I12, REF^I14, RRI^I12, ADT^A03 are)",
            ),
        ],
    )
    def test_ar_from_a_listener_that_does_not_take_the_message(
        self, message: bytes, reason: str, detail: str
    ) -> None:
        with listener(answer_aa) as port, pytest.raises(PartnerRejected) as refused:
            channel(port).deliver(message)
        assert (refused.value.reason, refused.value.detail) == (reason, detail)

    @pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
    def test_every_refusal_without_an_error_code_is_final(self, code: str) -> None:
        with (
            raw_server(replying(lambda control_id: ack(code, control_id, "refused"))) as port,
            pytest.raises(PartnerRejected) as refused,
        ):
            channel(port).deliver(REFERRAL)
        assert (refused.value.reason, refused.value.detail) == (code, "refused")

    def test_a_pre_2_5_err_1_is_read_for_its_code_and_text(self) -> None:
        err = "ERR|PID^1^3^204&Unknown key identifier&HL70357"
        with (
            raw_server(replying(lambda control_id: ack("AE", control_id, "", err))) as port,
            pytest.raises(PartnerRejected) as refused,
        ):
            channel(port).deliver(REFERRAL)
        assert (refused.value.reason, refused.value.detail) == ("AE 204", "Unknown key identifier")

    def test_the_partners_text_is_kept_on_one_line_and_cut_short(self) -> None:
        long = "Line one\\.br\\" + "x" * 500
        with (
            raw_server(replying(lambda control_id: ack("AR", control_id, long))) as port,
            pytest.raises(PartnerRejected) as refused,
        ):
            channel(port).deliver(REFERRAL)
        assert refused.value.detail == ("Line one " + "x" * 500)[:DETAIL_LIMIT]


class TestUnavailable:
    def test_ar_207_when_the_partners_handler_fails(self) -> None:
        async def failing(payload: bytes) -> tuple[bytes, ...]:
            raise RuntimeError("database down")

        with listener(failing) as port, pytest.raises(PartnerUnavailable) as failed:
            channel(port).deliver(REFERRAL)
        assert failed.value.reason == "AR 207: Application internal error"

    def test_ae_206_record_locked(self) -> None:
        err = "ERR||PID^1|206^Application record locked^HL70357|E"
        with (
            raw_server(replying(lambda control_id: ack("AE", control_id, "locked", err))) as port,
            pytest.raises(PartnerUnavailable, match="AE 206"),
        ):
            channel(port).deliver(REFERRAL)

    def test_nothing_listening(self) -> None:
        with socket.socket() as bound:  # bound but not listening: the kernel refuses
            bound.bind(("127.0.0.1", 0))
            port = bound.getsockname()[1]
            with pytest.raises(PartnerUnavailable, match="cannot connect to"):
                channel(port).deliver(REFERRAL)

    def test_a_silent_partner_times_out_quickly(self) -> None:
        started = time.monotonic()
        with raw_server(drain) as port, pytest.raises(PartnerUnavailable, match="timed out"):
            channel(port, ack_timeout=QUICK).deliver(REFERRAL)
        assert time.monotonic() - started < QUICK + 1.0

    def test_a_partner_that_hangs_up_at_once(self) -> None:
        with raw_server(lambda connection: None) as port, pytest.raises(PartnerUnavailable):
            channel(port).deliver(REFERRAL)

    def test_a_partner_that_hangs_up_after_reading(self) -> None:
        with (
            raw_server(read_frame) as port,
            pytest.raises(PartnerUnavailable, match="closed the connection without an ACK"),
        ):
            channel(port).deliver(REFERRAL)

    def test_a_partner_that_hangs_up_inside_its_ack(self) -> None:
        def half_an_ack(connection: socket.socket) -> None:
            read_frame(connection)
            connection.sendall(ack("AA", "OUT-0001")[:40])

        with (
            raw_server(half_an_ack) as port,
            pytest.raises(PartnerUnavailable, match="inside its ACK"),
        ):
            channel(port).deliver(REFERRAL)

    def test_a_partner_that_answers_another_protocol(self) -> None:
        with (
            raw_server(replying(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n")) as port,
            pytest.raises(PartnerUnavailable, match="outside an MLLP frame"),
        ):
            channel(port).deliver(REFERRAL)

    def test_an_ack_for_another_message(self) -> None:
        with (
            raw_server(replying(lambda _: ack("AA", "OUT-9999"))) as port,
            pytest.raises(PartnerUnavailable, match="answers message 'OUT-9999', not 'OUT-0001'"),
        ):
            channel(port).deliver(REFERRAL)

    @pytest.mark.parametrize(
        ("answer", "why"),
        [
            (frame(b"hello"), "the ACK cannot be read"),
            (frame(b"MSH|^~\\&|NS|NS|||20240310||ACK|1|P|2.5.1\r"), "no MSA segment"),
            (ack("OK", "OUT-0001"), "'OK' is not in HL7 table 0008"),
        ],
    )
    def test_an_answer_that_is_no_ack(self, answer: bytes, why: str) -> None:
        with (
            raw_server(replying(lambda _: answer)) as port,
            pytest.raises(PartnerUnavailable, match=why),
        ):
            channel(port).deliver(REFERRAL)

    def test_an_ack_over_the_size_limit_is_not_read(self) -> None:
        with (
            raw_server(replying(lambda control_id: ack("AA", control_id, "x" * 5000))) as port,
            pytest.raises(PartnerUnavailable, match="exceeds 1024 B"),
        ):
            channel(port, max_ack_bytes=1024).deliver(REFERRAL)


class TestChannel:
    def test_a_message_without_a_control_id_is_a_bug_not_a_delivery(self) -> None:
        with pytest.raises(ValueError, match="MSH-10"):
            channel(9).deliver(b"MSH|^~\\&|A|B|C|D|20240310||REF^I12^REF_I12||P|2.5.1\r")

    @pytest.mark.parametrize(
        ("connect", "wait", "size"), [(0.0, 1.0, 1), (1.0, -1.0, 1), (1.0, 1.0, 0)]
    )
    def test_limits_must_be_positive(self, connect: float, wait: float, size: int) -> None:
        with pytest.raises(ValueError, match="positive"):
            MllpChannel(
                "127.0.0.1", 2575, connect_timeout=connect, ack_timeout=wait, max_ack_bytes=size
            )
