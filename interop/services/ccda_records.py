"""What a partner's C-CDA document records here, written through the one door on behalf of its
sender (interop.services.ccda_intake receives, holds and answers; this module only writes).

- A Referral Note (LOINC 57133-1) becomes the referral of REFERRALS.md: a ServiceRequest
  (requester = the sending partner's Organization, performer = the program here the document is
  for, reasonCode = its Reason for Referral, supportingInfo = the document) and its fulfillment
  Task (owner = that program, status requested), via mappings.service_request and mappings.task.
- A Transfer Summary (LOINC 18761-7) starts a handoff in its stored form (mappings.handoff): a
  referral to the next level (SNOMED CT 4266003; orderDetail and occurrence from the Planned
  Encounter to one of our levels of care, when the document has one) and its Task, whose input
  is the transfer summary (and the level left, from documentationOf/serviceEvent); and every
  medication it lists becomes a MedicationStatement for reconciliation (mappings.documents).
- The document itself is kept as a DocumentReference holding its bytes.

Who and what:
- the patient is found by one of recordTarget's identifiers, or registered from the document;
- the program the document is for is the Organization here named by informationRecipient/
  intendedRecipient/receivedOrganization (by identifier, then by exact name); a document for no
  program here is not guessed at: ResourceNotFound, and the intake holds it for staff;
- every version written records the sender's Organization as its origin (PART2.md P1);
- the document's security labels (DS4P: header confidentialityCode, the Privacy Markings
  section and each section's own confidentialityCode) go onto meta.security of everything
  written from it; entry-level labels also go onto the DocumentReference, which holds those
  entries, and onto the MedicationStatements of the medication section they were found in.
  Confidentiality is the most restrictive one found; N (normal, the default) is not written,
  and an unreadable header confidentiality counts as R (the reader's fail-closed rule).

Resending is harmless: ids are name-based UUIDs of the sender and the document's id (the
referral: its setId, so a new version of the document finds the same referral), and what
already exists is left as it is, so a resend never reopens a referral staff have moved on.
"""

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final

from sqlmodel import Session

from adapters.ccda import (
    CcdaDocument,
    DocumentKind,
    LabelKind,
    LabelScope,
    PersonName,
    SectionKind,
    SecurityLabel,
)
from adapters.ccda import Code as CdaCode
from adapters.ccda import Identifier as CdaIdentifier
from adapters.ccda import Medication as CdaMedication
from adapters.ccda import Organization as CdaOrganization
from adapters.ccda import Patient as CdaPatient
from adapters.ccda import Period as CdaPeriod
from consent import vocabulary as v
from interop.services.bundle_builder import plain
from interop.services.errors import InvalidRequest, PreconditionFailed, ResourceNotFound
from interop.services.resources import ResourceOperations, as_written, internal_operations
from interop.services.search_parser import Paging
from interop.store.fhirdates import parse_range
from mappings import documents, patient, service_request, task
from mappings import model as m
from mappings.terminology import (
    FROM_LEVEL_OF_CARE,
    LEVEL_OF_CARE,
    LOINC,
    NPI_SYSTEM,
    PATIENT_REFERRAL,
    REFERRAL_TO_DRUG_REHABILITATION,
    SNOMED,
    TRANSFER_SUMMARY,
    TRANSITION_ITEM,
)
from mappings.workflow import TERMINAL

JOB: Final = "ccda-intake"
_PAGING = Paging(2, 2)
_NAMESPACE: Final = uuid.UUID("6f1d3b0e-5c3a-4b8e-9d7e-0c2a1f4e8b61")
_NPI_OID: Final = "2.16.840.1.113883.4.6"
_SYSTEMS: Final = {
    _NPI_OID: NPI_SYSTEM,
    "2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.69": "http://hl7.org/fhir/sid/ndc",
    "2.16.840.1.113883.4.1": "http://hl7.org/fhir/sid/us-ssn",
}
_GENDERS: Final = {"M": m.Gender.MALE, "F": m.Gender.FEMALE, "UN": m.Gender.OTHER}
_CONFIDENTIALITY_RANK: Final = {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}
_MEDICATION_SECTION_CODES: Final = frozenset({"10160-0", "42346-7", "10183-2", "29549-3"})
_SEARCH_SPECIAL = re.compile(r"[,|$\\]")
_TS: Final = re.compile(
    r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?(?:\.\d+)?)?(?:([+-])(\d{2})(\d{2}))?$"
)
_KINDS: Final = {
    DocumentKind.REFERRAL_NOTE: m.Code(LOINC, "57133-1", "Referral note"),
    DocumentKind.TRANSFER_SUMMARY: TRANSFER_SUMMARY,
}
"""The DocumentReference type: the LOINC code of the kind the templateIds say (the code a
document carries is sometimes wrong; the reader reports it)."""
_LEVELS: Final = frozenset(level.value for level in m.LevelOfCare)
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class Sender:
    """The partner a document came from: its registration and its Organization here."""

    client_id: str
    organization: str  # "Organization/{id}"


