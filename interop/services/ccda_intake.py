"""C-CDA documents partners send us: over HTTP (POST /inbound/ccda), from a watched inbox folder
(the ccda-directory channel read the other way) or from a file (`interop ccda import`).

Each document is received, processed, or held, as HL7 v2 messages are (interop.services.inbound):
every document is kept in the inbound table with its bytes, whatever happens next, and what
cannot be processed waits there for staff (`GET /inbound/held`) with its reason; nothing is
dropped. Three outcomes, each a value, never an exception:

    PROCESSED  written (interop.services.ccda_records), in one transaction with its row
    REFUSED    the document itself cannot be taken: not well-formed or unsafe XML, not a
               ClinicalDocument, not a Referral Note or Transfer Summary, no patient. Held,
               and the sender is told why (the reason is about its own document)
    HELD       a good document that could not be applied here (no program here is its
               recipient, a workflow rule, invalid FHIR). Held; the sender learns only that it
               is held, since why could tell it what records exist here (PART2.md S3)

The sender is the partner's registration, authenticated (a bearer token) or named by the
operator (a folder or a file); its Organization is the origin of everything written.

Resends are processed once. Over HTTP an Idempotency-Key (draft-ietf-httpapi-idempotency-key-
header) names a drop: the same key from the same partner answers what the first drop was
answered, and the same key with another document is refused. A file is named by the SHA-256
of its bytes: one already processed from that partner is not processed again (a held one is,
so a file can be re-imported once staff fixed what held it). Beneath both, what a document
writes is named by its id (interop.services.ccda_records), so even a resend that slips past
both writes nothing twice.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import orjson
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from adapters.ccda import CcdaDocument, DocumentKind, read_document
from adapters.errors import MalformedDocument
from interop.services import limits
from interop.services.ccda_records import Sender, record_document
from interop.services.errors import BusinessRuleBroken, Forbidden, ResourceNotFound, ServiceError
from interop.services.inbound import reason_of
from interop.store import locks, outbox
from interop.store.database import unit_of_work
from interop.store.tables import InboundMessageRow
from mappings.errors import FhirContentError

__all__ = ["Channel", "DocumentIntake", "DocumentReceipt", "IntakeStatus", "Sender"]

MAX_DOCUMENT_BYTES: Final = 10 * 1024 * 1024
"""The reader's own limit (adapters.ccda.reader.DEFAULT_MAX_BYTES)."""
HELD_FOR_STAFF: Final = "the document could not be applied; it is held for staff to review"
_TAKEN: Final = frozenset({DocumentKind.REFERRAL_NOTE, DocumentKind.TRANSFER_SUMMARY})


class Channel(StrEnum):
    """How a document arrived (the inbound row's channel)."""

    HTTP = "ccda-http"
    DIRECTORY = "ccda-directory"
    FILE = "ccda-file"


class IntakeStatus(StrEnum):
    PROCESSED = "processed"
    REFUSED = "refused"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class DocumentReceipt:
    """What became of one document: `inbound_id` is its row (staff find it by that id),
    `resources` what it wrote, `reason` what the sender may be told, `held_for` why staff hold
    it (as `GET /inbound/held` says: our words or the validator's, never the document's data;
    a held document's reason is kept from the sender, PART2.md S3), `replayed` whether this
    answers a resend without processing it again."""

    status: IntakeStatus
    inbound_id: int
    resources: tuple[str, ...] = ()
    reason: str = ""
    replayed: bool = False
    held_for: str = ""

    @property
    def document(self) -> str | None:
        """The DocumentReference the document is kept as, when it was processed."""
        return next((r for r in self.resources if r.startswith("DocumentReference/")), None)


class DocumentIntake:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def sender(self, client_id: str) -> Sender:
        """A registered, enabled partner as the sender of documents an operator hands in."""
        with unit_of_work(self._engine, writes=False) as session:
            row = outbox.partner(session, client_id)
        if row is None:
            raise ResourceNotFound(f"no partner has client_id {client_id[:64]!r}")
        if not row.enabled:
            raise Forbidden(f"the partner {client_id[:64]!r} is disabled")
        return Sender(row.client_id, f"Organization/{row.organization_id}")

    def receive(
        self, raw: bytes, sender: Sender, channel: Channel, key: str | None = None
    ) -> DocumentReceipt:
        """Keep the document, process it when it can be, and say what became of it.

        `key` is the drop's Idempotency-Key (HTTP); files are keyed by their SHA-256. The
        document is read before any lock is taken; then, under the drop's lock, its outcome
        (processed, refused or held) is written in one transaction, so that copies of one
        drop arriving at once (a retry racing its original) are answered by the first's row
        instead of each writing its own."""
        keyed = key is not None
        key = key if key is not None else "sha256:" + hashlib.sha256(raw).hexdigest()
        with unit_of_work(self._engine, writes=False) as session:
            earlier = _first_drop(session, sender, key, raw, keyed=keyed)
        if earlier is not None:
            return _receipt(earlier, replayed=True)
        drop = _Drop(raw, sender, channel, key, self._clock())
        kind, read = _read(raw)
        with unit_of_work(self._engine) as session:
            locks.serialize_on(session, [f"inbound-document {sender.client_id} {key}"])
            earlier = _first_drop(session, sender, key, raw, keyed=keyed)
            if earlier is not None:
                return _receipt(earlier, replayed=True)
            row = (
                drop.row(kind, IntakeStatus.REFUSED, read)
                if isinstance(read, str)
                else _applied(session, read, kind, drop)
            )
            session.add(row)
            session.flush()
            return _receipt(row)


