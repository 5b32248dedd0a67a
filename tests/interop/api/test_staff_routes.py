"""The routes that are not FHIR, at their HTTP edges: whole numbers bounded before a query sees
them, a challenge on every 401, nothing of a patient's kept by a cache, problem titles that
are the status's phrase, the status a registration or an approval answers, and listings that
page instead of stopping short."""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.ccda_intake import Channel, DocumentIntake, Sender
from interop.services.outcomes import REASONS
from interop.services.staff import Role, StaffService
from tests.conftest import RegisteredPartner, bearer, register_partner
from tests.interop.auth.test_staff import PASSWORD, sign_in
from tests.interop.console.conftest import FHIR_JSON, HTML, enter_story
from tests.interop.disclosure.test_audit import emergency_department, opioid_use_disorder
from tests.keys import rsa_key

STAFF_CHALLENGE = 'Cookie realm="staff", form-action="/auth/login", cookie-name="interop_session"'
BEYOND_BIGINT = "9223372036854775808"  # 2**63: no BIGINT holds it


def staff(anonymous: TestClient, username: str, role: Role, *programs: str) -> TestClient:
    """A person signed in through the JSON form of the sign-in, with the CSRF header set."""
    service: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    service.add(username, PASSWORD, role, programs, datetime.now(UTC))
    browser = TestClient(anonymous.app)
    signed_in = sign_in(browser, username)
    assert signed_in.status_code == 200, signed_in.text
    browser.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
    return browser


def problem(response: Any, status: int) -> dict[str, Any]:
    """The about:blank problem detail of a refusal, whose title is the status's phrase."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert (body["status"], body["title"]) == (status, REASONS[status])
    return body


@pytest.fixture
def officer(anonymous: TestClient) -> TestClient:
    return staff(anonymous, "morgan.compliance", Role.COMPLIANCE_OFFICER)


@pytest.fixture
def administrator(anonymous: TestClient) -> TestClient:
    return staff(anonymous, "ada.admin", Role.ADMINISTRATOR)


@pytest.fixture
def manager(anonymous: TestClient) -> TestClient:
    return staff(anonymous, "casey.manager", Role.CASE_MANAGER, "harbor-detox")


def emergency_reads(anonymous: TestClient, reads: int) -> str:
    """A detox unit's diagnosis read `reads` times by an emergency department breaking the
    glass: that many emergency disclosures in the log; the patient's reference."""
    detox = register_partner(anonymous, name="Northside Detox", part2_program=True)
    as_detox = {"Authorization": bearer(anonymous, detox), **FHIR_JSON}
    person = anonymous.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Glass", "given": ["Sam"]}]},
        headers=as_detox,
    ).json()
    patient = f"Patient/{person['id']}"
    condition = anonymous.post(
        "/fhir/Condition", json=opioid_use_disorder(patient, detox.organization), headers=as_detox
    ).json()
    headers = emergency_department(anonymous, patient)
    for _ in range(reads):
        read = anonymous.get(f"/fhir/Condition/{condition['id']}", headers=headers)
        assert read.status_code == 200, read.text
    return patient


class TestBoundedNumbers:
    """Probe finding 4: 2**63 and beyond were an OverflowError deep in a query (500)."""

    def test_an_offset_past_any_row_is_refused_before_the_query(self, officer: TestClient) -> None:
        answer = officer.get(
            "/audit/AuditEvent", params={"_count": 2, "_offset": "99999999999999999999"}
        )
        assert (
            "query._offset: Input should be less than or equal to 2147483647"
            in (problem(answer, 422)["detail"])
        )
        assert officer.get("/audit/emergencies", params={"_offset": BEYOND_BIGINT}).status_code == (
            422
        )
        assert officer.get("/audit/emergencies", params={"_count": 0}).status_code == 422

    def test_a_delivery_number_no_row_can_have_is_refused(self, administrator: TestClient) -> None:
        answer = administrator.post(f"/admin/deliveries/{BEYOND_BIGINT}/retry")
        assert problem(answer, 422)["detail"].startswith("path.delivery_id: ")
        assert problem(administrator.post("/admin/deliveries/0/retry"), 422)
        largest = administrator.post("/admin/deliveries/2147483647/retry")  # INTEGER's largest
        assert problem(largest, 404)["detail"] == "no delivery has id 2147483647"

    def test_a_held_message_page_past_any_row_is_refused(self, manager: TestClient) -> None:
        answer = manager.get("/inbound/held", params={"after": BEYOND_BIGINT})
        assert problem(answer, 422)["detail"].startswith("query.after: ")
        assert problem(manager.get("/inbound/held", params={"limit": 1001}), 422)

    def test_the_calendars_last_day_is_a_date_and_past_it_is_a_bad_request(
        self, officer: TestClient
    ) -> None:
        """9999-12-31 is a FHIR date (its day's end overflowed into a 500); a time whose zone
        puts it past year 9999 in UTC is the client's mistake, said as such."""
        until_the_end = officer.get("/audit/AuditEvent", params={"date-to": "9999-12-31"})
        assert until_the_end.status_code == 200, until_the_end.text
        past = officer.get("/audit/AuditEvent", params={"date-to": "9999-12-31T23:00-05:00"})
        assert problem(past, 400)["detail"].startswith("date-from and date-to must be FHIR dates")


