"""HL7 v2 partners' referrals and discharges, received over MLLP or from files.

Each message is read by adapters.hl7v2 and kept as received, whatever happens next. A REF^I12
becomes the referral's ServiceRequest and its fulfillment Task (via mappings.service_request
and mappings.task), with the patient and the referring program matched by identifier or name,
or registered; the program referred to (PRD RT) must be one here, matched as a C-CDA
document's recipient is (interop.services.ccda_records): a referral for no program here is held
for staff, never the occasion to register a program an unauthenticated message names. The
referrer's own id (RF1-6) is the placer identifier, so a resent referral updates the same
records instead of doubling them. An ADT^A03 discharge starts a handoff: the
discharged patient gets an action for their case manager to plan the next level of care.
Everything of one message, and its inbound row, is written in one transaction; a message that
cannot be read or mapped is held for staff with its problems, and answered AE or AR. Over MLLP
the answers are those the sender asks for in MSH-15 and MSH-16 (original or enhanced mode:
adapters.hl7v2.acknowledgments), sent once that transaction is committed; an acknowledgment
that comes in is logged and never answered.
"""

import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from adapters.hl7v2 import (
    PART2_LABELS_PREFIX,
    PART2_NOTE_TYPE,
    AckCode,
    Discharge,
    ErrorCode,
    Inbound,
    Location,
    Outcome,
    Problem,
    Referral,
    acknowledge_batch,
    acknowledgments,
    build_ack,
    encode_ack,
    is_acknowledgment,
    is_batch,
    read_file,
    read_message,
)
from adapters.hl7v2.er7 import Message, MessageHeader
from adapters.hl7v2.messages import Hl7DateTime, Note, ReferralProvider
from adapters.hl7v2.messages import Patient as V2Patient
from consent import vocabulary as v
from interop.services.errors import (
    InvalidRequest,
    PreconditionFailed,
    ResourceNotFound,
    ServiceError,
)
from interop.services.outbox import Event
from interop.services.resources import (
    ResourceOperations,
    StoredVersion,
    as_written,
    internal_operations,
)
from interop.services.search_parser import Paging
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.search_params import parse_reference
from interop.store.tables import OPERATOR_ORIGIN, InboundMessageRow
from mappings import model as m
from mappings import organization, patient, service_request, task
from mappings.documents import with_labels
from mappings.errors import FhirContentError
from mappings.terminology import NPI_SYSTEM, PATIENT_REFERRAL
from mappings.workflow import Side, steps

_log = logging.getLogger(__name__)
_PAGING = Paging(2, 2)
V2_IDENTIFIERS = "urn:recovery-interop:hl7v2"
_REFERRAL_NAMESPACE = f"{V2_IDENTIFIERS}:referral:"
_AUTHORITY_NAMESPACE = f"{V2_IDENTIFIERS}:assigning-authority:"


def referral_system(namespace: str) -> str:
    """The identifier system of RF1-6 ids assigned by `namespace`. A name is
    percent-encoded: an FHIR uri holds no whitespace, and a `|` would split a token search."""
    return _REFERRAL_NAMESPACE + quote(namespace, safe="")


def authority_system(name: str) -> str:
    """The identifier system of an assigning authority known only by name (encoded as above)."""
    return _AUTHORITY_NAMESPACE + quote(name, safe="")


def referral_namespace(system: str) -> str | None:
    """The namespace a `referral_system` encodes; None for another system."""
    return _decoded(system, _REFERRAL_NAMESPACE)


def authority_name(system: str) -> str | None:
    """The name an `authority_system` encodes; None for another system."""
    return _decoded(system, _AUTHORITY_NAMESPACE)


def _decoded(system: str, prefix: str) -> str | None:
    return unquote(system.removeprefix(prefix)) if system.startswith(prefix) else None


_PRIORITIES = {"S": m.Urgency.STAT, "A": m.Urgency.ASAP, "R": m.Urgency.ROUTINE}
_SEX = {"F": m.Gender.FEMALE, "M": m.Gender.MALE, "O": m.Gender.OTHER}


