"""What a partner's clinical document becomes besides its referral: the document itself as a
DocumentReference, and the medications it reports as MedicationStatements for reconciliation.

Both are written, never read back into the case model: a received document is kept as the
sender wrote it (the bytes in `content.attachment.data`, with their size and SHA-1 as R4
§2.24.0.2 Attachment asks), and each medication it lists is what the sender says the client
takes, not an order here (R4 MedicationStatement: "the patient ... is taking"; `informationSource`
is the sending program, `derivedFrom` the document). `labels` are the document's security
labels, carried onto `meta.security` of every resource made from it (PART2.md S2: the labels
travel with the data).

| value                   | DocumentReference                     | MedicationStatement        |
|-------------------------|---------------------------------------|----------------------------|
| id                      | id                                    | id                         |
| client_id               | subject                               | subject                    |
| sender_id / source_id   | author, custodian                     | informationSource          |
| kind                    | type (LOINC, by the document's kind)  |                            |
| master / set identifier | masterIdentifier / identifier         |                            |
| written_at / asserted   | date                                  | dateAsserted               |
| content, content_type   | content.attachment (data, size, hash) |                            |
| labels                  | meta.security, securityLabel          | meta.security              |
| medication, status      |                                       | medicationCodeableConcept, |
|                         |                                       | status                     |
| document_id             |                                       | derivedFrom                |
"""

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from mappings import datatypes as dt
from mappings.model import Code, Concept, Id, Identifier, Period, Ref, When

CCDA_FORMAT: Final = Code(
    "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
    "urn:hl7-org:sdwg:ccda-structuredBody:2.1",
    "For documents following C-CDA 2.1 constraints using a structured body.",
)
"""IHE FormatCode of a structured C-CDA R2.1 document (the writer's and most senders')."""


@dataclass(frozen=True, slots=True)
class ReceivedDocument:
    """A document a partner sent, kept whole."""

    id: Id
    client_id: Ref
    sender_id: Ref
    kind: Code
    content: bytes
    content_type: str
    title: str | None = None
    master_identifier: Identifier | None = None
    set_identifier: Identifier | None = None
    written_at: datetime | None = None
    labels: tuple[Code, ...] = ()


class StatementStatus(StrEnum):
    """The MedicationStatement statuses a received list gives (R4 medication-statement-status):
    active when the sender says so, not-taken for a negated entry, unknown otherwise, since a
    list received is reconciled before anyone relies on it."""

    ACTIVE = "active"
    NOT_TAKEN = "not-taken"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ReportedMedication:
    """One medication a received document lists."""

    id: Id
    client_id: Ref
    source_id: Ref
    document_id: Ref
    medication: Concept
    status: StatementStatus
    identifiers: tuple[Identifier, ...] = ()
    effective: Period | When | None = None
    asserted: When | None = None
    dosage: str | None = None
    route: Code | None = None
    labels: tuple[Code, ...] = ()


def document_reference(document: ReceivedDocument) -> dict[str, Any]:
    """The document as a current DocumentReference holding its bytes."""
    resource: dt.Json = {"resourceType": "DocumentReference", "id": document.id}
    _labelled(resource, document.labels)
    if document.master_identifier is not None:
        resource["masterIdentifier"] = dt.identifier(document.master_identifier)
    if document.set_identifier is not None:
        resource["identifier"] = [dt.identifier(document.set_identifier)]
    resource["status"] = "current"
    resource["docStatus"] = "final"
    resource["type"] = {"coding": [dt.coding(document.kind)]}
    resource["subject"] = dt.reference("Patient", document.client_id)
    if document.written_at is not None:
        resource["date"] = dt.when(document.written_at)
    sender = dt.reference("Organization", document.sender_id)
    resource["author"] = [sender]
    resource["custodian"] = sender
    if document.labels:
        resource["securityLabel"] = [{"coding": [dt.coding(label)]} for label in document.labels]
    attachment: dt.Json = {
        "contentType": document.content_type,
        "data": base64.b64encode(document.content).decode("ascii"),
        "size": len(document.content),
        "hash": base64.b64encode(hashlib.sha1(document.content).digest()).decode("ascii"),  # noqa: S324  (R4 Attachment.hash is SHA-1)
    }
    if document.title is not None:
        attachment["title"] = document.title
    resource["content"] = [{"attachment": attachment, "format": dt.coding(CCDA_FORMAT)}]
    return resource


def medication_statement(reported: ReportedMedication) -> dict[str, Any]:
    """The medication as a MedicationStatement the case manager reconciles."""
    resource: dt.Json = {"resourceType": "MedicationStatement", "id": reported.id}
    _labelled(resource, reported.labels)
    dt.put(resource, "identifier", dt.each(reported.identifiers, dt.identifier))
    resource["status"] = reported.status.value
    resource["medicationCodeableConcept"] = dt.concept(reported.medication)
    resource["subject"] = dt.reference("Patient", reported.client_id)
    if isinstance(reported.effective, Period):
        resource["effectivePeriod"] = dt.period(reported.effective)
    elif reported.effective is not None:
        resource["effectiveDateTime"] = dt.when(reported.effective)
    if reported.asserted is not None:
        resource["dateAsserted"] = dt.when(reported.asserted)
    resource["informationSource"] = dt.reference("Organization", reported.source_id)
    resource["derivedFrom"] = [dt.reference("DocumentReference", reported.document_id)]
    dosage: dt.Json = {}
    if reported.dosage is not None:
        dosage["text"] = reported.dosage
    if reported.route is not None:
        dosage["route"] = {"coding": [dt.coding(reported.route)]}
    if dosage:
        resource["dosage"] = [dosage]
    return resource


def with_labels(resource: dict[str, Any], labels: tuple[Code, ...]) -> dict[str, Any]:
    """The resource with `labels` added to its meta.security (each once, as FHIR asks)."""
    labelled = dict(resource)
    _labelled(labelled, labels)
    return labelled


def _labelled(resource: dt.Json, labels: tuple[Code, ...]) -> None:
    if not labels:
        return
    meta = dict(resource.get("meta", {}))
    security = list(meta.get("security", []))
    present = {(coding.get("system"), coding.get("code")) for coding in security}
    for label in labels:
        if (label.system, label.code) not in present:
            security.append(dt.coding(label))
            present.add((label.system, label.code))
    meta["security"] = security
    resource["meta"] = meta
