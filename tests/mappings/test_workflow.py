"""The referral Task's workflow, REFERRALS.md "Task.status transitions", row by row."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.terminology import BSER_BUSINESS_STATUS, BUSINESS_STATUS
from mappings.terminology import NPI_SYSTEM as NPI
from mappings.workflow import Side, passed_through, rebased, steps, task_change_problem

STATUSES = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "cancelled",
    "on-hold",
    "in-progress",
    "completed",
    "failed",
    "entered-in-error",
)
REASON = {"text": "Program at capacity"}


def refusal(
    before: dict[str, Any], after: dict[str, Any], side: Side, *, abort_requested: bool = False
) -> str | None:
    """The workflow's refusal of the write, as its text."""
    problem = task_change_problem(before, after, side, abort_requested=abort_requested)
    return None if problem is None else problem.text


def shared(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": "ServiceRequest/referral-1"},
        "for": {"reference": "Patient/robin"},
        "requester": {"reference": "Organization/harbor"},
        "owner": {"reference": "Organization/bayview"},
        **extra,
    }


def business_status(code: str, system: str = BUSINESS_STATUS.url) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def carried(status: str) -> dict[str, Any]:
    """What entering `status` must carry."""
    if status == "on-hold":
        return {"statusReason": REASON, "businessStatus": business_status("waitlisted")}
    if status in ("rejected", "cancelled", "failed"):
        return {"statusReason": REASON}
    if status == "in-progress":
        return {
            "executionPeriod": {"start": "2026-11-03"},
            "businessStatus": business_status("admitted"),
        }
    if status == "completed":
        return {
            "executionPeriod": {"start": "2026-11-03", "end": "2026-12-01"},
            "output": [
                {
                    "type": {"text": "discharge summary"},
                    "valueReference": {"reference": "DocumentReference/d1"},
                }
            ],
        }
    return {}


ALLOWED = [
    ("draft", "requested", Side.REQUESTER),
    ("draft", "cancelled", Side.REQUESTER),
    ("requested", "received", Side.OWNER),
    ("requested", "accepted", Side.OWNER),
    ("received", "accepted", Side.OWNER),
    ("requested", "rejected", Side.OWNER),
    ("received", "rejected", Side.OWNER),
    ("requested", "cancelled", Side.REQUESTER),
    ("received", "cancelled", Side.REQUESTER),
    ("accepted", "cancelled", Side.REQUESTER),
    ("received", "on-hold", Side.OWNER),
    ("accepted", "on-hold", Side.OWNER),
    ("in-progress", "on-hold", Side.OWNER),
    ("on-hold", "accepted", Side.OWNER),
    ("on-hold", "in-progress", Side.OWNER),
    ("accepted", "in-progress", Side.OWNER),
    ("in-progress", "cancelled", Side.OWNER),
    ("on-hold", "cancelled", Side.OWNER),
    ("in-progress", "completed", Side.OWNER),
    ("in-progress", "failed", Side.OWNER),
    ("on-hold", "failed", Side.OWNER),
]


ASKED = {
    "businessStatus": {
        "coding": [{"system": BUSINESS_STATUS.url, "code": "cancellation-requested"}]
    }
}
"""The requester's cancellation request, on the Task itself."""


def asked_first(old: str, new: str) -> dict[str, Any]:
    """Work under way is cancelled by its owner only once asked: the request comes first."""
    return ASKED if old in ("in-progress", "on-hold") and new == "cancelled" else {}


@pytest.mark.parametrize(("old", "new", "side"), ALLOWED)
def test_each_move_of_the_table_is_allowed_to_its_side_and_to_staff(
    old: str, new: str, side: Side
) -> None:
    before, after = shared(old, **asked_first(old, new)), shared(new, **carried(new))
    assert refusal(before, after, side) is None
    assert refusal(before, after, Side.EITHER) is None
    other = Side.OWNER if side is Side.REQUESTER else Side.REQUESTER
    assert refusal(before, after, other) == (
        f"only the {side.value} moves a Task from {old} to {new}"
    )


