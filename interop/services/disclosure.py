"""THE disclosure gate: every resource that leaves this service passes through here.

For each outgoing resource the gate works out whose record it is and whether it is Part 2
data (PART2.md P1) from what was recorded when it was written, never from its elements: every
stored version names its origin (the organization on whose behalf it was written) and the
custodians of every version before it. A version is Part 2 data when a Part 2 program (or a
custodian this server cannot vouch for) wrote any of it, or when it carries SUD sensitivity or
42 CFR Part 2 labels. What a program wrote itself, with nothing another Part 2 program added,
is its own record: reading it is use, not disclosure. For anything else the gate asks the
consent engine (consent.engine.decide), with the requester's identity and purpose of use from
its access token and the Part 2 program whose disclosure it would be, and then either withholds
the resource or releases it with the obligations of the decision: the S2 security labels in
meta.security and the S1 notice. A withheld resource is simply absent: reads answer 404 as for
an unknown id, writes too, searches neither list it nor count it, includes skip it. Every
decision is written to the hash-chained disclosure log before the response leaves (A1); if it
cannot be written, nothing leaves.

So a referral a primary care clinic sends to a Part 2 program is released to that program
(the clinic is not a Part 2 program), while what the program writes into the shared Task
("received", "admitted") is its own Part 2 record, disclosed to the clinic only under the
client's consent.

The S1 notice travels as an extension of meta on each released Part 2 resource and on the
Bundle that carries it: url NOTICE_EXTENSION, a complex extension (valid under ext-1: no value
of its own) whose `statement` holds the §2.32 statement and each `consent` (valueReference)
a consent relied on. Bundles also carry the labels of everything in them (high-water mark) in
Bundle.meta.security.
"""

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlmodel import Session

from consent import vocabulary as v
from consent.engine import Part2Refusal, decide, part2_refusal, refusal_of_any_part2_record
from consent.model import (
    Actor,
    Coding,
    ConsentDirective,
    DataItem,
    Decision,
    DisclosureRequest,
    EmergencyFacts,
    Identifier,
    Outcome,
    Party,
    ProvisionType,
    Reason,
    permit_chains,
)
from consent.model import Requester as ConsentRequester
from consent.rules import PART2_MARKS
from interop.audit.group_commit import GroupCommitLog
from interop.audit.log import LogEntry, append
from interop.auth.requester import Requester, system_requester
from interop.services.directives import DirectiveCache, read_directives
from interop.services.relationships import treats
from interop.store import markers
from interop.store import organizations as organizations_store
from interop.store.fhirdates import parse_range
from interop.store.identifiers import patient_custodians
from interop.store.repository import GateFacts, StoredVersion
from interop.store.search_params import parse_reference
from mappings.consent import directive_from_fhir, references_in
from mappings.errors import FhirContentError
from mappings.subscription import subscriber_of
from mappings.terminology import PROJECT_BASE

NOTICE_EXTENSION = f"{PROJECT_BASE}/StructureDefinition/part2-disclosure-notice"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_SUD_CODES = PART2_MARKS | {v.COUNSELING_NOTE}
"""The labels that make a stored record Part 2 data by its content (`consent.rules`), and a
counseling note's, which is Part 2 data too."""
_NO_REFUSAL = Part2Refusal(None, None)
"""Emergency purposes alone: no Part 2 record is refused before it is read."""
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT_ELEMENTS = ("subject", "patient", "for", "beneficiary")
DIRECTORY_TYPES = frozenset({"Organization", "Practitioner", "PractitionerRole", "Endpoint"})
"""The types that are directory entries, not records about a patient; every other stored type
is patient data, whether or not it names its patient by a local reference."""
_AUTHOR_ELEMENTS = (
    "author",
    "requester",
    "custodian",
    "managingOrganization",
    "recorder",
    "asserter",
    "expressedBy",
    "organization",
    "serviceProvider",
    "performer",
    "informationSource",
)
_DATE_ELEMENTS = (
    "authoredOn",
    "recorded",
    "recordedDate",
    "onsetDateTime",
    "dateTime",
    "date",
    "issued",
    "effectiveDateTime",
)
_PERIOD_ELEMENTS = ("period", "executionPeriod", "effectivePeriod")
_ACROSS_PATIENTS = frozenset(
    {"export", "export-prepare", "export-download", "history-type", "history-system"}
)
"""Interactions that never ask about one patient: the emergency exception reaches none."""
_ROW_CHARACTERS = 99_000
"""The references one disclosure-log row lists, space-separated, fit its 100,000-character
column (a contained resource's name is its container's and its own id: up to ~150)."""


