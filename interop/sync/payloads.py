"""What a queued change becomes on the wire, built only from what the disclosure gate releases
to the receiving partner at the moment of sending (PART2.md: a consent revoked after the
change was queued is honoured).

The gate is asked as the partner itself would be, with its granted scopes and for treatment;
every decision is logged like any other disclosure. A payload the gate withholds is not sent
in part: `Withheld` is raised and the delivery says so to staff.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import orjson
from sqlalchemy import Engine

from adapters.ccda.delivery import OutgoingDocumentFile
from interop.audit.log import LogEntry
from interop.auth.requester import Requester
from interop.services.disclosure import DisclosureGate, label
from interop.services.disclosure import Released as GateReleased
from interop.services.errors import Forbidden, ServiceError
from interop.services.exports import DocumentExports, focus_id, released_resource
from interop.services.resources import ResourceOperations, behind_gate
from interop.services.search_parser import Paging
from interop.store.tables import OutboxRow
from mappings.terminology import NPI_SYSTEM
from mappings.workflow import is_abort

_PAGING = Paging(1, 1)
PREPARED = "sync-prepare"
"""What a push's payload is logged as while it is built: decided, not yet disclosed."""
PUSHED = "sync-push"
"""What it is logged as again once the partner took it: the disclosure."""
_BUILT: ContextVar[list[LogEntry] | None] = ContextVar("built", default=None)
_T = TypeVar("_T")
URI_SYSTEM = "urn:ietf:rfc:3986"
_SERVER_META = ("versionId", "lastUpdated", "source")


class Withheld(Exception):
    """The gate released nothing, or not enough to make the payload, to this partner."""


