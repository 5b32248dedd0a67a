"""Typed readers of the inbound messages: REF^I12 (a referral), REF^I14 (its cancellation),
RRI^I12 (the answer to one we sent) and ADT^A03 (a discharge).

`read_message(raw)` never raises for a bad message: it returns an `Inbound` that keeps the raw
bytes, the acknowledgment code (AA, AE, AR), every `Problem` with its ERR-2 location and table
0357 code, and, when there is no error, the content as frozen values. `read_file(data)` does
the same for each message of a file (several messages, MLLP-framed or not, FHS/BHS batches).

Field positions follow HL7 v2.5.1 (chapter 3 PID, PV1, DG1, EVN; chapter 11 RF1, PRD, AUT;
chapter 2 NTE) and read the v2.6-v2.8 additions where they extend a segment (RF1-14, PRD-10..13).
Values are kept as sent: no code is translated here; that is the mappings' job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from adapters.hl7v2.er7 import (
    DEFAULT_ENCODING,
    HEADER_SEGMENTS,
    Chunk,
    Component,
    Message,
    MessageHeader,
    Repetition,
    Segment,
    decode,
    header_encoding,
    is_empty,
    parse_message,
    parse_segment,
    sniff_header,
    split_batch,
)
from adapters.hl7v2.errors import (
    AckCode,
    ErrorCode,
    Hl7ParseError,
    Location,
    Problem,
    Severity,
)
from adapters.hl7v2.mllp import BytesDiscarded, FrameIncomplete, FrameReceived, MllpDecoder

__all__ = [
    "SUPPORTED",
    "Address",
    "Authorization",
    "Clinician",
    "Coded",
    "Diagnosis",
    "Discharge",
    "EntityIdentifier",
    "Event",
    "FileRead",
    "HierarchicDesignator",
    "Hl7DateTime",
    "Identifier",
    "Inbound",
    "Note",
    "Organization",
    "Patient",
    "PatientLocation",
    "PersonName",
    "ProviderIdentifier",
    "Referral",
    "ReferralProvider",
    "Telecom",
    "Visit",
    "is_batch",
    "read_file",
    "read_message",
]

SUPPORTED = frozenset({("REF", "I12"), ("REF", "I14"), ("RRI", "I12"), ("ADT", "A03")})
"""REF^I12 refers a patient, REF^I14 cancels that referral, RRI^I12 answers one we sent (all
read as a `Referral`, told apart by the header), ADT^A03 reports a discharge."""
_NAMES = "REF^I12, REF^I14, RRI^I12, ADT^A03"
"""(MSH-9.1, MSH-9.2) pairs this adapter reads."""
_PROCESSING_IDS = frozenset({"P", "T", "D"})  # HL7 table 0103
_SEX = frozenset({"F", "M", "O", "U", "A", "N", "X"})  # HL7 table 0001 (X since v2.9)


# --- data types -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coded:
    """CE / CWE: a code, its display text and coding system (HL7 table name or system id)."""

    code: str
    display: str = ""
    system: str = ""
    alternate: Coded | None = None
    original_text: str = ""


@dataclass(frozen=True)
class HierarchicDesignator:
    """HD: a namespace id and/or a universal id (an OID, a URI) with its type (ISO, DNS...)."""

    namespace_id: str
    universal_id: str = ""
    universal_id_type: str = ""


@dataclass(frozen=True)
class Identifier:
    """CX: an identifier, its type code (table 0203: MR, SS...) and who assigned it."""

    value: str
    type_code: str = ""
    assigning_authority: HierarchicDesignator | None = None
    assigning_facility: HierarchicDesignator | None = None


@dataclass(frozen=True)
class EntityIdentifier:
    """EI: an entity identifier with the namespace (application) that assigned it."""

    value: str
    namespace_id: str = ""
    universal_id: str = ""
    universal_id_type: str = ""


@dataclass(frozen=True)
class PersonName:
    """XPN (and the name part of XCN)."""

    family: str
    given: str = ""
    middle: str = ""
    suffix: str = ""
    prefix: str = ""
    degree: str = ""
    type_code: str = ""


@dataclass(frozen=True)
class Address:
    """XAD: `lines` are the street address parts (XAD-1 subcomponents) then XAD-2."""

    lines: tuple[str, ...]
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    type_code: str = ""
    district: str = ""  # XAD-9 county/parish


@dataclass(frozen=True)
class Telecom:
    """XTN: `value` is the number as sent (XTN-12, else XTN-1, else assembled from XTN-5..8)."""

    value: str
    use: str = ""
    equipment: str = ""
    email: str = ""


@dataclass(frozen=True)
class Clinician:
    """XCN: a person with an identifier."""

    identifier: str
    name: PersonName | None = None
    assigning_authority: HierarchicDesignator | None = None
    type_code: str = ""


@dataclass(frozen=True)
class PatientLocation:
    """PL: point of care, room, bed, facility, building, floor, description."""

    point_of_care: str
    room: str = ""
    bed: str = ""
    facility: HierarchicDesignator | None = None
    building: str = ""
    floor: str = ""
    description: str = ""


_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?\Z")


@dataclass(frozen=True)
class Hl7DateTime:
    """DTM / TS: a point in time at the precision sent, with the offset when one was sent."""

    text: str
    year: int
    month: int | None = None
    day: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    microsecond: int | None = None
    utc_offset_minutes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Hl7DateTime:
        """YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]; ValueError when it is not one."""
        match = _DTM.match(text)
        if match is None:
            raise ValueError(f"not an HL7 date/time: {text!r}")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        if fraction is not None and second is None:
            raise ValueError("fractional seconds need seconds")
        if (month is None and day is not None) or (hour is None and minute is not None):
            raise ValueError("precision out of order")  # the regex cannot produce it; belt
        parsed = cls(
            text=text,
            year=int(year),
            month=_int(month),
            day=_int(day),
            hour=_int(hour),
            minute=_int(minute),
            second=_int(second),
            microsecond=None if fraction is None else int(fraction.ljust(6, "0")),
            utc_offset_minutes=None if offset is None else _offset_minutes(offset),
        )
        datetime(  # range checks: month, day of month, hour, minute, second
            parsed.year,
            parsed.month or 1,
            parsed.day or 1,
            parsed.hour or 0,
            parsed.minute or 0,
            parsed.second or 0,
        )
        if parsed.utc_offset_minutes is not None and abs(parsed.utc_offset_minutes) >= 24 * 60:
            raise ValueError("UTC offset out of range")
        return parsed

    @property
    def tzinfo(self) -> timezone | None:
        if self.utc_offset_minutes is None:
            return None
        return timezone(timedelta(minutes=self.utc_offset_minutes))

    def to_date(self) -> date | None:
        """The calendar date, when the day was sent."""
        if self.month is None or self.day is None:
            return None
        return date(self.year, self.month, self.day)

    def to_datetime(self) -> datetime | None:
        """The instant (aware when an offset was sent), when at least the hour was sent."""
        if self.month is None or self.day is None or self.hour is None:
            return None
        return datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute or 0,
            self.second or 0,
            self.microsecond or 0,
            tzinfo=self.tzinfo,
        )

    def isoformat(self) -> str:
        """ISO 8601 at the precision sent: 1961, 1961-06, 1961-06-15, 1988-08-18T11:26:00+02:15."""
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        instant = self.to_datetime()
        if instant is None:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        return instant.isoformat()


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _offset_minutes(text: str) -> int:
    minutes = int(text[1:3]) * 60 + int(text[3:5])
    if int(text[3:5]) >= 60:
        raise ValueError("UTC offset minutes out of range")
    return -minutes if text[0] == "-" else minutes


# --- segment contents -------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """PID: identifiers (PID-3), names (PID-5), birth (PID-7), sex (PID-8, table 0001),
    addresses (PID-11), home phones (PID-13) and business phones (PID-14)."""

    identifiers: tuple[Identifier, ...]
    names: tuple[PersonName, ...]
    birth_date: Hl7DateTime | None = None
    sex: str = ""
    addresses: tuple[Address, ...] = ()
    phones: tuple[Telecom, ...] = ()
    business_phones: tuple[Telecom, ...] = ()


@dataclass(frozen=True)
class ProviderIdentifier:
    """PLN: a practitioner licence or other number, its type and state, and when it expires."""

    value: str
    type_code: str = ""
    state: str = ""
    expires: Hl7DateTime | None = None


@dataclass(frozen=True)
class Organization:
    """XON (PRD-10) with the organization's address (PRD-11) and telecoms (PRD-13)."""

    name: str
    identifier: str = ""
    assigning_authority: HierarchicDesignator | None = None
    addresses: tuple[Address, ...] = ()
    telecoms: tuple[Telecom, ...] = ()


