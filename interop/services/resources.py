"""The FHIR RESTful interactions on one resource type (R4 §3.1.0 RESTful API).

`ResourceOperations` works inside a caller's transaction, so that a transaction Bundle can run
many interactions in one; `ResourceService` gives each interaction a transaction of its own.
"""

import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from interop.audit.log import LogEntry
from interop.auth.requester import Requester
from interop.services import bundle_builder as bb
from interop.services import limits
from interop.services.directives import consent_warnings
from interop.services.disclosure import Released, log_into, patient_of, system_gate
from interop.services.errors import (
    BusinessRuleBroken,
    Forbidden,
    InvalidRequest,
    PreconditionFailed,
    ResourceGone,
    ResourceNotFound,
    VersionConflict,
)
from interop.services.numbers import whole_number
from interop.services.outbox import COPY_IDENTIFIER_SYSTEM, ChannelKind, Event, note_change
from interop.services.outcomes import outcome
from interop.services.search_parser import Paging, parse_search
from interop.services.subscriptions import is_subscriber, prepare_subscription
from interop.services.subsetting import (
    is_subsetted,
    requested_subset,
    subset_bundle,
    summary_mode,
)
from interop.store import consents as consents_store
from interop.store import locks
from interop.store import organizations as organizations_store
from interop.store import outbox as outbox_store
from interop.store.consents import held_carriers
from interop.store.database import unit_of_work
from interop.store.fhirdates import as_utc, format_instant, now_ms, parse_range
from interop.store.identifiers import ids_with
from interop.store.repository import GateFacts, ResourceRepository, current_version
from interop.store.repository import StoredVersion as StoredVersion
from interop.store.search import Inclusion, SearchQuery
from interop.store.search_params import SUPPORTED_TYPES, extract, parse_reference
from interop.store.tables import OPERATOR_ORIGIN, ResourceRow
from mappings import fhir
from mappings.consent import copy_problem, revival_problem, revoked
from mappings.documents import with_labels
from mappings.errors import InvalidResource, Issue
from mappings.model import Code, Identifier
from mappings.subscription import Standing, status_bundle
from mappings.terminology import TASK_CODE
from mappings.workflow import (
    TERMINAL,
    Side,
    is_abort,
    is_fulfillment,
    is_owner_cancellation,
    rebased,
    task_change_problem,
)

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_MAX_INCLUDE_ROUNDS = 4
_DECIDED_AT_ONCE = 500
"""Rows loaded per round while a search counts what the gate releases: memory stays flat
however many match."""
_PATIENT_PARAMS = ("patient", "subject", "beneficiary")
"""The parameters that name the patient a search is about (see `_asks_about_one_patient`)."""


class Gate(Protocol):
    """The disclosure gate of one request (interop.services.disclosure.GateSession)."""

    @property
    def requester(self) -> Requester:
        """Who asks; the origin of what it writes."""
        ...

    @property
    def released(self) -> Released:
        """The labels, notice and consents of what was released so far."""
        ...

    def admit(self, stored: StoredVersion) -> bytes | None: ...

    def close_emergency(self) -> None: ...

    def released_references(self) -> list[str]: ...

    def entries(self) -> list[LogEntry]: ...

    def releases_everything(self, resource_type: str) -> bool: ...

    def set_aside(self, resource_type: str, matches: Sequence[GateFacts]) -> list[GateFacts]: ...

    def forget_reads(self) -> None: ...

    def unrecorded(self) -> AbstractContextManager[None]: ...

    def logged_as(self, interaction: str | None) -> AbstractContextManager[None]: ...

    def seal(self, bundle: dict[str, Any]) -> dict[str, Any]: ...


