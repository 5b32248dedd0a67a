"""$everything and $export invoked by POST with a Parameters body (R4 operations.html:
"Servers SHALL support POST method for all operations"; Bulk Data IG v2 POST kick-off)."""

from typing import Any

from fastapi.testclient import TestClient

from tests.interop.export.conftest import ASYNC, World, as_, finished

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def parameters(**values: str) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, "valueString": value} for name, value in values.items()],
    }


def kinds(bundle: dict[str, Any]) -> list[str]:
    return sorted({entry["resource"]["resourceType"] for entry in bundle.get("entry", [])})


def test_everything_by_post_answers_as_by_get(anonymous: TestClient, world: World) -> None:
    headers = as_(anonymous, world.a)
    url = f"/fhir/{world.client_ref}/$everything"
    by_get = anonymous.get(url, params={"_type": "CarePlan"}, headers=headers).json()
    by_post = anonymous.post(
        url, json=parameters(_type="CarePlan"), headers={**headers, **FHIR_JSON}
    )
    assert by_post.status_code == 200, by_post.text
    assert kinds(by_post.json()) == kinds(by_get) == ["CarePlan"]
    assert [e["fullUrl"] for e in by_post.json()["entry"]] == [
        e["fullUrl"] for e in by_get["entry"]
    ]
    empty = anonymous.post(url, headers=headers)
    assert empty.status_code == 200, empty.text
    assert "Patient" in kinds(empty.json())


def test_everything_by_post_refuses_a_body_that_is_no_parameters(
    anonymous: TestClient, world: World
) -> None:
    headers = {**as_(anonymous, world.a), **FHIR_JSON}
    url = f"/fhir/{world.client_ref}/$everything"
    answer = anonymous.post(
        url, json={"resourceType": "Basic", "code": {"text": "x"}}, headers=headers
    )
    assert answer.status_code == 400, answer.text
    assert "Parameters resource" in answer.json()["issue"][0]["diagnostics"]
    nested = {"resourceType": "Parameters", "parameter": [{"name": "_type", "part": []}]}
    answer = anonymous.post(url, json=nested, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["issue"][0]["expression"] == ["Parameters.parameter[0]"]


def test_a_withheld_patient_is_unknown_by_post_too(anonymous: TestClient, world: World) -> None:
    headers = {**as_(anonymous, world.b), **FHIR_JSON}
    answer = anonymous.post(
        f"/fhir/{world.client_ref}/$everything", json=parameters(), headers=headers
    )
    assert answer.status_code == 404, answer.text


def test_an_export_kicked_off_by_post_takes_its_parameters_from_the_body(
    anonymous: TestClient, world: World
) -> None:
    headers = as_(anonymous, world.a)
    kicked = anonymous.post(
        "/fhir/Patient/$export",
        json=parameters(_type="CarePlan"),
        headers={**ASYNC, **FHIR_JSON, **headers},
    )
    assert kicked.status_code == 202, kicked.text
    manifest = finished(anonymous, kicked.headers["Content-Location"], headers)
    assert [item["type"] for item in manifest["output"]] == ["CarePlan"]
    assert manifest["request"] == "http://testserver/fhir/Patient/$export"


def test_everything_for_all_patients_says_what_to_ask_instead(
    anonymous: TestClient, world: World
) -> None:
    answer = anonymous.get("/fhir/Patient/$everything", headers=as_(anonymous, world.a))
    assert answer.status_code == 400, answer.text
    [issue] = answer.json()["issue"]
    assert issue["code"] == "not-supported"
    assert "Patient/$export" in issue["diagnostics"]
