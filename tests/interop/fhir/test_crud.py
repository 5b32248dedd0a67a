"""Create, read, vread, update, delete and history over a real database (R4 §3.1.0)."""

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import MRN, care_plan, patient

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def create(client: TestClient, resource: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**FHIR_JSON, **headers}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    first: dict[str, Any] = body["issue"][0]
    return first


class TestCreate:
    def test_assigns_id_version_and_headers(self, client: TestClient) -> None:
        response = client.post("/fhir/Patient", json=patient(id="client-chosen"), headers=FHIR_JSON)
        assert response.status_code == 201
        body = response.json()
        assert body["id"] != "client-chosen"
        assert body["meta"]["versionId"] == "1"
        assert response.headers["etag"] == 'W/"1"'
        assert (
            response.headers["location"]
            == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
        )
        assert response.headers["content-type"].startswith("application/fhir+json")

    def test_keeps_what_the_client_wrote(self, client: TestClient) -> None:
        written = patient(
            extension=[
                {"url": "http://example.org/fhir/x", "valueDateTime": "2026-01-01T10:00:00.5Z"}
            ]
        )
        body = create(client, written)
        assert body["extension"] == written["extension"]
        assert body["name"] == written["name"]

    def test_conditional_create_does_not_duplicate(self, client: TestClient) -> None:
        criteria = {"If-None-Exist": f"identifier={MRN}|MRN-7"}
        first = client.post(
            "/fhir/Patient", json=patient(mrn="MRN-7"), headers={**FHIR_JSON, **criteria}
        )
        second = client.post(
            "/fhir/Patient", json=patient(mrn="MRN-7"), headers={**FHIR_JSON, **criteria}
        )
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.json()["id"] == first.json()["id"]
        assert (
            client.get("/fhir/Patient", params={"identifier": f"{MRN}|MRN-7"}).json()["total"] == 1
        )

    def test_conditional_create_with_several_matches_is_412(self, client: TestClient) -> None:
        create(client, patient(family="Twin"))
        create(client, patient(family="Twin"))
        response = client.post(
            "/fhir/Patient",
            json=patient(family="Twin"),
            headers={**FHIR_JSON, "If-None-Exist": "family=Twin"},
        )
        assert response.status_code == 412
        assert issue(response)["code"] == "conflict"
        assert client.get("/fhir/Patient", params={"family": "Twin"}).json()["total"] == 2

    def test_body_of_another_type_is_400(self, client: TestClient) -> None:
        response = client.post("/fhir/CarePlan", json=patient(), headers=FHIR_JSON)
        assert response.status_code == 400
        assert "not a CarePlan" in issue(response)["diagnostics"]

    def test_prefer_minimal_returns_no_body(self, client: TestClient) -> None:
        response = client.post(
            "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"}
        )
        assert response.status_code == 201
        assert response.content == b""
        assert response.headers["location"].endswith("/_history/1")