@dataclass
class Released:
    """What a request has released so far: the labels, notice and consents its Bundle or
    document must carry."""

    labels: set[tuple[str, str]] = field(default_factory=set)
    notice: str | None = None
    consents: set[str] = field(default_factory=set)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GateSession:
    """The gate for one request: decisions are made, cached and logged per request."""

    def __init__(
        self,
        session: Session,
        requester: Requester,
        interaction: str,
        now: datetime,
        cache: "DirectiveCache",
        organizations: "OrganizationFacts",
        directive_sets: "DirectiveSets | None" = None,
        intermediary: str | None = None,
    ) -> None:
        self._session = session
        self._intermediary = intermediary
        self._treated: dict[str, bool] = {}
        self._cache = cache
        self._sets = directive_sets
        self._organizations = organizations
        self._requester = requester
        self._emergency_patient: str | None = None
        self._interaction = interaction
        self._now = now
        self._known: Organizations | None = None
        self._markers: markers.GateMarkers | None = None
        self._known_identifiers: dict[str, tuple[Identifier, ...]] = {}
        self._directives: dict[str, list[ConsentDirective]] = {}
        self._consent_requester: ConsentRequester | None = None
        self._entries: list[LogEntry] = []
        self.released = Released()
        self._emergency_open = interaction not in _ACROSS_PATIENTS

    @property
    def requester(self) -> Requester:
        """Who asks; what it writes is recorded with its organization as the origin."""
        return self._requester

    def admit(self, stored: StoredVersion) -> bytes | None:
        """The bytes to send for this resource, labelled, or None when it must be withheld."""
        if stored.content is None or not self._in_scope(stored.resource_type):
            return None
        return self._release(stored, stored.content)

    def set_aside(self, resource_type: str, matches: Sequence[GateFacts]) -> list[GateFacts]:
        """The matches left to decide once those whose denial their recorded columns settle
        are set aside, unread: Part 2 records (a Part 2 program other than the requester
        wrote them) of patients whose directives refuse the requester every Part 2 record,
        exactly as `admit` would deny them before reading what they hold. A search then
        reads and decides what may be released, not thousands of withheld matches.

        The set-aside denials are logged (A1) one row per rule, listing the records withheld;
        the patient column stays empty, since one row covers many patients."""
        refusal = part2_refusal(self._requester.purposes)
        if not self._decides_unread(resource_type) or refusal == _NO_REFUSAL:
            return list(matches)
        left: list[GateFacts] = []
        withheld: dict[str, list[str]] = {}
        protected: dict[tuple[str, ...], bool] = {}
        for match in matches:
            if match.custodians not in protected:
                protected[match.custodians] = self._protected(match.custodians)
            rule = (
                self._refused_unread(match.patient, refusal)
                if protected[match.custodians]
                else None  # not Part 2 by origin: its labels could still make it so
            )
            if rule is None:
                left.append(match)
            else:
                withheld.setdefault(rule, []).append(f"{resource_type}/{match.resource_id}")
        for rule, references in withheld.items():
            self._log_covering(None, tuple(references), "deny", rule, None, None, (), True, None)
        return left

    def _decides_unread(self, resource_type: str) -> bool:
        """The types `_release` decides by patient and custodians before anything else."""
        return (
            not self._requester.first_party
            and self._in_scope(resource_type)
            and resource_type != "Subscription"
            and resource_type not in DIRECTORY_TYPES
        )

    def _protected(self, custodians: tuple[str, ...]) -> bool:
        """Whether a Part 2 program other than the requester wrote the record (`_classify`):
        then it is Part 2 data to the requester whatever it holds."""
        organizations = self._organizations_now()
        me = self._requester.organization
        return any(c != me and organizations.is_part2(c) for c in custodians)

    def _refused_unread(self, patient: str | None, refusal: Part2Refusal) -> str | None:
        """The rule `_release` denies a protected record of `patient` by before reading it,
        or None when its content could matter (or its patient was not recorded)."""
        if patient is None:
            return None
        if not patient:
            return "P2"  # it names its patient in no way a consent here can match
        reason = refusal.of(patient, self._consents(patient))
        return reason.rule if reason is not None else None

    def sees(self, stored: StoredVersion) -> bool:
        """Whether a read of this version would release it to the requester, the token's
        scopes aside: for a question that is not a read (a consent consult about the patient,
        asked with a Consent scope), which must answer for a record the requester may not see
        exactly as for one that does not exist (ARCHITECTURE.md rule 4, §2.13(c)).

        Nothing of the version is sent, so it is decided as a count is (`unrecorded`): a
        permit is neither logged nor accounted, a denial is logged (A1)."""
        if stored.content is None:
            return False
        with self.unrecorded():
            return self._release(stored, stored.content) is not None

    def _release(self, stored: StoredVersion, content: bytes) -> bytes | None:
        """The gate's decision on one version in the token's scope, logged; see `admit`."""
        resource: dict[str, Any] = orjson.loads(content)
        if stored.resource_type == "Subscription" and not self._requester.first_party:
            # A partner's Subscription names its endpoint and headers: its own business only.
            mine = subscriber_of(resource) == self._requester.organization
            return content if mine else None
        if stored.resource_type in DIRECTORY_TYPES:
            return content
        patient = patient_of(resource)
        reference = f"{stored.resource_type}/{stored.resource_id}"
        record = self._classify(stored, resource)
        if self._requester.first_party or record.own:
            # The program's own systems, or a program reading what it wrote itself (with
            # nothing a Part 2 program added since): use within the program, no disclosure.
            self._log(patient, reference, "permit", "USE", None, None, (), record.part2, None)
            return content
        if patient is None:
            # Patient data naming its patient only by identifier, absolute URL or contained
            # resource: no consent here can be matched to it, so Part 2 data stays (P2).
            verdict = "deny" if record.part2 else "permit"
            rule = "P2" if record.part2 else "P1"
            self._log(None, reference, verdict, rule, None, None, (), record.part2, None)
            return None if record.part2 else content
        refusal = self._refusal(patient) if record.part2 else None
        if refusal is not None:
            self._log(patient, reference, "deny", refusal.rule, None, None, (), True, None)
            return None
        decision = self._decided_for_every_source(patient, resource, reference, stored, record)
        contained = _contained(resource, reference)
        parts: tuple[tuple[str, Decision], ...] = ()
        if contained and decision.outcome is Outcome.PERMIT:
            decision, parts = self._with_contained(decision, patient, contained, stored, record)
        if not parts:  # none, or one refused: the record and all it contains, as decided
            references = (reference, *(name for name, _ in contained))
            return self._apply(decision, resource, content, patient, references, record)
        released = self._apply(decision, resource, content, patient, (reference,), record)
        for name, permit in parts:  # each under the consent that released it (A1, A2, S1)
            self._log_decided(permit, patient, (name,), record)
            notice = permit.obligations.notice
            if record.part2 and notice is not None and notice.consent_reference:
                self.released.consents.add(notice.consent_reference)
        return released

    def _decided_for_every_source(
        self,
        patient: str,
        resource: dict[str, Any],
        reference: str,
        stored: StoredVersion,
        record: "_Record",
    ) -> Decision:
        """A version several Part 2 programs wrote is each one's record: its last writer's
        version still carries what the others wrote (a shared Task's notes, its status), so
        it leaves only under a consent for each of them (probe 11 H1: the owner's note left
        under the requester's consent once the requester wrote again). The permit that
        speaks is the first source's."""
        decision = self._decided(self._request(patient, resource, reference, stored, record))
        for other in record.also_from:
            if decision.outcome is not Outcome.PERMIT:
                break
            also = replace(record, source=other)
            theirs = self._decided(self._request(patient, resource, reference, stored, also))
            if theirs.outcome is not Outcome.PERMIT:
                return theirs
        return decision

    def _with_contained(
        self,
        decision: Decision,
        patient: str,
        contained: list[tuple[str, dict[str, Any]]],
        stored: StoredVersion,
        record: "_Record",
    ) -> tuple[Decision, tuple[tuple[str, Decision], ...]]:
        """S3: the resources a record carries in `contained` leave with it, so each is decided
        as the data it is (a Condition as a diagnosis, not as the care plan holding it), and
        the record leaves only when every one may: a contained resource cannot be cut out,
        since the record's references to it would then name nothing. The record then carries
        the labels of all of them; each one's permit is given back, to be logged and
        accounted under the consent that made it. A refusal comes back alone."""
        labels = list(decision.obligations.labels)
        released = list(decision.obligations.released)
        permits = []
        for name, inner in contained:
            held = record if record.part2 else replace(record, part2=self._part2_by_content(inner))
            inner_decision = self._decided(self._request(patient, inner, name, stored, held))
            if inner_decision.outcome is not Outcome.PERMIT:
                return inner_decision, ()
            permits.append((name, inner_decision))
            labels += [c for c in inner_decision.obligations.labels if c not in labels]
            released += inner_decision.obligations.released
        obligations = replace(decision.obligations, labels=tuple(labels), released=tuple(released))
        return replace(decision, obligations=obligations), tuple(permits)

    def close_emergency(self) -> None:
        """This request asks about no one patient (a search across patients): the emergency
        exception does not reach it. §2.51 allows what one patient's bona fide emergency
        needs, never a population's records under one claimed emergency."""
        self._emergency_open = False

    def _emergency_for(self, patient: str) -> EmergencyFacts | None:
        """The requester's emergency, for the patient it names (a token's emergency is about
        one patient: more requests do not make it reach more); any other patient's records
        stay behind consent."""
        if not self._emergency_open or not self._emergency_names(patient):
            return None
        return _engine_emergency(self._requester)

    def _emergency_names(self, patient: str) -> bool:
        """Whether the emergency's patient (`Patient/{id}`, or `system|value`) is this one.

        Anyone may write a Patient carrying any identifier. Of several carriers, only those a
        Part 2 program wrote count, since §2.51 releases Part 2 records, so a copy another
        partner writes cannot make the emergency reach no one (probe 14 #3); if that still
        leaves not exactly one, it reaches no one, as for an identifier nobody carries
        (fail closed; the answer never tells which)."""
        facts = self._requester.emergency
        named = facts.patient if facts is not None else ""
        if named.startswith("Patient/") or not named:
            return named == patient
        if self._emergency_patient is None:
            system, _, value = named.rpartition("|")
            carriers = patient_custodians(self._session, system or None, value)
            if len(carriers) > 1:
                programs = self._organizations_now().programs
                carriers = {c: by for c, by in carriers.items() if by & programs} or carriers
            self._emergency_patient = (
                f"Patient/{next(iter(carriers))}" if len(carriers) == 1 else ""
            )
        return self._emergency_patient == patient

    def forget_reads(self) -> None:
        """Drop what was read in an earlier transaction of this request (a batch entry): a
        later entry must decide by what the earlier ones committed, a revocation above all."""
        self._treated.clear()
        self._known = None
        self._markers = None
        self._known_identifiers = {}
        self._directives.clear()

    def releases_everything(self, resource_type: str) -> bool:
        """Whether every stored resource of this type would be released whatever it holds:
        then a search counts its matches in SQL and decides only the page it sends."""
        return self._requester.first_party and self._in_scope(resource_type)

    @contextmanager
    def logged_as(self, interaction: str | None) -> Iterator[None]:
        """Decisions made inside are logged as `interaction` (a Bundle's update or delete
        entry, say), or as the request's when it is None."""
        request = self._interaction
        self._interaction = interaction or request
        try:
            yield
        finally:
            self._interaction = request

    @contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Decisions made only to count (a search's total, records beyond its page): a permit
        among them discloses nothing, so it is neither logged nor accounted nor adds labels to
        the Bundle; a denial is logged all the same (A1: compliance staff see what was asked
        for and withheld, e.g. a partner probing for Part 2 records)."""
        logged = len(self._entries)
        released = replace(
            self.released, labels=set(self.released.labels), consents=set(self.released.consents)
        )
        try:
            yield
        finally:
            self._entries[logged:] = [e for e in self._entries[logged:] if e.decision == "deny"]
            self.released = released

    def consult(
        self,
        patient: str | None,
        recipient: ConsentRequester,
        purposes: tuple[str, ...],
        item: DataItem,
    ) -> Decision:
        """A consent consult (CDS Hooks): would the requester's program, as the source of
        the item, be allowed to disclose it to `recipient`? Decided on the same consents as
        every read, and logged as a decision by the requester's program (the requester is the
        one that asked, not a recipient: nothing leaves, so nothing is accounted as disclosed).
        A patient not known here has no consents, so the answer is the default deny; the
        caller passes None too for a patient the requester does not `see`, which must be
        answered for exactly as for one not known here (§2.13(c))."""
        source = self._requester.organization
        request = DisclosureRequest(
            patient=patient or "Patient/unknown",
            requester=recipient,
            purposes=purposes,
            item=replace(
                item,
                source_program=source,
                source_identifiers=self._identifiers(source),
                is_part2=True,
            ),
        )
        directives = self._consents(patient) if patient is not None else []
        decision = decide(request, directives, self._now)
        rule = decision.reasons[0].rule if decision.reasons else "P2"
        verdict = "permit" if decision.outcome is Outcome.PERMIT else "deny"
        reference = item.reference or patient or "Patient/unknown"
        consent, provision = decision.consent_id, decision.provision_path
        self._log(patient, reference, verdict, rule, consent, provision, (), True, None)
        return decision

    def _classify(self, stored: StoredVersion, resource: dict[str, Any]) -> "_Record":
        """PART2.md P1 on the recorded origins: a version is Part 2 data when it carries SUD
        labels or a Part 2 program wrote any version up to it. It is the requester's own
        record when the requester wrote some of it and no other Part 2 program did."""
        organizations = self._organizations_now()
        me = self._requester.organization
        others = [c for c in stored.custodians if c != me]
        protected = tuple(c for c in others if organizations.is_part2(c))
        labelled = self._part2_by_content(resource)
        own = len(others) < len(stored.custodians) and not protected
        part2 = labelled or any(organizations.is_part2(c) for c in stored.custodians)
        if stored.origin in protected:
            source: str | None = stored.origin
        else:
            source = protected[0] if protected else None
        return _Record(
            own=own,
            part2=part2 if own else labelled or bool(protected),
            source=source,
            also_from=tuple(c for c in protected if c != source),
            written_by=stored.custodians,
        )

    def _part2_by_content(self, resource: dict[str, Any]) -> bool:
        """Part 2 data by what it is, whoever wrote it: SUD-labelled, or a consent the
        requester is no party to."""
        if _sud_labelled(resource):
            return True
        return resource.get("resourceType") == "Consent" and not self._party_to(resource)

    def _party_to(self, consent: dict[str, Any]) -> bool:
        """Whether the requester is a party to the consent (a program it lets disclose, a
        recipient of its permits): to them it is the consent they act under. To anyone else
        a consent tells that its patient is a client of those programs (§2.13(c)), whoever
        recorded it, so it is Part 2 data (probe 13 #1: one an operator's EHR, not flagged
        Part 2, recorded went to any partner; review 11: a refused party is no party)."""
        me = self._requester.organization
        mine = set(self._identifiers(me))
        return any(
            actor.reference == me or bool(mine.intersection(actor.identifiers))
            for actor in _parties_to(consent)
        )

    def _in_scope(self, resource_type: str) -> bool:
        """Includes and Bundle entries reach types the route did not check: the token's
        scopes must allow reading them too (SMART: no scope, no data)."""
        requester = self._requester
        return requester.may(resource_type, "r") or requester.may(resource_type, "s")

    def entries(self) -> list[LogEntry]:
        return self._entries

    def released_references(self) -> list[str]:
        """What this request has released so far, by reference, in order."""
        return [ref for e in self._entries if e.decision == "permit" for ref in e.resources]

    def seal(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A Bundle carrying Part 2 data carries its labels and the S1 notice in Bundle.meta."""
        released = self.released
        if not released.labels and released.notice is None:
            return bundle
        return label(bundle, sorted(released.labels), released.notice, released.consents)

    def _apply(
        self,
        decision: Decision,
        resource: dict[str, Any],
        content: bytes,
        patient: str,
        references: tuple[str, ...],
        record: "_Record",
    ) -> bytes | None:
        """The decision carried out: logged for `references` (the record and what it contains
        that the same decision covers), and, permitted, the record labelled as it obliges."""
        self._log_decided(decision, patient, references, record)
        if decision.outcome is not Outcome.PERMIT:
            return None
        labels = tuple((coding.system or "", coding.code) for coding in decision.obligations.labels)
        if not record.part2:
            return content
        notice = decision.obligations.notice
        self.released.labels.update(labels)
        if notice is not None:
            self.released.notice = notice.statement
            if notice.consent_reference:
                self.released.consents.add(notice.consent_reference)
        return orjson.dumps(
            label(
                resource,
                labels,
                notice.statement if notice else None,
                [notice.consent_reference] if notice and notice.consent_reference else (),
            )
        )

    def _log_decided(
        self, decision: Decision, patient: str, references: tuple[str, ...], record: "_Record"
    ) -> None:
        part2 = record.part2
        rule = decision.reasons[0].rule if decision.reasons else ("P1" if not part2 else "P2")
        permitted = decision.outcome is Outcome.PERMIT
        labels = tuple((coding.system or "", coding.code) for coding in decision.obligations.labels)
        emergency = self._emergency_facts() if permitted and decision.emergency else None
        if emergency is not None:
            # §2.51(c)(2): the record of an emergency disclosure names who made it.
            emergency = {**emergency, "disclosed_by": " ".join(record.disclosed_by)}
        self._log_covering(
            patient,
            references,
            "permit" if permitted else "deny",
            rule,
            decision.consent_id,
            decision.provision_path,
            labels if permitted else (),
            part2,
            emergency,
        )

    def _organizations_now(self) -> "Organizations":
        if markers.written_here(self._session, (markers.ORGANIZATIONS,)):
            # This transaction changed Organizations: read them as it sees them, keep nothing.
            self._known, self._known_identifiers = self._organizations.read(self._session)
        elif self._known is None:
            self._known, self._known_identifiers = self._organizations.current(
                self._session, self._markers_now().organizations
            )
        return self._known

    def _markers_now(self) -> markers.GateMarkers:
        """Read once per request, in its transaction: what the kept facts are checked by."""
        if self._markers is None:
            self._markers = markers.gate_markers(self._session)
        return self._markers

    def _consents(self, patient: str) -> list[ConsentDirective]:
        if markers.written_here(self._session, markers.CONSENT_FACTS):
            # This transaction wrote what directives are read from (it may yet roll back):
            # read them as it sees them now, and keep them for no one.
            return read_directives(self._session, patient)
        if patient not in self._directives:

            def read() -> list[ConsentDirective]:
                return read_directives(self._session, patient, self._cache)

            if self._sets is None:
                kept = read()
            else:
                kept = self._sets.get(self._markers_now().consent_facts, patient, read)
            self._directives[patient] = kept
        return self._directives[patient]

    def _refusal(self, patient: str) -> Reason | None:
        """The engine's denial of every Part 2 record of this patient to this requester, when
        no record's content could change it: then the record need not be looked into."""
        return refusal_of_any_part2_record(
            patient, self._requester.purposes, self._consents(patient)
        )

    def _decided(self, request: DisclosureRequest) -> Decision:
        return decide(request, self._consents(request.patient), self._now)

    def _request(
        self,
        patient: str,
        resource: dict[str, Any],
        reference: str,
        stored: StoredVersion,
        record: "_Record",
    ) -> DisclosureRequest:
        source = record.source
        authors, author_identifiers = authors_of(resource)
        via, treating = self._intermediary_facts(patient)
        return DisclosureRequest(
            patient=patient,
            intermediary=via,
            treating_relationship=treating,
            requester=self._as_consent_requester(),
            purposes=self._requester.purposes,
            item=replace(
                content_item(resource, references=self._asks_dependents(patient)),
                reference=reference,
                source_program=source,
                source_identifiers=self._identifiers(source) if source is not None else (),
                authors=(*stored.custodians, *authors),
                author_identifiers=tuple(author_identifiers),
                is_part2=record.part2,
            ),
            emergency=self._emergency_for(patient),
        )

    def _asks_dependents(self, patient: str) -> bool:
        """Whether a consent of the patient's reaches the records that refer to a record
        (`dependents`): only then is what each record refers to read from it."""
        return any(directive.asks_dependents for directive in self._consents(patient))

    def _intermediary_facts(self, patient: str) -> tuple[Party | None, bool]:
        """§2.31(a)(4)(ii): this service as the intermediary the disclosure passes through, and
        whether the requester treats the patient (§2.11), asked only of patients with a consent
        that names an intermediary, once per request."""
        if self._intermediary is None or not any(
            directive.names_intermediary for directive in self._consents(patient)
        ):
            return None, False
        if patient not in self._treated:
            self._treated[patient] = treats(self._session, patient, self._requester.organization)
        via = Party(self._intermediary, self._identifiers(self._intermediary))
        return via, self._treated[patient]

    def _as_consent_requester(self) -> ConsentRequester:
        if self._consent_requester is None:
            self._consent_requester = ConsentRequester(
                reference=self._requester.organization,
                identifiers=self._identifiers(self._requester.organization),
                is_covered_entity=self._requester.covered_entity,
                is_part2_program=self._requester.part2_program,
                is_medical_personnel=self._requester.emergency is not None,
            )
        return self._consent_requester

    def _identifiers(self, reference: str) -> tuple[Identifier, ...]:
        """Read once per state of the Organizations, then kept with the Part 2 program set."""
        self._organizations_now()
        if reference not in self._known_identifiers:
            self._known_identifiers[reference] = organization_identifiers(self._session, reference)
        return self._known_identifiers[reference]

    def _emergency_facts(self) -> dict[str, str] | None:
        facts = self._requester.emergency
        if facts is None:
            return None
        return {
            "personnel_name": facts.personnel_name,
            "personnel_affiliation": facts.personnel_affiliation,
            "nature_of_emergency": facts.nature_of_emergency,
        }

    def _log(
        self,
        patient: str | None,
        reference: str,
        decision: str,
        rule: str,
        consent: str | None,
        provision: str | None,
        labels: Sequence[tuple[str, str]],
        part2: bool,
        emergency: dict[str, str] | None,
    ) -> None:
        self._log_covering(
            patient, (reference,), decision, rule, consent, provision, labels, part2, emergency
        )

    def _log_covering(
        self,
        patient: str | None,
        resources: tuple[str, ...],
        decision: str,
        rule: str,
        consent: str | None,
        provision: str | None,
        labels: Sequence[tuple[str, str]],
        part2: bool,
        emergency: dict[str, str] | None,
    ) -> None:
        if consent is not None and "/" not in consent:
            consent = f"Consent/{consent}"
        self._entries.append(
            LogEntry(
                recorded_at=self._now,
                client_id=self._requester.client_id,
                requester=self._requester.organization,
                patient=patient,
                purposes=self._requester.purposes,
                interaction=self._interaction,
                decision=decision,
                rule=rule,
                consent=consent,
                provision=provision,
                resources=resources,
                labels=tuple(code for _system, code in labels),
                part2=part2,
                emergency=emergency is not None,
                emergency_facts=emergency,
            )
        )


