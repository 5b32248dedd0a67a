"""What case managers work on in the console: the referral inbox and outbox and their moves,
and the clients of their programs (every client, for an administrator, as in the case API).

Everything is read and written through the case and resource services as the person's
program, so through the disclosure gate and into its log as the API's reads are; a move is
checked against the referral workflow for the side the program is on (REFERRALS.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from typing import Any

from interop.auth.requester import Requester
from interop.services import bundle_builder as bb
from interop.services.cases import KINDS_BY_NAME, CaseService, Record
from interop.services.console_review import require_role
from interop.services.errors import BusinessRuleBroken, Forbidden, InvalidRequest, ResourceNotFound
from interop.services.resources import ResourceService
from interop.services.staff import Role, StaffPrincipal
from interop.store.fhirdates import format_instant
from mappings import task as task_mapping
from mappings import workflow
from mappings.errors import MappingError
from mappings.model import (
    BusinessStatus,
    Client,
    ReferralTask,
    StatusReason,
    StatusReasonCode,
    TaskStatus,
    When,
)
from mappings.terminology import FULFILL, TASK_CODE


@dataclass(frozen=True, slots=True)
class ReferralLine:
    """One referral Task in a program's inbox (it owns it) or outbox (it asked)."""

    task: ReferralTask
    version: int
    deadline: datetime | None
    overdue: bool
    moves: tuple[str, ...]
    cancellation_requested: bool


@dataclass(frozen=True, slots=True)
class Referrals:
    inbox: tuple[ReferralLine, ...]
    outbox: tuple[ReferralLine, ...]


@dataclass(frozen=True, slots=True)
class ClientList:
    """The clients listed, and how many more the person reads than one page lists."""

    clients: tuple[Client, ...]
    unlisted: int


@dataclass(frozen=True, slots=True)
class ClientFile:
    """A client's page: everything the gate lets the case manager's program see."""

    client: Client
    records: dict[str, list[Record[Any]]]


_FILE_KINDS = ("episodes", "care-plans", "goals", "barriers", "actions", "handoffs")
_LISTED = 1000
_OPEN = frozenset({"draft", "requested", "received", "accepted", "in-progress", "on-hold"})
MOVES = ("accept", "decline", "request-cancellation", "confirm-cancellation")
_UNDER_WAY = frozenset({TaskStatus.IN_PROGRESS, TaskStatus.ON_HOLD})
DECLINE_REASONS = (
    StatusReasonCode.AT_CAPACITY,
    StatusReasonCode.NOT_ELIGIBLE,
    StatusReasonCode.LEVEL_OF_CARE_MISMATCH,
    StatusReasonCode.PAYER,
    StatusReasonCode.UNABLE_TO_CONTACT,
    StatusReasonCode.OUT_OF_AREA,
    StatusReasonCode.MISSING_INFORMATION,
    StatusReasonCode.PATIENT_DECLINED,
    StatusReasonCode.OTHER,
)
"""Why a program declines a referral (REFERRALS.md, the `rejected` row)."""