class Payloads:
    def __init__(
        self, engine: Engine, gates: DisclosureGate, exports: DocumentExports, base_url: str
    ) -> None:
        self._engine = engine
        self._gates = gates
        self._exports = exports
        self._base = base_url.rstrip("/")

    def fhir_transaction(
        self, row: OutboxRow, partner: Requester, partner_base: str = ""
    ) -> dict[str, Any]:
        """The row's push alone as a transaction Bundle (`fhir_push`), sealed."""
        batch = Transaction()
        batch.add(self.fhir_push(row, partner, partner_base))
        return batch.bundle()

    def fhir_push(self, row: OutboxRow, partner: Requester, partner_base: str = "") -> "Push":
        """The referral and its Task as conditional updates on our absolute URLs as
        identifiers (R4 §3.1.0.4.3): a resend updates what the first one created, and a
        later change reaches the partner's copy. The client goes too when the gate releases
        it: the copies' subject then resolves to the partner's own Patient (R4 §3.1.0.11.2, our
        URL is the entry's fullUrl), so the partner's consents for that client apply to what it
        writes into its copy and tells us back. Other references point back to this server,
        where the partner reads the rest as our partner (REFERRALS.md: references are
        absolute). A client whose record here is a copy of the partner's own (`partner_base`
        names it in its identifiers) is not sent back: the copies name the partner's record by
        a relative reference, which is the partner's own server's."""

        def build(operations: ResourceOperations) -> Push:
            task = _released(operations, "Task", row.resource_id)
            if _asks_to_abort(task):
                entry = self._abort_entry(operations, task, partner_base)
                return Push((entry,), operations.released, alone=True)
            order = _released(operations, "ServiceRequest", focus_id(task))
            client = released_resource(
                operations, "Patient", _reference_id(order.get("subject"), "Patient")
            )
            entries = [
                self._entry(identified_parties(operations, order)),
                self._entry(identified_parties(operations, task)),
            ]
            theirs = _their_record(client, partner_base)
            if theirs is not None:  # the client came from the partner: name its own record
                for entry, element in zip(entries, ("subject", "for"), strict=True):
                    entry["resource"][element] = {"reference": theirs}
            elif client is not None:  # last: the receipt stays the referral's location
                entries.append(self._entry(client))
            return Push(tuple(entries), operations.released, alone=False)

        return self._gated(partner, build)

    def _abort_entry(
        self, operations: ResourceOperations, task: dict[str, Any], partner_base: str
    ) -> dict[str, Any]:
        """The cancellation request alone: its focus is our Task's URL, which the partner's
        copy carries as its identifier; its client is the partner's own record when ours is a
        copy of it, else ours, which the partner's copy of our client carries the same way."""
        entry = self._entry(identified_parties(operations, task))
        client = released_resource(operations, "Patient", _reference_id(task.get("for"), "Patient"))
        theirs = _their_record(client, partner_base)
        if theirs is not None:
            entry["resource"]["for"] = {"reference": theirs}
        return entry

    @contextmanager
    def disclosing(self) -> Iterator[Callable[[], None]]:
        """One delivery's payloads are decided and logged as they are built (`sync-prepare`:
        nothing leaves before its decision is durable, A1) and become a disclosure
        (`sync-push`, what the accounting lists) when the caller says the partner took them:
        a delivery that never reached the partner, or a payload withheld after part of it was
        released, discloses nothing, and a retry is not a second disclosure (probe 11 M1)."""
        built: list[LogEntry] = []
        token = _BUILT.set(built)
        try:
            yield lambda: self._gates.record_disclosed(built, PUSHED)
        finally:
            _BUILT.reset(token)

    def document(self, row: OutboxRow, partner: Requester) -> OutgoingDocumentFile:
        """A Referral Note, or a Transfer Summary for a handoff (adapters.ccda.writer), named
        by Task and version so that a resend replaces rather than doubles it."""
        try:
            kind, content = self._exports.for_task(row.resource_id, partner)
        except Forbidden:
            raise Withheld from None
        slug = kind.name.lower().replace("_", "-")
        return OutgoingDocumentFile(f"{slug}-{row.resource_id}-v{row.version_id}.xml", content)

    def released(self, row: OutboxRow, partner: Requester) -> "Released":
        """The Task, its referral, the client and both programs, as the gate releases them to
        the partner, with the labels, notice and consents its decisions oblige (S1, S2); the
        HL7 v2 writers take their values from here and nowhere else."""

        def build(operations: ResourceOperations) -> Released:
            task = _vread(operations, row)
            order = _released(operations, "ServiceRequest", focus_id(task))
            subject = _reference_id(order.get("subject"), "Patient")
            patient = _released(operations, "Patient", subject)
            organizations = {
                role: released_resource(
                    operations,
                    "Organization",
                    _reference_id(_first(order.get(role)), "Organization"),
                )
                for role in ("requester", "performer")
            }
            return Released(task, order, patient, organizations, operations.released)

        return self._gated(partner, build)

    def check_released(self, row: OutboxRow, partner: Requester) -> None:
        """Raise Withheld unless the gate releases the row's resource to the partner now:
        even a notification naming only an id tells that the record exists."""

        def build(operations: ResourceOperations) -> None:
            _released(operations, row.resource_type, row.resource_id)

        self._gated(partner, build)

    def _gated(self, partner: Requester, build: Callable[[ResourceOperations], _T]) -> _T:
        with behind_gate(
            self._engine, self._gates, partner, PREPARED, paging=_PAGING
        ) as operations:
            built = build(operations)
            collected = _BUILT.get()
            if collected is not None:
                collected.extend(operations.decisions())
            return built

    def _entry(self, resource: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base}/{resource['resourceType']}/{resource['id']}"
        body = absolute_references(resource, self._base)
        body.pop("id", None)
        meta = {k: v for k, v in body.get("meta", {}).items() if k not in _SERVER_META}
        body["meta"] = meta
        if not meta:
            body.pop("meta")
        ours = {"system": URI_SYSTEM, "value": url}
        body["identifier"] = [*[i for i in body.get("identifier", []) if i != ours], ours]
        criteria = f"identifier={quote(URI_SYSTEM, safe='')}|{quote(url, safe='')}"
        return {
            "fullUrl": url,
            "resource": body,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}?{criteria}"},
        }


@dataclass(frozen=True, slots=True)
class Push:
    """One queued change's entries for the partner's transaction, and what the gate released
    in them (the labels, notice and consents the Bundle carrying them must show)."""

    entries: tuple[dict[str, Any], ...]
    released: GateReleased
    alone: bool
    """A cancellation request goes in a transaction of its own: its focus resolves to the
    partner's copy of our Task, which another entry of the same transaction may be writing."""