class UnknownKey(ResourceNotFound):
    """The message names a record or party not known here: held for staff, and answered AE
    with ERR-2 at `location`, the field naming it, and 204 (unknown key identifier)."""

    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.location = location


class NotForUs(UnknownKey):
    """The message is for no program here: held for staff, as a C-CDA document for no program
    of ours is. `location` is the segment that names the program (ERR-2)."""


@dataclass(frozen=True, slots=True)
class Held:
    """A message staff must look at: why it was not processed, and what was received."""

    pk: int
    received_at: datetime
    channel: str
    sender: str
    message_type: str
    ack_code: str
    problems: list[str]


class InboundService:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def receive(self, raw: bytes, channel: str) -> tuple[bytes, ...]:
        """Keep the message, process it when it can be, and give the acknowledgments its
        sender asked for, in the order they go back (adapters.hl7v2.acknowledgments): one in
        original mode; in enhanced mode (MSH-15, MSH-16) the accept acknowledgment, then the
        application acknowledgment, each only when asked for, and neither before the message
        and what it records are committed; none for an acknowledgment, which is logged and
        dropped. A batch sent in one piece (FHS/BHS first, as an interface engine may send it
        over MLLP) is answered with a batch of original-mode ACKs, one per message, in order
        (section 2.10.3.3); a batch of acknowledgments with nothing."""
        if is_batch(raw):
            return self._receive_batch(raw, channel)
        inbound = read_message(raw)
        if is_acknowledgment(inbound.header):
            self._consume(inbound, inbound.header, channel)
            return ()
        now = self._clock()
        outcome = self._process(inbound, channel, now)
        return acknowledgments(inbound.header, outcome, new_control_id=_control_id, at=now)

    def _consume(self, inbound: Inbound, header: MessageHeader, channel: str) -> None:
        """An acknowledgment that came in: logged, never answered, and kept for staff only
        when its frame is not one readable ACK (more may follow it there)."""
        _consumed(header, inbound.message, channel)
        if inbound.message is None:
            problems = [str(problem) for problem in inbound.problems]
            self._hold(inbound, channel, self._clock(), inbound.ack_code, problems)

    def _receive_batch(self, raw: bytes, channel: str) -> tuple[bytes, ...]:
        read = read_file(raw)
        if read.items and all(is_acknowledgment(item.header) for item in read.items):
            _log.warning(
                "HL7 v2: a batch of %d acknowledgments came in by %s; it is not answered",
                len(read.items),
                channel,
            )
            return ()
        acks = [self._acknowledged(item, channel) for item in read.items]
        comment = read.problems[0].reason if read.problems else ""
        batch = acknowledge_batch(
            read.envelope, acks, control_id=_control_id(), at=self._clock(), comment=comment
        )
        return (batch,)

    def receive_file(self, data: bytes) -> list[bytes]:
        """A file of messages (bare, MLLP-framed, or a batch): one ACK per message."""
        return [self._acknowledged(item, "file") for item in read_file(data).items]

    def _acknowledged(self, inbound: Inbound, channel: str) -> bytes:
        """Process one message and give its original-mode ACK: a batch or a file is answered
        message for message, whatever each message's MSH-15 and MSH-16 ask."""
        now = self._clock()
        outcome = self._process(inbound, channel, now)
        ack = build_ack(
            inbound.header, outcome.code, outcome.problems, control_id=_control_id(), at=now
        )
        return encode_ack(ack)

    def held(self, after: int = 0, limit: int | None = None) -> list[Held]:
        """Held messages oldest first, those numbered past `after`, at most `limit` of them
        (a page of `GET /inbound/held`; numbers only grow, so a page never shifts)."""
        with unit_of_work(self._engine, writes=False) as session:
            statement = select(InboundMessageRow).where(
                col(InboundMessageRow.status) == "held", col(InboundMessageRow.pk) > after
            )
            ordered = statement.order_by(col(InboundMessageRow.pk)).limit(limit)
            rows = session.execute(ordered).scalars()
            return [
                Held(
                    row.pk or 0,
                    row.received_at,
                    row.channel,
                    row.sender,
                    row.message_type,
                    row.ack_code,
                    orjson.loads(row.problems) if row.problems else [],
                )
                for row in rows
            ]

    def _process(self, inbound: Inbound, channel: str, now: datetime) -> Outcome:
        """Keep the message and process it when it can be. What it records and its row are
        written in one transaction, so that a message is committed (CA) only with its outcome:
        a crash after the commit cannot lose what the sender was released from resending."""
        if inbound.accepted:
            try:
                with unit_of_work(self._engine) as session:
                    created = _apply(session, inbound)
                    session.add(_row(inbound, channel, now, "processed", created, []))
                return Outcome(AckCode.ACCEPT, AckCode.COMMIT_ACCEPT, inbound.problems)
            except (ServiceError, FhirContentError, ValueError) as error:
                told = self._held(inbound, channel, now, AckCode.ERROR, error)
                return Outcome(AckCode.ERROR, AckCode.COMMIT_ACCEPT, (told,))
            except DBAPIError as error:
                return self._unavailable(inbound, channel, now, error)
        self._hold(inbound, channel, now, inbound.ack_code, [str(p) for p in inbound.problems])
        return _as_read(inbound)

    def _held(
        self, inbound: Inbound, channel: str, now: datetime, code: AckCode, error: Exception
    ) -> Problem:
        """Hold the message with its reason for staff, and give what the sender is told: that
        it is held and where (`_located`), never why: why could tell it whether a referral
        exists here, and in which state (PART2.md S3)."""
        where, problem = _located(error)
        self._hold(inbound, channel, now, code, [str(Problem(where, problem, reason_of(error)))])
        return Problem(where, problem, _HELD)

    def _unavailable(
        self, inbound: Inbound, channel: str, now: datetime, error: DBAPIError
    ) -> Outcome:
        """The database failed (locked, gone, a concurrent write): nothing the message records
        was committed, so AR in original mode and CE in enhanced mode, both telling the sender
        to send again (HL7 v2 §2.9.2, §2.9.3), and the message held for staff when it can still
        be kept. When even that fails, the answer is the only record, and the sender keeps the
        message."""
        try:
            told = self._held(inbound, channel, now, AckCode.REJECT, error)
        except DBAPIError:
            told = Problem(Location("MSH"), ErrorCode.APPLICATION_INTERNAL_ERROR, _UNAVAILABLE)
        return Outcome(AckCode.REJECT, AckCode.COMMIT_ERROR, (told,))

    def _hold(
        self, inbound: Inbound, channel: str, now: datetime, code: AckCode, problems: list[str]
    ) -> None:
        with unit_of_work(self._engine) as session:
            row = _row(inbound, channel, now, "held", [], problems)
            row.ack_code = code.value
            session.add(row)