class CaseConsole:
    def __init__(self, resources: ResourceService, cases: CaseService) -> None:
        self._resources = resources
        self._cases = cases

    def referrals(self, staff: StaffPrincipal, now: datetime) -> Referrals:
        """The program's referral Tasks by direction, open ones by deadline, overdue first."""
        inbox: list[ReferralLine] = []
        outbox: list[ReferralLine] = []
        for program in _programs(staff):
            requester = self._cases.requester_for(staff, program)
            inbox += self._referral_lines(requester, "owner", program, workflow.Side.OWNER, now)
            outbox += self._referral_lines(
                requester, "requester", program, workflow.Side.REQUESTER, now
            )
        return Referrals(_by_urgency(inbox), _by_urgency(outbox))

    def move_referral(
        self, staff: StaffPrincipal, task_id: str, move: str, reason: str, now: datetime
    ) -> str:
        """Accept, decline (with a reason) or ask to cancel, as REFERRALS.md lets that side;
        what became of the referral, in words."""
        record = self._cases.get(KINDS_BY_NAME["referral-tasks"], task_id, staff)
        before: ReferralTask = record.value
        side = _side_of(staff, before)
        if move == "request-cancellation" and before.status in _UNDER_WAY:
            self._ask_to_abort(staff, before, side, reason.strip(), now)
            return "cancellation requested"
        asked = move == "confirm-cancellation" and self._was_asked(staff, before)
        if move == "confirm-cancellation" and not asked:
            raise BusinessRuleBroken("work under way is cancelled only once its requester asks")
        after = _moved(before, move, reason.strip(), now)
        problem = workflow.task_change_problem(
            task_mapping.to_fhir(before), task_mapping.to_fhir(after), side, abort_requested=asked
        )
        if problem is not None:
            raise BusinessRuleBroken(problem.text)
        changed: ReferralTask = self._cases.put(KINDS_BY_NAME["referral-tasks"], after, staff).value
        return changed.status.value

    def _ask_to_abort(
        self,
        staff: StaffPrincipal,
        task: ReferralTask,
        side: workflow.Side,
        reason: str,
        now: datetime,
    ) -> None:
        """Work under way is cancelled by its owner only, once asked: the ask is a Task with
        code `abort` focused on the referral's Task (REFERRALS.md; COW IG cancellation)."""
        if side is workflow.Side.OWNER:
            raise BusinessRuleBroken("the requester asks to cancel; the owner cancels")
        if not reason:
            raise InvalidRequest("a cancellation needs a reason")
        program = str(task.requester.ref)
        abort = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": TASK_CODE, "code": "abort"}]},
            "focus": {"reference": f"Task/{task.id}"},
            "for": {"reference": f"Patient/{task.client_id}"},
            "authoredOn": format_instant(now),
            "requester": {"reference": f"Organization/{program}"},
            "reasonCode": {"text": reason},
        }
        if task.owner is not None:
            abort["owner"] = {"reference": f"{task.owner.kind.value}/{task.owner.ref}"}
        self._resources.create(
            "Task", abort, self._cases.requester_for(staff, program), base_url=""
        )

    def clients(self, staff: StaffPrincipal) -> ClientList:
        """The clients of the person's programs (those with an episode of care there), or
        every client for those who read every one (administrators, the operating program's
        staff); each read through the case service, so through the gate and its log."""
        ids, unlisted = self._client_ids(staff)
        found: dict[str, Client] = {}
        for client_id in sorted(ids):
            try:
                record = self._cases.get(KINDS_BY_NAME["clients"], client_id, staff)
            except ResourceNotFound:
                continue
            found[client_id] = record.value
        return ClientList(tuple(found.values()), unlisted)

    def client_file(self, staff: StaffPrincipal, client_id: str) -> ClientFile:
        """A client the person reads, as the gate releases them; others are unknown. Who may
        read which client is the case service's to say, so this page and
        `GET /cases/clients/{id}` never disagree."""
        client = self._cases.get(KINDS_BY_NAME["clients"], client_id, staff).value
        records = {
            name: self._cases.list(KINDS_BY_NAME[name], client_id, staff) for name in _FILE_KINDS
        }
        return ClientFile(client, records)

    def _client_ids(self, staff: StaffPrincipal) -> tuple[set[str], int]:
        """The ids to list, and how many more clients there are than are listed."""
        require_role(staff, Role.CASE_MANAGER, Role.ADMINISTRATOR)
        if self._cases.reads_every_client(staff):
            return self._every_client(staff)
        ids: set[str] = set()
        for program in _programs(staff):
            bundle = self._resources.search(
                "EpisodeOfCare",
                [("organization", f"Organization/{program}"), ("_count", "1000")],
                self._cases.requester_for(staff, program),
                base_url="",
            )
            for entry in bundle.get("entry", []):
                patient = bb.plain(entry["resource"]).get("patient", {}).get("reference", "")
                if patient.startswith("Patient/"):
                    ids.add(patient.removeprefix("Patient/"))
        return ids, 0

    def _every_client(self, staff: StaffPrincipal) -> tuple[set[str], int]:
        """Every client the gate releases to the person, a page of them by id."""
        program = staff.programs[0] if staff.programs else None
        bundle = self._resources.search(
            "Patient",
            [("_sort", "_id"), ("_count", str(_LISTED))],
            self._cases.requester_for(staff, program),
            base_url="",
        )
        ids = {
            str(bb.plain(entry["resource"]).get("id"))
            for entry in bundle.get("entry", [])
            if entry.get("search", {}).get("mode") == "match"
        }
        return ids, max(int(bundle.get("total", len(ids))) - len(ids), 0)

    def _referral_lines(
        self,
        requester: Requester,
        element: str,
        program: str,
        side: workflow.Side,
        now: datetime,
    ) -> list[ReferralLine]:
        params = [
            (element, f"Organization/{program}"),
            ("code", f"{FULFILL.system}|{FULFILL.code}"),
            ("_count", "1000"),
        ]
        bundle = self._resources.search("Task", params, requester, base_url="")
        asked = self._asked_to_cancel(requester, program) if side is workflow.Side.OWNER else set()
        lines = []
        for entry in bundle.get("entry", []):
            resource = bb.plain(entry["resource"])
            try:
                value = task_mapping.from_fhir(resource).value
            except MappingError:
                continue
            if isinstance(value, ReferralTask):
                version = int(resource.get("meta", {}).get("versionId", "1"))
                lines.append(_line(value, version, side, now, value.id in asked))
        return lines

    def _was_asked(self, staff: StaffPrincipal, task: ReferralTask) -> bool:
        if task.owner is None:
            return False
        owner = str(task.owner.ref)
        return task.id in self._asked_to_cancel(self._cases.requester_for(staff, owner), owner)

    def _asked_to_cancel(self, requester: Requester, program: str) -> set[str]:
        """The ids of the program's referral Tasks whose requester asked it to cancel them."""
        params = [
            ("owner", f"Organization/{program}"),
            ("code", f"{TASK_CODE}|abort"),
            ("status", "requested"),
            ("_count", "1000"),
        ]
        bundle = self._resources.search("Task", params, requester, base_url="")
        focuses = (
            bb.plain(entry["resource"]).get("focus", {}).get("reference", "")
            for entry in bundle.get("entry", [])
        )
        return {str(focus).removeprefix("Task/") for focus in focuses if focus}