@dataclass(frozen=True, slots=True)
class _Record:
    """How the gate classifies one version for one requester."""

    own: bool  # the requester wrote it, and no other Part 2 program added to it
    part2: bool  # Part 2 data as far as this requester is concerned
    source: str | None  # the program whose disclosure this would be, for consents to name
    also_from: tuple[str, ...] = ()
    """The other Part 2 programs that wrote versions up to this one, whose words it may still
    carry (a shared Task's notes and status): the disclosure is theirs too."""
    written_by: tuple[str, ...] = ()
    """Every organization that wrote a version up to this one: whose disclosure a release is
    when no Part 2 program wrote it (labelled data a clinic holds, say)."""

    @property
    def disclosed_by(self) -> tuple[str, ...]:
        """Whose disclosure a release is: its Part 2 programs, else whoever wrote it."""
        return (self.source, *self.also_from) if self.source else self.written_by


class DisclosureGate:
    """Opens a GateSession per request and writes its decisions before the response leaves:
    if they cannot be written, the request fails and nothing is disclosed."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime] = _utc_now,
        intermediary: str | None = None,
    ) -> None:
        self._engine = engine
        self._intermediary = intermediary
        self._clock = clock
        self._cache = DirectiveCache()
        self._organizations = OrganizationFacts()
        self._sets = DirectiveSets()
        self._log = GroupCommitLog(engine)

    def open(self, session: Session, requester: Requester, interaction: str) -> GateSession:
        """A gate for one request; consents are judged as of the moment it opens."""
        return GateSession(
            session,
            requester,
            interaction,
            self._clock(),
            self._cache,
            self._organizations,
            self._sets,
            self._intermediary,
        )

    def record(self, gate: GateSession) -> None:
        """The request's decisions, committed (with concurrent requests', in one batch) before
        this returns: a response waits for its own entries to be durable."""
        self._log.write(_grouped(gate.entries()))

    def record_in(self, session: Session, gate: GateSession) -> None:
        """The request's decisions, appended in its own transaction, to commit with it: a
        write's, which holds the write lock already, is spared a transaction of their own."""
        log_into(session, gate)

    def record_disclosed(self, prepared: Sequence[LogEntry], interaction: str) -> None:
        """What a push released, once the partner took it: its permits again, as the
        disclosure the accounting lists (A2), at the moment it was made."""
        now = self._clock()
        sent = [
            replace(entry, interaction=interaction, recorded_at=now)
            for entry in prepared
            if entry.decision == "permit"
        ]
        if sent:
            self._log.write(_grouped(sent))

    async def record_async(self, gate: GateSession) -> None:
        """As `record`, for a request served on the event loop."""
        await self._log.write_async(_grouped(gate.entries()))


