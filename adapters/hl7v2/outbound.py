"""Outbound referral messages in HL7 v2.5.1: typed values in, ER7 bytes out, without I/O.

    write_referral      REF^I12^REF_I12  patient referral (chapter 11.5.1)
    write_cancellation  REF^I14^REF_I12  cancel patient referral (11.5.3)
    write_return        RRI^I12^RRI_I12  return referral information: accepted, rejected...

Partners deduplicate by RF1-6, the originating referral identifier, so every message about a
referral carries the referrer's identifier unchanged: a resend, a cancellation, a return. The
MSH comes from an `Envelope` given per message rather than stored with the referral, because a
cancellation is a new message that needs its own control id (MSH-10), while a resend reuses the
envelope of the message it repeats.

Every text value passes through `er7.escape`, so delimiters, line breaks and the MLLP framing
bytes never travel raw; the bytes are UTF-8, declared in MSH-18 (table 0211). MSH-15 and MSH-16
stay empty: original acknowledgment mode, one ACK with MSA-1 AA, AE or AR (section 2.9.2).

Where v2.5.1 has no field for something, the value goes where v2.5.1 senders put it:
- a program (an organization, not a person) is named as the facility of PRD-4 (PL-4, HD
  namespace id; PRD-10 for organizations arrives in v2.7) and identified in PRD-7 (PLN-1 and
  the identifier type, table 0338, in PLN-2), where `messages.read_message` finds it;
- the reason is a message-level NTE (RF1-14 referral reason text arrives in v2.6), its line
  breaks written as \\.br\\ (CR LF and a lone CR become LF first: FT knows only \\.br\\).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from adapters.hl7v2.er7 import (
    DEFAULT_ENCODING,
    Component,
    Field,
    Message,
    Repetition,
    Segment,
    encode_message,
    is_empty,
)
from adapters.hl7v2.messages import (
    EntityIdentifier,
    HierarchicDesignator,
    Identifier,
    PersonName,
)

__all__ = [
    "VERSION",
    "Code",
    "Envelope",
    "OutgoingPatient",
    "OutgoingReferral",
    "Party",
    "Priority",
    "ReferralStatus",
    "ReturnedReferral",
    "Sex",
    "write_cancellation",
    "write_referral",
    "write_return",
]

VERSION = "2.5.1"
"""MSH-12 of every message written here."""
_MAX_CONTROL_ID = 20  # MSH-10 is ST(20) in v2.5.1
_LINE_BREAK = re.compile(r"\r\n?")


class Priority(StrEnum):
    """RF1-2, HL7 table 0280."""

    STAT = "S"
    ASAP = "A"
    ROUTINE = "R"

    @property
    def text(self) -> str:
        return {"S": "STAT", "A": "ASAP", "R": "Routine"}[self.value]


class ReferralStatus(StrEnum):
    """RF1-1, HL7 table 0283. It has no "completed": a finished episode is not a referral state."""

    ACCEPTED = "A"
    PENDING = "P"
    REJECTED = "R"
    EXPIRED = "E"

    @property
    def text(self) -> str:
        return {"A": "Accepted", "P": "Pending", "R": "Rejected", "E": "Expired"}[self.value]


class Sex(StrEnum):
    """PID-8, HL7 table 0001 as of v2.5.1."""

    FEMALE = "F"
    MALE = "M"
    OTHER = "O"
    UNKNOWN = "U"
    AMBIGUOUS = "A"
    NOT_APPLICABLE = "N"


@dataclass(frozen=True)
class Code:
    """CE: a code, its display text and its coding system (I10, SCT, an HL7 table, L...)."""

    code: str
    text: str = ""
    system: str = ""


@dataclass(frozen=True)
class Party:
    """A program on one side of a referral: its name, and an identifier of the type named in
    PLN-2 (table 0338, e.g. NPI), which the partner looks programs up by."""

    name: str
    identifier: str
    identifier_type: str


@dataclass(frozen=True)
class OutgoingPatient:
    """What PID carries: identifiers (PID-3, at least one), names (PID-5, at least one), birth
    date (PID-7) and administrative sex (PID-8)."""

    identifiers: tuple[Identifier, ...]
    names: tuple[PersonName, ...]
    birth_date: date | None = None
    sex: Sex | None = None

    def __post_init__(self) -> None:
        if not any(identifier.value.strip() for identifier in self.identifiers):
            raise ValueError("PID-3 needs at least one patient identifier")
        if not any(name.family.strip() or name.given.strip() for name in self.names):
            raise ValueError("PID-5 needs at least one patient name with a family or given name")


@dataclass(frozen=True)
class Envelope:
    """The MSH of one message: who sends it to whom, when, and its control id (echoed in the
    partner's MSA-2). `processing_id` is MSH-11: P production, T training, D debugging."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    sent_at: datetime
    processing_id: Literal["P", "T", "D"] = "P"

    def __post_init__(self) -> None:
        if not self.control_id.strip() or len(self.control_id) > _MAX_CONTROL_ID:
            raise ValueError(f"MSH-10 must hold 1 to {_MAX_CONTROL_ID} characters")
        _require_aware(self.sent_at, "MSH-7")


@dataclass(frozen=True)
class OutgoingReferral:
    """A referral we send: `originating_id` is ours (RF1-6), the key the partner dedupes by;
    `effective` is RF1-7; `type` and `category` are RF1-3 (table 0281) and RF1-5 (table 0284);
    each diagnosis becomes a DG1 of type W (working: a referrer's diagnosis is not final)."""

    originating_id: EntityIdentifier
    patient: OutgoingPatient
    referring: Party
    referred_to: Party
    priority: Priority
    effective: datetime
    reason: str = ""
    type: Code | None = None
    category: Code | None = None
    diagnoses: tuple[Code, ...] = ()

    def __post_init__(self) -> None:
        _require_id(self.originating_id)
        _require_aware(self.effective, "RF1-7")


@dataclass(frozen=True)
class ReturnedReferral:
    """Our answer to a referral we received: `originating_id` is the referrer's RF1-6 as they
    sent it, `status` what became of it, `reason` why (a decline is explained here)."""

    originating_id: EntityIdentifier
    status: ReferralStatus
    patient: OutgoingPatient
    referring: Party
    referred_to: Party
    reason: str = ""

    def __post_init__(self) -> None:
        _require_id(self.originating_id)


def _require_id(originating_id: EntityIdentifier) -> None:
    if not originating_id.value.strip():
        raise ValueError("RF1-6 needs the originating referral identifier: partners dedupe by it")


def _require_aware(at: datetime, where: str) -> None:
    if at.utcoffset() is None:
        raise ValueError(f"{where} needs a timezone-aware time")


# --- the writers ------------------------------------------------------------------------------


def write_referral(referral: OutgoingReferral, envelope: Envelope) -> bytes:
    """REF^I12: MSH, RF1 (status P), PRD RP and RT, PID, a DG1 per diagnosis, NTE reason."""
    rf1 = _segment(
        "RF1",
        {
            1: _field(ReferralStatus.PENDING.value, ReferralStatus.PENDING.text, "HL70283"),
            2: _field(referral.priority.value, referral.priority.text, "HL70280"),
            3: _code(referral.type),
            5: _code(referral.category),
            6: _entity(referral.originating_id),
            7: _one(_dtm(referral.effective)),
        },
    )
    diagnoses = (
        _segment("DG1", {1: _one(str(number)), 3: _code(code), 6: _one("W")})
        for number, code in enumerate(referral.diagnoses, start=1)
    )
    return _write(
        _header(envelope, "REF", "I12", "REF_I12"),
        rf1,
        *_parties(referral.referring, referral.referred_to),
        _pid(referral.patient),
        *diagnoses,
        *_note(referral.reason, source="P"),
    )


def write_cancellation(referral: OutgoingReferral, envelope: Envelope) -> bytes:
    """REF^I14: the referral named by RF1-6 is cancelled.

    RF1 carries only RF1-6, because table 0283 has no "cancelled" and a "pending" status would
    contradict the event; the reason and diagnoses of the referral are left out, because they
    would read as the reason for the cancellation.
    """
    return _write(
        _header(envelope, "REF", "I14", "REF_I12"),
        _segment("RF1", {6: _entity(referral.originating_id)}),
        *_parties(referral.referring, referral.referred_to),
        _pid(referral.patient),
    )


def write_return(returned: ReturnedReferral, envelope: Envelope) -> bytes:
    """RRI^I12, sent on its own (no MSA: it answers a referral, not a message): RF1-1 the
    status, RF1-6 the referrer's identifier, PRD RP and RT, PID, and the reason as an NTE."""
    rf1 = _segment(
        "RF1",
        {
            1: _field(returned.status.value, returned.status.text, "HL70283"),
            6: _entity(returned.originating_id),
        },
    )
    return _write(
        _header(envelope, "RRI", "I12", "RRI_I12"),
        rf1,
        *_parties(returned.referring, returned.referred_to),
        _pid(returned.patient),
        *_note(returned.reason, source="L"),
    )


# --- segments ---------------------------------------------------------------------------------


def _write(*segments: Segment) -> bytes:
    return encode_message(Message(segments, DEFAULT_ENCODING)).encode("utf-8")


def _header(envelope: Envelope, code: str, trigger: str, structure: str) -> Segment:
    return _segment(
        "MSH",
        {
            1: _one(DEFAULT_ENCODING.field),
            2: _one(DEFAULT_ENCODING.msh2),
            3: _one(envelope.sending_application),
            4: _one(envelope.sending_facility),
            5: _one(envelope.receiving_application),
            6: _one(envelope.receiving_facility),
            7: _one(_dtm(envelope.sent_at)),
            9: _field(code, trigger, structure),
            10: _one(envelope.control_id),
            11: _one(envelope.processing_id),
            12: _one(VERSION),
            18: _one("UNICODE UTF-8"),
        },
    )


def _parties(referring: Party, referred_to: Party) -> tuple[Segment, Segment]:
    return (
        _provider(referring, "RP", "Referring Provider"),
        _provider(referred_to, "RT", "Referred to Provider"),
    )


def _provider(party: Party, role: str, role_text: str) -> Segment:
    """PRD: role (table 0286), the program as the facility of PRD-4, its identifier in PRD-7."""
    return _segment(
        "PRD",
        {
            1: _field(role, role_text, "HL70286"),
            4: _field("", "", "", party.name),
            7: _field(party.identifier, party.identifier_type),
        },
    )


def _pid(patient: OutgoingPatient) -> Segment:
    return _segment(
        "PID",
        {
            1: _one("1"),
            3: _repeated(_cx(identifier) for identifier in patient.identifiers),
            5: _repeated(_xpn(name) for name in patient.names),
            7: _one("" if patient.birth_date is None else _dt(patient.birth_date)),
            8: _one("" if patient.sex is None else patient.sex.value),
        },
    )


def _note(text: str, *, source: Literal["P", "L"]) -> tuple[Segment, ...]:
    """The message-level NTE: source (table 0105: P placer, L filler) and type 1R (table 0364,
    primary reason); none when there is no text."""
    if not text.strip():
        return ()
    return (
        _segment(
            "NTE",
            {
                1: _one("1"),
                2: _one(source),
                3: _one(_LINE_BREAK.sub("\n", text)),
                4: _field("1R", "Primary Reason", "HL70364"),
            },
        ),
    )


def _segment(name: str, fields: Mapping[int, Field]) -> Segment:
    """A segment from {field number: value}; gaps are empty fields, trailing empties dropped."""
    last = max((number for number, value in fields.items() if not is_empty(value)), default=0)
    return Segment(name, tuple(fields.get(number, _EMPTY) for number in range(1, last + 1)))


# --- data types -------------------------------------------------------------------------------

_EMPTY: Field = ((("",),),)


def _rep(*components: str | Component) -> Repetition:
    """One repetition; a component given as a tuple is its subcomponents. Trailing empty
    subcomponents and components are dropped, so an absent part writes nothing."""
    trimmed = [_trim((part,) if isinstance(part, str) else part) for part in components]
    while len(trimmed) > 1 and is_empty(trimmed[-1]):
        trimmed.pop()
    return tuple(trimmed) or (("",),)


def _trim(component: Component) -> Component:
    parts = list(component)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return tuple(parts) or ("",)


def _field(*components: str | Component) -> Field:
    return (_rep(*components),)


def _one(text: str) -> Field:
    return (((text,),),)


def _repeated(repetitions: Iterable[Repetition]) -> Field:
    return tuple(repetitions) or _EMPTY


def _code(code: Code | None) -> Field:
    return _EMPTY if code is None else _field(code.code, code.text, code.system)


def _entity(identifier: EntityIdentifier) -> Field:
    return _field(
        identifier.value,
        identifier.namespace_id,
        identifier.universal_id,
        identifier.universal_id_type,
    )


def _hd(designator: HierarchicDesignator | None) -> Component:
    """HD inside a composite: its parts are subcomponents."""
    if designator is None:
        return ("",)
    return (designator.namespace_id, designator.universal_id, designator.universal_id_type)


def _cx(identifier: Identifier) -> Repetition:
    return _rep(
        identifier.value,
        "",
        "",
        _hd(identifier.assigning_authority),
        identifier.type_code,
        _hd(identifier.assigning_facility),
    )


def _xpn(name: PersonName) -> Repetition:
    return _rep(
        name.family,
        name.given,
        name.middle,
        name.suffix,
        name.prefix,
        name.degree,
        name.type_code,
    )


def _dt(day: date) -> str:
    """YYYYMMDD, zero-padded whatever the platform's strftime does with early years."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _dtm(at: datetime) -> str:
    """YYYYMMDDHHMMSS+ZZZZ, the offset of `at` kept (the partner sees the local time sent)."""
    offset = at.utcoffset()
    if offset is None:
        raise ValueError("an HL7 time written here must be timezone-aware")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return f"{_dt(at)}{at.hour:02d}{at.minute:02d}{at.second:02d}{zone}"