def record_document(
    session: Session, document: CcdaDocument, raw: bytes, sender: Sender, received_at: datetime
) -> list[str]:
    """Everything the document records, in the caller's transaction; the references written."""
    labels = document_labels(document)
    with internal_operations(
        session,
        JOB,
        paging=_PAGING,
        on_behalf_of=sender.organization,
        acting_for=sender.organization,
    ) as operations:
        owner = _recipient(operations, document.recipients)
        assert document.patient is not None  # the intake refuses a document without one
        client = _client(operations, document.patient, labels)
        key = _document_key(sender, document.id, raw)
        kept = _keep_document(operations, document, raw, sender, client, key, labels)
        written = [f"Patient/{client}", f"DocumentReference/{kept}"]
        referral_key = _referral_key(
            document, _document_key(sender, document.set_id or document.id, raw)
        )
        written += _referral(
            operations, document, sender, (client, owner, kept), referral_key, labels, received_at
        )
        if document.kind is DocumentKind.TRANSFER_SUMMARY:
            written += _medications(operations, document, sender, client, kept, key, labels)
        replaced = _supersede_earlier_versions(operations, document, client, kept)
        _note_replaced(operations, kept, replaced)
        if document.kind is DocumentKind.TRANSFER_SUMMARY:
            _retire_medications_of(operations, client, replaced)
            task_id = str(uuid.uuid5(referral_key, "task"))
            _point_to_current(operations, task_id, replaced, f"DocumentReference/{kept}")
    return written


# Security labels


def document_labels(document: CcdaDocument) -> tuple[m.Code, ...]:
    """The labels of the whole document and of its sections, as meta.security codings."""
    return _labels(document, lambda label: label.scope is not LabelScope.ENTRY)


def _labels(document: CcdaDocument, wanted: Callable[[SecurityLabel], bool]) -> tuple[m.Code, ...]:
    header = document.confidentiality.value
    confidentiality = header if header in _CONFIDENTIALITY_RANK else "R"
    found: list[m.Code] = []
    for label in document.security_labels:
        if not wanted(label):
            continue
        if label.kind is LabelKind.CONFIDENTIALITY:
            if _CONFIDENTIALITY_RANK.get(label.code, 0) > _CONFIDENTIALITY_RANK[confidentiality]:
                confidentiality = label.code
            continue
        system = v.ACT_REASON if label.kind is LabelKind.PURPOSE_OF_USE else v.ACT_CODE
        coded = _label(system, label.code)
        if coded is not None and coded not in found:
            found.append(coded)
    if _CONFIDENTIALITY_RANK[confidentiality] > _CONFIDENTIALITY_RANK["N"]:
        found.insert(0, m.Code(v.CONFIDENTIALITY, confidentiality))
    return tuple(found)


def _label(system: str, code: str) -> m.Code | None:
    try:
        return m.Code(system, code)
    except ValueError:  # a code with spaces is no code of these systems
        return None


def _entry_labels(document: CcdaDocument, sections: frozenset[str] | None) -> tuple[m.Code, ...]:
    """Document and section labels, with the entry labels of `sections` (all when None)."""
    return _labels(
        document,
        lambda label: (
            label.scope is not LabelScope.ENTRY or sections is None or label.section in sections
        ),
    )


# Who


