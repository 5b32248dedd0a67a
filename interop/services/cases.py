"""The case-management use cases: domain values in and out, FHIR resources in the store.

Case managers' tools speak the domain of mappings.model (clients, episodes, care plans, goals,
barriers, actions, referrals, handoffs); every write is mapped to FHIR (mappings.*.to_fhir)
and stored through the same store and validation as the FHIR API, so a change made here is
the FHIR resource partners read, and a partner's FHIR update (say a Task status) is what the
next read here returns. Reads pass the disclosure gate with the case manager's program as
the requester: records of other programs reach a case manager only as the gate allows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Engine

from consent.model import ConsentDirective
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services import bundle_builder as bb
from interop.services.errors import Forbidden, InvalidRequest, ResourceNotFound
from interop.services.resources import GateFactory, ResourceOperations
from interop.services.search_parser import Paging
from interop.services.staff import Role, StaffPrincipal
from interop.store.database import unit_of_work
from interop.store.repository import ResourceRepository, StoredVersion
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
from mappings.errors import Mapped, MappingError, Unmapped
from mappings.model import (
    Action,
    Barrier,
    CarePlan,
    CaseManager,
    Client,
    Episode,
    Goal,
    Handoff,
    Program,
    Referral,
    ReferralTask,
)

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


class CaseService:
    def __init__(self, engine: Engine, gates: GateFactory) -> None:
        self._engine = engine
        self._gates = gates

    def put(self, kind: Kind[T], value: T, staff: StaffPrincipal) -> Record[T]:
        """Create or replace the record with the value's id; mapped, validated, stored."""
        _check_writer(staff)
        resources = _resources(kind.to_fhir(value))
        with unit_of_work(self._engine) as session:
            operations = ResourceOperations(ResourceRepository(session), _PAGING)
            for resource in resources:
                operations.update(resource["resourceType"], str(resource["id"]), resource)
        return self.get(kind, str(resources[-1]["id"]), staff)

    def get(self, kind: Kind[T], ident: str, staff: StaffPrincipal) -> Record[T]:
        requester = _as_requester(staff)
        gate = None
        try:
            with unit_of_work(self._engine, writes=False) as session:
                gate = self._gates.open(session, requester, "read")
                operations = ResourceOperations(ResourceRepository(session), _PAGING, None, gate)
                stored = operations.read(kind.resource_type, ident)
                parts = [stored, *_companions(kind, stored, operations)]
        finally:
            if gate is not None:
                self._gates.record(gate)
        record = _record(kind, parts)
        if record is None:
            raise ResourceNotFound(f"{kind.name}/{ident} is not known")
        return record

    def list(self, kind: Kind[T], client_id: str, staff: StaffPrincipal) -> list[Record[T]]:
        """The client's records of this kind, as the gate releases them."""
        if kind.client_param is None:
            raise InvalidRequest(f"{kind.name} do not belong to a client")
        requester = _as_requester(staff)
        value = client_id if kind.client_param == "_id" else f"Patient/{client_id}"
        params = [(kind.client_param, value), ("_count", "1000")]
        records: list[Record[T]] = []
        gate = None
        try:
            with unit_of_work(self._engine, writes=False) as session:
                gate = self._gates.open(session, requester, "search")
                operations = ResourceOperations(ResourceRepository(session), _PAGING, None, gate)
                bundle = operations.search(kind.resource_type, params, base_url="")
                for entry in bundle.get("entry", []):
                    stored = _as_stored(bb.plain(entry["resource"]))
                    record = _record(kind, [stored, *_companions(kind, stored, operations)])
                    if record is not None:
                        records.append(record)
        finally:
            if gate is not None:
                self._gates.record(gate)
        return records


_PAGING = Paging(1000, 1000)


def _resources(mapped: dict[str, Any]) -> list[dict[str, Any]]:
    """A value maps to one resource, or (a handoff) to a collection Bundle of several, the
    one that carries the value's id last."""
    if mapped["resourceType"] != "Bundle":
        return [mapped]
    return [entry["resource"] for entry in mapped["entry"]]


def _companions(
    kind: Kind[Any], stored: StoredVersion, operations: ResourceOperations
) -> list[StoredVersion]:
    """What else the value is made of: a handoff's Task needs the referral it fulfills."""
    if kind.name != "handoffs" or stored.content is None:
        return []
    focus = orjson.loads(stored.content).get("focus", {}).get("reference", "")
    kind_name, _, ident = str(focus).partition("/")
    if kind_name != "ServiceRequest" or not ident:
        return []
    try:
        return [operations.read("ServiceRequest", ident)]
    except ResourceNotFound:
        return []


def _record(kind: Kind[T], parts: list[StoredVersion]) -> Record[T] | None:
    """The stored resources read as the kind's domain value; None when they are another kind."""
    resources = [_unversioned(part.content) for part in parts if part.content is not None]
    document = resources[0]
    if kind.name == "handoffs":
        document = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in reversed(resources)],
        }
    try:
        mapped = kind.from_fhir(document)
    except MappingError:
        return None
    if not isinstance(mapped.value, kind.model):
        return None
    head = parts[0]
    return Record(
        mapped.value, f"{head.resource_type}/{head.resource_id}", head.version_id, mapped.unmapped
    )


def _unversioned(content: bytes) -> dict[str, Any]:
    """The resource without the server's versionId and lastUpdated, which the record carries
    as its own fields rather than as something the domain failed to map."""
    resource: dict[str, Any] = orjson.loads(content)
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _SERVER_META}
    if meta:
        resource["meta"] = meta
    else:
        resource.pop("meta", None)
    return resource


_SERVER_META = frozenset({"versionId", "lastUpdated"})


def _as_stored(resource: dict[str, Any]) -> StoredVersion:
    return StoredVersion(
        resource["resourceType"],
        resource["id"],
        int(resource["meta"]["versionId"]),
        datetime.now(UTC),
        "PUT",
        orjson.dumps(resource),
    )


def _check_writer(staff: StaffPrincipal) -> None:
    if staff.role not in (Role.CASE_MANAGER, Role.ADMINISTRATOR):
        raise Forbidden("case records are written by case managers")


def _as_requester(staff: StaffPrincipal) -> Requester:
    """A case manager reads as their program, for treatment (the gate's requester)."""
    if staff.role not in (Role.CASE_MANAGER, Role.ADMINISTRATOR):
        raise Forbidden("case records are read by case managers")
    program = f"Organization/{staff.programs[0]}" if staff.programs else "Organization/unassigned"
    return Requester(
        client_id=f"staff:{staff.username}",
        organization=program,
        scopes=parse_scopes("system/*.rs"),
        purposes=("TREAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=staff.role is Role.ADMINISTRATOR,
    )
