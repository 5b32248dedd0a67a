"""The FHIR RESTful interactions on one resource type (R4 §3.1.0 RESTful API).

`ResourceOperations` works inside a caller's transaction, so that a transaction Bundle can run
many interactions in one; `ResourceService` gives each interaction a transaction of its own.
"""

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from interop.auth.requester import Requester
from interop.services import bundle_builder as bb
from interop.services.errors import (
    BusinessRuleBroken,
    InvalidRequest,
    PreconditionFailed,
    ResourceGone,
    ResourceNotFound,
    VersionConflict,
)
from interop.services.outbox import note_change
from interop.services.outcomes import outcome
from interop.services.search_parser import Paging, parse_search
from interop.services.subscriptions import prepare_subscription
from interop.store.database import unit_of_work
from interop.store.fhirdates import format_instant, now_ms, parse_range
from interop.store.repository import ResourceRepository, StoredVersion
from interop.store.search import Inclusion, SearchQuery
from interop.store.search_params import SUPPORTED_TYPES, extract, parse_reference
from interop.store.tables import ResourceRow
from mappings import fhir
from mappings.consent import directive_from_fhir, directive_problems_as_issues
from mappings.errors import InvalidResource, Issue
from mappings.workflow import Side, is_fulfillment, task_change_problem

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_MAX_INCLUDE_ROUNDS = 4
_T = TypeVar("_T")


class Gate(Protocol):
    """The disclosure gate of one request (interop.services.disclosure.GateSession)."""

    def admit(self, stored: StoredVersion) -> bytes | None: ...

    def seal(self, bundle: dict[str, Any]) -> dict[str, Any]: ...


class WriteGuard(Protocol):
    """Decides whether the requester may write this resource (partner isolation)."""

    @property
    def organization(self) -> str:
        """The writing partner's Organization ("Organization/{id}")."""
        ...

    def check(self, resource_type: str, old: bytes | None, new: dict[str, Any] | None) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    stored: StoredVersion
    created: bool  # 201 Created rather than 200 OK
    warnings: tuple[Issue, ...] = ()  # e.g. why a stored Consent cannot be relied on


def reliance_warnings(resource_type: str, resource: dict[str, Any]) -> tuple[Issue, ...]:
    """Why a Consent may be stored (a draft, say) yet not relied on under 42 CFR §2.31."""
    if resource_type != "Consent":
        return ()
    directive = directive_from_fhir(resource)
    return directive_problems_as_issues(directive, datetime.now(UTC))


def check_type(resource_type: str) -> None:
    """Unsupported types are "not found" on this server (R4 §3.1.0.1.1 Service Base URL)."""
    if resource_type not in SUPPORTED_TYPES:
        raise ResourceNotFound(f"resource type {resource_type[:64]!r} is not supported here")


def check_id(resource_id: str) -> None:
    if not _ID_RE.match(resource_id):
        raise InvalidRequest(f"{resource_id[:70]!r} is not a valid FHIR id")


