"""PART2.md S1, S2 under `_summary` and `_elements`: a cut Part 2 record keeps its labels and
notice, and a withheld one stays unknown however it is asked for."""

import json

from fastapi.testclient import TestClient

from tests.interop.disclosure.conftest import World, as_


def test_a_subset_part2_record_still_carries_its_labels_and_notice(
    anonymous: TestClient, world: World
) -> None:
    """PART2.md S1, S2: however little of a Part 2 record a recipient asks for, what it gets
    is labelled and carries the redisclosure notice."""
    headers = as_(anonymous, world.a)
    whole = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=headers).json()
    cut = anonymous.get(
        f"/fhir/CarePlan/{world.plan_id}", params={"_elements": "status"}, headers=headers
    ).json()
    assert cut["meta"]["security"] == whole["meta"]["security"]
    assert cut["meta"]["extension"] == whole["meta"]["extension"]
    assert "42CFRPart2" in json.dumps(cut["meta"]["security"])
    assert set(cut) <= {"resourceType", "id", "meta", "status", "intent", "subject"}


def test_a_withheld_record_is_not_found_however_it_is_asked_for(
    anonymous: TestClient, world: World
) -> None:
    headers = as_(anonymous, world.b)
    for params in ({}, {"_summary": "true"}, {"_elements": "id"}):
        answer = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", params=params, headers=headers)
        assert answer.status_code == 404, answer.text
