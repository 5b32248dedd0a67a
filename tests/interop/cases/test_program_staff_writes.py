"""A case manager of one program writes through the case API only what that program may
(probe 7, H1 and M1): not onto a client withheld from it, not over another program's records,
and never a consent that lets it read another program's records by itself (PART2.md C5;
README, "Who records it matters")."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from consent.model import ConsentDirective
from interop.services.demo import CLIENT
from interop.services.staff import Role
from mappings.consent import directive_from_fhir
from tests.builders import part2_consent
from tests.interop.cases.test_story import enter_story, staff

HIDDEN = "hidden-client"
Manager = tuple[TestClient, dict[str, str]]


@pytest.fixture
def riverside(anonymous: TestClient) -> Manager:
    """Jordan's story entered by each program's case managers; Harbor Detox also keeps a
    client of its own that no consent lets anyone else see. Riverside's case manager signs in."""
    admin, csrf = staff(anonymous, "ada.admin", Role.ADMINISTRATOR)
    enter_story(admin, csrf)
    harbor, harbor_csrf = staff(anonymous, "harbor.manager", Role.CASE_MANAGER, ("harbor-detox",))
    jordan = admin.get(f"/cases/clients/{CLIENT}").json()["value"]
    mrn = {**jordan["identifiers"][0], "value": "MRN-HIDDEN-1"}
    client = {**jordan, "id": HIDDEN, "identifiers": [mrn]}
    answer = harbor.put(f"/cases/clients/{HIDDEN}", json=client, headers=harbor_csrf)
    assert answer.status_code == 200, answer.text
    return staff(anonymous, "riley.residential", Role.CASE_MANAGER, ("riverside-residential",))


def consent_body(patient: str, discloser: str, recipient: str, ident: str) -> dict[str, Any]:
    resource = {**part2_consent(f"Patient/{patient}", discloser, recipient), "id": ident}
    directive = directive_from_fhir(resource)
    body: dict[str, Any] = TypeAdapter(ConsentDirective).dump_python(directive, mode="json")
    return body


def test_a_consent_for_a_client_withheld_from_the_program_is_not_saved(
    riverside: Manager, anonymous: TestClient
) -> None:
    browser, csrf = riverside
    body = consent_body(
        HIDDEN, "Organization/harbor-detox", "Organization/riverside-residential", "forged"
    )
    answer = browser.put("/cases/consents/forged", json=body, headers=csrf)
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"] == f"clients/{HIDDEN} is not known"
    assert browser.get(f"/cases/clients/{HIDDEN}").status_code == 404
    admin, _ = staff(anonymous, "ada.second", Role.ADMINISTRATOR)
    assert admin.get("/cases/consents/forged").status_code == 404


def test_no_record_is_written_onto_a_withheld_client(riverside: Manager) -> None:
    browser, csrf = riverside
    goals = browser.get("/cases/goals", params={"client": CLIENT}).json()
    goal = {**goals[0]["value"], "id": "goal-onto-hidden", "client_id": HIDDEN}
    answer = browser.put("/cases/goals/goal-onto-hidden", json=goal, headers=csrf)
    assert answer.status_code == 404, answer.text
    assert browser.get("/cases/goals/goal-onto-hidden").status_code == 404


def test_another_programs_goal_is_not_rewritten(riverside: Manager, anonymous: TestClient) -> None:
    browser, csrf = riverside
    (record, *_) = browser.get("/cases/goals", params={"client": CLIENT}).json()
    description = {"codes": [], "text": "rewritten by another program"}
    changed = {**record["value"], "description": description}
    answer = browser.put(f"/cases/goals/{record['value']['id']}", json=changed, headers=csrf)
    assert answer.status_code == 403, answer.text
    admin, _ = staff(anonymous, "ada.third", Role.ADMINISTRATOR)
    stored = admin.get(f"/cases/goals/{record['value']['id']}").json()
    assert stored["value"] == record["value"]


def test_another_programs_consent_is_not_widened(riverside: Manager, anonymous: TestClient) -> None:
    browser, csrf = riverside
    admin, _ = staff(anonymous, "ada.fourth", Role.ADMINISTRATOR)
    (record, *_) = admin.get("/cases/consents", params={"client": CLIENT}).json()
    widened = {**record["value"], "signed_at": "2026-06-03T10:00:00Z"}
    answer = browser.put(f"/cases/consents/{record['value']['id']}", json=widened, headers=csrf)
    assert answer.status_code == 403, answer.text
    assert admin.get(f"/cases/consents/{record['value']['id']}").json() == record


def test_a_consent_naming_only_another_program_as_discloser_is_not_relied_on(
    riverside: Manager,
) -> None:
    """Riverside's case manager may record a consent for a client it serves, but one that
    names only Harbor Detox as disclosing is Harbor's to hold: it is stored, reported as not
    relied on (C5), and gives Riverside nothing it could not read before."""
    browser, csrf = riverside
    body = consent_body(
        CLIENT, "Organization/harbor-detox", "Organization/riverside-residential", "self-made"
    )
    answer = browser.put("/cases/consents/self-made", json=body, headers=csrf)
    assert answer.status_code == 200, answer.text
    problems = " ".join(p["diagnostics"] for p in answer.json()["problems"])
    assert "recorded by neither this program nor a program it names as disclosing" in problems
