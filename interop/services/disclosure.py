"""THE disclosure gate: every resource that leaves this service passes through here.

For each outgoing resource the gate works out whose record it is and whether it is Part 2
data (PART2.md P1: it carries SUD sensitivity or 42 CFR Part 2 labels, or a Part 2 program is
its source), asks the consent engine (consent.engine.decide) with the requester's identity and
purpose of use from its access token, and then either withholds the resource or releases it
with the obligations of the decision: the S2 security labels in meta.security and the S1
notice. A withheld resource is simply absent: reads answer 404 as for an unknown id, searches
neither list it nor count it, includes skip it. Every decision is written to the hash-chained
disclosure log before the response leaves (A1); if it cannot be written, nothing leaves.

The S1 notice travels as an extension of meta on each released Part 2 resource and on the
Bundle that carries it: url NOTICE_EXTENSION, valueString the §2.32 statement, with an
extension `consent` (valueReference) naming the consent relied on. Bundles also carry the
labels of everything in them (high-water mark) in Bundle.meta.security.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import Engine, bindparam, func, select
from sqlmodel import Session

from consent.engine import decide
from consent.model import (
    Coding,
    ConsentDirective,
    DataItem,
    Decision,
    DisclosureRequest,
    EmergencyFacts,
    Identifier,
    Outcome,
)
from consent.model import Requester as ConsentRequester
from interop.audit.log import LogEntry, append
from interop.auth.requester import Requester
from interop.store.database import unit_of_work
from interop.store.fhirdates import parse_range
from interop.store.repository import StoredVersion
from interop.store.search_params import parse_reference
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE, VERSION_TABLE
from mappings.consent import directive_from_fhir
from mappings.errors import FhirContentError
from mappings.subscription import subscriber_of
from mappings.terminology import PROJECT_BASE

NOTICE_EXTENSION = f"{PROJECT_BASE}/StructureDefinition/part2-disclosure-notice"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_SUD_CODES = frozenset({"SUD", "ETHUD", "OPIOIDUD", "ETH", "42CFRPart2", "PSYTHPN"})
_PATIENT_ELEMENTS = ("subject", "patient", "for", "beneficiary")
_SOURCE_ELEMENTS = (
    "author",
    "requester",
    "custodian",
    "managingOrganization",
    "recorder",
    "asserter",
    "expressedBy",
    "organization",
    "serviceProvider",
)
_RECIPIENT_ELEMENTS = ("owner",)
"""Who a shared record (a referral's Task) was sent to: what that program adds to it makes it
its record too (a Part 2 program's "admitted" is Part 2 data), but what the sender wrote there
reached it by disclosure, so holding the Task is not "use" by it."""
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


@dataclass
class _Released:
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
    ) -> None:
        self._session = session
        self._cache = cache
        self._organizations = organizations
        self._requester = requester
        self._interaction = interaction
        self._now = now
        self._part2_programs: frozenset[str] | None = None
        self._known_identifiers: dict[str, tuple[Identifier, ...]] = {}
        self._directives: dict[str, list[ConsentDirective]] = {}
        self._consent_requester: ConsentRequester | None = None
        self._entries: list[LogEntry] = []
        self.released = _Released()

    def admit(self, stored: StoredVersion) -> bytes | None:
        """The bytes to send for this resource, labelled, or None when it must be withheld."""
        if stored.content is None or not self._in_scope(stored.resource_type):
            return None
        resource: dict[str, Any] = orjson.loads(stored.content)
        if stored.resource_type == "Subscription" and not self._requester.first_party:
            # A partner's Subscription names its endpoint and headers: its own business only.
            mine = subscriber_of(resource) == self._requester.organization
            return stored.content if mine else None
        patient = patient_of(resource)
        if patient is None:
            return stored.content
        reference = f"{stored.resource_type}/{stored.resource_id}"
        part2 = self._is_part2(resource)
        own = sources_of(resource, recipients=False)
        if self._requester.first_party or self._requester.organization in own:
            # The program's own systems, or a program reading records it is the source of:
            # use within the program, not a disclosure.
            self._log(patient, reference, "permit", "USE", None, None, (), part2, None)
            return stored.content
        decision = decide(
            self._request(patient, resource, reference, part2), self._consents(patient), self._now
        )
        return self._apply(decision, resource, stored.content, patient, reference, part2)

    def _in_scope(self, resource_type: str) -> bool:
        """Includes and Bundle entries reach types the route did not check: the token's
        scopes must allow reading them too (SMART: no scope, no data)."""
        requester = self._requester
        return requester.may(resource_type, "r") or requester.may(resource_type, "s")

    def entries(self) -> list[LogEntry]:
        return self._entries

    def seal(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A Bundle carrying Part 2 data carries its labels and the S1 notice in Bundle.meta."""
        released = self.released
        if not released.labels and released.notice is None:
            return bundle
        consent = ", ".join(sorted(released.consents)) or None
        return label(bundle, sorted(released.labels), released.notice, consent)

    def _apply(
        self,
        decision: Decision,
        resource: dict[str, Any],
        content: bytes,
        patient: str,
        reference: str,
        part2: bool,
    ) -> bytes | None:
        rule = decision.reasons[0].rule if decision.reasons else ("P1" if not part2 else "P2")
        labels = tuple((coding.system or "", coding.code) for coding in decision.obligations.labels)
        emergency = self._emergency_facts() if decision.emergency else None
        if decision.outcome is not Outcome.PERMIT:
            self._log(
                patient,
                reference,
                "deny",
                rule,
                decision.consent_id,
                decision.provision_path,
                (),
                part2,
                None,
            )
            return None
        self._log(
            patient,
            reference,
            "permit",
            rule,
            decision.consent_id,
            decision.provision_path,
            labels,
            part2,
            emergency,
        )
        if not part2:
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
                notice.consent_reference if notice else None,
            )
        )

    def _is_part2(self, resource: dict[str, Any]) -> bool:
        """P1: SUD labels, or a Part 2 program among the record's sources."""
        for coding in resource.get("meta", {}).get("security", []):
            if coding.get("code") in _SUD_CODES:
                return True
        programs = self._programs()
        return any(source in programs for source in sources_of(resource))

    def _programs(self) -> frozenset[str]:
        if self._part2_programs is None:
            self._part2_programs, self._known_identifiers = self._organizations.current(
                self._session
            )
        return self._part2_programs

    def _consents(self, patient: str) -> list[ConsentDirective]:
        if patient not in self._directives:
            self._directives[patient] = read_directives(self._session, patient, self._cache)
        return self._directives[patient]

    def _request(
        self, patient: str, resource: dict[str, Any], reference: str, part2: bool
    ) -> DisclosureRequest:
        programs = self._programs()
        source = next((s for s in sources_of(resource) if s in programs), None)
        return DisclosureRequest(
            patient=patient,
            requester=self._as_consent_requester(),
            purposes=self._requester.purposes,
            item=DataItem(
                resource_type=resource["resourceType"],
                reference=reference,
                security_labels=tuple(_codings(resource.get("meta", {}).get("security", []))),
                classes=(Coding("http://hl7.org/fhir/resource-types", resource["resourceType"]),),
                codes=tuple(_codings(_concept_codings(resource))),
                date=_record_date(resource),
                source_program=source,
                authors=tuple(sources_of(resource)),
                is_part2=part2,
            ),
            emergency=_engine_emergency(self._requester),
        )

    def _as_consent_requester(self) -> ConsentRequester:
        if self._consent_requester is None:
            self._consent_requester = ConsentRequester(
                reference=self._requester.organization,
                identifiers=self._requester_identifiers(),
                is_covered_entity=self._requester.covered_entity,
                is_part2_program=self._requester.part2_program,
                is_medical_personnel=self._requester.emergency is not None,
            )
        return self._consent_requester

    def _requester_identifiers(self) -> tuple[Identifier, ...]:
        """Read once per state of the Organizations, then kept with the Part 2 program set."""
        self._programs()
        reference = self._requester.organization
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
        patient: str,
        reference: str,
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
                resources=(reference,),
                labels=tuple(code for _system, code in labels),
                part2=part2,
                emergency=emergency is not None,
                emergency_facts=emergency,
            )
        )


