"""Conditional update, PUT [type]?[criteria] (R4 §3.1.0.4.3), alone and in a transaction: how a
partner resends a referral without doubling it."""

from concurrent.futures import ThreadPoolExecutor
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


def test_if_match_holds_for_a_conditional_update(client: TestClient) -> None:
    """R4 §3.1.0.5: a stale If-Match is 412 whether the update names its id or criteria."""
    unmatched = client.put(
        f"/fhir/Patient?{KEY}", json=person("Lark"), headers={**FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert unmatched.status_code == 412, unmatched.text
    assert unmatched.json()["issue"][0]["diagnostics"] == (
        "If-Match names version 1, but there is none"
    )
    assert client.get("/fhir/Patient", params={"family": "Lark"}).json()["total"] == 0
    created = client.put(f"/fhir/Patient?{KEY}", json=person("Lark"), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    stale = client.put(
        f"/fhir/Patient?{KEY}", json=person("Stale"), headers={**FHIR_JSON, "If-Match": 'W/"9"'}
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["issue"][0]["diagnostics"] == (
        "If-Match names version 9, but the current version is 1"
    )
    current = client.put(
        f"/fhir/Patient?{KEY}", json=person("Larkin"), headers={**FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert current.status_code == 200, current.text
    assert current.json()["meta"]["versionId"] == "2"
    assert current.json()["name"][0]["family"] == "Larkin"


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


def test_concurrent_transactions_with_the_same_criteria_create_one(client: TestClient) -> None:
    """Two dispatchers pushing referrals of one client at once (tests/e2e/test_three_instances.py
    on PostgreSQL): the second transaction waits for the first and updates what it created,
    rather than creating a twin that makes every later resend a 412."""

    def push(family: str) -> int:
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": IDENTIFIER["value"],
                    "resource": person(family),
                    "request": {"method": "PUT", "url": f"Patient?{KEY}"},
                }
            ],
        }
        return client.post("/fhir", json=transaction, headers=FHIR_JSON).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(push, [f"Lark{n}" for n in range(12)]))
    assert statuses == [200] * 12
    bundle = client.get(
        "/fhir/Patient", params={"identifier": IDENTIFIER["system"] + "|" + IDENTIFIER["value"]}
    ).json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["meta"]["versionId"] == "12"


def test_concurrent_rest_conditional_writes_create_one(client: TestClient) -> None:
    """The same race over REST: conditional PUTs and If-None-Exist POSTs with one identifier,
    at once, leave one Patient (on PostgreSQL the criteria are locked before the read)."""

    def put(family: str) -> int:
        return client.put(
            f"/fhir/Patient?{KEY}", json=person(family), headers=FHIR_JSON
        ).status_code

    def post(family: str) -> int:
        headers = {**FHIR_JSON, "If-None-Exist": KEY}
        return client.post("/fhir/Patient", json=person(family), headers=headers).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        puts = pool.map(put, [f"Wren{n}" for n in range(6)])
        posts = pool.map(post, [f"Wren{n}" for n in range(6)])
        statuses = sorted([*puts, *posts])
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201}, statuses
    bundle = client.get(
        "/fhir/Patient", params={"identifier": IDENTIFIER["system"] + "|" + IDENTIFIER["value"]}
    ).json()
    assert bundle["total"] == 1
