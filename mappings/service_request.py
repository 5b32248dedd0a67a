"""Referral <-> FHIR R4 ServiceRequest, to SDOHCC ServiceRequest (SDOH Clinical Care 2.3) and
US Core ServiceRequest 7.0.0: the referral order, owned by the referring program (REFERRALS.md).

| Referral               | ServiceRequest                                                  |
|------------------------|-----------------------------------------------------------------|
| id                     | id                                                              |
| goal_ids               | extension resource-pertainsToGoal (SDOHCC must support)         |
| placer_identifier      | identifier with type v2-0203 PLAC (partners dedupe on it)       |
| replaces               | replaces (a re-routed referral)                                 |
| status                 | status (request-status)                                         |
| (fixed)                | intent "order"; other intents are refused (a modifier)          |
| sdoh_categories        | category: SDOHCC SDOH categories, US Core us-core-category      |
|                        | "sdoh" beside them; "sdoh-category-unspecified" when there is   |
|                        | none, as SDOHCC requires at least one                           |
| urgency                | priority                                                        |
| service                | code: a US Core Procedure Code (SNOMED CT, LOINC, CPT, HCPCS,   |
|                        | ICD-10-PCS), e.g. SNOMED CT 4266003 "Referral to drug addiction |
|                        | rehabilitation service" or 3457005 "Patient referral"           |
| requested_level        | orderDetail: the local ASAM-aligned level-of-care code          |
| client_id              | subject                                                         |
| occurrence             | occurrenceDateTime or occurrencePeriod                          |
| authored_on            | authoredOn                                                      |
| requester              | requester                                                       |
| performer_id           | performer (the program or service referred to)                  |
| reason                 | reasonCode.text                                                 |
| barrier_ids            | reasonReference -> Condition (SDOHCC must support)              |
| consents               | supportingInfo -> Consent (SDOHCC must support)                 |
| attachments            | supportingInfo -> DocumentReference                             |
| supporting_episode_id  | supportingInfo -> EpisodeOfCare (the level the client leaves)   |

A `service` code from another code system is refused (MappingError on ServiceRequest.code).
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.episode import read_level
from mappings.errors import Mapped, MappingError
from mappings.model import (
    Code,
    Identifier,
    LevelOfCare,
    PartyKind,
    Period,
    Ref,
    Referral,
    RequestStatus,
    SdohCategory,
    Urgency,
    When,
)
from mappings.terminology import (
    LEVEL_OF_CARE,
    PERTAINS_TO_GOAL,
    PLACER_IDENTIFIER,
    PROCEDURE_CODE_SYSTEMS,
    SDOH,
    SDOH_CATEGORY,
    SDOH_CATEGORY_UNSPECIFIED,
    SDOHCC_CODES,
)

SDOHCC_PROFILE: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
)
US_CORE_PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest"
PROFILES: Final = (SDOHCC_PROFILE, US_CORE_PROFILE)
INTENT: Final = "order"
_REQUESTERS: Final = tuple(PartyKind)
_SUPPORTING: Final = ("Consent", "DocumentReference", "EpisodeOfCare")
_PROCEDURES: Final = "US Core Procedure Codes"


def to_fhir(referral: Referral) -> dict[str, Any]:
    """The referral as an SDOHCC ServiceRequest."""
    dt.check_system("ServiceRequest.code", referral.service, PROCEDURE_CODE_SYSTEMS, _PROCEDURES)
    resource: dt.Json = {
        "resourceType": "ServiceRequest",
        "id": referral.id,
        "meta": dt.meta(*PROFILES),
    }
    dt.put(
        resource,
        "extension",
        [
            {"url": PERTAINS_TO_GOAL, "valueReference": dt.reference("Goal", ref)}
            for ref in referral.goal_ids
        ],
    )
    if referral.placer_identifier is not None:
        resource["identifier"] = [_placer(referral.placer_identifier)]
    dt.put(resource, "replaces", [dt.reference("ServiceRequest", ref) for ref in referral.replaces])
    resource["status"] = referral.status.value
    resource["intent"] = INTENT
    resource["category"] = _categories(referral.sdoh_categories)
    resource["priority"] = referral.urgency.value
    resource["code"] = {"coding": [dt.coding(referral.service)]}
    if referral.requested_level is not None:
        resource["orderDetail"] = [
            {"coding": [dt.coded(LEVEL_OF_CARE, referral.requested_level.value)]}
        ]
    resource["subject"] = dt.reference("Patient", referral.client_id)
    _put_occurrence(resource, referral.occurrence)
    resource["authoredOn"] = dt.when(referral.authored_on)
    resource["requester"] = dt.party(referral.requester)
    if referral.performer_id is not None:
        resource["performer"] = [dt.reference("Organization", referral.performer_id)]
    if referral.reason is not None:
        resource["reasonCode"] = [{"text": referral.reason}]
    dt.put(
        resource,
        "reasonReference",
        [dt.reference("Condition", ref) for ref in referral.barrier_ids],
    )
    dt.put(resource, "supportingInfo", _supporting_info(referral))
    return resource


def _placer(value: Identifier) -> dt.Json:
    return {"type": {"coding": [dt.coding(PLACER_IDENTIFIER)]}, **dt.identifier(value)}


def _categories(sdoh: tuple[SdohCategory, ...]) -> list[dt.Json]:
    if not sdoh:
        return [{"coding": [dt.coded(SDOH_CATEGORY, SDOH_CATEGORY_UNSPECIFIED)]}]
    found = [{"coding": [dt.coded(SDOH_CATEGORY, category.value)]} for category in sdoh]
    return [*found, {"coding": [dt.coding(SDOH)]}]


def _put_occurrence(resource: dt.Json, occurrence: Period | When | None) -> None:
    if isinstance(occurrence, Period):
        resource["occurrencePeriod"] = dt.period(occurrence)
    elif occurrence is not None:
        resource["occurrenceDateTime"] = dt.when(occurrence)


def _supporting_info(referral: Referral) -> list[dt.Json]:
    found = [dt.reference("Consent", ref) for ref in referral.consents]
    found += [dt.reference("DocumentReference", ref) for ref in referral.attachments]
    if referral.supporting_episode_id is not None:
        found.append(dt.reference("EpisodeOfCare", referral.supporting_episode_id))
    return found


def from_fhir(resource: dict[str, Any]) -> Mapped[Referral]:
    """A ServiceRequest as a referral; a request that is not an order is refused."""
    reader = dt.Reader.resource(resource, "ServiceRequest")
    dt.read_meta(reader, PROFILES)
    intent = reader.need_string("intent")
    if intent != INTENT:
        raise MappingError(reader.at("intent"), f"a referral is an order, not a {intent}")
    supporting = dt.listed_refs(reader, "supportingInfo", _SUPPORTING)
    episodes = [typed.ref for typed in supporting if typed.resource_type == "EpisodeOfCare"]
    if len(episodes) > 1:
        raise MappingError(reader.at("supportingInfo"), "a referral leaves at most one episode")
    referral = dt.domain_value(
        "ServiceRequest",
        lambda: Referral(
            id=dt.read_id(reader),
            client_id=dt.need_ref(reader, "subject", "Patient"),
            requester=dt.read_party(reader.need_child("requester"), _REQUESTERS),
            status=dt.need_enum(reader, "status", RequestStatus),
            service=_service(reader),
            authored_on=dt.need_when(reader, "authoredOn"),
            performer_id=_performer(reader),
            urgency=dt.enum_value(reader, "priority", Urgency) or Urgency.ROUTINE,
            requested_level=_level(reader),
            sdoh_categories=_read_categories(reader),
            reason=_reason(reader),
            barrier_ids=dt.refs(reader, "reasonReference", "Condition"),
            goal_ids=goal_ids(reader),
            occurrence=_occurrence(reader),
            placer_identifier=_placer_identifier(reader),
            consents=tuple(typed.ref for typed in supporting if typed.resource_type == "Consent"),
            attachments=tuple(
                typed.ref for typed in supporting if typed.resource_type == "DocumentReference"
            ),
            supporting_episode_id=episodes[0] if episodes else None,
            replaces=dt.refs(reader, "replaces", "ServiceRequest"),
        ),
    )
    return reader.mapped(referral)


def goal_ids(reader: dt.Reader) -> tuple[Ref, ...]:
    """The goals a request or task pertains to (extension resource-pertainsToGoal)."""
    return tuple(
        dt.need_ref(extension, "valueReference", "Goal")
        for extension in reader.extensions(PERTAINS_TO_GOAL)
    )


def _service(reader: dt.Reader) -> Code:
    """The one code of ServiceRequest.code; US Core requires it, from its procedure codes."""
    concept = reader.need_child("code")
    codes = list(dt.codes_of(concept))
    if not codes:
        raise MappingError(concept.at("coding"), "a referral needs a coded service")
    for item, _ in codes[1:]:
        item.report("only the first code of the service is kept")
    code = codes[0][1]
    dt.check_system(codes[0][0].path, code, PROCEDURE_CODE_SYSTEMS, _PROCEDURES)
    return code


def _performer(reader: dt.Reader) -> Ref | None:
    performers = dt.listed_refs(reader, "performer", ("Organization",))
    for extra in performers[1:]:
        reader.note(reader.at("performer"), f"only the first performer is kept, not {extra.ref}")
    return performers[0].ref if performers else None


def _level(reader: dt.Reader) -> LevelOfCare | None:
    levels = [level for entry in reader.children("orderDetail") if (level := read_level(entry))]
    if len(levels) > 1:
        raise MappingError(reader.at("orderDetail"), "a referral asks for one level of care")
    return levels[0] if levels else None


def _read_categories(reader: dt.Reader) -> tuple[SdohCategory, ...]:
    found: list[SdohCategory] = []
    for entry in reader.children("category"):
        for item, code in dt.codes_of(entry):
            category = (
                None
                if code.code == SDOH_CATEGORY_UNSPECIFIED
                else dt.enum_code(item, code, SDOHCC_CODES, SdohCategory)
            )
            if category in found:
                item.report("a repeated SDOH category")
            elif category is not None:
                found.append(category)
            elif (code.system, code.code) not in (
                (SDOH.system, SDOH.code),
                (SDOHCC_CODES, SDOH_CATEGORY_UNSPECIFIED),
            ):
                item.report("only SDOH categories are kept")
    return tuple(found)


def _reason(reader: dt.Reader) -> str | None:
    texts = []
    for entry in reader.children("reasonCode"):
        for item, _ in dt.codes_of(entry):
            item.report("the reason is kept as text")
        text = entry.string("text")
        if text is not None:
            texts.append(text)
    return "; ".join(texts) if texts else None


def _occurrence(reader: dt.Reader) -> Period | When | None:
    if reader.has("occurrencePeriod"):
        return dt.read_period(reader.child("occurrencePeriod"))
    return dt.read_when(reader, "occurrenceDateTime")


def _placer_identifier(reader: dt.Reader) -> Identifier | None:
    """The placer identifier (type PLAC), or the only identifier; the others are reported."""
    entries = reader.children("identifier")
    chosen = None
    for entry in entries:
        kind = entry.peek("type")
        if chosen is None and (len(entries) == 1 or _is_placer(kind)):
            chosen = entry
        else:
            entry.report("only the placer identifier is kept")
    if chosen is None:
        return None
    kind_reader = chosen.child("type")
    if kind_reader is not None:
        for item, code in dt.codes_of(kind_reader):
            if (code.system, code.code) != (PLACER_IDENTIFIER.system, PLACER_IDENTIFIER.code):
                item.report("the identifier is kept as the placer identifier")
    return dt.read_identifier(chosen)


def _is_placer(kind: Any) -> bool:
    codings = kind.get("coding", []) if isinstance(kind, dict) else []
    return any(
        isinstance(c, dict)
        and (c.get("system"), c.get("code")) == (PLACER_IDENTIFIER.system, PLACER_IDENTIFIER.code)
        for c in codings
    )
