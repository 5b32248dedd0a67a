"""Code systems and the required bindings that fhir.resources does not enforce.

fhir.resources accepts any code in a `code` element (`status = "bogus"` passes) and its own
`enum_values` hints are sometimes truncated with a trailing "+" (Task.status lists four of twelve
codes), so the value sets of the required bindings we rely on are written out here from FHIR R4
4.0.1 (http://hl7.org/fhir/R4/terminologies-valuesets.html). Keys are element paths as the
specification writes them: the resource or data type, then the element names.

Below them, the vocabulary of the case-management mappings: the SDOH Clinical Care IG 2.3 SDOH
categories, BSeR's Task business statuses, the LOINC, SNOMED CT and NUCC codes the mappings write,
and the project's local code systems (goal domains, ASAM-aligned levels of care, referral business
statuses and status reasons, action owners, program kinds, handoff items), each documented with
why no standard code system fits.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from mappings.model import Code


@dataclass(frozen=True)
class ValueSet:
    """The codes a required binding allows, in the specification's order, and its canonical URL."""

    url: str | None
    codes: tuple[str, ...]
    system: str | None = None
    """For a CodeableConcept's binding: the code system its codes are from."""


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

CONDITION_CLINICAL_STATUS: Final = ValueSet(
    "http://hl7.org/fhir/ValueSet/condition-clinical",
    ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
)
CONDITION_VERIFICATION_STATUS: Final = ValueSet(
    "http://hl7.org/fhir/ValueSet/condition-ver-status",
    ("unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"),
    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
)
REQUIRED_CONCEPT_BINDINGS: Final[Mapping[str, ValueSet]] = MappingProxyType(
    {
        "Condition.clinicalStatus": CONDITION_CLINICAL_STATUS,
        "Condition.verificationStatus": CONDITION_VERIFICATION_STATUS,
    }
)
"""The CodeableConcepts of the served types that R4 binds to a required value set: one of
their codings must be from it (R4 §4.1.5.1, "required": text alone will not do)."""

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


# The case-management vocabulary: standard code systems, then the project's local ones (under
# PROJECT_BASE/CodeSystem/), each saying why no standard code fits. The enumerations of
# mappings.model carry the codes; these tables carry their systems, displays and cross-maps.

PROJECT_BASE: Final = "http://recovery-interop.example.org/fhir"
PART2_PROGRAM_EXTENSION: Final = f"{PROJECT_BASE}/StructureDefinition/part2-program"
COVERED_ENTITY_EXTENSION: Final = f"{PROJECT_BASE}/StructureDefinition/hipaa-covered-entity"
REGISTRATION_TAG_SYSTEM: Final = f"{PROJECT_BASE}/CodeSystem/registration"
SUBSCRIBER_TAG_SYSTEM: Final = f"{PROJECT_BASE}/CodeSystem/subscriber"
"""meta.tag on a Subscription naming the Organization it belongs to (set by the server)."""
REFERRAL_TASK_TOPIC: Final = f"{PROJECT_BASE}/SubscriptionTopic/referral-task"
"""The one subscription topic offered: a referral's fulfillment Task was created or changed."""
BACKPORT: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
"""Subscriptions R5 Backport IG (1.1.0), R4 form: profiles and extensions."""

SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
CPT: Final = "http://www.ama-assn.org/go/cpt"
HCPCS: Final = "urn:oid:2.16.840.1.113883.6.285"
ICD10PCS: Final = "http://www.cms.gov/Medicare/Coding/ICD10"
NUCC: Final = "http://nucc.org/provider-taxonomy"
BCP47: Final = "urn:ietf:bcp:47"
UCUM: Final = "http://unitsofmeasure.org"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
GOAL_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/goal-priority"
GOAL_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/goal-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
US_CORE_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CAREPLAN_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
ORGANIZATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
EPISODE_OF_CARE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/episodeofcare-type"
IDENTIFIER_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
SDOHCC_CODES: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
BSER_BUSINESS_STATUS: Final = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
PERTAINS_TO_GOAL: Final = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"


@dataclass(frozen=True)
class CodeSystem:
    """A code system as the mappings need it: its URL and the display of each code."""

    url: str
    displays: Mapping[str, str]

    def display(self, code: str) -> str:
        """The display of one of its codes."""
        return self.displays[code]


def _system(url: str, **displays: str) -> CodeSystem:
    return CodeSystem(url, MappingProxyType(displays))


