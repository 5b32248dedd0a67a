"""Transaction and batch Bundles (R4 §3.1.0.11): all or nothing, urn:uuid references resolved."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.resources import ResourceOperations
from mappings import fhir
from tests.builders import MRN, care_plan, patient, service_request, task
from tests.conftest import RegisteredPartner
from tests.interop.fhir.test_crud import FHIR_JSON, create

PATIENT_URN = "urn:uuid:6f2b6c8e-2f55-4d1c-9b8e-7a1a0c7d0001"
REFERRAL_URN = "urn:uuid:6f2b6c8e-2f55-4d1c-9b8e-7a1a0c7d0002"


def post(client: TestClient, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", json=bundle, headers=FHIR_JSON)


def plan_for(patient_reference: str, kind: str = "transaction") -> dict[str, Any]:
    """A Bundle of one entry: a CarePlan for `patient_reference`, posted."""
    entry = {
        "resource": care_plan(patient_reference),
        "request": {"method": "POST", "url": "CarePlan"},
    }
    return {"resourceType": "Bundle", "type": kind, "entry": [entry]}


def referral_transaction(requester: str, task_status: str = "requested") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": REFERRAL_URN,
                "resource": service_request(PATIENT_URN, requester=requester),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": task(
                    REFERRAL_URN, PATIENT_URN, status=task_status, requester=requester
                ),
                "request": {"method": "POST", "url": "Task"},
            },
            {
                "fullUrl": PATIENT_URN,
                "resource": patient(mrn="MRN-T"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|MRN-T",
                },
            },
        ],
    }


def total(client: TestClient, resource_type: str) -> int:
    count: int = client.get(f"/fhir/{resource_type}", params={"_summary": "count"}).json()["total"]
    return count


class TestTransaction:
    def test_urn_uuid_references_become_server_ids(
        self, client: TestClient, harness: RegisteredPartner
    ) -> None:
        response = post(client, referral_transaction(harness.organization))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in body["entry"]]
        assert statuses == ["201 Created"] * 3
        locations = [e["response"]["location"] for e in body["entry"]]
        referral_id = locations[0].split("/")[1]
        patient_id = locations[2].split("/")[1]
        stored_task = client.get(f"/fhir/{locations[1].rsplit('/_history', 1)[0]}").json()
        assert stored_task["focus"]["reference"] == f"ServiceRequest/{referral_id}"
        assert stored_task["for"]["reference"] == f"Patient/{patient_id}"
        found = client.get("/fhir/Task", params={"patient": f"Patient/{patient_id}"}).json()
        assert found["total"] == 1

    def test_conditional_create_inside_a_transaction_links_to_the_existing(
        self, client: TestClient, harness: RegisteredPartner
    ) -> None:
        existing = create(client, patient(mrn="MRN-T"))
        body = post(client, referral_transaction(harness.organization)).json()
        assert body["entry"][2]["response"]["status"] == "200 OK"
        assert total(client, "Patient") == 1
        referral = client.get("/fhir/ServiceRequest").json()["entry"][0]["resource"]
        assert referral["subject"]["reference"] == f"Patient/{existing['id']}"

    def test_a_failing_entry_leaves_the_store_as_it_was(
        self, client: TestClient, harness: RegisteredPartner
    ) -> None:
        history_before = client.get("/fhir/_history").json()["total"]
        response = post(client, referral_transaction(harness.organization, task_status="bogus"))
        assert response.status_code == 422
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[1]")
        assert (
            total(client, "Patient"),
            total(client, "ServiceRequest"),
            total(client, "Task"),
        ) == (0, 0, 0)
        assert client.get("/fhir/_history").json()["total"] == history_before

    def test_unresolved_urn_is_refused(self, client: TestClient) -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": care_plan("urn:uuid:0000"),
                    "request": {"method": "POST", "url": "CarePlan"},
                }
            ],
        }
        response = post(client, bundle)
        assert response.status_code == 400
        assert "matches no entry" in response.json()["issue"][0]["diagnostics"]
        assert total(client, "CarePlan") == 0

    def test_a_conditional_reference_resolves_to_its_one_match(self, client: TestClient) -> None:
        """R4 §3.1.0.11.3: `Patient?identifier=...` becomes the match's `Patient/id` (probe 13
        #3: it was stored as written, so the plan belonged to no patient)."""
        person = create(client, patient(mrn="MRN-COND"))
        bundle = plan_for(f"Patient?identifier={MRN}|MRN-COND")
        response = post(client, bundle)
        assert response.status_code == 200, response.text
        found = client.get("/fhir/CarePlan", params={"patient": f"Patient/{person['id']}"}).json()
        assert found["total"] == 1
        assert found["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{person['id']}"

    @pytest.mark.parametrize("people", [0, 2])
    def test_a_conditional_reference_with_no_or_several_matches_fails_the_transaction(
        self, client: TestClient, people: int
    ) -> None:
        for _ in range(people):
            create(client, patient(mrn="MRN-TWICE"))
        bundle = plan_for(f"Patient?identifier={MRN}|MRN-TWICE")
        response = post(client, bundle)
        assert response.status_code == 412, response.text
        diagnostics = response.json()["issue"][0]["diagnostics"]
        assert ("more than one" if people else "matches nothing") in diagnostics
        assert total(client, "CarePlan") == 0

    def test_a_conditional_reference_needs_criteria_and_a_transaction(
        self, client: TestClient
    ) -> None:
        """`Patient?_format=json` names no one: 400, not the one Patient there is (review 11
        #9). Outside a transaction nothing resolves it, so a write carrying one is refused."""
        create(client, patient(mrn="MRN-ONLY"))
        unnamed = plan_for("Patient?_format=json")
        answer = post(client, unnamed)
        assert answer.status_code == 400, answer.text
        assert "has no criteria" in answer.json()["issue"][0]["diagnostics"]
        plain = client.post(
            "/fhir/CarePlan",
            json=care_plan(f"Patient?identifier={MRN}|MRN-ONLY"),
            headers=FHIR_JSON,
        )
        assert plain.status_code == 400, plain.text
        assert "only in a transaction" in plain.json()["issue"][0]["diagnostics"]
        batch = plan_for(f"Patient?identifier={MRN}|MRN-ONLY", "batch")
        [entry] = post(client, batch).json()["entry"]
        assert entry["response"]["status"].startswith("400")
        assert total(client, "CarePlan") == 0

    def test_update_delete_and_read_in_one_transaction(self, client: TestClient) -> None:
        keep = create(client, patient(family="Keep"))
        drop = create(client, patient(family="Drop", mrn="MRN-D"))
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "GET", "url": "Patient?family=keep"}},
                {
                    "resource": {**keep, "active": False},
                    "request": {
                        "method": "PUT",
                        "url": f"Patient/{keep['id']}",
                        "ifMatch": 'W/"1"',
                    },
                },
                {"request": {"method": "DELETE", "url": f"Patient/{drop['id']}"}},
            ],
        }
        body = post(client, bundle).json()
        assert [e["response"]["status"] for e in body["entry"]] == [
            "200 OK",
            "200 OK",
            "204 No Content",
        ]
        assert (
            body["entry"][0]["resource"]["entry"][0]["resource"]["active"] is False
        )  # GET runs last
        assert client.get(f"/fhir/Patient/{drop['id']}").status_code == 410

    def test_stale_if_match_rolls_back_everything(self, client: TestClient) -> None:
        keep = create(client, patient(family="Keep"))
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": patient(family="New", mrn="MRN-N"),
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": keep,
                    "request": {
                        "method": "PUT",
                        "url": f"Patient/{keep['id']}",
                        "ifMatch": 'W/"9"',
                    },
                },
            ],
        }
        response = post(client, bundle)
        assert response.status_code == 412
        assert total(client, "Patient") == 1


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_two_entries_with_one_full_url_are_refused_whole(client: TestClient, kind: str) -> None:
    """R4 bdl-7: a reference to the fullUrl would name either entry."""
    same = "urn:uuid:22222222-2222-4222-8222-222222222222"
    entries = [
        {
            "fullUrl": same,
            "resource": patient(mrn=f"MRN-D{n}"),
            "request": {"method": "POST", "url": "Patient"},
        }
        for n in (1, 2)
    ]
    response = post(client, {"resourceType": "Bundle", "type": kind, "entry": entries})
    assert response.status_code == 400, response.text
    assert "bdl-7" in response.json()["issue"][0]["diagnostics"]
    assert total(client, "Patient") == 0


