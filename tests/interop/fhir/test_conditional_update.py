"""Conditional update, PUT [type]?[criteria] (R4 §3.1.0.4.3), alone and in a transaction: how a
partner resends a referral without doubling it."""

from typing import Any

from fastapi.testclient import TestClient

from tests.builders import patient

FHIR_JSON = {"Content-Type": "application/fhir+json"}
KEY = "identifier=urn:ietf:rfc:3986|https://partner.example.org/fhir/Patient/7"
IDENTIFIER = {"system": "urn:ietf:rfc:3986", "value": "https://partner.example.org/fhir/Patient/7"}


def person(family: str) -> dict[str, Any]:
    return {**patient(family=family), "identifier": [IDENTIFIER]}


def test_no_match_creates_one_match_updates(client: TestClient) -> None:
    created = client.put(f"/fhir/Patient?{KEY}", json=person("Lark"), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    ident = created.json()["id"]
    updated = client.put(f"/fhir/Patient?{KEY}", json=person("Larkin"), headers=FHIR_JSON)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["id"], updated.json()["meta"]["versionId"]) == (ident, "2")
    bundle = client.get(
        "/fhir/Patient", params={"identifier": IDENTIFIER["system"] + "|" + IDENTIFIER["value"]}
    ).json()
    assert [entry["resource"]["name"][0]["family"] for entry in bundle["entry"]] == ["Larkin"]


def test_several_matches_a_foreign_id_and_no_criteria_are_refused(client: TestClient) -> None:
    for _ in range(2):
        client.post("/fhir/Patient", json=person("Twin"), headers=FHIR_JSON)
    several = client.put(f"/fhir/Patient?{KEY}", json=person("Twin"), headers=FHIR_JSON)
    assert several.status_code == 412
    assert "more than one" in several.json()["issue"][0]["diagnostics"]
    bare = client.put("/fhir/Patient", json=person("Twin"), headers=FHIR_JSON)
    assert bare.status_code == 400
    assert bare.json()["issue"][0]["diagnostics"] == "a conditional update needs search criteria"


def test_a_body_id_must_name_the_match_and_cannot_create(client: TestClient) -> None:
    unmatched = client.put(
        f"/fhir/Patient?{KEY}", json={**person("Lark"), "id": "chosen"}, headers=FHIR_JSON
    )
    assert unmatched.status_code == 400
    assert "leave the id out" in unmatched.json()["issue"][0]["diagnostics"]
    client.put(f"/fhir/Patient?{KEY}", json=person("Lark"), headers=FHIR_JSON)
    other = client.put(
        f"/fhir/Patient?{KEY}", json={**person("Lark"), "id": "someone-else"}, headers=FHIR_JSON
    )
    assert other.status_code == 400


def test_in_a_transaction_a_resend_updates_and_references_resolve(client: TestClient) -> None:
    def bundle(family: str) -> dict[str, Any]:
        full_url = IDENTIFIER["value"]
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": full_url,
                    "resource": person(family),
                    "request": {"method": "PUT", "url": f"Patient?{KEY}"},
                },
                {
                    "resource": {
                        "resourceType": "Goal",
                        "lifecycleStatus": "active",
                        "description": {"text": "Stable housing"},
                        "subject": {"reference": full_url},
                        "identifier": [{"system": "urn:x", "value": "goal-1"}],
                    },
                    "request": {"method": "PUT", "url": "Goal?identifier=urn:x|goal-1"},
                },
            ],
        }

    first = client.post("/fhir", json=bundle("Lark"), headers=FHIR_JSON)
    assert first.status_code == 200, first.text
    statuses = [entry["response"]["status"] for entry in first.json()["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    again = client.post("/fhir", json=bundle("Larkin"), headers=FHIR_JSON).json()
    assert [entry["response"]["status"] for entry in again["entry"]] == ["200 OK", "200 OK"]
    [goal] = [e["resource"] for e in client.get("/fhir/Goal").json()["entry"]]
    [person_id] = [e["resource"]["id"] for e in client.get("/fhir/Patient").json()["entry"]]
    assert goal["subject"]["reference"] == f"Patient/{person_id}"