def _recipient(operations: ResourceOperations, recipients: tuple[CdaOrganization, ...]) -> str:
    """The program here the document is for, by identifier first, then by exact name."""
    for organization in recipients:
        for ii in organization.ids:
            identifier = _identifier(ii)
            if identifier is not None:
                found = _organization_with(operations, identifier)
                if found is not None:
                    return found
        for name in organization.names:
            if name and not _SEARCH_SPECIAL.search(name):
                match = operations.single_match("Organization", [("name:exact", name)], "")
                if match is not None:
                    return match.resource_id
    raise ResourceNotFound(
        "the document's intended recipient (informationRecipient/receivedOrganization) "
        "names no program here"
    )


def _organization_with(operations: ResourceOperations, identifier: m.Identifier) -> str | None:
    """The one Organization with this identifier, if any."""
    token = _token(identifier)
    if token is None:
        return None
    try:
        found = operations.single_match("Organization", [("identifier", token)], "")
    except (PreconditionFailed, InvalidRequest):
        return None
    return None if found is None else found.resource_id


def _token(identifier: m.Identifier) -> str | None:
    """The identifier as a token search value; None for one with a character search values
    give a meaning to (such values are not identifiers anyone here holds)."""
    if _SEARCH_SPECIAL.search(identifier.value) or _SEARCH_SPECIAL.search(identifier.system or ""):
        return None
    return f"{identifier.system or ''}|{identifier.value}"


def _client(operations: ResourceOperations, person: CdaPatient, labels: tuple[m.Code, ...]) -> str:
    """The sender's patient with one of recordTarget's identifiers here (`held_patient`), or
    registered from it."""
    identifiers = tuple(i for i in (_identifier(ii) for ii in person.ids) if i is not None)
    if not identifiers:
        raise InvalidRequest("the document's patient has no identifier")
    found = operations.held_client(identifiers, labels)
    if found is not None:
        return found
    client = m.Client(
        id=m.Id(str(uuid.uuid4())),
        identifiers=identifiers,
        names=tuple(name for name in (_name(n) for n in person.names) if name is not None),
        gender=_GENDERS.get(person.gender.code if person.gender else "", m.Gender.UNKNOWN),
        birth_date=_date(person.birth_time),
    )
    resource = documents.with_labels(patient.to_fhir(client), labels)
    operations.update("Patient", resource["id"], resource)
    return str(client.id)


def _name(name: PersonName) -> m.Name | None:
    """A structured name as written; an unstructured one (PN text) as given names."""
    given = tuple(part for part in name.given if part)
    family = " ".join(part for part in name.family if part) or None
    if family is None and not given and name.text:
        given = (name.text,)
    try:
        return m.Name(family=family, given=given)
    except ValueError:
        return None


def _identifier(ii: CdaIdentifier) -> m.Identifier | None:
    """An HL7 II as a FHIR Identifier: root OID as the system and extension as the value; a
    root alone is the identifier itself (a URI); our own writer's "system|value" extensions
    under its OID root (interop.services.exports) read back as that system and value."""
    root, extension = ii.root, ii.extension
    try:
        if extension and root:
            system, bar, value = extension.partition("|")
            if bar and ":" in system and value:
                return m.Identifier(system, value)
            return m.Identifier(_SYSTEMS.get(root, f"urn:oid:{root}"), extension)
        if root:
            prefix = "urn:uuid:" if _UUID.fullmatch(root) else "urn:oid:"
            return m.Identifier("urn:ietf:rfc:3986", prefix + root.lower())
    except ValueError:
        return None
    return None


# What


def _referral_key(document: CcdaDocument, set_key: uuid.UUID) -> uuid.UUID:
    """Versions of one document share its setId and its kind: a Transfer Summary carrying a
    Referral Note's setId (HL7's own examples do) is another document set, and starts a
    handoff of its own rather than landing on the referral. A Referral Note keeps the key of
    its set, as before."""
    if document.kind is DocumentKind.REFERRAL_NOTE:
        return set_key
    return uuid.uuid5(set_key, document.kind.name)


def _document_key(sender: Sender, ii: CdaIdentifier | None, raw: bytes) -> uuid.UUID:
    """The name the document's records are derived from: its id, per sender; a document
    without one is named by its bytes."""
    name = f"{ii.root}|{ii.extension or ''}" if ii is not None and ii.root else ""
    if not name:
        name = "sha256:" + hashlib.sha256(raw).hexdigest()
    return uuid.uuid5(_NAMESPACE, f"{sender.organization}|{name}")


