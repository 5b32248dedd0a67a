"""Goal <-> FHIR R4 Goal, to SDOHCC Goal (SDOH Clinical Care 2.3) and US Core Goal 7.0.0.

| Goal                   | Goal                                                            |
|------------------------|-----------------------------------------------------------------|
| id                     | id                                                              |
| lifecycle              | lifecycleStatus (US Core 1..1)                                  |
| achievement            | achievementStatus (HL7 goal-achievement; SDOHCC must support)   |
| domain                 | category: the local goal-domain code, with the SDOH category    |
|                        | the domain stands for (SDOHCC category:SDOH slice) or HL7       |
|                        | goal-category "behavioral" for mental health                    |
| extra_sdoh_categories  | category: more SDOHCC SDOH categories                           |
| priority               | priority (HL7 goal-priority)                                    |
| description            | description (US Core 1..1; code and/or text)                    |
| client_id              | subject (US Core 1..1)                                          |
| start                  | startDate (US Core must support)                                |
| targets                | target: measure, detail (Quantity, CodeableConcept, string,     |
|                        | boolean, integer) and dueDate (US Core must support)            |
| status_date            | statusDate                                                      |
| expressed_by           | expressedBy                                                     |
| barrier_ids            | addresses -> Condition (SDOHCC must support)                    |
| notes                  | note.text (progress notes)                                      |

SDOHCC Goal is claimed (meta.profile) when the goal has an SDOH category; US Core Goal always.
Ranges and ratios as target details, outcome codes and references, and who wrote a note and
when are reported as unmapped.
"""

from collections.abc import Callable
from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.model import (
    Achievement,
    Code,
    Concept,
    Goal,
    GoalDomain,
    GoalLifecycle,
    GoalPriority,
    PartyKind,
    Quantity,
    SdohCategory,
    Target,
    TargetDetail,
)
from mappings.terminology import (
    BEHAVIORAL,
    BEHAVIORAL_DOMAIN,
    GOAL_ACHIEVEMENT_DISPLAYS,
    GOAL_DOMAIN,
    GOAL_PRIORITY_DISPLAYS,
    SDOH_CATEGORY,
    SDOH_CATEGORY_UNSPECIFIED,
    SDOHCC_CODES,
)

SDOHCC_PROFILE: Final = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Goal"
US_CORE_PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-goal"
PROFILES: Final = (SDOHCC_PROFILE, US_CORE_PROFILE)
_EXPRESSED_BY: Final = (
    PartyKind.CLIENT,
    PartyKind.PRACTITIONER,
    PartyKind.CASE_MANAGER,
    PartyKind.RELATED_PERSON,
)


def to_fhir(goal: Goal) -> dict[str, Any]:
    """The goal as a US Core Goal, and an SDOHCC Goal when it has an SDOH category."""
    resource: dt.Json = {
        "resourceType": "Goal",
        "id": goal.id,
        "meta": dt.meta(*_profiles(goal)),
        "lifecycleStatus": goal.lifecycle.value,
    }
    if goal.achievement is not None:
        resource["achievementStatus"] = {
            "coding": [dt.coded(GOAL_ACHIEVEMENT_DISPLAYS, goal.achievement.value)]
        }
    dt.put(resource, "category", categories(goal.domain, goal.extra_sdoh_categories))
    if goal.priority is not None:
        resource["priority"] = {"coding": [dt.coded(GOAL_PRIORITY_DISPLAYS, goal.priority.value)]}
    resource["description"] = dt.concept(goal.description)
    resource["subject"] = dt.reference("Patient", goal.client_id)
    if goal.start is not None:
        resource["startDate"] = goal.start.isoformat()
    dt.put(resource, "target", dt.each(goal.targets, _target))
    if goal.status_date is not None:
        resource["statusDate"] = goal.status_date.isoformat()
    if goal.expressed_by is not None:
        resource["expressedBy"] = dt.party(goal.expressed_by)
    dt.put(resource, "addresses", [dt.reference("Condition", ref) for ref in goal.barrier_ids])
    dt.put(resource, "note", [{"text": note} for note in goal.notes])
    return resource


def is_sdoh(domain: GoalDomain | None, extra: tuple[SdohCategory, ...]) -> bool:
    """Whether a goal or barrier has an SDOH category, and so is written to the SDOHCC profile."""
    return bool(extra) or (domain is not None and domain.sdoh_category is not None)


def _profiles(goal: Goal) -> tuple[str, ...]:
    if is_sdoh(goal.domain, goal.extra_sdoh_categories):
        return PROFILES
    return (US_CORE_PROFILE,)


def categories(
    domain: GoalDomain | None, extra: tuple[SdohCategory, ...], *, goal: bool = True
) -> list[dt.Json]:
    """The category CodeableConcepts of a goal or barrier: SDOH categories, then the domain.

    HL7 goal-category "behavioral" stands beside the mental-health domain on goals only.
    """
    sdoh = list(extra)
    if domain is not None and domain.sdoh_category is not None:
        sdoh.insert(0, domain.sdoh_category)
    found = [{"coding": [dt.coded(SDOH_CATEGORY, category.value)]} for category in sdoh]
    if domain is not None:
        found.append({"coding": [dt.coded(GOAL_DOMAIN, domain.value)]})
        if goal and domain.value == BEHAVIORAL_DOMAIN:
            found.append({"coding": [dt.coding(BEHAVIORAL)]})
    return found


