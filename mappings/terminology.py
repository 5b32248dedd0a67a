"""Code systems and the required bindings that fhir.resources does not enforce.

fhir.resources accepts any code in a `code` element (`status = "bogus"` passes) and its own
`enum_values` hints are sometimes truncated with a trailing "+" (Task.status lists four of twelve
codes), so the value sets of the required bindings we rely on are written out here from FHIR R4
4.0.1 (http://hl7.org/fhir/R4/terminologies-valuesets.html). Keys are element paths as the
specification writes them: the resource or data type, then the element names.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class ValueSet:
    """The codes a required binding allows, in the specification's order, and its canonical URL."""

    url: str | None
    codes: tuple[str, ...]


def _value_set(name: str, *codes: str) -> ValueSet:
    return ValueSet(f"http://hl7.org/fhir/ValueSet/{name}", codes)


REQUEST_STATUS: Final = _value_set(
    "request-status",
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
)
REQUEST_INTENT: Final = _value_set(
    "request-intent",
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
REQUEST_PRIORITY: Final = _value_set("request-priority", "routine", "urgent", "asap", "stat")
CARE_PLAN_INTENT: Final = _value_set("care-plan-intent", "proposal", "plan", "order", "option")
CARE_PLAN_ACTIVITY_STATUS: Final = _value_set(
    "care-plan-activity-status",
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "stopped",
    "unknown",
    "entered-in-error",
)
TASK_STATUS: Final = _value_set(
    "task-status",
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)
TASK_INTENT: Final = _value_set(
    "task-intent",
    "unknown",
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
CONSENT_STATE: Final = _value_set(
    "consent-state-codes",
    "draft",
    "proposed",
    "active",
    "rejected",
    "inactive",
    "entered-in-error",
)
CONSENT_PROVISION_TYPE: Final = _value_set("consent-provision-type", "deny", "permit")
GOAL_STATUS: Final = _value_set(
    "goal-status",
    "proposed",
    "planned",
    "accepted",
    "active",
    "on-hold",
    "completed",
    "cancelled",
    "entered-in-error",
    "rejected",
)
EPISODE_OF_CARE_STATUS: Final = _value_set(
    "episode-of-care-status",
    "planned",
    "waitlist",
    "active",
    "onhold",
    "finished",
    "cancelled",
    "entered-in-error",
)
ENCOUNTER_STATUS: Final = _value_set(
    "encounter-status",
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)
OBSERVATION_STATUS: Final = _value_set(
    "observation-status",
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
)
ADMINISTRATIVE_GENDER: Final = _value_set(
    "administrative-gender", "male", "female", "other", "unknown"
)
BUNDLE_TYPE: Final = _value_set(
    "bundle-type",
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
)
HTTP_VERB: Final = _value_set("http-verb", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
SEARCH_ENTRY_MODE: Final = _value_set("search-entry-mode", "match", "include", "outcome")
AUDIT_EVENT_ACTION: Final = _value_set("audit-event-action", "C", "R", "U", "D", "E")
AUDIT_EVENT_OUTCOME: Final = _value_set("audit-event-outcome", "0", "4", "8", "12")
IDENTIFIER_USE: Final = _value_set(
    "identifier-use", "usual", "official", "temp", "secondary", "old"
)
NAME_USE: Final = _value_set(
    "name-use", "usual", "official", "temp", "nickname", "anonymous", "old", "maiden"
)
CONTACT_POINT_SYSTEM: Final = _value_set(
    "contact-point-system", "phone", "fax", "email", "pager", "url", "sms", "other"
)
CONTACT_POINT_USE: Final = _value_set("contact-point-use", "home", "work", "temp", "old", "mobile")
ADDRESS_USE: Final = _value_set("address-use", "home", "work", "temp", "old", "billing")
ADDRESS_TYPE: Final = _value_set("address-type", "postal", "physical", "both")
NARRATIVE_STATUS: Final = _value_set(
    "narrative-status", "generated", "extensions", "additional", "empty"
)
QUANTITY_COMPARATOR: Final = _value_set("quantity-comparator", "<", "<=", ">=", ">")

REQUIRED_BINDINGS: Final[Mapping[str, ValueSet]] = MappingProxyType(
    {
        "CarePlan.status": REQUEST_STATUS,
        "CarePlan.intent": CARE_PLAN_INTENT,
        "CarePlan.activity.detail.status": CARE_PLAN_ACTIVITY_STATUS,
        "Task.status": TASK_STATUS,
        "Task.intent": TASK_INTENT,
        "Task.priority": REQUEST_PRIORITY,
        "ServiceRequest.status": REQUEST_STATUS,
        "ServiceRequest.intent": REQUEST_INTENT,
        "ServiceRequest.priority": REQUEST_PRIORITY,
        "Consent.status": CONSENT_STATE,
        "Consent.provision.type": CONSENT_PROVISION_TYPE,
        "Goal.lifecycleStatus": GOAL_STATUS,
        "EpisodeOfCare.status": EPISODE_OF_CARE_STATUS,
        "EpisodeOfCare.statusHistory.status": EPISODE_OF_CARE_STATUS,
        "Encounter.status": ENCOUNTER_STATUS,
        "Encounter.statusHistory.status": ENCOUNTER_STATUS,
        "Observation.status": OBSERVATION_STATUS,
        "Patient.gender": ADMINISTRATIVE_GENDER,
        "Bundle.type": BUNDLE_TYPE,
        "Bundle.entry.request.method": HTTP_VERB,
        "Bundle.entry.search.mode": SEARCH_ENTRY_MODE,
        "AuditEvent.action": AUDIT_EVENT_ACTION,
        "AuditEvent.outcome": AUDIT_EVENT_OUTCOME,
        "Identifier.use": IDENTIFIER_USE,
        "HumanName.use": NAME_USE,
        "ContactPoint.system": CONTACT_POINT_SYSTEM,
        "ContactPoint.use": CONTACT_POINT_USE,
        "Address.use": ADDRESS_USE,
        "Address.type": ADDRESS_TYPE,
        "Narrative.status": NARRATIVE_STATUS,
        "Quantity.comparator": QUANTITY_COMPARATOR,
    }
)
