"""MLLP, the framing HL7 v2 travels in over TCP: <VT> message <FS><CR> (HL7 v2.5.1 appendix C.4).

`MllpDecoder` is the sans-I/O part: bytes in, events out (a frame, a frame too large, bytes
discarded outside frames, a frame cut off by the end of the stream). `serve_mllp` is the
asyncio listener around it: one frame at a time per connection, each answered with the
messages the handler returns, each in a frame of its own, in order: none for a message that
wants no answer (an acknowledgment, or enhanced mode's NE), two for enhanced mode's accept and
application acknowledgments. A frame over the size limit is refused (`ack.refuse`) and the
connection closed; nothing a client sends can stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType

from adapters.hl7v2.ack import refuse
from adapters.hl7v2.errors import ErrorCode, Location, Problem

__all__ = [
    "CR",
    "FS",
    "VT",
    "BytesDiscarded",
    "FrameIncomplete",
    "FrameReceived",
    "FrameTooLarge",
    "MllpDecoder",
    "MllpEvent",
    "MllpServer",
    "MllpStats",
    "frame",
    "serve_mllp",
]

VT = b"\x0b"  # start block
FS = b"\x1c"  # end block
CR = b"\r"  # ends the end block

logger = logging.getLogger(__name__)


def frame(payload: bytes) -> bytes:
    """Wrap one message in an MLLP block."""
    return VT + payload + FS + CR


@dataclass(frozen=True)
class FrameReceived:
    """A complete frame; `payload` is the message bytes between <VT> and <FS>."""

    payload: bytes


@dataclass(frozen=True)
class FrameTooLarge:
    """A frame grew past the limit; `head` is its first `limit` bytes (enough to find MSH-10).
    The rest of the frame, up to its <FS>, is skipped."""

    head: bytes
    limit: int


@dataclass(frozen=True)
class BytesDiscarded:
    """Bytes outside any frame, or a frame abandoned by a new <VT> before its <FS>."""

    data: bytes


@dataclass(frozen=True)
class FrameIncomplete:
    """The stream ended inside a frame; `partial` is what had arrived."""

    partial: bytes


MllpEvent = FrameReceived | FrameTooLarge | BytesDiscarded | FrameIncomplete


class _State(Enum):
    OUTSIDE = "outside"
    INSIDE = "inside"
    SKIPPING = "skipping"


class MllpDecoder:
    """Incremental MLLP decoder: feed it bytes as they arrive, in any split."""

    def __init__(self, max_message_bytes: int | None = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.discarded_bytes = 0
        self._state = _State.OUTSIDE
        self._buffer = bytearray()
        self._expect_cr = False

    @property
    def in_frame(self) -> bool:
        """True between a <VT> and its <FS>."""
        return self._state is not _State.OUTSIDE

    def feed(self, data: bytes) -> list[MllpEvent]:
        """Consume `data`; return the events it completes, in order."""
        events: list[MllpEvent] = []
        position, size = 0, len(data)
        while position < size:
            if self._expect_cr:
                # <FS> already closed the frame; its <CR> is expected but not insisted on.
                self._expect_cr = False
                if data[position] == CR[0]:
                    position += 1
                    continue
            if self._state is _State.OUTSIDE:
                start = data.find(VT, position)
                end = size if start < 0 else start
                if end > position:
                    self._discard(data[position:end], events)
                if start < 0:
                    break
                self._state = _State.INSIDE
                position = start + 1
            elif self._state is _State.INSIDE:
                position = self._inside(data, position, events)
            else:
                stop = data.find(FS, position)
                if stop < 0:
                    break
                self._state = _State.OUTSIDE
                self._expect_cr = True
                position = stop + 1
        return events

    def _inside(self, data: bytes, position: int, events: list[MllpEvent]) -> int:
        stop = data.find(FS, position)
        restart = data.find(VT, position)
        if restart >= 0 and (stop < 0 or restart < stop):
            self._discard(VT + bytes(self._buffer) + data[position:restart], events)
            self._buffer.clear()
            return restart + 1
        end = len(data) if stop < 0 else stop
        self._buffer += data[position:end]
        limit = self.max_message_bytes
        if limit is not None and len(self._buffer) > limit:
            events.append(FrameTooLarge(bytes(self._buffer[:limit]), limit))
            self._buffer.clear()
            if stop < 0:
                self._state = _State.SKIPPING
                return len(data)
            self._state = _State.OUTSIDE
            self._expect_cr = True
            return stop + 1
        if stop < 0:
            return len(data)
        events.append(FrameReceived(bytes(self._buffer)))
        self._buffer.clear()
        self._state = _State.OUTSIDE
        self._expect_cr = True
        return stop + 1

    def _discard(self, data: bytes, events: list[MllpEvent]) -> None:
        self.discarded_bytes += len(data)
        events.append(BytesDiscarded(data))

    def close(self) -> list[MllpEvent]:
        """End of stream: report a frame left open."""
        events: list[MllpEvent] = []
        if self._state is _State.INSIDE:
            events.append(FrameIncomplete(bytes(self._buffer)))
        self._buffer.clear()
        self._state = _State.OUTSIDE
        self._expect_cr = False
        return events


# --- the asyncio listener ---------------------------------------------------------------------

Handler = Callable[[bytes], Awaitable[Sequence[bytes]]]
"""A received message in, the messages that answer it out (each framed on its own)."""


@dataclass
class MllpStats:
    """Counters since the server started (read them; the server writes them)."""

    connections: int = 0
    frames: int = 0
    discarded_bytes: int = 0
    oversize_frames: int = 0
    incomplete_frames: int = 0
    handler_failures: int = 0
    idle_timeouts: int = 0


class MllpServer:
    """A running MLLP listener; `close()` stops it and ends the open connections."""

    def __init__(self, stats: MllpStats) -> None:
        self.stats = stats
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        if self._server is None:
            raise RuntimeError("the MLLP server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _track(self, task: asyncio.Task[None]) -> None:
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def close(self) -> None:
        """Stop accepting, cancel the connections in progress, and wait for both."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> MllpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def serve_mllp(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_message_bytes: int,
    idle_timeout: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_control_id: Callable[[], str] = lambda: uuid.uuid4().hex[:20],
) -> MllpServer:
    """Listen on (host, port) and answer each frame with the messages `await handler(payload)`
    returns, each framed; with none, the connection waits for the next frame.

    A frame over `max_message_bytes` is refused with code 104 and the connection is closed; a
    handler that raises is refused with code 207 so the sender retries: AR in original mode, CE
    in enhanced mode when MSH-15 asks for it, as `ack.refuse` decides from the MSH when that is
    readable. Failures are logged by kind, never with their text, which can quote the message.
    A connection silent for `idle_timeout` seconds is closed. `clock` and `new_control_id`
    stamp the ACKs the server writes itself.
    """
    stats = MllpStats()
    mllp = MllpServer(stats)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            mllp._track(task)
        stats.connections += 1
        connection = _Connection(
            reader, writer, handler, stats, max_message_bytes, idle_timeout, clock, new_control_id
        )
        try:
            await connection.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the server outlives any client
            logger.error("MLLP: the connection failed (%s)", type(error).__name__)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    mllp._server = await asyncio.start_server(on_connect, host, port, limit=2**16)
    return mllp


