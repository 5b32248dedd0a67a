"""What a case-API PUT stores over a stored resource (interop.services.cases._written), as
properties: a value put back unchanged stores the stored resource as it is, whatever the case
model cannot show of it; a changed value is stored valid, reads back as the value sent, and
keeps what the model has no field for."""

from dataclasses import replace
from typing import Any, Final

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from interop.services.cases import KINDS_BY_NAME, Kind, _document, _resources, _written
from mappings import fhir
from tests.mappings.test_ig_examples import EXPECTED, Maps, _example
from tests.mappings.test_round_trip import (
    ACTIONS,
    CARE_PLANS,
    CASE_MANAGERS,
    CLIENTS,
    EPISODES,
    HANDOFFS,
    PROGRAMS,
    REFERRAL_TASKS,
    REFERRALS,
    _shared_ids,
    barriers,
    goals,
)

KEPT: Final = "http://example.org/fhir/StructureDefinition/kept-by-the-case-api"
STRATEGIES: Final[dict[str, st.SearchStrategy[Any]]] = {
    "clients": CLIENTS,
    "programs": PROGRAMS,
    "case-managers": CASE_MANAGERS,
    "episodes": EPISODES,
    "goals": goals(),
    "barriers": barriers(),
    "care-plans": CARE_PLANS,
    "actions": ACTIONS,
    "referral-tasks": REFERRAL_TASKS,
    "referrals": REFERRALS,
    "handoffs": HANDOFFS,
}


def named(resource: dict[str, Any]) -> str:
    """`Type/id`: a handoff's ServiceRequest and Task may share an id."""
    return f"{resource['resourceType']}/{resource['id']}"


def reading(kind: Kind[Any], parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources the case model writes of its reading of `parts` (an unchanged PUT)."""
    return _resources(kind.to_fhir(kind.from_fhir(_document(kind, parts)).value))


def enriched(resource: dict[str, Any], text: str) -> dict[str, Any]:
    """The resource with what the case model has no field for: an extension, and a display on
    every reference it makes (top level, and in top-level lists)."""

    def displayed(value: Any) -> Any:
        if isinstance(value, dict) and "reference" in value and isinstance(value["reference"], str):
            return {**value, "display": text}
        if isinstance(value, list):
            return [displayed(item) for item in value]
        return value

    found = {key: displayed(value) for key, value in resource.items()}
    extension = {"url": KEPT, "valueString": text}
    return {**found, "extension": [*found.get("extension", []), extension]}


TEXTS: Final = (
    st.text("abcdefghijklmnopqrstuvwxyz0123456789 .-", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)


@st.composite
def stored_and_sent(draw: st.DrawFn) -> tuple[Kind[Any], list[dict[str, Any]], Any]:
    """A kind, its stored resources (a value written and enriched), and another value of it
    with the stored one's ids, as a manager would put."""
    name = draw(st.sampled_from(sorted(STRATEGIES)))
    kind = KINDS_BY_NAME[name]
    first, second = draw(STRATEGIES[name]), draw(STRATEGIES[name])
    ids = {"id": first.id}
    if name == "handoffs":
        ids["referral_id"] = first.referral_id
    sent = replace(second, **ids)
    assume(name != "handoffs" or not _shared_ids(sent))
    text = draw(TEXTS)
    parts = [enriched(part, text) for part in _resources(kind.to_fhir(first))]
    return kind, parts, sent


def pairs(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """The (reference, display) of each reference a resource makes at its top level."""
    found = []
    for value in resource.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("display"), str):
                found.append((str(item.get("reference")), item["display"]))
    return found


@settings(deadline=None, max_examples=150)
@given(stored_and_sent())
def test_an_unchanged_put_stores_what_is_stored(case: tuple[Kind[Any], list[Any], Any]) -> None:
    kind, parts, _sent = case
    assert _written(kind, parts, reading(kind, parts)) == parts


@settings(deadline=None, max_examples=150)
@given(stored_and_sent())
def test_a_changed_value_is_stored_as_sent_beside_what_the_model_cannot_show(
    case: tuple[Kind[Any], list[Any], Any],
) -> None:
    kind, parts, sent = case
    written = _written(kind, parts, _resources(kind.to_fhir(sent)))
    for resource in written:
        fhir.validate(resource)
    by_name = {named(resource): resource for resource in written}
    assert kind.from_fhir(_document(kind, [by_name[named(p)] for p in parts])).value == sent
    for part in parts:
        kept = by_name[named(part)]
        assert part["extension"][-1] in kept["extension"]
        assert set(pairs(kept)) <= set(pairs(part)), "a display kept beside another reference"


@pytest.mark.corpus
@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if isinstance(e, Maps)], ids=str)
def test_an_unchanged_put_keeps_a_published_example_whole(name: str) -> None:
    """The HL7 R4 examples the case model reads, each with elements it cannot show."""
    resource = _example(name)
    (kind,) = [
        kind
        for kind in KINDS_BY_NAME.values()
        if kind.resource_type == resource["resourceType"] and kind.name != "handoffs"
        if isinstance(kind.from_fhir(resource).value, kind.model)
    ]
    assert _written(kind, [resource], reading(kind, [resource])) == [resource]


