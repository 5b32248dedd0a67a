"""Staff in a browser's shoes: signed in through the HTML form, forms posted with the token
the page carries; the demo story and referrals entered through the case service."""

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from interop.services.cases import KINDS_BY_NAME, CaseService
from interop.services.demo import CLIENT, approve_form, story
from interop.services.staff import Role, StaffPrincipal, StaffService
from mappings.model import (
    Id,
    Party,
    PartyKind,
    Period,
    Ref,
    ReferralTask,
    TaskStatus,
)
from tests.builders import part2_consent
from tests.conftest import approve_part2_form, bearer, register_partner
from tests.interop.auth.test_staff import PASSWORD
from tests.interop.disclosure.test_audit import emergency_department, opioid_use_disorder

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@dataclass
class Person:
    browser: TestClient
    csrf: str


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


def sign_in_at_form(
    anonymous: TestClient, username: str, role: Role, programs: tuple[str, ...] = ()
) -> Person:
    staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    staff.add(username, PASSWORD, role, programs, datetime.now(UTC))
    browser = TestClient(anonymous.app, headers=HTML)
    form = browser.get("/auth/login")
    landed = browser.post(
        "/auth/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert landed.status_code == 200, landed.text
    assert landed.url.path == "/console"
    return Person(browser, csrf_of(landed.text))


@pytest.fixture
def officer(anonymous: TestClient) -> Person:
    return sign_in_at_form(anonymous, "cora.compliance", Role.COMPLIANCE_OFFICER)


@pytest.fixture
def manager(anonymous: TestClient) -> Person:
    return sign_in_at_form(anonymous, "casey.manager", Role.CASE_MANAGER, ("harbor-detox",))


def referral_task(
    ident: str, requester: str, owner: str, deadline: datetime, status: TaskStatus
) -> ReferralTask:
    return ReferralTask(
        id=Id(ident),
        referral_id=Ref(f"sr-{ident}"),
        client_id=Ref(CLIENT),
        requester=Party(PartyKind.PROGRAM, Ref(requester)),
        owner=Party(PartyKind.PROGRAM, Ref(owner)),
        status=status,
        authored_on=deadline - timedelta(days=3),
        response_deadline=deadline,
    )


@pytest.fixture
def story_entered(anonymous: TestClient, client: TestClient) -> dict[str, ReferralTask]:
    return enter_story(anonymous, client)


def enter_story(anonymous: TestClient, client: TestClient) -> dict[str, ReferralTask]:
    """Jordan's story, Jordan's consent to Harbor Detox, and three open referrals: two to
    Harbor Detox (one overdue) and one from it; `client` is the program's own EHR."""
    cases: CaseService = anonymous.app.state.cases  # type: ignore[attr-defined]
    approve_form(anonymous.app.state.consent_forms)  # type: ignore[attr-defined]
    approve_part2_form(anonymous)
    for seed in story():
        cases.put(seed.kind, seed.value, case_manager_of(anonymous, seed.program))
    consent = part2_consent(
        f"Patient/{CLIENT}", "Organization/riverside-residential", "Organization/harbor-detox"
    )
    response = client.put(
        "/fhir/Consent/consent-jordan-harbor",
        json={**consent, "id": "consent-jordan-harbor"},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code in (200, 201), response.text
    now = datetime.now(UTC)
    tasks = {
        "overdue": referral_task(
            "to-harbor-overdue",
            "riverside-residential",
            "harbor-detox",
            now - timedelta(days=1),
            TaskStatus.REQUESTED,
        ),
        "due": referral_task(
            "to-harbor-due",
            "riverside-residential",
            "harbor-detox",
            now + timedelta(days=2),
            TaskStatus.REQUESTED,
        ),
        "sent": referral_task(
            "from-harbor",
            "harbor-detox",
            "bayview-iop",
            now + timedelta(days=5),
            TaskStatus.REQUESTED,
        ),
        "under-way": replace(
            referral_task(
                "from-harbor-under-way",
                "harbor-detox",
                "bayview-iop",
                now - timedelta(days=5),
                TaskStatus.IN_PROGRESS,
            ),
            execution=Period(now - timedelta(days=4)),
        ),
    }
    for task in tasks.values():
        cases.put(
            KINDS_BY_NAME["referral-tasks"], task, case_manager_of(anonymous, task.requester.ref)
        )
    return tasks


def case_manager_of(anonymous: TestClient, program: str) -> StaffPrincipal:
    """Records are written by a case manager of the program they come from (their origin),
    whose account is on file: its program then records consents for itself."""
    staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    username = f"seed.{program}"
    if not staff.exists(username):
        staff.add(username, None, Role.CASE_MANAGER, (program,), datetime.now(UTC))
    return StaffPrincipal(username, Role.CASE_MANAGER, (program,))


def emergency_disclosure(anonymous: TestClient) -> str:
    """A detox unit (a Part 2 program) records a diagnosis; an emergency department then
    reads it by breaking the glass (§2.51 facts in its token)."""
    detox = register_partner(anonymous, name="Northside Detox", part2_program=True)
    as_detox = {"Authorization": bearer(anonymous, detox), **FHIR_JSON}
    person = anonymous.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Glass", "given": ["Sam"]}]},
        headers=as_detox,
    )
    assert person.status_code == 201, person.text
    patient = f"Patient/{person.json()['id']}"
    condition = anonymous.post(
        "/fhir/Condition", json=opioid_use_disorder(patient, detox.organization), headers=as_detox
    ).json()
    headers = emergency_department(anonymous, patient)
    read = anonymous.get(f"/fhir/Condition/{condition['id']}", headers=headers)
    assert read.status_code == 200, read.text
    return patient
