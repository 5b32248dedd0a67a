"""The referral Task's workflow (REFERRALS.md, "Task.status transitions"): which status moves
are allowed, by whom, carrying what, as a pure check of one write.

Only fulfillment Tasks (task-code "fulfill", the shared state of a referral or a handoff) are
checked; a case manager's own actions are free-form. `Side` is who writes: the requester's
side, the owner's, or `EITHER` for this service's own staff and the operating program's
systems, which act for both sides and may record a Task in any state (history brought over
from a paper chart), but never break a rule that holds for both.

The cancellation handshake (REFERRALS.md, the in-progress/on-hold -> cancelled row; COW IG
cancellation): work under way is cancelled by its owner only once the requester asked, either by
setting businessStatus `cancellation-requested` (the one businessStatus the requester may write,
status unchanged) or by a Task with code `abort` focused on this one. The abort Task is another
resource, so whoever calls the check looks it up and says so (`abort_requested`).

Not checked yet: what a new Task must carry (identifier, deadline, consent reference).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from consent.vocabulary import canonical_identifier_system
from mappings.handoff import checklist_kept, completion_gaps
from mappings.terminology import (
    BSER_BUSINESS_STATUS,
    BSER_TO_BUSINESS_STATUS,
    BUSINESS_STATUS,
    TASK_CODE,
)


class Side(StrEnum):
    REQUESTER = "requester"
    OWNER = "owner"
    EITHER = "either"


TERMINAL: Final = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
_R, _O = Side.REQUESTER, Side.OWNER
_MOVES: Final[Mapping[tuple[str, str], Side]] = {
    ("draft", "requested"): _R,
    ("draft", "cancelled"): _R,
    ("requested", "received"): _O,
    ("requested", "accepted"): _O,
    ("received", "accepted"): _O,
    ("requested", "rejected"): _O,
    ("received", "rejected"): _O,
    ("requested", "cancelled"): _R,
    ("received", "cancelled"): _R,
    ("accepted", "cancelled"): _R,
    ("accepted", "in-progress"): _O,  # before on-hold: `steps` prefers the way work goes
    ("received", "on-hold"): _O,
    ("accepted", "on-hold"): _O,
    ("in-progress", "on-hold"): _O,
    ("on-hold", "accepted"): _O,
    ("on-hold", "in-progress"): _O,
    ("in-progress", "cancelled"): _O,
    ("on-hold", "cancelled"): _O,
    ("in-progress", "completed"): _O,
    ("in-progress", "failed"): _O,
    ("on-hold", "failed"): _O,
}
_UNDER_WAY: Final = frozenset({"in-progress", "on-hold"})
"""Cancelled by the owner only after a cancellation request (REFERRALS.md)."""
CANCELLATION_REQUESTED: Final = "cancellation-requested"
_ASKED_CODES: Final = frozenset(
    {
        (BUSINESS_STATUS.url, CANCELLATION_REQUESTED),
        (BSER_BUSINESS_STATUS, "5.2"),  # BSeR "Service Request Cancellation Requested"
    }
)
_NEEDS_REASON: Final = frozenset({"rejected", "cancelled", "on-hold", "failed"})
WAITING_FOR: Final = (
    "awaiting-information",
    "awaiting-authorization",
    "waitlisted",
    "awaiting-consent",
)
"""What a Task put on-hold waits for, in its businessStatus (REFERRALS.md)."""
STARTED_AS: Final = ("scheduled", "admitted")
"""What an accepted Task put in-progress has begun as, in its businessStatus (REFERRALS.md)."""
_REQUESTER_MAY_CHANGE: Final = frozenset(
    {"status", "statusReason", "note", "input", "meta", "lastModified", "text"}
)
_OWNER_MAY_NOT_CHANGE: Final = (
    "focus",
    "for",
    "requester",
    "code",
    "intent",
    "authoredOn",
    "identifier",
    "restriction",
    "priority",
)
"""What the requester set when it asked (REFERRALS.md: identifier, deadline and the referral
itself), which the owner answers and never rewrites."""


def is_fulfillment(task: Mapping[str, Any]) -> bool:
    return _has_task_code(task, "fulfill")


def is_abort(task: Mapping[str, Any]) -> bool:
    """A cancellation request (COW IG): a Task with code `abort` focused on the one to end."""
    return _has_task_code(task, "abort")


def _has_task_code(task: Mapping[str, Any], code: str) -> bool:
    found = task.get("code")
    codings = found.get("coding", []) if isinstance(found, dict) else []
    return any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == (TASK_CODE, code)
        for c in codings
    )


@dataclass(frozen=True, slots=True)
class WorkflowProblem:
    """Why a write breaks the referral workflow, and the element at fault (a FHIRPath, for the
    OperationOutcome's expression)."""

    text: str
    expression: str


def task_change_problem(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    side: Side,
    *,
    abort_requested: bool = False,
) -> WorkflowProblem | None:
    """Why this write breaks the referral workflow, or None when it keeps it.
    `abort_requested`: a Task with code `abort` focused on this one exists (the caller looked)."""
    if not is_fulfillment(after) and (before is None or not is_fulfillment(before)):
        return None
    if before is None:
        return _creation_problem(after, side) or _checklist_problem(after)
    old, new = str(before.get("status")), str(after.get("status"))
    if new == "entered-in-error" and old != new:  # from any state, by the author only
        if side is Side.OWNER:
            return WorkflowProblem("only the Task's author marks it in error", "Task.status")
        return _field_problem(before, after, side)
    if old in TERMINAL:
        if _changed(before, after, exempt={"meta", "text"}):
            article = "an" if old[0] in "aeiou" else "a"
            return WorkflowProblem(
                f"{article} {old} Task never changes again; a re-referral is a new Task",
                "Task.status",
            )
        return None
    return (
        _move_problem(old, new, side)
        or _handshake_problem(before, old, new, side, abort_requested)
        or _carried_problem(before, after, old, new)
        or _field_problem(before, after, side)
    )


def rebased(
    current: Mapping[str, Any],
    after: Mapping[str, Any],
    earlier: Sequence[Mapping[str, Any]],
    side: Side,
) -> dict[str, Any]:
    """A partner's write of the shared Task, rebased on what the other side did meanwhile.

    Each side writes the whole Task as it last saw it, across servers and polls, so what it
    sends of the other side's elements may be stale: a value the Task had in an `earlier`
    version is its stale view, and the current value stands. So does the status a requester
    first sent (`requested`, reachable only from draft) once the owner has moved on, short
    of ending the Task (reopening an ended Task stays refused). Notes
    are both sides': the current ones are kept and the writer's new ones added. Everything
    else is the writer's change, for `task_change_problem` to judge."""
    if side is Side.EITHER:
        return dict(after)
    merged = dict(after)
    own = _OWN_ELEMENTS[side]
    if side is Side.REQUESTER and cancellation_requested(after):
        own = own | {"businessStatus"}  # its one businessStatus: asking (again) is its own
    if side is Side.REQUESTER and after.get("status") == "cancelled":
        own = own | {"statusReason"}  # why it cancels is its own
    for key in (set(after) | set(current)) - own - _NOT_REBASED:
        if after.get(key) != current.get(key) and any(
            version.get(key) == after.get(key) for version in earlier
        ):
            _put(merged, key, current.get(key))
    if (
        side is Side.REQUESTER
        and after.get("status") == "requested"
        and current.get("status") not in ("draft", "requested", *TERMINAL)
    ):
        merged["status"] = current.get("status")
    notes = _notes(current, after)
    _put(merged, "note", notes or None)
    return merged


def _notes(current: Mapping[str, Any], after: Mapping[str, Any]) -> list[Any]:
    kept = list(current.get("note") or ())
    known = {_note_key(note) for note in kept}
    return kept + [note for note in after.get("note") or () if _note_key(note) not in known]


def _note_key(note: Any) -> tuple[Any, ...]:
    """A note as both servers hold it: its author's reference is not part of it, since each
    server names an organization by its own id (REFERRALS.md), and a note read back from the
    other server must be the note it is, not a new one."""
    if not isinstance(note, Mapping):
        return (repr(note),)
    return (note.get("text"), note.get("time"), note.get("authorString"))


def _put(resource: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        resource.pop(key, None)
    else:
        resource[key] = value


_OWN_ELEMENTS: Final[Mapping[Side, frozenset[str]]] = {
    Side.REQUESTER: frozenset({"status", "input", "note"}),
    Side.OWNER: frozenset(
        {"status", "businessStatus", "statusReason", "executionPeriod", "output", "note"}
    ),
}
"""What each side writes as its own (REFERRALS.md); the rest it sends as it last saw it."""
_NOT_REBASED: Final = frozenset({"id", "resourceType", "meta", "text"})


def cancellation_requested(task: Mapping[str, Any]) -> bool:
    """The requester asked to cancel through the Task itself: businessStatus
    `cancellation-requested` (local code, or BSeR's 5.2 beside it)."""
    found = task.get("businessStatus")
    codings = found.get("coding", []) if isinstance(found, dict) else []
    return any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) in _ASKED_CODES for c in codings
    )


