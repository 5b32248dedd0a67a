"""Transaction and batch Bundles (R4 §3.1.0.11).

A transaction runs in one database transaction: every entry succeeds or nothing is written.
Entries are processed in the order R4 prescribes (DELETE, POST, PUT, GET), `urn:uuid:` fullUrls
of created resources are replaced by their new ids wherever they are referenced, and the
response lists the entries in the order of the request. A batch runs each entry on its own,
in a savepoint, and reports each entry's own status.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from sqlmodel import Session

from interop.auth.requester import Requester
from interop.services import bundle_builder as bb
from interop.services import limits
from interop.services.errors import (
    InvalidRequest,
    PreconditionFailed,
    ServiceError,
    TransactionFailed,
)
from interop.services.outcomes import outcome_of, status_line, status_of
from interop.services.resources import (
    Gate,
    GateFactory,
    ResourceOperations,
    WriteGuard,
    WriteOutcome,
    check_type,
    conditional_references,
    if_none_exist_criteria,
)
from interop.services.search_parser import Paging
from interop.services.subsetting import requested_subset, subset_content
from interop.store import locks
from interop.store.database import unit_of_work
from interop.store.fhirdates import format_instant
from interop.store.repository import ResourceRepository, StoredVersion
from mappings.errors import FhirContentError
from mappings.invariants import full_url_disagreement

_log = logging.getLogger(__name__)

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
_T = TypeVar("_T")
_PERMISSIONS = {"GET": "r", "HEAD": "r", "POST": "c", "PUT": "u", "DELETE": "d"}
_LOGGED_AS = {"PUT": "update", "DELETE": "delete"}

Authorizer = Callable[[str, str], None]
"""Raises Forbidden unless the requester may do permission (c r u d s) on the resource type."""


@dataclass(frozen=True, slots=True)
class _Context:
    base_url: str
    authorize: Authorizer
    guard: WriteGuard | None
    requester: Requester


@dataclass
class _Entry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version: str | None
    query: list[tuple[str, str]]
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: str | None
    assigned_id: str | None = None
    existing: StoredVersion | None = field(default=None)


class BundleService:
    """Processes transaction and batch Bundles posted to the base URL."""

    def __init__(self, engine: Engine, paging: Paging, gates: GateFactory) -> None:
        self._engine = engine
        self._paging = paging
        self._gates = gates

    def process(
        self,
        bundle: dict[str, Any],
        requester: Requester,
        *,
        base_url: str,
        authorize: Authorizer,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any]:
        """Run the Bundle; `authorize` checks each entry's interaction against the scopes, and
        what GET entries return passes the requester's disclosure gate."""
        if bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("POST to the base URL takes a Bundle of type transaction or batch")
        kind = bundle.get("type")
        raw_entries = bundle.get("entry", [])
        if not isinstance(raw_entries, list):
            raise InvalidRequest("Bundle.entry must be an array")
        limits.check_bundle_entries(len(raw_entries))
        _check_full_urls(raw_entries)
        context = _Context(base_url, authorize, guard, requester)
        if kind == "transaction":
            return self._transaction(raw_entries, context)
        if kind == "batch":
            return self._batch(raw_entries, context)
        raise InvalidRequest(f"Bundle.type must be transaction or batch, not {str(kind)[:20]!r}")

    def _transaction(self, raw_entries: list[Any], context: _Context) -> dict[str, Any]:
        entries = [
            _guarded(index, partial(_authorized_entry, index, raw, context.authorize))
            for index, raw in enumerate(raw_entries)
        ]
        _refuse_duplicates(entries)
        limits.check_resources([e.resource for e in entries if isinstance(e.resource, dict)])
        gate: Gate | None = None
        logged = False
        try:
            with unit_of_work(self._engine) as session:
                gate = self._gates.open(session, context.requester, "transaction")
                responses = self._run_transaction(session, gate, entries, context)
                self._gates.record_in(session, gate)  # commits with the transaction
                ordered = [responses[index] for index in range(len(entries))]
                answer = gate.seal(bb.bundle("transaction-response", entry=ordered))
            logged = True
        finally:
            if gate is not None and not logged:  # the transaction failed: its decisions stand
                self._gates.record(gate)
        return answer

    def _run_transaction(
        self, session: Session, gate: Gate, entries: list[_Entry], context: _Context
    ) -> dict[int, dict[str, Any]]:
        """The entries in R4's processing order, inside the caller's one transaction."""
        responses: dict[int, dict[str, Any]] = {}
        operations = self._operations(session, context.guard, gate)
        locks.serialize_on(session, _conditional_names(entries))
        references = self._plan_references(operations, entries, context.base_url)
        references |= _conditional_targets(operations, entries, context.base_url)
        for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
            if entry.resource is not None:
                _guarded(entry.index, partial(_rewrite, entry, references))
            responses[entry.index] = _guarded(
                entry.index, partial(self._execute, operations, entry, context.base_url)
            )
        return responses

    def _batch(self, raw_entries: list[Any], context: _Context) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        with Session(
            self._engine.execution_options(interop_writes=True), expire_on_commit=False
        ) as session:
            gate = self._gates.open(session, context.requester, "batch")
            try:
                for index, raw in enumerate(raw_entries):
                    gate.forget_reads()  # each entry decides by what the ones before committed
                    operations = self._operations(session, context.guard, gate)
                    results.append(self._batch_entry(session, operations, index, raw, context))
            finally:
                self._gates.record(gate)
        # What the entries released labels the Bundle as a whole too (S1, S2).
        return gate.seal(bb.bundle("batch-response", entry=results))

    def _batch_entry(
        self,
        session: Session,
        operations: ResourceOperations,
        index: int,
        raw: Any,
        context: _Context,
    ) -> dict[str, Any]:
        """One entry in its own transaction; its failure is its response, not the batch's:
        even a fault of the server's, after which the entries before it stay written and the
        client must learn that they were (R4 §3.1.0.11.1)."""
        try:
            with session.begin():
                entry = _authorized_entry(index, raw, context.authorize)
                return self._execute(operations, entry, context.base_url)
        except (ServiceError, FhirContentError) as error:
            return _failed_entry(error)
        except Exception as error:  # rolled back; its kind is logged, not its text
            _log.error("unhandled %s in entry %d of a batch", type(error).__name__, index)
            return _failed_entry(error)

    def _plan_references(
        self, operations: ResourceOperations, entries: list[_Entry], base_url: str
    ) -> dict[str, str]:
        """fullUrl -> "Type/id" for every entry a reference may name (R4 §3.1.0.11.2)."""
        references: dict[str, str] = {}
        for entry in entries:
            if entry.method == "POST":
                if entry.if_none_exist is not None:
                    match = partial(
                        operations.conditional_match,
                        entry.resource_type,
                        entry.if_none_exist,
                        base_url,
                    )
                    entry.existing = _guarded(entry.index, match)
                entry.assigned_id = (
                    entry.existing.resource_id if entry.existing else str(uuid.uuid4())
                )
                target = f"{entry.resource_type}/{entry.assigned_id}"
            elif entry.method == "PUT" and entry.resource_id is not None:
                target = f"{entry.resource_type}/{entry.resource_id}"
            elif entry.method == "PUT":  # conditional: the match, or the resource it creates
                match = partial(operations.single_match, entry.resource_type, entry.query, base_url)
                entry.existing = _guarded(entry.index, match)
                entry.assigned_id = (
                    entry.existing.resource_id if entry.existing else str(uuid.uuid4())
                )
                target = f"{entry.resource_type}/{entry.assigned_id}"
            else:
                continue
            if entry.full_url:
                references[entry.full_url] = target
        return references

    def _execute(
        self, operations: ResourceOperations, entry: _Entry, base_url: str
    ) -> dict[str, Any]:
        """An update or delete entry is logged as the write it is: its check of the version it
        replaces sends nothing back, so it is not accounted as a disclosure of the Bundle."""
        with operations.logged_as(_LOGGED_AS.get(entry.method)):
            return self._run_entry(operations, entry, base_url)

    def _run_entry(
        self, operations: ResourceOperations, entry: _Entry, base_url: str
    ) -> dict[str, Any]:
        if entry.method in ("GET", "HEAD"):
            return {
                "resource": self._read(operations, entry, base_url),
                "response": {"status": "200 OK"},
            }
        if entry.method == "DELETE":
            assert entry.resource_id is not None
            operations.delete(entry.resource_type, entry.resource_id, if_match=entry.if_match)
            return {"response": {"status": "204 No Content"}}
        assert entry.resource is not None
        if entry.method == "POST":
            if entry.existing is not None:
                return _write_response(WriteOutcome(entry.existing, created=False))
            outcome = operations.create(
                entry.resource_type,
                entry.resource,
                base_url=base_url,
                if_none_exist=entry.if_none_exist,  # a batch entry is not planned beforehand
                resource_id=entry.assigned_id,
            )
            return _write_response(outcome)
        if entry.resource_id is None:
            outcome = operations.conditional_update(
                entry.resource_type,
                entry.query,
                entry.resource,
                base_url=base_url,
                resource_id=entry.assigned_id,
                if_match=entry.if_match,
            )
            return _write_response(outcome)
        outcome = operations.update(
            entry.resource_type, entry.resource_id, entry.resource, if_match=entry.if_match
        )
        return _write_response(outcome)

    def _read(self, operations: ResourceOperations, entry: _Entry, base_url: str) -> Any:
        if entry.resource_id is None:
            return operations.search(entry.resource_type, entry.query, base_url=base_url)
        wanted = requested_subset(entry.query)
        if entry.version is not None:
            stored = operations.vread(entry.resource_type, entry.resource_id, entry.version)
        else:
            stored = operations.read(entry.resource_type, entry.resource_id)
        cut = replace(stored, content=subset_content(stored.content, wanted))
        return bb.search_entry(base_url, cut, "match")["resource"]

    def _operations(
        self, session: Session, guard: WriteGuard | None, gate: Gate
    ) -> ResourceOperations:
        return ResourceOperations(ResourceRepository(session), self._paging, gate, guard=guard)