def _as_read(inbound: Inbound) -> Outcome:
    """The outcome of a message held as read: one whose envelope is refused (AR: unreadable,
    or a message type, event, processing id or version not taken here) is refused at the
    accept level too (CR); one whose content is wrong (AE) is committed, held for staff."""
    refused = inbound.ack_code is AckCode.REJECT
    commit = AckCode.COMMIT_REJECT if refused else AckCode.COMMIT_ACCEPT
    return Outcome(inbound.ack_code, commit, inbound.problems)


def _control_id() -> str:
    """MSH-10 of an ACK we write (ST, at most 20 characters)."""
    return uuid.uuid4().hex[:20]


def _consumed(header: MessageHeader, message: Message | None, channel: str) -> None:
    """Log an acknowledgment that came in as a message, by its control ids and sender alone:
    its texts (MSA-3, ERR-8) can quote the message it answers."""
    msa = message.first("MSA") if message is not None else None
    _log.warning(
        "HL7 v2: acknowledgment %r from %r (answering %r) came in by %s; it is not answered",
        header.control_id[:20],
        header.segment.value(4)[:60],
        msa.value(2)[:20] if msa is not None else "",
        channel,
    )


def _located(error: Exception) -> tuple[Location, ErrorCode]:
    """ERR-2 and ERR-3 of a held message: the field naming what is not here (a PRD's program,
    RF1-6's referral: 204, unknown key), else the message as a whole (207, application
    error)."""
    if isinstance(error, UnknownKey):
        return error.location, ErrorCode.UNKNOWN_KEY_IDENTIFIER
    return Location("MSH"), ErrorCode.APPLICATION_INTERNAL_ERROR