def _exists(operations: ResourceOperations, kind: str, ident: str) -> bool:
    try:
        operations.read(kind, ident)
    except ResourceNotFound:
        return False
    return True


def _keep_document(
    operations: ResourceOperations,
    document: CcdaDocument,
    raw: bytes,
    sender: Sender,
    client: str,
    key: uuid.UUID,
    labels: tuple[m.Code, ...],
) -> str:
    ident = str(uuid.uuid5(key, "document"))
    if _exists(operations, "DocumentReference", ident):
        return ident
    kept = documents.ReceivedDocument(
        id=m.Id(ident),
        client_id=m.Ref(client),
        sender_id=m.Ref(sender.organization.removeprefix("Organization/")),
        kind=_KINDS[document.kind],
        content=raw,
        content_type="application/xml",
        title=document.title,
        master_identifier=_identifier(document.id) if document.id else None,
        set_identifier=_identifier(document.set_id) if document.set_id else None,
        written_at=_instant(document.effective_time),
        labels=_entry_labels(document, None) or labels,
    )
    resource = documents.document_reference(kept)
    operations.update("DocumentReference", ident, resource)
    return ident


def _referral(
    operations: ResourceOperations,
    document: CcdaDocument,
    sender: Sender,
    parties: tuple[str, str, str],
    referral_key: uuid.UUID,
    labels: tuple[m.Code, ...],
    received_at: datetime,
) -> list[str]:
    """The referral (or handoff) and its fulfillment Task, named by `referral_key` (the
    document set's); what exists already is kept. `parties`: the client, the owning program
    and the kept document."""
    client, owner, kept = parties
    referral_id = m.Id(str(uuid.uuid5(referral_key, "referral")))
    task_id = m.Id(str(uuid.uuid5(referral_key, "task")))
    handoff = document.kind is DocumentKind.TRANSFER_SUMMARY
    requester = m.Party(m.PartyKind.PROGRAM, m.Ref(sender.organization.split("/")[-1]))
    authored = _when(document.effective_time) or received_at
    to_level, planned = _next_level(document) if handoff else (None, None)
    placer = document.set_id or document.id
    referral = m.Referral(
        id=referral_id,
        client_id=m.Ref(client),
        requester=requester,
        status=m.RequestStatus.ACTIVE,
        service=REFERRAL_TO_DRUG_REHABILITATION if handoff else PATIENT_REFERRAL,
        authored_on=authored,
        performer_id=m.Ref(owner),
        reason=(document.reason_for_referral or "")[:1000] or None,
        requested_level=to_level,
        occurrence=planned,
        placer_identifier=_identifier(placer) if placer is not None else None,
        attachments=(m.Ref(kept),),
    )
    inputs: list[m.TaskInput] = []
    if handoff:
        inputs.append(m.TaskInput(TRANSFER_SUMMARY, m.TypedRef("DocumentReference", m.Ref(kept))))
        left = _level_of_care(document.service_event)
        if left is not None:
            item = m.Code(TRANSITION_ITEM.url, FROM_LEVEL_OF_CARE)
            level = m.Code(LEVEL_OF_CARE.url, left.value, LEVEL_OF_CARE.display(left.value))
            inputs.append(m.TaskInput(item, level))
    fulfillment = m.ReferralTask(
        id=task_id,
        referral_id=m.Ref(referral_id),
        client_id=m.Ref(client),
        requester=requester,
        status=m.TaskStatus.REQUESTED,
        authored_on=authored,
        owner=m.Party(m.PartyKind.PROGRAM, m.Ref(owner)),
        inputs=tuple(inputs),
    )
    if not _exists(operations, "ServiceRequest", referral_id):
        order = documents.with_labels(service_request.to_fhir(referral), labels)
        operations.update("ServiceRequest", referral_id, order)
    else:  # a later version of the document: what it marks, the referral is marked as
        operations.add_labels("ServiceRequest", referral_id, labels)
    if not _exists(operations, "Task", task_id):
        shared = documents.with_labels(task.to_fhir(fulfillment), labels)
        operations.update("Task", task_id, shared)
    else:
        operations.add_labels("Task", task_id, labels)
    return [f"ServiceRequest/{referral_id}", f"Task/{task_id}"]