@pytest.mark.parametrize(
    ("full_url", "said"),
    [
        ("http://x/Patient/2", "must end with the resource's id 'p1'"),
        ("http://x/Observation/p1", "must name the resource's type 'Patient', not Observation"),
    ],
)
def test_a_restful_full_url_disagreeing_with_its_resource_is_refused(
    client: TestClient, full_url: str, said: str
) -> None:
    """R4 Bundle.entry.fullUrl: a fullUrl that looks like a RESTful server URL ends with its
    resource's type and id. `$validate` says so of entry 0, and a transaction or batch
    carrying such an entry is refused whole, naming it, with nothing written."""
    resource = {**patient(mrn="MRN-FU"), "id": "p1"}
    entry = {"fullUrl": full_url, "resource": resource}
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [entry]}
    checked = client.post("/fhir/Bundle/$validate", json=collection, headers=FHIR_JSON)
    assert checked.status_code == 200, checked.text
    [problem] = [i for i in checked.json()["issue"] if i["severity"] == "error"]
    assert (problem["code"], problem["expression"]) == ("value", ["Bundle.entry[0]"])
    assert said in problem["diagnostics"]
    for kind, method, url in (("transaction", "PUT", "Patient/p1"), ("batch", "POST", "Patient")):
        written = {**entry, "request": {"method": method, "url": url}}
        answer = post(client, {"resourceType": "Bundle", "type": kind, "entry": [written]})
        assert answer.status_code == 400, answer.text
        [issue] = answer.json()["issue"]
        assert issue["expression"] == ["Bundle.entry[0]"]
        assert issue["diagnostics"].startswith("entry 0: ")
        assert said in issue["diagnostics"]
    assert total(client, "Patient") == 0


