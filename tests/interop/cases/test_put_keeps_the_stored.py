"""A case-API PUT changes only what the manager changed (README, "The case API": the case API
never deletes what it cannot show). The EHR writes a resource over FHIR with elements the case
model has no field for or reads in a narrower form; a case manager reads it through the case
API and puts the value back, unchanged or with one field changed; the FHIR read shows every
element as the EHR wrote it, apart from what the manager changed."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.demo import CLIENT
from interop.services.staff import Role
from mappings.terminology import BUSINESS_STATUS, TASK_CODE
from tests.interop.cases.test_story import FHIR_JSON, enter_story, staff

Manager = tuple[TestClient, dict[str, str]]

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
CODED_REASON = {
    "coding": [{"system": ICD10CM, "code": "F11.20"}],
    "text": "Opioid dependence",
}
SNOMED_CATEGORY = {
    "coding": [{"system": SNOMED, "code": "410606002", "display": "Social service procedure"}]
}
RANGE_TARGET = {
    "measure": {"text": "Meetings attended each week"},
    "detailRange": {"low": {"value": 2, "unit": "meetings"}},
    "dueDate": "2026-10-31",
}
DURATION_TARGET = {"measure": {"text": "Sober days"}, "dueDuration": {"value": 90, "unit": "d"}}
AUTHORED_NOTE = {
    "authorString": "Dr. Okafor",
    "time": "2026-06-04T09:30:00.000Z",
    "text": "Housing navigator engaged",
}
INLINE_ACTIVITY = {"detail": {"status": "not-started", "description": "Weekly peer support call"}}


@pytest.fixture
def manager(anonymous: TestClient) -> Manager:
    """Jordan's story entered; Harbor Detox's case manager (the records' origin) signs in."""
    admin, csrf = staff(anonymous, "ada.admin", Role.ADMINISTRATOR)
    enter_story(admin, csrf)
    return staff(anonymous, "casey.keeps", Role.CASE_MANAGER, ("harbor-detox",))


def rewritten(client: TestClient, path: str, **elements: Any) -> dict[str, Any]:
    """The EHR's FHIR update of a stored resource with `elements`; what it stored, less meta."""
    resource = client.get(f"/fhir/{path}").json()
    resource.pop("meta")
    answer = client.put(f"/fhir/{path}", json={**resource, **elements}, headers=FHIR_JSON)
    assert answer.is_success, answer.text
    return stored(client, path)


def stored(client: TestClient, path: str) -> dict[str, Any]:
    resource: dict[str, Any] = client.get(f"/fhir/{path}").json()
    resource.pop("meta")
    return resource


def round_trip(manager: Manager, path: str, **changes: Any) -> dict[str, Any]:
    """GET the record through the case API, PUT its value back with `changes`; the answer."""
    browser, csrf = manager
    record = browser.get(f"/cases/{path}").json()
    answer = browser.put(f"/cases/{path}", json={**record["value"], **changes}, headers=csrf)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


class TestReferral:
    def test_an_unchanged_put_keeps_a_coded_reason_and_a_snomed_category(
        self, manager: Manager, client: TestClient
    ) -> None:
        written = rewritten(
            client,
            "ServiceRequest/referral-residential",
            reasonCode=[CODED_REASON],
            category=[SNOMED_CATEGORY],
        )
        round_trip(manager, "referrals/referral-residential")
        assert stored(client, "ServiceRequest/referral-residential") == written

    def test_a_changed_field_changes_and_the_rest_is_kept(
        self, manager: Manager, client: TestClient
    ) -> None:
        written = rewritten(
            client,
            "ServiceRequest/referral-residential",
            reasonCode=[CODED_REASON],
            category=[SNOMED_CATEGORY],
        )
        round_trip(manager, "referrals/referral-residential", urgency="routine")
        assert stored(client, "ServiceRequest/referral-residential") == {
            **written,
            "priority": "routine",
        }

    def test_an_edited_reason_keeps_its_coding(self, manager: Manager, client: TestClient) -> None:
        """The case model shows a reason as its text: a code it cannot show is not taken to be
        removed by an edit of the text (and a consent denying F11 still applies)."""
        written = rewritten(
            client, "ServiceRequest/referral-residential", reasonCode=[CODED_REASON]
        )
        round_trip(manager, "referrals/referral-residential", reason="Opioid use disorder")
        after = stored(client, "ServiceRequest/referral-residential")
        assert after["reasonCode"] == [{**CODED_REASON, "text": "Opioid use disorder"}]
        assert {k: v for k, v in after.items() if k != "reasonCode"} == {
            k: v for k, v in written.items() if k != "reasonCode"
        }

    def test_a_new_sdoh_category_stands_beside_a_category_the_model_cannot_show(
        self, manager: Manager, client: TestClient
    ) -> None:
        rewritten(client, "ServiceRequest/referral-residential", category=[SNOMED_CATEGORY])
        round_trip(manager, "referrals/referral-residential", sdoh_categories=["food-insecurity"])
        codes = [
            coding["code"]
            for category in stored(client, "ServiceRequest/referral-residential")["category"]
            for coding in category["coding"]
        ]
        assert codes == ["food-insecurity", "sdoh", "410606002"]


class TestGoal:
    def test_an_unchanged_put_keeps_targets_notes_and_displays(
        self, manager: Manager, client: TestClient
    ) -> None:
        written = rewritten(
            client,
            "Goal/goal-housing",
            target=[RANGE_TARGET, DURATION_TARGET],
            note=[AUTHORED_NOTE],
            addresses=[{"reference": "Condition/barrier-housing", "display": "Housing"}],
        )
        answer = round_trip(manager, "goals/goal-housing")
        assert any(u["path"].startswith("Goal.target") for u in answer["unmapped"])
        assert stored(client, "Goal/goal-housing") == written

    def test_a_new_note_is_added_beside_the_authored_one(
        self, manager: Manager, client: TestClient
    ) -> None:
        written = rewritten(
            client, "Goal/goal-housing", target=[RANGE_TARGET], note=[AUTHORED_NOTE]
        )
        round_trip(
            manager, "goals/goal-housing", notes=["Housing navigator engaged", "Viewing Friday"]
        )
        assert stored(client, "Goal/goal-housing") == {
            **written,
            "note": [AUTHORED_NOTE, {"text": "Viewing Friday"}],
        }

    def test_a_target_detail_set_by_the_manager_replaces_the_range(
        self, manager: Manager, client: TestClient
    ) -> None:
        """One choice element, one type: a detail the manager sets takes the range's place
        rather than standing beside it (which R4 forbids)."""
        rewritten(client, "Goal/goal-housing", target=[RANGE_TARGET])
        browser, _ = manager
        (target,) = browser.get("/cases/goals/goal-housing").json()["value"]["targets"]
        round_trip(manager, "goals/goal-housing", targets=[{**target, "detail": "three"}])
        assert stored(client, "Goal/goal-housing")["target"] == [
            {"measure": RANGE_TARGET["measure"], "detailString": "three", "dueDate": "2026-10-31"}
        ]


class TestCarePlan:
    def test_an_unchanged_put_keeps_inline_activities_categories_and_addresses(
        self, manager: Manager, client: TestClient
    ) -> None:
        plan = client.get("/fhir/CarePlan/plan-jordan").json()
        written = rewritten(
            client,
            "CarePlan/plan-jordan",
            activity=[INLINE_ACTIVITY, *plan["activity"]],
            category=[*plan["category"], SNOMED_CATEGORY],
            addresses=[
                {"reference": "Condition/barrier-housing", "display": "Housing instability"},
                {"display": "Unsafe home environment"},
            ],
            note=[{"text": "Prefers morning appointments"}],
        )
        round_trip(manager, "care-plans/plan-jordan")
        assert stored(client, "CarePlan/plan-jordan") == written

    def test_a_removed_activity_goes_and_the_inline_one_stays(
        self, manager: Manager, client: TestClient
    ) -> None:
        plan = client.get("/fhir/CarePlan/plan-jordan").json()
        written = rewritten(
            client, "CarePlan/plan-jordan", activity=[INLINE_ACTIVITY, *plan["activity"]]
        )
        browser, _ = manager
        value = browser.get("/cases/care-plans/plan-jordan").json()["value"]
        round_trip(manager, "care-plans/plan-jordan", activities=value["activities"][1:])
        after = stored(client, "CarePlan/plan-jordan")
        assert after["activity"] == [plan["activity"][1], INLINE_ACTIVITY]
        assert after["title"] == written["title"]


def referral_task(authored_on: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "task-residential",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                "SDOHCC-TaskForReferralManagement"
            ]
        },
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:7d0c6a2e-1f3b-4c55"}],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": "ServiceRequest/referral-residential"},
        "for": {"reference": f"Patient/{CLIENT}"},
        "authoredOn": authored_on,
        "requester": {"reference": "Organization/harbor-detox"},
        "owner": {"reference": "Organization/riverside-residential"},
        "restriction": {"period": {"end": "2026-12-14T20:00:00.000Z"}},
    }