@given(st.sampled_from(STATUSES), st.sampled_from(STATUSES))
def test_no_other_move_exists(old: str, new: str) -> None:
    """Whoever writes, a move outside the table is refused; terminal states never move, but
    to entered-in-error, which any state may go to."""
    before = shared(old, **carried(old))
    problem = refusal(before, shared(new, **carried(new)), Side.EITHER)
    listed = any((old, new) == (a, b) for a, b, _ in ALLOWED)
    if old == new or new == "entered-in-error" or listed:
        assert problem is None
    else:
        assert problem is not None


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_a_status_that_needs_a_reason_is_refused_without_one(status: str) -> None:
    before = shared("in-progress" if status in ("on-hold", "failed") else "requested")
    side = Side.REQUESTER if status == "cancelled" else Side.OWNER
    assert refusal(before, shared(status), side) == (
        f"a Task put {status} says why, in statusReason"
    )


def test_in_progress_needs_a_start_and_completion_an_end_and_an_output() -> None:
    assert "executionPeriod.start" in str(
        refusal(shared("accepted"), shared("in-progress"), Side.OWNER)
    )
    ended = shared("completed", executionPeriod={"end": "2026-12-01"})
    assert "at least one output" in str(refusal(shared("in-progress"), ended, Side.OWNER))


@pytest.mark.parametrize("old", ["received", "accepted", "in-progress"])
def test_on_hold_says_what_it_waits_for(old: str) -> None:
    held = shared("on-hold", statusReason=REASON)
    assert "waits for in businessStatus" in str(refusal(shared(old), held, Side.OWNER))
    held["businessStatus"] = business_status("under-review")
    assert "waits for in businessStatus" in str(refusal(shared(old), held, Side.OWNER))
    for waiting in ("awaiting-information", "awaiting-authorization", "waitlisted"):
        held["businessStatus"] = business_status(waiting)
        assert refusal(shared(old), held, Side.OWNER) is None


def test_work_begun_says_how_in_our_code_or_bsers() -> None:
    started = shared("in-progress", executionPeriod={"start": "2026-11-03"})
    assert "how it began in businessStatus" in str(refusal(shared("accepted"), started, Side.OWNER))
    started["businessStatus"] = business_status("5.1.1", BSER_BUSINESS_STATUS)  # scheduled
    assert refusal(shared("accepted"), started, Side.OWNER) is None
    started["businessStatus"] = business_status("5.1.2", BSER_BUSINESS_STATUS)  # no-show
    assert "how it began" in str(refusal(shared("accepted"), started, Side.OWNER))


def test_terminal_tasks_never_change_not_even_their_note() -> None:
    before = shared("completed", **carried("completed"))
    assert refusal(before, {**before, "note": [{"text": "late"}]}, Side.EITHER) == (
        "a completed Task never changes again; a re-referral is a new Task"
    )
    assert refusal(before, {**before, "meta": {"versionId": "9"}}, Side.OWNER) is None
    voided = shared("entered-in-error")
    assert refusal(voided, {**voided, "note": [{"text": "x"}]}, Side.EITHER) == (
        "an entered-in-error Task never changes again; a re-referral is a new Task"
    )


def test_the_requester_changes_only_status_note_and_input() -> None:
    before = shared("requested")
    assert refusal(before, {**before, "note": [{"text": "call first"}]}, Side.REQUESTER) is None
    moved = {**before, "owner": {"reference": "Organization/elsewhere"}}
    assert refusal(before, moved, Side.REQUESTER) == (
        "the requester may change only status, note and input, not owner"
    )


@pytest.mark.parametrize("element", ["focus", "for", "requester", "code", "intent"])
def test_the_owner_may_not_change_what_the_referral_is(element: str) -> None:
    before = shared("accepted")
    after = {**before, element: {"reference": "Organization/other"}}
    assert refusal(before, after, Side.OWNER) == (f"the owner may not change the Task's {element}")


def test_creation_by_a_partner_is_the_requesters_draft_or_request() -> None:
    assert refusal(None, shared("requested"), Side.REQUESTER) is None
    assert refusal(None, shared("accepted"), Side.REQUESTER) == (
        "a new referral's Task is draft or requested, not accepted"
    )
    assert refusal(None, shared("requested"), Side.OWNER) == (
        "a referral's Task is created by its requester"
    )
    assert refusal(None, shared("completed"), Side.EITHER) is None  # history