def test_the_services_own_bundles_keep_their_full_urls_to_their_resources(
    client: TestClient,
) -> None:
    """What the service answers with (a transaction's response, a search, a history) is
    valid to a validating receiver, the fullUrl rule included; a fullUrl that is no RESTful
    URL, or an entry without a resource id, is not held to it."""
    person = create(client, patient(mrn="MRN-OWN"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "http://x/Patient/any",
                "resource": patient(mrn="MRN-NEW"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:oid:1.2.3.4",
                "resource": {**person, "gender": "male"},
                "request": {"method": "PUT", "url": f"Patient/{person['id']}"},
            },
        ],
    }
    answer = post(client, bundle)
    assert answer.status_code == 200, answer.text
    for served in (
        answer.json(),
        client.get("/fhir/Patient").json(),
        client.get("/fhir/Patient/_history").json(),
        client.get("/fhir/_history").json(),
    ):
        assert served.get("entry"), served
        fhir.validate(served)


class TestBatch:
    def test_each_entry_succeeds_or_fails_on_its_own(self, client: TestClient) -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": patient(mrn="MRN-B1"),
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {**patient(), "gender": "sometimes"},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {"request": {"method": "GET", "url": "Patient/unknown"}},
                {"request": {"method": "GET", "url": "Patient?identifier=MRN-B1"}},
            ],
        }
        response = post(client, bundle)
        assert response.status_code == 200
        entries = response.json()["entry"]
        assert [e["response"]["status"] for e in entries] == [
            "201 Created",
            "422 Unprocessable Content",
            "404 Not Found",
            "200 OK",
        ]
        assert entries[1]["response"]["outcome"]["issue"][0]["expression"] == ["Patient.gender"]
        assert entries[3]["resource"]["total"] == 1
        assert total(client, "Patient") == 1

    def test_a_server_fault_in_one_entry_is_that_entrys_500_and_the_rest_answer(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The entries before the fault stay written, so the client must be told they were:
        a 500 for the whole batch would have it send them again (R4 §3.1.0.11.1)."""
        reads = ResourceOperations.read

        def faulty(self: ResourceOperations, resource_type: str, resource_id: str) -> Any:
            if resource_id == "faulty":
                raise RuntimeError("Jordan Rivers, MRN-0001")  # text that must not be logged
            return reads(self, resource_type, resource_id)

        monkeypatch.setattr(ResourceOperations, "read", faulty)
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": patient(mrn="MRN-B3"),
                    "request": {"method": "POST", "url": "Patient"},
                },
                {"request": {"method": "GET", "url": "Patient/faulty"}},
                {
                    "resource": patient(mrn="MRN-B4"),
                    "request": {"method": "POST", "url": "Patient"},
                },
            ],
        }
        response = post(client, bundle)
        assert response.status_code == 200, response.text
        entries = response.json()["entry"]
        assert [e["response"]["status"] for e in entries] == [
            "201 Created",
            "500 Internal Server Error",
            "201 Created",
        ]
        issue = entries[1]["response"]["outcome"]["issue"][0]
        assert issue["code"] == "exception"
        assert "Jordan" not in str(entries[1])
        assert total(client, "Patient") == 2

    def test_if_none_exist_holds_in_a_batch(self, client: TestClient) -> None:
        """R4 §3.1.0.11: each batch entry is processed as its own interaction, so a
        conditional create in a batch creates nothing when the criteria match."""
        create(client, patient(mrn="MRN-B2"))
        entry = {
            "resource": patient(mrn="MRN-B2"),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=MRN-B2"},
        }
        response = post(client, {"resourceType": "Bundle", "type": "batch", "entry": [entry]})
        assert response.status_code == 200, response.text
        assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK"]
        assert total(client, "Patient") == 1

    def test_other_bundle_types_are_refused(self, client: TestClient) -> None:
        response = post(client, {"resourceType": "Bundle", "type": "collection"})
        assert response.status_code == 400
