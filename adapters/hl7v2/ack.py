"""Acknowledgments: ACK^<trigger> with MSA and one ERR per problem, in original or enhanced mode.

HL7 v2.5.1 section 2.9.2 (original acknowledgment rules), 2.9.3 (enhanced), 2.15.8 (MSA),
2.15.5 (ERR). In original mode (MSH-15 and MSH-16 both empty) one ACK answers, MSA-1 AA, AE
(the content is wrong: the sender should not resend it as is) or AR (the envelope is
unsupported, the message unreadable, or we failed: the sender may resend). In enhanced mode the
sender says in MSH-15 and MSH-16 (table 0155: AL always, NE never, ER on error or reject only,
SU on success only) which of two ACKs it wants: the accept acknowledgment (CA committed to safe
storage, CE not committed, CR refused) and, for a committed message, the application
acknowledgment (AA, AE, AR) after it. An acknowledgment (MSH-9.1 ACK) is never answered.
From v2.5 an error is located in ERR-2 (segment^sequence^field^repetition^component) with its
table 0357 code in ERR-3 and severity in ERR-4; older senders get ERR-1
(segment^sequence^field^code&text&table). The ACK echoes the sender's delimiters, version and
processing id, swaps sender and receiver, and answers MSH-10 in MSA-2. Time and control ids are
parameters: this module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeGuard

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
    "Condition",
    "Outcome",
    "Responder",
    "acknowledge",
    "acknowledge_batch",
    "acknowledgments",
    "build_ack",
    "encode_ack",
    "is_acknowledgment",
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


class Condition(StrEnum):
    """MSH-15 and MSH-16, HL7 table 0155: when the sender wants that acknowledgment."""

    ALWAYS = "AL"
    NEVER = "NE"
    ERROR = "ER"  # error or reject conditions only
    SUCCESS = "SU"  # successful completion only

    def calls_for(self, succeeded: bool) -> bool:
        """Whether the acknowledgment is due for an outcome that succeeded or not."""
        if self is Condition.ALWAYS:
            return True
        if self is Condition.NEVER:
            return False
        return succeeded is (self is Condition.SUCCESS)


@dataclass(frozen=True)
class _Requested:
    """The acknowledgments an enhanced-mode message asks for: MSH-15 and MSH-16."""

    accept: Condition
    application: Condition


def _requested(header: MessageHeader | None) -> _Requested | None:
    """What the sender of `header` asks for; None in original mode (MSH-15 and MSH-16 both
    empty, or no readable MSH: section 2.9.2)."""
    if header is None or not (header.accept_ack_type or header.application_ack_type):
        return None
    return _Requested(_condition(header.accept_ack_type), _condition(header.application_ack_type))


def _condition(value: str) -> Condition:
    """One of the two fields in enhanced mode. Left empty, that acknowledgment was not asked
    for (a sender valuing MSH-16 alone waits for the application acknowledgment only, and a
    commit acknowledgment it did not expect would be read as the answer). A value outside
    table 0155 asks for something we cannot read, and answering is the safe side of it."""
    if not value:
        return Condition.NEVER
    try:
        return Condition(value)
    except ValueError:
        return Condition.ALWAYS


_APPLICATION_CODES = frozenset({AckCode.ACCEPT, AckCode.ERROR, AckCode.REJECT})
_COMMIT_CODES = frozenset({AckCode.COMMIT_ACCEPT, AckCode.COMMIT_ERROR, AckCode.COMMIT_REJECT})
_POSITIVE = frozenset({AckCode.ACCEPT, AckCode.COMMIT_ACCEPT})


@dataclass(frozen=True)
class Outcome:
    """What the receiver did with a message, which either mode answers from.

    `commit` is the accept level (2.9.3): CA once the message is committed to safe storage,
    whatever processing then made of it; CR when its envelope is refused (unreadable, or a
    message type, event, processing id or version not taken here); CE when it could not be
    committed, so that the sender keeps it and sends it again. `code` is the application level,
    AA, AE or AR, and the one answer of original mode: AR whenever the message was not
    committed. `problems` become the ERR segments.
    """

    code: AckCode
    commit: AckCode
    problems: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in _APPLICATION_CODES or self.commit not in _COMMIT_CODES:
            raise ValueError("an outcome is an application code (AA, AE, AR) and a commit code")
        if not self.committed and self.code is not AckCode.REJECT:
            raise ValueError("a message that was not committed is answered AR in original mode")

    @property
    def committed(self) -> bool:
        """Whether the message is in safe storage (CA)."""
        return self.commit is AckCode.COMMIT_ACCEPT


def is_acknowledgment(header: MessageHeader | None) -> TypeGuard[MessageHeader]:
    """Whether the message is itself an acknowledgment (MSH-9.1 ACK). None is ever answered:
    acknowledging acknowledgments would loop between two systems (HL7 v2 chapter 2)."""
    return header is not None and header.message_code == "ACK"


def acknowledgments(
    header: MessageHeader | None,
    outcome: Outcome,
    *,
    new_control_id: Callable[[], str],
    at: datetime,
    responder: Responder = Responder(),
) -> tuple[bytes, ...]:
    """The ACK messages due for the message whose MSH is `header`, in the order they go back.

    None for an acknowledgment. In original mode, one: MSA-1 `outcome.code`. In enhanced mode
    (2.9.3), each an ACK of its own (its own MSH-10, MSA-2 the message's): first the accept
    acknowledgment, `outcome.commit`, when MSH-15 calls for it, then the application
    acknowledgment, `outcome.code`, when MSH-16 calls for it and the message was committed; one
    refused or not committed never reached the application, and its accept acknowledgment
    carries the problems. On a synchronous link the two follow each other on the connection
    the message came in on, since a sender there has no other way to hear the second.
    """
    if is_acknowledgment(header):
        return ()
    wanted = _requested(header)

    def ack(code: AckCode, problems: Sequence[Problem]) -> bytes:
        return encode_ack(
            build_ack(
                header,
                code,
                problems,
                control_id=new_control_id(),
                at=at,
                responder=responder,
                enhanced=wanted is not None,
            )
        )

    if wanted is None:
        return (ack(outcome.code, outcome.problems),)
    due: list[bytes] = []
    if wanted.accept.calls_for(outcome.committed):
        due.append(ack(outcome.commit, () if outcome.committed else outcome.problems))
    if outcome.committed and wanted.application.calls_for(outcome.code is AckCode.ACCEPT):
        due.append(ack(outcome.code, outcome.problems))
    return tuple(due)


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
    enhanced: bool = False,
) -> Message:
    """The ACK message for a received message whose MSH is `header` (None if unreadable).
    An `enhanced` mode ACK says in its own MSH-15 and MSH-16 (NE) that it wants no answer."""
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
            *((_field(""), _field(""), _field("NE"), _field("NE")) if enhanced else ()),
        ),
    )
    text = next(
        (p.reason for p in problems if p.severity is Severity.ERROR),
        "",
    )
    msa = Segment(
        "MSA",
        (_field(code.value), _field(header.control_id if header else ""))
        + ((_field(text),) if code not in _POSITIVE and text else ()),
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
) -> tuple[bytes, ...]:
    """What is due for bytes we will not read (too large, or we failed before committing them),
    from whatever MSH is there: AR in original mode, CE when an enhanced-mode MSH-15 asks for
    it (`acknowledgments`), nothing for an acknowledgment.

    With `truncated`, the last line is ignored: it may stop in the middle of MSH-10.
    """
    text = decode(raw)
    if truncated:
        text = text[: text.rfind("\r") + 1]
    return acknowledgments(
        sniff_header(text),
        Outcome(AckCode.REJECT, AckCode.COMMIT_ERROR, (problem,)),
        new_control_id=lambda: control_id,
        at=at,
        responder=responder,
    )


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
