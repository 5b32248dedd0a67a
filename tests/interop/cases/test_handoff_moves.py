"""A handoff moved through in-progress to completed with PUT /cases/handoffs/{id}, as
REFERRALS.md's table asks (in-progress carries executionPeriod.start; completed carries its end
and an output), and completed only once its transfer checklist is done (issue 12, item 5)."""

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from interop.services.staff import Role
from mappings import handoff
from mappings.model import (
    ChecklistItem,
    Code,
    Handoff,
    Id,
    LevelOfCare,
    Period,
    Ref,
    TaskInput,
    TaskStatus,
    TransitionItem,
    TypedRef,
)
from tests.interop.cases.test_story import search, staff

URL = "/cases/handoffs/handoff-1"
STARTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENDED = datetime(2026, 3, 2, 11, 30, tzinfo=UTC)
INTAKE = TaskInput(
    Code("http://snomed.info/sct", "305334001", "Admission to substance misuse service"),
    TypedRef("Encounter", Ref("intake-at-bayview")),
)


def accepted() -> Handoff:
    """Residential to IOP, accepted; records sent, intake not yet confirmed, no med rec."""
    return Handoff(
        id=Id("handoff-1"),
        referral_id=Id("handoff-1-referral"),
        client_id=Ref("alex"),
        from_program_id=Ref("riverside-residential"),
        from_episode_id=Ref("episode-residential"),
        from_level=LevelOfCare.RESIDENTIAL_HIGH_INTENSITY,
        to_program_id=Ref("bayview-iop"),
        to_level=LevelOfCare.INTENSIVE_OUTPATIENT,
        planned_date=date(2026, 3, 2),
        authored_on=datetime(2026, 2, 20, 9, 0, tzinfo=UTC),
        status=TaskStatus.ACCEPTED,
        transfer_summary=Ref("handoff-1-transfer-summary"),
        consent=Ref("alex-part2-consent"),
        checklist=(
            ChecklistItem(TransitionItem.RECORDS_SENT, True),
            ChecklistItem(TransitionItem.INTAKE_CONFIRMED, False),
        ),
    )


def body(handoff: Handoff) -> dict[str, Any]:
    dumped: dict[str, Any] = TypeAdapter(Handoff).dump_python(handoff, mode="json")
    return dumped


@pytest.fixture
def manager(anonymous: TestClient) -> tuple[TestClient, dict[str, str]]:
    browser, csrf = staff(anonymous, "ada.admin", Role.ADMINISTRATOR)
    answer = browser.put(URL, json=body(accepted()), headers=csrf)
    assert answer.status_code == 200, answer.text
    return browser, csrf


def put(manager: tuple[TestClient, dict[str, str]], handoff: Handoff) -> Any:
    browser, csrf = manager
    return browser.put(URL, json=body(handoff), headers=csrf)


def stored_task(client: TestClient) -> dict[str, Any]:
    [found] = search(client, "Task", _id="handoff-1")
    return found


def in_progress() -> Handoff:
    return replace(accepted(), status=TaskStatus.IN_PROGRESS, execution=Period(STARTED))


def completed_unchecked() -> Handoff:
    """Completed with its end and an output, its checklist and reconciliation not done."""
    return replace(
        in_progress(),
        status=TaskStatus.COMPLETED,
        execution=Period(STARTED, ENDED),
        outputs=(INTAKE,),
    )


def completed_task() -> dict[str, Any]:
    """`completed_unchecked()`'s Task as the program's EHR would PUT it."""
    [task] = [
        entry["resource"]
        for entry in handoff.to_fhir(completed_unchecked())["entry"]
        if entry["resource"]["resourceType"] == "Task"
    ]
    return task


