"""MappingError, Unmapped and Mapped: what cannot be mapped is refused, the rest reported."""

import dataclasses

import pytest

from mappings.errors import InvalidResource, Issue, Mapped, MappingError, Unmapped


class TestMappingError:
    def test_is_one_issue_naming_the_element(self) -> None:
        error = MappingError("Task.businessStatus.coding[0].code", "'x' is not a BSeR status")

        assert error.to_issue() == Issue(
            "error", "value", "'x' is not a BSeR status", ("Task.businessStatus.coding[0].code",)
        )
        assert error.issues == (error.to_issue(),)
        assert (error.path, error.reason) == (
            "Task.businessStatus.coding[0].code",
            "'x' is not a BSeR status",
        )

    def test_carries_the_issue_type_given(self) -> None:
        error = MappingError("Condition.code.coding[0]", "wrong system", code="code-invalid")

        assert error.to_issue().code == "code-invalid"

    def test_is_answered_like_any_invalid_resource(self) -> None:
        with pytest.raises(InvalidResource):
            raise MappingError("Goal.subject", "is required here")


class TestReports:
    def test_unmapped_and_mapped_are_frozen_values(self) -> None:
        report = Unmapped("Patient.photo", "this element has no place in the domain")
        mapped = Mapped("value", (report,))

        assert mapped == Mapped("value", (Unmapped(report.path, report.reason),))
        with pytest.raises(dataclasses.FrozenInstanceError):
            mapped.value = "other"  # type: ignore[misc]

    def test_nothing_unmapped_by_default(self) -> None:
        assert Mapped(1).unmapped == ()