def reason_of(error: Exception) -> str:
    """Why processing failed, in our words or the validator's, cut short."""
    if isinstance(error, FhirContentError):
        return "; ".join(issue.diagnostics for issue in error.issues)[:500]
    if isinstance(error, ServiceError):
        return error.message[:500]
    if isinstance(error, DBAPIError):
        return f"the database refused the write ({type(error.orig).__name__}); resend or replay it"
    return str(error)[:500]


def _row(
    inbound: Inbound,
    channel: str,
    now: datetime,
    status: str,
    created: list[str],
    problems: list[str],
) -> InboundMessageRow:
    header = inbound.header
    sender = ""
    message_type = ""
    control_id = ""
    if header is not None:
        sender = f"{header.segment.value(3)}^{header.segment.value(4)}"
        message_type = f"{header.message_code}^{header.trigger_event}"
        control_id = header.control_id
    return InboundMessageRow(
        received_at=now,
        channel=channel,
        sender=sender[:400],
        control_id=control_id[:200],
        message_type=message_type[:40],
        ack_code=inbound.ack_code.value,
        status=status,
        problems=orjson.dumps(problems).decode() if problems else "",
        resources=" ".join(created),
        raw=inbound.raw,
    )


def _apply(session: Session, inbound: Inbound) -> list[str]:
    """What the message records, written on behalf of its sender. MLLP carries no
    authentication, so the sender is the facility the message names (see the README)."""
    content = inbound.content
    if isinstance(content, Referral):
        event = (content.header.message_code, content.header.trigger_event)
        if event == ("REF", "I14"):
            return _cancellation(session, content)
        if event == ("RRI", "I12"):
            return _answer(session, content)
        return _referral(session, content)
    if isinstance(content, Discharge):
        with _intake(session) as operations:
            return _discharge(operations, content)
    return []


def _intake(
    session: Session, on_behalf_of: str = OPERATOR_ORIGIN, acting_for: str | None = None
) -> AbstractContextManager[ResourceOperations]:
    return internal_operations(
        session, "hl7v2-intake", paging=_PAGING, on_behalf_of=on_behalf_of, acting_for=acting_for
    )


def _cancellation(session: Session, message: Referral) -> list[str]:
    """REF^I14: the referrer withdraws a referral it sent us (found by its RF1-6); the Task is
    cancelled as the requester's move, so the workflow decides whether it still may be."""
    system = referral_system(_namespace(message))
    with _intake(session) as lookup:
        return _cancel(session, lookup, system, message)


def _cancel(
    session: Session, lookup: ResourceOperations, system: str, message: Referral
) -> list[str]:
    referring = _known_program(lookup, message.referring, message.header.segment.value(4))
    criteria = [
        ("identifier", f"{system}|{_searchable(message.originating_id.value)}"),
        ("requester", f"Organization/{referring}"),
    ]
    order = lookup.single_match("ServiceRequest", criteria, "") if referring else None
    if order is None:
        raise UnknownKey(
            f"no referral with RF1-6 {message.originating_id.value!r} from this referrer is known",
            Location("RF1", field=6),
        )
    task_id = f"{order.resource_id}-task"[:64]
    current = as_written(lookup.read("Task", task_id).content)
    referrer = _party(current, "requester")
    reason = _notes_text(message) or "Withdrawn by the referring program (REF^I14)"
    with _intake(session, referrer or OPERATOR_ORIGIN, referrer) as writer:
        writer.update(
            "Task", task_id, {**current, "status": "cancelled", "statusReason": {"text": reason}}
        )
    return [f"ServiceRequest/{order.resource_id}", f"Task/{task_id}"]