LOCAL_CODE_SYSTEMS: Final[dict[str, CodeSystem]] = {}
"""This project's own code systems by URL: complete by definition, so a code not in one is no
code of it (the validator refuses it)."""


def _local(name: str, displays: Mapping[str, str]) -> CodeSystem:
    system = CodeSystem(f"{PROJECT_BASE}/CodeSystem/{name}", MappingProxyType(dict(displays)))
    LOCAL_CODE_SYSTEMS[system.url] = system
    return system


# SDOH Clinical Care IG 2.3, SDOHCC ValueSet SDOH Category (required on SDOHCC Goal.category,
# Condition.category and ServiceRequest.category). "sdoh-category-unspecified" stands for "no
# category" where the ServiceRequest profile requires one.
SDOH_CATEGORY_UNSPECIFIED: Final = "sdoh-category-unspecified"
SDOH_CATEGORY: Final = _system(
    SDOHCC_CODES,
    **{
        SDOH_CATEGORY_UNSPECIFIED: "SDOH Category Unspecified",
        "food-insecurity": "Food Insecurity",
        "housing-instability": "Housing Instability",
        "homelessness": "Homelessness",
        "inadequate-housing": "Inadequate Housing",
        "transportation-insecurity": "Transportation Insecurity",
        "financial-insecurity": "Financial Insecurity",
        "material-hardship": "Material Hardship",
        "educational-attainment": "Educational Attainment",
        "employment-status": "Employment Status",
        "veteran-status": "Veteran Status",
        "stress": "Stress",
        "social-connection": "Social Connection",
        "intimate-partner-violence": "Intimate Partner Violence",
        "elder-abuse": "Elder Abuse",
        "personal-health-literacy": "Personal Health Literacy",
        "health-insurance-coverage-status": "Health Insurance Coverage Status",
        "medical-cost-burden": "Medical Cost Burden",
        "digital-literacy": "Digital Literacy",
        "digital-access": "Digital Access",
        "utility-insecurity": "Utility Insecurity",
        "incarceration-status": "Incarceration Status",
        "language-access": "Language Access",
    },
)
RESULTING_ACTIVITY: Final = "resulting-activity"

GOAL_DOMAIN: Final = _local(
    "goal-domain",
    {
        "housing": "Housing",
        "employment": "Employment",
        "job-protected-leave": "Job-protected leave (FMLA, state paid leave)",
        "disability-insurance": "Disability insurance (short and long term)",
        "transportation": "Transportation",
        "insurance-benefits": "Insurance and benefits (verification, prior authorization, SNAP)",
        "legal": "Legal obligations (probation, drug court)",
        "childcare": "Childcare",
        "medication-continuity": "Medication continuity (MOUD/MAT)",
        "mental-health": "Mental health",
        "family-involvement": "Family involvement",
        "primary-care": "Primary care",
    },
)
"""Local: the areas case managers plan in. SDOHCC categories cover some but not all of them
(nothing for medication continuity, mental health or primary care), and one category can hold
several areas (employment and job-protected leave), so the domain has its own code, written
beside the standard category."""

# Beside the local code, a goal or barrier carries the SDOH category its domain stands for
# (GoalDomain.sdoh_category) and, for mental health, HL7 goal-category "behavioral". Medication
# continuity and primary care keep only the local code: no SDOH category, HL7 goal-category,
# LOINC or SNOMED CT grouping code names them.
BEHAVIORAL_DOMAIN: Final = "mental-health"
BEHAVIORAL: Final = Code(GOAL_CATEGORY, "behavioral", "Behavioral")

LEVEL_OF_CARE: Final = _local(
    "level-of-care",
    {
        "1-WM": "ASAM 1-WM Ambulatory withdrawal management without extended on-site monitoring",
        "2-WM": "ASAM 2-WM Ambulatory withdrawal management with extended on-site monitoring",
        "3.2-WM": "ASAM 3.2-WM Clinically managed residential withdrawal management",
        "3.7-WM": "ASAM 3.7-WM Medically monitored inpatient withdrawal management",
        "4-WM": "ASAM 4-WM Medically managed intensive inpatient withdrawal management",
        "1": "ASAM 1 Outpatient services",
        "2.1": "ASAM 2.1 Intensive outpatient services",
        "2.5": "ASAM 2.5 Partial hospitalization services",
        "3.1": "ASAM 3.1 Clinically managed low-intensity residential services",
        "3.3": "ASAM 3.3 Clinically managed population-specific high-intensity residential",
        "3.5": "ASAM 3.5 Clinically managed high-intensity residential services",
        "3.7": "ASAM 3.7 Medically monitored intensive inpatient services",
        "4": "ASAM 4 Medically managed intensive inpatient services",
        "recovery-support": "Recovery support and aftercare (no ASAM level)",
    },
)
"""Local, aligned to the ASAM Criteria (3rd ed., 2013): no HL7, SNOMED CT or LOINC code system
names SUD levels of care (REFERRALS.md). Codes are the ASAM level designations; recovery-support
(aftercare) has no ASAM level and says so. Written beside HL7 episodeofcare-type "da" (Drug and
alcohol rehabilitation) on EpisodeOfCare.type."""
DRUG_AND_ALCOHOL_REHABILITATION: Final = "da"