class TestRead:
    def test_read_returns_the_stored_resource(self, client: TestClient) -> None:
        created = create(client, patient())
        response = client.get(f"/fhir/Patient/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created
        assert response.headers["etag"] == 'W/"1"'

    def test_unknown_id_is_404_outcome(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/does-not-exist")
        assert response.status_code == 404
        assert issue(response)["code"] == "not-found"

    def test_unsupported_type_is_404(self, client: TestClient) -> None:
        response = client.get("/fhir/Medication/x")
        assert response.status_code == 404
        assert "not supported" in issue(response)["diagnostics"]

    def test_malformed_id_is_400(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient/bad_id!")
        assert response.status_code == 400
        assert issue(response)["code"] == "invalid"


class TestUpdate:
    def test_update_makes_a_new_version_and_keeps_the_old(self, client: TestClient) -> None:
        created = create(client, patient(family="Before"))
        changed = {**created, "name": [{"family": "After"}]}
        response = client.put(f"/fhir/Patient/{created['id']}", json=changed, headers=FHIR_JSON)
        assert response.status_code == 200
        assert response.json()["meta"]["versionId"] == "2"
        old = client.get(f"/fhir/Patient/{created['id']}/_history/1").json()
        assert old["name"][0]["family"] == "Before"
        assert client.get(f"/fhir/Patient/{created['id']}").json()["name"][0]["family"] == "After"

    def test_stale_if_match_is_412_and_changes_nothing(self, client: TestClient) -> None:
        created = create(client, patient(family="One"))
        url = f"/fhir/Patient/{created['id']}"
        client.put(
            url,
            json={**created, "name": [{"family": "Two"}]},
            headers={**FHIR_JSON, "If-Match": 'W/"1"'},
        )
        stale = client.put(
            url,
            json={**created, "name": [{"family": "Three"}]},
            headers={**FHIR_JSON, "If-Match": 'W/"1"'},
        )
        assert stale.status_code == 412
        assert "current version is 2" in issue(stale)["diagnostics"]
        assert client.get(url).json()["name"][0]["family"] == "Two"

    def test_update_as_create_uses_the_client_id(self, client: TestClient) -> None:
        response = client.put(
            "/fhir/Patient/chosen-1", json=patient(id="chosen-1"), headers=FHIR_JSON
        )
        assert response.status_code == 201
        assert client.get("/fhir/Patient/chosen-1").json()["meta"]["versionId"] == "1"

    @pytest.mark.parametrize("body_id", [None, "other"])
    def test_body_id_must_match_the_url(self, client: TestClient, body_id: str | None) -> None:
        body = patient() if body_id is None else patient(id=body_id)
        response = client.put("/fhir/Patient/chosen-2", json=body, headers=FHIR_JSON)
        assert response.status_code == 400
        assert client.get("/fhir/Patient/chosen-2").status_code == 404


class TestDeleteAndHistory:
    def test_delete_then_read_is_gone_and_history_tells_all(self, client: TestClient) -> None:
        created = create(client, patient())
        url = f"/fhir/Patient/{created['id']}"
        client.put(url, json={**created, "active": True}, headers=FHIR_JSON)
        assert client.delete(url).status_code == 204
        gone = client.get(url)
        assert gone.status_code == 410
        assert issue(gone)["code"] == "deleted"
        history = client.get(f"{url}/_history").json()
        assert history["type"] == "history"
        assert history["total"] == 3
        assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
        assert "resource" not in history["entry"][0]
        assert history["entry"][2]["response"]["etag"] == 'W/"1"'
        assert client.get(f"{url}/_history/3").status_code == 410
        assert client.get("/fhir/Patient", params={"_id": created["id"]}).json()["total"] == 0

    def test_a_stale_if_match_on_delete_is_412_and_deletes_nothing(
        self, client: TestClient
    ) -> None:
        """RFC 9110 §13.1.1 holds for every method: If-Match on DELETE deletes only the
        version the client read (probe 13 #2); with none there is nothing to match."""
        created = create(client, patient(family="Kept"))
        url = f"/fhir/Patient/{created['id']}"
        client.put(url, json={**created, "active": True}, headers=FHIR_JSON)
        stale = client.delete(url, headers={"If-Match": 'W/"1"'})
        assert stale.status_code == 412
        assert "current version is 2" in issue(stale)["diagnostics"]
        assert client.get(url).json()["name"][0]["family"] == "Kept"
        never = client.delete("/fhir/Patient/never-was", headers={"If-Match": 'W/"1"'})
        assert never.status_code == 412
        assert client.delete(url, headers={"If-Match": 'W/"2"'}).status_code == 204
        assert client.get(url).status_code == 410
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {
                        "method": "DELETE",
                        "url": f"Patient/{created['id']}",
                        "ifMatch": 'W/"2"',
                    }
                }
            ],
        }
        assert client.post("/fhir", json=bundle).status_code == 412  # version 3 is the deletion

    def test_if_match_takes_a_list_or_any_version(self, client: TestClient) -> None:
        """RFC 9110 §13.1.1: a list matches when one of its tags does; `*` matches whatever
        version is current, and nothing when there is none."""
        created = create(client, patient(family="Listed"))
        url = f"/fhir/Patient/{created['id']}"
        changed = {**created, "active": True}
        listed = client.put(url, json=changed, headers={**FHIR_JSON, "If-Match": 'W/"7", W/"1"'})
        assert listed.status_code == 200, listed.text
        stale = client.put(url, json=changed, headers={**FHIR_JSON, "If-Match": 'W/"1", W/"3"'})
        assert stale.status_code == 412
        assert "versions 1, 3, but the current version is 2" in issue(stale)["diagnostics"]
        assert (
            client.delete("/fhir/Patient/never-was", headers={"If-Match": "*"}).status_code == 412
        )
        assert client.delete(url, headers={"If-Match": "*"}).status_code == 204
        assert client.get(url).status_code == 410

    def test_deleting_what_does_not_exist_succeeds_in_a_transaction_too(
        self, client: TestClient
    ) -> None:
        """R4 §3.1.0.7: "if the resource does not exist at all", 200 or 204."""
        assert client.delete("/fhir/Patient/never-was").status_code == 204
        made = create(client, patient())
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "DELETE", "url": "Patient/never-was"}},
                {"request": {"method": "DELETE", "url": f"Patient/{made['id']}"}},
            ],
        }
        answer = client.post("/fhir", json=bundle)
        assert answer.status_code == 200, answer.text
        assert [e["response"]["status"] for e in answer.json()["entry"]] == ["204 No Content"] * 2
        assert client.get(f"/fhir/Patient/{made['id']}").status_code == 410

    def test_type_and_system_history(self, client: TestClient) -> None:
        pat = create(client, patient())
        create(client, care_plan(f"Patient/{pat['id']}"))
        type_history = client.get("/fhir/CarePlan/_history").json()
        assert [e["resource"]["resourceType"] for e in type_history["entry"]] == ["CarePlan"]
        system = client.get("/fhir/_history").json()
        newest = [e["resource"]["resourceType"] for e in system["entry"]][:2]
        assert newest == ["CarePlan", "Patient"]

    def test_history_since_excludes_older_versions(self, client: TestClient) -> None:
        created = create(client, patient())
        since = created["meta"]["lastUpdated"]
        url = f"/fhir/Patient/{created['id']}"
        client.put(url, json={**created, "active": False}, headers=FHIR_JSON)
        later = client.get(f"{url}/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
        assert later["total"] == 0
        recent = client.get(f"{url}/_history", params={"_since": since}).json()
        assert recent["total"] == 2

    def test_history_at_gives_the_versions_current_then(self, client: TestClient) -> None:
        """R4 `_at`: the versions current at some moment of the given time (probe 13 #6: it
        was ignored, so `_at=1990` answered every version)."""
        created = create(client, patient(family="First"))
        url = f"/fhir/Patient/{created['id']}"
        first = created["meta"]["lastUpdated"]
        time.sleep(0.01)
        client.put(url, json={**created, "name": [{"family": "Second"}]}, headers=FHIR_JSON)
        assert client.get(f"{url}/_history", params={"_at": "1990"}).json()["total"] == 0
        then = client.get(f"{url}/_history", params={"_at": first}).json()
        assert [e["resource"]["name"][0]["family"] for e in then["entry"]] == ["First"]
        now = client.get(f"{url}/_history", params={"_at": "2999"}).json()
        assert [e["resource"]["name"][0]["family"] for e in now["entry"]] == ["Second"]
        assert client.get("/fhir/Patient/_history", params={"_at": "1990"}).json()["total"] == 0

    def test_an_unknown_history_parameter_is_refused_when_strict(self, client: TestClient) -> None:
        strict = {"Prefer": "handling=strict"}
        refused = client.get("/fhir/_history", params={"bogus": "1"}, headers=strict)
        assert refused.status_code == 400
        assert "bogus" in issue(refused)["diagnostics"]
        assert client.get("/fhir/_history", params={"bogus": "1"}).status_code == 200
        pretty = client.get("/fhir/_history", params={"_pretty": "true"}, headers=strict)
        assert pretty.status_code == 200, pretty.text  # ignored, as a search ignores it


NOT_NUMBERS = ["9223372036854775808", "99999999999999999999999", "²", "٣", "1 ", "-1"]
"""2^63 and past it, Unicode digits Python's int() reads or refuses, and signs."""


@pytest.mark.parametrize("version", NOT_NUMBERS)
def test_a_version_no_server_could_have_is_not_found(client: TestClient, version: str) -> None:
    plan = create(client, patient(family="Versioned"))
    answer = client.get(f"/fhir/Patient/{plan['id']}/_history/{version}")
    assert answer.status_code == 404, answer.text
    assert issue(answer)["code"] == "not-found"


@pytest.mark.parametrize("number", NOT_NUMBERS)
@pytest.mark.parametrize(
    "path",
    ["/fhir/Patient?_count={}", "/fhir/Patient?_offset={}", "/fhir/Patient/_history?_count={}"],
)
def test_a_paging_number_no_database_holds_is_a_client_error(
    client: TestClient, path: str, number: str
) -> None:
    answer = client.get(path.format(number))
    assert answer.status_code == 400, answer.text
    assert issue(answer)["code"] == "invalid"


def test_an_everything_cursor_no_database_holds_is_a_client_error(client: TestClient) -> None:
    person = create(client, patient(family="Cursor"))
    answer = client.get(
        f"/fhir/Patient/{person['id']}/$everything", params={"_cursor": f"0.{2**63}"}
    )
    assert answer.status_code == 400, answer.text
    assert "_cursor" in issue(answer)["diagnostics"]


@pytest.mark.parametrize("mode", ["xyz", "COUNT", ""])
def test_a_summary_mode_r4_does_not_define_is_refused(client: TestClient, mode: str) -> None:
    answer = client.get("/fhir/Patient", params={"_summary": mode})
    assert answer.status_code == 400, answer.text
    assert "_summary must be one of" in issue(answer)["diagnostics"]


def test_summary_false_is_every_element_and_count_only_the_total(client: TestClient) -> None:
    create(client, patient(family="Summarized"))
    full = client.get("/fhir/Patient", params={"family": "Summarized", "_summary": "false"})
    assert full.status_code == 200, full.text
    assert full.json()["entry"][0]["resource"]["name"][0]["family"] == "Summarized"
    counted = client.get("/fhir/Patient", params={"family": "Summarized", "_summary": "count"})
    assert counted.json()["total"] == 1
    assert "entry" not in counted.json()