class Transaction:
    """Several pushes to one partner as one transaction Bundle: the partner pays for one
    request, token check and commit instead of one each. An entry two pushes share (the same
    client, the same referral) goes once; a push that would carry a different version of an
    entry already in (R4 bdl-7: one fullUrl per Bundle) stays out for a transaction of its
    own."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._released: list[GateReleased] = []
        self.firsts: list[int] = []
        """Per push added, the index of its first entry: where its receipt is read."""

    def __len__(self) -> int:
        return len(self.firsts)

    def add(self, push: Push) -> bool:
        """Whether the push joined the transaction (see the class)."""
        if any(self._entries.get(e["fullUrl"], e) != e for e in push.entries):
            return False
        for entry in push.entries:
            self._entries.setdefault(entry["fullUrl"], entry)
        self.firsts.append(list(self._entries).index(push.entries[0]["fullUrl"]))
        self._released.append(push.released)
        return True

    def bundle(self) -> dict[str, Any]:
        """The transaction, carrying the labels and notice of everything in it (S1, S2)."""
        bundle = _transaction(list(self._entries.values()))
        labels = {pair for released in self._released for pair in released.labels}
        notice = next((r.notice for r in self._released if r.notice is not None), None)
        if not labels and notice is None:
            return bundle
        consents = {consent for released in self._released for consent in released.consents}
        return label(bundle, sorted(labels), notice, consents)


@dataclass(frozen=True, slots=True)
class Released:
    task: dict[str, Any]
    order: dict[str, Any]
    patient: dict[str, Any]
    organizations: dict[str, dict[str, Any] | None]
    disclosed: GateReleased


_PARTIES = ("requester", "owner", "performer")


def identified_parties(operations: ResourceOperations, resource: dict[str, Any]) -> dict[str, Any]:
    """The referral's parties, and its notes' authors, with their Organizations' identifiers
    beside the reference (a logical reference, R4 §2.3.0): a receiver resolves them to
    organizations it knows, since an id on our server means nothing on theirs."""
    named = dict(resource)
    for role in _PARTIES:
        value = named.get(role)
        if isinstance(value, list):
            named[role] = [_identified(operations, item) for item in value]
        elif value is not None:
            named[role] = _identified(operations, value)
    notes = named.get("note")
    if isinstance(notes, list):  # a signed note's author, known to the receiver the same way
        named["note"] = [_signed(operations, note) for note in notes]
    return named


def _signed(operations: ResourceOperations, note: Any) -> Any:
    if not isinstance(note, dict) or not isinstance(note.get("authorReference"), dict):
        return note
    return {**note, "authorReference": _identified(operations, note["authorReference"])}


def _identified(operations: ResourceOperations, reference: Any) -> Any:
    ident = _reference_id(reference, "Organization")
    if not ident or reference.get("identifier"):
        return reference
    organization = released_resource(operations, "Organization", ident)
    identifiers = [i for i in (organization or {}).get("identifier", []) if i.get("value")]
    if not identifiers:
        return reference
    npi = [i for i in identifiers if i.get("system") == NPI_SYSTEM]
    chosen = (npi or identifiers)[0]
    return {**reference, "identifier": {"system": chosen.get("system"), "value": chosen["value"]}}


def _transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _asks_to_abort(task: dict[str, Any]) -> bool:
    """A requester's cancellation request (a Task with code `abort` focused on the referral's
    Task, REFERRALS.md): it goes alone, its focus our Task's URL, which the partner's copy
    carries as its identifier and resolves to that copy."""
    focus = task.get("focus")
    target = focus.get("reference", "") if isinstance(focus, dict) else ""
    return str(target).startswith("Task/") and is_abort(task)


def _released(operations: ResourceOperations, kind: str, ident: str) -> dict[str, Any]:
    found = released_resource(operations, kind, ident)
    if found is None:
        raise Withheld
    return found


def _vread(operations: ResourceOperations, row: OutboxRow) -> dict[str, Any]:
    """The Task as it was when the change was queued: an HL7 v2 event reports that change."""
    try:
        stored = operations.vread(row.resource_type, row.resource_id, str(row.version_id))
    except ServiceError:
        raise Withheld from None
    content: dict[str, Any] = orjson.loads(stored.content or b"null")
    return content


def _their_record(client: dict[str, Any] | None, partner_base: str) -> str | None:
    """ "Patient/{id}" on the partner's server when our client record is a copy of that one."""
    prefix = f"{partner_base.rstrip('/')}/Patient/"
    for identifier in (client or {}).get("identifier", []) if partner_base else []:
        value = str(identifier.get("value", ""))
        if identifier.get("system") == URI_SYSTEM and value.startswith(prefix):
            ident = value.removeprefix(prefix)
            if ident and "/" not in ident:
                return f"Patient/{ident}"
    return None


def _first(value: Any) -> Any:
    """A party element's first reference: ServiceRequest.performer is a list (0..*)."""
    return (value or [None])[0] if isinstance(value, list) else value


def _reference_id(reference: Any, kind: str) -> str:
    text = reference.get("reference", "") if isinstance(reference, dict) else ""
    prefix, _, ident = str(text).rpartition("/")
    return ident if prefix == kind else ""


def absolute_references(value: Any, base: str) -> Any:
    """Relative literal references made absolute on the server at `base`: across servers,
    references are absolute (REFERRALS.md), ours pushed out and partners' read back alike."""
    if isinstance(value, dict):
        copied = {key: absolute_references(item, base) for key, item in value.items()}
        reference = copied.get("reference")
        if isinstance(reference, str) and _is_relative(reference):
            copied["reference"] = f"{base}/{reference}"
        return copied
    if isinstance(value, list):
        return [absolute_references(item, base) for item in value]
    return value


def _is_relative(reference: str) -> bool:
    return "://" not in reference and not reference.startswith(("#", "urn:"))