class DisclosureGate:
    """Opens a GateSession per request and writes its decisions before the response leaves:
    if they cannot be written, the request fails and nothing is disclosed."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine = engine
        self._clock = clock
        self._cache = DirectiveCache()
        self._organizations = OrganizationFacts()

    def open(self, session: Session, requester: Requester, interaction: str) -> GateSession:
        """A gate for one request; consents are judged as of the moment it opens."""
        return GateSession(
            session, requester, interaction, self._clock(), self._cache, self._organizations
        )

    def record(self, gate: GateSession) -> None:
        grouped = _grouped(gate.entries())
        if grouped:
            with unit_of_work(self._engine) as session:
                append(session, grouped)


def label(
    resource: dict[str, Any],
    labels: Iterable[tuple[str, str]],
    notice: str | None,
    consent: str | None,
) -> dict[str, Any]:
    """The resource with the S2 labels added to meta.security and the S1 notice in meta."""
    meta = dict(resource.get("meta", {}))
    security = [c for c in meta.get("security", []) if c.get("code") != "NORDSLCD"]
    present = {(c.get("system"), c.get("code")) for c in security}
    security.extend(
        {"system": system, "code": code} for system, code in labels if (system, code) not in present
    )
    if security:
        meta["security"] = security
    if notice is not None:
        extension: dict[str, Any] = {"url": NOTICE_EXTENSION, "valueString": notice}
        if consent:
            extension["extension"] = [{"url": "consent", "valueReference": {"reference": consent}}]
        others = [e for e in meta.get("extension", []) if e.get("url") != NOTICE_EXTENSION]
        meta["extension"] = [*others, extension]
    return {**resource, "meta": meta}


_ORGANIZATION_MARKER: Final = select(func.max(VERSION_TABLE.c.pk)).where(
    VERSION_TABLE.c.resource_type == "Organization"
)
_CONSENTS: Final = select(
    RESOURCE_TABLE.c.pk, RESOURCE_TABLE.c.resource_id, RESOURCE_TABLE.c.version_id
).where(
    RESOURCE_TABLE.c.resource_type == "Consent",
    RESOURCE_TABLE.c.deleted.is_(False),
    RESOURCE_TABLE.c.pk.in_(
        select(INDEX_TABLE.c.resource_pk).where(
            INDEX_TABLE.c.resource_type == "Consent",
            INDEX_TABLE.c.param == "patient",
            INDEX_TABLE.c.value == bindparam("patient"),
            INDEX_TABLE.c.norm.is_(None),
        )
    ),
)
"""Built once: the per-request cost is then the query alone, not its construction."""


class OrganizationFacts:
    """Which Organizations are Part 2 programs, and each one's identifiers, kept between
    requests for as long as no Organization has changed anywhere.

    Every write of an Organization, by any process, adds a resource_version row with a larger
    key; one cheap query for the largest such key tells whether what is kept still holds, so
    a program flagged Part 2 a moment ago is known as such on the very next request. The kept
    facts are replaced whole, under a lock, and the marker only after them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marker: int | None = None
        self._programs: frozenset[str] = frozenset()
        self._identifiers: dict[str, tuple[Identifier, ...]] = {}

    def current(self, session: Session) -> tuple[frozenset[str], dict[str, tuple[Identifier, ...]]]:
        """(Part 2 programs, identifiers known so far) as the database has them now."""
        marker = session.execute(_ORGANIZATION_MARKER).scalar()
        with self._lock:
            if marker is not None and marker == self._marker:
                return self._programs, self._identifiers
        programs = _part2_programs(session)
        identifiers: dict[str, tuple[Identifier, ...]] = {}
        with self._lock:
            self._programs, self._identifiers, self._marker = programs, identifiers, marker
        return programs, identifiers


