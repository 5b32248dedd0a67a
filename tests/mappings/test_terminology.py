"""The code systems behind the domain: every domain code has a display, and the cross-maps hold."""

from enum import StrEnum

import pytest

from mappings import terminology as t
from mappings.model import (
    ActionOwner,
    BusinessStatus,
    GoalDomain,
    LevelOfCare,
    ProgramKind,
    SdohCategory,
    StatusReasonCode,
    TransitionItem,
)


@pytest.mark.parametrize(
    ("kind", "system"),
    [
        (GoalDomain, t.GOAL_DOMAIN),
        (LevelOfCare, t.LEVEL_OF_CARE),
        (ProgramKind, t.PROGRAM_KIND),
        (ActionOwner, t.ACTION_OWNER),
        (BusinessStatus, t.BUSINESS_STATUS),
        (StatusReasonCode, t.STATUS_REASON),
        (SdohCategory, t.SDOH_CATEGORY),
        (TransitionItem, t.TRANSITION_ITEM),
    ],
)
def test_every_domain_code_is_in_its_code_system(kind: type[StrEnum], system: t.CodeSystem) -> None:
    assert {member.value for member in kind} <= set(system.displays)


@pytest.mark.parametrize(
    "system",
    [
        t.GOAL_DOMAIN,
        t.LEVEL_OF_CARE,
        t.PROGRAM_KIND,
        t.ACTION_OWNER,
        t.BUSINESS_STATUS,
        t.STATUS_REASON,
        t.TRANSITION_ITEM,
    ],
)
def test_local_code_systems_live_under_the_project_base(system: t.CodeSystem) -> None:
    assert system.url.startswith(f"{t.PROJECT_BASE}/CodeSystem/")


def test_local_code_systems_hold_exactly_the_domain_codes() -> None:
    """A local code nobody can produce would be dead; the extra handoff codes are the exception."""
    assert set(t.GOAL_DOMAIN.displays) == {d.value for d in GoalDomain}
    assert set(t.BUSINESS_STATUS.displays) == {s.value for s in BusinessStatus}
    assert set(t.TRANSITION_ITEM.displays) == {i.value for i in TransitionItem} | {
        t.TRANSPORTATION_ARRANGED,
        t.FROM_LEVEL_OF_CARE,
    }
    assert set(t.SDOH_CATEGORY.displays) == {c.value for c in SdohCategory} | {
        t.SDOH_CATEGORY_UNSPECIFIED
    }


def test_business_statuses_map_one_to_one_onto_bser() -> None:
    assert set(t.BUSINESS_STATUS_TO_BSER.values()) == set(t.BSER_STATUS.displays)
    assert set(t.BUSINESS_STATUS_TO_BSER) <= {s.value for s in BusinessStatus}
    assert {t.BSER_TO_BUSINESS_STATUS[b]: b for b in t.BSER_TO_BUSINESS_STATUS} == dict(
        t.BUSINESS_STATUS_TO_BSER
    )


@pytest.mark.parametrize(
    ("local", "bser"),
    [
        ("created", "2.0"),
        ("accepted", "3.0"),
        ("declined", "4.0"),
        ("scheduled", "5.1.1"),
        ("no-show", "5.1.2"),
        ("cancellation-requested", "5.2"),
        ("cancellation-confirmed", "6.0"),
        ("completed", "7.0"),
    ],
)
def test_bser_equivalents(local: str, bser: str) -> None:
    assert t.BUSINESS_STATUS_TO_BSER[local] == bser


def test_workflow_statuses_bser_lacks_stay_local() -> None:
    assert {"waitlisted", "awaiting-consent", "transferred-next-level"}.isdisjoint(
        t.BUSINESS_STATUS_TO_BSER
    )


def test_the_project_constants_keep_the_urls_partners_were_registered_with() -> None:
    base = "http://recovery-interop.example.org/fhir"
    constants = (
        t.PROJECT_BASE,
        t.PART2_PROGRAM_EXTENSION,
        t.COVERED_ENTITY_EXTENSION,
        t.REGISTRATION_TAG_SYSTEM,
    )
    assert constants == (
        base,
        f"{base}/StructureDefinition/part2-program",
        f"{base}/StructureDefinition/hipaa-covered-entity",
        f"{base}/CodeSystem/registration",
    )


def test_standard_codes_written() -> None:
    assert (t.TRANSFER_SUMMARY.system, t.TRANSFER_SUMMARY.code) == ("http://loinc.org", "18761-7")
    assert t.FULFILL.system == "http://hl7.org/fhir/CodeSystem/task-code"
    assert t.CASE_MANAGER_SPECIALTY.code == "171M00000X"
