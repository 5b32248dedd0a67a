"""The domain values check their own invariants on construction."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from mappings.model import (
    Barrier,
    CareSetting,
    Client,
    ClinicalStatus,
    Code,
    Concept,
    ConcernKind,
    Gender,
    Goal,
    GoalDomain,
    GoalLifecycle,
    Id,
    Identifier,
    LevelOfCare,
    Name,
    Period,
    Ref,
    SdohCategory,
    Target,
    When,
)


class TestIdsAndRefs:
    @pytest.mark.parametrize("value", ["a", "A-1.b", "x" * 64])
    def test_fhir_ids(self, value: str) -> None:
        assert Id(value) == value

    @pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a/b", "a_b"])
    def test_not_fhir_ids(self, value: str) -> None:
        with pytest.raises(ValueError, match="not a FHIR id"):
            Id(value)

    @pytest.mark.parametrize(
        ("value", "local"),
        [
            ("p1", True),
            ("https://partner.example.org/fhir/Patient/p1", False),
            ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", False),
        ],
    )
    def test_a_ref_is_an_id_here_or_an_absolute_url(self, value: str, local: bool) -> None:
        assert Ref(value).is_local is local

    @pytest.mark.parametrize("value", ["Patient/p1", "urn:oid:1.2.3", "ftp://x/y", "a b"])
    def test_refs_are_not_relative_references(self, value: str) -> None:
        with pytest.raises(ValueError, match="not a FHIR id or an absolute URL"):
            Ref(value)


class TestPeriod:
    def test_needs_an_end(self) -> None:
        with pytest.raises(ValueError, match="a start or end"):
            Period()

    def test_instants_must_not_be_naive(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            Period(datetime(2025, 1, 1, 9, 0))

    def test_instants_compare_as_instants(self) -> None:
        start = datetime(2025, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=5)))
        assert Period(start, datetime(2025, 1, 1, 6, 0, tzinfo=UTC)).end is not None
        with pytest.raises(ValueError, match="ends before"):
            Period(start, datetime(2025, 1, 1, 4, 0, tzinfo=UTC))

    def test_a_day_against_an_instant_holds_in_every_zone(self) -> None:
        """per-1 as the FHIR validator reads it: a day may begin as late as UTC-12:00."""
        with pytest.raises(ValueError, match="ends before"):
            Period(date(2023, 6, 21), datetime(2023, 6, 21, 6, 20, tzinfo=UTC))
        assert Period(datetime(2023, 6, 21, 6, 20, tzinfo=UTC), date(2023, 6, 21))


class TestValues:
    def test_a_client_needs_an_identifier_and_a_name(self) -> None:
        with pytest.raises(ValueError, match="identifier"):
            Client(Id("c"), (), (Name("Doe"),), Gender.UNKNOWN)
        with pytest.raises(ValueError, match="name"):
            Client(Id("c"), (Identifier(None, "1"),), (), Gender.UNKNOWN)

    def test_codes_follow_fhir_code_syntax(self) -> None:
        with pytest.raises(ValueError, match="not a FHIR code"):
            Code("http://loinc.org", " 18761-7")

    def test_a_concept_needs_a_code_or_text(self) -> None:
        with pytest.raises(ValueError, match="code or text"):
            Concept()

    def test_a_target_needs_something_to_aim_at(self) -> None:
        with pytest.raises(ValueError, match="measure, a detail or a due date"):
            Target()

    def test_the_domain_category_is_implied(self) -> None:
        with pytest.raises(ValueError, match="implied"):
            Goal(
                Id("g"),
                Ref("c"),
                Concept(text="Stable housing"),
                GoalLifecycle.ACTIVE,
                GoalDomain.HOUSING,
                (SdohCategory.HOUSING_INSTABILITY,),
            )

    def test_an_abated_barrier_is_settled(self) -> None:
        """con-4: an abated condition is inactive, in remission or resolved."""
        with pytest.raises(ValueError, match="con-4"):
            Barrier(
                Id("b"),
                Ref("c"),
                Concept(text="Eviction notice"),
                ConcernKind.HEALTH_CONCERN,
                clinical_status=ClinicalStatus.ACTIVE,
                abatement=date(2025, 2, 1),
            )


class TestLevelsOfCare:
    @pytest.mark.parametrize(
        ("level", "setting"),
        [
            (LevelOfCare.WM_INPATIENT_MONITORED, CareSetting.WITHDRAWAL_MANAGEMENT),
            (LevelOfCare.RESIDENTIAL_HIGH_INTENSITY, CareSetting.RESIDENTIAL),
            (LevelOfCare.PARTIAL_HOSPITALIZATION, CareSetting.PARTIAL_HOSPITALIZATION),
            (LevelOfCare.INTENSIVE_OUTPATIENT, CareSetting.INTENSIVE_OUTPATIENT),
            (LevelOfCare.OUTPATIENT, CareSetting.OUTPATIENT),
            (LevelOfCare.RECOVERY_SUPPORT, CareSetting.RECOVERY_SUPPORT),
        ],
    )
    def test_each_level_has_its_setting(self, level: LevelOfCare, setting: CareSetting) -> None:
        assert level.setting is setting

    def test_every_level_has_a_setting(self) -> None:
        assert {level.setting for level in LevelOfCare} == set(CareSetting)

    def test_domains_without_an_sdoh_category(self) -> None:
        assert {domain for domain in GoalDomain if domain.sdoh_category is None} == {
            GoalDomain.MEDICATION_CONTINUITY,
            GoalDomain.MENTAL_HEALTH,
            GoalDomain.PRIMARY_CARE,
        }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-07", date(2026, 12, 7)),
        ("2026-12-07T00:00:00Z", datetime(2026, 12, 7, tzinfo=UTC)),
        (
            "2026-12-07T00:00:00+02:00",
            datetime(2026, 12, 7, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            "2026-12-07T09:30:00-05:00",
            datetime(2026, 12, 7, 9, 30, tzinfo=timezone(-timedelta(hours=5))),
        ),
    ],
)
def test_an_instant_at_midnight_stays_an_instant(text: str, expected: date) -> None:
    """A dateTime with a time is an instant, its zone kept; only a bare day is a date."""
    read = TypeAdapter(When).validate_python(text)
    assert (type(read), read) == (type(expected), expected)
