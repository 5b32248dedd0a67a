"""MLLP: the sans-I/O decoder, and the real asyncio listener over loopback TCP sockets."""

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

from hypothesis import given
from hypothesis import strategies as st

from adapters.hl7v2.ack import Outcome, acknowledge, acknowledgments
from adapters.hl7v2.errors import AckCode
from adapters.hl7v2.messages import read_message
from adapters.hl7v2.mllp import (
    BytesDiscarded,
    FrameIncomplete,
    FrameReceived,
    FrameTooLarge,
    MllpDecoder,
    MllpEvent,
    MllpServer,
    frame,
    serve_mllp,
)

from . import (
    AT,
    DISCHARGE,
    INCOMING_ACK,
    REFERRAL,
    REFERRAL_SEGMENTS,
    discharge_asking,
    message,
)

WAIT = 5.0  # seconds; every socket wait is bounded so a failing test ends by itself


def feed_all(decoder: MllpDecoder, pieces: list[bytes]) -> list[MllpEvent]:
    return [event for piece in pieces for event in decoder.feed(piece)]


def merged(events: list[MllpEvent]) -> list[MllpEvent]:
    """Adjacent discarded pieces as one, so splits that cut garbage compare equal."""
    out: list[MllpEvent] = []
    for event in events:
        if isinstance(event, BytesDiscarded) and out and isinstance(out[-1], BytesDiscarded):
            out[-1] = BytesDiscarded(out[-1].data + event.data)
        else:
            out.append(event)
    return out


class TestDecoder:
    def test_one_frame(self) -> None:
        assert MllpDecoder().feed(frame(REFERRAL)) == [FrameReceived(REFERRAL)]

    def test_byte_by_byte(self) -> None:
        data = frame(REFERRAL) + frame(DISCHARGE)
        events = feed_all(MllpDecoder(), [bytes([b]) for b in data])
        assert events == [FrameReceived(REFERRAL), FrameReceived(DISCHARGE)]

    def test_garbage_outside_frames_is_discarded_and_counted(self) -> None:
        decoder = MllpDecoder()
        events = decoder.feed(b"hello" + frame(b"A") + b"\r\n" + frame(b"B") + b"xyz")
        assert events == [
            BytesDiscarded(b"hello"),
            FrameReceived(b"A"),
            BytesDiscarded(b"\r\n"),  # frame() already ended the block with FS CR
            FrameReceived(b"B"),
            BytesDiscarded(b"xyz"),
        ]
        assert decoder.discarded_bytes == 10

    def test_a_new_start_block_abandons_the_open_frame(self) -> None:
        decoder = MllpDecoder()
        events = decoder.feed(b"\x0bhalf" + frame(b"whole"))
        assert events == [BytesDiscarded(b"\x0bhalf"), FrameReceived(b"whole")]

    def test_a_frame_over_the_limit(self) -> None:
        decoder = MllpDecoder(max_message_bytes=10)
        events = feed_all(decoder, [b"\x0b" + b"x" * 8, b"y" * 8, b"z" * 100 + b"\x1c\r"])
        events += decoder.feed(frame(b"small"))
        assert events == [FrameTooLarge(b"x" * 8 + b"yy", 10), FrameReceived(b"small")]

    def test_a_frame_exactly_at_the_limit_passes(self) -> None:
        assert MllpDecoder(max_message_bytes=5).feed(frame(b"12345")) == [FrameReceived(b"12345")]

    def test_the_stream_ending_inside_a_frame(self) -> None:
        decoder = MllpDecoder()
        assert decoder.feed(b"\x0bMSH|partial") == []
        assert decoder.in_frame
        assert decoder.close() == [FrameIncomplete(b"MSH|partial")]
        assert not decoder.in_frame

    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=30).map(frame),
                st.binary(max_size=5).filter(lambda b: b"\x0b" not in b),
            ),
            max_size=6,
        ),
        st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    )
    def test_any_split_gives_the_same_events(self, parts: list[bytes], cuts: list[int]) -> None:
        data = b"".join(parts)
        whole = merged(MllpDecoder().feed(data))
        points = sorted({min(c, len(data)) for c in cuts})
        pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
        assert merged(feed_all(MllpDecoder(), pieces)) == whole


# --- the server over real sockets -------------------------------------------------------------

Scenario = Callable[[MllpServer, list[bytes]], Awaitable[None]]
Handler = Callable[[list[bytes], bytes], Awaitable[Sequence[bytes]]]


async def ack_handler(received: list[bytes], payload: bytes) -> tuple[bytes, ...]:
    received.append(payload)
    return (acknowledge(read_message(payload), control_id=f"ACK{len(received)}", at=AT),)


def run(
    scenario: Scenario,
    *,
    max_message_bytes: int = 65536,
    idle_timeout: float = WAIT,
    handler: Handler = ack_handler,
) -> None:
    async def main() -> None:
        received: list[bytes] = []
        server = await serve_mllp(
            "127.0.0.1",
            0,
            lambda payload: handler(received, payload),
            max_message_bytes=max_message_bytes,
            idle_timeout=idle_timeout,
            clock=lambda: AT,
            new_control_id=lambda: "SRV",
        )
        async with server:
            await asyncio.wait_for(scenario(server, received), WAIT * 2)

    asyncio.run(main())