def _answer(session: Session, message: Referral) -> list[str]:
    """RRI^I12: what the program we referred to did with our referral (RF1-1, table 0283),
    applied as the owner's moves, one by one, through the workflow check."""
    with _intake(session) as lookup:
        return _answered(session, lookup, message)


def _answered(session: Session, lookup: ResourceOperations, message: Referral) -> list[str]:
    value = _searchable(message.originating_id.value)
    order = lookup.single_match("ServiceRequest", [("identifier", value)], "")
    if order is None:
        order = lookup.single_match("ServiceRequest", [("_id", value)], "")
    focus = f"ServiceRequest/{order.resource_id}" if order is not None else ""
    shared = lookup.single_match("Task", [("focus", focus)], "") if order is not None else None
    if shared is None or not outbox.was_sent(session, shared, Event.REFERRAL_SENT):
        # Only a referral that went out over HL7 v2 can be answered over it.
        raise ResourceNotFound(f"no referral we sent over HL7 v2 has RF1-6 {value!r}")
    current = as_written(shared.content)
    target = _ANSWERS.get(message.status.code if message.status else "", "received")
    owner = _party(current, "owner")
    expired = message.status is not None and message.status.code == "E"
    reason = _notes_text(message) or (_EXPIRED if expired else _DECLINED)
    moves = steps(str(current.get("status")), target, Side.OWNER)
    with _intake(session, owner or OPERATOR_ORIGIN, owner) as writer:
        for status in [target] if moves is None else moves:  # no way: the check says why
            current = {**current, "status": status}
            if status == "rejected":
                current["statusReason"] = {"text": reason}
            written = writer.update("Task", shared.resource_id, current)
            current = as_written(written.stored.content)
    return [focus, f"Task/{shared.resource_id}"]


_ANSWERS = {"A": "accepted", "R": "rejected", "P": "received", "E": "rejected"}
_DECLINED = "Declined by the receiving program (RRI^I12)"
_EXPIRED = "The referral expired at the receiving program (RRI^I12)"
_HELD = "the message could not be applied; it is held for staff to review"
_UNAVAILABLE = "the message could not be stored now; send it again"


def _party(task_resource: dict[str, Any], role: str) -> str | None:
    """The Organization on that side of the Task, as "Organization/{id}" (the write's origin)."""
    reference = task_resource.get(role, {}).get("reference")
    parsed = parse_reference(reference) if isinstance(reference, str) else None
    return f"{parsed[0]}/{parsed[1]}" if parsed is not None else None


def _searchable(value: str) -> str:
    """RF1-6 as a search value; characters with a meaning in search values are refused rather
    than escaped, since no referral identifier of ours or of the corpus holds them."""
    if not value or any(char in value for char in ",|\\$"):
        raise InvalidRequest("RF1-6 holds characters no referral identifier here has")
    return value


def _notes_text(message: Referral) -> str:
    """The notes about the referral itself: those after an OBR or OBX are about results, and
    the 42 CFR Part 2 notice (PART2_NOTE_TYPE) is about the disclosure."""
    about = [n.text for n in message.notes if n.text and _about_referral(n)]
    return "\n".join(about)[:1000]


def _about_referral(note: Note) -> bool:
    return not _is_part2_notice(note) and note.follows not in ("OBR", "OBX")


def _referral(session: Session, message: Referral) -> list[str]:
    """REF^I12 -> ServiceRequest + fulfillment Task, deduplicated by the referrer's id, all
    written on behalf of the referring program, for the program here that PRD RT names."""
    with _intake(session) as lookup:
        receiving = _referred_to(lookup, message)
        referring = _program(lookup, message.referring, message.header.segment.value(4))
    with _intake(session, f"Organization/{referring}") as operations:
        return _referred(operations, message, referring, receiving)