class _Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        stats: MllpStats,
        max_message_bytes: int,
        idle_timeout: float,
        clock: Callable[[], datetime],
        new_control_id: Callable[[], str],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.new_control_id = new_control_id
        self.decoder = MllpDecoder(max_message_bytes)

    async def run(self) -> None:
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(2**16), self.idle_timeout)
            except TimeoutError:
                self.stats.idle_timeouts += 1
                return
            except OSError:  # reset by the peer: as good as closed
                data = b""
            events = self.decoder.close() if not data else self.decoder.feed(data)
            for event in events:
                if not await self._on(event):
                    return
            if not data:
                return

    async def _on(self, event: MllpEvent) -> bool:
        """Act on one event; False ends the connection."""
        if isinstance(event, BytesDiscarded):
            self.stats.discarded_bytes += len(event.data)
            logger.warning("MLLP: discarded %d bytes outside a frame", len(event.data))
            return True
        if isinstance(event, FrameIncomplete):
            self.stats.incomplete_frames += 1
            logger.warning("MLLP: connection closed inside a frame (%d bytes)", len(event.partial))
            return False
        if isinstance(event, FrameTooLarge):
            self.stats.oversize_frames += 1
            problem = Problem(
                Location("MSH", 1),
                ErrorCode.VALUE_TOO_LONG,
                f"the message exceeds {event.limit} bytes",
            )
            await self._send(self._refusal(event.head, problem, truncated=True))
            return False
        self.stats.frames += 1
        try:
            answers = await self.handler(event.payload)
        except Exception as error:
            self.stats.handler_failures += 1
            logger.error("MLLP: the handler failed (%s)", type(error).__name__)
            problem = Problem(
                Location("MSH", 1),
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                "the message could not be processed; send it again later",
            )
            answers = self._refusal(event.payload, problem, truncated=False)
        return await self._send(answers)

    def _refusal(self, head: bytes, problem: Problem, *, truncated: bool) -> tuple[bytes, ...]:
        return refuse(
            head, problem, control_id=self.new_control_id(), at=self.clock(), truncated=truncated
        )

    async def _send(self, payloads: Sequence[bytes]) -> bool:
        """Frame and send each payload in order; False when the peer is gone or stalls."""
        try:
            for payload in payloads:
                self.writer.write(frame(payload))
                await asyncio.wait_for(self.writer.drain(), self.idle_timeout)
        except (OSError, TimeoutError):
            return False
        return True
