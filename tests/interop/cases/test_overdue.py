"""Overdue work (REFERRALS.md: restriction.period.end is the response deadline; a handoff's
planned date is its order's occurrence): `Task?restriction-period=` with its date prefixes at
the FHIR API, and the case API's view across a program's clients."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.staff import Role
from tests.builders import patient, service_request, task
from tests.interop.cases.test_story import staff
from tests.interop.fhir.test_crud import create
from tests.interop.fhir.test_search import ids, search

HARBOR, BAYVIEW = "Organization/harbor", "Organization/bayview"
FULFILL = "http://hl7.org/fhir/CodeSystem/task-code|fulfill"


def deadline(end: str) -> dict[str, Any]:
    return {"restriction": {"period": {"end": end}}}


@pytest.fixture
def work(client: TestClient) -> dict[str, str]:
    """Bayview refers to Harbor: one referral unanswered past its deadline, one with time
    left, one answered late; two handoffs past their planned date, one not yet under way."""
    person = f"Patient/{create(client, patient())['id']}"
    order = create(client, service_request(person, requester=BAYVIEW))
    focus = f"ServiceRequest/{order['id']}"
    made: dict[str, str] = {}
    for name, status, end in (
        ("late", "requested", "2026-01-10T00:00:00Z"),
        ("in-time", "received", "2099-01-01T00:00:00Z"),
        ("answered", "accepted", "2026-01-10T00:00:00Z"),
    ):
        body = task(focus, person, status, BAYVIEW, owner={"reference": HARBOR}, **deadline(end))
        made[name] = create(client, body)["id"]
    for n, status, extra in (
        (1, "accepted", {}),
        (2, "in-progress", {"executionPeriod": {"start": "2026-02-01"}}),
    ):
        planned = service_request(
            person,
            placer=f"HANDOFF-{n}",
            requester=BAYVIEW,
            performer=[{"reference": HARBOR}],
            occurrenceDateTime="2026-02-01",
        )
        transfer = f"ServiceRequest/{create(client, planned)['id']}"
        body = task(transfer, person, status, BAYVIEW, owner={"reference": HARBOR}, **extra)
        made[f"handoff-{status}"] = create(client, body)["id"]
    return made


def found(client: TestClient, **params: str) -> set[str]:
    return set(ids(search(client, "Task", **params)))


def test_ends_before_finds_deadlines_passed_and_no_others(
    client: TestClient, work: dict[str, str]
) -> None:
    assert found(client, **{"restriction-period": "eb2026-06-01"}) == {
        work["late"],
        work["answered"],
    }
    assert found(client, **{"restriction-period": "eb2026-01-11"}) == {
        work["late"],
        work["answered"],
    }
    assert found(client, **{"restriction-period": "eb2026-01-10"}) == set()
    assert found(client, **{"restriction-period": "gt2026-06-01"}) == {work["in-time"]}
    assert found(client, **{"restriction-period": "ap2098-12-31"}) == {work["in-time"]}


def test_the_overdue_referral_query_a_partner_sends(
    client: TestClient, work: dict[str, str]
) -> None:
    overdue = found(
        client,
        owner=HARBOR,
        code=FULFILL,
        status="requested,received",
        **{"restriction-period": "eb2026-12-01T00:00:00Z"},
    )
    assert overdue == {work["late"]}


def test_a_malformed_date_is_refused(client: TestClient) -> None:
    answer = client.get("/fhir/Task", params={"restriction-period": "ebsoon"})
    assert answer.status_code == 400


def test_the_case_view_lists_a_programs_overdue_work(
    anonymous: TestClient, work: dict[str, str]
) -> None:
    browser, _csrf = staff(anonymous, "casey.harbor", Role.CASE_MANAGER, ("harbor",))
    answer = browser.get("/cases/overdue", params={"program": "harbor"})
    assert answer.status_code == 200, answer.text
    listed = {(item["task"], item["side"], item["past"], item["due"]) for item in answer.json()}
    assert listed == {
        (f"Task/{work['late']}", "owner", "response-deadline", "2026-01-10T00:00:00Z"),
        (f"Task/{work['handoff-accepted']}", "owner", "planned-date", "2026-02-01"),
    }
    asking = browser.get("/cases/overdue", params={"program": "bayview"})
    assert asking.status_code == 403
    sender, _ = staff(anonymous, "sam.bayview", Role.CASE_MANAGER, ("bayview",))
    theirs = sender.get("/cases/overdue", params={"program": "bayview"}).json()
    assert {(item["task"], item["side"]) for item in theirs} == {
        (f"Task/{work['late']}", "requester"),
        (f"Task/{work['handoff-accepted']}", "requester"),
    }
