"""The Reader reports what nobody took; the data type codecs keep what the domain holds."""

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from mappings import datatypes as dt
from mappings.errors import MappingError, Unmapped
from mappings.model import Party, PartyKind, Period, Ref, TypedRef


def _reader(value: dict[str, Any]) -> dt.Reader:
    return dt.Reader.resource({"resourceType": "Basic", **value}, "Basic")


class TestReader:
    def test_reports_every_element_not_taken(self) -> None:
        reader = _reader({"id": "b1", "code": {"text": "x", "coding": [{"code": "c"}]}})
        reader.need_string("id")
        code = reader.need_child("code")
        code.string("text")

        assert reader.mapped(None).unmapped == (
            Unmapped("Basic.code.coding", "this element has no place in the domain"),
        )

    def test_reports_extensions_on_primitives_and_unknown_extensions(self) -> None:
        reader = _reader(
            {
                "_id": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
                "extension": [
                    {"url": "http://example.org/kept", "valueBoolean": True},
                    {"url": "http://example.org/other", "valueBoolean": False},
                ],
            }
        )
        [kept] = reader.extensions("http://example.org/kept")
        assert kept.boolean("valueBoolean") is True

        assert reader.mapped(None).unmapped == (
            Unmapped("Basic.id", "the extensions on this value have no place in the domain"),
            Unmapped(
                "Basic.extension[1]",
                "extension http://example.org/other has no place in the domain",
            ),
        )

    def test_refuses_a_modifier_extension(self) -> None:
        reader = _reader(
            {"code": {"modifierExtension": [{"url": "http://x", "valueBoolean": True}]}}
        )
        with pytest.raises(MappingError) as raised:
            reader.child("code")
        assert raised.value.path == "Basic.code.modifierExtension"

    def test_refuses_another_resource_type(self) -> None:
        with pytest.raises(MappingError, match="expected a Task"):
            dt.Reader.resource({"resourceType": "Goal"}, "Task")

    def test_reports_meta_it_does_not_keep(self) -> None:
        reader = _reader(
            {
                "meta": {
                    "versionId": "3",
                    "profile": ["http://example.org/mine|1.0", "http://example.org/theirs"],
                    "security": [{"system": "http://x", "code": "R"}],
                }
            }
        )
        dt.read_meta(reader, ("http://example.org/mine",))

        assert {item.path for item in reader.mapped(None).unmapped} == {
            "Basic.meta.versionId",
            "Basic.meta.profile[1]",
            "Basic.meta.security",
        }


class TestReferences:
    @pytest.mark.parametrize(
        ("ref", "written"),
        [
            ("p1", {"reference": "Patient/p1"}),
            (
                "https://partner.example.org/fhir/Patient/p1",
                {"reference": "https://partner.example.org/fhir/Patient/p1"},
            ),
            (
                "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
                {"reference": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "type": "Patient"},
            ),
        ],
    )
    def test_local_relative_absolute_as_written(self, ref: str, written: dict[str, str]) -> None:
        assert dt.reference("Patient", Ref(ref)) == written
        assert dt.read_reference(_reader(written), ("Patient",)) == TypedRef("Patient", Ref(ref))

    def test_a_version_is_reported(self) -> None:
        reader = _reader({"reference": "Patient/p1/_history/2"})

        assert dt.read_ref(reader, "Patient") == "p1"
        assert reader.mapped(None).unmapped == (
            Unmapped("Basic.reference", "the domain refers to the current version"),
        )

    @pytest.mark.parametrize(
        ("reference", "message"),
        [
            ({"reference": "Group/g1"}, "must refer to a Patient, not a Group"),
            ({"reference": "#contained"}, "contained resources are not mapped"),
            ({"display": "Peter"}, "neither"),
            ({"reference": "urn:oid:1.2.3"}, "type of the resource referred to is unknown"),
        ],
    )
    def test_refused(self, reference: dict[str, str], message: str) -> None:
        with pytest.raises(MappingError, match=message):
            dt.read_ref(_reader(reference), "Patient")

    def test_lists_report_what_they_cannot_hold(self) -> None:
        reader = _reader(
            {"goal": [{"reference": "Goal/g1"}, {"display": "weight"}, {"reference": "Basic/b"}]}
        )

        assert dt.refs(reader, "goal", "Goal") == ("g1",)
        assert [item.path for item in reader.mapped(None).unmapped] == [
            "Basic.goal[1]",
            "Basic.goal[2]",
        ]

    def test_parties_carry_their_kind(self) -> None:
        reader = _reader({"reference": "PractitionerRole/cm1"})

        assert dt.read_party(reader, tuple(PartyKind)) == Party(PartyKind.CASE_MANAGER, Ref("cm1"))


class TestDates:
    def test_days_and_instants(self) -> None:
        reader = _reader({"a": "2025-03-01", "b": "2025-03-01T10:15:30.512Z", "c": "2025-03"})
        assert dt.read_when(reader, "a") == date(2025, 3, 1)
        assert dt.read_when(reader, "b") == datetime(2025, 3, 1, 10, 15, 30, 512000, UTC)
        assert dt.read_when(reader, "c") is None
        assert reader.mapped(None).unmapped == (
            Unmapped("Basic.c", "a partial date (year or month) has no place in the domain"),
        )

    def test_instants_keep_their_offset(self) -> None:
        moment = datetime(2025, 3, 1, 10, 15, tzinfo=timezone(timedelta(hours=-5)))
        assert dt.when(moment) == "2025-03-01T10:15:00-05:00"
        assert dt.period(Period(end=date(2025, 3, 2))) == {"end": "2025-03-02"}

    def test_a_date_element_refuses_an_instant(self) -> None:
        with pytest.raises(MappingError, match="must be a date"):
            dt.read_date(_reader({"birthDate": "2025-03-01T10:15:30Z"}), "birthDate")