PROGRAM_KIND: Final = _local(
    "program-kind",
    {
        "detox": "Detox (withdrawal management) unit",
        "residential": "Residential treatment program",
        "outpatient": "Intensive outpatient or outpatient program",
        "primary-care": "Primary care clinic",
        "sober-living": "Sober living (recovery residence)",
        "community-service": "Community service",
    },
)
"""Local: HL7 organization-type only says "prov" (Healthcare Provider) for the clinical kinds,
which is written beside the local code (PROGRAM_KIND_PROVIDER)."""
PROGRAM_KIND_PROVIDER: Final = frozenset({"detox", "residential", "outpatient", "primary-care"})
HEALTHCARE_PROVIDER: Final = "prov"

ACTION_OWNER: Final = _local(
    "action-owner",
    {
        "case-manager": "Case manager does it (I do it)",
        "shared": "Case manager and client do it together (we do it)",
        "client": "Client does it (you do it)",
    },
)
"""Local: "I do it, we do it, you do it" has no standard code; written in Task.performerType."""

# The referral workflow of REFERRALS.md: Task.businessStatus carries the detail, in a local
# code system because BSeR's Task Business Status covers only part of it. Each local code that
# BSeR has is written with the BSeR code beside it (BSeR STU 2, TaskBusinessStatusCS).
BUSINESS_STATUS: Final = _local(
    "referral-business-status",
    {
        "created": "Referral created",
        "under-review": "Under review by the receiving program",
        "awaiting-information": "Awaiting information",
        "awaiting-consent": "Awaiting consent",
        "awaiting-authorization": "Awaiting payer authorization",
        "waitlisted": "Waitlisted",
        "accepted": "Accepted",
        "declined": "Declined",
        "scheduled": "Intake scheduled",
        "no-show": "Client did not attend",
        "appointment-cancelled": "Appointment cancelled",
        "interim-update": "Interim update",
        "admitted": "Admitted",
        "cancellation-requested": "Cancellation requested",
        "cancellation-confirmed": "Cancellation confirmed",
        "completed": "Completed",
        "transferred-next-level": "Transferred to the next level of care",
        "discharged-other": "Discharged otherwise",
    },
)
BSER_STATUS: Final = _system(
    BSER_BUSINESS_STATUS,
    **{
        "2.0": "Service Request Created",
        "3.0": "Service Request Accepted",
        "4.0": "Service Request Declined",
        "5.1.1": "Service Request Event Scheduled",
        "5.1.2": "Scheduled Service Request Event Unattended",
        "5.1.3": "Scheduled Service Request Event Cancelled",
        "5.1.4": "Service Request Event Completed",
        "5.2": "Service Request Cancellation Requested",
        "6.0": "Service Request Fulfillment Cancelled",
        "7.0": "Service Request Fulfillment Completed",
    },
)
# "admitted" is BSeR's "event completed": the scheduled intake took place.
BUSINESS_STATUS_TO_BSER: Final[Mapping[str, str]] = MappingProxyType(
    {
        "created": "2.0",
        "accepted": "3.0",
        "declined": "4.0",
        "scheduled": "5.1.1",
        "no-show": "5.1.2",
        "appointment-cancelled": "5.1.3",
        "admitted": "5.1.4",
        "cancellation-requested": "5.2",
        "cancellation-confirmed": "6.0",
        "completed": "7.0",
    }
)
BSER_TO_BUSINESS_STATUS: Final[Mapping[str, str]] = MappingProxyType(
    {bser: local for local, bser in BUSINESS_STATUS_TO_BSER.items()}
)

