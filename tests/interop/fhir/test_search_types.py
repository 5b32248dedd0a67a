"""A search answers with its own type only, whichever way its criteria select: through the
index (a value, `:missing=false`) the query does not ask the resource table for the type, and
beside a patient criterion exact values are asked of each candidate
(interop.store.search.matching_rows), so each form and mix is checked against the records
stored."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import care_plan, patient, service_request
from tests.interop.fhir.test_crud import create
from tests.interop.fhir.test_search import ids, search


@pytest.fixture
def stored_patient(client: TestClient) -> dict[str, Any]:
    return create(client, patient())


@pytest.fixture
def stored(client: TestClient, stored_patient: dict[str, Any]) -> dict[str, str]:
    """A CarePlan and a ServiceRequest of the same patient, both active, sharing every value
    a criterion below names, and a CarePlan without a period."""
    subject = f"Patient/{stored_patient['id']}"
    return {
        "plan": create(client, care_plan(subject))["id"],
        "bare plan": create(client, care_plan(subject, status="draft", period=None))["id"],
        "order": create(client, service_request(subject))["id"],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "active"}, {"plan"}),
        ({"patient": "{patient}"}, {"plan", "bare plan"}),
        ({"subject": "Patient/{patient}", "status": "draft"}, {"bare plan"}),
        ({"date:missing": "false"}, {"plan"}),
        ({"date:missing": "true"}, {"bare plan"}),
        ({"status:not": "draft"}, {"plan"}),
        ({"_id": "{plan}"}, {"plan"}),
        ({"_id": "{plan}", "status": "draft"}, set()),
        ({"patient": "{patient}", "status": "active"}, {"plan"}),
        ({"status": "draft,active", "subject": "Patient/{patient}"}, {"plan", "bare plan"}),
        ({"patient": "{patient}", "status:not": "draft"}, {"plan"}),
        ({"patient": "{patient}", "date:missing": "true"}, {"bare plan"}),
        ({"patient": "{patient}", "status": "revoked"}, set()),
        (
            {"patient": "{patient}", "subject": "Patient/{patient}", "intent": "plan"},
            {"plan", "bare plan"},
        ),
        ({}, {"plan", "bare plan"}),
    ],
)
def test_each_criterion_form_finds_its_own_type_only(
    client: TestClient,
    stored: dict[str, str],
    stored_patient: dict[str, Any],
    params: dict[str, str],
    expected: set[str],
) -> None:
    values = {"patient": stored_patient["id"], "plan": stored["plan"]}
    asked = {name: value.format(**values) for name, value in params.items()}
    found = search(client, "CarePlan", **asked)
    assert set(ids(found)) == {stored[name] for name in expected}
    assert found["total"] == len(expected)
    assert {e["resource"]["resourceType"] for e in found.get("entry", [])} <= {"CarePlan"}