def _level_of_care(code: CdaCode | None) -> m.LevelOfCare | None:
    """One of our levels of care, written as our writer writes it (the local code with its
    display, under the sender's OID: levels have no HL7 code system); other codes are not."""
    if code is None or code.code not in _LEVELS or code.display != LEVEL_OF_CARE.display(code.code):
        return None
    return m.LevelOfCare(code.code)


def _next_level(document: CcdaDocument) -> tuple[m.LevelOfCare | None, date | None]:
    """The level entered and its date: the Plan of Treatment's Planned Encounter to one of
    our levels of care (how a Transfer Summary of a handoff says where the client goes)."""
    for planned in document.plan_of_treatment:
        level = _level_of_care(planned.code) if planned.activity == "encounter" else None
        if level is not None:
            effective = planned.effective or CdaPeriod()
            when = _when(effective.value or effective.low)
            day = when.date() if isinstance(when, datetime) else when
            return level, day
    return None, None


def _medications(
    operations: ResourceOperations,
    document: CcdaDocument,
    sender: Sender,
    client: str,
    kept: str,
    key: uuid.UUID,
    labels: tuple[m.Code, ...],
) -> list[str]:
    """Each medication the document lists, as a MedicationStatement to reconcile."""
    written = []
    entry_labels = _entry_labels(document, _MEDICATION_SECTION_CODES) or labels
    for index, medication in enumerate(document.medications):
        reported = _reported(medication, index, document, sender, client, kept, key, entry_labels)
        if reported is None:
            continue
        if not _exists(operations, "MedicationStatement", reported.id):
            resource = documents.medication_statement(reported)
            operations.update("MedicationStatement", reported.id, resource)
        written.append(f"MedicationStatement/{reported.id}")
    return written


def _supersede_earlier_versions(
    operations: ResourceOperations, document: CcdaDocument, client: str, kept: str
) -> set[str]:
    """A later version of a document (the same setId and kind, written later) replaces the
    earlier one, Referral Note or Transfer Summary: the earlier DocumentReference becomes
    `superseded`, so that a reader of the client's documents finds one current version.
    Returns the references of those it superseded."""
    set_id = _identifier(document.set_id) if document.set_id else None
    token = _token(set_id) if set_id is not None else None
    if token is None:
        return set()
    written_at = _instant(document.effective_time)
    kind = _KINDS[document.kind]
    criteria = [
        ("identifier", token),
        ("patient", f"Patient/{client}"),
        ("status", "current"),
        ("type", f"{kind.system}|{kind.code}"),
    ]
    replaced: set[str] = set()
    for earlier in _found(operations, "DocumentReference", criteria):
        if earlier["id"] == kept or not _written_before(earlier.get("date"), written_at):
            continue
        operations.update("DocumentReference", earlier["id"], {**earlier, "status": "superseded"})
        replaced.add(f"DocumentReference/{earlier['id']}")
    return replaced


def _note_replaced(operations: ResourceOperations, kept: str, replaced: set[str]) -> None:
    """The new version says which it replaces (DocumentReference.relatesTo `replaces`), as
    the superseded ones say by their status that they were."""
    if not replaced:
        return
    current = as_written(operations.read("DocumentReference", kept).content)
    relations = current.get("relatesTo") or []
    named = {relation.get("target", {}).get("reference") for relation in relations}
    added = [
        {"code": "replaces", "target": {"reference": reference}}
        for reference in sorted(replaced - named)
    ]
    if added:
        updated = {**current, "relatesTo": [*relations, *added]}
        operations.update("DocumentReference", kept, updated)


def _point_to_current(
    operations: ResourceOperations, task_id: str, replaced: set[str], current: str
) -> None:
    """A handoff's Task names the Transfer Summary that stands (its input 18761-7), not one a
    later version superseded; a Task already ended keeps what it ended with."""
    if not replaced or not _exists(operations, "Task", task_id):
        return
    shared = as_written(operations.read("Task", task_id).content)
    if shared.get("status") in TERMINAL:
        return
    inputs = shared.get("input") or []
    moved = [
        {**item, "valueReference": {"reference": current}}
        if (item.get("valueReference") or {}).get("reference") in replaced
        else item
        for item in inputs
    ]
    if moved != inputs:
        operations.update("Task", task_id, {**shared, "input": moved})


