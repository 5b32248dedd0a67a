"""Sending HL7 v2 over MLLP: deliver one message to a partner's listener and judge its ACK.

`MllpChannel` is the partner channel (adapters.ports.Channel) for HL7 v2 partners: one TCP
connection per delivery, the message framed (HL7 v2.5.1 appendix C.4), one framed answer read
within `ack_timeout` seconds. The answer decides, by this rule:

    MSA-1 AA or CA                     Receipt(ACKNOWLEDGED, reference=MSA-2)
    MSA-1 AE, AR, CE or CR             PartnerRejected("AR 201", the partner's text)
      ... with ERR code 206 or 207     PartnerUnavailable: the partner failed, not the message
    no connection, reset, timeout, no
    answer, an answer that is not an
    ACK for this message's MSH-10      PartnerUnavailable

Why AE and AR are final by default (section 2.9.2, table 0008): AE says the receiver found an
error in the content, and the same bytes will meet the same check; AR says the receiver does not
take the message type, event, version or processing id, or that it failed for reasons unrelated
to the content. Only that last case is worth repeating, and a receiver says it is the one with
its error code (ERR-3, ERR-1 before v2.5; table 0357): 206 application record locked, 207
application internal error. Our own listener (mllp.serve_mllp) answers a failed handler with
AR 207 for exactly this reason. An AE or AR without either code is not retried: resending
bytes a partner refuses only repeats the refusal, and staff need to see why it was refused.
CE and CR, the enhanced-mode commit codes, are read the same way.

Anything short of a readable answer to this very message is retryable: the message may or may
not have arrived, and resending it is safe because partners deduplicate referrals by RF1-6.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import KW_ONLY, dataclass

from adapters.errors import PartnerRefused, PartnerUnavailable
from adapters.hl7v2.er7 import Message, Segment, decode, parse_message, sniff_header
from adapters.hl7v2.errors import ErrorCode, Hl7ParseError
from adapters.hl7v2.mllp import (
    BytesDiscarded,
    FrameIncomplete,
    FrameReceived,
    FrameTooLarge,
    MllpDecoder,
    frame,
)
from adapters.ports import Delivery, Receipt

__all__ = ["DETAIL_LIMIT", "MllpChannel"]

DETAIL_LIMIT = 200
"""Characters of the partner's error text kept in PartnerRejected.detail."""
_ACCEPTED = frozenset({"AA", "CA"})
_REFUSED = frozenset({"AE", "AR", "CE", "CR"})
_PARTNER_FAILED = frozenset(
    {ErrorCode.APPLICATION_RECORD_LOCKED, ErrorCode.APPLICATION_INTERNAL_ERROR}
)
_READ_SIZE = 4096


@dataclass(frozen=True)
class MllpChannel:
    """A partner's MLLP listener at (host, port). `connect_timeout` bounds the TCP connect;
    `ack_timeout` bounds sending and the whole wait for the ACK, so a partner that trickles
    bytes cannot hold a dispatcher; an ACK over `max_ack_bytes` is not read."""

    host: str
    port: int
    _: KW_ONLY
    connect_timeout: float
    ack_timeout: float
    max_ack_bytes: int

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.ack_timeout <= 0 or self.max_ack_bytes <= 0:
            raise ValueError("MLLP timeouts and the ACK size limit must be positive")

    def deliver(self, payload: bytes) -> Receipt:
        """Send one ER7 message and judge the partner's ACK by the rule of this module."""
        control_id = _control_id(payload)
        return _judge(self._exchange(frame(payload)), control_id)

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _exchange(self, framed: bytes) -> bytes:
        """The payload of the one frame the partner answers with."""
        try:
            connection = socket.create_connection(
                (self.host, self.port), timeout=self.connect_timeout
            )
        except OSError as error:
            raise PartnerUnavailable(f"cannot connect to {self._where}: {_why(error)}") from error
        with connection:
            deadline = time.monotonic() + self.ack_timeout
            try:
                connection.settimeout(self.ack_timeout)
                connection.sendall(framed)
                return self._receive(connection, deadline)
            except OSError as error:
                raise PartnerUnavailable(f"no ACK from {self._where}: {_why(error)}") from error

    def _receive(self, connection: socket.socket, deadline: float) -> bytes:
        decoder = MllpDecoder(self.max_ack_bytes)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            connection.settimeout(remaining)
            data = connection.recv(_READ_SIZE)
            for event in decoder.feed(data) if data else decoder.close():
                if isinstance(event, FrameReceived):
                    return event.payload
                if isinstance(event, FrameTooLarge):
                    raise PartnerUnavailable(f"the ACK from {self._where} exceeds {event.limit} B")
                if isinstance(event, FrameIncomplete):
                    raise PartnerUnavailable(f"{self._where} closed the connection inside its ACK")
                if isinstance(event, BytesDiscarded) and event.data.strip():
                    # A stray line break between frames is tolerated; text is another protocol.
                    raise PartnerUnavailable(f"{self._where} answered outside an MLLP frame")
            if not data:
                raise PartnerUnavailable(f"{self._where} closed the connection without an ACK")


def _why(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return error.strerror or type(error).__name__


def _control_id(payload: bytes) -> str:
    """MSH-10 of the message sent, which the ACK must answer in MSA-2."""
    header = sniff_header(decode(payload))
    control_id = "" if header is None else header.control_id.strip()
    if not control_id:
        raise ValueError("the message has no MSH-10 control id to match its ACK against")
    return control_id


def _judge(answer: bytes, control_id: str) -> Receipt:
    try:
        ack = parse_message(decode(answer))
    except Hl7ParseError as error:
        raise PartnerUnavailable(f"the ACK cannot be read: {error}") from None
    msa = ack.first("MSA")
    if msa is None:
        raise PartnerUnavailable("the answer has no MSA segment")
    answered = msa.value(2).strip()
    if answered != control_id:
        raise PartnerUnavailable(f"the ACK answers message {answered!r}, not {control_id!r}")
    code = msa.value(1).strip()
    if code in _ACCEPTED:
        return Receipt(Delivery.ACKNOWLEDGED, answered)
    if code not in _REFUSED:
        raise PartnerUnavailable(f"the ACK code {code!r} is not in HL7 table 0008")
    error_code = _error_code(ack)
    if error_code in _PARTNER_FAILED:
        raise PartnerUnavailable(f"{code} {error_code.value}: {error_code.text}")
    reason = code if error_code is None else f"{code} {error_code.value}"
    raise PartnerRefused(reason, _detail(ack, msa))


def _error_code(ack: Message) -> ErrorCode | None:
    """The first table 0357 code among the ERR segments: ERR-3 (v2.5+), else ERR-1.4."""
    for err in ack.named("ERR"):
        written = err.value(3).strip() or err.value(1, 4).strip()
        with contextlib.suppress(ValueError):  # absent, or a user-defined code
            return ErrorCode(int(written))
    return None


def _detail(ack: Message, msa: Segment) -> str | None:
    """The partner's own words: MSA-3, else ERR-8 (user message), ERR-3.2 or ERR-1.4.2; on one
    line and cut short, since it goes to logs and staff screens."""
    texts = [msa.value(3)]
    for err in ack.named("ERR"):
        texts += [err.value(8), err.value(3, 2), err.value(1, 4, 2)]
    text = next((" ".join(t.split()) for t in texts if t.strip()), "")
    return text[:DETAIL_LIMIT] or None