def _referred(
    operations: ResourceOperations, message: Referral, referring: str, receiving: str
) -> list[str]:
    labels = _part2_labels(message)
    client = _client(operations, message.patient, labels)
    placer = m.Identifier(referral_system(_namespace(message)), message.originating_id.value)
    # RF1-6 is unique within its referrer only (a namespace such as "EPIC" is shared by many
    # hospitals): the referral it names is this referrer's, never another's.
    existing = operations.conditional_match(
        "ServiceRequest",
        f"identifier={placer.system}|{placer.value}&requester=Organization/{referring}",
        "",
    )
    if existing is not None:
        labels = (*_labels_of(existing), *labels)
    referral_id = m.Id(existing.resource_id if existing else str(uuid.uuid4()))
    authored = _when(message.header.sent_at) or datetime.now(UTC)
    referral = m.Referral(
        id=referral_id,
        client_id=m.Ref(client),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref(referring)),
        status=m.RequestStatus.ACTIVE,
        service=PATIENT_REFERRAL,
        authored_on=authored,
        performer_id=m.Ref(receiving),
        urgency=_PRIORITIES.get(
            message.priority.code if message.priority else "", m.Urgency.ROUTINE
        ),
        reason=_reason_text(message),
        placer_identifier=placer,
    )
    fulfillment = m.ReferralTask(
        id=m.Id(f"{referral_id}-task"[:64]),
        referral_id=m.Ref(referral_id),
        client_id=m.Ref(client),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref(referring)),
        status=m.TaskStatus.REQUESTED,
        authored_on=authored,
        owner=m.Party(m.PartyKind.PROGRAM, m.Ref(receiving)),
    )
    order = with_labels(service_request.to_fhir(referral), labels)
    operations.update("ServiceRequest", order["id"], order)
    shared = with_labels(task.to_fhir(fulfillment), labels)
    if existing is None:
        operations.update("Task", shared["id"], shared)
    else:  # a resend updates the order, never the Task's workflow state: its labels only
        operations.add_labels("Task", shared["id"], labels)
    return [f"Patient/{client}", f"ServiceRequest/{order['id']}", f"Task/{shared['id']}"]


def _discharge(operations: ResourceOperations, message: Discharge) -> list[str]:
    """ADT^A03 starts a handoff: an action for the case manager to plan the next level."""
    client = _client(operations, message.patient)
    when = message.discharged_at
    facility = message.facility.namespace_id if message.facility is not None else ""
    title = f"Plan the handoff after discharge{f' from {facility}' if facility else ''}"
    action = m.Action(
        id=m.Id(str(uuid.uuid4())),
        client_id=m.Ref(client),
        title=title[:200],
        owner=m.ActionOwner.CASE_MANAGER,
        status=m.TaskStatus.REQUESTED,
        authored_on=_when(when.text) if when else None,
    )
    resource = task.to_fhir(action)
    operations.update("Task", resource["id"], resource)
    return [f"Patient/{client}", f"Task/{resource['id']}"]


def _part2_labels(message: Referral) -> tuple[m.Code, ...]:
    """The security labels a message says its content carries (PART2.md P1: labelled Part 2
    data is Part 2 data here whoever sent it): MSH-8's confidentiality and the labels of a
    Part 2 notice NTE, as our own messages write them (adapters.hl7v2.outbound). A notice
    without its labels still marks the content 42CFRPart2."""
    confidentiality = message.header.segment.value(8).strip()
    notices = [note for note in message.notes if _is_part2_notice(note)]
    if confidentiality not in ("R", "V") and not notices:
        return ()
    codes = [
        code
        for note in notices
        for line in note.text.splitlines()
        if line.startswith(PART2_LABELS_PREFIX)
        for code in line.removeprefix(PART2_LABELS_PREFIX).split()
    ] or ["42CFRPart2"]
    level = confidentiality if confidentiality in ("R", "V") else "R"
    labels = [m.Code(v.CONFIDENTIALITY, level)]
    labels += [m.Code(v.ACT_CODE, code) for code in codes if code not in ("N", "R", "V")]
    return tuple(dict.fromkeys(labels))


