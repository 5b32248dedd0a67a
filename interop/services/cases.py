"""The case-management use cases: domain values in and out, FHIR resources in the store.

Case managers' tools speak the domain of mappings.model (clients, episodes, care plans, goals,
barriers, actions, referrals, handoffs); every write is mapped to FHIR (mappings.*.to_fhir)
and stored through the same store and validation as the FHIR API, so a change made here is
the FHIR resource partners read, and a partner's FHIR update (say a Task status) is what the
next read here returns. Reads pass the disclosure gate with the case manager's program as
the requester: records of other programs reach a case manager only as the gate allows.
"""

import re
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any, Final, Generic, TypeVar, cast

import orjson
from sqlalchemy import Engine

from consent.model import ConsentDirective
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services import bundle_builder as bb
from interop.services.errors import (
    Forbidden,
    InvalidRequest,
    ResourceGone,
    ResourceNotFound,
)
from interop.services.relationships import works_with
from interop.services.resources import GateFactory, ResourceOperations, behind_gate
from interop.services.search_parser import Paging
from interop.services.staff import Role, StaffPrincipal
from interop.services.write_policy import ProgramStaffWriteGuard
from interop.store import consents as store
from interop.store.database import unit_of_work
from interop.store.fhirdates import format_instant
from interop.store.tables import OPERATOR_ORIGIN
from mappings import (
    careplan,
    condition,
    episode,
    goal,
    handoff,
    organization,
    patient,
    practitioner_role,
    service_request,
    task,
)
from mappings.consent import directive_from_fhir, directive_to_fhir
from mappings.errors import Issue, Mapped, MappingError, Unmapped
from mappings.model import (
    Action,
    Barrier,
    BusinessStatus,
    CarePlan,
    CaseManager,
    Client,
    Episode,
    Goal,
    Handoff,
    Program,
    Referral,
    ReferralTask,
    TaskStatus,
)
from mappings.terminology import TASK_CODE

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Kind(Generic[T]):
    """One kind of case record: its URL name, FHIR type, domain type and mappings."""

    name: str
    resource_type: str
    model: type[T]
    to_fhir: Callable[[T], dict[str, Any]]
    from_fhir: Callable[[dict[str, Any]], Mapped[Any]]
    client_of: Callable[[T], str | None]
    client_param: str | None  # the FHIR search parameter naming the client


def _client_id(value: Any) -> str | None:
    return str(value.client_id)


def _consent(resource: dict[str, Any]) -> Mapped[ConsentDirective]:
    """Consents map as the engine reads them (mappings.consent), reporting nothing unmapped."""
    return Mapped(directive_from_fhir(resource))


def _consent_client(directive: ConsentDirective) -> str | None:
    return directive.patient.removeprefix("Patient/") if directive.patient else None