def test_only_the_author_marks_a_task_in_error_and_actions_are_free() -> None:
    done = shared("completed", **carried("completed"))
    assert refusal(done, {**done, "status": "entered-in-error"}, Side.REQUESTER) is None
    moved = {**shared("entered-in-error"), "owner": {"reference": "Organization/elsewhere"}}
    assert "not owner" in str(refusal(shared("accepted"), moved, Side.REQUESTER))
    before = shared("accepted")
    assert refusal(before, shared("entered-in-error"), Side.REQUESTER) is None
    assert refusal(before, shared("entered-in-error"), Side.OWNER) == (
        "only the Task's author marks it in error"
    )
    action = {"resourceType": "Task", "status": "completed", "intent": "order"}
    assert refusal({**action, "status": "draft"}, action, Side.OWNER) is None


def test_the_steps_between_two_polls_are_the_shortest_way_the_side_may_go() -> None:
    assert steps("requested", "completed", Side.OWNER) == ["accepted", "in-progress", "completed"]
    assert steps("accepted", "completed", Side.OWNER) == ["in-progress", "completed"]
    assert steps("requested", "completed", Side.REQUESTER) is None
    assert steps("completed", "accepted", Side.EITHER) is None
    assert steps("draft", "cancelled", Side.REQUESTER) == ["cancelled"]


HANDSHAKE = "only after a cancellation request"


@pytest.mark.parametrize("old", ["in-progress", "on-hold"])
def test_the_owner_cancels_work_under_way_only_once_asked(old: str) -> None:
    """REFERRALS.md: in-progress, on-hold -> cancelled, owner only, after a cancellation
    request; staff recording what happened are not held to the handshake."""
    cancelled = shared("cancelled", **carried("cancelled"))
    unasked = refusal(shared(old), cancelled, Side.OWNER)
    assert unasked == (
        f"the owner cancels work under way ({old}) {HANDSHAKE} (an abort Task focused on it, "
        "or businessStatus cancellation-requested set by the requester)"
    )
    assert refusal(shared(old, **ASKED), cancelled, Side.OWNER) is None
    assert refusal(shared(old), cancelled, Side.OWNER, abort_requested=True) is None
    assert refusal(shared(old), cancelled, Side.EITHER) is None
    bser = {"businessStatus": {"coding": [{"system": BSER_BUSINESS_STATUS, "code": "5.2"}]}}
    assert refusal(shared(old, **bser), cancelled, Side.OWNER) is None


@pytest.mark.parametrize("old", ["accepted", "in-progress", "on-hold"])
def test_the_requester_asks_to_cancel_without_changing_status(old: str) -> None:
    before = shared(old, **carried(old))
    assert refusal(before, {**before, **ASKED}, Side.REQUESTER) is None
    moved = {**before, **ASKED, "status": "cancelled", **carried("cancelled")}
    if old != "accepted":
        assert refusal(before, moved, Side.REQUESTER) == (
            f"only the owner moves a Task from {old} to cancelled"
        )


def test_the_requester_writes_no_other_business_status_and_the_owner_not_that_one() -> None:
    before = shared("in-progress", **carried("in-progress"))
    scheduled = {"businessStatus": business_status("scheduled")}
    assert refusal(before, {**before, **scheduled}, Side.REQUESTER) == (
        "the requester may change only status, note and input, not businessStatus"
    )
    assert refusal(before, {**before, **ASKED}, Side.OWNER) == (
        "only the requester asks to cancel (businessStatus cancellation-requested)"
    )


NOTES = st.lists(st.fixed_dictionaries({"text": st.sampled_from(["a", "b", "c", "d"])}), max_size=4)