def _labels_of(stored: StoredVersion) -> tuple[m.Code, ...]:
    """The security labels a stored version carries: a resend never takes one away."""
    meta = orjson.loads(stored.content or b"{}").get("meta", {})
    return tuple(
        m.Code(str(label.get("system", "")), str(label.get("code", "")))
        for label in meta.get("security", [])
        if isinstance(label, dict) and label.get("code") and label.get("system")
    )


def _is_part2_notice(note: Note) -> bool:
    return note.type is not None and note.type.code == PART2_NOTE_TYPE.code


def _client(
    operations: ResourceOperations, person: V2Patient, labels: tuple[m.Code, ...] = ()
) -> str:
    """The sender's patient with one of PID-3's identifiers here (`held_patient`: never
    another party's client who happens to carry the number), or registered from PID."""
    identifiers = [
        m.Identifier(_identifier_system(ident.assigning_authority), ident.value)
        for ident in person.identifiers
        if ident.value
    ]
    if not identifiers:
        raise ValueError("PID-3 carries no patient identifier")
    found = operations.held_client(identifiers, labels)
    if found is not None:
        return found
    names = tuple(
        m.Name(family=name.family or None, given=tuple(g for g in (name.given, name.middle) if g))
        for name in person.names
    )
    birth = person.birth_date
    client = m.Client(
        id=m.Id(str(uuid.uuid4())),
        identifiers=tuple(identifiers),
        names=names,
        gender=_SEX.get(person.sex, m.Gender.UNKNOWN),
        birth_date=date(birth.year, birth.month or 1, birth.day or 1)
        if birth and birth.day
        else None,
    )
    resource = with_labels(patient.to_fhir(client), labels)
    operations.update("Patient", resource["id"], resource)
    return str(client.id)


def _referred_to(operations: ResourceOperations, message: Referral) -> str:
    """The Organization here that PRD RT names: by an identifier (PRD-10's XON, or an NPI in
    PRD-7, where v2.5.1 senders and our own outbound messages put it), then by exact name
    (PRD-10, else the facility of PRD-4). Never registered: MLLP carries no authentication, so
    a program no one registered here is not one of ours (NotForUs, held for staff)."""
    provider = message.referred_to
    if provider is None:
        raise NotForUs("no PRD with role RT names the program referred to", Location("PRD"))
    where = Location("PRD", message.providers.index(provider) + 1)
    for identifier in _program_identifiers(provider):
        if _plain(identifier.system or "", identifier.value):
            token = f"{identifier.system or ''}|{identifier.value}"
            found = _organization_with(operations, "identifier", token)
            if found is not None:
                return found
    name = _program_name(provider)
    found = _organization_with(operations, "name:exact", name) if _plain(name) else None
    if found is None:
        raise NotForUs(
            "the referred-to provider (RT) names no program here: neither its identifiers "
            f"(PRD-7, PRD-10) nor its name {name[:100]!r} match an Organization",
            where,
        )
    return found


def _organization_with(operations: ResourceOperations, parameter: str, value: str) -> str | None:
    """The one Organization matching; None for none, and for an identifier several carry
    (the name decides then) or a value the search refuses."""
    try:
        found = operations.single_match("Organization", [(parameter, value)], "")
    except (PreconditionFailed, InvalidRequest):
        return None
    return None if found is None else found.resource_id


def _plain(*texts: str) -> bool:
    """Whether each text is there and holds no character search values give a meaning to
    (no identifier or name anyone here holds has one)."""
    return all(text and not _SEARCH_SPECIAL.search(text) for text in texts)


_SEARCH_SPECIAL = re.compile(r"[,|$\\]")