class WriteGuard(Protocol):
    """Decides whether the requester may write this resource (partner isolation)."""

    @property
    def organization(self) -> str:
        """The writing partner's Organization ("Organization/{id}")."""
        ...

    @property
    def acts_for_either(self) -> bool:
        """Whether its writes of a shared Task count for either side (staff recording what
        happened, REFERRALS.md history included), not the side its organization is named on."""
        ...

    def check(
        self,
        resource_type: str,
        old: bytes | None,
        new: dict[str, Any] | None,
        custodians: tuple[str, ...] = (),
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    stored: StoredVersion
    created: bool  # 201 Created rather than 200 OK
    warnings: tuple[Issue, ...] = ()  # e.g. why a stored Consent cannot be relied on


def reliance_warnings(
    resource_type: str,
    resource: dict[str, Any],
    session: Session | None = None,
    origin: str | None = None,
    *,
    patient_withheld: bool = False,
) -> tuple[Issue, ...]:
    """Why a Consent may be stored (a draft, say) yet not relied on under 42 CFR §2.31, read
    with what the store knows around it and who records it (interop.services.directives)."""
    if resource_type != "Consent":
        return ()
    now = datetime.now(UTC)
    return consent_warnings(session, resource, now, origin, patient_withheld=patient_withheld)


def check_type(resource_type: str) -> None:
    """Unsupported types are "not found" on this server (R4 §3.1.0.1.1 Service Base URL)."""
    if resource_type not in SUPPORTED_TYPES:
        raise ResourceNotFound(f"resource type {resource_type[:64]!r} is not supported here")


def check_id(resource_id: str) -> None:
    if not _ID_RE.match(resource_id):
        raise InvalidRequest(f"{resource_id[:70]!r} is not a valid FHIR id")


class ResourceOperations:
    """The interactions, inside the caller's unit of work, behind one door: the disclosure gate
    of this request (ARCHITECTURE.md rule 4).

    Reads, searches, history and conditional criteria see only what `gate` releases; updates
    and deletes of a record the gate withholds answer exactly as for an unknown id and change
    nothing. Every version written records the gate's requester's organization as its origin.
    Writes queue what partners must be told in the same transaction (interop.services.outbox);
    `acting_for` names the side of a shared Task the writer acts for when no guard does (an HL7
    v2 sender), so it is not told of its own change; without either, staff and the program's
    own systems act for either side.
    """

    def __init__(
        self,
        repository: ResourceRepository,
        paging: Paging,
        gate: Gate,
        *,
        guard: WriteGuard | None = None,
        acting_for: str | None = None,
        client_ids: bool = False,
    ) -> None:
        self._repository = repository
        self._client_ids = client_ids or gate.requester.first_party
        self._visible: dict[tuple[str, str], bool] = {}
        self._paging = paging
        self._guard = guard
        self._gate = gate
        self._origin = acting_for if guard is None or guard.acts_for_either else guard.organization

    @property
    def released(self) -> Released:
        """What this request's gate released so far (for a document's markings)."""
        return self._gate.released

    @property
    def sees_everything(self) -> bool:
        """Whether the requester is the program's own side, to which nothing is withheld."""
        return self._gate.requester.first_party

    def consent_problems(
        self, consent: dict[str, Any], origin: str | None = None
    ) -> tuple[Issue, ...]:
        """Why a Consent cannot be relied on now, read with what the store knows and with who
        records it: `origin` writing it now, else the stored version's. The one reading behind
        a write's `Prefer: return=OperationOutcome` and `$validate` alike (C1, C9); a Patient
        withheld from the requester is read as one not stored here."""
        if origin is None:
            row = self._repository.current("Consent", str(consent.get("id")))
            origin = row.origin if row is not None else None
        withheld = self._withholds_patient(consent)
        session = self._repository.session
        return reliance_warnings("Consent", consent, session, origin, patient_withheld=withheld)

    def _withholds_patient(self, consent: dict[str, Any]) -> bool:
        """Whether `Consent.patient` names a stored Patient the gate withholds from the
        requester: its name must not tell the requester the person is known here (§2.13(c))."""
        patient = consent.get("patient")
        reference = patient.get("reference") if isinstance(patient, dict) else None
        if not isinstance(reference, str) or not reference.startswith("Patient/"):
            return False
        stored = self._repository.latest("Patient", reference.removeprefix("Patient/"))
        return stored is not None and stored.content is not None and not self._may_see(stored)

    def _written_consent_problems(
        self, resource_type: str, resource: dict[str, Any]
    ) -> tuple[Issue, ...]:
        if resource_type != "Consent":
            return ()
        return self.consent_problems(resource, self._gate.requester.organization)

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        check_type(resource_type)
        check_id(resource_id)
        unknown = ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        latest = self._repository.latest(resource_type, resource_id)
        if latest is None:
            raise unknown
        released = self._admitted(latest)
        if released is None:
            raise unknown
        if latest.content is None:
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted")
        return released

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> StoredVersion:
        check_type(resource_type)
        check_id(resource_id)
        unknown = ResourceNotFound(
            f"{resource_type}/{resource_id} has no version {version_id[:20]!r}"
        )
        version = whole_number(version_id)
        if version is None:
            raise unknown
        stored = self._repository.version(resource_type, resource_id, version)
        if stored is None or not self._visible_now(resource_type, resource_id):
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
        limits.check_resource(resource)
        _check_consent_names_patient_here(resource_type, resource)
        resource = self._localized(resource_type, resource)
        fhir.validate(resource)
        resource = self._prepared(resource_type, resource)
        if self._guard is not None:
            self._guard.check(resource_type, None, resource)
            self._check_consent_patient(resource_type, resource)
        if if_none_exist is not None:
            existing = self.conditional_match(resource_type, if_none_exist, base_url)
            if existing is not None:
                return WriteOutcome(existing, created=False)
        self._check_workflow(resource_type, None, resource)
        self._check_not_a_revoked_copy(resource_type, resource_id, resource)
        new_id = resource_id or str(uuid.uuid4())
        stored = self._store(None, resource_type, new_id, 1, resource, "POST")
        return WriteOutcome(stored, True, self._written_consent_problems(resource_type, resource))

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
        limits.check_resource(resource)  # before the lock: an oversized write holds nothing
        _check_consent_names_patient_here(resource_type, resource)
        resource = self._localized(resource_type, resource)
        row = self._repository.current(resource_type, resource_id, lock=True)
        self._check_writable(row, resource_type, resource_id, creating=True)
        if self._guard is not None:  # then: who may write comes before what is written
            self._guard.check(
                resource_type,
                row.content if row is not None else None,
                resource,
                _custodians(row),
            )
            self._check_consent_patient(resource_type, resource)
        fhir.validate(resource)
        rebased = self._rebased(resource_type, row, resource)
        if rebased != resource:
            resource = rebased
            fhir.validate(resource)
        resource = self._prepared(resource_type, resource)
        if if_match is not None:
            _check_if_match(row, if_match)
        before = row.content if row is not None and not row.deleted else None
        self._check_workflow(resource_type, before, resource)
        if row is not None and before is not None and _a_finished_task_resent(before, resource):
            return WriteOutcome(current_version(row), created=False)
        if resource_type == "Consent" and row is not None:
            self._check_not_revived(resource_id, resource)
        self._check_not_a_revoked_copy(resource_type, resource_id, resource)
        version_id = 1 if row is None else row.version_id + 1
        stored = self._store(row, resource_type, resource_id, version_id, resource, "PUT")
        warnings = self._written_consent_problems(resource_type, resource)
        return WriteOutcome(stored, row is None, warnings)

    def add_labels(self, resource_type: str, resource_id: str, labels: tuple[Code, ...]) -> None:
        """A message or document marked Part 2 that names a record already here labels it too
        (PART2.md P1: labelled Part 2 data is Part 2 data whoever sent it): labels are added,
        never taken away, and nothing else of the record changes (a Task's workflow state
        above all)."""
        if not labels:
            return
        stored = self.read(resource_type, resource_id)
        resource = as_written(stored.content)
        labelled = with_labels(resource, labels)
        if labelled != resource:
            self.update(resource_type, resource_id, labelled)

    def answered(self, written: WriteOutcome) -> WriteOutcome:
        """The write as it is answered to its writer. The body sent back is a disclosure like
        any read: a partner writing a shared record (a referral's Task, rebased on what the
        other side wrote) gets it labelled, with the §2.32 notice, and logged; when the gate
        would release nothing (no read scope, say), the answer carries no body."""
        stored = written.stored
        if self._gate.releases_everything(stored.resource_type):
            return written
        with self._gate.logged_as(WRITE_ANSWER):
            content = self._gate.admit(stored)
        return replace(written, stored=replace(stored, content=content))

    def delete(self, resource_type: str, resource_id: str, *, if_match: str | None = None) -> None:
        """Delete: a new version without content. Deleting twice, or what does not exist (to
        the requester: a withheld record too), changes nothing and succeeds (R4 §3.1.0.7),
        unless If-Match names a version: then there is none to match (412, RFC 9110 §13.1.1)."""
        check_type(resource_type)
        check_id(resource_id)
        row = self._repository.current(resource_type, resource_id, lock=True)
        try:
            self._check_writable(row, resource_type, resource_id, creating=False)
        except ResourceNotFound:
            row = None  # withheld: answered exactly as for an unknown id
        if if_match is not None:
            _check_if_match(row, if_match)
        if row is None or row.deleted:
            return
        if self._guard is not None:
            self._guard.check(resource_type, row.content, None, _custodians(row))
            if resource_type == "Task" and is_fulfillment(orjson.loads(row.content or b"{}")):
                raise BusinessRuleBroken(
                    "a referral's Task is not deleted by a partner: mark it entered-in-error"
                )
        if resource_type == "Consent":
            self._check_revocation_kept(resource_id)
        stored = StoredVersion(
            resource_type, resource_id, row.version_id + 1, now_ms(), "DELETE", None, "", ()
        ).with_origin(self._gate.requester.organization, _custodians(row))
        self._repository.write(row, stored, (), patient=None)
        self._visible.pop((resource_type, resource_id), None)

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
        wanted = requested_subset(params)
        query = parse_search(
            resource_type, params, base_url=base_url, paging=self._paging, strict=strict
        )
        if not _asks_about_one_patient(query):
            self._gate.close_emergency()
        page, total, more = self._page(query)
        used = [(name, value) for name, value in params if _is_used(name, query)]
        links = bb.paging_links(
            f"{base_url}/{resource_type}", used, query.offset, query.count, total, more=more
        )
        entries: list[dict[str, Any]] = []
        if not query.summary_count:
            entries = [bb.search_entry(base_url, stored, "match") for _row, stored in page]
            included = self._inclusions([row for row, _ in page], query.includes, query.revincludes)
            entries.extend(bb.search_entry(base_url, stored, "include") for stored in included)
        if query.ignored:
            entries.append(bb.outcome_entry(_ignored_outcome(query.ignored)))
        counted = {} if total is None else {"total": total}
        sealed = self.seal(bb.bundle("searchset", **counted, link=links, entry=entries))
        return subset_bundle(sealed, wanted)

    def released_references(self) -> list[str]:
        """What the gate has released in this transaction, by reference (what a document
        built from the releases holds)."""
        return self._gate.released_references()

    def decisions(self) -> list[LogEntry]:
        """The gate's decisions so far, as they are logged (a push discloses them again once
        the partner took it: interop.sync.payloads)."""
        return list(self._gate.entries())

    def released_again(self, resource_type: str, lines: bytes) -> bytes:
        """Exported NDJSON lines decided again as they are downloaded: the download is the
        disclosure, so a line whose consent was revoked since the export ran is left out
        (C6), and what is released is logged and accounted now (A1, A2), with the consent
        relied on now and labelled as it leaves."""
        if self._gate.releases_everything(resource_type):
            return lines
        names = [_version_name(line) for line in lines.splitlines() if line]
        found = self._repository.versions_named([name for name in names if name is not None])
        kept = [
            released
            for name in names
            if name is not None
            and name in found
            and (released := self._gate.admit(found[name])) is not None
        ]
        return b"".join(line + b"\n" for line in kept)

    def released_after(
        self, queries: Sequence[SearchQuery], after: int, limit: int
    ) -> tuple[list[StoredVersion], int, bool]:
        """Up to `limit` current resources matching any of `queries` whose key follows `after`,
        in key order, as the gate releases them (withheld ones left out and never counted);
        the key of the last one examined, to go on after; and whether more may follow. Bulk
        export and $everything walk by key, so each page costs O(page) whatever came before."""
        if all(self._gate.releases_everything(query.resource_type) for query in queries):
            found: dict[int, StoredVersion] = {}
            for query in queries:
                for pk, stored in self._repository.page_after(query, after, limit):
                    found.setdefault(pk, stored)
            keys = sorted(found)[:limit]
        else:
            keys, found = self._left_after(queries, after, limit)
        released = [
            kept for pk in keys if pk in found and (kept := self._admitted(found[pk])) is not None
        ]
        return released, (keys[-1] if keys else after), len(keys) == limit

    def _left_after(
        self, queries: Sequence[SearchQuery], after: int, limit: int
    ) -> tuple[list[int], dict[int, StoredVersion]]:
        """The keys of a walk's page, and the versions of those left to decide once the gate
        has set aside, unread, what their columns settle (`GateSession.set_aside`)."""
        matches: dict[int, tuple[str, GateFacts]] = {}
        for query in queries:
            for match in self._repository.facts_after(query, after, limit):
                matches.setdefault(match.key, (query.resource_type, match))
        keys = sorted(matches)[:limit]
        left: list[int] = []
        for resource_type in sorted({matches[key][0] for key in keys}):
            of_type = [matches[key][1] for key in keys if matches[key][0] == resource_type]
            left.extend(match.key for match in self._gate.set_aside(resource_type, of_type))
        return keys, dict(self._repository.versions(sorted(left)))

    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: Sequence[tuple[str, str]],
        *,
        base_url: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        """A history Bundle, newest version first; `_since`, `_at` and `_count` as R4 defines
        them, and `_summary=count` the total alone, as a search answers it (R4 §3.1.1.5.8:
        the count without the versions, so nothing is disclosed). Other parameters are
        ignored, or refused with `Prefer: handling=strict` (a history Bundle has no place for
        an OperationOutcome saying so)."""
        if resource_type is not None:
            check_type(resource_type)
        if resource_id is not None:
            check_id(resource_id)
        asked = _history_params(params, self._paging)
        wanted = requested_subset(params)
        if strict and asked.ignored:
            raise InvalidRequest(f"history takes no parameter {', '.join(asked.ignored)[:200]}")
        since, offset, count = asked.since, asked.offset, asked.count
        if (
            resource_type is not None
            and resource_id is not None
            and not self._visible_now(resource_type, resource_id)
        ):
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        versions = self._repository.history(resource_type, resource_id, since)
        # Decided quietly to count and to find the page; only the page is sent (none for a
        # count), so only its versions are decided on record (A1) and accounted (A2).
        visible = [
            version
            for version in versions
            if self._visible_now(version.resource_type, version.resource_id)
            and self._may_see(version)
        ]
        if resource_id is not None and not visible and versions:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        if asked.at is not None:
            # Chosen among what the requester may see only now: choosing first, an `_at`
            # landing on withheld versions alone would answer 404, and tell they were there.
            then = {_version_key(v) for v in _current_during(versions, asked.at)}
            visible = [version for version in visible if _version_key(version) in then]
        path = "/".join(part for part in (resource_type, resource_id) if part)
        url = f"{base_url}/{path}/_history" if path else f"{base_url}/_history"
        used = [(name, value) for name, value in params if name in _HISTORY_CRITERIA]
        sent = visible[offset : offset if asked.summary_count else offset + count]
        page = [kept for version in sent if (kept := self._admitted(version)) is not None]
        entries = [bb.history_entry(base_url, stored) for stored in page]
        links = bb.paging_links(url, used, offset, count, len(visible))
        bundle = bb.bundle("history", total=len(visible), link=links, entry=entries)
        return subset_bundle(self.seal(bundle), wanted)

    def conditional_match(
        self, resource_type: str, criteria: str, base_url: str
    ) -> StoredVersion | None:
        """The one resource matching If-None-Exist criteria; 412 when several do (R4 §3.1.0.8).

        Only what the gate releases can match: a withheld record is, to this requester, absent.
        """
        params = if_none_exist_criteria(criteria)
        if not params:
            raise InvalidRequest("If-None-Exist must carry search criteria")
        locks.serialize_on(self._repository.session, [locks.criteria_name(resource_type, params)])
        return self.single_match(resource_type, params, base_url)

    def lock_criteria(
        self, resource_type: str, alternatives: Sequence[Sequence[tuple[str, str]]]
    ) -> None:
        """Take the locks of several conditional criteria at once, in one order, before
        matching them one by one (two writers trying the same alternatives in different
        orders would otherwise wait for each other)."""
        names = [locks.criteria_name(resource_type, criteria) for criteria in alternatives]
        locks.serialize_on(self._repository.session, names)

    def held_client(
        self, identifiers: Sequence[Identifier], labels: tuple[Code, ...]
    ) -> str | None:
        """The sender's Patient carrying one of a message's or document's patient identifiers
        (`held_patient`, tried in order), labelled as what names it is; None when there is
        none, to be registered. The identifiers' locks are taken first, all at once, so that
        two messages about one new client register it once."""
        named = [[("identifier", f"{each.system}|{each.value}")] for each in identifiers]
        self.lock_criteria("Patient", named)
        for identifier in identifiers:
            found = self.held_patient(identifier.system, identifier.value)
            if found is not None:
                self.add_labels("Patient", found, labels)
                return found
        return None

    def held_patient(self, system: str | None, value: str) -> str | None:
        """The id of the one current Patient carrying this identifier that the writer's side
        holds (wrote a version of), or None. An identifier is only as good as who assigned
        it: a partner's message names a patient of its own records, never another party's
        client who happens to carry the same number (filing its document on a stranger's
        chart, and telling it that client exists here, §2.13(c)). BusinessRuleBroken when the
        writer's side holds several: which one is meant cannot be told, and registering yet
        another would split the client further; staff choose."""
        session = self._repository.session
        holder = self._gate.requester.organization
        carriers = held_carriers(session, system or "", value, holder)
        if len(carriers) > 1:
            raise BusinessRuleBroken(
                f"{len(carriers)} patients the sender holds carry the same identifier (system "
                f"{(system or '')[:120]}): which one is meant cannot be told, and it is not "
                "filed on a new one; staff merge them or choose"
            )
        return carriers[0] if carriers else None

    def single_match(
        self, resource_type: str, params: Sequence[tuple[str, str]], base_url: str
    ) -> StoredVersion | None:
        """The one released resource matching `params`, None for none, 412 for several."""
        query = parse_search(
            resource_type, params, base_url=base_url, paging=self._paging, strict=True
        )
        released = self._released_keys(self._repository.match_keys(query), 2)
        if len(released) > 1:
            raise PreconditionFailed("the conditional criteria match more than one resource")
        admitted = self._admitted_rows(released)
        return admitted[0][1] if admitted else None

    def conditional_update(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        resource: dict[str, Any],
        *,
        base_url: str,
        resource_id: str | None = None,
        if_match: str | None = None,
    ) -> WriteOutcome:
        """PUT [type]?[criteria] (R4 §3.1.0.4.3): update the one match, create when there is
        none (with `resource_id` when the caller already assigned one), 412 for several. A
        body id must name the match (400 otherwise); with no match an id is refused rather
        than used, since whether that id exists is not the requester's to learn. If-Match
        holds as for any update (§3.1.0.5): with no match, no version matches it."""
        check_type(resource_type)
        criteria = [(name, value) for name, value in params if name != "_format"]
        if not criteria:
            raise InvalidRequest("a conditional update needs search criteria")
        locks.serialize_on(self._repository.session, [locks.criteria_name(resource_type, criteria)])
        existing = self.single_match(resource_type, criteria, base_url)
        given = resource.get("id")
        if existing is None:
            if given is not None:
                raise InvalidRequest(
                    "the criteria match nothing: leave the id out to create the resource"
                )
            if if_match is not None:
                _check_if_match(None, if_match)
            return self.create(resource_type, resource, base_url=base_url, resource_id=resource_id)
        if given is not None and given != existing.resource_id:
            raise InvalidRequest(
                f"the criteria match {resource_type}/{existing.resource_id}, not the body's id"
            )
        return self.update(
            resource_type,
            existing.resource_id,
            {**resource, "id": existing.resource_id},
            if_match=if_match,
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
            resource_type, resource_id, version_id, last_updated, method, fhir.to_json(body), "", ()
        ).with_origin(self._gate.requester.organization, _custodians(row))
        before = row.content if row is not None and not row.deleted else None
        index = extract(body)
        limits.check_index_values(len(index))
        try:
            self._repository.write(row, stored, index, patient=patient_of(body))
        except IntegrityError:
            raise VersionConflict(
                f"{resource_type}/{resource_id} was changed by another request; read it and retry"
            ) from None
        note_change(self._repository.session, stored, before, self._origin)
        self._visible.pop((resource_type, resource_id), None)
        return stored

    def _localized(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """A partner's referral names organizations as its own server does (absolute URLs
        there), with their identifiers beside them: each one that names an Organization known
        here by that identifier points here instead, its identifier and display kept (R4
        §2.3.0: a reference may carry both), so that the partner's copy of a referral it sent
        lands as its referral, and the other party as the organization it is here. A
        reference no identifier resolves stays as the partner wrote it."""
        if self._guard is None:
            return resource
        session = self._repository.session
        _check_no_other_servers_urls(session, self._guard.organization, resource)
        if resource_type not in _REFERRAL_TYPES:
            return resource
        localized = dict(resource)
        # The directory of Organizations is the server's to consult, whatever the writer's
        # read scopes: nothing about a patient is read.
        for role in _PARTY_ELEMENTS:
            value = localized.get(role)
            if isinstance(value, list):
                localized[role] = [_local_party(session, item) for item in value]
            elif isinstance(value, dict):
                localized[role] = _local_party(session, value)
        notes = localized.get("note")
        if isinstance(notes, list):  # an author named by identifier is that party here too
            localized["note"] = [_locally_signed(session, note) for note in notes]
        if resource_type == "Task" and is_abort(localized):
            for element in ("focus", "for"):
                if element in localized:
                    localized[element] = _our_copy(session, localized[element])
        return localized

    def _prepared(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """What the server owns in a resource, set before it is validated and stored. A
        conditional reference left in it names nothing: only a transaction resolves one."""
        if conditional := conditional_references(resource):
            raise InvalidRequest(
                f"the conditional reference {conditional[0][:80]!r} is resolved only in a "
                "transaction (R4 §3.1.0.11.3)"
            )
        if is_subsetted(resource):
            raise BusinessRuleBroken(
                "a resource tagged SUBSETTED is a part of one (_summary, _elements) and is "
                "never stored, lest it overwrite the whole one (R4 §3.1.1.5.8): read it whole "
                "and write that",
                (f"{resource_type}.meta.tag",),
            )
        if resource_type == "Subscription":
            return prepare_subscription(resource, self._origin)
        return resource

    def _check_not_a_revoked_copy(
        self, resource_type: str, resource_id: str | None, consent: dict[str, Any]
    ) -> None:
        """A Consent that is the signed document (`mappings.consent.Signing`) of one the
        patient revoked, in any of its versions, is that revoked document under another id:
        never put in force (C5). Whether the patient is named by reference or by identifier,
        on either side: a copy does not escape by naming the patient otherwise."""
        if resource_type != "Consent":
            return
        patient = self._consent_patient(consent.get("patient"))
        if patient is None:
            return
        session = self._repository.session
        others = {
            ident
            for _, ident, _, _ in consents_store.consent_versions(session, patient)
            if ident != resource_id
        } | {
            ident
            for ident in consents_store.consents_by_identifier(session, patient)
            if ident != resource_id
        }
        versions = (
            version for ident in sorted(others) for version in self._versions("Consent", ident)
        )
        problem = copy_problem(consent, versions)
        if problem is not None:
            raise BusinessRuleBroken(problem)

    def _consent_patient(self, reference: Any) -> str | None:
        """The id of the stored Patient a Consent names: by literal reference, or by an
        identifier the writer's side holds one Patient carrying (as the gate reads it)."""
        if not isinstance(reference, dict):
            return None
        if "reference" in reference:
            parsed = parse_reference(str(reference.get("reference") or ""))
            return parsed[1] if parsed is not None and parsed[0] == "Patient" else None
        identifier = reference.get("identifier")
        if not isinstance(identifier, dict):
            return None
        system, value = identifier.get("system"), identifier.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            return None
        recorder = self._origin or self._gate.requester.organization
        carriers = held_carriers(self._repository.session, system, value, recorder)
        return carriers[0] if len(carriers) == 1 else None

    def _check_revocation_kept(self, resource_id: str) -> None:
        """A revoked Consent records the patient's written revocation (§2.31, C6): it is kept,
        not deleted (mark one recorded by mistake entered-in-error), so that no copy of it
        is ever taken for a consent in force."""
        if any(revoked(version) for version in self._versions("Consent", resource_id)):
            raise BusinessRuleBroken(
                "a revoked consent records the patient's revocation and is kept: "
                "mark it entered-in-error if it was recorded by mistake"
            )

    def _check_not_revived(self, resource_id: str, after: dict[str, Any]) -> None:
        """A Consent revoked in any earlier version, however it was changed or deleted
        since, is never put back in force (C5, C6: revocation is the patient's written act)."""
        for version in self._versions("Consent", resource_id):
            problem = revival_problem(version, after)
            if problem is not None:
                raise BusinessRuleBroken(problem)

    def _rebased(
        self, resource_type: str, row: ResourceRow | None, resource: dict[str, Any]
    ) -> dict[str, Any]:
        """A partner's write of a shared referral Task, rebased on what the other side did
        since it last saw the Task (mappings.workflow.rebased): a requester's note pushed
        while the owner accepted is kept, not refused as a move back to `requested`."""
        if resource_type != "Task" or row is None or row.deleted or self._origin is None:
            return resource
        current = orjson.loads(row.content or b"{}")
        side = _side(self._origin, current)
        if side is Side.EITHER or not is_fulfillment(current):
            return resource
        earlier = list(self._versions("Task", row.resource_id))
        return rebased(current, resource, earlier, side)

    def _versions(self, resource_type: str, resource_id: str) -> Iterator[dict[str, Any]]:
        """Every stored version of a resource, newest first, deletions left out: the checks
        that read what a record ever was (a revocation, the other side's earlier values)."""
        for version in self._repository.history(resource_type, resource_id, None):
            if version.content is not None:
                yield orjson.loads(version.content)

    def _check_workflow(
        self, resource_type: str, before: bytes | None, after: dict[str, Any]
    ) -> None:
        """A referral Task moves only as REFERRALS.md allows, for the side that writes."""
        if resource_type != "Task":
            return
        previous = orjson.loads(before) if before is not None else None
        side = _side(self._origin, previous or after)
        if self._origin is None and previous is not None:
            side = self._own_side(previous)
        asked = (
            previous is not None
            and is_owner_cancellation(previous, after)
            and self._abort_requested(previous)
        )
        problem = task_change_problem(previous, after, side, abort_requested=asked)
        if problem is not None:
            raise BusinessRuleBroken(problem.text, (problem.expression,))

    def _own_side(self, task: dict[str, Any]) -> Side:
        """The program's own systems act for either side (staff recording what happened),
        except on a Task whose other party holds its copy on its own FHIR server: that
        partner's side moves there and reaches ours by its poll or push, so moving it here
        would leave the two copies apart for good (probe 11 M3); ours is then the other.
        Recording a Task (a referral taken by phone) stays theirs to do in any state."""
        parties = {role: _party_id(task.get(role)) for role in ("requester", "owner")}
        named = [ident for ident in parties.values() if ident is not None]
        remote = {
            partner.organization
            for partner in outbox_store.pushing_partners(self._repository.session, named)
            if partner.channel == ChannelKind.FHIR
        }
        requester, owner = (f"Organization/{parties[r]}" in remote for r in ("requester", "owner"))
        if owner and not requester:
            return Side.REQUESTER
        if requester and not owner:
            return Side.OWNER
        return Side.EITHER

    def _abort_requested(self, task: dict[str, Any]) -> bool:
        """A cancellation request stands for the Task: a Task with code `abort` focused on it,
        made by the Task's requester, not refused or withdrawn (REFERRALS.md; COW IG
        cancellation). Made by is who first wrote it, as recorded: the owner writing an abort
        Task that names the requester asks nothing."""
        params = [("focus", f"Task/{task.get('id')}"), ("code", f"{TASK_CODE}|abort")]
        query = parse_search("Task", params, base_url="", paging=self._paging)
        return any(
            _side((*stored.custodians, stored.origin)[0], task) is not Side.OWNER
            and ask.get("status") not in _WITHDRAWN
            and _same_party(ask.get("requester"), task.get("requester"))
            for _row, stored in self._released_matches(query)
            if (ask := orjson.loads(stored.content or b"{}"))
        )

    def _page(
        self, query: SearchQuery
    ) -> tuple[list[tuple[ResourceRow, StoredVersion]], int | None, bool]:
        """The page of released matches, the released total (None when `_total` waives it)
        and whether more follow.

        Where the gate's answer does not depend on what a record holds (the program's own
        systems), the total is the number of keys and only the page is decided. Otherwise the
        matches whose denial their recorded columns settle are set aside unread
        (`GateSession.set_aside`), and the rest are decided quietly, in order, until the total
        is known or, with
        `_total=none|estimate`, the page is full (an estimate could only count withheld
        records, so none is given); then the page alone is admitted, as it is sent."""
        end = query.offset + query.count
        sent = slice(query.offset, query.offset if query.summary_count else end)
        if self._gate.releases_everything(query.resource_type):
            keys = self._repository.match_keys(query)
            return self._admitted_rows(keys[sent]), len(keys), end < len(keys)
        matches = self._repository.match_facts(query)
        keys = [match.key for match in self._gate.set_aside(query.resource_type, matches)]
        counting = query.total == "accurate" or query.summary_count
        released = self._released_keys(keys, None if counting else end + 1)
        page = self._admitted_rows(released[sent])
        return page, len(released) if counting else None, end < len(released)

    def _released_keys(self, keys: Sequence[int], enough: int | None) -> list[int]:
        """The keys the gate would release, in order, stopping at `enough` of them; decided
        without a trace, since deciding to count discloses nothing."""
        released: list[int] = []
        with self._gate.unrecorded():
            for start in range(0, len(keys), _DECIDED_AT_ONCE):
                chunk = keys[start : start + _DECIDED_AT_ONCE]
                loaded = dict(self._repository.versions(chunk))
                for key in chunk:
                    stored = loaded.get(key)
                    if stored is not None and self._gate.admit(stored) is not None:
                        released.append(key)
                        if len(released) == enough:
                            return released
        return released

    def _admitted_rows(self, keys: Sequence[int]) -> list[tuple[ResourceRow, StoredVersion]]:
        """These rows as the gate releases them, logged and labelled (withheld ones left out)."""
        admitted: list[tuple[ResourceRow, StoredVersion]] = []
        for row in self._repository.rows(keys):
            stored = self._admitted(current_version(row))
            if stored is not None:
                admitted.append((row, stored))
        return admitted

    def _released_matches(self, query: SearchQuery) -> list[tuple[ResourceRow, StoredVersion]]:
        """Every match in sort order, as the gate releases it (withheld ones left out)."""
        return self._admitted_rows(self._repository.match_keys(query))

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
                if (kept := self._admitted(current_version(row))) is not None
            ]
            if not admitted:
                break
            included.extend(kept for _row, kept in admitted)
            frontier = [row for row, _kept in admitted]
        return included

    def _visible_now(self, resource_type: str, resource_id: str) -> bool:
        """Whether the resource as it stands now is one the requester may see: a version of a
        resource it may not see is not shown either, since showing an old version while the
        current one answers 404 would tell that someone it may not hear of has written since
        (a Part 2 program's "admitted", say)."""
        key = (resource_type, resource_id)
        if key not in self._visible:
            row = self._repository.current(resource_type, resource_id)
            if row is None:
                self._visible[key] = False
            else:
                self._visible[key] = self._may_see(current_version(row))
        return self._visible[key]

    def _check_writable(
        self, row: ResourceRow | None, resource_type: str, resource_id: str, *, creating: bool
    ) -> None:
        """A write reaches only what the writer may see: a withheld record answers exactly as
        an unknown id, and so does an unknown id for a writer that does not see everything
        (it could otherwise tell a taken id from a free one), so such writers create with POST
        and the server assigns the id (R4 §3.1.0.4.1 lets a server refuse update as create).
        The program's own systems, and staff through the case API whose records carry the
        case model's ids (`client_ids`), may create with an id of their choosing."""
        unknown = ResourceNotFound(
            f"{resource_type}/{resource_id} is not known (new records are created with POST)"
        )
        if row is None:
            if not creating or not self._client_ids:
                raise unknown
            return
        if row.deleted:
            if not self._deletion_visible(current_version(row)):
                raise unknown
            return
        if self._admitted(current_version(row)) is None:  # a decision on record (A1)
            raise unknown

    def _admitted(self, stored: StoredVersion) -> StoredVersion | None:
        """The version as the gate releases it (labelled), or None when it is withheld."""
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
        return ended is not None and self._may_see(ended)

    def logged_as(self, interaction: str | None) -> AbstractContextManager[None]:
        """Decisions made inside are logged as `interaction` (None: as the request's)."""
        return self._gate.logged_as(interaction)

    def _check_consent_patient(self, resource_type: str, resource: dict[str, Any]) -> None:
        """A partner records a consent only for a patient whose record it may see here. A
        refusal is honoured whoever records it (PART2.md C8), so a partner that does not serve
        the patient could otherwise cut the patient off from the recipients the patient chose.
        A patient unknown here and one withheld from the partner are refused alike; a consent
        that names no patient is no one's directive.

        By identifier alone, a consent names the Patients its recorder holds that carry it
        (interop.store.consents): the partner must hold one, and Patients others hold do not
        change the answer, which would tell it that someone here carries the MRN."""
        reference = resource.get("patient")
        if resource_type != "Consent" or reference is None:
            return
        if isinstance(reference, dict) and "reference" not in reference:
            mine = self._gate.requester.organization
            named = [row for row in self._identified(reference) if mine in _custodians(row)]
        else:
            named = [
                row for row in self._referenced(reference) if self._may_see(current_version(row))
            ]
        if not named:
            raise BusinessRuleBroken(
                "a partner records a Consent only for a patient whose record it holds here: "
                "Consent.patient names no such Patient",
                ("Consent.patient",),
            )

    def _referenced(self, reference: Any) -> list[ResourceRow]:
        """The stored Patient a literal reference names, if any."""
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return []
        parsed = parse_reference(reference["reference"])
        if parsed is None or parsed[0] != "Patient" or parsed[2] is not None:
            return []
        row = self._repository.current("Patient", parsed[1])
        return [row] if row is not None and not row.deleted else []

    def _identified(self, reference: dict[str, Any]) -> list[ResourceRow]:
        """The stored Patients carrying a logical reference's identifier (R4 §2.3.0)."""
        identifier = reference.get("identifier")
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            return []
        token = f"{identifier.get('system') or ''}|{identifier['value']}"
        query = parse_search("Patient", [("identifier", token)], base_url="", paging=self._paging)
        return list(self._repository.rows(self._repository.match_keys(query)))

    def _may_see(self, stored: StoredVersion) -> bool:
        """Whether the requester may see the version, decided without a release on record: the
        answer only chooses a status (404, 410) or lets a write through, and sends nothing of
        the version, so it is neither logged as a disclosure nor accounted (a denial is)."""
        with self._gate.unrecorded():
            return self._admitted(stored) is not None

    def subscription_standings(
        self, criteria: Sequence[tuple[str, str]], base_url: str
    ) -> list[Standing]:
        """How each Subscription matching `criteria` stands, of those the requester may ask
        `$status` of (`subscription_standing`)."""
        query = parse_search("Subscription", criteria, base_url=base_url, paging=self._paging)
        found = [
            self.subscription_standing(stored, base_url)
            for _row, stored in self._released_matches(query)
        ]
        return [standing for standing in found if standing is not None]

    def subscription_standing(self, stored: StoredVersion, base_url: str) -> Standing | None:
        """How a released Subscription stands (`$status`); None unless the requester is its
        subscriber or the program's own side: a partner's Subscription is its own business."""
        resource = orjson.loads(stored.content or b"{}")
        requester = self._gate.requester
        if not (requester.first_party or is_subscriber(resource, requester.organization)):
            return None
        session = self._repository.session
        sent = outbox_store.notifications_sent(session, stored.resource_id, Event.NOTIFICATION)
        url = f"{base_url}/Subscription/{stored.resource_id}"
        return Standing(url, str(resource.get("status")), sent)

    def seal(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A Bundle of what was released carries their labels and the notice (S1, S2)."""
        return self._gate.seal(bundle)


class GateFactory(Protocol):
    """Where a request's gate comes from, and where its decisions go (the disclosure log)."""

    def open(self, session: Session, requester: Requester, interaction: str) -> Gate: ...

    def record(self, gate: Any) -> None: ...

    async def record_async(self, gate: Any) -> None: ...

    def record_in(self, session: Session, gate: Any) -> None: ...


@contextmanager
def behind_gate(
    engine: Engine,
    gates: GateFactory,
    requester: Requester,
    interaction: str,
    *,
    paging: Paging,
    writes: bool = False,
    guard: WriteGuard | None = None,
    client_ids: bool = False,
) -> Iterator[ResourceOperations]:
    """The one door: the interactions in a transaction of their own, behind a fresh gate for
    `requester`, whose decisions (denials included) are logged before anything is handed back
    (PART2.md A1), even when the work fails half-way. A write's decisions are appended in its
    own transaction, which holds the write lock already, and commit with it; when that
    transaction does not commit, they are logged on their own."""
    gate: Gate | None = None
    logged = False
    try:
        with unit_of_work(engine, writes=writes) as session:
            gate = gates.open(session, requester, interaction)
            yield ResourceOperations(
                ResourceRepository(session), paging, gate, guard=guard, client_ids=client_ids
            )
            if writes:
                gates.record_in(session, gate)
        logged = writes
    finally:
        if gate is not None and not logged:
            gates.record(gate)


@asynccontextmanager
async def behind_gate_on_loop(
    engine: Engine, gates: GateFactory, requester: Requester, interaction: str, *, paging: Paging
) -> AsyncIterator[ResourceOperations]:
    """The same door for a read served on the event loop: its decisions are awaited into the
    log, so that the loop serves other requests while they commit."""
    gate: Gate | None = None
    try:
        with unit_of_work(engine, writes=False) as session:
            gate = gates.open(session, requester, interaction)
            yield ResourceOperations(ResourceRepository(session), paging, gate)
    finally:
        if gate is not None:
            await gates.record_async(gate)


@contextmanager
def internal_operations(
    session: Session,
    job: str,
    *,
    paging: Paging,
    on_behalf_of: str = OPERATOR_ORIGIN,
    acting_for: str | None = None,
) -> Iterator[ResourceOperations]:
    """The same door for internal work in the caller's transaction, as the named system
    requester `system:{job}` writing on behalf of `on_behalf_of`; its decisions are logged in
    that transaction."""
    gate = system_gate(session, job, on_behalf_of)
    yield ResourceOperations(ResourceRepository(session), paging, gate, acting_for=acting_for)
    log_into(session, gate)


class ResourceService:
    """Each interaction in a transaction of its own, behind the disclosure gate."""

    def __init__(self, engine: Engine, paging: Paging, gates: GateFactory) -> None:
        self._engine = engine
        self._paging = paging
        self._gates = gates

    def read(self, resource_type: str, resource_id: str, requester: Requester) -> StoredVersion:
        with self._door(requester, "read") as operations:
            return operations.read(resource_type, resource_id)

    def subscription_status(
        self, subscription_id: str, requester: Requester, *, base_url: str
    ) -> dict[str, Any]:
        """`Subscription/{id}/$status` (Subscriptions Backport IG): its status and how many
        notifications it was sent; only its subscriber (or the program's own systems) learns
        it, anyone else gets the 404 of an unknown Subscription."""
        with self._door(requester, "read") as operations:
            stored = operations.read("Subscription", subscription_id)
            standing = operations.subscription_standing(stored, base_url)
        if standing is None:
            raise ResourceNotFound(f"Subscription/{subscription_id[:64]} is not known")
        return status_bundle([standing])

    def subscription_statuses(
        self, params: Sequence[tuple[str, str]], requester: Requester, *, base_url: str
    ) -> dict[str, Any]:
        """`Subscription/$status` (Backport IG 1.1.0, backport-subscription-status at the type
        level): a SubscriptionStatus for each of the requester's Subscriptions that `id` and
        `status` name, every one when they name none. Another's is left out as one that does
        not exist is, so that the answer never tells it exists."""
        with self._door(requester, "search") as operations:
            standings = operations.subscription_standings(_status_criteria(params), base_url)
        return status_bundle(standings)

    async def read_on_loop(
        self, resource_type: str, resource_id: str, requester: Requester
    ) -> StoredVersion:
        """`read` without a hop to the thread pool: a read by id is a few indexed queries,
        cheaper than the hop, and its wait for the log does not hold the loop."""
        async with self._door_on_loop(requester, "read") as operations:
            return operations.read(resource_type, resource_id)

    async def vread_on_loop(
        self, resource_type: str, resource_id: str, version_id: str, requester: Requester
    ) -> StoredVersion:
        """`vread`, as `read_on_loop`."""
        async with self._door_on_loop(requester, "vread") as operations:
            return operations.vread(resource_type, resource_id, version_id)

    def search(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        base_url: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        with self._door(requester, "search") as operations:
            return operations.search(resource_type, params, base_url=base_url, strict=strict)

    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        base_url: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        with self._door(requester, _history_level(resource_type, resource_id)) as operations:
            return operations.history(
                resource_type, resource_id, params, base_url=base_url, strict=strict
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
        answered: bool = True,
    ) -> WriteOutcome:
        """`answered`: the resource is sent back (no `Prefer: return=minimal` or
        `OperationOutcome`), so it passes the gate as a disclosure."""
        with self._door(requester, "create", guard) as operations:
            written = operations.create(
                resource_type, resource, base_url=base_url, if_none_exist=if_none_exist
            )
            # A create that If-None-Exist matched answers with the match, released already.
            return operations.answered(written) if answered and written.created else written

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        requester: Requester,
        *,
        if_match: str | None = None,
        guard: WriteGuard | None = None,
        answered: bool = True,
    ) -> WriteOutcome:
        with self._door(requester, "update", guard) as operations:
            written = operations.update(resource_type, resource_id, resource, if_match=if_match)
            return operations.answered(written) if answered else written

    def conditional_update(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        resource: dict[str, Any],
        requester: Requester,
        *,
        base_url: str,
        if_match: str | None = None,
        guard: WriteGuard | None = None,
        answered: bool = True,
    ) -> WriteOutcome:
        """Only what the requester may see can match."""
        with self._door(requester, "update", guard) as operations:
            written = operations.conditional_update(
                resource_type, params, resource, base_url=base_url, if_match=if_match
            )
            return operations.answered(written) if answered else written

    def validate(
        self, resource_type: str, resource: dict[str, Any], requester: Requester
    ) -> dict[str, Any]:
        """Validate without storing; any R4 type, since validation needs no storage. A Consent
        is read as a create by `requester` would read it (the stored Patient's name, the
        approved forms...), behind its gate, so that both report the same §2.31 problems."""
        if resource_type not in fhir.RESOURCE_TYPES:
            raise ResourceNotFound(f"{resource_type[:64]!r} is not a FHIR R4 resource type")
        _check_body_type(resource_type, resource)
        try:
            fhir.validate(resource)
        except InvalidResource as invalid:
            return outcome(*invalid.issues)
        warnings: tuple[Issue, ...] = ()
        if resource_type == "Consent":
            with self._door(requester, "validate") as operations:
                warnings = operations.consent_problems(resource, requester.organization)
        return outcome(Issue("information", "informational", "no errors found"), *warnings)

    def delete(
        self,
        resource_type: str,
        resource_id: str,
        requester: Requester,
        *,
        guard: WriteGuard | None = None,
        if_match: str | None = None,
    ) -> None:
        with self._door(requester, "delete", guard) as operations:
            operations.delete(resource_type, resource_id, if_match=if_match)

    def _door(
        self, requester: Requester, interaction: str, guard: WriteGuard | None = None
    ) -> AbstractContextManager[ResourceOperations]:
        writes = interaction in _WRITES
        return behind_gate(
            self._engine,
            self._gates,
            requester,
            interaction,
            paging=self._paging,
            writes=writes,
            guard=guard,
        )

    def _door_on_loop(
        self, requester: Requester, interaction: str
    ) -> AbstractAsyncContextManager[ResourceOperations]:
        return behind_gate_on_loop(
            self._engine, self._gates, requester, interaction, paging=self._paging
        )


_WRITES = frozenset({"create", "update", "delete"})
WRITE_ANSWER = "write-answer"
"""How the release of a write's answer to its writer is logged: a disclosure (accounted),
unlike the write's check of the version it replaces."""


def _check_consent_names_patient_here(resource_type: str, resource: dict[str, Any]) -> None:
    """A Consent names its patient as a record here (`Patient/{id}`) or by identifier (C8): an
    absolute URL or a version of the record names no patient whose directives the gate reads,
    so a refusal written so would be stored and never honoured."""
    patient = resource.get("patient") if resource_type == "Consent" else None
    reference = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(reference, str):
        return
    parsed = parse_reference(reference)
    if (
        parsed is None
        or parsed[0] != "Patient"
        or parsed[2] is not None
        or "/_history/" in reference
    ):
        raise BusinessRuleBroken(
            "Consent.patient names the patient as Patient/{id} (a record here) or by "
            f"identifier, not {reference[:120]!r}: a consent naming its patient otherwise "
            "cannot be applied to the patient's records, its refusals included"
        )


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


def _party_id(reference: Any) -> str | None:
    """The id of the Organization a party reference names, relative or absolute."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parsed = parse_reference(reference["reference"])
    return parsed[1] if parsed is not None and parsed[0] == "Organization" else None


def _names(reference: Any, organization: str) -> bool:
    """Relative or absolute: partners write references across servers absolute."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return False
    parsed = parse_reference(reference["reference"])
    return parsed is not None and f"{parsed[0]}/{parsed[1]}" == organization


def _a_finished_task_resent(before: bytes, resource: dict[str, Any]) -> bool:
    """A Task in a terminal state sent again as it is: it never changes again (REFERRALS.md),
    so no new version is written and nothing is queued to the other side (probe 13 #7)."""
    previous = as_written(before)
    return (
        previous.get("resourceType") == "Task"
        and previous.get("status") in TERMINAL
        and previous == _without_server_meta(resource)
    )


_CONDITIONAL_REFERENCE = re.compile(r"[A-Z][A-Za-z]{1,63}\?\S+")


def conditional_references(node: Any) -> list[str]:
    """The conditional references (`Patient?identifier=...`) anywhere in a resource, its
    contained resources included: a transaction resolves them, any other write refuses them."""
    if isinstance(node, list):
        return [found for item in node for found in conditional_references(item)]
    if not isinstance(node, dict):
        return []
    found = [r for value in node.values() for r in conditional_references(value)]
    reference = node.get("reference")
    if isinstance(reference, str) and _CONDITIONAL_REFERENCE.fullmatch(reference):
        found.append(reference)
    return found


def as_written(content: bytes | None) -> dict[str, Any]:
    """A stored resource as a writer sends it back: meta kept (its security labels, tags,
    profiles and source are part of the record) but for what the server sets on each write."""
    return _without_server_meta(orjson.loads(content or b"{}"))


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _SERVER_META}
    rest = {k: v for k, v in resource.items() if k != "meta"}
    return {**rest, "meta": meta} if meta else rest


def _version_name(line: bytes) -> tuple[str, str, int] | None:
    """The version an exported line is: (type, id, versionId)."""
    resource = orjson.loads(line)
    version = whole_number(str(resource.get("meta", {}).get("versionId", "")))
    if version is None:
        return None
    return str(resource.get("resourceType")), str(resource.get("id")), version


def _asks_about_one_patient(query: SearchQuery) -> bool:
    """A search naming one patient: Patient by one id or identifier, any other type by one
    patient or subject. Only such a search may release records under an emergency (§2.51)."""
    named = ("_id", "identifier") if query.resource_type == "Patient" else _PATIENT_PARAMS
    return any(
        criterion.name in named and criterion.modifier is None and len(criterion.values) == 1
        for criterion in query.criteria
    )


def _same_party(one: Any, other: Any) -> bool:
    """Two references name the same resource (relative or absolute, as partners write)."""
    found = [
        parse_reference(ref["reference"])
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str)
        else None
        for ref in (one, other)
    ]
    return found[0] is not None and found[1] is not None and found[0][:2] == found[1][:2]


def _check_no_other_servers_urls(session: Session, writer: str, resource: dict[str, Any]) -> None:
    """A record's URL identifier on a partner's FHIR server is how that partner finds its
    copy here again (interop.sync.payloads): another writer claiming one would have the
    partner's pushes match its record (and be refused), its polls read it as the copy, and a
    client claimed so have our referrals filed in that partner's other patient's chart."""
    values = [
        identifier.get("value")
        for identifier in resource.get("identifier") or ()
        if isinstance(identifier, dict) and identifier.get("system") == COPY_IDENTIFIER_SYSTEM
    ]
    claimed = [value for value in values if isinstance(value, str)]
    if not claimed:
        return
    for organization, base in outbox_store.fhir_bases(session):
        root = base.rstrip("/") + "/"
        if f"Organization/{organization}" != writer and any(v.startswith(root) for v in claimed):
            raise Forbidden(
                f"an identifier under {root[:200]} names a record on another partner's server: "
                "only that partner assigns it"
            )


def _our_copy(session: Session, reference: Any) -> Any:
    """An absolute reference to a record on the writer's server, pointed at our copy of it
    (the copy carries that URL as its identifier, interop.sync.payloads; only the partner at
    that server may write such identifiers): a partner's abort Task, focused on its referral's
    Task there, is then focused on our copy, where the cancellation handshake looks for it."""
    url = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(url, str) or "://" not in url:
        return reference
    kind = url.rstrip("/").split("/")[-2]
    if kind not in SUPPORTED_TYPES:
        return reference
    found = ids_with(session, kind, COPY_IDENTIFIER_SYSTEM, url)
    if len(found) != 1:
        return reference
    return {**reference, "reference": f"{kind}/{found[0]}"}


def _locally_signed(session: Session, note: Any) -> Any:
    """The note with its author pointed at the Organization here its identifier names, so
    that the workflow check knows a signature by identifier as the party it names (review 9
    #5: by identifier, a side signed as the other)."""
    if not isinstance(note, dict) or not isinstance(note.get("authorReference"), dict):
        return note
    return {**note, "authorReference": _local_party(session, note["authorReference"])}


def _local_party(session: Session, reference: Any) -> Any:
    """The reference pointed at the one Organization here with its identifier, if any."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
        return reference
    system = identifier.get("system")
    found = organizations_store.named_by(
        session, system if isinstance(system, str) else None, identifier["value"]
    )
    if len(found) != 1:
        return reference
    return {**reference, "reference": f"Organization/{found[0]}"}


_SERVER_META = ("versionId", "lastUpdated")


def _history_level(resource_type: str | None, resource_id: str | None) -> str:
    """The interaction a history request is logged as (R4 restful-interaction codes)."""
    if resource_id is not None:
        return "history-instance"
    return "history-type" if resource_type is not None else "history-system"


_REFERRAL_TYPES = frozenset({"ServiceRequest", "Task"})
_PARTY_ELEMENTS = ("requester", "owner", "performer")
_WITHDRAWN = frozenset({"rejected", "cancelled", "entered-in-error", "failed"})
"""An abort Task in these states no longer asks for anything."""


def _custodians(row: ResourceRow | None) -> tuple[str, ...]:
    """Who wrote the versions before the next one: none for a new resource."""
    return () if row is None else tuple(row.custodians.split())


def _check_body_type(resource_type: str, resource: dict[str, Any]) -> None:
    if resource.get("resourceType") != resource_type:
        raise InvalidRequest(
            f"the body is a {str(resource.get('resourceType'))[:64]}, not a {resource_type}"
        )


def _check_if_match(row: ResourceRow | None, if_match: str) -> None:
    """If-Match carries the ETag of the version the client read: W/"3" (R4 §3.1.0.5), or
    several, or `*` for whatever version is current (RFC 9110 §13.1.1)."""
    current = None if row is None or row.deleted else row.version_id
    tags = [tag.strip() for tag in if_match.split(",")]
    if tags == ["*"]:
        if current is None:
            raise PreconditionFailed("If-Match: * asks for a current version, and there is none")
        return
    matches = [re.fullmatch(r'(?:W/)?"?(\d+)"?', tag) for tag in tags]
    if not all(matches):
        raise InvalidRequest(f'If-Match must be an ETag such as W/"3", not {if_match[:30]!r}')
    named = [int(match.group(1)) for match in matches if match is not None]
    said = f"version{'s' if len(named) > 1 else ''} {', '.join(map(str, named))}"
    if current is None:
        raise PreconditionFailed(f"If-Match names {said}, but there is none")
    if current not in named:
        raise PreconditionFailed(f"If-Match names {said}, but the current version is {current}")


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


@dataclass(frozen=True, slots=True)
class _HistoryParams:
    """A history request's parameters, read once; `ignored` names the ones it does not take,
    for strict handling to refuse."""

    since: datetime | None
    at: tuple[datetime, datetime] | None
    offset: int
    count: int
    summary_count: bool
    ignored: tuple[str, ...]


_HISTORY_CRITERIA = ("_since", "_at", "_summary", "_elements")
_HISTORY_PARAMS = frozenset({*_HISTORY_CRITERIA, "_count", "_offset", "_format", "_pretty"})
"""What R4 history takes (§3.1.0.10; `_list` aside), with our `_offset` paging, `_format`,
`_pretty` (ignored, as a search ignores it) and the subsetting parameters every interaction
takes (§3.1.1.5.8): anything else is named under strict handling."""


def _history_params(params: Sequence[tuple[str, str]], paging: Paging) -> _HistoryParams:
    since: datetime | None = None
    at: tuple[datetime, datetime] | None = None
    offset, count, summary_count = 0, paging.default_count, False
    for name, value in params:
        if name == "_summary":
            summary_count = summary_count or summary_mode(value) == "count"
        elif name in ("_since", "_at"):
            try:
                moment = parse_range(value)
            except ValueError:
                raise InvalidRequest(
                    f"{name} must be a date or instant, not {value[:40]!r}"
                ) from None
            if name == "_since":
                since = moment[0]
            else:
                at = moment
        elif name in ("_count", "_offset"):
            number = whole_number(value)
            if number is None:
                raise InvalidRequest(f"{name} must be a non-negative integer")
            if name == "_count":
                count = min(number, paging.max_count)
            else:
                offset = number
    ignored = tuple(sorted({name for name, _ in params} - _HISTORY_PARAMS))
    return _HistoryParams(since, at, offset, count, summary_count, ignored)


def _current_during(
    versions: list[StoredVersion], at: tuple[datetime, datetime]
) -> list[StoredVersion]:
    """R4 `_at`: the versions current at some moment of `at`, each one from its lastUpdated
    until its resource's next version's. `versions` come newest first."""
    lo, hi = at
    superseded_at: dict[tuple[str, str], datetime] = {}
    kept: list[StoredVersion] = []
    for version in versions:
        key = (version.resource_type, version.resource_id)
        updated = as_utc(version.last_updated)
        superseded = superseded_at.get(key)
        if updated <= hi and (superseded is None or superseded > lo):
            kept.append(version)
        superseded_at[key] = updated
    return kept


def _version_key(version: StoredVersion) -> tuple[str, str, int]:
    return version.resource_type, version.resource_id, version.version_id


def _unseen(rows: list[ResourceRow], seen: set[tuple[str, str]]) -> list[ResourceRow]:
    fresh: list[ResourceRow] = []
    for row in rows:
        key = (row.resource_type, row.resource_id)
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    return fresh


_STATUS_FILTERS = (("id", "_id"), ("status", "status"))
"""`Subscription/$status`'s parameters and the Subscription search parameters they are."""


def _status_criteria(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """`$status`'s `id` and `status` (each 0..*, its values ORed) as search criteria; any
    other parameter (`_format`) filters nothing."""
    criteria: list[tuple[str, str]] = []
    for name, search_name in _STATUS_FILTERS:
        values = [value for given, value in params if given == name and value]
        if values:
            criteria.append((search_name, ",".join(values)))
    return criteria


def if_none_exist_criteria(header: str) -> list[tuple[str, str]]:
    """If-None-Exist's search criteria; R4 sends the query part alone, some clients send a
    whole `[type]?query`, both are read."""
    return parse_qsl(header.removeprefix("?").split("?")[-1], keep_blank_values=True)