@dataclass(frozen=True)
class ReferralProvider:
    """PRD: a party to the referral, by role (table 0286: RP referring, RT referred to,
    PP primary care, CP consulting); the organization comes from PRD-10 (v2.7+), and older
    senders name it only as the facility of PRD-4."""

    role: Coded
    names: tuple[PersonName, ...] = ()
    addresses: tuple[Address, ...] = ()
    location: PatientLocation | None = None
    telecoms: tuple[Telecom, ...] = ()
    identifiers: tuple[ProviderIdentifier, ...] = ()
    effective_start: Hl7DateTime | None = None
    effective_end: Hl7DateTime | None = None
    organization: Organization | None = None


@dataclass(frozen=True)
class Visit:
    """PV1: class, location, doctors, visit number, admission and discharge."""

    patient_class: str
    location: PatientLocation | None = None
    admission_type: str = ""
    attending: tuple[Clinician, ...] = ()
    referring: tuple[Clinician, ...] = ()
    consulting: tuple[Clinician, ...] = ()
    hospital_service: str = ""
    admit_source: str = ""
    visit_number: Identifier | None = None
    discharge_disposition: Coded | None = None  # PV1-36, table 0112
    discharged_to: Coded | None = None  # PV1-37.1, table 0113
    discharged_to_effective: Hl7DateTime | None = None  # PV1-37.2
    servicing_facility: Coded | None = None  # PV1-39, table 0115
    admitted_at: Hl7DateTime | None = None  # PV1-44
    discharged_at: Hl7DateTime | None = None  # PV1-45 (first repetition)


