"""The cancellation handshake at the FHIR API (REFERRALS.md, in-progress/on-hold -> cancelled;
COW IG cancellation): the requester asks, by businessStatus or by an abort Task, and only then
may the owner cancel work under way; every refusal is a 422 business-rule naming the rule."""

from typing import Any

from fastapi.testclient import TestClient

from mappings.terminology import BUSINESS_STATUS
from tests.conftest import RegisteredPartner
from tests.interop.fhir.test_task_workflow import as_, put, referral

ASKED = {
    "businessStatus": {
        "coding": [{"system": BUSINESS_STATUS.url, "code": "cancellation-requested"}]
    }
}
REASON = {"statusReason": {"text": "Client moved out of area"}}
HANDSHAKE = (
    "the owner cancels work under way (in-progress) only after a cancellation request "
    "(an abort Task focused on it, or businessStatus cancellation-requested set by the requester)"
)


def under_way(
    anonymous: TestClient, client: TestClient
) -> tuple[dict[str, Any], RegisteredPartner, RegisteredPartner]:
    """A referral its owner accepted and started."""
    shared, harbor, bayview = referral(anonymous, client)
    accepted = put(anonymous, bayview, {**shared, "status": "accepted"}).json()
    started = {
        **accepted,
        "status": "in-progress",
        "executionPeriod": {"start": "2026-11-03"},
        "businessStatus": {"coding": [{"system": BUSINESS_STATUS.url, "code": "admitted"}]},
    }
    answer = put(anonymous, bayview, started)
    assert answer.status_code == 200, answer.text
    return answer.json(), harbor, bayview


def refusal(answer: Any) -> tuple[int, str, str]:
    [issue] = answer.json()["issue"]
    return answer.status_code, issue["code"], issue["diagnostics"]


def test_the_owner_cannot_cancel_work_under_way_unasked(
    anonymous: TestClient, client: TestClient
) -> None:
    task, _harbor, bayview = under_way(anonymous, client)
    answer = put(anonymous, bayview, {**task, "status": "cancelled", **REASON})
    assert refusal(answer) == (422, "business-rule", HANDSHAKE)
    assert client.get(f"/fhir/Task/{task['id']}").json()["status"] == "in-progress"


def test_the_requester_asks_by_business_status_and_then_the_owner_cancels(
    anonymous: TestClient, client: TestClient
) -> None:
    task, harbor, bayview = under_way(anonymous, client)
    itself = put(anonymous, harbor, {**task, "status": "cancelled", **REASON})
    assert refusal(itself) == (
        422,
        "business-rule",
        "only the owner moves a Task from in-progress to cancelled",
    )
    asked = put(anonymous, harbor, {**task, **ASKED})
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "in-progress"
    cancelled = put(anonymous, bayview, {**asked.json(), "status": "cancelled", **REASON})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


def test_the_owner_cannot_ask_itself(anonymous: TestClient, client: TestClient) -> None:
    task, _harbor, bayview = under_way(anonymous, client)
    answer = put(anonymous, bayview, {**task, **ASKED})
    assert refusal(answer) == (
        422,
        "business-rule",
        "only the requester asks to cancel (businessStatus cancellation-requested)",
    )


def abort(task: dict[str, Any], requester: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A cancellation request: a Task with code `abort` focused on the referral's Task."""
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "abort"}]
        },
        "focus": {"reference": f"Task/{task['id']}"},
        "for": task["for"],
        "requester": requester,
        "owner": task["owner"],
        **extra,
    }


def ask(anonymous: TestClient, partner: RegisteredPartner, body: dict[str, Any]) -> None:
    made = anonymous.post("/fhir/Task", json=body, headers=as_(anonymous, partner))
    assert made.status_code == 201, made.text


def test_an_abort_task_by_the_requester_is_a_request(
    anonymous: TestClient, client: TestClient
) -> None:
    task, harbor, bayview = under_way(anonymous, client)
    ask(anonymous, harbor, abort(task, task["requester"]))
    cancelled = put(anonymous, bayview, {**task, "status": "cancelled", **REASON})
    assert cancelled.status_code == 200, cancelled.text


def test_a_withdrawn_abort_task_asks_nothing(anonymous: TestClient, client: TestClient) -> None:
    task, harbor, bayview = under_way(anonymous, client)
    withdrawn = abort(
        task, task["requester"], status="cancelled", statusReason={"text": "asked by mistake"}
    )
    ask(anonymous, harbor, withdrawn)
    answer = put(anonymous, bayview, {**task, "status": "cancelled", **REASON})
    assert refusal(answer) == (422, "business-rule", HANDSHAKE)


def test_an_abort_task_the_owner_made_itself_asks_nothing(
    anonymous: TestClient, client: TestClient
) -> None:
    task, _harbor, bayview = under_way(anonymous, client)
    ask(anonymous, bayview, abort(task, {"reference": bayview.organization}))
    answer = put(anonymous, bayview, {**task, "status": "cancelled", **REASON})
    assert refusal(answer) == (422, "business-rule", HANDSHAKE)


def test_an_abort_task_the_owner_made_in_the_requesters_name_asks_nothing(
    anonymous: TestClient, client: TestClient
) -> None:
    """Who asked is who wrote the abort Task, as recorded, not whom its body names."""
    task, _harbor, bayview = under_way(anonymous, client)
    ask(anonymous, bayview, abort(task, task["requester"]))
    answer = put(anonymous, bayview, {**task, "status": "cancelled", **REASON})
    assert refusal(answer) == (422, "business-rule", HANDSHAKE)
    assert client.get(f"/fhir/Task/{task['id']}").json()["status"] == "in-progress"
