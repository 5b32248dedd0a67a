"""Handoff <-> a FHIR R4 collection Bundle of a referral to the next level and its Task.

REFERRALS.md: a handoff is a referral to the next level of care plus a transition document as
Task.input, medication reconciliation included. The Bundle holds the ServiceRequest (written by
`mappings.service_request`) and its fulfillment Task (`mappings.task`), both derived from the
handoff:

| Handoff                    | ServiceRequest                   | Task                            |
|----------------------------|----------------------------------|---------------------------------|
| referral_id / id           | id                               | id; focus                       |
| client_id                  | subject                          | for                             |
| from_program_id            | requester (Organization)         | requester (Organization)        |
| to_program_id              | performer                        | owner                           |
| to_level                   | orderDetail (level of care)      |                                 |
| from_episode_id            | supportingInfo -> EpisodeOfCare  |                                 |
| from_level                 |                                  | input transition-item           |
|                            |                                  | from-level-of-care (code)       |
| planned_date               | occurrenceDateTime               |                                 |
| authored_on                | authoredOn                       | authoredOn                      |
| status                     | status, derived (below)          | status                          |
| business_status            |                                  | businessStatus                  |
| status_reason              |                                  | statusReason                    |
| urgency                    | priority                         | priority                        |
| reason                     | reasonCode.text                  |                                 |
| consent                    | supportingInfo -> Consent        |                                 |
| transfer_summary           |                                  | input LOINC 18761-7 Transfer    |
|                            |                                  | summary note -> DocumentRef.    |
| medication_reconciliation  |                                  | input SNOMED CT 430193006       |
|                            |                                  | Medication reconciliation       |
| checklist                  |                                  | input transition-item codes,    |
|                            |                                  | valueBoolean                    |
| transportation_arranged    |                                  | input transition-item           |
|                            |                                  | transportation-arranged         |
| execution                  |                                  | executionPeriod                 |
| outputs                    |                                  | output                          |
| (fixed)                    | code SNOMED CT 4266003 Referral  | code fulfill, intent order      |
|                            | to drug addiction rehabilitation |                                 |
|                            | service                          |                                 |

The ServiceRequest's status follows the Task's: draft stays draft; requested, received, accepted,
ready and in-progress are active; on-hold is on-hold; completed is completed; rejected, cancelled
and failed revoke the order; entered-in-error stays so. Whatever the two resources say beyond
the handoff (or say differently from it) is reported as unmapped.

The transfer checklist (`completion_gaps`): a handoff is completed only once every checklist
item it lists is done and its medication reconciliation is recorded (REFERRALS.md: the
transition document goes "medication reconciliation included"); whether transportation was
arranged is a fact of the handoff, not an item (a client may make their own way).
"""

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import date, datetime
from typing import Any, Final

from mappings import datatypes as dt
from mappings import service_request, task
from mappings.errors import Mapped, MappingError, Unmapped
from mappings.model import (
    ChecklistItem,
    Code,
    Handoff,
    LevelOfCare,
    Party,
    PartyKind,
    Ref,
    Referral,
    ReferralTask,
    RequestStatus,
    TaskInput,
    TaskStatus,
    TransitionItem,
    TypedRef,
)
from mappings.terminology import (
    FROM_LEVEL_OF_CARE,
    LEVEL_OF_CARE,
    MEDICATION_RECONCILIATION,
    REFERRAL_TO_DRUG_REHABILITATION,
    TRANSFER_SUMMARY,
    TRANSITION_ITEM,
    TRANSPORTATION_ARRANGED,
)

