"""The search parameters this server supports, and the index values each extracts.

Each parameter names the FHIR R4 SearchParameter it implements (its canonical URL) and the
element paths its expression selects. A path segment ending in "*" also follows that element
nested inside itself (Consent.provision.provision...), because a Part 2 consent's actors and
purposes can sit at any depth of the provision tree.
"""

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from consent.vocabulary import canonical_identifier_system, canonical_system
from interop.store.fhirdates import EARLIEST, LATEST, parse_range
from mappings.terminology import PART2_PROGRAM_EXTENSION, PROJECT_BASE

_SP = "http://hl7.org/fhir/SearchParameter/"
_PROJECT = PROJECT_BASE
_EXTENSIONS = {"part2-program": PART2_PROGRAM_EXTENSION}
"""Extensions a path may select by name: `extension(name)` picks those with that url."""


IDENTIFIER_MODIFIER = ":identifier"
"""Suffix of the index rows holding a Reference's identifier (see `_reference_identifier`)."""


class ParamType(StrEnum):
    TOKEN = "token"  # noqa: S105  (a FHIR parameter type, not a secret)
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    definition: str
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexValue:
    param: str
    system: str | None = None
    value: str | None = None
    norm: str | None = None
    lo: datetime | None = None
    hi: datetime | None = None


def _p(
    name: str,
    type_: ParamType,
    *paths: str,
    definition: str,
    targets: tuple[str, ...] = (),
) -> SearchParam:
    return SearchParam(name, type_, paths, _SP + definition, targets)


T, S, D, R = ParamType.TOKEN, ParamType.STRING, ParamType.DATE, ParamType.REFERENCE
PATIENT = ("Patient",)


def _clinical_identifier() -> SearchParam:
    return _p("identifier", T, "identifier", definition="clinical-identifier")


