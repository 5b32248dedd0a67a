"""`_summary` and `_elements` (R4 §3.1.1.5.8-9) on read, vread, search and history: only what
was asked for, tagged SUBSETTED, and never less than the Part 2 labels and notice."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.subsetting import SUBSETTED, Subset, requested_subset, subset_resource
from mappings import fhir
from tests.builders import patient
from tests.conftest import corpus, needs_corpus
from tests.interop.fhir.test_crud import FHIR_JSON, create, issue

NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Avery</div>'}


def tags(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"system": tag.get("system"), "code": tag.get("code")}
        for tag in resource.get("meta", {}).get("tag", [])
    ]


@pytest.fixture
def person(client: TestClient) -> dict[str, Any]:
    return create(
        client,
        patient(family="Subsetted", text=NARRATIVE, gender="female", birthDate="1990-02-03"),
    )


def test_read_with_summary_true_keeps_the_summary_elements_only(
    client: TestClient, person: dict[str, Any]
) -> None:
    answer = client.get(f"/fhir/Patient/{person['id']}", params={"_summary": "true"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"][0]["family"] == "Subsetted"
    assert body["birthDate"] == "1990-02-03"
    assert "text" not in body
    assert SUBSETTED in tags(body)
    assert body["meta"]["versionId"] == person["meta"]["versionId"]
    assert answer.headers["etag"] == f'W/"{person["meta"]["versionId"]}"'


def test_summary_text_keeps_the_narrative_and_data_drops_it(
    client: TestClient, person: dict[str, Any]
) -> None:
    path = f"/fhir/Patient/{person['id']}/_history/1"
    text = client.get(path, params={"_summary": "text"}).json()
    assert text["text"] == NARRATIVE
    assert "name" not in text
    assert "birthDate" not in text
    data = client.get(path, params={"_summary": "data"}).json()
    assert "text" not in data
    assert data["name"] == person["name"]
    assert SUBSETTED in tags(text)
    assert SUBSETTED in tags(data)


def test_search_with_elements_returns_the_named_elements_without_a_warning(
    client: TestClient, person: dict[str, Any]
) -> None:
    answer = client.get(
        "/fhir/Patient",
        params={"family": "Subsetted", "_elements": "Patient.gender"},
        headers={"Prefer": "handling=strict"},
    )
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    resource = entry["resource"]
    assert resource["gender"] == "female"
    assert "name" not in resource
    assert "text" not in resource
    assert resource["id"] == person["id"]
    assert SUBSETTED in tags(resource)
    assert "_elements=Patient.gender" in answer.json()["link"][0]["url"]


def test_history_takes_summary_under_strict_handling(
    client: TestClient, person: dict[str, Any]
) -> None:
    answer = client.get(
        f"/fhir/Patient/{person['id']}/_history",
        params={"_summary": "data"},
        headers={"Prefer": "handling=strict"},
    )
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    assert "text" not in entry["resource"]
    assert entry["resource"]["name"] == person["name"]


@pytest.mark.parametrize("elements", ["name;gender", "name,", "1name"])
def test_elements_that_name_no_element_are_a_client_error(
    client: TestClient, person: dict[str, Any], elements: str
) -> None:
    answer = client.get(f"/fhir/Patient/{person['id']}", params={"_elements": elements})
    assert answer.status_code == 400, answer.text
    assert "_elements" in issue(answer)["diagnostics"]


MODES = [Subset("true"), Subset("text"), Subset("data"), Subset(None, frozenset({"id"}))]


@needs_corpus("fhir-r4-examples")
@pytest.mark.parametrize("wanted", MODES, ids=["true", "text", "data", "elements"])
def test_every_published_example_subset_is_still_valid_r4(wanted: Subset) -> None:
    """A strict receiver accepts what we cut: the mandatory elements stay at every level."""
    checked = 0
    for path in sorted(corpus("fhir-r4-examples").glob("*.json")):
        resource = json.loads(path.read_text())
        if resource.get("resourceType") == "Bundle" or not _valid(resource):
            continue
        cut = subset_resource(resource, wanted)
        assert _valid(cut), path.name
        assert set(cut) <= set(resource) | {"meta"}, path.name
        checked += 1
    assert checked > 50


def _valid(resource: dict[str, Any]) -> bool:
    try:
        fhir.validate(resource)
    except Exception:
        return False
    return True


def test_a_subsetted_resource_is_never_written_back(
    client: TestClient, person: dict[str, Any]
) -> None:
    """R4 §3.1.1.5.8: the tag is there so that a part never overwrites the whole."""
    path = f"/fhir/Patient/{person['id']}"
    part = client.get(path, params={"_elements": "gender"}).json()
    refused = client.put(path, json=part, headers=FHIR_JSON)
    assert refused.status_code == 422, refused.text
    assert issue(refused)["expression"] == ["Patient.meta.tag"]
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": part, "request": {"method": "PUT", "url": f"Patient/{person['id']}"}}
        ],
    }
    assert client.post("/fhir", json=transaction, headers=FHIR_JSON).status_code == 422
    stored = client.get(path).json()
    assert stored["name"] == person["name"]
    assert stored["meta"]["versionId"] == person["meta"]["versionId"]


def test_a_batch_read_takes_the_subsetting_parameters(
    client: TestClient, person: dict[str, Any]
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{person['id']}?_elements=gender"}}
        ],
    }
    answer = client.post("/fhir", json=batch, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    [entry] = answer.json()["entry"]
    assert entry["resource"]["gender"] == "female"
    assert "name" not in entry["resource"]
    assert SUBSETTED in tags(entry["resource"])


def test_an_element_path_keeps_its_top_level_element() -> None:
    """R4 §3.1.1.5.9 names base elements: `name.family` (or `Patient.name.family`) is `name`."""
    resource = patient(family="Pathed")
    for asked in ("Patient.name.family", "name.family", "name"):
        wanted = requested_subset([("_elements", asked)])
        assert wanted is not None
        assert subset_resource(resource, wanted)["name"] == resource["name"]


def test_contained_resources_stay_as_far_as_what_is_kept_refers_to_them() -> None:
    """R4 ref-1 (a local reference has its target) and dom-3 (no contained resource that
    nothing refers to)."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "mr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationReference": {"reference": "#med"},
        "contained": [
            {"resourceType": "Medication", "id": "med", "manufacturer": {"reference": "#maker"}},
            {"resourceType": "Organization", "id": "maker", "name": "Maker"},
            {"resourceType": "Organization", "id": "unused", "name": "Unused"},
        ],
        "note": [{"text": "with food"}],
    }
    for wanted in (Subset("true"), Subset(None, frozenset({"note"}))):
        cut = subset_resource(order, wanted)
        assert [inner["id"] for inner in cut["contained"]] == ["med", "maker"]
        fhir.validate(cut)
    plain = {**order, "medicationReference": None}
    del plain["medicationReference"]
    plain["medicationCodeableConcept"] = {"text": "buprenorphine"}
    assert "contained" not in subset_resource(plain, Subset("true"))


@pytest.mark.parametrize("handling", ["lenient", "strict"])
def test_history_counts_without_the_versions_in_either_handling(
    client: TestClient, person: dict[str, Any], handling: str
) -> None:
    """R4 §3.1.1.5.8: `_summary=count` returns the count without the matches, on history as
    on a search, whichever handling the client prefers."""
    answer = client.get(
        f"/fhir/Patient/{person['id']}/_history",
        params={"_summary": "count"},
        headers={"Prefer": f"handling={handling}"},
    )
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert (bundle["type"], bundle["total"], "entry" in bundle) == ("history", 1, False)
    assert "_summary=count" in bundle["link"][0]["url"]
