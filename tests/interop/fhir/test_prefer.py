"""Several Prefer header lines mean what one comma-separated line does (RFC 7240 §2)."""

from fastapi.testclient import TestClient

from tests.builders import patient
from tests.interop.fhir.test_crud import FHIR_JSON, issue


def test_strict_handling_on_a_second_prefer_line_refuses_an_unknown_parameter(
    client: TestClient,
) -> None:
    answer = client.get(
        "/fhir/Patient",
        params={"shoe_size": "42"},
        headers=[("Prefer", "return=minimal"), ("Prefer", "handling=strict")],
    )
    assert answer.status_code == 400, answer.text
    assert "shoe_size" in issue(answer)["diagnostics"]


def test_return_minimal_on_a_second_prefer_line_leaves_the_body_out(client: TestClient) -> None:
    answer = client.post(
        "/fhir/Patient",
        json=patient(family="Minimal"),
        headers=[*FHIR_JSON.items(), ("Prefer", "handling=lenient"), ("Prefer", "return=minimal")],
    )
    assert answer.status_code == 201, answer.text
    assert answer.content == b""
    assert answer.headers["location"].startswith("http://testserver/fhir/Patient/")


def test_an_export_kick_off_reads_respond_async_on_any_prefer_line(client: TestClient) -> None:
    for lines in (["respond-async", "handling=lenient"], ["handling=lenient", "respond-async"]):
        answer = client.get(
            "/fhir/$export",
            params={"unknown": "x"},
            headers=[("Accept", "application/fhir+json"), *(("Prefer", v) for v in lines)],
        )
        assert answer.status_code == 202, answer.text
        assert "/fhir/$export-status/" in answer.headers["content-location"]


def test_of_a_preference_given_twice_the_first_counts(client: TestClient) -> None:
    """RFC 7240 §2: "only the first instance is to be considered"."""
    written = client.post(
        "/fhir/Patient",
        json=patient(family="FirstWins"),
        headers=[
            *FHIR_JSON.items(),
            ("Prefer", "return=representation"),
            ("Prefer", "return=minimal"),
        ],
    )
    assert written.status_code == 201, written.text
    assert written.json()["name"][0]["family"] == "FirstWins"
    lenient = client.get(
        "/fhir/Patient",
        params={"shoe_size": "42"},
        headers={"Prefer": "handling=lenient, handling=strict"},
    )
    assert lenient.status_code == 200, lenient.text
    assert lenient.json()["entry"][-1]["search"]["mode"] == "outcome"


def test_a_quoted_value_means_what_the_token_does(client: TestClient) -> None:
    """RFC 7240 §2: a value is a token or a quoted-string (`return="minimal"` is
    `return=minimal`), around "=" may be blanks, and names compare case-insensitively."""
    minimal = client.post(
        "/fhir/Patient",
        json=patient(family="Quoted"),
        headers={**FHIR_JSON, "Prefer": 'return="minimal"'},
    )
    assert minimal.status_code == 201, minimal.text
    assert minimal.content == b""
    assert minimal.headers["location"].startswith("http://testserver/fhir/Patient/")
    outcome = client.post(
        "/fhir/Patient",
        json=patient(family="Outcome"),
        headers={**FHIR_JSON, "Prefer": 'Return = "OperationOutcome"'},
    )
    assert outcome.status_code == 201, outcome.text
    assert outcome.json()["resourceType"] == "OperationOutcome"
    strict = client.get(
        "/fhir/Patient", params={"shoe_size": "42"}, headers={"Prefer": 'handling="strict"'}
    )
    assert strict.status_code == 400, strict.text
    assert "shoe_size" in issue(strict)["diagnostics"]
    exported = client.get(
        "/fhir/$export",
        params={"unknown": "x"},
        headers={"Accept": "application/fhir+json", "Prefer": 'respond-async, handling="lenient"'},
    )
    assert exported.status_code == 202, exported.text
    assert "/fhir/$export-status/" in exported.headers["content-location"]
