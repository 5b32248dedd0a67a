"""Action and ReferralTask <-> FHIR R4 Task.

A Task whose code is task-code "fulfill" is the fulfillment Task of a referral (REFERRALS.md),
written to SDOHCC Task For Referral Management (SDOH Clinical Care 2.3); any other Task is a
case-management action.

The referral Task:

| ReferralTask       | Task                                                                  |
|--------------------|-----------------------------------------------------------------------|
| id, identifiers    | id, identifier                                                        |
| status             | status (task-status)                                                  |
| status_reason      | statusReason: local referral-status-reason code and text (SDOHCC      |
|                    | requires the text)                                                    |
| business_status    | businessStatus: local referral-business-status code, with the BSeR    |
|                    | Task Business Status code beside it where BSeR has one                |
| (fixed)            | intent "order", code task-code "fulfill" (SDOHCC fixed values)        |
| urgency            | priority                                                              |
| referral_id        | focus -> ServiceRequest                                               |
| client_id          | for -> Patient                                                        |
| authored_on        | authoredOn                                                            |
| last_modified      | lastModified                                                          |
| requester          | requester -> PractitionerRole or Organization (SDOHCC)                |
| owner              | owner                                                                 |
| response_deadline  | restriction.period.end                                                |
| execution          | executionPeriod                                                       |
| inputs, outputs    | input, output: type and valueReference, valueCodeableConcept or       |
|                    | valueBoolean                                                          |

The action:

| Action      | Task                                                                          |
|-------------|-------------------------------------------------------------------------------|
| id          | id                                                                            |
| goal_ids    | extension resource-pertainsToGoal                                             |
| plan_id     | basedOn -> CarePlan                                                           |
| status      | status                                                                        |
| intent      | intent (a modifier, kept as written; "plan" for the plan's own actions)       |
| title       | code.text (no standard code names case-management steps)                      |
| details     | description                                                                   |
| client_id   | for -> Patient                                                                |
| authored_on | authoredOn                                                                    |
| requester   | requester                                                                     |
| owner       | performerType: local action-owner code ("I do it, we do it, you do it"); a    |
|             | Task without one owns by its owner's type (Patient: client; Practitioner or   |
|             | PractitionerRole: case manager)                                               |
| assignee    | owner                                                                         |
| due         | restriction.period.end                                                        |
| execution   | executionPeriod                                                               |
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.model import (
    Action,
    ActionOwner,
    BusinessStatus,
    Party,
    PartyKind,
    ReferralTask,
    StatusReason,
    StatusReasonCode,
    TaskInput,
    TaskInputValue,
    TaskIntent,
    TaskStatus,
    TypedRef,
    Urgency,
    When,
)
from mappings.service_request import goal_ids
from mappings.terminology import (
    ACTION_OWNER,
    BSER_STATUS,
    BSER_TO_BUSINESS_STATUS,
    BUSINESS_STATUS,
    BUSINESS_STATUS_TO_BSER,
    FULFILL,
    PERTAINS_TO_GOAL,
    STATUS_REASON,
)

PROFILE: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)
REFERRAL_INTENT: Final = "order"
_REFERRAL_REQUESTERS: Final = (PartyKind.CASE_MANAGER, PartyKind.PROGRAM)
_PARTIES: Final = tuple(PartyKind)
_OWNER_BY_KIND: Final = {
    PartyKind.CLIENT: ActionOwner.CLIENT,
    PartyKind.CASE_MANAGER: ActionOwner.CASE_MANAGER,
    PartyKind.PRACTITIONER: ActionOwner.CASE_MANAGER,
}


def to_fhir(value: Action | ReferralTask) -> dict[str, Any]:
    """The action or referral Task as a FHIR Task."""
    if isinstance(value, ReferralTask):
        return _referral_task(value)
    return _action(value)


def from_fhir(resource: dict[str, Any]) -> Mapped[Action | ReferralTask]:
    """A Task as a referral Task (code "fulfill") or else as an action."""
    reader = dt.Reader.resource(resource, "Task")
    code = reader.peek("code")
    codings = code.get("coding", []) if isinstance(code, dict) else []
    if any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == (FULFILL.system, FULFILL.code)
        for c in codings
    ):
        return reader.mapped(_read_referral_task(reader))
    return reader.mapped(_read_action(reader))


def _referral_task(task: ReferralTask) -> dt.Json:
    if task.requester.kind not in _REFERRAL_REQUESTERS:
        raise MappingError(
            "Task.requester", "SDOHCC asks for a PractitionerRole or an Organization here"
        )
    resource: dt.Json = {"resourceType": "Task", "id": task.id, "meta": dt.meta(PROFILE)}
    dt.put(resource, "identifier", dt.each(task.identifiers, dt.identifier))
    resource["status"] = task.status.value
    if task.status_reason is not None:
        resource["statusReason"] = _status_reason(task.status_reason)
    if task.business_status is not None:
        resource["businessStatus"] = {"coding": _business_status(task.business_status)}
    resource["intent"] = REFERRAL_INTENT
    if task.urgency is not None:
        resource["priority"] = task.urgency.value
    resource["code"] = {"coding": [dt.coding(FULFILL)]}
    resource["focus"] = dt.reference("ServiceRequest", task.referral_id)
    resource["for"] = dt.reference("Patient", task.client_id)
    if task.execution is not None:
        resource["executionPeriod"] = dt.period(task.execution)
    resource["authoredOn"] = dt.when(task.authored_on)
    if task.last_modified is not None:
        resource["lastModified"] = dt.when(task.last_modified)
    resource["requester"] = dt.party(task.requester)
    if task.owner is not None:
        resource["owner"] = dt.party(task.owner)
    _put_deadline(resource, task.response_deadline)
    dt.put(resource, "input", dt.each(task.inputs, task_input))
    dt.put(resource, "output", dt.each(task.outputs, task_input))
    return resource


def _status_reason(reason: StatusReason) -> dt.Json:
    found: dt.Json = {}
    if reason.code is not None:
        found["coding"] = [dt.coded(STATUS_REASON, reason.code.value)]
    found["text"] = reason.text
    return found


def _business_status(status: BusinessStatus) -> list[dt.Json]:
    codings = [dt.coded(BUSINESS_STATUS, status.value)]
    bser = BUSINESS_STATUS_TO_BSER.get(status.value)
    if bser is not None:
        codings.append(dt.coded(BSER_STATUS, bser))
    return codings


def _put_deadline(resource: dt.Json, deadline: When | None) -> None:
    if deadline is not None:
        resource["restriction"] = {"period": {"end": dt.when(deadline)}}


def task_input(item: TaskInput) -> dt.Json:
    """A Task.input or Task.output."""
    found: dt.Json = {"type": {"coding": [dt.coding(item.type)]}}
    if isinstance(item.value, TypedRef):
        found["valueReference"] = dt.typed_reference(item.value)
    elif isinstance(item.value, bool):
        found["valueBoolean"] = item.value
    else:
        found["valueCodeableConcept"] = {"coding": [dt.coding(item.value)]}
    return found


def _read_referral_task(reader: dt.Reader) -> ReferralTask:
    dt.read_meta(reader, (PROFILE,))
    intent = reader.need_string("intent")
    if intent != REFERRAL_INTENT:
        raise MappingError(reader.at("intent"), f"a referral Task is an order, not a {intent}")
    code = reader.need_child("code")
    for item, found in dt.codes_of(code):
        if (found.system, found.code) != (FULFILL.system, FULFILL.code):
            item.report('only the code "fulfill" is kept')
    status_reason = reader.child("statusReason")
    business_status = reader.child("businessStatus")
    owner = reader.child("owner")
    return dt.domain_value(
        "Task",
        lambda: ReferralTask(
            id=dt.read_id(reader),
            referral_id=dt.need_ref(reader, "focus", "ServiceRequest"),
            client_id=dt.need_ref(reader, "for", "Patient"),
            requester=dt.read_party(reader.need_child("requester"), _REFERRAL_REQUESTERS),
            status=dt.need_enum(reader, "status", TaskStatus),
            authored_on=dt.need_when(reader, "authoredOn"),
            owner=None if owner is None else dt.read_party(owner, _PARTIES),
            business_status=None
            if business_status is None
            else _read_business_status(business_status),
            status_reason=None if status_reason is None else _read_status_reason(status_reason),
            urgency=dt.enum_value(reader, "priority", Urgency),
            last_modified=dt.read_when(reader, "lastModified"),
            response_deadline=_read_deadline(reader),
            execution=dt.read_period(reader.child("executionPeriod")),
            identifiers=dt.listed(reader, "identifier", dt.read_identifier),
            inputs=_read_inputs(reader, "input"),
            outputs=_read_inputs(reader, "output"),
        ),
    )


def _read_business_status(reader: dt.Reader) -> BusinessStatus | None:
    """The local code, or the one BSeR code that maps to it; anything else is reported."""
    local: BusinessStatus | None = None
    bser: list[tuple[dt.Reader, BusinessStatus]] = []
    for item, code in dt.codes_of(reader):
        found = dt.enum_code(item, code, BUSINESS_STATUS.url, BusinessStatus)
        if found is not None and local is None:
            local = found
        elif code.system == BSER_STATUS.url and code.code in BSER_TO_BUSINESS_STATUS:
            bser.append((item, BusinessStatus(BSER_TO_BUSINESS_STATUS[code.code])))
        elif code.system == BSER_STATUS.url:
            raise MappingError(item.at("code"), f"{code.code!r} is not a BSeR business status")
        else:
            item.report("only the referral business status and its BSeR code are kept")
    chosen = local if local is not None else bser[0][1] if bser else None
    for item, status in bser:
        if status != chosen:
            item.report("a BSeR business status that disagrees with the one kept")
    return chosen


def _read_status_reason(reader: dt.Reader) -> StatusReason | None:
    code = dt.only_code(reader, STATUS_REASON.url, StatusReasonCode)
    text = reader.string("text")
    if text is None:
        return None if code is None else StatusReason(code, STATUS_REASON.display(code.value))
    return StatusReason(code, text)


def _read_deadline(reader: dt.Reader) -> When | None:
    restriction = reader.child("restriction")
    if restriction is None:
        return None
    period = restriction.child("period")
    if period is None:
        return None
    period.report_key("start", "the domain keeps the deadline, the end of the period")
    return dt.read_when(period, "end")


def _read_inputs(reader: dt.Reader, key: str) -> tuple[TaskInput, ...]:
    found = []
    for entry in reader.children(key):
        kind = list(dt.codes_of(entry.need_child("type")))
        value = _read_input_value(entry)
        if not kind or value is None:
            entry.report(
                "only inputs and outputs with a coded type and a reference, code or "
                "yes/no value are kept"
            )
            continue
        for item, _ in kind[1:]:
            item.report("only the first code of the type is kept")
        found.append(TaskInput(kind[0][1], value))
    return tuple(found)


def _read_input_value(entry: dt.Reader) -> TaskInputValue | None:
    if entry.has("valueReference"):
        return dt.usable_reference(entry.need_child("valueReference"))
    if entry.has("valueBoolean"):
        return entry.boolean("valueBoolean")
    if entry.has("valueCodeableConcept"):
        codes = list(dt.codes_of(entry.need_child("valueCodeableConcept")))
        for item, _ in codes[1:]:
            item.report("only the first code is kept")
        return codes[0][1] if codes else None
    return None


def _action(action: Action) -> dt.Json:
    resource: dt.Json = {"resourceType": "Task", "id": action.id}
    dt.put(
        resource,
        "extension",
        [
            {"url": PERTAINS_TO_GOAL, "valueReference": dt.reference("Goal", ref)}
            for ref in action.goal_ids
        ],
    )
    if action.plan_id is not None:
        resource["basedOn"] = [dt.reference("CarePlan", action.plan_id)]
    resource["status"] = action.status.value
    resource["intent"] = action.intent.value
    resource["code"] = {"text": action.title}
    dt.put(resource, "description", action.details)
    resource["for"] = dt.reference("Patient", action.client_id)
    if action.execution is not None:
        resource["executionPeriod"] = dt.period(action.execution)
    if action.authored_on is not None:
        resource["authoredOn"] = dt.when(action.authored_on)
    if action.requester is not None:
        resource["requester"] = dt.party(action.requester)
    resource["performerType"] = [{"coding": [dt.coded(ACTION_OWNER, action.owner.value)]}]
    if action.assignee is not None:
        resource["owner"] = dt.party(action.assignee)
    _put_deadline(resource, action.due)
    return resource


def _read_action(reader: dt.Reader) -> Action:
    dt.read_meta(reader, ())
    code = reader.need_child("code")
    for item, _ in dt.codes_of(code):
        item.report("an action is named by its text")
    title = code.string("text")
    if title is None:
        raise MappingError(code.at("text"), "an action needs a title", code="required")
    plans = dt.refs(reader, "basedOn", "CarePlan")
    if len(plans) > 1:
        raise MappingError(reader.at("basedOn"), "an action belongs to one care plan")
    assignee = reader.child("owner")
    requester = reader.child("requester")
    party = None if assignee is None else dt.read_party(assignee, _PARTIES)
    return dt.domain_value(
        "Task",
        lambda: Action(
            id=dt.read_id(reader),
            client_id=dt.need_ref(reader, "for", "Patient"),
            title=title,
            owner=_read_owner(reader, party),
            status=dt.need_enum(reader, "status", TaskStatus),
            intent=dt.need_enum(reader, "intent", TaskIntent),
            details=reader.string("description"),
            assignee=party,
            requester=None if requester is None else dt.read_party(requester, _PARTIES),
            plan_id=plans[0] if plans else None,
            goal_ids=goal_ids(reader),
            due=_read_deadline(reader),
            authored_on=dt.read_when(reader, "authoredOn"),
            execution=dt.read_period(reader.child("executionPeriod")),
        ),
    )


def _read_owner(reader: dt.Reader, assignee: Party | None) -> ActionOwner:
    owners = [
        owner
        for entry in reader.children("performerType")
        if (owner := dt.only_code(entry, ACTION_OWNER.url, ActionOwner)) is not None
    ]
    if len(owners) > 1:
        raise MappingError(reader.at("performerType"), "an action has one owner")
    if owners:
        return owners[0]
    if assignee is not None and assignee.kind in _OWNER_BY_KIND:
        return _OWNER_BY_KIND[assignee.kind]
    raise MappingError(
        reader.at("performerType"), "who owns the action (action-owner) is not known"
    )
