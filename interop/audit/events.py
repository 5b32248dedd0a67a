"""Disclosure log rows as FHIR R4 AuditEvents, in the manner of IHE Basic Audit Log Patterns.

Each row becomes one AuditEvent: type DICOM 110106 "Export" (data leaving the custodian),
subtype the RESTful interaction, the requesting organization as the destination agent, this
service as the source, the patient, the consent relied on and the records as entities, the
purpose of use, and the outcome (0 success when released, 4 when the gate withheld). The
chain position and hash travel as entity details so a reviewer can check the row verbatim.
A row the log cannot read (interop.audit.log.Unreadable) becomes, in its place, a security
alert with outcome 8 that names the row and says the log was altered there, and nothing more.
"""

from datetime import datetime
from typing import Any

from consent.vocabulary import CONFIDENTIALITY, CONFIDENTIALITY_RANK
from interop.audit.log import Unreadable, emergency_facts
from interop.store.fhirdates import format_instant
from interop.store.tables import DisclosureLogRow

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTIONS = {
    "read": "read",
    "vread": "vread",
    "search": "search-type",
    "history": "history-instance",  # rows logged before the levels were told apart
    "history-instance": "history-instance",
    "history-type": "history-type",
    "history-system": "history-system",
    "transaction": "transaction",
    "batch": "batch",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "cds": "operation",
}
_READS = frozenset(
    {"read", "vread", "search", "history", "history-instance", "history-type", "history-system"}
)
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SERVICE_NAME = "Recovery Interop"
UNREADABLE_OUTCOME = "8"
"""R4 AuditEvent.outcome "serious failure": the log could not give a row back as written."""


def log_event(row: DisclosureLogRow | Unreadable, read_at: datetime) -> dict[str, Any]:
    """The row as an AuditEvent; a row that cannot be read as the alert that says so."""
    if isinstance(row, Unreadable):
        return unreadable_event(row.seq, read_at)
    return audit_event(row)


def unreadable_event(seq: int, read_at: datetime) -> dict[str, Any]:
    """A DICOM 110113 Security Alert in the row's place, recorded when the log was read: it
    names the row and says the chain breaks there, and tells nothing the row held (who asked,
    for whom, what): no value of an altered row can be trusted, and none is invented."""
    return {
        "resourceType": "AuditEvent",
        "id": f"disclosure-{seq}",
        "type": {"system": _DCM, "code": "110113", "display": "Security Alert"},
        "recorded": format_instant(read_at),
        "outcome": UNREADABLE_OUTCOME,
        "outcomeDesc": (
            f"row {seq} of the disclosure log cannot be read: a stored value was altered, so "
            "the log's chain is broken at this row; what it recorded is not known"
        ),
        "agent": [_this_service()],
        "source": _source(),
        "entity": [
            {
                "type": _object_type("2", "System Object"),
                "role": _object_role("13", "Security Resource"),
                "detail": [{"type": "log-sequence", "valueString": str(seq)}],
            }
        ],
    }


def audit_event(row: DisclosureLogRow) -> dict[str, Any]:
    released = row.decision == "permit"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"disclosure-{row.seq}",
        "type": {"system": _DCM, "code": "110106", "display": "Export"},
        "subtype": [
            {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": _INTERACTIONS.get(row.interaction, "operation"),
            }
        ],
        "action": "R" if row.interaction in _READS else "E",
        "recorded": format_instant(row.recorded_at),
        "outcome": "0" if released or row.decision == "reviewed" else "4",
        "outcomeDesc": _outcome_text(row),
        "agent": [
            {
                "type": {
                    "coding": [{"system": _DCM, "code": "110152", "display": "Destination Role ID"}]
                },
                "who": {"reference": row.requester},
                "altId": row.client_id,
                "requestor": True,
            },
            _this_service(),
            *_disclosers(row),
        ],
        "source": _source(),
        "entity": _entities(row),
    }
    purposes = row.purposes.split()
    if purposes:
        event["purposeOfEvent"] = [
            {"coding": [{"system": _ACT_REASON, "code": p}]} for p in purposes
        ]
    return event


def _disclosers(row: DisclosureLogRow) -> list[dict[str, Any]]:
    """An emergency disclosure's record names who made it (§2.51(c)(2)): the programs whose
    record it was, as custodians, this service acting for them."""
    facts = emergency_facts(row) or {}
    return [
        {
            "type": {"coding": [{"system": _PARTICIPATION, "code": "CST", "display": "custodian"}]},
            "who": {"reference": program},
            "requestor": False,
        }
        for program in facts.get("disclosed_by", "").split()
    ]


def _this_service() -> dict[str, Any]:
    """This service as the source agent: what the records left from, or what read the log."""
    return {
        "type": {"coding": [{"system": _DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"display": SERVICE_NAME},
        "requestor": False,
    }


def _source() -> dict[str, Any]:
    return {
        "observer": {"display": SERVICE_NAME},
        "type": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server",
            }
        ],
    }


def _label_system(code: str) -> str:
    """The log keeps label codes alone: a confidentiality code (R, V...) is of
    v3-Confidentiality, every other Part 2 label (SUD, 42CFRPart2, NORDSCLCD...) of v3-ActCode."""
    return CONFIDENTIALITY if code in CONFIDENTIALITY_RANK else _ACT_CODE


def _outcome_text(row: DisclosureLogRow) -> str:
    """A compliance officer's sign-off of an emergency disclosure is a row of its own."""
    if row.decision == "reviewed":
        return f"signed off by compliance review ({row.rule})"
    released = row.decision == "permit"
    return f"{'released' if released else 'withheld'} under Part 2 rule {row.rule}"


def _entities(row: DisclosureLogRow) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if row.patient:
        entities.append(
            {
                "what": {"reference": row.patient},
                "type": _object_type("1", "Person"),
                "role": _object_role("1", "Patient"),
            }
        )
    labels = [{"system": _label_system(code), "code": code} for code in row.labels.split()]
    for reference in row.resources.split():
        entity: dict[str, Any] = {
            "what": {"reference": reference},
            "type": _object_type("2", "System Object"),
            "role": _object_role("4", "Domain Resource"),
        }
        if labels:
            entity["securityLabel"] = labels
        entities.append(entity)
    entities.append(_chain_entity(row))
    return entities


def _chain_entity(row: DisclosureLogRow) -> dict[str, Any]:
    """The decision's own record: consent relied on, rule, chain position and hash."""
    details = [
        {"type": "rule", "valueString": row.rule},
        {"type": "log-sequence", "valueString": str(row.seq)},
        {"type": "log-hash", "valueString": row.hash},
    ]
    if row.provision:
        details.append({"type": "consent-provision", "valueString": row.provision})
    facts = emergency_facts(row) or {}
    details.extend(
        {"type": f"emergency-{key}", "valueString": value} for key, value in facts.items()
    )
    entity: dict[str, Any] = {
        "type": _object_type("2", "System Object"),
        "role": _object_role("13", "Security Resource"),
        "detail": details,
    }
    if row.consent:
        entity["what"] = {"reference": row.consent.split(", ")[0]}
    return entity


def _object_type(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        "code": code,
        "display": display,
    }


def _object_role(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/object-role",
        "code": code,
        "display": display,
    }