def _programs(staff: StaffPrincipal) -> tuple[str, ...]:
    """The programs a case manager reads and writes as (an administrator's, if any)."""
    require_role(staff, Role.CASE_MANAGER, Role.ADMINISTRATOR)
    return staff.programs


def _line(
    value: ReferralTask, version: int, side: workflow.Side, now: datetime, asked: bool
) -> ReferralLine:
    deadline = _instant(value.response_deadline)
    is_open = value.status.value in _OPEN
    moves = tuple(move for move in MOVES if _allowed(value, move, side, now, asked) is None)
    return ReferralLine(
        value,
        version,
        deadline,
        overdue=is_open and deadline is not None and deadline < now,
        moves=moves,
        cancellation_requested=asked and is_open,
    )


def _allowed(
    value: ReferralTask, move: str, side: workflow.Side, now: datetime, asked: bool
) -> str | None:
    """Why `side` may not make `move` now, or None (the console offers only allowed moves)."""
    if move == "confirm-cancellation" and not asked:
        return "nobody asked to cancel it"
    if move == "request-cancellation" and value.status in _UNDER_WAY:
        return None if side is not workflow.Side.OWNER else "the owner cancels"
    try:
        after = _moved(value, move, "as asked", now)
    except InvalidRequest as refused:
        return str(refused)
    problem = workflow.task_change_problem(
        task_mapping.to_fhir(value), task_mapping.to_fhir(after), side, abort_requested=asked
    )
    return None if problem is None else problem.text


def _moved(value: ReferralTask, move: str, reason: str, now: datetime) -> ReferralTask:
    status = value.status
    if move == "accept" and status is TaskStatus.ACCEPTED:
        raise InvalidRequest("the referral is accepted already")  # no version saying nothing
    if move == "accept":
        return replace(
            value,
            status=TaskStatus.ACCEPTED,
            business_status=BusinessStatus.ACCEPTED,
            last_modified=now,
        )
    if move == "decline":
        if not reason:
            raise InvalidRequest("a decline needs a reason")
        return replace(
            value,
            status=TaskStatus.REJECTED,
            business_status=BusinessStatus.DECLINED,
            status_reason=StatusReason(_reason_code(reason), reason.replace("-", " ")),
            last_modified=now,
        )
    if move == "request-cancellation":
        if not reason:
            raise InvalidRequest("a cancellation needs a reason")
        if status in _UNDER_WAY:
            raise InvalidRequest("work under way is cancelled by its owner once asked")
        return replace(
            value,
            status=TaskStatus.CANCELLED,
            status_reason=StatusReason(StatusReasonCode.NO_LONGER_NEEDED, reason),
            last_modified=now,
        )
    if move == "confirm-cancellation":
        return replace(
            value,
            status=TaskStatus.CANCELLED,
            business_status=BusinessStatus.CANCELLATION_CONFIRMED,
            status_reason=StatusReason(StatusReasonCode.OTHER, reason or "cancelled as asked"),
            last_modified=now,
        )
    raise InvalidRequest(f"unknown move {move[:40]!r}; one of {', '.join(MOVES)}")


def _reason_code(reason: str) -> StatusReasonCode:
    """A reason picked from the form's list is its code; free text is "other"."""
    try:
        return StatusReasonCode(reason)
    except ValueError:
        return StatusReasonCode.OTHER


def _side_of(staff: StaffPrincipal, task: ReferralTask) -> workflow.Side:
    """Which side of the referral the person's program is on (an administrator: either)."""
    if staff.role is Role.ADMINISTRATOR:
        return workflow.Side.EITHER
    programs = set(_programs(staff))
    if task.owner is not None and str(task.owner.ref) in programs:
        return workflow.Side.OWNER
    if str(task.requester.ref) in programs:
        return workflow.Side.REQUESTER
    raise Forbidden("this referral is not one of your programs'")


def _instant(moment: When | None) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time.max, tzinfo=UTC)


def _by_urgency(lines: Sequence[ReferralLine]) -> tuple[ReferralLine, ...]:
    """Overdue first, then open ones by deadline, then the rest newest first."""
    far = datetime.max.replace(tzinfo=UTC)

    def key(line: ReferralLine) -> tuple[int, datetime, float]:
        is_open = line.task.status.value in _OPEN
        rank = 0 if line.overdue else 1 if is_open else 2
        authored = _instant(line.task.authored_on) or far
        return rank, line.deadline or far, -authored.timestamp()

    unique = {line.task.id: line for line in lines}
    return tuple(sorted(unique.values(), key=key))