class Client:
    """A loopback TCP client on a plain socket, with Nagle off so each send is its own write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> "Client":
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, *writes: bytes) -> None:
        for data in writes:
            self.writer.write(data)
            await self.writer.drain()
            await asyncio.sleep(0.02)  # let each write arrive as its own segment

    async def ack(self) -> bytes:
        """One framed response, unframed."""
        data = await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), WAIT)
        assert data.startswith(b"\x0b")
        return data[1:-2]

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), WAIT) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def msa(ack: bytes) -> str:
    return ack.split(b"\r")[1].decode()


async def as_asked(received: list[bytes], payload: bytes) -> tuple[bytes, ...]:
    """A receiver that commits whatever it reads: the acknowledgments its sender asks for."""
    received.append(payload)
    header = read_message(payload).header
    committed = Outcome(AckCode.ACCEPT, AckCode.COMMIT_ACCEPT)
    return acknowledgments(header, committed, new_control_id=lambda: f"ACK{len(received)}", at=AT)


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


class TestServer:
    def test_one_message_one_ack(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(REFERRAL))
            ack = await client.ack()
            assert ack.startswith(b"MSH|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|")
            assert msa(ack) == "MSA|AA|REF-0001"
            assert received == [REFERRAL]
            await client.close()

        run(scenario)

    def test_a_frame_split_across_writes(self) -> None:
        data = frame(REFERRAL)

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(data[:1], data[1:50], data[50:-2], data[-2:-1], data[-1:])
            assert msa(await client.ack()) == "MSA|AA|REF-0001"
            assert received == [REFERRAL]
            await client.close()

        run(scenario)

    def test_two_frames_in_one_write_get_two_acks_in_order(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(REFERRAL) + frame(DISCHARGE))
            assert msa(await client.ack()) == "MSA|AA|REF-0001"
            assert msa(await client.ack()) == "MSA|AA|ADT-7781"
            assert received == [REFERRAL, DISCHARGE]
            assert server.stats.frames == 2
            await client.close()

        run(scenario)

    def test_an_oversize_frame_is_refused_and_the_connection_is_closed(self) -> None:
        """REFERRAL asks for accept acknowledgments (MSH-15 AL): the refusal is a CE."""
        big = message(*REFERRAL_SEGMENTS, *["NTE|||" + "x" * 1000] * 10)

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(big))
            ack = await client.ack()
            assert ack.split(b"\r")[:3] == [
                b"MSH|^~\\&|RECOVERY-INTEROP|HARBOR|CLINIC-EHR|"
                b"NORTHSIDE^2.16.840.1.113883.3.1234^ISO|20240310120000+0000||"
                b"ACK^I12^ACK|SRV|P|2.5.1|||NE|NE",
                b"MSA|CE|REF-0001|the message exceeds 4096 bytes",
                b"ERR||MSH^1|104^Value too long^HL70357|E||||the message exceeds 4096 bytes",
            ]
            assert await client.closed_by_server()
            assert received == []
            assert server.stats.oversize_frames == 1
            await client.close()

        run(scenario, max_message_bytes=4096)

    def test_garbage_before_a_frame_is_discarded_and_counted(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(b"GET / HTTP/1.1\r\n\r\n", frame(DISCHARGE))
            assert msa(await client.ack()) == "MSA|AA|ADT-7781"
            assert received == [DISCHARGE]
            assert server.stats.discarded_bytes == len(b"GET / HTTP/1.1\r\n\r\n")
            await client.close()

        run(scenario)

    def test_a_client_that_disconnects_mid_frame_does_not_hurt_the_server(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            quitter = await Client.connect(server.port)
            await quitter.send(frame(REFERRAL)[:100])
            await quitter.close()
            await eventually(lambda: server.stats.incomplete_frames == 1)
            assert received == []
            client = await Client.connect(server.port)
            await client.send(frame(REFERRAL))
            assert msa(await client.ack()) == "MSA|AA|REF-0001"
            assert received == [REFERRAL]
            await client.close()

        run(scenario)

    def test_a_client_that_resets_the_connection(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
            sock.sendall(frame(REFERRAL)[:50])
            # SO_LINGER on with 0 seconds: close with RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            await eventually(lambda: server.stats.incomplete_frames == 1)
            assert received == []
            client = await Client.connect(server.port)
            await client.send(frame(DISCHARGE))
            assert msa(await client.ack()) == "MSA|AA|ADT-7781"
            await client.close()

        run(scenario)

    def test_an_lf_separated_message_is_read_as_its_segments(self) -> None:
        lf = message(*REFERRAL_SEGMENTS, terminator="\n")

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(lf))
            assert msa(await client.ack()) == "MSA|AA|REF-0001"
            assert received == [lf]
            await client.close()

        run(scenario)

    def test_a_malformed_message_gets_ae_naming_segment_and_field(self) -> None:
        bad = REFERRAL.replace(b"|19850214|", b"|1985-02-14|")

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(bad))
            ack = await client.ack()
            assert msa(ack) == "MSA|AE|REF-0001|PID-7 is not a valid HL7 date/time"
            assert ack.split(b"\r")[2].startswith(b"ERR||PID^1^7^1|102^Data type error^HL70357|")
            await client.close()

        run(scenario)

    def test_a_silent_client_is_closed_after_the_idle_timeout(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            assert await client.closed_by_server()
            assert server.stats.idle_timeouts == 1
            await client.close()

        run(scenario, idle_timeout=0.2)

    def test_a_failing_handler_gets_ar_207_and_the_connection_stays_open(self) -> None:
        calls: list[bytes] = []

        async def flaky(payload: bytes) -> tuple[bytes, ...]:
            calls.append(payload)
            if len(calls) == 1:
                raise RuntimeError("database down")
            return (acknowledge(read_message(payload), control_id="OK", at=AT),)

        async def main() -> None:
            server = await serve_mllp(
                "127.0.0.1", 0, flaky, max_message_bytes=65536, idle_timeout=WAIT
            )
            async with server:
                client = await Client.connect(server.port)
                await client.send(frame(DISCHARGE))
                failed = await client.ack()
                assert msa(failed) == (
                    "MSA|AR|ADT-7781|the message could not be processed; send it again later"
                )
                assert b"|207^Application internal error^HL70357|" in failed
                await client.send(frame(DISCHARGE))
                assert msa(await client.ack()) == "MSA|AA|ADT-7781"
                assert server.stats.handler_failures == 1
                await client.close()

        asyncio.run(main())

    def test_close_ends_open_connections(self) -> None:
        async def main() -> None:
            server = await serve_mllp(
                "127.0.0.1",
                0,
                lambda payload: ack_handler([], payload),
                max_message_bytes=65536,
                idle_timeout=WAIT,
            )
            client = await Client.connect(server.port)
            await client.send(b"\x0bMSH|half a frame")
            await asyncio.wait_for(server.close(), WAIT)
            assert await client.closed_by_server()
            await client.close()

        asyncio.run(main())


class TestAnswers:
    """The listener sends each message the handler answers with in a frame of its own, in
    order, and none when it answers with none: the connection then waits for the next frame."""

    def test_an_acknowledgment_is_not_answered_and_the_connection_stays_open(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(INCOMING_ACK), frame(DISCHARGE))
            assert msa(await client.ack()) == "MSA|AA|ADT-7781"  # the first frame back
            assert received == [INCOMING_ACK, DISCHARGE]
            assert server.stats.frames == 2
            await client.close()

        run(scenario, handler=as_asked)

    def test_two_answers_go_in_two_frames_in_order(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(discharge_asking("AL", "AL")))
            commit, application = await client.ack(), await client.ack()
            assert (msa(commit), msa(application)) == ("MSA|CA|ADT-7781", "MSA|AA|ADT-7781")
            await client.send(frame(DISCHARGE.replace(b"|ADT-7781|", b"|ADT-7782|")))
            assert msa(await client.ack()) == "MSA|AA|ADT-7782"  # nothing else came between
            await client.close()

        run(scenario, handler=as_asked)

    def test_never_asked_for_nothing_is_sent(self) -> None:
        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(discharge_asking("NE", "NE")), frame(REFERRAL))
            assert msa(await client.ack()) == "MSA|CA|REF-0001"  # REFERRAL asks AL, NE
            assert len(received) == 2
            await client.close()

        run(scenario, handler=as_asked)

    def test_a_failing_handler_in_enhanced_mode_gets_ce_207(self) -> None:
        async def failing(received: list[bytes], payload: bytes) -> tuple[bytes, ...]:
            received.append(payload)
            raise RuntimeError("database down")

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(discharge_asking("ER", "AL")))
            failed = await client.ack()
            assert failed.split(b"\r")[0].endswith(b"|ACK^A03^ACK|SRV|P|2.5.1|||NE|NE")
            assert msa(failed) == (
                "MSA|CE|ADT-7781|the message could not be processed; send it again later"
            )
            assert b"|207^Application internal error^HL70357|" in failed
            # MSH-15 NE: not even a failure is told; the connection waits for the next frame
            await client.send(frame(discharge_asking("NE", "AL", "ADT-2")), frame(DISCHARGE))
            assert msa(await client.ack()).startswith("MSA|AR|ADT-7781|")
            assert server.stats.handler_failures == 3
            await client.close()

        run(scenario, handler=failing)

    def test_an_oversize_acknowledgment_is_not_answered(self) -> None:
        big = INCOMING_ACK + b"NTE|||" + b"x" * 5000 + b"\r"

        async def scenario(server: MllpServer, received: list[bytes]) -> None:
            client = await Client.connect(server.port)
            await client.send(frame(big))
            assert await client.closed_by_server()  # closed, and nothing sent before
            assert server.stats.oversize_frames == 1
            await client.close()

        run(scenario, max_message_bytes=4096)
