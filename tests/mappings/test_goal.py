"""Goal <-> SDOHCC / US Core Goal, with its domain, targets and progress."""

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from mappings import fhir, goal
from mappings.errors import MappingError
from mappings.model import (
    Achievement,
    Concept,
    Goal,
    GoalDomain,
    GoalLifecycle,
    Id,
    Party,
    PartyKind,
    Quantity,
    Ref,
    SdohCategory,
    Target,
)
from mappings.terminology import GOAL_DOMAIN, SDOHCC_CODES, UCUM


def a_goal(**changes: Any) -> Goal:
    values: dict[str, Any] = {
        "id": Id("g1"),
        "client_id": Ref("c1"),
        "description": Concept(text="Move into stable housing before discharge"),
        "lifecycle": GoalLifecycle.ACTIVE,
        "domain": GoalDomain.HOUSING,
        "achievement": Achievement.IMPROVING,
        "start": date(2025, 3, 1),
        "targets": (
            Target(
                Concept(text="Nights in own housing"),
                Quantity(Decimal(30), "day", UCUM, "d"),
                date(2025, 6, 1),
            ),
        ),
        "expressed_by": Party(PartyKind.CLIENT, Ref("c1")),
        "barrier_ids": (Ref("b1"),),
        "notes": ("Applied for two units at the housing authority",),
    }
    return Goal(**(values | changes))


def _categories(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["coding"][0]["system"], c["coding"][0]["code"]) for c in resource["category"]]


class TestToFhir:
    def test_writes_an_sdohcc_goal(self) -> None:
        resource = goal.to_fhir(a_goal())

        fhir.validate(resource)
        assert resource["meta"]["profile"] == list(goal.PROFILES)
        assert _categories(resource) == [
            (SDOHCC_CODES, "housing-instability"),
            (GOAL_DOMAIN.url, "housing"),
        ]
        assert resource["target"] == [
            {
                "measure": {"text": "Nights in own housing"},
                "detailQuantity": {
                    "value": Decimal(30),
                    "unit": "day",
                    "system": UCUM,
                    "code": "d",
                },
                "dueDate": "2025-06-01",
            }
        ]
        assert resource["achievementStatus"]["coding"][0]["code"] == "improving"
        assert resource["addresses"] == [{"reference": "Condition/b1"}]
        assert resource["note"] == [{"text": "Applied for two units at the housing authority"}]

    def test_snap_adds_food_insecurity(self) -> None:
        resource = goal.to_fhir(
            a_goal(
                domain=GoalDomain.INSURANCE_BENEFITS,
                extra_sdoh_categories=(SdohCategory.FOOD_INSECURITY,),
            )
        )

        assert _categories(resource) == [
            (SDOHCC_CODES, "health-insurance-coverage-status"),
            (SDOHCC_CODES, "food-insecurity"),
            (GOAL_DOMAIN.url, "insurance-benefits"),
        ]

    def test_mental_health_is_behavioral(self) -> None:
        resource = goal.to_fhir(a_goal(domain=GoalDomain.MENTAL_HEALTH))

        assert resource["meta"]["profile"] == [goal.US_CORE_PROFILE]
        assert _categories(resource) == [
            (GOAL_DOMAIN.url, "mental-health"),
            ("http://terminology.hl7.org/CodeSystem/goal-category", "behavioral"),
        ]

    def test_medication_continuity_has_only_its_local_code(self) -> None:
        resource = goal.to_fhir(a_goal(domain=GoalDomain.MEDICATION_CONTINUITY))

        assert _categories(resource) == [(GOAL_DOMAIN.url, "medication-continuity")]

    @pytest.mark.parametrize("detail", ["Signed lease", True, 3, Concept(text="Housed")])
    def test_every_kind_of_target_detail(self, detail: Any) -> None:
        value = a_goal(targets=(Target(detail=detail),))

        assert goal.from_fhir(goal.to_fhir(value)).value == value


class TestFromFhir:
    def test_reads_what_it_wrote(self) -> None:
        mapped = goal.from_fhir(goal.to_fhir(a_goal()))

        assert (mapped.value, mapped.unmapped) == (a_goal(), ())

    def test_a_domain_without_our_code_is_kept_as_sdoh_categories(self) -> None:
        resource = goal.to_fhir(a_goal())
        del resource["category"][1]

        mapped = goal.from_fhir(resource)

        assert mapped.value.domain is None
        assert mapped.value.extra_sdoh_categories == (SdohCategory.HOUSING_INSTABILITY,)

    def test_refuses_an_sdoh_category_outside_the_value_set(self) -> None:
        resource = goal.to_fhir(a_goal())
        resource["category"][0]["coding"][0]["code"] = "housing"

        with pytest.raises(MappingError) as raised:
            goal.from_fhir(resource)
        assert raised.value.path == "Goal.category[0].coding[0].code"

    def test_reports_a_range_target(self) -> None:
        resource = goal.to_fhir(a_goal(targets=()))
        resource["target"] = [{"detailRange": {"low": {"value": 1}}, "dueDate": "2025-06-01"}]

        mapped = goal.from_fhir(resource)

        assert mapped.value.targets == (Target(due=date(2025, 6, 1)),)
        assert [item.path for item in mapped.unmapped] == ["Goal.target[0].detailRange"]