def assert_completion_refused(client: TestClient, completed: dict[str, Any]) -> None:
    """A FHIR PUT completing the handoff is refused for its checklist, and nothing changes."""
    refused = client.put(
        "/fhir/Task/handoff-1", json=completed, headers={"Content-Type": "application/fhir+json"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"][0]["diagnostics"] == (
        "the handoff cannot be completed before its transfer checklist is; not done: "
        "intake-confirmed, medication-reconciliation"
    )
    assert stored_task(client)["status"] == "in-progress"


def test_a_handoff_is_started_with_its_start_and_read_back_with_it(
    manager: tuple[TestClient, dict[str, str]], client: TestClient
) -> None:
    refused = put(manager, replace(accepted(), status=TaskStatus.IN_PROGRESS))
    assert refused.status_code == 422
    assert refused.json()["detail"] == "a Task put in-progress carries executionPeriod.start"
    answer = put(manager, in_progress())
    assert answer.status_code == 200, answer.text
    assert answer.json()["value"]["execution"] == {"start": "2026-03-02T09:00:00Z", "end": None}
    assert answer.json()["unmapped"] == []
    task = stored_task(client)
    assert (task["status"], task["executionPeriod"]) == (
        "in-progress",
        {"start": "2026-03-02T09:00:00+00:00"},
    )


def test_completion_with_unchecked_items_is_refused_naming_them(
    manager: tuple[TestClient, dict[str, str]], client: TestClient
) -> None:
    assert put(manager, in_progress()).status_code == 200
    refused = put(manager, completed_unchecked())
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        "the handoff cannot be completed before its transfer checklist is; not done: "
        "intake-confirmed, medication-reconciliation"
    )
    assert stored_task(client)["status"] == "in-progress"  # nothing was written


def test_a_handoff_with_its_checklist_done_is_completed_with_its_output(
    manager: tuple[TestClient, dict[str, str]], client: TestClient
) -> None:
    assert put(manager, in_progress()).status_code == 200
    done = replace(
        in_progress(),
        status=TaskStatus.COMPLETED,
        execution=Period(STARTED, ENDED),
        outputs=(INTAKE,),
        medication_reconciliation=Ref("handoff-1-medrec"),
        checklist=tuple(replace(item, done=True) for item in accepted().checklist),
    )
    without_output = put(manager, replace(done, outputs=()))
    assert without_output.status_code == 422
    assert "at least one output" in without_output.json()["detail"]
    answer = put(manager, done)
    assert answer.status_code == 200, answer.text
    assert answer.json()["value"]["status"] == "completed"
    task = stored_task(client)
    assert task["status"] == "completed"
    assert task["output"][0]["valueReference"] == {"reference": "Encounter/intake-at-bayview"}
    [order] = search(client, "ServiceRequest", _id="handoff-1-referral")
    assert order["status"] == "completed"


def test_a_handoff_is_not_completed_without_being_under_way(
    manager: tuple[TestClient, dict[str, str]],
) -> None:
    done = replace(
        accepted(),
        status=TaskStatus.COMPLETED,
        execution=Period(STARTED, ENDED),
        outputs=(INTAKE,),
        medication_reconciliation=Ref("handoff-1-medrec"),
        checklist=tuple(replace(item, done=True) for item in accepted().checklist),
    )
    refused = put(manager, done)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "a Task does not go from accepted to completed"


def test_a_fhir_put_completing_the_task_is_held_to_the_same_checklist(
    manager: tuple[TestClient, dict[str, str]], client: TestClient
) -> None:
    """The program's EHR writing the Task itself meets the rule the case API does."""
    assert put(manager, in_progress()).status_code == 200
    task = completed_task()
    completed = {**task, "meta": stored_task(client)["meta"]}
    assert_completion_refused(client, completed)


@pytest.mark.parametrize(
    "dropped",
    [
        pytest.param("intake-confirmed", id="the-open-item"),
        pytest.param("", id="every-input-the-transfer-summary-too"),
    ],
)
def test_leaving_checklist_entries_out_of_the_completing_write_finishes_nothing(
    manager: tuple[TestClient, dict[str, str]], client: TestClient, dropped: str
) -> None:
    """A checklist item the Task listed is done only when marked done: a write that leaves it
    (or the transfer summary that makes the Task a handoff) out is held to it all the same."""
    assert put(manager, in_progress()).status_code == 200
    task = completed_task()
    kept = [item for item in task.pop("input") if dropped and dropped not in str(item)]
    completed = {**task, "meta": stored_task(client)["meta"], **({"input": kept} if kept else {})}
    assert_completion_refused(client, completed)
