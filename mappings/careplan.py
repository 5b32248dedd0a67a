"""CarePlan <-> FHIR R4 CarePlan, to the US Core CarePlan profile (US Core 7.0.0).

| CarePlan      | CarePlan                                                              |
|---------------|-----------------------------------------------------------------------|
| id            | id                                                                    |
| (summary)     | text: a generated narrative (US Core requires one)                    |
| status        | status (request-status)                                               |
| intent        | intent (care-plan-intent)                                             |
| (fixed)       | category: US Core careplan-category "assess-plan" (US Core 1..1)      |
| title         | title                                                                 |
| description   | description                                                           |
| client_id     | subject                                                               |
| period        | period                                                                |
| created       | created                                                               |
| author        | author                                                                |
| barrier_ids   | addresses -> Condition (the SDOH problems and health concerns)        |
| goal_ids      | goal -> Goal                                                          |
| activities    | activity.reference -> Task (actions) or ServiceRequest (referrals)    |

Inline activity details, care teams, contributors and notes are reported as unmapped: the
plan's actions and referrals are resources of their own, so that partners can track them.
"""

from html import escape
from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped
from mappings.model import Activity, ActivityKind, CarePlan, PartyKind, PlanIntent, RequestStatus
from mappings.terminology import ASSESS_PLAN

PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-careplan"
_AUTHORS: Final = tuple(PartyKind)
_XHTML: Final = "http://www.w3.org/1999/xhtml"


def to_fhir(plan: CarePlan) -> dict[str, Any]:
    """The plan as a US Core CarePlan."""
    resource: dt.Json = {
        "resourceType": "CarePlan",
        "id": plan.id,
        "meta": dt.meta(PROFILE),
        "text": {"status": "generated", "div": _narrative(plan)},
        "status": plan.status.value,
        "intent": plan.intent.value,
        "category": [{"coding": [dt.coding(ASSESS_PLAN)]}],
    }
    dt.put(resource, "title", plan.title)
    dt.put(resource, "description", plan.description)
    resource["subject"] = dt.reference("Patient", plan.client_id)
    if plan.period is not None:
        resource["period"] = dt.period(plan.period)
    if plan.created is not None:
        resource["created"] = dt.when(plan.created)
    if plan.author is not None:
        resource["author"] = dt.party(plan.author)
    dt.put(resource, "addresses", [dt.reference("Condition", ref) for ref in plan.barrier_ids])
    dt.put(resource, "goal", [dt.reference("Goal", ref) for ref in plan.goal_ids])
    dt.put(
        resource,
        "activity",
        [{"reference": dt.reference(item.kind.value, item.ref)} for item in plan.activities],
    )
    return resource


def _narrative(plan: CarePlan) -> str:
    """The human-readable summary US Core asks for: title, description, counts."""
    lines = [
        plan.title or "Case management plan",
        f"Status: {plan.status.value}",
        f"{len(plan.goal_ids)} goal(s), {len(plan.activities)} activity(ies)",
    ]
    if plan.description is not None:
        lines.insert(1, plan.description)
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return f'<div xmlns="{_XHTML}">{paragraphs}</div>'


def from_fhir(resource: dict[str, Any]) -> Mapped[CarePlan]:
    """A CarePlan as a case-management plan; what has no place is reported."""
    reader = dt.Reader.resource(resource, "CarePlan")
    dt.read_meta(reader, (PROFILE,))
    dt.read_generated_narrative(reader)
    for entry in reader.children("category"):
        for item, code in dt.codes_of(entry):
            if (code.system, code.code) != (ASSESS_PLAN.system, ASSESS_PLAN.code):
                item.report("only the US Core assess-plan category is kept")
    author = reader.child("author")
    plan = dt.domain_value(
        "CarePlan",
        lambda: CarePlan(
            id=dt.read_id(reader),
            client_id=dt.need_ref(reader, "subject", "Patient"),
            status=dt.need_enum(reader, "status", RequestStatus),
            intent=dt.need_enum(reader, "intent", PlanIntent),
            title=reader.string("title"),
            description=reader.string("description"),
            period=dt.read_period(reader.child("period")),
            created=dt.read_when(reader, "created"),
            author=None if author is None else dt.read_party(author, _AUTHORS),
            goal_ids=dt.refs(reader, "goal", "Goal"),
            barrier_ids=dt.refs(reader, "addresses", "Condition"),
            activities=_activities(reader),
        ),
    )
    return reader.mapped(plan)


def _activities(reader: dt.Reader) -> tuple[Activity, ...]:
    """Activities that refer to a Task or a ServiceRequest; all others are reported whole."""
    found = []
    kinds = {kind.value: kind for kind in ActivityKind}
    for entry in reader.children("activity"):
        target = entry.peek("reference")
        text = target.get("reference") if isinstance(target, dict) else None
        typed = None
        if isinstance(text, str) and not text.startswith("#"):
            typed = dt.read_reference(entry.need_child("reference"))
        if typed is not None and typed.resource_type in kinds:
            found.append(Activity(kinds[typed.resource_type], typed.ref))
        else:
            entry.report("only activities that refer to a Task or a ServiceRequest are kept")
    return tuple(found)