class TestChallenges:
    """Probe finding 5: RFC 9110 §15.5.2, a 401 carries a challenge."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/admin/partners"),
            ("POST", "/admin/deliveries/1/retry"),
            ("GET", "/audit/AuditEvent"),
            ("GET", "/audit/accounting/Patient/jordan-rivers"),
            ("GET", "/inbound/held"),
            ("GET", "/cases/clients/jordan-rivers"),
            ("GET", "/auth/session"),
        ],
    )
    def test_a_staff_route_without_a_session_names_the_sign_in(
        self, anonymous: TestClient, method: str, path: str
    ) -> None:
        answer = anonymous.request(method, path)
        assert problem(answer, 401)["detail"] == "sign in at /auth/login first"
        assert answer.headers["www-authenticate"] == STAFF_CHALLENGE

    def test_a_failed_sign_in_is_challenged_whichever_form_asked(
        self, anonymous: TestClient
    ) -> None:
        staff(anonymous, "casey.manager", Role.CASE_MANAGER)
        script = TestClient(anonymous.app)
        refused = sign_in(script, "casey.manager", "not the password")
        assert problem(refused, 401)["detail"] == (
            "the name or password is wrong, or the account is locked"
        )
        assert refused.headers["www-authenticate"] == STAFF_CHALLENGE
        browser = TestClient(anonymous.app, headers=HTML)
        shown = sign_in(browser, "casey.manager", "not the password")
        assert shown.status_code == 401
        assert shown.headers["content-type"].startswith("text/html")
        assert shown.headers["www-authenticate"] == STAFF_CHALLENGE

    def test_the_fhir_api_keeps_its_bearer_challenge(self, anonymous: TestClient) -> None:
        answer = anonymous.get("/fhir/Patient")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="fhir"'


class TestNothingOfAPatientIsCached:
    """Probe finding 6: cookie-authenticated answers about patients carried no Cache-Control."""

    def test_accounting_log_and_case_records_are_no_store(
        self, anonymous: TestClient, client: TestClient, officer: TestClient, manager: TestClient
    ) -> None:
        enter_story(anonymous, client)
        answers = [
            *(
                officer.get("/audit/accounting/Patient/jordan-rivers", params={"format": kind})
                for kind in ("html", "csv", "fhir")
            ),
            officer.get("/audit/AuditEvent", params={"patient": "Patient/jordan-rivers"}),
            officer.get("/audit/emergencies"),
            manager.get("/cases/clients/jordan-rivers"),
            manager.get("/cases/handoffs/handoff-to-residential/transfer-summary"),
            manager.get("/inbound/held"),
            client.get("/fhir/Patient/jordan-rivers"),  # the FHIR API's records are the same
        ]
        for answer in answers:
            assert answer.status_code == 200, (answer.url, answer.text)
            assert answer.headers["cache-control"] == "no-store", answer.url
        assert answers[1].headers["content-type"].startswith("text/csv")

    def test_refusals_are_no_store_and_public_assets_keep_their_own(
        self, anonymous: TestClient
    ) -> None:
        assert anonymous.get("/audit/AuditEvent").headers["cache-control"] == "no-store"
        assert anonymous.get("/auth/jwks.json").headers["cache-control"] == "public, max-age=300"
        stylesheet = anonymous.get("/console/static/console.css")
        assert stylesheet.status_code == 200
        assert "cache-control" not in stylesheet.headers


class TestProblemTitles:
    """Probe finding 10: RFC 9457 §4.2.1, an about:blank problem's title is the status's
    phrase; what went wrong is in `detail`."""

    def test_each_refusal_is_titled_by_its_status(
        self, anonymous: TestClient, administrator: TestClient
    ) -> None:
        unreadable = administrator.post("/admin/partners", json={"name": "x"})
        assert "body.identifiers: Field required" in problem(unreadable, 422)["detail"]
        no_csrf = TestClient(anonymous.app, cookies=administrator.cookies)
        refused = no_csrf.post("/admin/partners", json={"name": "x"})
        assert problem(refused, 403)["detail"].startswith("CSRF check failed: ")
        assert problem(anonymous.get("/admin/no-such-route"), 404)["detail"] == (
            "no such route: /admin/no-such-route"
        )
        assert REASONS[422] == "Unprocessable Content"  # RFC 9110 §15.5.21

    def test_a_second_registration_of_a_partner_is_a_conflict(
        self, administrator: TestClient
    ) -> None:
        body = {
            "name": "Lakeside Recovery Center",
            "identifiers": ["http://hl7.org/fhir/sid/us-npi|1234567893"],
            "scope": "system/Task.cru",
            "jwks": rsa_key().jwks(),
        }
        first = administrator.post("/admin/partners", json=body)
        assert first.status_code == 201, first.text
        again = administrator.post("/admin/partners", json={**body, "jwks": rsa_key().jwks()})
        assert problem(again, 409)["detail"].startswith(
            "a partner is already registered for http://hl7.org/fhir/sid/us-npi|1234567893 "
            f"(client_id {first.json()['client_id']})"
        )
        assert len(administrator.get("/admin/partners").json()) == 1

    def test_approving_a_form_creates_its_approval_then_replaces_it(
        self, officer: TestClient
    ) -> None:
        form = "https://forms.example.org/part2-consent/v9"
        made = officer.post(
            "/admin/consent-forms",
            json={"form": form, "title": "Consent v9", "statements": ["right-to-revoke"]},
        )
        assert made.status_code == 201, made.text
        assert made.json()["statements"] == ["right-to-revoke"]
        replaced = officer.post(
            "/admin/consent-forms",
            json={
                "form": form,
                "title": "Consent v9",
                "statements": ["right-to-revoke", "redisclosure-risk"],
            },
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["statements"] == ["right-to-revoke", "redisclosure-risk"]
        assert [f["form"] for f in officer.get("/admin/consent-forms").json()] == [form]


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


class TestPaging:
    """Probe finding 11: listings that page, and say where the next page is."""

    def test_the_log_links_to_its_next_page_with_the_filters_asked(
        self, anonymous: TestClient, officer: TestClient
    ) -> None:
        patient = emergency_reads(anonymous, 3)
        asked = {"patient": patient, "emergency": "true", "_count": "2"}
        first = officer.get("/audit/AuditEvent", params=asked).json()
        assert (first["total"], len(first["entry"])) == (3, 2)
        found = links(first)
        assert found["self"] == (
            f"http://testserver/audit/AuditEvent?patient={patient.replace('/', '%2F')}"
            "&emergency=true&_count=2&_offset=0"
        )
        second = officer.get(found["next"].removeprefix("http://testserver")).json()
        assert len(second["entry"]) == 1
        assert "next" not in links(second)
        seen = [e["resource"]["id"] for e in first["entry"] + second["entry"]]
        assert len(set(seen)) == 3

    def test_every_emergency_disclosure_is_reached_page_by_page(
        self, anonymous: TestClient, officer: TestClient
    ) -> None:
        """PART2.md E1: list every emergency disclosure; it stopped at 1000 without a word."""
        emergency_reads(anonymous, 3)
        page = officer.get("/audit/emergencies", params={"_count": 1}).json()
        assert page["total"] == 3
        listed = [page["entry"][0]["resource"]["id"]]
        while "next" in links(page):
            page = officer.get(links(page)["next"].removeprefix("http://testserver")).json()
            listed += [entry["resource"]["id"] for entry in page["entry"]]
        assert len(set(listed)) == 3
        assert links(page)["self"].startswith("http://testserver/audit/emergencies?_count=1")

    def test_held_messages_come_a_page_at_a_time(
        self, anonymous: TestClient, manager: TestClient
    ) -> None:
        partner: RegisteredPartner = register_partner(anonymous, name="Bayview Outpatient")
        intake: DocumentIntake = anonymous.app.state.ccda_intake  # type: ignore[attr-defined]
        for number in range(3):
            sender = Sender(partner.client_id, partner.organization)
            intake.receive(f"<not-closed-{number}>".encode(), sender, Channel.DIRECTORY)
        first = manager.get("/inbound/held", params={"limit": 2})
        assert first.status_code == 200, first.text
        assert len(first.json()) == 2
        last = first.json()[-1]["pk"]
        assert first.headers["link"] == f'</inbound/held?after={last}&limit=2>; rel="next"'
        rest = manager.get(first.headers["link"][1:].split(">")[0])
        assert [held["pk"] > last for held in rest.json()] == [True]
        assert "link" not in rest.headers