SEARCH_PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "CarePlan": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="CarePlan-subject"),
        _p("status", T, "status", definition="CarePlan-status"),
        _p("intent", T, "intent", definition="CarePlan-intent"),
        _p("category", T, "category", definition="CarePlan-category"),
        _p("date", D, "period", definition="clinical-date"),
        _p("activity-reference", R, "activity.reference", definition="CarePlan-activity-reference"),
        _p("goal", R, "goal", definition="CarePlan-goal"),
        _p("care-team", R, "careTeam", definition="CarePlan-care-team"),
        _p("based-on", R, "basedOn", definition="CarePlan-based-on"),
        _clinical_identifier(),
    ),
    "Task": (
        _p("patient", R, "for", definition="Task-patient", targets=PATIENT),
        _p("subject", R, "for", definition="Task-subject"),
        _p("focus", R, "focus", definition="Task-focus"),
        _p("owner", R, "owner", definition="Task-owner"),
        _p("requester", R, "requester", definition="Task-requester"),
        _p("status", T, "status", definition="Task-status"),
        _p("business-status", T, "businessStatus", definition="Task-business-status"),
        _p("code", T, "code", definition="Task-code"),
        _p("intent", T, "intent", definition="Task-intent"),
        _p("modified", D, "lastModified", definition="Task-modified"),
        _p("authored-on", D, "authoredOn", definition="Task-authored-on"),
        _p("period", D, "executionPeriod", definition="Task-period"),
        SearchParam(  # R4 core has none: restriction.period.end is REFERRALS.md's deadline
            "restriction-period",
            D,
            ("restriction.period",),
            f"{_PROJECT}/SearchParameter/Task-restriction-period",
        ),
        _p("based-on", R, "basedOn", definition="Task-based-on"),
        _p("part-of", R, "partOf", definition="Task-part-of"),
        _p("identifier", T, "identifier", definition="Task-identifier"),
    ),
    "ServiceRequest": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="ServiceRequest-subject"),
        _p("status", T, "status", definition="ServiceRequest-status"),
        _p("intent", T, "intent", definition="ServiceRequest-intent"),
        _p("priority", T, "priority", definition="ServiceRequest-priority"),
        _p("category", T, "category", definition="ServiceRequest-category"),
        _p("code", T, "code", definition="clinical-code"),
        _p("requester", R, "requester", definition="ServiceRequest-requester"),
        _p("performer", R, "performer", definition="ServiceRequest-performer"),
        _p("authored", D, "authoredOn", definition="ServiceRequest-authored"),
        _p(
            "occurrence",
            D,
            "occurrenceDateTime",
            "occurrencePeriod",
            definition="ServiceRequest-occurrence",
        ),
        _p("replaces", R, "replaces", definition="ServiceRequest-replaces"),
        _p("based-on", R, "basedOn", definition="ServiceRequest-based-on"),
        _p("requisition", T, "requisition", definition="ServiceRequest-requisition"),
        _clinical_identifier(),
    ),
    "Consent": (
        _p("patient", R, "patient", definition="clinical-patient", targets=PATIENT),
        _p("status", T, "status", definition="Consent-status"),
        _p("scope", T, "scope", definition="Consent-scope"),
        _p("category", T, "category", definition="Consent-category"),
        _p("actor", R, "provision*.actor.reference", definition="Consent-actor"),
        _p("purpose", T, "provision*.purpose", definition="Consent-purpose"),
        _p("action", T, "provision*.action", definition="Consent-action"),
        _p("security-label", T, "provision*.securityLabel", definition="Consent-security-label"),
        _p("data", R, "provision*.data.reference", definition="Consent-data"),
        _p("period", D, "provision.period", definition="Consent-period"),
        _p("date", D, "dateTime", definition="clinical-date"),
        _p("organization", R, "organization", definition="Consent-organization"),
        _p("consentor", R, "performer", definition="Consent-consentor"),
        _p("source-reference", R, "sourceReference", definition="Consent-source-reference"),
        _clinical_identifier(),
    ),
    "Patient": (
        _p("identifier", T, "identifier", definition="Patient-identifier"),
        _p("name", S, "name", definition="Patient-name"),
        _p("family", S, "name.family", definition="individual-family"),
        _p("given", S, "name.given", definition="individual-given"),
        _p("birthdate", D, "birthDate", definition="individual-birthdate"),
        _p("gender", T, "gender", definition="individual-gender"),
        _p("active", T, "active", definition="Patient-active"),
        _p("organization", R, "managingOrganization", definition="Patient-organization"),
        _p(
            "general-practitioner",
            R,
            "generalPractitioner",
            definition="Patient-general-practitioner",
        ),
    ),
    "Organization": (
        _p("identifier", T, "identifier", definition="Organization-identifier"),
        _p("name", S, "name", "alias", definition="Organization-name"),
        _p("active", T, "active", definition="Organization-active"),
        _p("type", T, "type", definition="Organization-type"),
        _p("partof", R, "partOf", definition="Organization-partof"),
        _p("endpoint", R, "endpoint", definition="Organization-endpoint"),
        SearchParam(
            "part2-program",
            T,
            ("extension(part2-program).valueBoolean",),
            f"{_PROJECT}/SearchParameter/Organization-part2-program",
        ),
    ),
    "Goal": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="Goal-subject"),
        _p("lifecycle-status", T, "lifecycleStatus", definition="Goal-lifecycle-status"),
        _p("achievement-status", T, "achievementStatus", definition="Goal-achievement-status"),
        _p("category", T, "category", definition="Goal-category"),
        _p("target-date", D, "target.dueDate", definition="Goal-target-date"),
        _p("start-date", D, "startDate", definition="Goal-start-date"),
        _clinical_identifier(),
    ),
    "EpisodeOfCare": (
        _p("patient", R, "patient", definition="clinical-patient", targets=PATIENT),
        _p("status", T, "status", definition="EpisodeOfCare-status"),
        _p("type", T, "type", definition="clinical-type"),
        _p("date", D, "period", definition="clinical-date"),
        _p("organization", R, "managingOrganization", definition="EpisodeOfCare-organization"),
        _p("care-manager", R, "careManager", definition="EpisodeOfCare-care-manager"),
        _p(
            "incoming-referral",
            R,
            "referralRequest",
            definition="EpisodeOfCare-incoming-referral",
        ),
        _p("condition", R, "diagnosis.condition", definition="EpisodeOfCare-condition"),
        _clinical_identifier(),
    ),
    "Provenance": (
        _p("target", R, "target", definition="Provenance-target"),
        _p("patient", R, "target", definition="Provenance-patient", targets=PATIENT),
        _p("agent", R, "agent.who", definition="Provenance-agent"),
        _p("entity", R, "entity.what", definition="Provenance-entity"),
        _p("recorded", D, "recorded", definition="Provenance-recorded"),
    ),
    "AuditEvent": (
        _p("date", D, "recorded", definition="AuditEvent-date"),
        _p("agent", R, "agent.who", definition="AuditEvent-agent"),
        _p("entity", R, "entity.what", definition="AuditEvent-entity"),
        _p("patient", R, "entity.what", definition="AuditEvent-patient", targets=PATIENT),
        _p("type", T, "type", definition="AuditEvent-type"),
        _p("subtype", T, "subtype", definition="AuditEvent-subtype"),
        _p("action", T, "action", definition="AuditEvent-action"),
        _p("outcome", T, "outcome", definition="AuditEvent-outcome"),
        _p("source", R, "source.observer", definition="AuditEvent-source"),
        _p("purpose", T, "purposeOfEvent", "agent.purposeOfUse", definition="AuditEvent-purpose"),
    ),
    "Practitioner": (
        _p("identifier", T, "identifier", definition="Practitioner-identifier"),
        _p("name", S, "name", definition="Practitioner-name"),
        _p("family", S, "name.family", definition="individual-family"),
        _p("given", S, "name.given", definition="individual-given"),
    ),
    "PractitionerRole": (
        _p("identifier", T, "identifier", definition="PractitionerRole-identifier"),
        _p("practitioner", R, "practitioner", definition="PractitionerRole-practitioner"),
        _p("organization", R, "organization", definition="PractitionerRole-organization"),
        _p("role", T, "code", definition="PractitionerRole-role"),
    ),
    "Condition": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="Condition-subject"),
        _p("category", T, "category", definition="Condition-category"),
        _p("code", T, "code", definition="clinical-code"),
        _p("clinical-status", T, "clinicalStatus", definition="Condition-clinical-status"),
        _clinical_identifier(),
    ),
    "Encounter": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="Encounter-subject"),
        _p("status", T, "status", definition="Encounter-status"),
        _p("date", D, "period", definition="clinical-date"),
        _p("episode-of-care", R, "episodeOfCare", definition="Encounter-episode-of-care"),
        _clinical_identifier(),
    ),
    "DocumentReference": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="DocumentReference-subject"),
        _p("type", T, "type", definition="clinical-type"),
        _p("category", T, "category", definition="DocumentReference-category"),
        _p("status", T, "status", definition="DocumentReference-status"),
        _p("date", D, "date", definition="DocumentReference-date"),
        _p("identifier", T, "masterIdentifier", "identifier", definition="clinical-identifier"),
    ),
    "MedicationStatement": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="MedicationStatement-subject"),
        _p("status", T, "status", definition="medications-status"),
        _p("code", T, "medicationCodeableConcept", definition="clinical-code"),
        _p(
            "effective",
            D,
            "effectiveDateTime",
            "effectivePeriod",
            definition="MedicationStatement-effective",
        ),
        _p("source", R, "informationSource", definition="MedicationStatement-source"),
        _clinical_identifier(),
    ),
    "RelatedPerson": (
        _p("patient", R, "patient", definition="RelatedPerson-patient"),
        _p("identifier", T, "identifier", definition="RelatedPerson-identifier"),
        _p("name", S, "name", definition="RelatedPerson-name"),
    ),
    "CareTeam": (
        _p("patient", R, "subject", definition="clinical-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="CareTeam-subject"),
        _p("status", T, "status", definition="CareTeam-status"),
        _p("participant", R, "participant.member", definition="CareTeam-participant"),
        _clinical_identifier(),
    ),
    # A consent's signed form may be a QuestionnaireResponse: the Questionnaire's canonical
    # and version it names is how compliance staff approve the form (PART2.md C9).
    "QuestionnaireResponse": (
        _p("patient", R, "subject", definition="QuestionnaireResponse-patient", targets=PATIENT),
        _p("subject", R, "subject", definition="QuestionnaireResponse-subject"),
        _p("status", T, "status", definition="QuestionnaireResponse-status"),
        _p("authored", D, "authored", definition="QuestionnaireResponse-authored"),
        _p("identifier", T, "identifier", definition="QuestionnaireResponse-identifier"),
    ),
    "Group": (
        _p("identifier", T, "identifier", definition="Group-identifier"),
        _p("type", T, "type", definition="Group-type"),
        _p("code", T, "code", definition="Group-code"),
        _p("actual", T, "actual", definition="Group-actual"),
        _p("member", R, "member.entity", definition="Group-member"),
        _p("managing-entity", R, "managingEntity", definition="Group-managing-entity"),
    ),
    "Subscription": (
        _p("status", T, "status", definition="Subscription-status"),
        _p("type", T, "channel.type", definition="Subscription-type"),
        _p("url", T, "channel.endpoint", definition="Subscription-url"),
    ),
    "Endpoint": (
        _p("identifier", T, "identifier", definition="Endpoint-identifier"),
        _p("organization", R, "managingOrganization", definition="Endpoint-organization"),
        _p("status", T, "status", definition="Endpoint-status"),
        _p("name", S, "name", definition="Endpoint-name"),
    ),
}
"""Per resource type; the keys are the resource types this server stores and serves."""