def test_identical_stored_entries_are_each_kept_once() -> None:
    """Hypothesis found it: two stored identifiers alike, a value with three, stored four."""
    kind = KINDS_BY_NAME["episodes"]
    stored = {
        "resourceType": "EpisodeOfCare",
        "id": "e1",
        "status": "planned",
        "patient": {"reference": "Patient/p1"},
        "managingOrganization": {"reference": "Organization/o1"},
        "identifier": [{"value": "0"}, {"value": "0"}],
        "extension": [{"url": KEPT, "valueString": "kept"}],
    }
    value = kind.from_fhir(_document(kind, [stored])).value
    sent = replace(value, identifiers=(*value.identifiers, value.identifiers[0]))
    [written] = _written(kind, [stored], _resources(kind.to_fhir(sent)))
    assert written["identifier"] == [{"value": "0"}] * 3
    assert written["extension"] == stored["extension"]


def test_a_handoffs_order_and_task_sharing_an_id_are_each_merged_with_their_own() -> None:
    """Hypothesis found it: ids are per type, so a handoff's ServiceRequest and Task may both
    be `00`; merged by id alone, each took the other's stored elements."""
    kind = KINDS_BY_NAME["handoffs"]
    extension = [{"url": KEPT, "valueString": "kept"}]
    local = "http://recovery-interop.example.org/fhir/CodeSystem"
    order = {
        "resourceType": "ServiceRequest",
        "id": "00",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "4266003"}]},
        "subject": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2026-01-09",
        "authoredOn": "2026-01-02",
        "orderDetail": [
            {
                "coding": [
                    {
                        "system": f"{local}/level-of-care",
                        "code": "1-WM",
                    }
                ]
            }
        ],
        "requester": {"reference": "Organization/o1"},
        "performer": [{"reference": "Organization/o2"}],
        "extension": extension,
    }
    task = {
        "resourceType": "Task",
        "id": "00",
        "status": "draft",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": "ServiceRequest/00"},
        "for": {"reference": "Patient/p1"},
        "authoredOn": "2026-01-02",
        "requester": {"reference": "Organization/o1"},
        "owner": {"reference": "Organization/o2"},
        "input": [
            {
                "type": {"coding": [{"system": "http://loinc.org", "code": "18761-7"}]},
                "valueReference": {"reference": "DocumentReference/d1"},
            },
            {
                "type": {
                    "coding": [{"system": f"{local}/transition-item", "code": "from-level-of-care"}]
                },
                "valueCodeableConcept": {
                    "coding": [{"system": f"{local}/level-of-care", "code": "1-WM"}]
                },
            },
        ],
        "extension": extension,
    }
    parts = [order, task]
    value = kind.from_fhir(_document(kind, parts)).value
    written = _written(kind, parts, _resources(kind.to_fhir(value)))
    assert {named(resource): resource for resource in written} == {
        named(part): part for part in parts
    }