STATUS_REASON: Final = _local(
    "referral-status-reason",
    {
        "at-capacity": "Program at capacity",
        "not-eligible": "Client not eligible",
        "level-of-care-mismatch": "Level of care does not match the client's needs",
        "payer": "Payer did not cover or authorize",
        "unable-to-contact": "Unable to contact the client",
        "out-of-area": "Client lives outside the service area",
        "missing-information": "Missing information",
        "patient-declined": "Client declined",
        "left-against-advice": "Client left against advice",
        "lost-to-follow-up": "Client lost to follow-up",
        "no-longer-needed": "Service no longer needed",
        "other": "Other reason",
    },
)
"""Local: the reasons of REFERRALS.md for rejected, cancelled, on-hold and failed referral
Tasks; HL7 defines no value set for Task.statusReason."""

TRANSITION_ITEM: Final = _local(
    "transition-item",
    {
        "records-sent": "Records sent to the receiving program",
        "medications-on-hand": "Medications on hand for the transfer (no missed MOUD dose)",
        "intake-confirmed": "Intake appointment confirmed",
        "authorization-obtained": "Payer authorization obtained",
        "client-informed": "Client informed and agrees",
        "transportation-arranged": "Transportation arranged",
        "from-level-of-care": "Level of care the client leaves",
    },
)
"""Local: the transfer checklist items of a handoff and the other facts its Task.input carries;
no standard code names them. Each is a Task.input type: the checklist items and
transportation-arranged with valueBoolean, from-level-of-care with a LEVEL_OF_CARE code."""
TRANSPORTATION_ARRANGED: Final = "transportation-arranged"
FROM_LEVEL_OF_CARE: Final = "from-level-of-care"

# Standard codes the mappings write.
TRANSFER_SUMMARY: Final = Code(LOINC, "18761-7", "Transfer summary note")
MEDICATION_RECONCILIATION: Final = Code(
    SNOMED, "430193006", "Medication reconciliation (procedure)"
)
PATIENT_REFERRAL: Final = Code(SNOMED, "3457005", "Patient referral")
REFERRAL_TO_DRUG_REHABILITATION: Final = Code(
    SNOMED,
    "4266003",
    "Referral to drug addiction rehabilitation service (procedure)",
)
CASE_MANAGER_SPECIALTY: Final = Code(NUCC, "171M00000X", "Case Manager/Care Coordinator")
FULFILL: Final = Code(TASK_CODE, "fulfill", "Fulfill the focal request")
PLACER_IDENTIFIER: Final = Code(IDENTIFIER_TYPE, "PLAC", "Placer Identifier")
ASSESS_PLAN: Final = Code(CAREPLAN_CATEGORY, "assess-plan", "Assessment and Plan of Treatment")
SDOH: Final = Code(US_CORE_CATEGORY, "sdoh", "SDOH")

# US Core Procedure Codes (required on SDOHCC ServiceRequest.code): the code systems it draws on.
PROCEDURE_CODE_SYSTEMS: Final = frozenset({SNOMED, LOINC, CPT, HCPCS, ICD10PCS})
# US Core Condition Codes (SDOHCC Condition.code): SNOMED CT findings and ICD-10-CM.
CONDITION_CODE_SYSTEMS: Final = frozenset({SNOMED, ICD10CM})
GOAL_ACHIEVEMENT_DISPLAYS: Final = _system(
    GOAL_ACHIEVEMENT,
    **{
        "in-progress": "In Progress",
        "improving": "Improving",
        "worsening": "Worsening",
        "no-change": "No Change",
        "achieved": "Achieved",
        "sustaining": "Sustaining",
        "not-achieved": "Not Achieved",
        "no-progress": "No Progress",
        "not-attainable": "Not Attainable",
    },
)
GOAL_PRIORITY_DISPLAYS: Final = _system(
    GOAL_PRIORITY,
    **{
        "high-priority": "High Priority",
        "medium-priority": "Medium Priority",
        "low-priority": "Low Priority",
    },
)
CONDITION_CLINICAL_DISPLAYS: Final = _system(
    CONDITION_CLINICAL,
    active="Active",
    recurrence="Recurrence",
    relapse="Relapse",
    inactive="Inactive",
    remission="Remission",
    resolved="Resolved",
)
CONCERN_CATEGORY: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "problem-list-item": (CONDITION_CATEGORY, "Problem List Item"),
        "health-concern": (US_CORE_CONDITION_CATEGORY, "Health Concern"),
    }
)

NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"
"""The US National Provider Identifier, as FHIR names its system."""