SUPPORTED_TYPES: frozenset[str] = frozenset(SEARCH_PARAMS)


def params_for(resource_type: str) -> dict[str, SearchParam]:
    """The type's search parameters by name."""
    return {param.name: param for param in SEARCH_PARAMS.get(resource_type, ())}


def extract(resource: dict[str, Any]) -> list[IndexValue]:
    """Every index value of every search parameter of the resource's type."""
    values: list[IndexValue] = []
    for param in SEARCH_PARAMS.get(resource["resourceType"], ()):
        for path in param.paths:
            for node in _walk(resource, path.split(".")):
                values.extend(_index_values(param, node))
    return values


def _walk(node: Any, segments: list[str]) -> Iterator[Any]:
    """The values a dotted path selects, flattening arrays at every step."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, segments)
        return
    if not segments:
        yield node
        return
    if not isinstance(node, dict):
        return
    head, rest = segments[0], segments[1:]
    if head.startswith("extension("):
        url = _EXTENSIONS[head[len("extension(") : -1]]
        for extension in _as_list(node.get("extension")):
            if isinstance(extension, dict) and extension.get("url") == url:
                yield from _walk(extension, rest)
        return
    if head.endswith("*"):
        name = head[:-1]
        for child in _as_list(node.get(name)):
            yield from _walk(child, rest)
            yield from _walk(child, segments)
        return
    child = node.get(head)
    if child is not None:
        yield from _walk(child, rest)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _index_values(param: SearchParam, node: Any) -> Iterator[IndexValue]:
    match param.type:
        case ParamType.TOKEN:
            yield from _tokens(param.name, node)
        case ParamType.STRING:
            yield from _strings(param.name, node)
        case ParamType.DATE:
            yield from _dates(param.name, node)
        case ParamType.REFERENCE:
            yield from _references(param, node)


def _tokens(name: str, node: Any) -> Iterator[IndexValue]:
    """code, boolean, Coding, CodeableConcept and Identifier values (R4 §3.1.1.4.10 token)."""
    if isinstance(node, bool):
        yield IndexValue(name, value="true" if node else "false")
    elif isinstance(node, str):
        yield IndexValue(name, value=node)
    elif isinstance(node, dict):
        if "coding" in node:
            for coding in node["coding"]:
                yield from _tokens(name, coding)
        elif "code" in node:
            yield IndexValue(name, system=token_system(node.get("system")), value=node["code"])
        elif "value" in node and isinstance(node["value"], str):
            yield IndexValue(name, system=token_system(node.get("system")), value=node["value"])


def token_system(system: Any) -> str | None:
    """A token's system as the index holds it, and as every look-up must ask for it: a system
    partners spell as an OID or an older FHIR URL in its FHIR URL, so that either spelling
    finds the other. Identifier systems (the NPI's, the SSN's OIDs) as consent.model.Identifier
    reads them (migration 0016 rewrote the rows stored before); code systems (ICD-10-CM,
    SNOMED CT, LOINC, RxNorm and the v3 vocabularies C-CDA writes by OID) as the consent engine
    reads codings (migration 0017). Both tables apply to every token: a query does not say
    whether its parameter is over an Identifier or a Coding, and the aliases of one are never
    systems of the other. None for no system."""
    if not isinstance(system, str):
        return None
    return canonical_system(canonical_identifier_system(system))


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def _strings(name: str, node: Any) -> Iterator[IndexValue]:
    """Strings, and the parts of HumanName and Address, each matchable on its own."""
    if isinstance(node, str):
        yield IndexValue(name, value=node[:2048], norm=normalize(node)[:2048])
    elif isinstance(node, dict):
        for part in _NAME_PARTS + _ADDRESS_PARTS:
            for text in _as_list(node.get(part)):
                yield from _strings(name, text)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form, as FHIR string search requires."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return stripped.casefold().strip()


def _dates(name: str, node: Any) -> Iterator[IndexValue]:
    """dates, dateTimes and instants as ranges; a Period's open end is unbounded."""
    if isinstance(node, str):
        lo, hi = parse_range(node)
        yield IndexValue(name, lo=lo, hi=hi)
    elif isinstance(node, dict) and ("start" in node or "end" in node):
        lo = parse_range(node["start"])[0] if "start" in node else EARLIEST
        hi = parse_range(node["end"])[1] if "end" in node else LATEST
        yield IndexValue(name, lo=lo, hi=hi)


