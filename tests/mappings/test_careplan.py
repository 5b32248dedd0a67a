"""CarePlan <-> US Core CarePlan, with goals and activities that refer to Tasks and referrals."""

from datetime import date
from typing import Any

from mappings import careplan, fhir
from mappings.model import (
    Activity,
    ActivityKind,
    CarePlan,
    Id,
    Party,
    PartyKind,
    Period,
    PlanIntent,
    Ref,
    RequestStatus,
)


def a_plan(**changes: Any) -> CarePlan:
    values: dict[str, Any] = {
        "id": Id("plan1"),
        "client_id": Ref("c1"),
        "status": RequestStatus.ACTIVE,
        "title": "Recovery plan: <3 months & beyond",
        "period": Period(date(2025, 3, 1), date(2025, 9, 1)),
        "author": Party(PartyKind.CASE_MANAGER, Ref("cm1")),
        "goal_ids": (Ref("g1"), Ref("g2")),
        "barrier_ids": (Ref("b1"),),
        "activities": (
            Activity(ActivityKind.ACTION, Ref("a1")),
            Activity(
                ActivityKind.REFERRAL, Ref("https://partner.example.org/fhir/ServiceRequest/9")
            ),
        ),
    }
    return CarePlan(**(values | changes))


def test_writes_us_core_careplan_must_supports() -> None:
    resource = careplan.to_fhir(a_plan())

    fhir.validate(resource)
    assert resource["meta"] == {"profile": [careplan.PROFILE]}
    assert resource["text"] == {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Recovery plan: &lt;3 months '
        "&amp; beyond</p><p>Status: active</p><p>2 goal(s), 2 activity(ies)</p></div>",
    }
    assert (resource["status"], resource["intent"]) == ("active", "plan")
    assert resource["category"] == [
        {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                    "code": "assess-plan",
                    "display": "Assessment and Plan of Treatment",
                }
            ]
        }
    ]
    assert resource["activity"] == [
        {"reference": {"reference": "Task/a1"}},
        {"reference": {"reference": "https://partner.example.org/fhir/ServiceRequest/9"}},
    ]
    assert resource["goal"] == [{"reference": "Goal/g1"}, {"reference": "Goal/g2"}]
    assert resource["addresses"] == [{"reference": "Condition/b1"}]


def test_reads_what_it_wrote() -> None:
    mapped = careplan.from_fhir(careplan.to_fhir(a_plan(intent=PlanIntent.PROPOSAL)))

    assert (mapped.value, mapped.unmapped) == (a_plan(intent=PlanIntent.PROPOSAL), ())


def test_reports_inline_activities_and_a_hand_written_narrative() -> None:
    resource = careplan.to_fhir(a_plan())
    resource["text"]["status"] = "additional"
    resource["activity"].append({"detail": {"status": "scheduled", "description": "Call landlord"}})
    resource["activity"].append({"reference": {"reference": "MedicationRequest/m1"}})

    mapped = careplan.from_fhir(resource)

    assert mapped.value == a_plan()
    assert [item.path for item in mapped.unmapped] == [
        "CarePlan.text",
        "CarePlan.activity[2]",
        "CarePlan.activity[3]",
    ]
