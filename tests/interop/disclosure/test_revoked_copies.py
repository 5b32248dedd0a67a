"""A revoked consent stays revoked whatever its copy says (PART2.md C5, C6; review 9 F2): a
copy of its signed document under another id, its form's URL spelt another way RFC 3986 holds
equivalent or left out, is refused, and partner A, whom the revoked consent named, reads
nothing again."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.interop.disclosure.conftest import FHIR_JSON, World, acting_as, as_

FORM = "https://forms.example.org/consents/1.pdf"  # tests.builders.part2_consent's form


def _revoked(client: TestClient, anonymous: TestClient, world: World) -> dict[str, Any]:
    """The world's consent, relied on and then revoked: its content, without id or meta."""
    url = f"/fhir/Consent/{world.consent_id}"
    consent: dict[str, Any] = client.get(url).json()
    consent.pop("meta")
    assert _plan_read_by_a(anonymous, world) == 200
    revoked = client.put(url, json={**consent, "status": "inactive"}, headers=FHIR_JSON)
    assert revoked.status_code == 200, revoked.text
    assert _plan_read_by_a(anonymous, world) == 404
    return {k: v for k, v in consent.items() if k != "id"}


def _plan_read_by_a(anonymous: TestClient, world: World) -> int:
    response = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
    return response.status_code


def _with_url(url: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def respelt(copy: dict[str, Any]) -> dict[str, Any]:
        return {**copy, "sourceAttachment": {**copy["sourceAttachment"], "url": url}}

    return respelt


def _without_url(copy: dict[str, Any]) -> dict[str, Any]:
    attachment = {k: v for k, v in copy["sourceAttachment"].items() if k != "url"}
    return {**copy, "sourceAttachment": attachment}


def _without_form(copy: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.items() if k != "sourceAttachment"}


@pytest.mark.parametrize(
    "copied",
    [
        _with_url("https://forms.example.org/consents/%31.pdf"),
        _with_url("https://forms.example.org/consents/%31%2epdf"),
        _with_url("https://forms.example.org./consents/1.pdf"),
        _with_url("https://forms.example.org/consents/./1.pdf"),
        _with_url("https://forms.example.org/elsewhere/../consents/1.pdf"),
        _with_url("HTTPS://Forms.Example.ORG.:443/%63onsents/./x/../1.pdf#page=2"),
        _without_url,
        _without_form,
    ],
    ids=[
        "pct-encoded-digit",
        "pct-encoded-dot",
        "host-trailing-dot",
        "dot-segment",
        "dot-dot-segment",
        "all-at-once",
        "no-url",
        "no-attachment",
    ],
)
def test_a_copy_of_a_revoked_consent_is_refused_and_releases_nothing(
    client: TestClient,
    anonymous: TestClient,
    world: World,
    copied: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    copy = _revoked(client, anonymous, world)

    answer = client.post("/fhir/Consent", json=copied(copy), headers=FHIR_JSON)

    assert answer.status_code == 422, answer.text
    assert "signed and dated anew" in answer.json()["issue"][0]["diagnostics"]
    assert _plan_read_by_a(anonymous, world) == 404


def test_a_copy_naming_the_patient_by_identifier_is_refused(
    client: TestClient, anonymous: TestClient, world: World
) -> None:
    """The program holding the patient names it by MRN (an R4 logical reference), which the
    gate reads as that patient's consent: the copy check reads it so too."""
    copy = _revoked(client, anonymous, world)
    person = client.get(f"/fhir/{world.client_ref}").json()
    [mrn] = person["identifier"]
    by_mrn = {**copy, "patient": {"identifier": {"system": mrn["system"], "value": mrn["value"]}}}

    answer = acting_as(anonymous, world.detox_partner).post(
        "/fhir/Consent", json=by_mrn, headers=FHIR_JSON
    )

    assert answer.status_code == 422, answer.text
    assert _plan_read_by_a(anonymous, world) == 404


def test_a_copy_without_its_signing_date_releases_nothing(
    client: TestClient, anonymous: TestClient, world: World
) -> None:
    """Without `dateTime` (§2.31(i)) nothing says it is the revoked document, and nothing
    says when it was signed: it may be stored, and no permit relies on it."""
    copy = _revoked(client, anonymous, world)

    undated = {k: v for k, v in _without_url(copy).items() if k != "dateTime"}
    answer = client.post("/fhir/Consent", json=undated, headers=FHIR_JSON)

    assert answer.status_code in (201, 422), answer.text

    assert _plan_read_by_a(anonymous, world) == 404


def test_another_document_signed_with_it_and_giving_no_form_is_accepted(
    client: TestClient, anonymous: TestClient, world: World
) -> None:
    """Where a consent does not say its form, its terms tell it from the revoked one: the
    patient's consent for another recipient, signed at the same sitting, stands (as the R4
    examples signed the same day for one patient do)."""
    copy = _revoked(client, anonymous, world)
    [permit] = copy["provision"]["provision"]
    [actor] = permit["actor"]
    elsewhere = {**actor, "reference": {"reference": world.b.organization}}
    other = {
        **copy,
        "provision": {**copy["provision"], "provision": [{**permit, "actor": [elsewhere]}]},
    }

    answer = client.post("/fhir/Consent", json=_without_url(other), headers=FHIR_JSON)

    assert answer.status_code == 201, answer.text
    assert _plan_read_by_a(anonymous, world) == 404
