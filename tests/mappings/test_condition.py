"""Barrier <-> SDOHCC Condition / US Core problem or health concern."""

from datetime import date
from typing import Any

import pytest

from mappings import condition, fhir
from mappings.errors import MappingError
from mappings.model import Barrier, ClinicalStatus, Code, Concept, ConcernKind, GoalDomain, Id, Ref
from mappings.terminology import GOAL_DOMAIN, ICD10CM, SDOHCC_CODES, SNOMED


def a_barrier(**changes: Any) -> Barrier:
    values: dict[str, Any] = {
        "id": Id("b1"),
        "client_id": Ref("c1"),
        "code": Concept(
            (Code(ICD10CM, "Z59.00", "Homelessness, unspecified"),), "No fixed address"
        ),
        "kind": ConcernKind.HEALTH_CONCERN,
        "domain": GoalDomain.HOUSING,
        "clinical_status": ClinicalStatus.ACTIVE,
        "onset": date(2025, 2, 1),
        "recorded": date(2025, 3, 1),
    }
    return Barrier(**(values | changes))


def test_writes_an_sdoh_health_concern() -> None:
    resource = condition.to_fhir(a_barrier())

    fhir.validate(resource)
    assert resource["meta"]["profile"] == list(condition.PROFILES)
    assert [(c["coding"][0]["system"], c["coding"][0]["code"]) for c in resource["category"]] == [
        ("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern"),
        ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh"),
        (SDOHCC_CODES, "housing-instability"),
        (GOAL_DOMAIN.url, "housing"),
    ]
    assert resource["clinicalStatus"]["coding"][0]["code"] == "active"
    assert (resource["onsetDateTime"], resource["recordedDate"]) == ("2025-02-01", "2025-03-01")


def test_a_clinical_problem_is_us_core_only() -> None:
    barrier = a_barrier(
        code=Concept((Code(SNOMED, "66590003", "Alcohol dependence"),)),
        kind=ConcernKind.PROBLEM,
        domain=None,
    )
    resource = condition.to_fhir(barrier)

    assert resource["meta"]["profile"] == [condition.US_CORE_PROFILE]
    assert resource["category"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "problem-list-item",
                    "display": "Problem List Item",
                }
            ]
        }
    ]
    assert condition.from_fhir(resource).value == barrier


def test_refuses_codes_outside_us_core_condition_codes() -> None:
    barrier = a_barrier(code=Concept((Code("http://loinc.org", "71802-3"),)))

    with pytest.raises(MappingError) as raised:
        condition.to_fhir(barrier)
    assert (raised.value.path, raised.value.to_issue().code) == (
        "Condition.code.coding[0]",
        "code-invalid",
    )
    resource = condition.to_fhir(a_barrier())
    resource["code"]["coding"][0]["system"] = "http://loinc.org"
    with pytest.raises(MappingError, match="US Core Condition Codes"):
        condition.from_fhir(resource)


def test_refuses_an_encounter_diagnosis() -> None:
    resource = condition.to_fhir(a_barrier())
    resource["category"][0] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "encounter-diagnosis",
            }
        ]
    }

    with pytest.raises(MappingError) as raised:
        condition.from_fhir(resource)
    assert raised.value.path == "Condition.category"


def test_reports_verification_status() -> None:
    resource = condition.to_fhir(a_barrier())
    resource["verificationStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed",
            }
        ]
    }

    mapped = condition.from_fhir(resource)

    assert mapped.value == a_barrier()
    assert [item.path for item in mapped.unmapped] == ["Condition.verificationStatus"]
