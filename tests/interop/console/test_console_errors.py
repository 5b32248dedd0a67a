"""What the console answers when a page is asked for wrongly (its own HTML error page, never
the API's problem detail, which a browser shows as raw JSON), the patient named either way
the console's forms suggest, and an administrator's client pages, read as the case API reads
them."""

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from interop.services.staff import Role
from tests.interop.console.conftest import Person, emergency_disclosure, sign_in_at_form
from tests.interop.console.test_console import log_rows

TOO_LARGE = "99999999999999999999"  # past any BIGINT


def error_page(answer: Response, status: int, message: str) -> None:
    """The console's error page with the status, saying `message`, kept from caches."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert '<p class="error" role="alert">' in answer.text
    assert message in answer.text
    assert "Back to the console" in answer.text


@pytest.fixture
def administrator(anonymous: TestClient) -> Person:
    return sign_in_at_form(anonymous, "ada.admin", Role.ADMINISTRATOR)


class TestAddressesThatNameNothing:
    """Probe finding 8: malformed numbers were 422 problem details, or 500 past a BIGINT."""

    def test_a_decision_number_that_is_no_number_is_no_page(self, officer: Person) -> None:
        for seq in ("abc", TOO_LARGE, "0"):
            error_page(officer.browser.get(f"/console/disclosures/{seq}"), 404, "no such page")

    def test_signing_off_a_decision_that_does_not_exist_is_not_found(self, officer: Person) -> None:
        for seq in (TOO_LARGE, "abc"):
            answer = officer.browser.post(
                f"/console/emergencies/{seq}/sign-off", data={"csrf_token": officer.csrf}
            )
            error_page(answer, 404, "no such page")
        unknown = officer.browser.post(
            "/console/emergencies/424242/sign-off", data={"csrf_token": officer.csrf}
        )
        error_page(unknown, 404, "no decision has number 424242")

    def test_retrying_a_delivery_number_past_any_row_is_not_found(self, manager: Person) -> None:
        answer = manager.browser.post(
            f"/console/deliveries/{TOO_LARGE}/retry", data={"csrf_token": manager.csrf}
        )
        error_page(answer, 404, "no such page")

    def test_a_client_id_no_client_can_have_is_not_found(self, manager: Person) -> None:
        error_page(manager.browser.get("/console/clients/not%20an%20id"), 404, "no such page")

    def test_a_revocation_of_a_version_past_any_row_is_refused_on_the_page(
        self, officer: Person
    ) -> None:
        answer = officer.browser.post(
            "/console/consents/some-consent/revoke",
            data={"csrf_token": officer.csrf, "version": TOO_LARGE, "received": "2026-12-01"},
        )
        error_page(answer, 400, "version (input should be less than or equal to")


class TestAccountingLetter:
    def test_the_patient_is_named_either_way(
        self, anonymous: TestClient, client: TestClient, officer: Person
    ) -> None:
        """The compliance page suggests `Patient/id`, as the other filters take it."""
        patient = emergency_disclosure(anonymous)
        for named in (patient, patient.removeprefix("Patient/")):
            letter = officer.browser.get("/console/accounting", params={"patient": named})
            assert letter.status_code == 200, letter.text
            assert "medical emergency" in letter.text
            assert letter.headers["cache-control"] == "no-store"
        form = officer.browser.get("/console/compliance").text
        assert 'pattern="(Patient/)?[A-Za-z0-9\\-.]{1,64}"' in form

    def test_without_a_patient_or_with_an_unknown_one_the_page_says_so(
        self, officer: Person
    ) -> None:
        error_page(officer.browser.get("/console/accounting"), 400, "give the patient&#39;s id")
        unknown = officer.browser.get("/console/accounting", params={"patient": "Patient/x"})
        error_page(unknown, 404, "Patient/x is not known")
        too_long = officer.browser.get("/console/accounting", params={"patient": "x" * 81})
        error_page(too_long, 400, "Check the form: patient")


class TestFilters:
    def test_a_date_that_is_no_date_is_shown_and_the_last_day_is_a_date(
        self, officer: Person
    ) -> None:
        bad = officer.browser.get("/console/disclosures", params={"date_from": "notadate"})
        assert bad.status_code == 400
        assert "&#39;notadate&#39; is not a date (YYYY-MM-DD)" in bad.text
        assert "0 decisions shown" in bad.text
        last = officer.browser.get("/console/disclosures", params={"date_to": "9999-12-31"})
        assert last.status_code == 200, last.text
        past = officer.browser.get(
            "/console/disclosures", params={"date_from": "9999-12-31T23:00-05:00"}
        )
        assert past.status_code == 400
        assert "is not a date" in past.text


class TestAdministratorsClients:
    """Probe finding 9: README, "administrators read every client"; the console listed none
    and answered 404 where `GET /cases/clients/{id}` answered 200."""

    def test_an_administrator_lists_and_opens_every_client(
        self, administrator: Person, officer: Person, story_entered: object
    ) -> None:
        listing = administrator.browser.get("/console/clients")
        assert listing.status_code == 200, listing.text
        assert 'href="/console/clients/jordan-rivers"' in listing.text
        before = len(log_rows(officer))
        page = administrator.browser.get("/console/clients/jordan-rivers")
        assert page.status_code == 200, page.text
        assert "Jordan Rivers" in page.text
        assert "Send FMLA certification" in page.text
        through_the_page = log_rows(officer)[: len(log_rows(officer)) - before]
        assert through_the_page, "the administrator's read is in the disclosure log"
        assert {row["client_id"] for row in through_the_page} == {"staff:ada.admin"}
        read = [row for row in through_the_page if row["records"] == "Patient/jordan-rivers"]
        assert read, through_the_page

        before = len(log_rows(officer))
        api = administrator.browser.get("/cases/clients/jordan-rivers")
        assert api.status_code == 200, api.text
        through_the_api = log_rows(officer)[: len(log_rows(officer)) - before]

        def shown(rows: list[dict[str, str]]) -> set[tuple[str, ...]]:
            return {
                (r["client_id"], r["recipient"], r["purposes"], r["rule"], r["records"])
                for r in rows
                if r["records"] == "Patient/jordan-rivers"
            }

        assert shown(through_the_api) == shown(read)

    def test_an_unknown_client_is_not_found_for_the_administrator_too(
        self, administrator: Person, story_entered: object
    ) -> None:
        answer = administrator.browser.get("/console/clients/nobody-here")
        error_page(answer, 404, "No client you may read has that id.")