def business_statuses(task: Mapping[str, Any]) -> set[str]:
    """The Task's businessStatus as local codes, whether written with ours or with BSeR's."""
    found = task.get("businessStatus")
    codings = found.get("coding", []) if isinstance(found, dict) else []
    codes: set[str] = set()
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(code, str):
            continue
        if system == BUSINESS_STATUS.url:
            codes.add(code)
        elif system == BSER_BUSINESS_STATUS and code in BSER_TO_BUSINESS_STATUS:
            codes.add(BSER_TO_BUSINESS_STATUS[code])
    return codes


def is_owner_cancellation(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """This write cancels work under way: the move that needs a cancellation request."""
    return str(before.get("status")) in _UNDER_WAY and after.get("status") == "cancelled"


def steps(old: str, new: str, side: Side) -> list[str] | None:
    """The statuses `side` may take a Task through, in order, to get from `old` to `new` (the
    shortest way, through in-progress rather than on-hold where both are as short; `new`
    last), or None when there is none: a partner read back between polls
    may have made several moves, each of which must be one the table allows."""
    frontier: list[list[str]] = [[old]]
    seen = {old}
    while frontier:
        path = frontier.pop(0)
        if path[-1] == new:
            return path[1:]
        for (start, end), mover in _MOVES.items():
            if start == path[-1] and end not in seen and side in (mover, Side.EITHER):
                seen.add(end)
                frontier.append([*path, end])
    return None


def passed_through(
    ours: Mapping[str, Any], latest: Mapping[str, Any], status: str
) -> dict[str, Any]:
    """A status the other side's copy went through between two reads of it (`steps`), as far
    as its latest version tells: our Task with that status and what entering it carries, from
    the latest version (its start, its reason, what it waits for). How work began is the
    latest version's own word when it says scheduled or admitted; else admitted when the work
    has since ended (completed or failed: the client was taken in), scheduled otherwise. The
    outcome and the end reached later are not what it said then."""
    version = {**ours, "status": status}
    found = latest.get("executionPeriod")
    if status in _UNDER_WAY and isinstance(found, dict) and found.get("start"):
        version["executionPeriod"] = {"start": found["start"]}
    if status in _NEEDS_REASON and _has_reason(latest.get("statusReason")):
        version["statusReason"] = latest["statusReason"]
    if status == "on-hold" and business_statuses(latest) & set(WAITING_FOR):
        version["businessStatus"] = latest["businessStatus"]
    if status == "in-progress":
        version["businessStatus"] = _begun_as(latest)
    return version


def _begun_as(latest: Mapping[str, Any]) -> Any:
    if business_statuses(latest) & set(STARTED_AS):
        return latest["businessStatus"]
    ended = latest.get("status") in ("completed", "failed")
    return {"coding": [{"system": BUSINESS_STATUS.url, "code": STARTED_AS[1 if ended else 0]}]}


def _creation_problem(after: Mapping[str, Any], side: Side) -> WorkflowProblem | None:
    status = str(after.get("status"))
    if side is Side.EITHER:  # the program's own records, history included
        return None
    if side is Side.OWNER:
        return WorkflowProblem("a referral's Task is created by its requester", "Task.requester")
    if status not in ("draft", "requested"):
        return WorkflowProblem(
            f"a new referral's Task is draft or requested, not {status}", "Task.status"
        )
    return None


def _move_problem(old: str, new: str, side: Side) -> WorkflowProblem | None:
    if old == new:
        return None
    allowed = _MOVES.get((old, new))
    if allowed is None:
        return WorkflowProblem(f"a Task does not go from {old} to {new}", "Task.status")
    if side is not Side.EITHER and side is not allowed:
        return WorkflowProblem(
            f"only the {allowed.value} moves a Task from {old} to {new}", "Task.status"
        )
    return None


def _handshake_problem(
    before: Mapping[str, Any], old: str, new: str, side: Side, abort_requested: bool
) -> WorkflowProblem | None:
    """The owner cancels work under way only once asked (REFERRALS.md: "owner only (after a
    cancellation request)"). Staff recording what happened (`EITHER`) are not held to it."""
    if side is not Side.OWNER or old not in _UNDER_WAY or new != "cancelled":
        return None
    if abort_requested or cancellation_requested(before):
        return None
    return WorkflowProblem(
        f"the owner cancels work under way ({old}) only after a cancellation request "
        "(an abort Task focused on it, or businessStatus cancellation-requested set by the "
        "requester)",
        "Task.status",
    )


def _carried_problem(
    before: Mapping[str, Any], after: Mapping[str, Any], old: str, new: str
) -> WorkflowProblem | None:
    """What a status must carry when it is entered (REFERRALS.md, "must carry")."""
    if old == new:
        return None
    if new in _NEEDS_REASON and not _has_reason(after.get("statusReason")):
        return WorkflowProblem(f"a Task put {new} says why, in statusReason", "Task.statusReason")
    found = after.get("executionPeriod")
    period: Mapping[str, Any] = found if isinstance(found, dict) else {}
    if new == "in-progress" and not period.get("start"):
        return WorkflowProblem(
            "a Task put in-progress carries executionPeriod.start", "Task.executionPeriod.start"
        )
    if new == "on-hold" and not business_statuses(after) & set(WAITING_FOR):
        return WorkflowProblem(
            "a Task put on-hold says what it waits for in businessStatus: "
            + ", ".join(WAITING_FOR),
            "Task.businessStatus",
        )
    if (old, new) == ("accepted", "in-progress") and not business_statuses(after) & set(STARTED_AS):
        return WorkflowProblem(
            "a Task put in-progress says how it began in businessStatus: " + ", ".join(STARTED_AS),
            "Task.businessStatus",
        )
    if new == "completed" and (not period.get("end") or not after.get("output")):
        return WorkflowProblem(
            "a completed Task carries executionPeriod.end and at least one output",
            "Task.executionPeriod.end" if not period.get("end") else "Task.output",
        )
    return _checklist_problem(checklist_kept(before, after))


def _checklist_problem(after: Mapping[str, Any]) -> WorkflowProblem | None:
    """A handoff is completed only with its transfer checklist done (mappings.handoff)."""
    gaps = completion_gaps(after) if after.get("status") == "completed" else ()
    if not gaps:
        return None
    return WorkflowProblem(
        "the handoff cannot be completed before its transfer checklist is; not done: "
        + ", ".join(gaps),
        "Task.input",
    )


def _field_problem(
    before: Mapping[str, Any], after: Mapping[str, Any], side: Side
) -> WorkflowProblem | None:
    if side is Side.REQUESTER:
        exempt = _REQUESTER_MAY_CHANGE
        if _asks_to_cancel(before, after):
            exempt = exempt | {"businessStatus"}
        changed = _changed(before, after, exempt=exempt)
        if changed:
            return WorkflowProblem(
                f"the requester may change only status, note and input, not {changed}",
                f"Task.{changed.removeprefix('_')}",
            )
    if side is Side.OWNER:
        if cancellation_requested(after) and not cancellation_requested(before):
            return WorkflowProblem(
                "only the requester asks to cancel (businessStatus cancellation-requested)",
                "Task.businessStatus",
            )
        for element in _OWNER_MAY_NOT_CHANGE:
            if before.get(element) != after.get(element):
                return WorkflowProblem(
                    f"the owner may not change the Task's {element}", f"Task.{element}"
                )
        if _input_types(before) - _input_types(after):
            return WorkflowProblem(
                "the owner may not remove the requester's input (documents, consent)",
                "Task.input",
            )
    return _note_author_problem(before, after, side)


def _input_types(task: Mapping[str, Any]) -> set[str]:
    """The kinds of input a Task carries, each by its type as written."""
    return {repr(item.get("type")) for item in task.get("input") or () if isinstance(item, Mapping)}


def _note_author_problem(
    before: Mapping[str, Any], after: Mapping[str, Any], side: Side
) -> WorkflowProblem | None:
    """A side never signs a note as the other party, which would put words in its mouth on
    the shared Task. Its own notes it signs as it names itself (its Organization, one of its
    practitioners), by an id of its own server: only the other party's name is refused."""
    if side is Side.EITHER:
        return None
    other = Side.OWNER if side is Side.REQUESTER else Side.REQUESTER
    kept = {_note_key(note) for note in before.get("note") or ()}
    for note in after.get("note") or ():
        if not isinstance(note, Mapping) or _note_key(note) in kept:
            continue
        if names_party(note.get("authorReference"), after.get(other.value)):
            return WorkflowProblem(
                f"a note the {side.value} adds may not name the {other.value} as its author",
                "Task.note.authorReference",
            )
    return None


def names_party(reference: Any, party: Any) -> bool:
    """Whether `reference` names the organization `party` does: the same type and id
    (relative or absolute, as partners write across servers) or the same identifier."""
    if not isinstance(reference, Mapping) or not isinstance(party, Mapping):
        return False
    named = _type_and_id(reference.get("reference"))
    if named is not None and named == _type_and_id(party.get("reference")):
        return True
    identifier = identifier_key(reference.get("identifier"))
    return identifier is not None and identifier == identifier_key(party.get("identifier"))


def identifier_key(identifier: Any) -> tuple[str | None, str] | None:
    """(system, value) of an Identifier, its system in its FHIR spelling; None without a value."""
    if not isinstance(identifier, Mapping) or not identifier.get("value"):
        return None
    system = identifier.get("system")
    value = identifier["value"]
    return canonical_identifier_system(system if isinstance(system, str) else None), value


def _type_and_id(reference: Any) -> tuple[str, ...] | None:
    """A reference's last two segments (type and id), whether relative or absolute."""
    return tuple(reference.rstrip("/").split("/")[-2:]) if isinstance(reference, str) else None


def _asks_to_cancel(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The requester's one businessStatus: `cancellation-requested`, status unchanged
    (REFERRALS.md; BSeR 5.2), so the owner may end work already under way."""
    return before.get("status") == after.get("status") and cancellation_requested(after)


def _changed(
    before: Mapping[str, Any], after: Mapping[str, Any], exempt: frozenset[str] | set[str]
) -> str | None:
    """The first element that differs, outside `exempt`."""
    for key in sorted((set(before) | set(after)) - exempt - {"id", "resourceType"}):
        if before.get(key) != after.get(key):
            return key
    return None


def _has_reason(concept: Any) -> bool:
    if not isinstance(concept, dict):
        return False
    return bool(concept.get("text") or concept.get("coding"))