_REQUEST_STATUS: Final = {
    TaskStatus.DRAFT: RequestStatus.DRAFT,
    TaskStatus.REQUESTED: RequestStatus.ACTIVE,
    TaskStatus.RECEIVED: RequestStatus.ACTIVE,
    TaskStatus.ACCEPTED: RequestStatus.ACTIVE,
    TaskStatus.READY: RequestStatus.ACTIVE,
    TaskStatus.IN_PROGRESS: RequestStatus.ACTIVE,
    TaskStatus.ON_HOLD: RequestStatus.ON_HOLD,
    TaskStatus.COMPLETED: RequestStatus.COMPLETED,
    TaskStatus.REJECTED: RequestStatus.REVOKED,
    TaskStatus.CANCELLED: RequestStatus.REVOKED,
    TaskStatus.FAILED: RequestStatus.REVOKED,
    TaskStatus.ENTERED_IN_ERROR: RequestStatus.ENTERED_IN_ERROR,
}
# Where each field of the two derived values lives, to report what a handoff does not keep.
_REFERRAL_ELEMENTS: Final = {
    "id": "id",
    "client_id": "subject",
    "requester": "requester",
    "status": "status",
    "service": "code",
    "authored_on": "authoredOn",
    "performer_id": "performer",
    "urgency": "priority",
    "requested_level": "orderDetail",
    "sdoh_categories": "category",
    "reason": "reasonCode",
    "barrier_ids": "reasonReference",
    "goal_ids": "extension",
    "occurrence": "occurrence",
    "placer_identifier": "identifier",
    "consents": "supportingInfo",
    "attachments": "supportingInfo",
    "supporting_episode_id": "supportingInfo",
    "replaces": "replaces",
}
_TASK_ELEMENTS: Final = {
    "id": "id",
    "referral_id": "focus",
    "client_id": "for",
    "requester": "requester",
    "status": "status",
    "authored_on": "authoredOn",
    "owner": "owner",
    "business_status": "businessStatus",
    "status_reason": "statusReason",
    "urgency": "priority",
    "last_modified": "lastModified",
    "response_deadline": "restriction",
    "execution": "executionPeriod",
    "identifiers": "identifier",
    "inputs": "input",
    "outputs": "output",
}


def to_fhir(handoff: Handoff) -> dict[str, Any]:
    """The handoff as a collection Bundle: the referral to the next level, then its Task."""
    referral, fulfillment = _derive(handoff)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": service_request.to_fhir(referral)},
            {"resource": task.to_fhir(fulfillment)},
        ],
    }


def _derive(handoff: Handoff) -> tuple[Referral, ReferralTask]:
    """The referral and the fulfillment Task a handoff travels as."""
    sender = Party(PartyKind.PROGRAM, handoff.from_program_id)
    referral = Referral(
        id=handoff.referral_id,
        client_id=handoff.client_id,
        requester=sender,
        status=_REQUEST_STATUS[handoff.status],
        service=REFERRAL_TO_DRUG_REHABILITATION,
        authored_on=handoff.authored_on,
        performer_id=handoff.to_program_id,
        urgency=handoff.urgency,
        requested_level=handoff.to_level,
        reason=handoff.reason,
        occurrence=handoff.planned_date,
        consents=(handoff.consent,) if handoff.consent is not None else (),
        supporting_episode_id=handoff.from_episode_id,
    )
    fulfillment = ReferralTask(
        id=handoff.id,
        referral_id=Ref(handoff.referral_id),
        client_id=handoff.client_id,
        requester=sender,
        status=handoff.status,
        authored_on=handoff.authored_on,
        owner=Party(PartyKind.PROGRAM, handoff.to_program_id),
        business_status=handoff.business_status,
        status_reason=handoff.status_reason,
        urgency=handoff.urgency,
        execution=handoff.execution,
        inputs=_inputs(handoff),
        outputs=handoff.outputs,
    )
    return referral, fulfillment


MEDICATION_RECONCILIATION_ITEM: Final = "medication-reconciliation"
"""How `completion_gaps` names a missing medication reconciliation (not a transition-item code:
the reconciliation is a document, LOINC-coded on the Task's input)."""