def _references(param: SearchParam, node: Any) -> Iterator[IndexValue]:
    if not isinstance(node, dict):
        return
    yield from _reference_identifier(param, node)
    if not isinstance(node.get("reference"), str):
        return
    target = parse_reference(node["reference"])
    if target is None:
        return
    target_type, target_id, absolute = target
    if param.targets and target_type not in param.targets:
        return
    yield IndexValue(param.name, system=target_type, value=target_id, norm=absolute)


def _reference_identifier(param: SearchParam, node: dict[str, Any]) -> Iterator[IndexValue]:
    """A Reference's `identifier` (system and value), indexed as `{param}:identifier`, the R4
    `:identifier` modifier's index: a Consent naming its patient by identifier only (a logical
    reference) is found for the stored Patient carrying it (interop.store.consents)."""
    identifier = node.get("identifier")
    if not isinstance(identifier, dict):
        return
    system, value = identifier.get("system"), identifier.get("value")
    if isinstance(system, str) and isinstance(value, str) and system and value:
        yield IndexValue(param.name + IDENTIFIER_MODIFIER, system=token_system(system), value=value)


def parse_reference(reference: str) -> tuple[str, str, str | None] | None:
    """(type, id, the absolute URL or None) of a literal reference; None for #contained/urn."""
    if reference.startswith(("#", "urn:")):
        return None
    absolute = reference if "://" in reference else None
    path = reference.split("/_history/")[0]
    segments = path.rstrip("/").split("/")
    if len(segments) < 2 or not segments[-2][:1].isupper():
        return None
    return segments[-2], segments[-1], absolute