@dataclass(frozen=True)
class Diagnosis:
    """DG1."""

    set_id: str
    code: Coded | None = None  # DG1-3
    description: str = ""  # DG1-4
    diagnosed_at: Hl7DateTime | None = None  # DG1-5
    type_code: str = ""  # DG1-6, table 0052: A admitting, W working, F final
    priority: str = ""  # DG1-15
    clinicians: tuple[Clinician, ...] = ()  # DG1-16
    identifier: EntityIdentifier | None = None  # DG1-20
    action_code: str = ""  # DG1-21, table 0206


@dataclass(frozen=True)
class Note:
    """NTE: its text (repetitions joined by line feeds) and the segment it follows, which says
    what it annotates (PV1, PV2 or RF1: the referral; OBR or OBX: an observation)."""

    text: str
    follows: str
    source: str = ""
    type: Coded | None = None


@dataclass(frozen=True)
class Authorization:
    """AUT: the payer's authorization for the referral."""

    plan: Coded | None = None  # AUT-1
    company: Coded | None = None  # AUT-2
    company_name: str = ""  # AUT-3
    effective: Hl7DateTime | None = None  # AUT-4
    expiration: Hl7DateTime | None = None  # AUT-5
    identifier: EntityIdentifier | None = None  # AUT-6
    requested_treatments: str = ""  # AUT-8
    authorized_treatments: str = ""  # AUT-9


@dataclass(frozen=True)
class Referral:
    """REF^I12: a patient referral (HL7 v2.5.1 section 11.5.1).

    `originating_id` (RF1-6) is the referrer's own identifier for the referral; it is required
    here because partners deduplicate resent referrals by it.
    """

    header: MessageHeader
    originating_id: EntityIdentifier
    patient: Patient
    providers: tuple[ReferralProvider, ...]
    status: Coded | None = None  # RF1-1, table 0283
    priority: Coded | None = None  # RF1-2, table 0280
    type: Coded | None = None  # RF1-3, table 0281
    dispositions: tuple[Coded, ...] = ()  # RF1-4, table 0282
    category: Coded | None = None  # RF1-5, table 0284
    effective: Hl7DateTime | None = None  # RF1-7
    expiration: Hl7DateTime | None = None  # RF1-8
    processed: Hl7DateTime | None = None  # RF1-9
    reasons: tuple[Coded, ...] = ()  # RF1-10, table 0336
    external_ids: tuple[EntityIdentifier, ...] = ()  # RF1-11
    reason_text: str = ""  # RF1-14 (v2.6+)
    authorization: Authorization | None = None  # the AUT of the RF1 group
    visit: Visit | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    notes: tuple[Note, ...] = ()

    def provider(self, role: str) -> ReferralProvider | None:
        """The first PRD with role code `role` (table 0286)."""
        return next((p for p in self.providers if p.role.code == role), None)

    @property
    def referring(self) -> ReferralProvider | None:
        return self.provider("RP")

    @property
    def referred_to(self) -> ReferralProvider | None:
        return self.provider("RT")


@dataclass(frozen=True)
class Event:
    """EVN."""

    type_code: str = ""  # EVN-1 (as sent; often differs from MSH-9.2)
    recorded_at: Hl7DateTime | None = None  # EVN-2
    reason: Coded | None = None  # EVN-4, table 0062
    operators: tuple[Clinician, ...] = ()  # EVN-5
    occurred_at: Hl7DateTime | None = None  # EVN-6
    facility: HierarchicDesignator | None = None  # EVN-7