def completion_gaps(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """What keeps a handoff's Task from being completed, read off the Task as any writer sends
    it (the case API, a FHIR PUT): the checklist items it lists that are not done
    (transition-item codes), and `medication-reconciliation` when none is recorded; nothing
    for a Task that carries no transfer summary, since only a handoff has a checklist."""
    inputs = [item for item in resource.get("input") or () if isinstance(item, dict)]
    if not any(_typed(item, TRANSFER_SUMMARY.system, TRANSFER_SUMMARY.code) for item in inputs):
        return ()
    items = {item.value for item in TransitionItem}
    gaps = tuple(
        code
        for item in inputs
        for code in _codes(item, TRANSITION_ITEM.url)
        if code in items and item.get("valueBoolean") is not True
    )
    reconciled = any(
        _typed(item, MEDICATION_RECONCILIATION.system, MEDICATION_RECONCILIATION.code)
        for item in inputs
    )
    return gaps if reconciled else (*gaps, MEDICATION_RECONCILIATION_ITEM)


def checklist_kept(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`after` with every checklist entry of `before` that it left out put back as it stood:
    a write that drops an open item, the transfer summary or the reconciliation finishes
    nothing, so `completion_gaps` of the result says what is still not done."""
    inputs = [item for item in after.get("input") or () if isinstance(item, dict)]
    listed = {code for item in inputs for code in _checklist_codes(item)}
    dropped = [
        item
        for item in before.get("input") or ()
        if isinstance(item, dict) and set(_checklist_codes(item)) - listed
    ]
    return {**after, "input": [*inputs, *dropped]} if dropped else dict(after)


def _checklist_codes(item: Mapping[str, Any]) -> list[str]:
    """The checklist entries an input stands for: its transition-item codes, or the
    document it is (transfer summary, medication reconciliation)."""
    documents = [
        f"{document.system}|{document.code}"
        for document in (TRANSFER_SUMMARY, MEDICATION_RECONCILIATION)
        if _typed(item, document.system, document.code)
    ]
    return [*_codes(item, TRANSITION_ITEM.url), *documents]


def _codes(item: Mapping[str, Any], system: str) -> list[str]:
    concept = item.get("type")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [
        coding["code"]
        for coding in codings or ()
        if isinstance(coding, dict)
        and coding.get("system") == system
        and isinstance(coding.get("code"), str)
    ]


def _typed(item: Mapping[str, Any], system: str, code: str) -> bool:
    return code in _codes(item, system)


def _item(code: str) -> Code:
    return Code(TRANSITION_ITEM.url, code, TRANSITION_ITEM.display(code))


def _inputs(handoff: Handoff) -> tuple[TaskInput, ...]:
    left = handoff.from_level.value
    level = Code(LEVEL_OF_CARE.url, left, LEVEL_OF_CARE.display(left))
    found = [
        TaskInput(TRANSFER_SUMMARY, TypedRef("DocumentReference", handoff.transfer_summary)),
        TaskInput(_item(FROM_LEVEL_OF_CARE), level),
    ]
    if handoff.medication_reconciliation is not None:
        document = TypedRef("DocumentReference", handoff.medication_reconciliation)
        found.append(TaskInput(MEDICATION_RECONCILIATION, document))
    found += [TaskInput(_item(entry.item.value), entry.done) for entry in handoff.checklist]
    found.append(TaskInput(_item(TRANSPORTATION_ARRANGED), handoff.transportation_arranged))
    return tuple(found)


def from_fhir(resource: dict[str, Any]) -> Mapped[Handoff]:
    """A Bundle of a referral and its fulfillment Task as a handoff."""
    reader = dt.Reader.resource(resource, "Bundle")
    reader.expect("type", "collection")
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in reader.children("entry"):
        content = entry.raw("resource")
        kind = content.get("resourceType") if isinstance(content, dict) else None
        if kind in entries or kind not in ("ServiceRequest", "Task"):
            raise MappingError(entry.at("resource"), "a handoff is one ServiceRequest and one Task")
        entries[str(kind)] = (entry.at("resource"), content)
    if set(entries) != {"ServiceRequest", "Task"}:
        raise MappingError(reader.at("entry"), "a handoff is one ServiceRequest and one Task")
    report: list[Unmapped] = []
    referral_path, referral = _inside(entries["ServiceRequest"], service_request.from_fhir, report)
    task_path, fulfillment = _inside(entries["Task"], task.from_fhir, report)
    if not isinstance(fulfillment, ReferralTask):
        raise MappingError(f"{task_path}.code", 'the Task of a handoff has the code "fulfill"')
    if not isinstance(referral, Referral):
        raise MappingError(referral_path, "a handoff travels as a referral")
    handoff = _compose(referral, referral_path, fulfillment, task_path)
    expected_referral, expected_task = _derive(handoff)
    report += _differences(referral, expected_referral, referral_path, _REFERRAL_ELEMENTS)
    report += _differences(fulfillment, expected_task, task_path, _TASK_ELEMENTS)
    return Mapped(handoff, reader.mapped(handoff).unmapped + tuple(report))


def _inside(
    entry: tuple[str, dict[str, Any]],
    read: Callable[[dict[str, Any]], Mapped[Any]],
    report: list[Unmapped],
) -> tuple[str, Any]:
    """Read one entry with its own mapping, with paths inside the Bundle."""
    path, content = entry
    prefix = str(content["resourceType"])
    try:
        mapped = read(content)
    except MappingError as error:
        raise MappingError(path + error.path.removeprefix(prefix), error.reason) from None
    report += [
        Unmapped(path + item.path.removeprefix(prefix), item.reason) for item in mapped.unmapped
    ]
    return path, mapped.value


def _compose(
    referral: Referral, referral_path: str, fulfillment: ReferralTask, task_path: str
) -> Handoff:
    """The handoff the two resources describe; what it needs and is missing is refused."""
    program, level = referral.performer_id, referral.requested_level
    episode, planned = referral.supporting_episode_id, referral.occurrence
    if fulfillment.requester.kind is not PartyKind.PROGRAM:
        raise MappingError(f"{task_path}.requester", "a handoff is sent by a program")
    if str(fulfillment.referral_id) != str(referral.id):
        raise MappingError(f"{task_path}.focus", "the Task must focus on the ServiceRequest")
    if program is None:
        raise MappingError(f"{referral_path}.performer", "a handoff names the next program")
    if level is None:
        raise MappingError(f"{referral_path}.orderDetail", "a handoff names the next level")
    if not isinstance(planned, date) or isinstance(planned, datetime):
        raise MappingError(f"{referral_path}.occurrence", "a handoff has a planned date")
    inputs = _Inputs(fulfillment.inputs, f"{task_path}.input")
    return dt.domain_value(
        task_path,
        lambda: Handoff(
            id=fulfillment.id,
            referral_id=referral.id,
            client_id=fulfillment.client_id,
            from_program_id=fulfillment.requester.ref,
            from_episode_id=episode,
            from_level=inputs.from_level(),
            to_program_id=program,
            to_level=level,
            planned_date=planned,
            authored_on=fulfillment.authored_on,
            status=fulfillment.status,
            transfer_summary=inputs.transfer_summary(),
            consent=referral.consents[0] if referral.consents else None,
            business_status=fulfillment.business_status,
            status_reason=fulfillment.status_reason,
            medication_reconciliation=inputs.document(MEDICATION_RECONCILIATION),
            checklist=inputs.checklist(),
            transportation_arranged=inputs.flag(TRANSPORTATION_ARRANGED) or False,
            urgency=fulfillment.urgency or referral.urgency,
            reason=referral.reason,
            execution=fulfillment.execution,
            outputs=fulfillment.outputs,
        ),
    )


class _Inputs:
    """The Task inputs of a handoff, found by their type code (displays aside)."""

    def __init__(self, inputs: tuple[TaskInput, ...], path: str) -> None:
        self._inputs = inputs
        self._path = path

    def _values(self, kind: Code) -> list[object]:
        return [item.value for item in self._inputs if _same(item.type, kind)]

    def document(self, kind: Code) -> Ref | None:
        for value in self._values(kind):
            if isinstance(value, TypedRef) and value.resource_type == "DocumentReference":
                return value.ref
        return None

    def transfer_summary(self) -> Ref:
        found = self.document(TRANSFER_SUMMARY)
        if found is None:
            raise MappingError(self._path, "a handoff carries its transfer summary (18761-7)")
        return found

    def from_level(self) -> LevelOfCare:
        for value in self._values(_item(FROM_LEVEL_OF_CARE)):
            if isinstance(value, Code) and value.system == LEVEL_OF_CARE.url:
                try:
                    return LevelOfCare(value.code)
                except ValueError:
                    raise MappingError(
                        self._path, f"{value.code!r} is not a level of care", code="code-invalid"
                    ) from None
        raise MappingError(self._path, "a handoff says which level of care the client leaves")

    def flag(self, code: str) -> bool | None:
        for value in self._values(_item(code)):
            if isinstance(value, bool):
                return value
        return None

    def checklist(self) -> tuple[ChecklistItem, ...]:
        """The checklist items, in the order the Task lists them, each once."""
        items = {item.value: item for item in TransitionItem}
        found: dict[TransitionItem, ChecklistItem] = {}
        for entry in self._inputs:
            item = items.get(entry.type.code) if entry.type.system == TRANSITION_ITEM.url else None
            if item is not None and item not in found and isinstance(entry.value, bool):
                found[item] = ChecklistItem(item, entry.value)
        return tuple(found.values())


def _same(one: Code, other: Code) -> bool:
    return (one.system, one.code) == (other.system, other.code)


def _differences(
    found: Referral | ReferralTask,
    expected: Referral | ReferralTask,
    path: str,
    elements: dict[str, str],
) -> list[Unmapped]:
    """What the resource says that the handoff does not (compared without displays).

    An element the resource leaves out loses nothing, so only elements it has are compared.
    """
    report = []
    for field in fields(found):
        value = getattr(found, field.name)
        if value not in (None, ()) and _plain(value) != _plain(getattr(expected, field.name)):
            element = elements[field.name]
            reason = f"a handoff does not keep this ({field.name})"
            report.append(Unmapped(f"{path}.{element}", reason))
    return report


def _plain(value: Any) -> Any:
    """A value with the displays of its codes removed, for comparing what a handoff keeps."""
    if isinstance(value, Code):
        return (value.system, value.code)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, TaskInput):
        return (_plain(value.type), _plain(value.value))
    return value
