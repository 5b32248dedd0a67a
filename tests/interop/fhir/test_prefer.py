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