def _retire_medications_of(operations: ResourceOperations, client: str, replaced: set[str]) -> None:
    """The medications read from a superseded Transfer Summary that no one has changed since
    are deleted (their history stays), so that staff reconcile the current list; a statement
    someone has changed is theirs and stays."""
    if not replaced:
        return
    for statement in _found(operations, "MedicationStatement", [("patient", f"Patient/{client}")]):
        sources = {source.get("reference") for source in statement.get("derivedFrom", [])}
        if sources & replaced and statement.get("meta", {}).get("versionId") == "1":
            operations.delete("MedicationStatement", statement["id"])


def _found(
    operations: ResourceOperations, kind: str, criteria: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    bundle = operations.search(kind, [*criteria, ("_count", "1000")], base_url="")
    return [plain(entry["resource"]) for entry in bundle.get("entry", []) if "resource" in entry]


def _written_before(earlier: Any, written_at: datetime | None) -> bool:
    """Whether a stored document's date is before `written_at`; without both dates, the
    version received later is the one that stands."""
    if not isinstance(earlier, str) or written_at is None:
        return True
    try:
        return parse_range(earlier)[0] < written_at
    except ValueError:
        return True


def _reported(
    medication: CdaMedication,
    index: int,
    document: CcdaDocument,
    sender: Sender,
    client: str,
    kept: str,
    key: uuid.UUID,
    labels: tuple[m.Code, ...],
) -> documents.ReportedMedication | None:
    codes = tuple(
        c for c in (_code(x) for x in (medication.product, *medication.product_translations)) if c
    )
    text = medication.product_text
    if not codes and not text:
        return None  # a negated entry with no product: "no medications", nothing to reconcile
    status = documents.StatementStatus.UNKNOWN
    if medication.negated:
        status = documents.StatementStatus.NOT_TAKEN
    elif (
        medication.status == "active"
        and medication.section is not SectionKind.ADMISSION_MEDICATIONS
    ):
        status = documents.StatementStatus.ACTIVE
    return documents.ReportedMedication(
        id=m.Id(str(uuid.uuid5(key, f"medication-{index}"))),
        client_id=m.Ref(client),
        source_id=m.Ref(sender.organization.split("/")[-1]),
        document_id=m.Ref(kept),
        medication=m.Concept(codes, text[:1000] if text else None),
        status=status,
        identifiers=tuple(i for i in (_identifier(ii) for ii in medication.ids) if i is not None),
        effective=_effective(medication.effective),
        asserted=_when(document.effective_time),
        dosage=medication.text[:1000] if medication.text else None,
        route=_code(medication.route),
        labels=labels,
    )


def _code(code: CdaCode | None) -> m.Code | None:
    """The code with its displayName: a case manager reconciling medications reads names, not
    RxNorm numbers (probe 12 #6)."""
    if code is None or not code.system_oid:
        return None
    display = code.display.strip()[:1000] or None if code.display else None
    try:
        system = _SYSTEMS.get(code.system_oid, f"urn:oid:{code.system_oid}")
        return m.Code(system, code.code, display)
    except ValueError:
        return None


# Times


def _when(ts: str | None) -> date | datetime | None:
    """An HL7 TS as a FHIR dateTime: the instant when it has a time and an offset, else the
    day (a time without an offset names no instant)."""
    match = _TS.match(ts or "")
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    try:
        day_value = date(int(year), int(month), int(day))
        if hour is None or sign is None:
            return day_value
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(offset if sign == "+" else -offset)
        return datetime(
            day_value.year,
            day_value.month,
            day_value.day,
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _instant(ts: str | None) -> datetime | None:
    found = _when(ts)
    return found.astimezone(UTC) if isinstance(found, datetime) else None


def _date(ts: str | None) -> date | None:
    found = _when(ts)
    return found.date() if isinstance(found, datetime) else found


def _effective(period: CdaPeriod | None) -> m.Period | date | datetime | None:
    if period is None:
        return None
    if period.value:
        return _when(period.value)
    start, end = _when(period.low), _when(period.high)
    if start is None and end is None:
        return None
    try:
        return m.Period(start, end)
    except (ValueError, TypeError):  # ends in the wrong order, or a day against an instant
        return None
