"""The staff console in a real browser (issue 15): sign in, each view with the story's data,
an accept and a decline, a break-the-glass sign-off, a CSV export, a 403 for the wrong role,
a form without its CSRF token refused, /docs offline and a /fhir URL shown as text."""

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.console.conftest import SCREENSHOTS, Console
from tests.interop.auth.test_staff import PASSWORD

pytestmark = pytest.mark.e2e


def sign_in(page: Any, console: Console, username: str) -> None:
    page.goto(f"{console.root}/auth/login")
    page.get_by_label("Name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.root}/console")


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


class TestSignIn:
    def test_signing_in_lands_on_the_console(self, page: Any, console: Console) -> None:
        page.goto(f"{console.root}/")
        page.wait_for_url(f"{console.root}/auth/login")
        shot(page, "01-sign-in")
        sign_in(page, console, "cora.compliance")
        assert page.get_by_role("heading", level=1).inner_text().startswith("Good day")
        shot(page, "02-console-home")
        page.keyboard.press("Tab")  # the keyboard reaches the skip link first, then the menu
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"

    def test_a_wrong_password_shows_on_the_form(self, page: Any, console: Console) -> None:
        page.goto(f"{console.root}/auth/login")
        page.get_by_label("Name").fill("cora.compliance")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        assert "wrong" in alert.inner_text()
        assert page.get_by_label("Password").is_visible()  # still the form, ready to retry


class TestComplianceOfficer:
    def test_decisions_filter_open_and_export(self, page: Any, console: Console) -> None:
        sign_in(page, console, "cora.compliance")
        page.get_by_role("link", name="Disclosures", exact=True).click()
        page.get_by_label("Purpose").fill("ETREAT")
        page.get_by_role("button", name="Filter").click()
        rows = page.locator("tbody tr")
        assert rows.count() >= 1
        assert "ETREAT" in rows.first.inner_text()
        shot(page, "03-disclosures")
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        exported = download.value
        assert exported.suggested_filename == "disclosures.csv"
        text = Path(exported.path()).read_text(encoding="utf-8")
        assert text.startswith("seq,recorded,outcome,rule")
        assert "ETREAT" in text
        rows.first.get_by_role("link").click()
        assert "Dr. Robin Example" in page.locator("dl.facts").inner_text()
        shot(page, "04-decision")

    def test_break_the_glass_sign_off(self, page: Any, console: Console) -> None:
        sign_in(page, console, "cora.compliance")
        page.get_by_role("link", name="Break the glass", exact=True).click()
        assert "County General Emergency Department" in page.locator("tbody").inner_text()
        shot(page, "05-break-the-glass")
        page.get_by_role("button", name="Sign off").first.click()
        assert "signed off" in page.get_by_role("status").inner_text()
        assert "Signed off by cora.compliance" in page.locator("tbody").inner_text()

    def test_chain_chart_and_accounting_letter(self, page: Any, console: Console) -> None:
        sign_in(page, console, "cora.compliance")
        page.get_by_role("link", name="Compliance", exact=True).click()
        assert page.get_by_test_id("chain-status").inner_text().startswith("Intact")
        assert page.locator("svg.chart rect").count() >= 1
        shot(page, "06-compliance")
        page.get_by_label("Patient", exact=True).fill(console.emergency_patient)  # Patient/id
        page.get_by_role("button", name="Open the letter").click()
        assert "medical emergency" in page.content()
        shot(page, "07-accounting-letter")

    def test_consent_registry(self, page: Any, console: Console) -> None:
        sign_in(page, console, "cora.compliance")
        page.get_by_role("link", name="Consents", exact=True).click()
        harbor = page.locator("article[data-consent='consent-jordan-harbor']")
        assert "Organization/harbor-detox" in harbor.inner_text()
        shot(page, "08-consents")
        page.get_by_role("link", name="Forms", exact=True).click()
        awaiting = page.locator("section", has=page.locator("#await-h"))
        assert "Consent/consent-jordan-harbor" in awaiting.inner_text()
        shot(page, "08-consent-forms")


class TestCaseManager:
    def test_referrals_accept_and_decline(self, page: Any, console: Console) -> None:
        sign_in(page, console, "casey.manager")
        page.get_by_role("link", name="Referrals", exact=True).click()
        inbox = page.locator("section", has=page.locator("#inbox-h")).locator("tbody tr")
        assert inbox.first.get_attribute("data-task") == "to-harbor-overdue"
        shot(page, "09-referrals")
        page.get_by_role("button", name="Accept to-harbor-due").click()
        assert "Referral to-harbor-due: accepted" in page.get_by_role("status").inner_text()
        page.get_by_label("Reason").first.select_option("at-capacity")
        page.get_by_role("button", name="Decline to-harbor-overdue").click()
        assert "Referral to-harbor-overdue: rejected" in page.get_by_role("status").inner_text()

    def test_the_clients_page(self, page: Any, console: Console) -> None:
        sign_in(page, console, "casey.manager")
        page.get_by_role("link", name="Clients", exact=True).click()
        page.get_by_role("link", name="Jordan Rivers").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Jordan Rivers"
        assert "housing" in page.content()
        shot(page, "10-client")
        page.set_viewport_size({"width": 820, "height": 1180})
        shot(page, "11-client-tablet")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("link", name="Deliveries", exact=True).click()
        assert page.get_by_role("heading", level=1).is_visible()

    def test_a_compliance_page_is_403_for_a_case_manager(self, page: Any, console: Console) -> None:
        sign_in(page, console, "casey.manager")
        response = page.goto(f"{console.root}/console/disclosures")
        assert response.status == 403
        assert "compliance-officer" in page.get_by_role("alert").inner_text()

    def test_a_form_without_its_csrf_token_is_refused(self, page: Any, console: Console) -> None:
        sign_in(page, console, "casey.manager")
        page.goto(f"{console.root}/console/referrals")
        form = page.locator("form[action$='/request-cancellation']").first
        form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
        form.get_by_role("textbox").fill("no longer needed")
        form.get_by_role("button").click()
        assert "security token" in page.get_by_role("alert").inner_text()


class TestOfflineAndFhir:
    def test_docs_render_without_a_cdn(self, page: Any, console: Console) -> None:
        page.goto(f"{console.root}/docs")
        page.locator(".swagger-ui .info .title").wait_for()
        assert "Recovery Interop" in page.locator(".swagger-ui .info .title").inner_text()
        shot(page, "12-docs", full_page=False)

    def test_a_fhir_url_is_shown_not_downloaded(self, page: Any, console: Console) -> None:
        response = page.goto(f"{console.root}/fhir/metadata")
        assert response.headers["content-type"].startswith("application/json")
        assert '"CapabilityStatement"' in page.locator("body").inner_text()