def system_gate(session: Session, job: str, on_behalf_of: str) -> GateSession:
    """A gate for internal work inside the caller's transaction; its decisions are appended to
    the log in that same transaction (`log_into`), so they commit with the work or not at all."""
    requester = system_requester(job, on_behalf_of)
    return GateSession(
        session, requester, job, _utc_now(), DirectiveCache(capacity=16), OrganizationFacts()
    )


def log_into(session: Session, gate: GateSession) -> None:
    """Append the gate's decisions inside the caller's transaction."""
    append(session, _grouped(gate.entries()))


def label(
    resource: dict[str, Any],
    labels: Iterable[tuple[str, str]],
    notice: str | None,
    consents: Iterable[str],
) -> dict[str, Any]:
    """The resource with the S2 labels added to meta.security and the S1 notice in meta.

    The notice is a complex extension (no value[x], so that ext-1 holds): `statement` carries
    the §2.32 text and each `consent` one consent relied on (a Bundle spanning several
    patients relies on several; each part a reference a receiver can resolve).
    """
    meta = dict(resource.get("meta", {}))
    security = [c for c in meta.get("security", []) if c.get("code") != "NORDSLCD"]
    present = {(c.get("system"), c.get("code")) for c in security}
    security.extend(
        {"system": system, "code": code} for system, code in labels if (system, code) not in present
    )
    if security:
        meta["security"] = security
    if notice is not None:
        parts: list[dict[str, Any]] = [{"url": "statement", "valueString": notice}]
        parts.extend(
            {"url": "consent", "valueReference": {"reference": consent}}
            for consent in sorted(set(consents))
        )
        others = [e for e in meta.get("extension", []) if e.get("url") != NOTICE_EXTENSION]
        meta["extension"] = [*others, {"url": NOTICE_EXTENSION, "extension": parts}]
    return {**resource, "meta": meta}


