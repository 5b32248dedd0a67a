"""A client's whole story through the case API, read back through the FHIR API (issue 3)."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from consent.model import ConsentDirective
from interop.services.demo import CLIENT, approve_form, story
from interop.services.partners import NewPartner, PartnerService
from interop.services.staff import Role
from mappings.consent import directive_from_fhir
from mappings.terminology import BUSINESS_STATUS
from tests.builders import part2_consent
from tests.interop.auth.test_staff import sign_in
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def staff(
    anonymous: TestClient, username: str, role: Role, programs: tuple[str, ...] = ()
) -> tuple[TestClient, dict[str, str]]:
    browser = TestClient(anonymous.app)
    anonymous.app.state.staff.add(
        username, "correct horse battery staple", role, programs, datetime.now(UTC)
    )  # type: ignore[attr-defined]
    response = sign_in(browser, username)
    assert response.status_code == 200
    return browser, {"X-CSRF-Token": response.json()["csrf_token"]}


def enter_story(browser: TestClient, csrf: dict[str, str]) -> list[dict[str, Any]]:
    """Each record entered by a case manager of the program it comes from (its origin);
    `browser` signs them in on its app. The form Jordan's consent was signed on is approved
    first, as `interop demo` does (PART2.md C9)."""
    approve_form(browser.app.state.consent_forms)  # type: ignore[attr-defined]
    answers = []
    managers: dict[str, tuple[TestClient, dict[str, str]]] = {}
    for seed in story():
        kind, value = seed.kind, seed.value
        if seed.program not in managers:
            name = f"manager.{seed.program}"
            managers[seed.program] = staff(browser, name, Role.CASE_MANAGER, (seed.program,))
        writer, headers = managers[seed.program]
        body = TypeAdapter(kind.model).dump_python(value, mode="json")
        response = writer.put(f"/cases/{kind.name}/{value.id}", json=body, headers=headers)
        assert response.status_code == 200, (kind.name, response.text)
        answer = response.json()
        assert answer["value"] == body, kind.name
        answers.append(answer)
    return answers


@pytest.fixture
def admin(anonymous: TestClient) -> tuple[TestClient, dict[str, str]]:
    return staff(anonymous, "ada.admin", Role.ADMINISTRATOR)


def search(client: TestClient, resource_type: str, **params: str) -> list[dict[str, Any]]:
    bundle = client.get(f"/fhir/{resource_type}", params=params).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


class TestStory:
    def test_every_record_round_trips_through_the_case_api(
        self, admin: tuple[TestClient, dict[str, str]]
    ) -> None:
        answers = enter_story(*admin)
        assert len(answers) == len(story())
        assert all(answer["unmapped"] == [] for answer in answers)
        plan = next(a for a in answers if a["reference"] == "CarePlan/plan-jordan")
        assert plan["version"] == 1

    def test_the_story_is_visible_through_the_fhir_api(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        enter_story(*admin)
        patient = f"Patient/{CLIENT}"
        plans = search(client, "CarePlan", patient=patient)
        assert [p["id"] for p in plans] == ["plan-jordan"]
        goals = search(client, "Goal", patient=patient)
        assert {g["id"] for g in goals} == {
            g.removeprefix("Goal/") for g in (r["reference"] for r in plans[0]["goal"])
        }
        assert len(goals) >= 6
        episodes = search(client, "EpisodeOfCare", patient=patient, _sort="date")
        assert [e["id"] for e in episodes] == [
            "episode-detox",
            "episode-residential",
            "episode-iop",
            "episode-aftercare",
        ]
        referrals = search(client, "ServiceRequest", patient=patient)
        assert len(referrals) == 4
        handoffs = search(client, "Task", patient=patient, code="fulfill")
        assert {t["id"] for t in handoffs} == {
            "handoff-to-residential",
            "handoff-to-iop",
            "handoff-to-aftercare",
        }
        transfer = next(t for t in handoffs if t["id"] == "handoff-to-iop")
        assert transfer["focus"]["reference"] == "ServiceRequest/referral-to-iop"
        assert any(i["type"]["coding"][0]["code"] == "18761-7" for i in transfer["input"])

    def test_a_fhir_update_by_a_partner_shows_in_the_case_api(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        browser, csrf = admin
        enter_story(browser, csrf)
        task = client.get("/fhir/Task/handoff-to-aftercare").json()
        started = {
            **task,
            "status": "in-progress",
            "executionPeriod": {"start": "2026-07-21"},
            "businessStatus": {"coding": [{"system": BUSINESS_STATUS.url, "code": "admitted"}]},
        }
        assert (
            client.put(
                "/fhir/Task/handoff-to-aftercare", json=started, headers=FHIR_JSON
            ).status_code
            == 200
        )
        record = browser.get("/cases/handoffs/handoff-to-aftercare").json()
        assert record["value"]["status"] == "in-progress"
        assert record["version"] == 2
        listed = browser.get("/cases/handoffs", params={"client": CLIENT}).json()
        assert {r["value"]["id"] for r in listed} == {
            "handoff-to-residential",
            "handoff-to-iop",
            "handoff-to-aftercare",
        }


class TestCaseApiKeepsWhatItCannotShow:
    """The case API never deletes what it cannot show, and an answer never contradicts a save
    (issue 14)."""

    def test_elements_a_partner_wrote_through_fhir_survive_a_case_api_save(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        enter_story(*admin)
        plan = client.get("/fhir/CarePlan/plan-jordan").json()
        plan.pop("meta")
        noted = {**plan, "note": [{"text": "Prefers morning appointments"}]}
        assert client.put("/fhir/CarePlan/plan-jordan", json=noted, headers=FHIR_JSON).is_success
        manager, csrf = staff(admin[0], "casey.saves", Role.CASE_MANAGER, ("harbor-detox",))
        record = manager.get("/cases/care-plans/plan-jordan").json()
        assert any(u["path"].startswith("CarePlan.note") for u in record["unmapped"])
        changed = {**record["value"], "title": "Recovery plan (revised)"}
        saved = manager.put("/cases/care-plans/plan-jordan", json=changed, headers=csrf)
        assert saved.status_code == 200, saved.text
        assert saved.json()["value"]["title"] == "Recovery plan (revised)"
        stored = client.get("/fhir/CarePlan/plan-jordan").json()
        assert stored["note"] == [{"text": "Prefers morning appointments"}]
        assert stored["title"] == "Recovery plan (revised)"

    def test_a_record_the_manager_may_not_read_is_not_saved(
        self, anonymous: TestClient, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        enter_story(*admin)
        outsider, csrf = staff(anonymous, "olive.outside", Role.CASE_MANAGER, ("elsewhere-clinic",))
        kind, value = next((s.kind, s.value) for s in story() if s.kind.name == "care-plans")
        body = TypeAdapter(kind.model).dump_python(value, mode="json") | {"title": "Overwritten"}
        answer = outsider.put("/cases/care-plans/plan-jordan", json=body, headers=csrf)
        assert answer.status_code == 404, answer.text
        assert "Overwritten" not in client.get("/fhir/CarePlan/plan-jordan").text


class TestCaseApiErrors:
    def test_errors_are_problem_details(self, admin: tuple[TestClient, dict[str, str]]) -> None:
        browser, csrf = admin
        mismatched = browser.put("/cases/goals/goal-a", json={"id": "goal-b"}, headers=csrf)
        assert mismatched.status_code == 422
        assert mismatched.headers["content-type"] == "application/problem+json"
        kind, value = next((s.kind, s.value) for s in story() if s.kind.name == "goals")
        body = TypeAdapter(kind.model).dump_python(value, mode="json")
        wrong_id = browser.put("/cases/goals/another-goal", json=body, headers=csrf)
        assert wrong_id.status_code == 400
        assert "another-goal" in wrong_id.json()["detail"]
        bad_domain = browser.put(
            f"/cases/goals/{value.id}", json={**body, "domain": "astrology"}, headers=csrf
        )
        assert bad_domain.status_code == 422
        assert "domain" in bad_domain.json()["detail"]
        missing = browser.get("/cases/care-plans/no-such-plan")
        assert missing.status_code == 404
        assert missing.json()["status"] == 404

    def test_writes_need_a_session_and_its_csrf_token(
        self, admin: tuple[TestClient, dict[str, str]], anonymous: TestClient
    ) -> None:
        browser, _csrf = admin
        kind, value = next((s.kind, s.value) for s in story() if s.kind.name == "clients")
        body = TypeAdapter(kind.model).dump_python(value, mode="json")
        assert browser.put(f"/cases/clients/{value.id}", json=body).status_code == 403
        assert anonymous.get("/cases/clients/jordan-rivers").status_code == 401


class TestAcrossPrograms:
    def test_a_case_manager_sees_other_programs_part2_records_only_as_the_gate_allows(
        self, anonymous: TestClient, admin: tuple[TestClient, dict[str, str]]
    ) -> None:
        enter_story(*admin)
        harbor, _ = staff(anonymous, "casey.harbor", Role.CASE_MANAGER, ("harbor-detox",))
        # A program Jordan's consent does not name as a recipient.
        outsider, _ = staff(anonymous, "olive.elsewhere", Role.CASE_MANAGER, ("elsewhere-clinic",))
        assert harbor.get("/cases/care-plans/plan-jordan").status_code == 200
        hidden = outsider.get("/cases/care-plans/plan-jordan")
        assert hidden.status_code == 404
        assert outsider.get("/cases/care-plans", params={"client": CLIENT}).json() == []

    def test_a_case_manager_reads_only_the_clients_their_programs_work_with(
        self, anonymous: TestClient, admin: tuple[TestClient, dict[str, str]]
    ) -> None:
        """Probe 11 M4: the console's rule holds for the case API: another program's client
        is unknown to a case manager, whatever the gate would release of them (a primary care
        clinic's patient is no Part 2 record, yet not every hosted program's to browse)."""
        enter_story(*admin)
        admin_browser, admin_headers = admin
        program = {"id": "lakeshore", "name": "Lakeshore Family Medicine", "part2_program": False}
        made = admin_browser.put("/cases/programs/lakeshore", json=program, headers=admin_headers)
        assert made.status_code == 200, made.text
        clinic, headers = staff(anonymous, "lee.lakeshore", Role.CASE_MANAGER, ("lakeshore",))
        kind, value = next((s.kind, s.value) for s in story() if s.kind.name == "clients")
        body = {**TypeAdapter(kind.model).dump_python(value, mode="json"), "id": "eve-lake"}
        assert clinic.put("/cases/clients/eve-lake", json=body, headers=headers).status_code == 200
        assert clinic.get("/cases/clients/eve-lake").json()["value"]["id"] == "eve-lake"
        outsider, _ = staff(anonymous, "olive.elsewhere", Role.CASE_MANAGER, ("elsewhere-clinic",))
        hidden = outsider.get("/cases/clients/eve-lake")
        unknown = outsider.get("/cases/clients/nobody-at-all")
        assert (hidden.status_code, unknown.status_code) == (404, 404)
        assert hidden.json()["detail"] == "clients/eve-lake is not known"
        for kind_name in ("referrals", "episodes", "goals"):
            listed = outsider.get(f"/cases/{kind_name}", params={"client": "eve-lake"})
            assert listed.json() == []
        assert admin_browser.get("/cases/clients/eve-lake").status_code == 200

    def test_the_operating_programs_staff_read_as_its_ehr_while_it_is_registered(
        self, anonymous: TestClient, admin: tuple[TestClient, dict[str, str]]
    ) -> None:
        """The program whose EHR is registered first party runs this service: its personnel
        use what it holds (§2.12(c)(3)); once that registration is off, the gate decides."""
        enter_story(*admin)
        partners: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        ehr = partners.register(
            NewPartner("Elsewhere EHR", [("urn:oid:2.16.840.1.113883.3.9999.10", "elsewhere")],
                       "system/*.cruds", jwks=rsa_key().jwks(), first_party=True)
        )  # fmt: skip
        unit = ehr.organization.removeprefix("Organization/")
        own, _ = staff(anonymous, "omar.operating", Role.CASE_MANAGER, (unit,))
        assert own.get("/cases/care-plans/plan-jordan").status_code == 200
        partners.set_enabled(ehr.client_id, False)
        assert own.get("/cases/care-plans/plan-jordan").status_code == 404


class TestConsents:
    def test_a_consent_directive_through_the_case_api_is_the_fhir_consent(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        browser, csrf = admin
        resource = {
            **part2_consent(
                f"Patient/{CLIENT}", "Organization/harbor-detox", "Organization/bayview-iop"
            ),
            "id": "consent-jordan",
        }
        directive = directive_from_fhir(resource)
        body = TypeAdapter(ConsentDirective).dump_python(directive, mode="json")
        stored = browser.put("/cases/consents/consent-jordan", json=body, headers=csrf)
        assert stored.status_code == 200, stored.text
        assert stored.json()["value"] == body
        consent = client.get("/fhir/Consent/consent-jordan").json()
        assert directive_from_fhir(consent) == directive
        listed = browser.get("/cases/consents", params={"client": CLIENT}).json()
        assert [record["value"]["id"] for record in listed] == ["consent-jordan"]

    def test_a_consent_saying_what_its_form_states_is_not_relied_on_for_it(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        """Probe (PART2.md C9): the case API wrote a PUT's statement flags into the Consent,
        and the gate relied on the consent's own word with no form approved. The flags are
        not written: the consent names its form, and only the form's approval counts."""
        browser, csrf = admin
        enter_story(browser, csrf)
        jordan = browser.get("/cases/consents/consent-jordan").json()
        assert jordan["problems"] == []
        claims = {
            **jordan["value"],
            "id": "consent-claims",
            "form": None,
            "form_approved": True,
            "has_revocation_statement": True,
            "has_redisclosure_statement": True,
        }

        answer = browser.put("/cases/consents/consent-claims", json=claims, headers=csrf)

        assert answer.status_code == 200, answer.text
        value = answer.json()["value"]
        assert (value["form_approved"], value["has_revocation_statement"]) == (False, False)
        problems = [p["diagnostics"] for p in answer.json()["problems"]]
        assert any(p.startswith("C9: (f) cannot be verified") for p in problems), problems
        stored = client.get("/fhir/Consent/consent-claims").json()
        assert "policy" not in stored
        assert stored["sourceAttachment"]["url"] == jordan["value"]["signed_form"]
        assert "consent-form-statement" not in json.dumps(stored)


class TestConsentProblems:
    """Issue 11, point 6: the case API's consent says, per element, what keeps it from being
    relied on and where a partner puts it, as `POST /fhir/Consent` does."""

    def test_a_consent_lacking_its_expiry_names_it(
        self, admin: tuple[TestClient, dict[str, str]], client: TestClient
    ) -> None:
        browser, _csrf = admin
        assert client.put(
            f"/fhir/Patient/{CLIENT}",
            json={"resourceType": "Patient", "id": CLIENT, "name": [{"family": "Rivers"}]},
            headers=FHIR_JSON,
        ).is_success
        resource = part2_consent(
            f"Patient/{CLIENT}", "Organization/harbor-detox", "Organization/bayview-iop"
        )
        del resource["provision"]["period"]
        for child in resource["provision"].get("provision", []):
            child.pop("period", None)
        stored = client.put(
            "/fhir/Consent/consent-undated", json={**resource, "id": "consent-undated"},
            headers=FHIR_JSON,
        )  # fmt: skip
        assert stored.is_success, stored.text
        record = browser.get("/cases/consents/consent-undated").json()
        problems = " ".join(p["diagnostics"] for p in record["problems"])
        assert "(g)" in problems, record["problems"]
        assert any(p["expression"] for p in record["problems"])
