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
  breaks written as \\.br\\ (CR LF and a lone CR become LF first: FT knows only \\.br\\);
- a message carrying 42 CFR Part 2 data (`Part2Marking`) names its confidentiality (a v3
  Confidentiality code, HL7 table 0952) in MSH-8 Security, the one security field of v2.5.1
  (v2.9 gives it MSH-26 and the ARV segment), and carries the §2.32 notice, the consent relied
  on and every security label in a message-level NTE of comment type `PART2_NOTE_TYPE`: the
  REF_I12 and RRI_I12 structures end with any number of NTEs, so a strict reader accepts it.
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
    "PART2_LABELS_PREFIX",
    "PART2_NOTE_TYPE",
    "VERSION",
    "Code",
    "Envelope",
    "OutgoingPatient",
    "OutgoingReferral",
    "Part2Marking",
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


PART2_NOTE_TYPE = Code("42CFRPart2", "42 CFR Part 2 notice", "L")
"""NTE-4 of the note carrying a Part2Marking: a local value of the user-defined table 0364,
which a reader uses to tell the notice from the notes about the referral."""


PART2_LABELS_PREFIX = "Security labels:"
"""How the Part 2 note's line of labels begins, for a reader to find it."""


@dataclass(frozen=True)
class Part2Marking:
    """What a disclosure of Part 2 data carries (§2.32(a); PART2.md S1, S2): the notice the
    disclosure gate's decision obliges, the consent(s) relied on, the confidentiality (a v3
    Confidentiality code, R or V) and every security label, as codes (42CFRPart2, NORDSCLCD...)."""

    notice: str
    confidentiality: str
    labels: tuple[str, ...]
    consents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.notice.strip():
            raise ValueError("a Part 2 disclosure needs the 42 CFR 2.32 notice")
        if self.confidentiality not in ("R", "V"):
            raise ValueError("MSH-8 of a Part 2 disclosure needs confidentiality R or V")

    def lines(self) -> tuple[str, ...]:
        """NTE-3's repetitions: the notice, the consent relied on, the labels."""
        consent = f"Consent relied on: {', '.join(self.consents)}" if self.consents else ""
        labels = f"{PART2_LABELS_PREFIX} {' '.join((self.confidentiality, *self.labels))}"
        return tuple(line for line in (self.notice, consent, labels) if line)


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
    each diagnosis becomes a DG1 of type W (working: a referrer's diagnosis is not final);
    `part2` is present when the gate released Part 2 data for it."""

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
    part2: Part2Marking | None = None

    def __post_init__(self) -> None:
        _require_id(self.originating_id)
        _require_aware(self.effective, "RF1-7")


@dataclass(frozen=True)
class ReturnedReferral:
    """Our answer to a referral we received: `originating_id` is the referrer's RF1-6 as they
    sent it, `status` what became of it, `reason` why (a decline is explained here), `part2`
    present when the answer discloses Part 2 data (a Part 2 program's answer always does)."""

    originating_id: EntityIdentifier
    status: ReferralStatus
    patient: OutgoingPatient
    referring: Party
    referred_to: Party
    reason: str = ""
    part2: Part2Marking | None = None

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
    """REF^I12: MSH, RF1 (status P), PRD RP and RT, PID, a DG1 per diagnosis, NTE reason and
    NTE Part 2 notice."""
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
        _header(envelope, "REF", "I12", "REF_I12", referral.part2),
        rf1,
        *_parties(referral.referring, referral.referred_to),
        _pid(referral.patient),
        *diagnoses,
        *_notes(referral.reason, referral.part2, source="P"),
    )


def write_cancellation(referral: OutgoingReferral, envelope: Envelope, why: str = "") -> bytes:
    """REF^I14: the referral named by RF1-6 is cancelled, `why` in the message-level NTE.

    RF1 carries only RF1-6, because table 0283 has no "cancelled" and a "pending" status would
    contradict the event; the reason and diagnoses of the referral are left out, because they
    would read as the reason for the cancellation, which the NTE gives instead.
    """
    return _write(
        _header(envelope, "REF", "I14", "REF_I12", referral.part2),
        _segment("RF1", {6: _entity(referral.originating_id)}),
        *_parties(referral.referring, referral.referred_to),
        _pid(referral.patient),
        *_notes(why, referral.part2, source="P"),
    )


def write_return(returned: ReturnedReferral, envelope: Envelope) -> bytes:
    """RRI^I12, sent on its own (no MSA: it answers a referral, not a message): RF1-1 the
    status, RF1-6 the referrer's identifier, PRD RP and RT, PID, the reason and the Part 2
    notice as NTEs."""
    rf1 = _segment(
        "RF1",
        {
            1: _field(returned.status.value, returned.status.text, "HL70283"),
            6: _entity(returned.originating_id),
        },
    )
    return _write(
        _header(envelope, "RRI", "I12", "RRI_I12", returned.part2),
        rf1,
        *_parties(returned.referring, returned.referred_to),
        _pid(returned.patient),
        *_notes(returned.reason, returned.part2, source="L"),
    )


# --- segments ---------------------------------------------------------------------------------


def _write(*segments: Segment) -> bytes:
    return encode_message(Message(segments, DEFAULT_ENCODING)).encode("utf-8")


def _header(
    envelope: Envelope, code: str, trigger: str, structure: str, part2: Part2Marking | None
) -> Segment:
    """MSH; MSH-8 Security names the confidentiality of a Part 2 disclosure."""
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
            8: _one("" if part2 is None else part2.confidentiality),
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


def _notes(
    reason: str, part2: Part2Marking | None, *, source: Literal["P", "L"]
) -> tuple[Segment, ...]:
    """The message-level NTEs, numbered from 1, each with its source (table 0105: P placer,
    L filler): the reason, type 1R (table 0364, primary reason), when there is one; then the
    Part 2 marking, type PART2_NOTE_TYPE, one repetition of NTE-3 per line."""
    comments: list[tuple[Field, Field]] = []
    if reason.strip():
        text = _one(_LINE_BREAK.sub("\n", reason))
        comments.append((text, _field("1R", "Primary Reason", "HL70364")))
    if part2 is not None:
        comments.append((_repeated(_rep(line) for line in part2.lines()), _code(PART2_NOTE_TYPE)))
    return tuple(
        _segment("NTE", {1: _one(str(number)), 2: _one(source), 3: comment, 4: kind})
        for number, (comment, kind) in enumerate(comments, start=1)
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