@dataclass(frozen=True, slots=True)
class _Drop:
    """One arrival of a document: what its inbound row records whatever becomes of it."""

    raw: bytes
    sender: Sender
    channel: Channel
    key: str
    received_at: datetime

    def row(self, kind: str, status: IntakeStatus, problem: str = "") -> InboundMessageRow:
        """Its inbound row: `status` is processed or held (a refusal is held, told apart by its
        ack_code "AR", as an HL7 v2 message the receiver rejects is; "AE" is held for an
        application error, "AA" processed)."""
        return InboundMessageRow(
            received_at=self.received_at,
            channel=self.channel.value,
            sender=self.sender.client_id[:400],
            control_id=self.key[:200],
            message_type=kind[:40],
            ack_code=_ACK[status],
            status="processed" if status is IntakeStatus.PROCESSED else "held",
            problems=orjson.dumps([problem]).decode() if problem else "",
            resources="",
            raw=self.raw,
        )


def _read(raw: bytes) -> tuple[str, CcdaDocument | str]:
    """What kind of document it is, and the document or why it is refused: unreadable, or
    not one this service takes."""
    try:
        document = read_document(raw, max_bytes=MAX_DOCUMENT_BYTES)
    except MalformedDocument as error:
        return "C-CDA", str(error)
    return f"C-CDA {document.kind.value}", _refusal(document) or document


def _applied(session: Session, document: CcdaDocument, kind: str, drop: _Drop) -> InboundMessageRow:
    """The document's records written, or, when they cannot be, none of them (a savepoint
    rolls them back) and the document held for staff with why."""
    try:
        with session.begin_nested():
            written = record_document(session, document, drop.raw, drop.sender, drop.received_at)
    except (ServiceError, FhirContentError, ValueError) as error:
        return drop.row(kind, IntakeStatus.HELD, reason_of(error))
    row = drop.row(kind, IntakeStatus.PROCESSED)
    row.resources = " ".join(written)
    return row


def _kind_named(kind: DocumentKind) -> str:
    """The kind as a sentence names it: "a CCD", "a care-plan document", "a document of
    another kind" (one whose templateIds name none this service knows)."""
    if kind is DocumentKind.OTHER:
        return "a document of another kind (no Referral Note or Transfer Summary templateId)"
    if kind is DocumentKind.CCD:
        return "a CCD"
    return f"a {kind.value} document"


def _refusal(document: CcdaDocument) -> str | None:
    """Why the document is not one this service takes, or None."""
    if document.kind not in _TAKEN:
        return (
            f"{_kind_named(document.kind)} is not taken here: send a Referral Note "
            "(57133-1) or a Transfer Summary (18761-7), told apart by their templateIds"
        )
    patient = document.patient
    if patient is None:
        return "the document names no patient (recordTarget/patientRole)"
    if not any(ii.root for ii in patient.ids):
        return "the document's patient has no identifier (patientRole/id)"
    if not any(name.full() for name in patient.names):
        return "the document's patient has no name (patientRole/patient/name)"
    medications = len(document.medications)
    if medications > limits.MAX_BUNDLE_ENTRIES:
        return (
            f"the document lists {medications} medications: at most "
            f"{limits.MAX_BUNDLE_ENTRIES} are taken from one document, whose records are "
            "written at once"
        )
    return None


_ACK: Final = {IntakeStatus.PROCESSED: "AA", IntakeStatus.REFUSED: "AR", IntakeStatus.HELD: "AE"}
_STATUS_OF_ACK: Final = {ack: status for status, ack in _ACK.items()}


def _receipt(row: InboundMessageRow, *, replayed: bool = False) -> DocumentReceipt:
    status = _STATUS_OF_ACK.get(row.ack_code, IntakeStatus.HELD)
    problems: list[str] = orjson.loads(row.problems) if row.problems else []
    reason = problems[0] if problems and status is IntakeStatus.REFUSED else ""
    if status is IntakeStatus.HELD:
        reason = HELD_FOR_STAFF
    return DocumentReceipt(
        status,
        row.pk or 0,
        tuple(row.resources.split()),
        reason,
        replayed=replayed,
        held_for=problems[0] if problems else "",
    )


def _first_drop(
    session: Session, sender: Sender, key: str, raw: bytes, *, keyed: bool
) -> InboundMessageRow | None:
    """The first drop of this sender under this key, if any: under an Idempotency-Key any
    earlier drop (the same key with another document is refused), under a file's digest only a
    processed one (a held document may be dropped again once its cause is fixed)."""
    statement = select(InboundMessageRow).where(
        col(InboundMessageRow.sender) == sender.client_id,
        col(InboundMessageRow.control_id) == key,
        col(InboundMessageRow.channel).in_([c.value for c in Channel]),
    )
    if not keyed:
        statement = statement.where(col(InboundMessageRow.status) == "processed")
    found = session.execute(statement.order_by(col(InboundMessageRow.pk))).scalars().first()
    if found is not None and keyed and found.raw != raw:
        raise BusinessRuleBroken(
            "this Idempotency-Key was used for another document: use a new key"
        )
    return found