def read_categories(
    reader: dt.Reader, also: Callable[[Code], bool] = lambda code: False, *, goal: bool = True
) -> tuple[GoalDomain | None, tuple[SdohCategory, ...]]:
    """The domain and extra SDOH categories written by `categories`.

    Codes for which `also` is true are taken for the caller's own use; other codes are reported.
    """
    domain: GoalDomain | None = None
    sdoh: list[SdohCategory] = []
    behavioral: list[dt.Reader] = []
    for entry in reader.children("category"):
        for item, code in dt.codes_of(entry):
            if code.system == GOAL_DOMAIN.url and domain is None:
                domain = dt.enum_code(item, code, GOAL_DOMAIN.url, GoalDomain)
            elif code.system == SDOHCC_CODES and code.code != SDOH_CATEGORY_UNSPECIFIED:
                category = dt.enum_code(item, code, SDOHCC_CODES, SdohCategory)
                if category in sdoh:
                    item.report("a repeated SDOH category")
                elif category is not None:
                    sdoh.append(category)
            elif (code.system, code.code) == (BEHAVIORAL.system, BEHAVIORAL.code):
                behavioral.append(item)
            elif not (code.system == SDOHCC_CODES or also(code)):
                item.report("this category has no place in the domain")
    if not goal or domain is None or domain.value != BEHAVIORAL_DOMAIN:
        for item in behavioral:
            item.report('goal-category "behavioral" is kept only for the mental-health domain')
    own = domain.sdoh_category if domain is not None else None
    return domain, tuple(category for category in sdoh if category != own)


def _target(target: Target) -> dt.Json:
    found: dt.Json = {}
    if target.measure is not None:
        found["measure"] = dt.concept(target.measure)
    if target.detail is not None:
        key, value = _detail(target.detail)
        found[key] = value
    if target.due is not None:
        found["dueDate"] = target.due.isoformat()
    return found


def _detail(detail: TargetDetail) -> tuple[str, Any]:
    if isinstance(detail, Quantity):
        return "detailQuantity", dt.quantity(detail)
    if isinstance(detail, Concept):
        return "detailCodeableConcept", dt.concept(detail)
    if isinstance(detail, str):
        return "detailString", detail
    if isinstance(detail, bool):
        return "detailBoolean", detail
    return "detailInteger", detail


def from_fhir(resource: dict[str, Any]) -> Mapped[Goal]:
    """A Goal as a case-management goal; what has no place is reported."""
    reader = dt.Reader.resource(resource, "Goal")
    dt.read_meta(reader, PROFILES)
    domain, extra = read_categories(reader)
    achievement = reader.child("achievementStatus")
    priority = reader.child("priority")
    expressed_by = reader.child("expressedBy")
    goal = dt.domain_value(
        "Goal",
        lambda: Goal(
            id=dt.read_id(reader),
            client_id=dt.need_ref(reader, "subject", "Patient"),
            description=dt.read_concept(reader.need_child("description")),
            lifecycle=dt.need_enum(reader, "lifecycleStatus", GoalLifecycle),
            domain=domain,
            extra_sdoh_categories=extra,
            achievement=None
            if achievement is None
            else dt.only_code(achievement, GOAL_ACHIEVEMENT_DISPLAYS.url, Achievement),
            priority=None
            if priority is None
            else dt.only_code(priority, GOAL_PRIORITY_DISPLAYS.url, GoalPriority),
            start=dt.read_date(reader, "startDate"),
            targets=tuple(_read_targets(reader)),
            status_date=dt.read_date(reader, "statusDate"),
            expressed_by=None
            if expressed_by is None
            else dt.read_party(expressed_by, _EXPRESSED_BY),
            barrier_ids=dt.refs(reader, "addresses", "Condition"),
            notes=tuple(note.need_string("text") for note in reader.children("note")),
        ),
    )
    return reader.mapped(goal)


def _read_targets(reader: dt.Reader) -> list[Target]:
    found = []
    for entry in reader.children("target"):
        measure = entry.child("measure")
        concept = None if measure is None else dt.read_concept(measure)
        detail, due = _read_detail(entry), dt.read_date(entry, "dueDate")
        if concept is None and detail is None and due is None:
            entry.report("a target with no measure, detail or due date the domain can keep")
        else:
            found.append(Target(concept, detail, due))
    return found


def _read_detail(entry: dt.Reader) -> TargetDetail | None:
    quantity = entry.child("detailQuantity")
    if quantity is not None:
        return dt.read_quantity(quantity)
    coded = entry.child("detailCodeableConcept")
    if coded is not None:
        return dt.read_concept(coded)
    text = entry.string("detailString")
    if text is not None:
        return text
    flag = entry.boolean("detailBoolean")
    if flag is not None:
        return flag
    number = entry.raw("detailInteger")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise MappingError(entry.at("detailInteger"), "must be an integer", code="structure")
    return number
