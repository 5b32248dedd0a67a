"""Original-mode acknowledgments: ACK^<trigger> with MSA and one ERR per problem.

HL7 v2.5.1 section 2.9.2 (original acknowledgment rules), 2.15.8 (MSA), 2.15.5 (ERR). MSA-1 is
AA, AE (the content is wrong: the sender should not resend it as is) or AR (the envelope is
unsupported, the message unreadable, or we failed: the sender may resend). From v2.5 an error
is located in ERR-2 (segment^sequence^field^repetition^component) with its table 0357 code in
ERR-3 and severity in ERR-4; older senders get ERR-1 (segment^sequence^field^code&text&table).
The ACK echoes the sender's delimiters, version and processing id, swaps sender and receiver,
and answers MSH-10 in MSA-2. Time and control id are parameters: this module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adapters.hl7v2.er7 import (
    DEFAULT_ENCODING,
    Field,
    Message,
    MessageHeader,
    Segment,
    decode,
    encode_message,
    encode_segment,
    is_empty,
    sniff_header,
)
from adapters.hl7v2.errors import AckCode, Problem, Severity

__all__ = [
    "Acknowledgeable",
    "Responder",
    "acknowledge",
    "acknowledge_batch",
    "build_ack",
    "encode_ack",
    "refuse",
]

DEFAULT_VERSION = "2.5.1"


@dataclass(frozen=True)
class Responder:
    """Who we are in MSH-3/MSH-4 when the sender did not say it in its MSH-5/MSH-6."""

    application: str = "RECOVERY-INTEROP"
    facility: str = ""


class Acknowledgeable(Protocol):
    """What an acknowledgment answers (messages.Inbound is one)."""

    @property
    def header(self) -> MessageHeader | None: ...

    @property
    def ack_code(self) -> AckCode: ...

    @property
    def problems(self) -> tuple[Problem, ...]: ...


def _field(*components: str) -> Field:
    return (tuple((component,) for component in components),)


def _timestamp(at: datetime) -> str:
    offset = at.utcoffset()
    if offset is None:
        raise ValueError("the acknowledgment time must be timezone-aware")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return at.strftime("%Y%m%d%H%M%S") + f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def build_ack(
    header: MessageHeader | None,
    code: AckCode,
    problems: Sequence[Problem] = (),
    *,
    control_id: str,
    at: datetime,
    responder: Responder = Responder(),
) -> Message:
    """The ACK message for a received message whose MSH is `header` (None if unreadable)."""
    encoding = header.encoding if header is not None else DEFAULT_ENCODING
    version = DEFAULT_VERSION
    if header is not None and re.fullmatch(r"2\.\d+(\.\d+)?", header.version):
        version = header.version
    processing_id = "P"
    if header is not None and header.processing_id in ("P", "T", "D"):
        processing_id = header.processing_id
    trigger = header.trigger_event if header is not None else ""
    message_type = _field("ACK", trigger, "ACK") if trigger else _field("ACK")

    def either(theirs: Field | None, ours: str) -> Field:
        return theirs if theirs is not None and not is_empty(theirs) else _field(ours)

    msh = Segment(
        "MSH",
        (
            _field(encoding.field),
            _field(encoding.msh2),
            either(header.receiving_application if header else None, responder.application),
            either(header.receiving_facility if header else None, responder.facility),
            header.sending_application if header else _field(""),
            header.sending_facility if header else _field(""),
            _field(_timestamp(at)),
            _field(""),
            message_type,
            _field(control_id),
            _field(processing_id),
            _field(version),
        ),
    )
    text = next(
        (p.reason for p in problems if p.severity is Severity.ERROR),
        "",
    )
    msa = Segment(
        "MSA",
        (_field(code.value), _field(header.control_id if header else ""))
        + ((_field(text),) if code is not AckCode.ACCEPT and text else ()),
    )
    modern = _version_tuple(version) >= (2, 5)
    errs = tuple(_err(problem, modern) for problem in problems)
    return Message((msh, msa, *errs), encoding)


def _err(problem: Problem, modern: bool) -> Segment:
    where = problem.location
    code = problem.code
    if not modern:
        eld = (
            (where.segment,),
            (str(where.sequence),),
            ("" if where.field is None else str(where.field),),
            (str(code.value), code.text, "HL70357"),
        )
        return Segment("ERR", ((eld,),))
    erl: list[str] = [where.segment, str(where.sequence)]
    if where.field is not None:
        erl.append(str(where.field))
        if where.repetition is not None or where.component is not None:
            erl.append("" if where.repetition is None else str(where.repetition))
        if where.component is not None:
            erl.append(str(where.component))
    return Segment(
        "ERR",
        (
            _field(""),  # ERR-1, the pre-2.5 location, is replaced by ERR-2 and ERR-3
            _field(*erl),
            _field(str(code.value), code.text, "HL70357"),
            _field(problem.severity.value),
            _field(""),
            _field(""),
            _field(""),
            _field(problem.reason),  # ERR-8 user message
        ),
    )


def encode_ack(ack: Message) -> bytes:
    """The ACK as bytes (UTF-8, CR after each segment), ready to frame."""
    return encode_message(ack).encode("utf-8")


def acknowledge(
    received: Acknowledgeable,
    *,
    control_id: str,
    at: datetime,
    responder: Responder = Responder(),
) -> bytes:
    """The ACK bytes for a message read by messages.read_message."""
    ack = build_ack(
        received.header,
        received.ack_code,
        received.problems,
        control_id=control_id,
        at=at,
        responder=responder,
    )
    return encode_ack(ack)


def refuse(
    raw: bytes,
    problem: Problem,
    *,
    control_id: str,
    at: datetime,
    truncated: bool = False,
    responder: Responder = Responder(),
) -> bytes:
    """An AR for bytes we will not read (too large, or we failed), from whatever MSH is there.

    With `truncated`, the last line is ignored: it may stop in the middle of MSH-10.
    """
    text = decode(raw)
    if truncated:
        text = text[: text.rfind("\r") + 1]
    ack = build_ack(
        sniff_header(text),
        AckCode.REJECT,
        (problem,),
        control_id=control_id,
        at=at,
        responder=responder,
    )
    return encode_ack(ack)


def acknowledge_batch(
    envelope: Sequence[Segment],
    acks: Sequence[bytes],
    *,
    control_id: str,
    at: datetime,
    comment: str = "",
    responder: Responder = Responder(),
) -> bytes:
    """The answer to a batch received in one piece (over MLLP): every message's ACK, in order,
    in a batch of our own (HL7 v2.5.1 section 2.10.3.3, all messages acknowledged) whose BHS-12
    names the batch answered (its BHS-11), in a file (FHS/FTS) when the batch came in one.
    `envelope` is the FHS/BHS/BTS/FTS segments received; `comment` goes in BTS-2 (a count that
    did not match)."""
    received = next((s for s in envelope if s.name == "BHS"), None)
    file = next((s for s in envelope if s.name == "FHS"), None)
    header = received or file
    segments: list[str] = []
    if file is not None:
        segments.append(_encoded(_answering("FHS", file, control_id, at, responder)))
    segments.append(_encoded(_answering("BHS", header, control_id, at, responder)))
    trailer = (_field(str(len(acks))),) + ((_field(comment),) if comment else ())
    closing = [_encoded(Segment("BTS", trailer))]
    if file is not None:
        closing.append(_encoded(Segment("FTS", (_field("1"),))))
    return "".join(segments).encode("utf-8") + b"".join(acks) + "".join(closing).encode("utf-8")


def _answering(
    name: str, theirs: Segment | None, control_id: str, at: datetime, responder: Responder
) -> Segment:
    """Our FHS or BHS answering theirs: sender and receiver swapped, their control id
    (field 11) referenced in field 12."""

    def field(number: int) -> Field:
        return theirs.field(number) if theirs is not None else _field("")

    def either(number: int, ours: str) -> Field:
        value = field(number)
        return value if not is_empty(value) else _field(ours)

    return Segment(
        name,
        (
            _field(DEFAULT_ENCODING.field),
            _field(DEFAULT_ENCODING.msh2),
            either(5, responder.application),
            either(6, responder.facility),
            field(3),
            field(4),
            _field(_timestamp(at)),
            _field(""),
            _field(""),
            _field(""),
            _field(control_id),
            field(11),
        ),
    )


def _encoded(segment: Segment) -> str:
    return encode_segment(segment, DEFAULT_ENCODING) + "\r"