def _failed_entry(error: Exception) -> dict[str, Any]:
    return {"response": {"status": status_line(status_of(error)), "outcome": outcome_of(error)}}


def _guarded(index: int, action: Callable[[], _T]) -> _T:
    """Run one step of entry `index`, naming the entry if it fails."""
    try:
        return action()
    except (ServiceError, FhirContentError) as error:
        raise TransactionFailed(index, error) from None


def _authorized_entry(index: int, raw: Any, authorize: Authorizer) -> _Entry:
    """The parsed entry, once the requester's scopes allow its interaction."""
    entry = _parse_entry(index, raw)
    searching = entry.method in ("GET", "HEAD") and entry.resource_id is None
    authorize(entry.resource_type, "s" if searching else _PERMISSIONS[entry.method])
    return entry


def _parse_entry(index: int, raw: Any) -> _Entry:
    """The entry's request: method and url as R4 Bundle.entry.request defines them."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise InvalidRequest("each entry needs a request with method and url")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER or not isinstance(url, str) or not url:
        raise InvalidRequest("entry.request needs a method (GET, POST, PUT, DELETE) and a url")
    path, _, query_string = url.partition("?")
    segments = [segment for segment in path.strip("/").split("/") if segment]
    if not segments:
        raise InvalidRequest(f"entry.request.url {url[:80]!r} names no resource type")
    check_type(segments[0])
    resource_id = segments[1] if len(segments) > 1 else None
    version = segments[3] if len(segments) == 4 and segments[2] == "_history" else None
    if len(segments) > 2 and version is None:
        raise InvalidRequest(f"entry.request.url {url[:80]!r} is not a supported interaction")
    resource = raw.get("resource")
    _check_entry_shape(method, resource_id, resource, url)
    return _Entry(
        index=index,
        method=method,
        resource_type=segments[0],
        resource_id=resource_id,
        version=version,
        query=parse_qsl(query_string, keep_blank_values=True),
        full_url=raw.get("fullUrl"),
        resource=resource,
        if_none_exist=request.get("ifNoneExist"),
        if_match=request.get("ifMatch"),
    )


def _check_entry_shape(method: str, resource_id: str | None, resource: Any, url: str) -> None:
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise InvalidRequest(f"a {method} entry must carry a resource")
    if method == "DELETE" and resource_id is None:
        raise InvalidRequest(f"a DELETE entry's url must be Type/id, not {url[:80]!r}")
    if method == "PUT" and resource_id is None and "?" not in url:
        raise InvalidRequest(
            f"a PUT entry's url must be Type/id or Type?criteria, not {url[:80]!r}"
        )
    if method == "POST" and resource_id is not None:
        raise InvalidRequest(f"a POST entry's url must be the resource type, not {url[:80]!r}")


def _check_full_urls(raw_entries: list[Any]) -> None:
    """R4 bdl-7: a fullUrl names one entry of a Bundle (or versions of it, which a
    transaction or batch never carries): two entries with one fullUrl make references to it
    mean either. And a fullUrl that looks like a RESTful URL names its resource's type and id
    (R4 Bundle.entry.fullUrl), or a reference to it would name another record than the one
    written. Either way the Bundle is refused whole, naming the entry."""
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        full_url = raw.get("fullUrl") if isinstance(raw, dict) else None
        if not isinstance(full_url, str):
            continue
        if full_url in seen:
            raise TransactionFailed(
                index,
                InvalidRequest(
                    f"fullUrl {full_url[:80]!r} is also entry {seen[full_url]}'s (bdl-7)"
                ),
            )
        disagreement = full_url_disagreement(full_url, raw.get("resource"))
        if disagreement is not None:
            raise TransactionFailed(index, InvalidRequest(disagreement))
        seen[full_url] = index


def _refuse_duplicates(entries: list[_Entry]) -> None:
    """Two entries may not write the same resource (R4 §3.1.0.11.2)."""
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.method in ("PUT", "DELETE") and entry.resource_id is not None:
            key = (entry.resource_type, entry.resource_id)
            if key in seen:
                raise TransactionFailed(
                    entry.index,
                    InvalidRequest(f"{key[0]}/{key[1]} is also written by entry {seen[key]}"),
                )
            seen[key] = entry.index


def _conditional_names(entries: list[_Entry]) -> list[str]:
    """The criteria of the entries that may create on no match: two transactions with the same
    criteria must not both create (interop.store.locks)."""
    names = []
    for entry in entries:
        if entry.method == "PUT" and entry.resource_id is None:
            names.append(locks.criteria_name(entry.resource_type, entry.query))
        elif entry.method == "POST" and entry.if_none_exist is not None:
            names.append(
                locks.criteria_name(
                    entry.resource_type, if_none_exist_criteria(entry.if_none_exist)
                )
            )
    return names


def _conditional_targets(
    operations: ResourceOperations, entries: list[_Entry], base_url: str
) -> dict[str, str]:
    """Each conditional reference (`Patient?identifier=...`, R4 §3.1.0.11.3) -> "Type/id" of
    its one match, resolved once, before the transaction writes anything, among what the
    requester may see; none or several matches fail the transaction (412, naming the entry)."""
    targets: dict[str, str] = {}
    for entry in entries:
        for reference in conditional_references(entry.resource):
            if reference not in targets:
                resolve = partial(_resolved, operations, reference, base_url)
                targets[reference] = _guarded(entry.index, resolve)
    return targets


def _resolved(operations: ResourceOperations, reference: str, base_url: str) -> str:
    resource_type, _, query = reference.partition("?")
    criteria = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name not in ("_format", "_pretty")
    ]
    if not criteria:
        raise InvalidRequest(f"the conditional reference {reference[:80]!r} has no criteria")
    match = operations.single_match(resource_type, criteria, base_url)
    if match is None:
        raise PreconditionFailed(f"the conditional reference {reference[:80]!r} matches nothing")
    return f"{resource_type}/{match.resource_id}"


def _rewrite(entry: _Entry, references: dict[str, str]) -> None:
    """Replace references to other entries' fullUrls; an unknown urn:uuid is an error."""
    assert entry.resource is not None
    entry.resource = _rewritten(entry.resource, references)


def _rewritten(node: Any, references: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewritten(item, references) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _rewritten(value, references) for key, value in node.items()}
    reference = node.get("reference")
    if isinstance(reference, str):
        if reference in references:
            result["reference"] = references[reference]
        elif reference.startswith("urn:uuid:"):
            raise InvalidRequest(f"reference {reference[:60]!r} matches no entry's fullUrl")
    return result


def _write_response(outcome: WriteOutcome) -> dict[str, Any]:
    stored = outcome.stored
    return {
        "response": {
            "status": "201 Created" if outcome.created else "200 OK",
            "location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}",
            "etag": bb.etag(stored.version_id),
            "lastModified": format_instant(stored.last_updated),
        }
    }