@dataclass(frozen=True)
class Discharge:
    """ADT^A03: discharge/end visit (HL7 v2.5.1 section 3.3.3), which starts a handoff.

    `discharged_at` is PV1-45, else EVN-6 (when the event occurred); `facility` is the facility
    of PV1-3, else PV1-39 (servicing facility).
    """

    header: MessageHeader
    event: Event
    patient: Patient
    visit: Visit
    diagnoses: tuple[Diagnosis, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def discharged_at(self) -> Hl7DateTime | None:
        return self.visit.discharged_at or self.event.occurred_at

    @property
    def disposition(self) -> Coded | None:
        return self.visit.discharge_disposition

    @property
    def discharged_to(self) -> Coded | None:
        return self.visit.discharged_to

    @property
    def facility(self) -> HierarchicDesignator | None:
        if self.visit.location is not None and self.visit.location.facility is not None:
            return self.visit.location.facility
        if self.visit.servicing_facility is not None:
            return HierarchicDesignator(self.visit.servicing_facility.code)
        return None


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One received message as read: nothing is dropped, whatever its state.

    `raw` is the bytes as received (for staff to inspect when not accepted); `header` is the MSH
    when it could be read, even from a message that could not be parsed; `content` is set only
    when `ack_code` is AA.
    """

    raw: bytes
    ack_code: AckCode
    problems: tuple[Problem, ...] = ()
    header: MessageHeader | None = None
    message: Message | None = None
    content: Referral | Discharge | None = None

    @property
    def accepted(self) -> bool:
        return self.ack_code is AckCode.ACCEPT


def read_message(raw: bytes) -> Inbound:
    """Read one message (a BOM and LF or CR LF line endings are accepted); never raises."""
    text = decode(raw)
    try:
        message = parse_message(text)
    except Hl7ParseError as error:
        return Inbound(raw, AckCode.REJECT, (error.problem,), sniff_header(text))
    header = message.header
    rejections = _check_header(header)
    if rejections:
        return Inbound(raw, AckCode.REJECT, rejections, header, message)
    problems: list[Problem] = []
    content: Referral | Discharge | None
    if header.message_code in ("REF", "RRI"):
        content = _read_referral(message, problems)
    else:
        content = _read_discharge(message, problems)
    found = _in_message_order(message, problems)
    if any(p.severity is Severity.ERROR for p in found):
        return Inbound(raw, AckCode.ERROR, found, header, message)
    return Inbound(raw, AckCode.ACCEPT, found, header, message, content)


def _in_message_order(message: Message, problems: list[Problem]) -> tuple[Problem, ...]:
    """Problems sorted by where they are; those about missing segments come last."""
    index = {(s.name, n): i for i, (s, n) in enumerate(message.with_sequence())}

    def key(problem: Problem) -> tuple[int, int]:
        where = problem.location
        return index.get((where.segment, where.sequence), len(index)), where.field or 0

    return tuple(sorted(problems, key=key))


def _check_header(header: MessageHeader) -> tuple[Problem, ...]:
    def problem(field: int, code: ErrorCode, reason: str) -> Problem:
        return Problem(Location("MSH", 1, field), code, reason)

    missing = ErrorCode.REQUIRED_FIELD_MISSING
    found: list[Problem] = []
    if not header.message_code or not header.trigger_event:
        found.append(problem(9, missing, "MSH-9 message type and trigger event are required"))
    elif header.message_code not in {code for code, _ in SUPPORTED}:
        found.append(
            problem(
                9,
                ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
                f"message type {header.message_code} is not accepted ({_NAMES} are)",
            )
        )
    elif (header.message_code, header.trigger_event) not in SUPPORTED:
        found.append(
            Problem(
                Location("MSH", 1, 9, repetition=1, component=2),
                ErrorCode.UNSUPPORTED_EVENT_CODE,
                f"event {header.message_code}^{header.trigger_event} is not accepted "
                f"({_NAMES} are)",
            )
        )
    if not header.control_id:
        found.append(problem(10, missing, "MSH-10 message control id is required"))
    if not header.processing_id:
        found.append(problem(11, missing, "MSH-11 processing id is required"))
    elif header.processing_id not in _PROCESSING_IDS:
        found.append(
            problem(
                11,
                ErrorCode.UNSUPPORTED_PROCESSING_ID,
                "MSH-11 processing id must be P, T or D",
            )
        )
    if not header.version:
        found.append(problem(12, missing, "MSH-12 version id is required"))
    elif not re.fullmatch(r"2\.\d+(\.\d+)?", header.version):
        found.append(
            problem(12, ErrorCode.UNSUPPORTED_VERSION_ID, "MSH-12 must be an HL7 version 2.x")
        )
    return tuple(found)


class _Fields:
    """Reads one segment's fields into typed values, recording problems at their location."""

    def __init__(self, segment: Segment, sequence: int, problems: list[Problem]) -> None:
        self.segment = segment
        self.sequence = sequence
        self.problems = problems

    def problem(
        self,
        number: int,
        code: ErrorCode,
        reason: str,
        *,
        severity: Severity = Severity.ERROR,
        repetition: int | None = None,
    ) -> None:
        location = Location(self.segment.name, self.sequence, number, repetition)
        self.problems.append(Problem(location, code, reason, severity))

    def text(self, number: int, component: int = 1) -> str:
        return self.segment.value(number, component).strip()

    def reps(self, number: int) -> tuple[Repetition, ...]:
        return self.segment.repetitions(number)

    def first(self, number: int) -> Repetition | None:
        reps = self.reps(number)
        return reps[0] if reps else None

    def require(self, number: int, what: str) -> bool:
        if self.reps(number):
            return True
        name = self.segment.name
        self.problem(
            number, ErrorCode.REQUIRED_FIELD_MISSING, f"{name}-{number} {what} is required"
        )
        return False

    def coded(self, number: int) -> Coded | None:
        rep = self.first(number)
        return None if rep is None else _coded(rep)

    def codeds(self, number: int) -> tuple[Coded, ...]:
        return tuple(c for c in (_coded(rep) for rep in self.reps(number)) if c is not None)

    def when(self, number: int, component: int = 1, repetition: int = 1) -> Hl7DateTime | None:
        reps = self.reps(number)
        if len(reps) < repetition:
            return None
        return self.timestamp(_at(reps[repetition - 1], component), number, repetition)

    def timestamp(self, text: str, number: int, repetition: int = 1) -> Hl7DateTime | None:
        if not text:
            return None
        try:
            return Hl7DateTime.parse(text.strip())
        except ValueError:
            self.problem(
                number,
                ErrorCode.DATA_TYPE_ERROR,
                f"{self.segment.name}-{number} is not a valid HL7 date/time",
                repetition=repetition,
            )
            return None


def _at(rep: Repetition, component: int, subcomponent: int = 1) -> str:
    """One leaf, without surrounding blanks (the tree in `Inbound.message` keeps them)."""
    if component > len(rep):
        return ""
    comp = rep[component - 1]
    return comp[subcomponent - 1].strip() if subcomponent <= len(comp) else ""


def _coded(rep: Repetition) -> Coded | None:
    if is_empty(rep[:3]):
        return None
    alternate = None
    if not is_empty(rep[3:6]):
        alternate = Coded(_at(rep, 4), _at(rep, 5), _at(rep, 6))
    return Coded(_at(rep, 1), _at(rep, 2), _at(rep, 3), alternate, _at(rep, 9))


def _coded_component(component: Component) -> Coded | None:
    """A CWE that sits in one component, its parts as subcomponents (DLD-1 in PV1-37)."""
    if is_empty(component):
        return None
    parts = [*(part.strip() for part in component), "", "", ""]
    return Coded(parts[0], parts[1], parts[2])


def _hd(component: Component) -> HierarchicDesignator | None:
    """An HD inside a composite (CX-4, PL-4, XCN-9): its parts are subcomponents."""
    if is_empty(component):
        return None
    parts = [*(part.strip() for part in component), "", "", ""]
    return HierarchicDesignator(parts[0], parts[1], parts[2])


def _component(rep: Repetition, number: int) -> Component:
    return rep[number - 1] if number <= len(rep) else ("",)


def _identifier(rep: Repetition) -> Identifier:
    return Identifier(
        _at(rep, 1),
        _at(rep, 5),
        _hd(_component(rep, 4)),
        _hd(_component(rep, 6)),
    )


def _entity(rep: Repetition | None) -> EntityIdentifier | None:
    if rep is None:
        return None
    return EntityIdentifier(_at(rep, 1), _at(rep, 2), _at(rep, 3), _at(rep, 4))


def _name(rep: Repetition, offset: int = 0) -> PersonName:
    """XPN from component 1, or the name in an XCN from component 2 (offset 1)."""
    return PersonName(
        family=_at(rep, 1 + offset),
        given=_at(rep, 2 + offset),
        middle=_at(rep, 3 + offset),
        suffix=_at(rep, 4 + offset),
        prefix=_at(rep, 5 + offset),
        degree=_at(rep, 6 + offset),
        type_code=_at(rep, 7) if offset == 0 else _at(rep, 10),
    )


def _address(rep: Repetition) -> Address:
    street = tuple(part.strip() for part in _component(rep, 1) if part.strip())
    return Address(
        lines=street + ((_at(rep, 2),) if _at(rep, 2) else ()),
        city=_at(rep, 3),
        state=_at(rep, 4),
        postal_code=_at(rep, 5),
        country=_at(rep, 6),
        type_code=_at(rep, 7),
        district=_at(rep, 9),
    )


def _telecom(rep: Repetition) -> Telecom:
    # XTN-1 is kept for backward compatibility from v2.3; XTN-12 and XTN-5..8 replace it.
    value = _at(rep, 12) or _at(rep, 1)
    if not value and _at(rep, 7):
        parts = [f"+{_at(rep, 5)}" if _at(rep, 5) else "", _at(rep, 6), _at(rep, 7)]
        value = " ".join(part for part in parts if part)
        if _at(rep, 8):
            value += f" x{_at(rep, 8)}"
    return Telecom(value=value, use=_at(rep, 2), equipment=_at(rep, 3), email=_at(rep, 4))


def _clinician(rep: Repetition) -> Clinician:
    name = _name(rep, offset=1)
    return Clinician(
        identifier=_at(rep, 1),
        name=None if name == PersonName("") else name,
        assigning_authority=_hd(_component(rep, 9)),
        type_code=_at(rep, 13),
    )


def _location(rep: Repetition | None) -> PatientLocation | None:
    if rep is None:
        return None
    return PatientLocation(
        point_of_care=_at(rep, 1),
        room=_at(rep, 2),
        bed=_at(rep, 3),
        facility=_hd(_component(rep, 4)),
        building=_at(rep, 7),
        floor=_at(rep, 8),
        description=_at(rep, 9),
    )


def _segments(message: Message) -> list[tuple[Segment, int]]:
    return list(message.with_sequence())


def _require_segment(
    message: Message, name: str, problems: list[Problem], why: str
) -> Segment | None:
    """The first `name` segment; a missing one is a problem (table 0357 code 100)."""
    segment = message.first(name)
    if segment is None:
        reason = f"{name} is missing: {why}"
        problems.append(Problem(Location(name, 1), ErrorCode.SEGMENT_SEQUENCE_ERROR, reason))
    return segment


def _patient(segment: Segment, problems: list[Problem]) -> Patient:
    pid = _Fields(segment, 1, problems)
    pid.require(3, "patient identifier list")
    pid.require(5, "patient name")
    sex = pid.text(8)
    if sex and sex not in _SEX:
        pid.problem(
            8,
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"PID-8 sex {sex!r} is not in HL7 table 0001",
            severity=Severity.WARNING,
        )
    return Patient(
        identifiers=tuple(_identifier(rep) for rep in pid.reps(3)),
        names=tuple(_name(rep) for rep in pid.reps(5)),
        birth_date=pid.when(7),
        sex=sex,
        addresses=tuple(_address(rep) for rep in pid.reps(11)),
        phones=tuple(_telecom(rep) for rep in pid.reps(13)),
        business_phones=tuple(_telecom(rep) for rep in pid.reps(14)),
    )


def _visit(segment: Segment, sequence: int, problems: list[Problem]) -> Visit:
    pv1 = _Fields(segment, sequence, problems)
    pv1.require(2, "patient class")
    discharged_to = pv1.first(37)
    visit_number = pv1.first(19)
    return Visit(
        patient_class=pv1.text(2).strip(),
        location=_location(pv1.first(3)),
        admission_type=pv1.text(4),
        attending=tuple(_clinician(rep) for rep in pv1.reps(7)),
        referring=tuple(_clinician(rep) for rep in pv1.reps(8)),
        consulting=tuple(_clinician(rep) for rep in pv1.reps(9)),
        hospital_service=pv1.text(10),
        admit_source=pv1.text(14),
        visit_number=None if visit_number is None else _identifier(visit_number),
        discharge_disposition=pv1.coded(36),
        discharged_to=None if discharged_to is None else _coded_component(discharged_to[0]),
        discharged_to_effective=pv1.when(37, component=2),
        servicing_facility=pv1.coded(39),
        admitted_at=pv1.when(44),
        discharged_at=pv1.when(45),
    )


def _diagnosis(segment: Segment, sequence: int, problems: list[Problem]) -> Diagnosis:
    dg1 = _Fields(segment, sequence, problems)
    return Diagnosis(
        set_id=dg1.text(1),
        code=dg1.coded(3),
        description=dg1.text(4),
        diagnosed_at=dg1.when(5),
        type_code=dg1.text(6),
        priority=dg1.text(15),
        clinicians=tuple(_clinician(rep) for rep in dg1.reps(16)),
        identifier=_entity(dg1.first(20)),
        action_code=dg1.text(21),
    )


def _notes(message: Message) -> tuple[Note, ...]:
    notes: list[Note] = []
    follows = "MSH"
    for segment in message.segments:
        if segment.name != "NTE":
            follows = segment.name
            continue
        lines = [rep[0][0] for rep in segment.field(3)]
        comment_type = segment.repetitions(4)
        notes.append(
            Note(
                text="\n".join(lines),
                follows=follows,
                source=segment.value(2),
                type=_coded(comment_type[0]) if comment_type else None,
            )
        )
    return tuple(notes)


def _authorization(segment: Segment, sequence: int, problems: list[Problem]) -> Authorization:
    aut = _Fields(segment, sequence, problems)
    return Authorization(
        plan=aut.coded(1),
        company=aut.coded(2),
        company_name=aut.text(3),
        effective=aut.when(4),
        expiration=aut.when(5),
        identifier=_entity(aut.first(6)),
        requested_treatments=aut.text(8),
        authorized_treatments=aut.text(9),
    )


def _provider(segment: Segment, sequence: int, problems: list[Problem]) -> ReferralProvider | None:
    prd = _Fields(segment, sequence, problems)
    if not prd.require(1, "provider role"):
        return None
    role = prd.coded(1) or Coded("")
    identifiers = tuple(
        ProviderIdentifier(_at(rep, 1), _at(rep, 2), _at(rep, 3), prd.timestamp(_at(rep, 4), 7))
        for rep in prd.reps(7)
    )
    organization = None
    org = prd.first(10)
    if org is not None:
        organization = Organization(
            name=_at(org, 1),
            identifier=_at(org, 10) or _at(org, 3),
            assigning_authority=_hd(_component(org, 6)),
            addresses=tuple(_address(rep) for rep in prd.reps(11)),
            telecoms=tuple(_telecom(rep) for rep in prd.reps(13)),
        )
    return ReferralProvider(
        role=role,
        names=tuple(_name(rep) for rep in prd.reps(2)),
        addresses=tuple(_address(rep) for rep in prd.reps(3)),
        location=_location(prd.first(4)),
        telecoms=tuple(_telecom(rep) for rep in prd.reps(5)),
        identifiers=identifiers,
        effective_start=prd.when(8),
        effective_end=prd.when(9),
        organization=organization,
    )


def _read_referral(message: Message, problems: list[Problem]) -> Referral | None:
    rf1_at = _require_segment(message, "RF1", problems, "a referral needs its RF1")
    pid_at = _require_segment(message, "PID", problems, "a referral needs its patient")
    segments = _segments(message)
    providers = [
        _provider(segment, sequence, problems)
        for segment, sequence in segments
        if segment.name == "PRD"
    ]
    if not providers:
        problems.append(
            Problem(
                Location("PRD", 1),
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                "PRD is missing: a referral needs at least one provider",
            )
        )
    patient = None if pid_at is None else _patient(pid_at, problems)
    if rf1_at is None or patient is None:
        return None
    rf1 = _Fields(rf1_at, 1, problems)
    rf1.require(6, "originating referral identifier (needed to deduplicate the referral)")
    originating_id = _entity(rf1.first(6))
    # The AUT of the RF1 group comes before the first PRD; later ones belong to procedures.
    authorization = None
    for segment, sequence in segments:
        if segment.name == "PRD":
            break
        if segment.name == "AUT":
            authorization = _authorization(segment, sequence, problems)
            break
    pv1 = message.first("PV1")
    return Referral(
        header=message.header,
        originating_id=originating_id or EntityIdentifier(""),
        patient=patient,
        providers=tuple(p for p in providers if p is not None),
        status=rf1.coded(1),
        priority=rf1.coded(2),
        type=rf1.coded(3),
        dispositions=rf1.codeds(4),
        category=rf1.coded(5),
        effective=rf1.when(7),
        expiration=rf1.when(8),
        processed=rf1.when(9),
        reasons=rf1.codeds(10),
        external_ids=tuple(e for e in (_entity(rep) for rep in rf1.reps(11)) if e is not None),
        reason_text=rf1.text(14),
        authorization=authorization,
        visit=None if pv1 is None else _visit(pv1, 1, problems),
        diagnoses=tuple(
            _diagnosis(segment, sequence, problems)
            for segment, sequence in segments
            if segment.name == "DG1"
        ),
        notes=_notes(message),
    )


def _event(segment: Segment, problems: list[Problem]) -> Event:
    evn = _Fields(segment, 1, problems)
    facility = evn.first(7)
    return Event(
        type_code=evn.text(1),
        recorded_at=evn.when(2),
        reason=evn.coded(4),
        operators=tuple(_clinician(rep) for rep in evn.reps(5)),
        occurred_at=evn.when(6),
        facility=None
        if facility is None
        else HierarchicDesignator(*(_at(facility, i) for i in (1, 2, 3))),
    )


def _read_discharge(message: Message, problems: list[Problem]) -> Discharge | None:
    evn_at = _require_segment(message, "EVN", problems, "an ADT message needs its event")
    pid_at = _require_segment(message, "PID", problems, "a discharge needs its patient")
    pv1_at = _require_segment(message, "PV1", problems, "a discharge needs its visit")
    event = None if evn_at is None else _event(evn_at, problems)
    patient = None if pid_at is None else _patient(pid_at, problems)
    visit = None if pv1_at is None else _visit(pv1_at, 1, problems)
    if event is None or patient is None or visit is None:
        return None
    return Discharge(
        header=message.header,
        event=event,
        patient=patient,
        visit=visit,
        diagnoses=tuple(
            _diagnosis(segment, sequence, problems)
            for segment, sequence in _segments(message)
            if segment.name == "DG1"
        ),
        notes=_notes(message),
    )


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRead:
    """Every message of a file, in order, each read on its own; `problems` are the envelope's
    (batch counts that do not match); bytes outside MLLP frames become rejected items."""

    items: tuple[Inbound, ...]
    problems: tuple[Problem, ...] = ()
    envelope: tuple[Segment, ...] = ()


def is_batch(data: bytes) -> bool:
    """Whether the bytes begin with a file or batch header (FHS, BHS): a batch sent in one
    piece, as over MLLP, is answered with a batch of acknowledgments."""
    return decode(data).lstrip().startswith(("FHS", "BHS"))


def read_file(data: bytes) -> FileRead:
    """Read a file of one or more messages: bare ER7, MLLP-framed, or FHS/BHS batches."""
    pieces = _unframe(data) if b"\x0b" in data else [(True, data)]
    items: list[Inbound] = []
    problems: list[Problem] = []
    envelope: list[Segment] = []
    for is_frame, piece in pieces:
        if not is_frame:
            items.append(
                Inbound(
                    piece,
                    AckCode.REJECT,
                    (
                        Problem(
                            Location("MSH", 1),
                            ErrorCode.SEGMENT_SEQUENCE_ERROR,
                            "bytes outside MLLP frames, or a frame that does not end",
                        ),
                    ),
                    sniff_header(decode(piece)),
                )
            )
            continue
        _read_batch(split_batch(piece), items, problems, envelope)
    return FileRead(tuple(items), tuple(problems), tuple(envelope))


def _unframe(data: bytes) -> list[tuple[bool, bytes]]:
    decoder = MllpDecoder()
    pieces: list[tuple[bool, bytes]] = []
    for event in [*decoder.feed(data), *decoder.close()]:
        if isinstance(event, FrameReceived):
            pieces.append((True, event.payload))
        elif isinstance(event, FrameIncomplete):
            pieces.append((False, event.partial))
        elif isinstance(event, BytesDiscarded) and event.data.strip():
            pieces.append((False, event.data))
    return pieces


def _read_batch(
    chunks: Sequence[Chunk],
    items: list[Inbound],
    problems: list[Problem],
    envelope: list[Segment],
) -> None:
    seen: dict[str, int] = {}
    encoding = DEFAULT_ENCODING
    messages_in_batch = 0
    batches_in_file = 0
    for chunk in chunks:
        if chunk.kind == "message":
            items.append(read_message(chunk.raw))
            messages_in_batch += 1
            continue
        if chunk.kind == "orphan":
            items.append(_orphan(chunk))
            continue
        sequence = seen[chunk.segment] = seen.get(chunk.segment, 0) + 1
        try:
            segment = parse_segment(decode(chunk.raw).rstrip("\r"), encoding, sequence)
            if segment.name in HEADER_SEGMENTS:
                encoding = header_encoding(segment)
        except (Hl7ParseError, ValueError):
            problems.append(
                Problem(
                    Location(chunk.segment, sequence),
                    ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    f"{chunk.segment} cannot be read",
                    Severity.WARNING,
                )
            )
            continue
        envelope.append(segment)
        if segment.name == "BHS":
            messages_in_batch = 0
            batches_in_file += 1
        elif segment.name == "BTS":
            _check_count(segment, sequence, messages_in_batch, "messages", problems)
        elif segment.name == "FTS":
            _check_count(segment, sequence, batches_in_file, "batches", problems)


def _orphan(chunk: Chunk) -> Inbound:
    reason = f"segment {chunk.segment} received before the MSH header (line {chunk.line})"
    return Inbound(
        chunk.raw,
        AckCode.REJECT,
        (Problem(Location(chunk.segment, 1), ErrorCode.SEGMENT_SEQUENCE_ERROR, reason),),
    )


def _check_count(
    segment: Segment, sequence: int, actual: int, what: str, problems: list[Problem]
) -> None:
    declared = segment.value(1).strip()
    if declared and declared != str(actual):
        problems.append(
            Problem(
                Location(segment.name, sequence, 1),
                ErrorCode.DATA_TYPE_ERROR,
                f"{segment.name}-1 declares {declared} {what}, the file holds {actual}",
                Severity.WARNING,
            )
        )