def _program_identifiers(provider: ReferralProvider) -> list[m.Identifier]:
    """The program's XON identifier (PRD-10), then the NPIs of PRD-7 (PLN-2 "NPI")."""
    identifier = _organization_identifier(provider)
    npis = [
        m.Identifier(NPI_SYSTEM, number.value)
        for number in provider.identifiers
        if number.type_code.upper() == "NPI" and number.value
    ]
    return [identifier, *npis] if identifier is not None else npis


def _program_name(provider: ReferralProvider | None) -> str:
    """PRD-10's organization name (v2.7+), else the facility of PRD-4 (how v2.5.1 names one)."""
    if provider is not None and provider.organization is not None:
        return provider.organization.name.strip()
    if provider is not None and provider.location is not None and provider.location.facility:
        return provider.location.facility.namespace_id.strip()
    return ""


def _known_program(
    operations: ResourceOperations, provider: Any, fallback_name: str = ""
) -> str | None:
    """The Organization here a PRD names: by its XON identifier (an NPI, say) when the message
    gives one, else by name; None when there is none."""
    identifier = _organization_identifier(provider)
    if identifier is not None:
        found = operations.conditional_match(
            "Organization", f"identifier={identifier.system}|{identifier.value}", ""
        )
        if found is not None:
            return found.resource_id
    name = _program_name(provider) or fallback_name.strip()
    if not name:
        return None
    found = operations.conditional_match("Organization", f"name:exact={name}", "")
    return found.resource_id if found is not None else None


def _program(operations: ResourceOperations, provider: Any, fallback_name: str) -> str:
    """The Organization of a PRD (`_known_program`), registered with its identifier when it
    is new here."""
    known = _known_program(operations, provider, fallback_name)
    if known is not None:
        return known
    identifier = _organization_identifier(provider)
    name = _program_name(provider) or fallback_name.strip()
    if not name:
        return ""
    program = m.Program(
        id=m.Id(str(uuid.uuid4())),
        name=name,
        part2_program=False,
        identifiers=(identifier,) if identifier is not None else (),
    )
    resource = organization.to_fhir(program)
    operations.update("Organization", resource["id"], resource)
    return str(program.id)


def _organization_identifier(provider: Any) -> m.Identifier | None:
    """XON-10 with its assigning authority (XON-6): an NPI as FHIR's NPI system, another
    authority as `_identifier_system` spells it."""
    organization = provider.organization if provider is not None else None
    if organization is None or not organization.identifier:
        return None
    authority = organization.assigning_authority
    npi = authority is not None and (
        authority.namespace_id.upper() == "NPI" or authority.universal_id == _NPI_OID
    )
    system = NPI_SYSTEM if npi else _identifier_system(authority)
    return m.Identifier(system, organization.identifier)


def _identifier_system(authority: Any) -> str:
    """PID-3's assigning authority as a URI: its OID when it has one, else its name."""
    if authority is not None and authority.universal_id and authority.universal_id_type == "ISO":
        return f"urn:oid:{authority.universal_id}"
    name = authority.namespace_id if authority is not None else ""
    return authority_system(name or "unknown")


_NPI_OID = "2.16.840.1.113883.4.6"


def _namespace(message: Referral) -> str:
    return message.originating_id.namespace_id or message.header.segment.value(4) or "unknown"


def _reason_text(message: Referral) -> str | None:
    parts = [message.reason_text, *(r.display or r.code for r in message.reasons)]
    parts += [
        d.description or (d.code.display or d.code.code if d.code else "")
        for d in message.diagnoses
    ]
    text = "; ".join(part for part in parts if part)
    return text[:1000] or None


def _when(text: str) -> datetime | None:
    """An HL7 DTM as an aware instant (UTC when the sender gave no offset)."""
    try:
        moment = Hl7DateTime.parse(text)
    except ValueError:
        return None
    if moment.day is None:
        return None
    return datetime(
        moment.year,
        moment.month or 1,
        moment.day,
        moment.hour or 0,
        moment.minute or 0,
        moment.second or 0,
        tzinfo=UTC,
    )