class TestReferralTask:
    @pytest.fixture
    def written(self, manager: Manager, client: TestClient) -> dict[str, Any]:
        task = referral_task("2026-12-07T20:00:00Z")
        answer = client.put("/fhir/Task/task-residential", json=task, headers=FHIR_JSON)
        assert answer.status_code == 201, answer.text
        return stored(client, "Task/task-residential")

    def test_an_unchanged_put_is_no_change(
        self, written: dict[str, Any], manager: Manager, client: TestClient
    ) -> None:
        round_trip(manager, "referral-tasks/task-residential")
        assert stored(client, "Task/task-residential") == written
        assert written["authoredOn"] == "2026-12-07T20:00:00Z"

    def test_the_requester_cancels_without_touching_authored_on(
        self, written: dict[str, Any], manager: Manager, client: TestClient
    ) -> None:
        reason = {"code": "patient-declined", "text": "Jordan chose another program"}
        round_trip(
            manager, "referral-tasks/task-residential", status="cancelled", status_reason=reason
        )
        after = stored(client, "Task/task-residential")
        assert after["status"] == "cancelled"
        assert after["statusReason"]["text"] == "Jordan chose another program"
        assert after["authoredOn"] == "2026-12-07T20:00:00Z"
        assert after["restriction"] == written["restriction"]


def test_a_handoffs_business_status_coding_the_model_cannot_show_is_kept(
    manager: Manager, client: TestClient, anonymous: TestClient
) -> None:
    """A handoff (two resources, Task and ServiceRequest) keeps a coding the model reports."""
    task = client.get("/fhir/Task/handoff-to-aftercare").json()
    extra = {"system": "http://example.org/local-status", "code": "bed-held"}
    status = task.get("businessStatus") or {
        "coding": [{"system": BUSINESS_STATUS.url, "code": "accepted"}]
    }
    written = rewritten(
        client,
        "Task/handoff-to-aftercare",
        businessStatus={**status, "coding": [*status["coding"], extra]},
    )
    round_trip(staff(anonymous, "ada.keeps", Role.ADMINISTRATOR), "handoffs/handoff-to-aftercare")
    assert stored(client, "Task/handoff-to-aftercare") == written
