"""The staff console over real HTTP (ASGI) and a real database: sign-in, roles, CSRF, the
compliance views and the case manager's work, each page through the gate and its log."""

import csv
import io
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlmodel import Session

from interop.services.staff import Role
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.tables import OutboxRow
from mappings.consent import REVOCATION_RECEIVED
from tests.builders import part2_consent
from tests.interop.console.conftest import (
    FHIR_JSON,
    HTML,
    Person,
    csrf_of,
    emergency_disclosure,
    sign_in_at_form,
)
from tests.interop.disclosure.test_audit import tamper


def log_rows(officer: Person, **params: str) -> list[dict[str, str]]:
    answer = officer.browser.get("/console/disclosures.csv", params=params)
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


class TestSignIn:
    def test_the_form_signs_in_and_lands_on_the_console(self, officer: Person) -> None:
        home = officer.browser.get("/console")
        assert home.status_code == 200
        assert "cora.compliance" in home.text
        assert 'href="/console/disclosures"' in home.text
        assert 'href="/console/referrals"' not in home.text  # not this role's work

    def test_a_wrong_password_shows_on_the_form(self, anonymous: TestClient) -> None:
        sign_in_at_form(anonymous, "cora.compliance", Role.COMPLIANCE_OFFICER)
        browser = TestClient(anonymous.app, headers=HTML)
        form = browser.get("/auth/login")
        answer = browser.post(
            "/auth/login",
            data={
                "username": "cora.compliance",
                "password": "wrong",
                "csrf_token": csrf_of(form.text),
            },
        )
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in answer.text
        assert "name or password is wrong" in answer.text
        assert csrf_of(answer.text) != csrf_of(form.text)  # a fresh form to try again

    def test_without_a_session_the_console_sends_the_browser_to_sign_in(
        self, anonymous: TestClient
    ) -> None:
        browser = TestClient(anonymous.app, headers=HTML)
        answer = browser.get("/console/disclosures", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/auth/login"
        assert browser.get("/", follow_redirects=False).headers["location"] == "/console"

    def test_sign_out_ends_the_session(self, officer: Person) -> None:
        answer = officer.browser.post("/console/sign-out", data={"csrf_token": officer.csrf})
        assert answer.url.path == "/auth/login"
        again = officer.browser.get("/console", follow_redirects=False)
        assert again.status_code == 303


class TestRolesAndCsrf:
    def test_a_case_manager_gets_403_on_compliance_pages(self, manager: Person) -> None:
        for path in ("/console/disclosures", "/console/emergencies", "/console/compliance"):
            answer = manager.browser.get(path)
            assert answer.status_code == 403, path
            assert "compliance-officer" in answer.text

    def test_a_compliance_officer_gets_403_on_case_pages(self, officer: Person) -> None:
        assert officer.browser.get("/console/referrals").status_code == 403
        assert officer.browser.get("/console/clients/jordan-rivers").status_code == 403

    def test_a_form_without_its_token_is_refused(
        self, anonymous: TestClient, client: TestClient, officer: Person
    ) -> None:
        emergency_disclosure(anonymous)
        seq = log_rows(officer, outcome="released")[0]["seq"]
        bare = officer.browser.post(f"/console/emergencies/{seq}/sign-off", data={})
        assert bare.status_code == 403
        assert "security token" in bare.text
        forged = officer.browser.post(
            f"/console/emergencies/{seq}/sign-off", data={"csrf_token": "forged"}
        )
        assert forged.status_code == 403
        assert "Sign off" in officer.browser.get("/console/emergencies").text


class TestCompliance:
    def test_decisions_filter_export_and_open(
        self, anonymous: TestClient, client: TestClient, officer: Person
    ) -> None:
        patient = emergency_disclosure(anonymous)
        page = officer.browser.get("/console/disclosures", params={"patient": patient})
        assert page.status_code == 200
        assert "County General" not in page.text  # recipients by reference, as logged
        rows = log_rows(officer, patient=patient, purpose="ETREAT")
        assert rows, "the emergency read is in the log"
        assert {row["patient"] for row in rows} == {patient}
        assert all(row["purposes"] == "ETREAT" for row in rows)
        assert log_rows(officer, patient=patient, purpose="HPAYMT") == []
        assert log_rows(officer, patient=patient, outcome="withheld") == []
        detail = officer.browser.get(f"/console/disclosures/{rows[0]['seq']}")
        assert detail.status_code == 200
        assert "Dr. Robin Example" in detail.text
        assert rows[0]["rule"] in detail.text
        assert officer.browser.get("/console/disclosures/999999").status_code == 404

    def test_a_malformed_date_is_shown_not_crashed(self, officer: Person) -> None:
        page = officer.browser.get("/console/disclosures", params={"date_from": "yesterday"})
        assert page.status_code == 400
        assert "is not a date" in page.text

    def test_break_the_glass_sign_off_is_a_link_of_the_chain(
        self, anonymous: TestClient, client: TestClient, officer: Person
    ) -> None:
        emergency_disclosure(anonymous)
        [found] = client.get("/fhir/Organization", params={"name": "Northside Detox"}).json()[
            "entry"
        ]
        detox = f"Organization/{found['resource']['id']}"
        queue = officer.browser.get("/console/emergencies")
        assert "County General Emergency Department" in queue.text
        assert "Disclosed by" in queue.text  # §2.51(c)(2), the program whose record it was
        assert f"<td>{detox}</td>" in queue.text
        seq = log_rows(officer, purpose="ETREAT", outcome="released")[0]["seq"]
        signed = officer.browser.post(
            f"/console/emergencies/{seq}/sign-off", data={"csrf_token": officer.csrf}
        )
        assert signed.status_code == 200
        assert "Signed off by cora.compliance" in signed.text
        twice = officer.browser.post(
            f"/console/emergencies/{seq}/sign-off", data={"csrf_token": officer.csrf}
        )
        assert twice.status_code == 409
        review = log_rows(officer, rule="E1-review")
        assert [r["records"] for r in review] == [f"AuditEvent/disclosure-{seq}"]
        assert review[0]["client_id"] == "staff:cora.compliance"
        status = officer.browser.get("/console/compliance")
        assert "Intact" in status.text
        assert "<svg" in status.text
        assert "released" in status.text

    def test_a_signed_checkpoint_verifies_and_a_forged_one_is_refused(
        self, anonymous: TestClient, officer: Person
    ) -> None:
        emergency_disclosure(anonymous)
        signed = officer.browser.post(
            "/console/compliance/checkpoint", data={"csrf_token": officer.csrf}
        )
        assert signed.status_code == 200
        token = signed.text.split('data-testid="checkpoint">')[1].split("</textarea>")[0]
        checked = officer.browser.post(
            "/console/compliance/verify", data={"csrf_token": officer.csrf, "checkpoint": token}
        )
        assert "still there, unchanged" in checked.text
        forged = officer.browser.post(
            "/console/compliance/verify",
            data={"csrf_token": officer.csrf, "checkpoint": token[:-4] + "AAAA"},
        )
        assert forged.status_code == 422

    def test_a_row_that_cannot_be_read_is_shown_as_such_and_the_pages_still_open(
        self, anonymous: TestClient, client: TestClient, officer: Person, database_url: str
    ) -> None:
        """An emergency disclosure's row altered so that its facts are no JSON: every page
        still opens; the row says it cannot be read, where the chain is broken, and shows
        nothing of what it held; the other decisions are listed as before."""
        patient = emergency_disclosure(anonymous)
        before = log_rows(officer)
        seq = log_rows(officer, patient=patient, purpose="ETREAT")[0]["seq"]
        tamper(
            database_url,
            f"UPDATE disclosure_log SET emergency_facts = '{{not json' WHERE seq = {seq}",  # noqa: S608
        )
        status = officer.browser.get("/console/compliance")
        assert status.status_code == 200, status.text
        assert f"Broken at row {seq}: the row cannot be read" in status.text
        assert "<svg" in status.text
        after = log_rows(officer)
        spoiled = next(row for row in after if row["seq"] == seq)
        assert spoiled["outcome"] == "unreadable"
        assert {key: value for key, value in spoiled.items() if key not in ("seq", "outcome")} == {
            key: "" for key in spoiled if key not in ("seq", "outcome")
        }
        assert [row for row in after if row["seq"] != seq] == [
            row for row in before if row["seq"] != seq
        ]
        assert [row["seq"] for row in log_rows(officer, patient=patient, purpose="ETREAT")] == [seq]
        listing = officer.browser.get("/console/disclosures")
        assert listing.status_code == 200, listing.text
        assert "cannot be read" in listing.text
        detail = officer.browser.get(f"/console/disclosures/{seq}")
        assert detail.status_code == 200, detail.text
        assert f"Row {seq} of the disclosure log cannot be read" in detail.text
        assert "the chain is broken here" in detail.text
        assert patient not in detail.text
        queue = officer.browser.get("/console/emergencies")
        assert queue.status_code == 200, queue.text
        assert "Cannot be read: the log was altered here" in queue.text
        assert "Dr. Robin Example" not in queue.text
        assert f"/console/emergencies/{seq}/sign-off" not in queue.text
        refused = officer.browser.post(
            f"/console/emergencies/{seq}/sign-off", data={"csrf_token": officer.csrf}
        )
        assert refused.status_code == 409
        assert "cannot be read" in refused.text

    def test_the_accounting_letter_opens_from_the_console(
        self, anonymous: TestClient, client: TestClient, officer: Person
    ) -> None:
        patient = emergency_disclosure(anonymous)
        letter = officer.browser.get("/console/accounting", params={"patient": patient[8:]})
        assert letter.status_code == 200
        assert "medical emergency" in letter.text


class TestConsentRegistry:
    def test_each_consent_with_what_stops_reliance(
        self, officer: Person, client: TestClient, story_entered: object
    ) -> None:
        lacking = part2_consent(
            "Patient/jordan-rivers", "Organization/harbor-detox", "Organization/bayview-iop"
        )
        del lacking["provision"]["provision"][0]["purpose"]
        made = client.put(
            "/fhir/Consent/consent-lacking",
            json={**lacking, "id": "consent-lacking"},
            headers=FHIR_JSON,
        )
        assert made.status_code in (200, 201), made.text
        page = officer.browser.get("/console/consents", params={"patient": "jordan-rivers"})
        assert page.status_code == 200, page.text
        lacking_part = page.text.split('data-consent="consent-lacking"')[1].split("</article>")[0]
        assert "purpose" in lacking_part.lower()
        harbor_part = page.text.split('data-consent="consent-jordan-harbor"')[1].split(
            "</article>"
        )[0]
        assert "Organization/harbor-detox" in harbor_part
        assert "TREAT" in harbor_part
        assert "2030-12-31" in harbor_part

    def test_revocation_as_the_written_revocation_is_recorded(
        self, officer: Person, client: TestClient, story_entered: object
    ) -> None:
        page = officer.browser.get("/console/consents", params={"patient": "jordan-rivers"})
        version = page.text.split('data-consent="consent-jordan-harbor"')[1]
        version = version.split('name="version" value="')[1].split('"')[0]
        undated = officer.browser.post(
            "/console/consents/consent-jordan-harbor/revoke",
            data={"csrf_token": officer.csrf, "version": version},
        )
        assert undated.status_code == 422
        revoked = officer.browser.post(
            "/console/consents/consent-jordan-harbor/revoke",
            data={"csrf_token": officer.csrf, "version": version, "received": "2026-11-30"},
        )
        assert revoked.status_code == 200, revoked.text
        assert "consent-jordan-harbor revoked" in revoked.text
        stored = client.get("/fhir/Consent/consent-jordan-harbor").json()
        assert stored["status"] == "inactive"
        assert {"url": REVOCATION_RECEIVED, "valueDate": "2026-11-30"} in stored["extension"]
        listed = officer.browser.get("/console/consents", params={"patient": "jordan-rivers"})
        assert "written revocation received 2026-11-30" in listed.text
        stale = officer.browser.post(
            "/console/consents/consent-jordan-harbor/revoke",
            data={"csrf_token": officer.csrf, "version": version, "received": "2026-11-30"},
        )
        assert stale.status_code in (412, 422)

    def test_a_form_awaiting_approval_is_approved_once(
        self, officer: Person, story_entered: object
    ) -> None:
        form = "https://forms.example.org/consents/1.pdf"
        page = officer.browser.get("/console/forms")
        assert page.status_code == 200, page.text
        awaiting = page.text.split('id="await-h"')[1].split('id="appr-h"')[0]
        assert f'data-form="{form}"' in awaiting
        assert "Consent/consent-jordan-harbor" in awaiting
        untitled = officer.browser.post(
            "/console/forms/approve", data={"csrf_token": officer.csrf, "form": form}
        )
        assert untitled.status_code == 422
        approved = officer.browser.post(
            "/console/forms/approve",
            data={
                "csrf_token": officer.csrf,
                "form": form,
                "title": "Harbor consent to share, rev. 3",
                "statements": ["right-to-revoke", "redisclosure-risk"],
            },
        )
        assert approved.status_code == 200, approved.text
        awaiting, done = approved.text.split('id="await-h"')[1].split('id="appr-h"')
        assert f'data-form="{form}"' not in awaiting
        assert "Harbor consent to share, rev. 3" in done
        assert "right-to-revoke, redisclosure-risk" in done
        assert "cora.compliance" in done


class TestCaseManager:
    def test_inbox_overdue_first_and_outbox(self, manager: Person, story_entered: object) -> None:
        page = manager.browser.get("/console/referrals")
        assert page.status_code == 200, page.text
        inbox, outbox = page.text.split('id="outbox-h"')
        assert inbox.index("to-harbor-overdue") < inbox.index("to-harbor-due")
        assert "overdue" in inbox
        assert "from-harbor" in outbox
        assert "Request cancellation of from-harbor" in outbox
        assert "Accept from-harbor" not in outbox  # the owner's move, not ours

    def test_accept_and_decline_move_the_task(
        self, manager: Person, story_entered: object, client: TestClient
    ) -> None:
        accepted = manager.browser.post(
            "/console/referrals/to-harbor-due/accept", data={"csrf_token": manager.csrf}
        )
        assert accepted.status_code == 200
        assert "Referral to-harbor-due: accepted" in accepted.text
        declined = manager.browser.post(
            "/console/referrals/to-harbor-overdue/decline",
            data={"csrf_token": manager.csrf, "reason": "at-capacity"},
        )
        assert "Referral to-harbor-overdue: rejected" in declined.text
        task = client.get("/fhir/Task/to-harbor-overdue").json()
        assert task["status"] == "rejected"
        assert task["statusReason"]["coding"][0]["code"] == "at-capacity"
        due = client.get("/fhir/Task/to-harbor-due").json()
        assert due["status"] == "accepted"
        twice = manager.browser.post(  # probe 11 L10: no version that says nothing new
            "/console/referrals/to-harbor-due/accept", data={"csrf_token": manager.csrf}
        )
        assert (twice.status_code, "accepted already" in twice.text) == (422, True)
        after = client.get("/fhir/Task/to-harbor-due").json()
        assert after["meta"]["versionId"] == due["meta"]["versionId"]
        again = manager.browser.post(
            "/console/referrals/to-harbor-overdue/accept", data={"csrf_token": manager.csrf}
        )
        assert again.status_code == 422
        assert "never changes again" in again.text

    def test_cancelling_work_under_way_asks_the_owner(
        self, manager: Person, story_entered: object, client: TestClient
    ) -> None:
        page = manager.browser.get("/console/referrals")
        assert "Request cancellation of from-harbor-under-way" in page.text
        asked = manager.browser.post(
            "/console/referrals/from-harbor-under-way/request-cancellation",
            data={"csrf_token": manager.csrf, "reason": "client moved out of state"},
        )
        assert "Referral from-harbor-under-way: cancellation requested" in asked.text
        aborts = client.get(
            "/fhir/Task", params={"focus": "Task/from-harbor-under-way", "code": "abort"}
        ).json()
        [abort] = [entry["resource"] for entry in aborts["entry"] if entry["resource"].get("code")]
        assert abort["status"] == "requested"
        assert abort["requester"]["reference"] == "Organization/harbor-detox"
        assert abort["owner"]["reference"] == "Organization/bayview-iop"
        assert abort["reasonCode"]["text"] == "client moved out of state"
        task = client.get("/fhir/Task/from-harbor-under-way").json()
        assert task["status"] == "in-progress"  # the owner cancels, once asked

    def test_the_owner_confirms_a_cancellation_it_was_asked_for(
        self, anonymous: TestClient, manager: Person, story_entered: object, client: TestClient
    ) -> None:
        not_asked = manager.browser.post(
            "/console/referrals/to-harbor-due/confirm-cancellation",
            data={"csrf_token": manager.csrf, "reason": "no"},
        )
        assert not_asked.status_code == 422
        manager.browser.post(
            "/console/referrals/from-harbor-under-way/request-cancellation",
            data={"csrf_token": manager.csrf, "reason": "client moved out of state"},
        )
        owner = sign_in_at_form(anonymous, "bay.manager", Role.CASE_MANAGER, ("bayview-iop",))
        inbox = owner.browser.get("/console/referrals").text.split('id="outbox-h"')[0]
        assert "cancellation requested" in inbox
        confirmed = owner.browser.post(
            "/console/referrals/from-harbor-under-way/confirm-cancellation",
            data={"csrf_token": owner.csrf, "reason": "cancelled as the referrer asked"},
        )
        assert "Referral from-harbor-under-way: cancelled" in confirmed.text
        task = client.get("/fhir/Task/from-harbor-under-way").json()
        assert task["status"] == "cancelled"
        assert "cancellation-confirmed" in str(task["businessStatus"])

    def test_a_decline_needs_a_reason(self, manager: Person, story_entered: object) -> None:
        answer = manager.browser.post(
            "/console/referrals/to-harbor-due/decline", data={"csrf_token": manager.csrf}
        )
        assert answer.status_code == 422
        assert "needs a reason" in answer.text

    def test_the_client_page_is_read_through_the_gate_and_logged(
        self, manager: Person, officer: Person, story_entered: object
    ) -> None:
        before = len(log_rows(officer, patient="Patient/jordan-rivers"))
        page = manager.browser.get("/console/clients/jordan-rivers")
        assert page.status_code == 200, page.text
        assert "Jordan Rivers" in page.text
        assert "housing" in page.text
        assert "Send FMLA certification" in page.text
        after = log_rows(officer, patient="Patient/jordan-rivers")
        assert len(after) > before
        assert {row["client_id"] for row in after[: len(after) - before]} == {"staff:casey.manager"}
        assert "Jordan" in manager.browser.get("/console/clients").text

    def test_another_programs_case_manager_sees_no_such_client(
        self, anonymous: TestClient, story_entered: object
    ) -> None:
        other = sign_in_at_form(anonymous, "olive.other", Role.CASE_MANAGER, ("elsewhere",))
        assert other.browser.get("/console/clients/jordan-rivers").status_code == 404
        assert "Jordan" not in other.browser.get("/console/clients").text
        assert "to-harbor" not in other.browser.get("/console/referrals").text

    def test_deliveries_page_lists_failed_and_withheld(self, manager: Person) -> None:
        page = manager.browser.get("/console/deliveries")
        assert page.status_code == 200
        assert "Nothing failed or withheld" in page.text
        missing = manager.browser.post(
            "/console/deliveries/424242/retry", data={"csrf_token": manager.csrf}
        )
        assert missing.status_code == 404

    def test_a_case_manager_sees_and_retries_only_its_programs_deliveries(
        self, anonymous: TestClient, manager: Person, settings: Settings, story_entered: object
    ) -> None:
        """Probe 9 L5: another program's withheld send (and its error, which tells whom that
        program referred and that a consent was missing) is that program's business."""
        pk = withheld_delivery(settings, "Task", "from-harbor")
        other = sign_in_at_form(anonymous, "olive.other", Role.CASE_MANAGER, ("elsewhere",))
        assert "Task/from-harbor" not in other.browser.get("/console/deliveries").text
        refused = other.browser.post(
            f"/console/deliveries/{pk}/retry", data={"csrf_token": other.csrf}
        )
        assert refused.status_code == 404
        assert "Task/from-harbor" in manager.browser.get("/console/deliveries").text
        retried = manager.browser.post(
            f"/console/deliveries/{pk}/retry", data={"csrf_token": manager.csrf}
        )
        assert retried.status_code == 200, retried.text
        assert f"Delivery {pk} queued again" in retried.text

    def test_a_case_managers_own_deliveries_are_listed_behind_other_programs_newer_ones(
        self, manager: Person, settings: Settings, story_entered: object
    ) -> None:
        """Review 9 #12: the list is filtered in the query, so a hundred newer failures of
        other programs do not use up the page; a record the program is only a party to (a
        referral to it, written by another program) is its own too."""
        withheld_delivery(settings, "Task", "from-harbor")
        withheld_delivery(settings, "Task", "to-harbor-due")
        for n in range(100):
            withheld_delivery(settings, "Task", f"someone-elses-{n}")
        withheld_delivery(settings, "ServiceRequest", "sr-someone-else")
        page = manager.browser.get("/console/deliveries").text
        assert "Task/from-harbor" in page
        assert "Task/to-harbor-due" in page
        assert "someone-else" not in page


def withheld_delivery(settings: Settings, resource_type: str, resource_id: str) -> int:
    """A send the gate withheld, as the dispatcher leaves it."""
    engine = make_engine(settings.database_url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        row = OutboxRow(
            created_at=now,
            partner_client_id="bayview-registration",
            channel="fhir",
            event="task-changed",
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=1,
            state="withheld",
            next_attempt_at=now,
            finished_at=now,
            error="the disclosure gate withheld the referral from this partner",
        )
        session.add(row)
        session.commit()
        assert row.pk is not None
        pk = row.pk
    engine.dispose()
    return pk


class TestBrowserEdges:
    def test_a_browser_opening_a_fhir_url_gets_json_it_shows(self, anonymous: TestClient) -> None:
        answer = anonymous.get("/fhir/metadata", headers=HTML)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert answer.json()["resourceType"] == "CapabilityStatement"
        api = anonymous.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
        assert api.headers["content-type"].startswith("application/fhir+xml")

    def test_docs_come_from_this_server_not_a_cdn(self, anonymous: TestClient) -> None:
        for page in ("/docs", "/redoc"):
            html = anonymous.get(page).text
            assert "cdn" not in html.lower(), page
            assert "fonts.googleapis" not in html
        assert anonymous.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
        assert anonymous.get("/static-offline-docs/redoc.standalone.js").status_code == 200

    def test_the_stylesheet_is_served(self, anonymous: TestClient) -> None:
        answer = anonymous.get("/console/static/console.css")
        assert answer.status_code == 200
        assert "focus-visible" in answer.text
