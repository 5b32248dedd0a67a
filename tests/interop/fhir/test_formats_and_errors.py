"""JSON and XML both ways, and every error as an OperationOutcome with the right status."""

from fastapi.testclient import TestClient
from lxml import etree

from mappings import fhir
from tests.builders import patient
from tests.interop.fhir.test_crud import FHIR_JSON, create, issue

FHIR_NS = "{http://hl7.org/fhir}"
PATIENT_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier>
    <system value="urn:oid:2.16.840.1.113883.3.9999.2"/><value value="MRN-X"/>
  </identifier>
  <name><family value="Xmlperson"/><given value="Robin"/><given value="Lee"/></name>
  <gender value="female"/>
  <birthDate value="1979-03-02"/>
</Patient>"""


class TestXml:
    def test_xml_in_json_out_and_xml_out(self, client: TestClient) -> None:
        response = client.post(
            "/fhir/Patient", content=PATIENT_XML, headers={"Content-Type": "application/fhir+xml"}
        )
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        created = response.json()
        assert created["name"][0]["given"] == ["Robin", "Lee"]
        as_xml = client.get(f"/fhir/Patient/{created['id']}", params={"_format": "xml"})
        assert as_xml.headers["content-type"].startswith("application/fhir+xml")
        root = etree.fromstring(as_xml.content)
        assert root.tag == f"{FHIR_NS}Patient"
        assert [g.get("value") for g in root.iter(f"{FHIR_NS}given")] == ["Robin", "Lee"]
        assert root.find(f"{FHIR_NS}meta/{FHIR_NS}versionId").get("value") == "1"

    def test_accept_header_chooses_xml_for_bundles_and_errors(self, client: TestClient) -> None:
        create(client, patient())
        bundle = client.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"})
        assert etree.fromstring(bundle.content).tag == f"{FHIR_NS}Bundle"
        missing = client.get("/fhir/Patient/nope", headers={"Accept": "application/fhir+xml"})
        assert missing.status_code == 404
        assert etree.fromstring(missing.content).tag == f"{FHIR_NS}OperationOutcome"

    def test_doctype_is_refused(self, client: TestClient) -> None:
        evil = (
            b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>'
        )
        response = client.post(
            "/fhir/Patient", content=evil, headers={"Content-Type": "application/fhir+xml"}
        )
        assert response.status_code == 400
        assert "root:" not in response.text
        assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 0


class TestErrors:
    def test_unparseable_json_is_400(self, client: TestClient) -> None:
        response = client.post(
            "/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR_JSON
        )
        assert response.status_code == 400
        assert issue(response)["severity"] in ("error", "fatal")

    def test_invalid_resource_is_422_naming_the_element(self, client: TestClient) -> None:
        response = client.post(
            "/fhir/Patient", json={**patient(), "birthDate": "not a date"}, headers=FHIR_JSON
        )
        assert response.status_code == 422
        assert issue(response)["expression"] == ["Patient.birthDate"]

    def test_wrong_code_in_a_required_binding_is_422(self, client: TestClient) -> None:
        plan = {
            "resourceType": "CarePlan",
            "status": "bogus",
            "intent": "plan",
            "subject": {"reference": "Patient/x"},
        }
        response = client.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON)
        assert response.status_code == 422
        assert issue(response)["expression"] == ["CarePlan.status"]

    def test_unsupported_content_type_is_415(self, client: TestClient) -> None:
        response = client.post(
            "/fhir/Patient", content=b"name=x", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 415
        assert issue(response)["code"] == "not-supported"

    def test_unacceptable_accept_is_406(self, client: TestClient) -> None:
        response = client.get("/fhir/metadata", headers={"Accept": "application/pdf"})
        assert response.status_code == 406
        assert issue(response)["code"] == "not-supported"

    def test_another_fhir_version_is_406_or_415_and_r4_is_served(self, client: TestClient) -> None:
        """R4 §3.1.0.1.4: the fhirVersion parameter of the media type names the version."""
        for accept in (
            "application/fhir+json; fhirVersion=3.0",
            "application/fhir+json; FHIRVERSION=3.0",
            "text/html, application/fhir+json;fhirVersion=3.0",
        ):
            refused = client.get("/fhir/metadata", headers={"Accept": accept})
            assert refused.status_code == 406, (accept, refused.text)
            assert issue(refused)["code"] == "not-supported"
        stu3 = {"_format": "application/fhir+json;fhirVersion=3.0"}
        assert client.get("/fhir/metadata", params=stu3).status_code == 406
        r4 = client.get(
            "/fhir/metadata", headers={"Accept": "application/fhir+json; fhirVersion=4.0"}
        )
        assert r4.status_code == 200
        assert r4.json()["fhirVersion"] == "4.0.1"
        body = b'{"resourceType": "Patient"}'
        sent = {"Content-Type": "application/fhir+json; FhirVersion=3.0"}
        unread = client.post("/fhir/Patient", content=body, headers=sent)
        assert unread.status_code == 415, unread.text
        assert "fhirVersion=4.0" in issue(unread)["diagnostics"]

    def test_unsupported_method_is_405_outcome(self, client: TestClient) -> None:
        response = client.patch(
            "/fhir/Patient/x",
            content=b"[]",
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert response.status_code == 405
        assert issue(response)["code"] == "not-supported"
        # RFC 9110 §15.5.6: every method the resource takes, not only the first route's
        assert response.headers["Allow"] == "DELETE, GET, PUT"

    def test_non_fhir_routes_answer_problem_details(self, client: TestClient) -> None:
        response = client.get("/nowhere")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


class TestCapabilityStatement:
    def test_lists_only_what_works(self, client: TestClient) -> None:
        statement = client.get("/fhir/metadata").json()
        assert statement["resourceType"] == "CapabilityStatement"
        assert statement["fhirVersion"] == "4.0.1"
        assert statement["implementation"]["url"] == "http://testserver/fhir"
        assert set(statement["format"]) == {"application/fhir+json", "application/fhir+xml"}
        rest = statement["rest"][0]
        for resource in rest["resource"]:
            for param in resource["searchParam"]:
                response = client.get(
                    f"/fhir/{resource['type']}",
                    params={f"{param['name']}:missing": "false"}
                    if not param["name"].startswith("_")
                    else {"_id": "x"},
                    headers={"Prefer": "handling=strict"},
                )
                assert response.status_code == 200, (resource["type"], param["name"], response.text)
        care_plan = next(r for r in rest["resource"] if r["type"] == "CarePlan")
        names = {p["name"] for p in care_plan["searchParam"]}
        assert {"patient", "subject", "status", "category", "date", "activity-reference"} <= names

    def test_says_how_to_authenticate_and_where_each_operation_is(self, client: TestClient) -> None:
        """SMART App Launch: rest.security names SMART-on-FHIR and the token endpoint, and
        $validate is listed on the types it is served at (POST /fhir/{type}/$validate)."""
        [rest] = client.get("/fhir/metadata").json()["rest"]
        [service] = rest["security"]["service"]
        assert service["coding"][0]["code"] == "SMART-on-FHIR"
        [uris] = rest["security"]["extension"]
        assert uris["extension"] == [{"url": "token", "valueUri": "http://testserver/auth/token"}]
        assert [op["name"] for op in rest["operation"]] == ["export"]
        for resource in rest["resource"]:
            assert "validate" in [op["name"] for op in resource["operation"]], resource["type"]
        body = {"resourceType": "Patient", "gender": "female"}
        checked = client.post("/fhir/Patient/$validate", json=body)
        assert checked.status_code == 200, checked.text
        wrong = {"resourceType": "Patient", "gender": "nonbinary"}
        for form in (
            wrong,
            {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": wrong}]},
        ):
            answer = client.post("/fhir/Patient/$validate", json=form)
            assert answer.status_code == 200, answer.text
            assert any(i["code"] == "code-invalid" for i in answer.json()["issue"]), answer.text
        update = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "mode", "valueCode": "update"},
                {"name": "resource", "resource": body},
            ],
        }
        assert client.post("/fhir/Patient/$validate", json=update).status_code == 400
        for mode in ("update", "bogus"):  # a resource posted as itself: mode in the URL
            in_url = client.post("/fhir/Patient/$validate", params={"mode": mode}, json=body)
            assert in_url.status_code == 400, in_url.text
            assert "not offered" in in_url.json()["issue"][0]["diagnostics"]
        created = client.post("/fhir/Patient/$validate", params={"mode": "create"}, json=body)
        assert created.status_code == 200
        odd = {"resourceType": "Parameters", "parameter": 5}
        assert client.post("/fhir/Patient/$validate", json=odd).status_code == 400
        fhir.validate(client.get("/fhir/metadata").json())  # raises on what R4 refuses