def _part2_programs(session: Session) -> frozenset[str]:
    statement = select(INDEX_TABLE.c.resource_pk).where(
        INDEX_TABLE.c.resource_type == "Organization",
        INDEX_TABLE.c.param == "part2-program",
        INDEX_TABLE.c.value == "true",
    )
    ids = session.execute(
        select(RESOURCE_TABLE.c.resource_id).where(RESOURCE_TABLE.c.pk.in_(statement))
    ).scalars()
    return frozenset(f"Organization/{ident}" for ident in ids)


class DirectiveCache:
    """Consents as directives, kept per stored version: mapping a Consent costs far more than
    reading it, and a version never changes (a new version is a new key)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._directives: OrderedDict[tuple[str, int], ConsentDirective | None] = OrderedDict()

    def get(self, key: tuple[str, int]) -> tuple[bool, ConsentDirective | None]:
        """(known, directive): whether the version was mapped before, and to what."""
        if key not in self._directives:
            return False, None
        self._directives.move_to_end(key)
        return True, self._directives[key]

    def put(self, key: tuple[str, int], content: bytes) -> ConsentDirective | None:
        directive = _directive(orjson.loads(content))
        self._directives[key] = directive
        if len(self._directives) > self._capacity:
            self._directives.popitem(last=False)
        return directive


def read_directives(
    session: Session, patient: str, cache: DirectiveCache | None = None
) -> list[ConsentDirective]:
    """The patient's stored consents as directives; one that cannot be read is never relied on.

    Only the (id, version) pairs are read first; the JSON of a version is fetched only when it
    was never mapped before, which on a busy server is almost never.
    """
    cache = cache or DirectiveCache()
    found: list[ConsentDirective | None] = []
    unknown: dict[int, tuple[str, int]] = {}
    for pk, ident, version in session.execute(
        _CONSENTS, {"patient": patient.split("/", 1)[1]}
    ).all():
        known, directive = cache.get((ident, version))
        if known:
            found.append(directive)
        else:
            unknown[pk] = (ident, version)
    if unknown:
        contents = select(RESOURCE_TABLE.c.pk, RESOURCE_TABLE.c.content).where(
            RESOURCE_TABLE.c.pk.in_(list(unknown))
        )
        for pk, content in session.execute(contents).all():
            found.append(cache.put(unknown[pk], content))
    return [directive for directive in found if directive is not None]


def organization_identifiers(session: Session, reference: str) -> tuple[Identifier, ...]:
    """The identifiers of a stored Organization, which consents may name it by."""
    kind, _, ident = reference.partition("/")
    content = session.execute(
        select(RESOURCE_TABLE.c.content).where(
            RESOURCE_TABLE.c.resource_type == kind, RESOURCE_TABLE.c.resource_id == ident
        )
    ).scalar()
    if content is None:
        return ()
    return tuple(
        Identifier(item.get("system"), item["value"])
        for item in orjson.loads(content).get("identifier", [])
        if isinstance(item.get("value"), str)
    )


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


def sources_of(resource: dict[str, Any], *, recipients: bool = True) -> list[str]:
    """The organizations a record comes from (author, requester, custodian...), and meta.source;
    with `recipients`, also those a shared record was sent to and write into (Task.owner)."""
    found: list[str] = []
    source = resource.get("meta", {}).get("source")
    if isinstance(source, str):
        parsed = parse_reference(source)
        if parsed is not None and parsed[0] == "Organization":
            found.append(f"Organization/{parsed[1]}")
    elements = _SOURCE_ELEMENTS + _RECIPIENT_ELEMENTS if recipients else _SOURCE_ELEMENTS
    for element in elements:
        for value in _as_list(resource.get(element)):
            organization = _local_reference(value, "Organization")
            if organization is not None:
                found.append(organization)
    return found


def _local_reference(value: Any, kind: str) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    parsed = parse_reference(value["reference"])
    if parsed is None or parsed[0] != kind:
        return None
    return f"{parsed[0]}/{parsed[1]}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _codings(values: Iterable[Any]) -> Iterable[Coding]:
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("code"), str):
            yield Coding(value.get("system"), value["code"])


def _concept_codings(resource: dict[str, Any]) -> list[Any]:
    codings: list[Any] = []
    for element in ("code", "category", "type"):
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


def _directive(consent: dict[str, Any]) -> ConsentDirective | None:
    try:
        return directive_from_fhir(consent)
    except FhirContentError:
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
    """One log row per distinct decision of a request, listing every resource it covered."""
    groups: dict[tuple[Any, ...], LogEntry] = {}
    for entry in entries:
        key = (
            entry.patient,
            entry.decision,
            entry.rule,
            entry.consent,
            entry.provision,
            entry.labels,
            entry.part2,
            entry.emergency,
        )
        current = groups.get(key)
        if current is None:
            groups[key] = entry
        elif entry.resources[0] not in current.resources:
            groups[key] = replace(current, resources=(*current.resources, *entry.resources))
    return list(groups.values())