@given(mine=NOTES, theirs=NOTES, side=st.sampled_from([Side.REQUESTER, Side.OWNER]))
def test_a_rebased_write_keeps_every_note_and_adds_the_writers(
    mine: list[dict[str, str]], theirs: list[dict[str, str]], side: Side
) -> None:
    current = shared("accepted", **({"note": theirs} if theirs else {}))
    after = shared("accepted", **({"note": mine} if mine else {}))
    notes = rebased(current, after, [current], side).get("note", [])
    assert all(note in notes for note in [*theirs, *mine])
    assert notes[: len(theirs)] == theirs


def test_what_a_side_sends_as_it_last_saw_it_is_rebased_and_its_own_change_kept() -> None:
    first = shared("requested")
    current = shared("accepted", businessStatus={"text": "booked"})
    stale = shared("requested", note=[{"text": "mornings"}])
    assert rebased(current, stale, [first, current], Side.REQUESTER) == {
        **current,
        "note": [{"text": "mornings"}],
    }
    mine = shared("requested", businessStatus={"text": "mine now"})
    assert rebased(current, mine, [first, current], Side.REQUESTER)["businessStatus"] == {
        "text": "mine now"
    }
    assert rebased(current, stale, [first, current], Side.EITHER) == stale
    ended = shared("rejected", statusReason=REASON)
    assert rebased(ended, stale, [first, ended], Side.REQUESTER)["status"] == "requested"


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("identifier", [{"system": "urn:x", "value": "y"}]),
        ("restriction", {"period": {"end": "2027-06-30"}}),
        ("priority", "stat"),
    ],
)
def test_the_owner_never_rewrites_what_the_requester_asked(element: str, value: Any) -> None:
    """REFERRALS.md: the requester gives the identifier and the deadline when it asks."""
    before = shared("accepted", identifier=[{"system": "urn:req", "value": "T2"}])
    before["restriction"] = {"period": {"end": "2026-12-20"}}
    before["priority"] = "routine"
    after = {**before, element: value}
    assert refusal(before, after, Side.OWNER) == (f"the owner may not change the Task's {element}")


def test_the_owner_never_removes_the_requesters_input() -> None:
    consent = {"type": {"text": "consent"}, "valueReference": {"reference": "Consent/c1"}}
    before = shared("accepted", input=[consent])
    after = {k: v for k, v in before.items() if k != "input"}
    assert refusal(before, after, Side.OWNER) == (
        "the owner may not remove the requester's input (documents, consent)"
    )


@pytest.mark.parametrize("side", [Side.REQUESTER, Side.OWNER])
def test_a_side_never_signs_a_note_as_the_other_party(side: Side) -> None:
    other = "owner" if side is Side.REQUESTER else "requester"
    before = shared("accepted")
    before[other] = {**before[other], "identifier": {"system": NPI, "value": "1184627390"}}
    elsewhere = f"https://other.example.org/fhir/{before[other]['reference']}"
    by_oid = {"system": "urn:oid:2.16.840.1.113883.4.6", "value": "1184627390"}
    refused = f"a note the {side.value} adds may not name the {other} as its author"
    for forged_author in (
        before[other],
        {"reference": elsewhere},
        {"reference": "Organization/its-id-on-my-server", "identifier": by_oid},
    ):
        forged = {"text": "client declined", "authorReference": forged_author}
        assert refusal(before, {**before, "note": [forged]}, side) == refused
    for own_author in (
        before[side.value],
        {"reference": "https://mine.example.org/fhir/Organization/me-on-my-server"},
        {"reference": "Practitioner/case-manager"},
        None,
    ):
        signed = {"text": "client prefers mornings", "authorReference": own_author}
        if own_author is None:
            signed = {"text": "client prefers mornings"}
        assert refusal(before, {**before, "note": [signed]}, side) is None


def test_a_note_is_the_same_note_whatever_id_each_server_gives_its_author() -> None:
    """Probe 9 H2: the other server names the author by its own id; read back, the note is
    the one already kept, not a new one signed as someone else."""
    mine = {"text": "bed 4 on Monday", "time": "2026-12-01T10:00:00Z"}
    before = shared("accepted", note=[{**mine, "authorReference": {"reference": "Organization/a"}}])
    theirs = {**mine, "authorReference": {"reference": "https://b.example.org/fhir/Organization/x"}}
    after = {**before, "note": [theirs]}
    assert refusal(before, after, Side.OWNER) is None
    assert rebased(before, after, [before], Side.OWNER)["note"] == before["note"]