KINDS: tuple[Kind[Any], ...] = (
    Kind(
        "clients", "Patient", Client, patient.to_fhir, patient.from_fhir, lambda c: str(c.id), "_id"
    ),
    Kind(
        "programs",
        "Organization",
        Program,
        organization.to_fhir,
        organization.from_fhir,
        lambda _p: None,
        None,
    ),
    Kind(
        "case-managers",
        "PractitionerRole",
        CaseManager,
        practitioner_role.to_fhir,
        practitioner_role.from_fhir,
        lambda _m: None,
        None,
    ),
    Kind(
        "episodes",
        "EpisodeOfCare",
        Episode,
        episode.to_fhir,
        episode.from_fhir,
        _client_id,
        "patient",
    ),
    Kind(
        "care-plans",
        "CarePlan",
        CarePlan,
        careplan.to_fhir,
        careplan.from_fhir,
        _client_id,
        "patient",
    ),
    Kind("goals", "Goal", Goal, goal.to_fhir, goal.from_fhir, _client_id, "patient"),
    Kind(
        "barriers",
        "Condition",
        Barrier,
        condition.to_fhir,
        condition.from_fhir,
        _client_id,
        "patient",
    ),
    Kind("actions", "Task", Action, task.to_fhir, task.from_fhir, _client_id, "patient"),
    Kind(
        "referrals",
        "ServiceRequest",
        Referral,
        service_request.to_fhir,
        service_request.from_fhir,
        _client_id,
        "patient",
    ),
    Kind(
        "referral-tasks", "Task", ReferralTask, task.to_fhir, task.from_fhir, _client_id, "patient"
    ),
    Kind("handoffs", "Task", Handoff, handoff.to_fhir, handoff.from_fhir, _client_id, "patient"),
    Kind(
        "consents",
        "Consent",
        ConsentDirective,
        directive_to_fhir,
        _consent,
        _consent_client,
        "patient",
    ),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Record(Generic[T]):
    """A domain value as stored: its FHIR resource, version, and what could not be mapped."""

    value: T
    reference: str
    version: int
    unmapped: tuple[Unmapped, ...]
    problems: tuple[Issue, ...] = ()  # a consent's: why it cannot be relied on, per element


class CaseService:
    """Case records read and written by staff, through the same door as the FHIR API: a
    case manager acts as their program (the gate's requester, and the origin of what they
    write) and reaches other programs' records only as the gate allows."""

    def __init__(self, engine: Engine, gates: GateFactory) -> None:
        self._engine = engine
        self._gates = gates

    def put(self, kind: Kind[T], value: T, staff: StaffPrincipal) -> Record[T]:
        """Create or replace the record with the value's id; mapped, validated, stored.

        A record the manager may not see answers 404, as an unknown kind of record would,
        and nothing is saved. Elements of the stored resources that the case model has no
        place for (a partner's CarePlan.note, say) are kept, never deleted by a save."""
        _check_writer(staff)
        resources = _resources(kind.to_fhir(_taken_in(value)))
        ident = str(resources[-1]["id"])
        with self._door(staff, "update", writes=True) as operations:
            _check_client_known(kind, value, operations)
            parts = _stored_parts(kind, ident, operations)
            for resource in _written(kind, parts, resources):
                operations.update(resource["resourceType"], str(resource["id"]), resource)
        return self.get(kind, ident, staff)

    def get(
        self, kind: Kind[T], ident: str, staff: StaffPrincipal, *, interaction: str = "read"
    ) -> Record[T]:
        """The record as the manager's program may read it; `interaction` is what the read is
        logged as (a document's lookup of what it is about is part of the document's own
        disclosure, not one of its own)."""
        if kind.name == "clients":
            self._check_works_with(staff, ident)
        with self._door(staff, interaction) as operations:
            stored = operations.read(kind.resource_type, ident)
            resource = _plain(stored.content)
            parts = [resource, *_companions(kind, resource, operations)]
            record = _record(kind, parts, operations)
        if record is None:
            raise ResourceNotFound(f"{kind.name}/{ident} is not known")
        client = kind.client_of(record.value)
        if kind.name != "clients" and client is not None:
            self._check_works_with(staff, client, f"{kind.name}/{ident}")
        return record

    def list(self, kind: Kind[T], client_id: str, staff: StaffPrincipal) -> list[Record[T]]:
        """The client's records of this kind, as the gate releases them."""
        if kind.client_param is None:
            raise InvalidRequest(f"{kind.name} do not belong to a client")
        if not self._works_with(staff, client_id):
            return []  # as for a client never heard of
        value = client_id if kind.client_param == "_id" else f"Patient/{client_id}"
        params = [(kind.client_param, value), ("_count", "1000")]
        records: list[Record[T]] = []
        with self._door(staff, "search") as operations:
            bundle = operations.search(kind.resource_type, params, base_url="")
            for entry in bundle.get("entry", []):
                resource = bb.plain(entry["resource"])
                companions = _companions(kind, resource, operations)
                record = _record(kind, [resource, *companions], operations)
                if record is not None:
                    records.append(record)
        return records

    def _check_works_with(self, staff: StaffPrincipal, client_id: str, name: str = "") -> None:
        if not self._works_with(staff, client_id):
            raise ResourceNotFound(f"{name or 'clients/' + client_id[:64]} is not known")

    def reads_every_client(self, staff: StaffPrincipal) -> bool:
        """Administrators and the operating program's own staff read every client; a case
        manager of another program, only those their programs work with."""
        if staff.role is Role.ADMINISTRATOR or not staff.programs:
            return True
        programs = {f"Organization/{program}" for program in staff.programs}
        with unit_of_work(self._engine, writes=False) as session:
            return bool(programs & store.operating_programs(session))

    def _works_with(self, staff: StaffPrincipal, client_id: str) -> bool:
        """A case manager reads the clients their programs work with (relationships.works_with),
        as though no other existed."""
        if self.reads_every_client(staff):
            return True
        programs = frozenset(f"Organization/{program}" for program in staff.programs)
        with unit_of_work(self._engine, writes=False) as session:
            return works_with(session, client_id, programs)

    def requester_for(self, staff: StaffPrincipal, program: str | None) -> Requester:
        """`staff_requester`, told whether `program` is the operating program."""
        if program is None:
            return staff_requester(staff, None)
        with unit_of_work(self._engine, writes=False) as session:
            operating = f"Organization/{program}" in store.operating_programs(session)
        return staff_requester(staff, program, operating=operating)

    def _door(
        self, staff: StaffPrincipal, interaction: str, *, writes: bool = False
    ) -> AbstractContextManager[ResourceOperations]:
        if staff.role not in (Role.CASE_MANAGER, Role.ADMINISTRATOR):
            raise Forbidden("case records are read by case managers")
        requester = self.requester_for(staff, staff.programs[0] if staff.programs else None)
        return behind_gate(
            self._engine,
            self._gates,
            requester,
            interaction,
            paging=_PAGING,
            writes=writes,
            guard=None if requester.first_party else ProgramStaffWriteGuard(requester, ""),
            client_ids=True,
        )


_PAGING = Paging(1000, 1000)


def _taken_in(value: T) -> T:
    """A referral or handoff put in-progress through the case API is the next level taking the
    client in (README); REFERRALS.md has the Task say how work began (businessStatus scheduled
    or admitted), so a value that says nothing says admitted."""
    if (
        isinstance(value, Handoff | ReferralTask)
        and value.status is TaskStatus.IN_PROGRESS
        and value.business_status is None
    ):
        return cast(T, replace(value, business_status=BusinessStatus.ADMITTED))
    return value


def _resources(mapped: dict[str, Any]) -> list[dict[str, Any]]:
    """A value maps to one resource, or (a handoff) to a collection Bundle of several, the
    one that carries the value's id last."""
    if mapped["resourceType"] != "Bundle":
        return [mapped]
    return [entry["resource"] for entry in mapped["entry"]]


def _companions(
    kind: Kind[Any], resource: dict[str, Any], operations: ResourceOperations
) -> list[dict[str, Any]]:
    """What else the value is made of: a handoff's Task needs the referral it fulfills."""
    if kind.name != "handoffs":
        return []
    focus = resource.get("focus", {}).get("reference", "")
    kind_name, _, ident = str(focus).partition("/")
    if kind_name != "ServiceRequest" or not ident:
        return []
    try:
        return [_plain(operations.read("ServiceRequest", ident).content)]
    except ResourceNotFound:
        return []


def _stored_parts(
    kind: Kind[Any], ident: str, operations: ResourceOperations
) -> list[dict[str, Any]]:
    """The resources a record is stored as now, as the writer may see them; none when new."""
    try:
        resource = _plain(operations.read(kind.resource_type, ident).content)
    except ResourceNotFound:
        return []
    return [resource, *_companions(kind, resource, operations)]


def _written(
    kind: Kind[Any], parts: list[dict[str, Any]], resources: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What a PUT stores over the stored `parts`: the value's resources (N), merged with the
    stored ones (S) against the case model's reading of what is stored (P0 = to_fhir of
    from_fhir of S), so that the PUT changes only what the manager changed and never deletes
    what the case model cannot show (README, "The case API").

    Element by element (`_merge`): what the manager left as the model shows it (N equal to
    P0) is kept as stored, verbatim (codings, extensions, an instant as it was written, nested
    elements the model has no field for); what the model never shows (in S, not in P0) is kept;
    what the manager changed is written as the value says, keeping of the stored element the
    parts the model has no field for (`_merge_object`, `_merge_list`). A record stored in a
    shape the kind cannot read is replaced by the value's resources, as before."""
    if not parts:
        return resources
    before = _projected(kind, parts)
    if before is None:
        return resources
    stored = {_name(part): (index, part) for index, part in enumerate(parts)}
    written = []
    for resource in resources:
        name = _name(resource)
        if name not in stored:
            written.append(resource)
            continue
        index, part = stored[name]

        def linker(key: str, index: int = index, name: str = name) -> _Linker:
            return lambda items, shown: _removal_links(kind, parts, index, name, key, shown)

        merged = _merge_object(part, before.get(name, {}), resource, linker)
        written.append({**merged, "resourceType": resource["resourceType"], "id": resource["id"]})
    return written


def _name(resource: dict[str, Any]) -> str:
    """`Type/id`: a kind's resources (a handoff's ServiceRequest and Task) may share an id."""
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _projected(kind: Kind[Any], parts: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """The case model's reading of stored resources, as the resources it writes (P0), by
    `Type/id`; None when they do not read as a value of the kind."""
    try:
        mapped = kind.from_fhir(_document(kind, parts))
        resources = _resources(kind.to_fhir(mapped.value))
    except MappingError:
        return None
    return {_name(resource): resource for resource in resources}


_ABSENT: Any = object()
"""An element a resource does not have."""

_Linker = Callable[[list[Any], list[Any]], list[frozenset[int] | None]]
"""For each stored list entry, the entries of the model's reading (P0) it becomes: empty when
the model has no field for it, None when that cannot be told."""


def _merge(stored: Any, before: Any, after: Any, linker: _Linker) -> Any:
    """One element: `stored` (S), the model's reading of it `before` (P0), the value's `after`
    (N); _ABSENT for an element one of them lacks."""
    if after == before:
        return stored  # unchanged: as stored, absent included
    if isinstance(after, dict) and isinstance(stored, dict):
        shown = before if isinstance(before, dict) else {}
        if _renamed(before if isinstance(before, dict) else stored, after):
            return after
        return _merge_object(stored, shown, after, lambda _key: _similar_links)
    if isinstance(after, list) and isinstance(stored, list):
        return _merge_list(stored, before if isinstance(before, list) else [], after, linker)
    return after


_NAMING: Final = ("reference", "system", "code", "value", "url")
"""What names the thing an element stands for (a Reference's target, a Coding's code, an
Identifier's value, an extension's url)."""


def _renamed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the element now names another thing: then what was stored beside the old name
    (a display, a version, an identifier's period) does not describe it, and the element is
    written as sent."""
    return any(
        before.get(key) != after.get(key) for key in _NAMING if key in before or key in after
    )


def _merge_object(
    stored: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    linker: Callable[[str], _Linker],
) -> dict[str, Any]:
    """Per key: absent from the value but shown by the model: removed by the manager (a list:
    emptied, keeping its entries the model has no field for, such as an extension of another
    url); absent from both: a stored element the model has no field for, kept (unless the
    value now writes another type of the same choice element, `value[x]`); else `_merge`d."""
    chosen = {_choice_of(key) for key in after} - {None}
    merged: dict[str, Any] = {}
    for key in (*stored, *(key for key in after if key not in stored)):
        value, shown, sent = (
            stored.get(key, _ABSENT),
            before.get(key, _ABSENT),
            after.get(key, _ABSENT),
        )
        if sent is _ABSENT and isinstance(shown, list):
            sent = []  # a list emptied: what the model has no field for in it stays
        elif sent is _ABSENT:
            if shown is _ABSENT and _choice_of(key) not in chosen:
                merged[key] = value
            continue
        found = _merge(value, shown, sent, linker(key))
        if found is not _ABSENT and found != []:
            merged[key] = found
    return merged


def _merge_list(
    stored: list[Any], before: list[Any], after: list[Any], linker: _Linker
) -> list[Any]:
    """A list the manager changed. The model's entries (P0) are aligned with the value's (N):
    an entry left as it was is written as stored (every stored entry it came from); an entry
    edited in place (a run of changed entries as long in both) is `_merge`d with the one
    stored entry it came from, which so keeps what the model has no field for (a coded reason
    whose text was edited keeps its codings, a note its author and time); an entry removed
    takes the stored entries it came from with it; a new entry is written as sent. Stored
    entries the model has no field for at all (an inline CarePlan activity, a coded-only
    reason) are kept, after the others. A stored entry several of the model's entries came
    from is kept only while all of those are unchanged, and one whose reading is unknown
    (`linker`) follows the value."""
    links = _told_apart(stored, before, linker(stored, before))
    matcher = SequenceMatcher(None, _keys(before), _keys(after), autojunk=False)
    same: dict[int, int] = {}
    edited: dict[int, int] = {}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            (same if tag == "equal" else edited).update(
                zip(range(i1, i2), range(j1, j2), strict=True)
            )
    claims = Counter(i for link in links if link for i in link)
    standing_for: dict[int, list[Any]] = {}
    stood: set[int] = set()
    unshown: list[Any] = []
    for item, link in zip(stored, links, strict=True):
        if link is None:
            continue
        if not link:
            unshown.append(item)
        elif all(i in same for i in link):
            standing_for.setdefault(min(same[i] for i in link), []).append(item)
            stood.update(same[i] for i in link)
        elif len(link) == 1 and (i := min(link)) in edited and claims[i] == 1:
            j = edited[i]
            standing_for.setdefault(j, []).append(_merge(item, before[i], after[j], _similar_links))
            stood.add(j)
    merged: list[Any] = []
    for j, item in enumerate(after):
        merged += standing_for.get(j, [])
        if j not in stood:
            merged.append(item)
    return merged + unshown


def _told_apart(
    stored: list[Any], before: list[Any], links: list[frozenset[int] | None]
) -> list[frozenset[int] | None]:
    """Identical stored entries (two identifiers alike) each read as the same one of the
    model's entries, since leaving out either reads the same: given as many identical model
    entries, the n-th stored one becomes the n-th of those, so that none is kept twice."""
    keys, shown = _keys(stored), _keys(before)
    told = list(links)
    for key in dict.fromkeys(keys):
        positions = [n for n, k in enumerate(keys) if k == key]
        alike = {links[n] for n in positions}
        if len(positions) < 2 or len(alike) != 1:
            continue
        [link] = alike
        if link is None or len(link) != 1:
            continue
        twins = [i for i, k in enumerate(shown) if k == shown[min(link)]]
        if len(twins) >= len(positions):
            for n, i in zip(positions, twins, strict=False):
                told[n] = frozenset({i})
    return told


def _removal_links(
    kind: Kind[Any],
    parts: list[dict[str, Any]],
    index: int,
    name: str,
    key: str,
    before: list[Any],
) -> list[frozenset[int] | None]:
    """Which of the model's entries each stored entry of a resource's top-level list becomes,
    told by the mapping itself: the entries that go from its reading when the stored entry is
    left out. When none go (the model writes the entry anyway, a default), the entries like
    it. Unknown when the resource without it cannot be read."""
    stored: list[Any] = parts[index][key]
    links: list[frozenset[int] | None] = []
    for position, item in enumerate(stored):
        rest = stored[:position] + stored[position + 1 :]
        part = {k: v for k, v in parts[index].items() if k != key} | ({key: rest} if rest else {})
        reading = _projected(kind, [*parts[:index], part, *parts[index + 1 :]])
        if reading is None:
            links.append(None)
            continue
        left = reading.get(name, {}).get(key, [])
        matcher = SequenceMatcher(None, _keys(before), _keys(left), autojunk=False)
        kept = {
            i
            for block in matcher.get_matching_blocks()
            for i in range(block.a, block.a + block.size)
        }
        gone = frozenset(range(len(before))) - kept
        links.append(gone or frozenset(i for i, entry in enumerate(before) if _alike(item, entry)))
    return links


def _similar_links(stored: list[Any], before: list[Any]) -> list[frozenset[int] | None]:
    """Within an entry: a stored entry becomes the model's entries like it."""
    return [
        frozenset(i for i, entry in enumerate(before) if _alike(item, entry)) for item in stored
    ]


def _alike(stored: Any, shown: Any) -> bool:
    """One holds the other: the model's reading of a stored entry drops what it has no field
    for, and may add what it always writes (a display)."""
    return _within(shown, stored) or _within(stored, shown)


def _within(part: Any, whole: Any) -> bool:
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(key in whole and _within(value, whole[key]) for key, value in part.items())
    if isinstance(part, list) and isinstance(whole, list):
        return all(any(_within(item, other) for other in whole) for item in part)
    return bool(part == whole)


def _keys(items: list[Any]) -> list[bytes]:
    """Entries as comparable keys (the mappings write decimals as Decimal)."""
    return [orjson.dumps(item, default=str, option=orjson.OPT_SORT_KEYS) for item in items]


_CHOICE: Final = re.compile(
    r"([a-z][A-Za-z]*?)(Address|Age|Annotation|Attachment|Base64Binary|Boolean|Canonical|Code"
    r"|CodeableConcept|Coding|ContactPoint|Count|Date|DateTime|Decimal|Distance|Dosage|Duration"
    r"|Expression|HumanName|Id|Identifier|Instant|Integer|Markdown|Money|Oid|Period|PositiveInt"
    r"|Quantity|Range|Ratio|Reference|SampledData|Signature|String|Time|Timing|UnsignedInt|Uri"
    r"|Url|Uuid)"
)


def _choice_of(key: str) -> str | None:
    """The choice element (`value[x]`) a key is one type of, if it looks like one."""
    found = _CHOICE.fullmatch(key)
    return found.group(1) if found else None


def _document(kind: Kind[Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """What the kind's mapping reads: the resource, or a handoff's collection Bundle."""
    if kind.name != "handoffs":
        return parts[0]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in reversed(parts)],
    }


def _record(
    kind: Kind[T], parts: list[dict[str, Any]], operations: ResourceOperations
) -> Record[T] | None:
    """The stored resources read as the kind's domain value; None when they are another kind.
    A consent comes with what keeps it from being relied on, each element named with where a
    partner puts it (the same warnings `POST /fhir/Consent` answers)."""
    head = parts[0]
    version = int(head.get("meta", {}).get("versionId", "0"))
    try:
        mapped = kind.from_fhir(_document(kind, [_unversioned(part) for part in parts]))
    except MappingError:
        return None
    if not isinstance(mapped.value, kind.model):
        return None
    reference = f"{head['resourceType']}/{head['id']}"
    problems = operations.consent_problems(head) if kind.resource_type == "Consent" else ()
    return Record(mapped.value, reference, version, mapped.unmapped, problems)


def _plain(content: bytes | None) -> dict[str, Any]:
    resource: dict[str, Any] = orjson.loads(content or b"{}")
    return resource


def _unversioned(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the server's versionId and lastUpdated, which the record carries
    as its own fields rather than as something the domain failed to map."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _SERVER_META}
    rest = {k: v for k, v in resource.items() if k != "meta"}
    return {**rest, "meta": meta} if meta else rest


_SERVER_META = frozenset({"versionId", "lastUpdated"})


def _check_client_known(kind: Kind[T], value: T, operations: ResourceOperations) -> None:
    """A record is written onto the chart of a client the manager may read: a client withheld
    from their program answers as an unknown one (ARCHITECTURE.md rule 4), and neither gets a
    record (a case manager of another program writing onto a detox unit's client, or writing
    a consent for a client it does not serve, PART2.md C5)."""
    client = kind.client_of(value)
    if kind.resource_type == "Patient" or client is None or operations.sees_everything:
        return  # the program's own staff may record a client's history in any order
    try:
        operations.read("Patient", client)
    except (ResourceNotFound, ResourceGone):
        raise ResourceNotFound(f"clients/{client} is not known") from None


def _check_writer(staff: StaffPrincipal) -> None:
    if staff.role not in (Role.CASE_MANAGER, Role.ADMINISTRATOR):
        raise Forbidden("case records are written by case managers")


def staff_requester(
    staff: StaffPrincipal, program: str | None, *, operating: bool = False
) -> Requester:
    """A case manager acts as one of their programs, for treatment: the gate's requester, and
    the origin of what they write (the operator's for an administrator without a program).
    The workforce of the `operating` program (the one whose own systems this service is: its
    EHR is registered first party) reads as its EHR does: communication among a program's
    personnel is no disclosure (42 CFR §2.12(c)(3)), received records included."""
    return Requester(
        client_id=f"staff:{staff.username}",
        organization=f"Organization/{program}" if program else OPERATOR_ORIGIN,
        scopes=parse_scopes("system/*.rs"),
        purposes=("TREAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=staff.role is Role.ADMINISTRATOR or operating,
    )


@dataclass(frozen=True, slots=True)
class OverdueItem:
    """A program's fulfillment Task past its date, named by ids only (REFERRALS.md, "Shape")."""

    task: str
    client: str
    status: str
    side: str
    """Which side of it the program is on: owner or requester."""
    past: str
    """response-deadline (Task.restriction.period.end) or planned-date (the handoff's
    ServiceRequest.occurrence)."""
    due: str
    """The date passed, as the resource writes it."""


_AWAITING_ANSWER = "requested,received"
"""A referral still waiting for its owner's answer (REFERRALS.md, requested/received rows)."""
_NOT_UNDER_WAY = frozenset({"requested", "received", "accepted", "on-hold"})
"""A handoff whose client has not yet been taken in at the next level (not in-progress)."""


def overdue_items(
    cases: CaseService, staff: StaffPrincipal, program: str, now: datetime
) -> list[OverdueItem]:
    """The program's referrals past their response deadline and handoffs past their planned
    date, on either side of them, across its clients; read through the case manager's door,
    as the FHIR searches a partner would send (README, "The referral workflow")."""
    if staff.role is not Role.ADMINISTRATOR and program not in staff.programs:
        raise Forbidden("overdue work is shown for one of your own programs")
    moment = format_instant(now)
    program_ref = f"Organization/{program}"
    found: list[OverdueItem] = []
    with cases._door(staff, "search") as operations:
        for side in ("owner", "requester"):
            found += _past_deadline(operations, side, program_ref, moment)
        for order_side, side in (("performer", "owner"), ("requester", "requester")):
            found += _past_planned_date(operations, order_side, side, program_ref, moment)
    return sorted(found, key=lambda item: (item.due, item.task))


def _past_deadline(
    operations: ResourceOperations, side: str, program_ref: str, moment: str
) -> list[OverdueItem]:
    """Task?code=fulfill&status=requested,received&restriction-period=eb<now>."""
    params = [
        (side, program_ref),
        ("code", f"{TASK_CODE}|fulfill"),
        ("status", _AWAITING_ANSWER),
        ("restriction-period", f"eb{moment}"),
        ("_count", "1000"),
    ]
    bundle = operations.search("Task", params, base_url="")
    return [
        _overdue(resource, side, "response-deadline", _deadline(resource))
        for resource in _matches(bundle, "match")
    ]


def _past_planned_date(
    operations: ResourceOperations, order_side: str, side: str, program_ref: str, moment: str
) -> list[OverdueItem]:
    """ServiceRequest?status=active,on-hold&occurrence=eb<now>&_revinclude=Task:focus: the
    planned date is on the order, so the Tasks come with it and those not under way count."""
    params = [
        (order_side, program_ref),
        ("status", "active,on-hold"),
        ("occurrence", f"eb{moment}"),
        ("_revinclude", "Task:focus"),
        ("_count", "1000"),
    ]
    bundle = operations.search("ServiceRequest", params, base_url="")
    planned = {
        f"ServiceRequest/{order['id']}": str(
            order.get("occurrenceDateTime") or order.get("occurrencePeriod", {}).get("end", "")
        )
        for order in _matches(bundle, "match")
    }
    return [
        _overdue(resource, side, "planned-date", planned[focus])
        for resource in _matches(bundle, "include")
        if resource.get("status") in _NOT_UNDER_WAY
        and (focus := str(resource.get("focus", {}).get("reference", ""))) in planned
        and _fulfills(resource)
    ]


def _matches(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [
        bb.plain(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("search", {}).get("mode") == mode
    ]


def _fulfills(resource: dict[str, Any]) -> bool:
    codings = resource.get("code", {}).get("coding", [])
    return any(c.get("system") == TASK_CODE and c.get("code") == "fulfill" for c in codings)


def _deadline(resource: dict[str, Any]) -> str:
    return str(resource.get("restriction", {}).get("period", {}).get("end", ""))


def _overdue(resource: dict[str, Any], side: str, past: str, due: str) -> OverdueItem:
    return OverdueItem(
        task=f"Task/{resource['id']}",
        client=str(resource.get("for", {}).get("reference", "")),
        status=str(resource.get("status")),
        side=side,
        past=past,
        due=due,
    )