def notice_of(resource: dict[str, Any]) -> str | None:
    """The §2.32 statement a released resource or Bundle carries, if any."""
    for extension in resource.get("meta", {}).get("extension", []):
        if extension.get("url") == NOTICE_EXTENSION:
            for part in extension.get("extension", []):
                if part.get("url") == "statement":
                    return str(part.get("valueString"))
    return None


class DirectiveSets:
    """Each patient's directives, kept between requests for as long as nothing they are read
    from (the patient's Consents, the Patient, RelatedPersons, signing Provenances, approved
    forms) has changed anywhere, in any process: one cheap query tells (store.markers), so a
    gated read costs a dictionary lookup plus the decision, and a revocation counts at once."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._sets: OrderedDict[str, tuple[tuple[Any, ...], list[ConsentDirective]]] = OrderedDict()

    def get(
        self, marker: tuple[Any, ...], patient: str, read: Callable[[], list[ConsentDirective]]
    ) -> list[ConsentDirective]:
        """The patient's directives, read again only when `marker` (the consent facts' marker
        now) differs from the one they were read under."""
        with self._lock:
            kept = self._sets.get(patient)
            if kept is not None and kept[0] == marker:
                self._sets.move_to_end(patient)
                return kept[1]
        directives = read()
        with self._lock:
            self._sets[patient] = (marker, directives)
            self._sets.move_to_end(patient)
            if len(self._sets) > self._capacity:
                self._sets.popitem(last=False)
        return directives


@dataclass(frozen=True, slots=True)
class Organizations:
    """What the gate knows of Organizations at one moment."""

    programs: frozenset[str]
    known: frozenset[str]

    def is_part2(self, custodian: str) -> bool:
        """A Part 2 program, or a custodian this server cannot vouch for (fail closed: an
        origin that names no stored Organization may be a Part 2 program for all we know)."""
        return custodian in self.programs or custodian not in self.known


class OrganizationFacts:
    """Which Organizations exist and which are Part 2 programs, and each one's identifiers,
    kept between requests for as long as no Organization has changed anywhere.

    Every committed write of an Organization, by any process, moves its change counter
    (interop.store.markers); one cheap query tells whether what is kept still holds, so a
    program flagged Part 2 a moment ago is known as such on the very next request. The kept
    facts are replaced whole, under a lock, and the marker only after them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marker: int | None = None
        self._organizations = Organizations(frozenset(), frozenset())
        self._identifiers: dict[str, tuple[Identifier, ...]] = {}

    def current(
        self, session: Session, marker: int
    ) -> tuple[Organizations, dict[str, tuple[Identifier, ...]]]:
        """(the Organizations, identifiers known so far) as the database has them now, given
        the Organizations' marker now."""
        with self._lock:
            if marker == self._marker:
                return self._organizations, self._identifiers
        organizations, identifiers = self.read(session)
        with self._lock:
            self._organizations, self._identifiers = organizations, identifiers
            self._marker = marker
        return organizations, identifiers

    @staticmethod
    def read(session: Session) -> tuple[Organizations, dict[str, tuple[Identifier, ...]]]:
        """The Organizations as this transaction sees them, kept for no one."""
        organizations = Organizations(
            organizations_store.part2_programs(session),
            organizations_store.known_organizations(session),
        )
        return organizations, {}