def test_the_requester_may_ask_to_cancel_again_after_the_owner_moved_on() -> None:
    """Its one businessStatus is its own, even when an earlier version held it."""
    asked = shared("in-progress", **ASKED)
    reset = shared("in-progress", businessStatus={"text": "admitted"})
    again = rebased(reset, asked, [shared("in-progress"), asked, reset], Side.REQUESTER)
    assert again["businessStatus"] == ASKED["businessStatus"]


def test_a_note_read_back_from_the_other_server_is_the_same_note() -> None:
    """The requester's note comes back in the owner's copy with its author absolute: it is
    not a second note, nor one the owner signs in the requester's name."""
    mine = {"text": "mornings", "authorReference": {"reference": "Organization/harbor"}}
    theirs = {
        "text": "mornings",
        "authorReference": {"reference": "https://harbor.example/fhir/Organization/harbor"},
    }
    current = shared("requested", note=[mine])
    read_back = shared("accepted", note=[theirs])
    merged = rebased(current, read_back, [current], Side.OWNER)
    assert merged["note"] == [mine]
    assert refusal(current, merged, Side.OWNER) is None


def test_why_the_requester_cancels_is_its_own_even_a_reason_used_before() -> None:
    held = shared("on-hold", statusReason={"text": "x"})
    cleared = shared("accepted")
    cancelling = shared("cancelled", statusReason={"text": "x"})
    merged = rebased(cleared, cancelling, [shared("requested"), held, cleared], Side.REQUESTER)
    assert merged["statusReason"] == {"text": "x"}
    assert refusal(cleared, merged, Side.REQUESTER) is None


@pytest.mark.parametrize(
    ("latest", "begun"),
    [
        ("completed", "admitted"),
        ("failed", "admitted"),
        ("cancelled", "scheduled"),
    ],
)
def test_a_move_seen_only_through_a_later_copy_carries_what_entering_it_needs(
    latest: str, begun: str
) -> None:
    """Review 9 #8: the moves a partner made between two polls are checked one by one; each
    one inferred carries what the table asks of it, from the partner's latest copy."""
    ours = shared("accepted")
    copy = {"executionPeriod": {"start": "2026-11-03"}, **shared(latest, **carried(latest))}
    path = steps("accepted", latest, Side.OWNER)
    assert path == ["in-progress", latest]
    inferred = passed_through(ours, copy, "in-progress")
    assert inferred["businessStatus"] == business_status(begun)
    assert refusal(ours, inferred, Side.OWNER, abort_requested=True) is None


def test_work_begun_in_the_partners_own_words_is_kept() -> None:
    copy = shared("completed", **carried("completed"), businessStatus=business_status("scheduled"))
    assert passed_through(shared("accepted"), copy, "in-progress")["businessStatus"] == (
        business_status("scheduled")
    )


@pytest.mark.parametrize(
    ("old", "after", "side", "expression"),
    [
        ("requested", shared("in-progress"), Side.OWNER, "Task.status"),
        ("requested", shared("rejected"), Side.OWNER, "Task.statusReason"),
        ("accepted", shared("in-progress"), Side.OWNER, "Task.executionPeriod.start"),
        ("requested", shared("requested", priority="stat"), Side.OWNER, "Task.priority"),
        (
            "requested",
            shared("requested", _authoredOn={"id": "x"}),
            Side.REQUESTER,
            "Task.authoredOn",
        ),
        ("in-progress", shared("completed"), Side.OWNER, "Task.executionPeriod.end"),
        (
            "in-progress",
            shared("completed", executionPeriod={"end": "2026-12-01"}),
            Side.OWNER,
            "Task.output",
        ),
    ],
)
def test_a_refusal_names_the_element_at_fault(
    old: str, after: dict[str, Any], side: Side, expression: str
) -> None:
    """The OperationOutcome's expression (README: errors name the element by FHIRPath)."""
    problem = task_change_problem(shared(old), after, side)
    assert problem is not None
    assert problem.expression == expression