class ResourceOperations:
    """The interactions, inside the caller's unit of work.

    Reads go through `gate` (the disclosure gate of this request) whenever one is given: what
    it withholds is treated exactly as what does not exist. Writes queue what partners must be
    told in the same transaction (interop.services.outbox); `origin` names the Organization
    making the change when no guard does (an HL7 v2 sender), so it is not told of its own change.
    """

    def __init__(
        self,
        repository: ResourceRepository,
        paging: Paging,
        guard: WriteGuard | None = None,
        gate: Gate | None = None,
        *,
        origin: str | None = None,
    ) -> None:
        self._repository = repository
        self._paging = paging
        self._guard = guard
        self._gate = gate
        self._origin = origin if guard is None else guard.organization

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        check_type(resource_type)
        check_id(resource_id)
        unknown = ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        row = self._repository.current(resource_type, resource_id)
        if row is None:
            raise unknown
        if row.deleted:
            if self._admitted(_current(row)) is None:
                raise unknown
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted")
        released = self._admitted(_current(row))
        if released is None:
            raise unknown
        return released

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> StoredVersion:
        check_type(resource_type)
        check_id(resource_id)
        unknown = ResourceNotFound(
            f"{resource_type}/{resource_id} has no version {version_id[:20]!r}"
        )
        if not version_id.isdigit():
            raise unknown
        stored = self._repository.version(resource_type, resource_id, int(version_id))
        if stored is None:
            raise unknown
        if stored.content is None:
            if self._admitted(stored) is None:
                raise unknown
            raise ResourceGone(
                f"version {version_id} of {resource_type}/{resource_id} is a deletion"
            )
        released = self._admitted(stored)
        if released is None:
            raise unknown
        return released

    def create(
        self,
        resource_type: str,
        resource: dict[str, Any],
        *,
        base_url: str,
        if_none_exist: str | None = None,
        resource_id: str | None = None,
    ) -> WriteOutcome:
        """Create with a server-assigned id; with If-None-Exist, only when nothing matches."""
        check_type(resource_type)
        _check_body_type(resource_type, resource)
        fhir.validate(resource)
        resource = self._prepared(resource_type, resource)
        if self._guard is not None:
            self._guard.check(resource_type, None, resource)
        if if_none_exist is not None:
            existing = self.conditional_match(resource_type, if_none_exist, base_url)
            if existing is not None:
                return WriteOutcome(existing, created=False)
        self._check_workflow(resource_type, None, resource)
        new_id = resource_id or str(uuid.uuid4())
        stored = self._store(None, resource_type, new_id, 1, resource, "POST")
        return WriteOutcome(stored, True, reliance_warnings(resource_type, resource))

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> WriteOutcome:
        """Update, or create with the client's id when it is new (update as create)."""
        check_type(resource_type)
        check_id(resource_id)
        _check_body_type(resource_type, resource)
        if resource.get("id") != resource_id:
            raise InvalidRequest(
                f"the resource's id must be present and equal {resource_id!r} (R4 §3.1.0.4)"
            )
        row = self._repository.current(resource_type, resource_id, lock=True)
        if self._guard is not None:  # first: who may write comes before what is written
            self._guard.check(resource_type, row.content if row is not None else None, resource)
        fhir.validate(resource)
        resource = self._prepared(resource_type, resource)
        if if_match is not None:
            _check_if_match(row, if_match)
        before = row.content if row is not None and not row.deleted else None
        self._check_workflow(resource_type, before, resource)
        version_id = 1 if row is None else row.version_id + 1
        stored = self._store(row, resource_type, resource_id, version_id, resource, "PUT")
        return WriteOutcome(stored, row is None, reliance_warnings(resource_type, resource))

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete: a new version without content; deleting twice changes nothing."""
        check_type(resource_type)
        check_id(resource_id)
        row = self._repository.current(resource_type, resource_id, lock=True)
        if row is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        if row.deleted:
            return
        if self._guard is not None:
            self._guard.check(resource_type, row.content, None)
            if resource_type == "Task" and is_fulfillment(orjson.loads(row.content or b"{}")):
                raise BusinessRuleBroken(
                    "a referral's Task is not deleted by a partner: mark it entered-in-error"
                )
        stored = StoredVersion(
            resource_type, resource_id, row.version_id + 1, now_ms(), "DELETE", None
        )
        self._repository.write(row, stored, ())

    def search(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        base_url: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        """A searchset Bundle: one page of matches, their includes, paging links, the total.

        The total counts only what the gate releases, so that a withheld record cannot be
        inferred from it (PART2.md S3); the page is cut from the released matches.
        """
        check_type(resource_type)
        query = parse_search(
            resource_type, params, base_url=base_url, paging=self._paging, strict=strict
        )
        released = self._released_matches(query)
        total = len(released)
        page = released[query.offset : query.offset + query.count]
        used = [(name, value) for name, value in params if _is_used(name, query)]
        links = bb.paging_links(
            f"{base_url}/{resource_type}", used, query.offset, query.count, total
        )
        entries: list[dict[str, Any]] = []
        if not query.summary_count:
            entries = [bb.search_entry(base_url, stored, "match") for _row, stored in page]
            included = self._inclusions([row for row, _ in page], query.includes, query.revincludes)
            entries.extend(bb.search_entry(base_url, stored, "include") for stored in included)
        if query.ignored:
            entries.append(bb.outcome_entry(_ignored_outcome(query.ignored)))
        return self._sealed(bb.bundle("searchset", total=total, link=links, entry=entries))

    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: Sequence[tuple[str, str]],
        *,
        base_url: str,
    ) -> dict[str, Any]:
        """A history Bundle, newest version first; `_since` and `_count` as R4 defines them."""
        if resource_type is not None:
            check_type(resource_type)
        if resource_id is not None:
            check_id(resource_id)
        since, offset, count = _history_params(params, self._paging)
        if (
            resource_type is not None
            and resource_id is not None
            and self._repository.current(resource_type, resource_id) is None
        ):
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        versions = self._repository.history(resource_type, resource_id, since)
        released = [kept for kept in map(self._admitted, versions) if kept is not None]
        if resource_id is not None and not released and versions:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        path = "/".join(part for part in (resource_type, resource_id) if part)
        url = f"{base_url}/{path}/_history" if path else f"{base_url}/_history"
        used = [(name, value) for name, value in params if name == "_since"]
        page = released[offset : offset + count]
        entries = [bb.history_entry(base_url, stored) for stored in page]
        links = bb.paging_links(url, used, offset, count, len(released))
        bundle = bb.bundle("history", total=len(released), link=links, entry=entries)
        return self._sealed(bundle)

    def conditional_match(
        self, resource_type: str, criteria: str, base_url: str
    ) -> StoredVersion | None:
        """The one resource matching If-None-Exist criteria; 412 when several do (R4 §3.1.0.8).

        Only what the gate releases can match: a withheld record is, to this requester, absent.
        """
        params = parse_qsl(criteria.removeprefix("?").split("?")[-1], keep_blank_values=True)
        if not params:
            raise InvalidRequest("If-None-Exist must carry search criteria")
        return self.single_match(resource_type, params, base_url)

    def single_match(
        self, resource_type: str, params: Sequence[tuple[str, str]], base_url: str
    ) -> StoredVersion | None:
        """The one released resource matching `params`, None for none, 412 for several."""
        query = parse_search(
            resource_type, params, base_url=base_url, paging=self._paging, strict=True
        )
        released = self._released_matches(query)
        if len(released) > 1:
            raise PreconditionFailed("the conditional criteria match more than one resource")
        return released[0][1] if released else None

    def conditional_update(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        resource: dict[str, Any],
        *,
        base_url: str,
        resource_id: str | None = None,
    ) -> WriteOutcome:
        """PUT [type]?[criteria] (R4 §3.1.0.4.3): update the one match, create when there is
        none (with `resource_id` when the caller already assigned one), 412 for several. A
        body id must name the match (400 otherwise); with no match an id is refused rather
        than used, since whether that id exists is not the requester's to learn."""
        check_type(resource_type)
        criteria = [(name, value) for name, value in params if name != "_format"]
        if not criteria:
            raise InvalidRequest("a conditional update needs search criteria")
        existing = self.single_match(resource_type, criteria, base_url)
        given = resource.get("id")
        if existing is None:
            if given is not None:
                raise InvalidRequest(
                    "the criteria match nothing: leave the id out to create the resource"
                )
            return self.create(resource_type, resource, base_url=base_url, resource_id=resource_id)
        if given is not None and given != existing.resource_id:
            raise InvalidRequest(
                f"the criteria match {resource_type}/{existing.resource_id}, not the body's id"
            )
        return self.update(
            resource_type, existing.resource_id, {**resource, "id": existing.resource_id}
        )

    def _store(
        self,
        row: ResourceRow | None,
        resource_type: str,
        resource_id: str,
        version_id: int,
        resource: dict[str, Any],
        method: str,
    ) -> StoredVersion:
        last_updated = now_ms()
        body = _with_identity(resource, resource_id, version_id, last_updated)
        stored = StoredVersion(
            resource_type, resource_id, version_id, last_updated, method, fhir.to_json(body)
        )
        before = row.content if row is not None and not row.deleted else None
        try:
            self._repository.write(row, stored, extract(body))
        except IntegrityError:
            raise VersionConflict(
                f"{resource_type}/{resource_id} was changed by another request; read it and retry"
            ) from None
        note_change(self._repository.session, stored, before, self._origin)
        return stored

    def _prepared(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """What the server owns in a resource, set before it is validated and stored."""
        if resource_type == "Subscription":
            return prepare_subscription(resource, self._origin)
        return resource

    def _check_workflow(
        self, resource_type: str, before: bytes | None, after: dict[str, Any]
    ) -> None:
        """A referral Task moves only as REFERRALS.md allows, for the side that writes."""
        if resource_type != "Task":
            return
        previous = orjson.loads(before) if before is not None else None
        side = _side(self._origin, previous or after)
        problem = task_change_problem(previous, after, side)
        if problem is not None:
            raise BusinessRuleBroken(problem)

    def _released_matches(self, query: SearchQuery) -> list[tuple[ResourceRow, StoredVersion]]:
        """Every match in sort order, as the gate releases it (withheld ones left out)."""
        released: list[tuple[ResourceRow, StoredVersion]] = []
        for row in self._repository.matches(query):
            stored = self._admitted(_current(row))
            if stored is not None:
                released.append((row, stored))
        return released

    def _inclusions(
        self,
        matches: list[ResourceRow],
        includes: Sequence[Inclusion],
        revincludes: Sequence[Inclusion],
    ) -> list[StoredVersion]:
        """_include and _revinclude, following :iterate ones over what was already included."""
        seen = {(row.resource_type, row.resource_id) for row in matches}
        included: list[StoredVersion] = []
        frontier = matches
        for round_number in range(_MAX_INCLUDE_ROUNDS):
            found: list[ResourceRow] = []
            for inclusion in includes:
                if round_number and not inclusion.iterate:
                    continue
                sources = [r.pk for r in frontier if r.resource_type == inclusion.source_type]
                if sources:
                    found.extend(self._repository.included([pk for pk in sources if pk], inclusion))
            for inclusion in revincludes:
                if (round_number and not inclusion.iterate) or not frontier:
                    continue
                found.extend(self._repository.revincluded(frontier, inclusion))
            admitted = [
                (row, kept)
                for row in _unseen(found, seen)
                if (kept := self._admitted(_current(row))) is not None
            ]
            if not admitted:
                break
            included.extend(kept for _row, kept in admitted)
            frontier = [row for row, _kept in admitted]
        return included

    def _admitted(self, stored: StoredVersion) -> StoredVersion | None:
        """The version as the gate releases it (labelled), or None when it is withheld."""
        if self._gate is None:
            return stored
        if stored.content is None:
            return stored if self._deletion_visible(stored) else None
        content = self._gate.admit(stored)
        if content is None:
            return None
        return replace(stored, content=content)

    def _deletion_visible(self, deletion: StoredVersion) -> bool:
        """A deletion shows only to whom the version it ended would show."""
        ended = self._repository.version(
            deletion.resource_type, deletion.resource_id, deletion.version_id - 1
        )
        return ended is not None and self._admitted(ended) is not None

    def _sealed(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return bundle if self._gate is None else self._gate.seal(bundle)


class GateFactory(Protocol):
    """Where a request's gate comes from, and where its decisions go (the disclosure log)."""

    def open(self, session: Session, requester: Requester, interaction: str) -> Gate: ...

    def record(self, gate: Any) -> None: ...


class ResourceService:
    """Each interaction in a transaction of its own; every read through the disclosure gate."""

    def __init__(self, engine: Engine, paging: Paging, gates: GateFactory) -> None:
        self._engine = engine
        self._paging = paging
        self._gates = gates

    def read(self, resource_type: str, resource_id: str, requester: Requester) -> StoredVersion:
        return self._gated(requester, "read", lambda ops: ops.read(resource_type, resource_id))

    def vread(
        self, resource_type: str, resource_id: str, version_id: str, requester: Requester
    ) -> StoredVersion:
        return self._gated(
            requester, "vread", lambda ops: ops.vread(resource_type, resource_id, version_id)
        )

    def search(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        base_url: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        return self._gated(
            requester,
            "search",
            lambda ops: ops.search(resource_type, params, base_url=base_url, strict=strict),
        )

    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        base_url: str,
    ) -> dict[str, Any]:
        return self._gated(
            requester,
            "history",
            lambda ops: ops.history(resource_type, resource_id, params, base_url=base_url),
        )

    def create(
        self,
        resource_type: str,
        resource: dict[str, Any],
        requester: Requester,
        *,
        base_url: str,
        if_none_exist: str | None = None,
        guard: WriteGuard | None = None,
    ) -> WriteOutcome:
        return self._gated(
            requester,
            "create",
            lambda ops: ops.create(
                resource_type, resource, base_url=base_url, if_none_exist=if_none_exist
            ),
            guard=guard,
            writes=True,
        )

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        guard: WriteGuard | None = None,
    ) -> WriteOutcome:
        with unit_of_work(self._engine) as session:
            return self._operations(session, guard).update(
                resource_type, resource_id, resource, if_match=if_match
            )

    def conditional_update(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        resource: dict[str, Any],
        requester: Requester,
        *,
        base_url: str,
        guard: WriteGuard | None = None,
    ) -> WriteOutcome:
        """Behind the gate: only what the requester may see can match."""
        return self._gated(
            requester,
            "update",
            lambda ops: ops.conditional_update(resource_type, params, resource, base_url=base_url),
            guard=guard,
            writes=True,
        )

    def validate(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Validate without storing; any R4 type, since validation needs no storage."""
        if resource_type not in fhir.RESOURCE_TYPES:
            raise ResourceNotFound(f"{resource_type[:64]!r} is not a FHIR R4 resource type")
        _check_body_type(resource_type, resource)
        try:
            fhir.validate(resource)
        except InvalidResource as invalid:
            return outcome(*invalid.issues)
        warnings = reliance_warnings(resource_type, resource)
        return outcome(Issue("information", "informational", "no errors found"), *warnings)

    def delete(
        self, resource_type: str, resource_id: str, *, guard: WriteGuard | None = None
    ) -> None:
        with unit_of_work(self._engine) as session:
            self._operations(session, guard).delete(resource_type, resource_id)

    def _gated(
        self,
        requester: Requester,
        interaction: str,
        action: Callable[[ResourceOperations], _T],
        *,
        guard: WriteGuard | None = None,
        writes: bool = False,
    ) -> _T:
        """Run `action` behind a fresh gate; its decisions are logged, denials included,
        before the result is handed back (PART2.md A1)."""
        gate: Gate | None = None
        try:
            with unit_of_work(self._engine, writes=writes) as session:
                gate = self._gates.open(session, requester, interaction)
                return action(self._operations(session, guard, gate))
        finally:
            if gate is not None:
                self._gates.record(gate)

    def _operations(
        self, session: Any, guard: WriteGuard | None = None, gate: Gate | None = None
    ) -> ResourceOperations:
        return ResourceOperations(ResourceRepository(session), self._paging, guard, gate)


def _side(origin: str | None, task: dict[str, Any]) -> Side:
    """Which side of a Task the writing partner is on; staff and the program's own systems
    (no origin) act for either."""
    if origin is None:
        return Side.EITHER
    named = {role for role in ("requester", "owner") if _names(task.get(role), origin)}
    if named == {"requester"}:
        return Side.REQUESTER
    if named == {"owner"}:
        return Side.OWNER
    return Side.EITHER


def _names(reference: Any, organization: str) -> bool:
    """Relative or absolute: partners write references across servers absolute."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return False
    parsed = parse_reference(reference["reference"])
    return parsed is not None and f"{parsed[0]}/{parsed[1]}" == organization


def as_written(content: bytes | None) -> dict[str, Any]:
    """A stored resource as a writer sends it back: meta kept (its security labels, tags,
    profiles and source are part of the record) but for what the server sets on each write."""
    resource: dict[str, Any] = orjson.loads(content or b"{}")
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _SERVER_META}
    resource.pop("meta", None)
    return {**resource, "meta": meta} if meta else resource


_SERVER_META = ("versionId", "lastUpdated")


def _current(row: ResourceRow) -> StoredVersion:
    return StoredVersion(
        row.resource_type,
        row.resource_id,
        row.version_id,
        row.last_updated,
        "PUT",
        row.content,
    )


def _check_body_type(resource_type: str, resource: dict[str, Any]) -> None:
    if resource.get("resourceType") != resource_type:
        raise InvalidRequest(
            f"the body is a {str(resource.get('resourceType'))[:64]}, not a {resource_type}"
        )


def _check_if_match(row: ResourceRow | None, if_match: str) -> None:
    """If-Match carries the ETag of the version the client read: W/"3" (R4 §3.1.0.5)."""
    match = re.fullmatch(r'(?:W/)?"?(\d+)"?', if_match.strip())
    if match is None:
        raise InvalidRequest(f'If-Match must be an ETag such as W/"3", not {if_match[:30]!r}')
    current = None if row is None or row.deleted else row.version_id
    if current != int(match.group(1)):
        raise PreconditionFailed(
            f"If-Match names version {match.group(1)}, but the current version is {current}"
        )


def _with_identity(
    resource: dict[str, Any], resource_id: str, version_id: int, last_updated: datetime
) -> dict[str, Any]:
    """The resource as written by the client, with the server's id, versionId and lastUpdated."""
    meta = {
        **resource.get("meta", {}),
        "versionId": str(version_id),
        "lastUpdated": format_instant(last_updated),
    }
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": resource_id, "meta": meta, **rest}


def _is_used(name: str, query: SearchQuery) -> bool:
    return name not in query.ignored and name not in ("_count", "_offset", "_format")


def _ignored_outcome(ignored: Sequence[str]) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": f"search parameter {name!r} is not supported and was ignored",
            }
            for name in ignored
        ],
    }


def _history_params(
    params: Sequence[tuple[str, str]], paging: Paging
) -> tuple[datetime | None, int, int]:
    since, offset, count = None, 0, paging.default_count
    for name, value in params:
        if name == "_since":
            try:
                since = parse_range(value)[0]
            except ValueError:
                raise InvalidRequest(f"_since must be an instant, not {value[:40]!r}") from None
        elif name in ("_count", "_offset"):
            if not value.isdigit():
                raise InvalidRequest(f"{name} must be a non-negative integer")
            if name == "_count":
                count = min(int(value), paging.max_count)
            else:
                offset = int(value)
    return since, offset, count


def _unseen(rows: list[ResourceRow], seen: set[tuple[str, str]]) -> list[ResourceRow]:
    fresh: list[ResourceRow] = []
    for row in rows:
        key = (row.resource_type, row.resource_id)
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    return fresh