def organization_identifiers(session: Session, reference: str) -> tuple[Identifier, ...]:
    """The identifiers of a stored Organization, which consents may name it by."""
    return tuple(
        Identifier(system, value)
        for system, value in organizations_store.identifiers(session, reference)
    )


def _contained(resource: dict[str, Any], reference: str) -> list[tuple[str, dict[str, Any]]]:
    """The resources `resource` contains, each named as the log and the accounting name it:
    its own type, then the record's id and its local id (`Condition/plan-1#dx`: the
    diagnosis inside CarePlan/plan-1)."""
    container_id = reference.partition("/")[2]
    found = []
    for inner in resource.get("contained") or ():
        if isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
            name = f"{inner['resourceType']}/{container_id}#{inner.get('id', '')}"
            found.append((name, inner))
    return found


def patient_of(resource: dict[str, Any]) -> str | None:
    """Whose record this is: the Patient itself, or the Patient its subject-like element names."""
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}"
    for element in _PATIENT_ELEMENTS:
        for value in _as_list(resource.get(element)):
            found = _local_reference(value, "Patient")
            if found is not None:
                return found
    return None


def authors_of(resource: dict[str, Any]) -> tuple[list[str], list[Identifier]]:
    """Whom a record names as its authors (author, requester, recorder...), of any type, by
    reference and by the identifiers a logical reference carries.

    Evidence about content, matched by consents' `data` and `authoredby` provisions; never
    what the gate classifies a record by (that is its recorded origin, PART2.md P1).
    """
    references: list[str] = []
    identifiers: list[Identifier] = []
    for element in _AUTHOR_ELEMENTS:
        for value in _as_list(resource.get(element)):
            if not isinstance(value, dict):
                continue
            if isinstance(value.get("reference"), str):
                parsed = parse_reference(value["reference"])
                if parsed is not None:
                    references.append(f"{parsed[0]}/{parsed[1]}")
            identifier = value.get("identifier")
            if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                identifiers.append(Identifier(identifier.get("system"), identifier["value"]))
    return references, identifiers


def _local_reference(value: Any, kind: str) -> str | None:
    """`kind/id` of a relative reference (a version of it included); None for an absolute
    URL, which names a record on some server by its own ids: taken for the local record of
    the same id, a record about another server's patient would be released under a consent of
    whoever happens to carry that id here."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    parsed = parse_reference(value["reference"])
    if parsed is None or parsed[0] != kind or parsed[2] is not None:
        return None
    if not _FHIR_ID.fullmatch(parsed[1]):
        return None  # names no record that could be stored here (R4 ids: 64 of [A-Za-z0-9-.])
    return f"{parsed[0]}/{parsed[1]}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _sud_labelled(resource: dict[str, Any]) -> bool:
    """Carries an SUD sensitivity or 42 CFR Part 2 label, or the refrain from redisclosure
    without consent (S2), whoever wrote it."""
    found = resource.get("meta")
    security = found.get("security") if isinstance(found, dict) else None
    return any(isinstance(c, dict) and c.get("code") in _SUD_CODES for c in _as_list(security))


def _parties_to(consent: dict[str, Any]) -> tuple[Actor, ...]:
    """Who a consent lets act, as the engine reads it: the programs it lets disclose and the
    recipients of its permits (an actor of a deny is refused, not a party). None when it
    cannot be read: then it is protected from everyone but its writer."""
    try:
        directive = directive_from_fhir(consent)
    except FhirContentError:
        return ()
    parties = list(directive.disclosers)
    for chain in permit_chains(directive.provision):
        for provision in chain:
            if provision.type is ProvisionType.PERMIT:
                parties += [actor for actor in provision.actors if _acts_under(actor)]
    return tuple(parties)


def _acts_under(actor: Actor) -> bool:
    roles = v.RECIPIENT_ROLES | v.SOURCE_ROLES
    return actor.role is not None and actor.role.code in roles


def content_item(resource: dict[str, Any], *, references: bool = True) -> DataItem:
    """What a record's own content tells the engine (its type, labels, codes, date and, with
    `references`, the records it refers to): all the CDS consent service has of the records a
    caller sends, and where every gate request starts, so that both decide a record alike.
    Reading the references walks the whole record, so the gate asks for them only when a
    consent needs them (`dependents`); without them a `dependents` refusal applies (C8)."""
    resource_type = str(resource.get("resourceType"))
    found = resource.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    return DataItem(
        resource_type=resource_type,
        security_labels=tuple(_codings(_as_list(meta.get("security")))),
        classes=(Coding("http://hl7.org/fhir/resource-types", resource_type),),
        codes=tuple(_codings(_concept_codings(resource))),
        date=_record_date(resource),
        related=tuple(sorted(references_in(resource))) if references else None,
    )


def _codings(values: Iterable[Any]) -> Iterable[Coding]:
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("code"), str):
            yield Coding(value.get("system"), value["code"])


_CONCEPT_ELEMENTS = (
    "code",
    "category",
    "type",
    "medicationCodeableConcept",
    "reasonCode",
)
"""Where a record keeps the codes a consent's `provision.code` names: a medication's code
too, so that a consent withholding e.g. methadone by its RxNorm code matches the statement,
and the reason for a referral, an encounter or a medication, where a diagnosis travels (a
refusal of F11 reaches the referral for F11.20, review 9 #11)."""


def _concept_codings(resource: dict[str, Any]) -> list[Any]:
    codings: list[Any] = []
    for element in _CONCEPT_ELEMENTS:
        for concept in _as_list(resource.get(element)):
            if isinstance(concept, dict):
                codings.extend(concept.get("coding", []))
    return codings


def _record_date(resource: dict[str, Any]) -> datetime | None:
    """The clinical date a consent's dataPeriod is matched against."""
    for element in _DATE_ELEMENTS:
        value = resource.get(element)
        if isinstance(value, str):
            return parse_range(value)[0]
    for element in _PERIOD_ELEMENTS:
        value = resource.get(element)
        if isinstance(value, dict) and isinstance(value.get("start"), str):
            return parse_range(value["start"])[0]
    return None


def _engine_emergency(requester: Requester) -> EmergencyFacts | None:
    facts = requester.emergency
    if facts is None:
        return None
    return EmergencyFacts(
        personnel_name=facts.personnel_name,
        personnel_affiliation=facts.personnel_affiliation,
        nature_of_emergency=facts.nature_of_emergency,
        disclosed_by="Recovery Interop",
    )


def _grouped(entries: list[LogEntry]) -> list[LogEntry]:
    """One log row per distinct decision of a request and what it was made for (a Bundle
    entry's interaction, a write's answer), listing every resource it covered, at most
    as many to a row as its column holds (a search deciding thousands, a record containing
    hundreds, stays within it)."""
    groups: dict[tuple[Any, ...], tuple[LogEntry, dict[str, None]]] = {}
    for entry in entries:
        key = (
            entry.interaction,
            entry.patient,
            entry.decision,
            entry.rule,
            entry.consent,
            entry.provision,
            entry.labels,
            entry.part2,
            entry.emergency,
        )
        _, covered = groups.setdefault(key, (entry, {}))
        covered.update(dict.fromkeys(entry.resources))
    return [
        replace(first, resources=chunk)
        for first, covered in groups.values()
        for chunk in _filling_rows(tuple(covered))
    ]


def _filling_rows(resources: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """`resources` in order, cut where the next would overflow a row's column."""
    start, used = 0, 0
    for index, resource in enumerate(resources):
        if used + len(resource) + 1 > _ROW_CHARACTERS and index > start:
            yield resources[start:index]
            start, used = index, 0
        used += len(resource) + 1
    if start < len(resources):
        yield resources[start:]
