"""A patient's stored Consents as the consent engine's directives, read for the gate, with what
the store knows around each one (PART2.md's table of where the §2.31 elements live).

A Consent rarely carries every §2.31 element itself: the patient's name is on the Patient it
references (a), a signature may be a Provenance whose target is the Consent (h), a minor is
told by `Patient.birthDate` and a parent by `RelatedPerson.relationship` (§2.14), and the
statements of the signed form come from the form's one approval by compliance staff (C9).
`consent_facts` gathers these for one patient in a few queries; `mappings.consent` does the
reading. Mapping a Consent costs far more than reading it, so directives are kept per stored
version and per state of those facts.
"""

from collections import OrderedDict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import orjson
from sqlmodel import Session

from consent.model import Coding, ConsentDirective
from consent.vocabulary import canonical_system
from interop.store import consents as store
from interop.store import markers
from interop.store.fhirdates import parse_range
from interop.store.tables import ConsentFormRow
from mappings.consent import (
    ELEMENT_HINTS,
    ConsentFacts,
    ConsentSignature,
    directive_from_fhir,
    directive_problems_as_issues,
    provision_reading_notes,
    references_in,
    related_instances,
    signatures_of,
    source_form_keys,
    source_reference,
    with_related_reaches,
)
from mappings.errors import FhirContentError, Issue

_Key = tuple[str, int, Any]


@dataclass(frozen=True, slots=True)
class Person:
    """The patient as a consent's trusted writers last recorded it, and the relationships of
    the RelatedPersons they recorded; `deceased` and `deceased_at` (from `Patient.deceased[x]`)
    tell who may sign for a deceased patient (§2.15(b))."""

    name: str | None = None
    birth_date: date | None = None
    relationships: Mapping[str, tuple[Coding, ...]] = field(default_factory=dict)
    deceased: bool = False
    deceased_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the store knows around one patient's consents, gathered once per request; the
    person each consent is read with is kept per consent (see `consent_facts`)."""

    people: Mapping[str, Person]
    signatures: Mapping[str, tuple[ConsentSignature, ...]]
    forms: Mapping[str, frozenset[str]]
    sources: Any = None

    def for_consent(
        self,
        ident: str,
        source_forms: tuple[str, ...] = (),
        *,
        recorded_by_holder: bool = True,
        patient: str | None = None,
        patient_ambiguous: bool = False,
    ) -> ConsentFacts:
        """The facts one consent is read with; `patient` is the stored Patient a consent naming
        its patient by identifier only was found for (see `read_directives`)."""
        person = self.people.get(ident, _NOBODY)
        return ConsentFacts(
            patient_name=person.name,
            patient_birth_date=person.birth_date,
            relationships=person.relationships,
            signatures=self.signatures.get(f"Consent/{ident}", ()),
            approved_forms=self.forms,
            source_forms=source_forms,
            recorded_by_holder=recorded_by_holder,
            patient=patient,
            patient_ambiguous=patient_ambiguous,
            patient_deceased=person.deceased,
            patient_deceased_at=person.deceased_at,
            relatives_known=True,
        )

    def fingerprint(self, ident: str) -> Any:
        """What a directive read with these facts depends on, hashable, for the cache key."""
        person = self.people.get(ident, _NOBODY)
        return (
            person.name,
            person.birth_date,
            person.deceased,
            person.deceased_at,
            tuple(sorted(person.relationships.items())),
            self.signatures.get(f"Consent/{ident}", ()),
            tuple(sorted(self.forms.items(), key=lambda item: item[0])),
            self.sources,
        )


_NOBODY = Person()


class DirectiveCache:
    """Consents as directives, kept per stored version and per state of the facts read with
    them: mapping a Consent costs far more than reading it, and a version never changes."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._directives: OrderedDict[_Key, ConsentDirective | None] = OrderedDict()

    def get(self, key: _Key) -> tuple[bool, ConsentDirective | None]:
        """(known, directive): whether the version was mapped before, and to what."""
        if key not in self._directives:
            return False, None
        self._directives.move_to_end(key)
        return True, self._directives[key]

    def put(
        self, key: _Key, consent: dict[str, Any], facts: ConsentFacts
    ) -> ConsentDirective | None:
        directive = _directive(consent, facts)
        self._directives[key] = directive
        if len(self._directives) > self._capacity:
            self._directives.popitem(last=False)
        return directive


def read_directives(
    session: Session, patient: str, cache: DirectiveCache | None = None
) -> list[ConsentDirective]:
    """The patient's stored consents as directives; one that cannot be read is never relied on.

    A Consent whose `patient` is a logical reference (an identifier, no literal reference,
    R4 §2.3.0) counts for the stored Patient carrying that identifier (system and value): its
    refusals are honoured (C8) and, when that Patient alone carries the identifier, it may be
    relied on to disclose like any consent, every §2.31 element being read the same way (the
    name from that Patient). When several stored Patients carry it, whose consent it is cannot
    be told: it counts for each of them as a refusal only. Which Patient carries an
    identifier is a Patient (and Consent) write, so the gate's kept directives, checked by
    those change counters (interop.store.markers), stay correct.

    Only the (id, version) pairs and the facts around them are read first; the JSON of a
    version is fetched only when it was never mapped with these facts before.
    """
    cache = cache or DirectiveCache()
    patient_id = patient.split("/", 1)[1]
    identified = store.consents_by_identifier(session, patient_id)
    versions = [
        *store.consent_versions(session, patient_id),
        *(
            (pk, ident, version, origin)
            for ident, (pk, version, origin, _) in sorted(identified.items())
        ),
    ]
    if not versions:
        return []
    own = store.own_side(session)
    local = store.local_authors(session, own)
    recorders = {ident: origin for _, ident, _, origin in versions}
    facts = consent_facts(session, patient, recorders, local)
    found: list[ConsentDirective | None] = []
    unknown: dict[int, tuple[_Key, str]] = {}
    for pk, ident, version, origin in versions:
        resolved = (patient, identified[ident][3]) if ident in identified else None
        standing = (origin in local, origin in own)
        key = (ident, version, (facts.fingerprint(ident), origin, standing, resolved))
        known, directive = cache.get(key)
        if known:
            found.append(directive)
        else:
            unknown[pk] = (key, origin)
    if unknown:
        for pk, content in store.contents(session, list(unknown)).items():
            key, origin = unknown[pk]
            consent = orjson.loads(content)
            by_identifier = identified.get(key[0])
            read_with = facts.for_consent(
                key[0],
                source_forms(session, consent),
                recorded_by_holder=held(local, own, consent, origin),
                patient=None if by_identifier is None else patient,
                patient_ambiguous=by_identifier is not None and by_identifier[3],
            )
            found.append(cache.put(key, consent, read_with))
    return related_reaches(session, [directive for directive in found if directive is not None])


def related_reaches(session: Session, directives: list[ConsentDirective]) -> list[ConsentDirective]:
    """The directives with what each `related` refusal's instance refers to (R4
    consent-data-meaning `related`: "the instance of the resource and instances it refers
    to"), read from every stored version of that instance: a refusal of a Task and what it
    refers to keeps reaching the ServiceRequest it was about after an update points it
    elsewhere. An instance not stored here refers to nothing here: the refusal reaches the
    instance alone.

    Read each time the directives are (never kept with a consent's version in the
    DirectiveCache). The gate keeps the result while no consent fact changes
    (interop.store.markers): a reference an instance gains after that is reached once the
    directives are read again. Only refusals read this (a permit's `related` reaches its
    instance alone, `consent.engine`), so what is kept can only refuse too much, never
    release what a patient refused at the time it was read."""
    wanted = sorted({ref for directive in directives for ref in related_instances(directive)})
    if not wanted:
        return directives
    reaches: dict[str, frozenset[str] | None] = {}
    for reference in wanted:
        kind, _, ident = reference.partition("/")
        versions = store.recorded_versions(session, kind, ident)
        if not versions:
            reaches[reference] = None
            continue
        found: set[str] = set()
        for _origin, content in versions:
            if content is not None:
                found |= references_in(orjson.loads(content))
        reaches[reference] = frozenset(found)
    return [with_related_reaches(directive, reaches) for directive in directives]


def consent_facts(
    session: Session,
    patient: str,
    recorders: Mapping[str, str | None],
    local: frozenset[str],
) -> PatientFacts:
    """The facts each of the given Consents (id -> who recorded it) is read with: the
    patient's name and birth date, the RelatedPersons' relationships, its Provenance
    signatures, and the approved forms.

    Each fact counts only as written by someone the consent may rely on: this service's own
    side (`local`), the consent's recorder, or whoever registered the patient here (for name,
    birth date and relationships). Otherwise any partner with write access could sign a
    consent into force, name itself guardian, or make an adult a minor (§2.14, §2.15)."""
    kind, _, ident = patient.partition("/")
    versions = store.recorded_versions(session, kind, ident) if kind == "Patient" else []
    creator = versions[-1][0] if versions else None
    related = store.recorded_referring(session, "RelatedPerson", "patient", "Patient", [ident])
    provenances = store.recorded_referring(
        session, "Provenance", "target", "Consent", list(recorders)
    )
    signed = [(orjson.loads(provenance), signed_by) for provenance, signed_by in provenances]
    relatives = [(orjson.loads(document), origin) for document, origin in related]
    people: dict[str, Person] = {}
    signatures: dict[str, tuple[ConsentSignature, ...]] = {}
    for consent, recorder in recorders.items():
        trusted = local | {origin for origin in (recorder, creator) if origin is not None}
        people[consent] = _person(versions, relatives, trusted)
        signers = local | ({recorder} if recorder is not None else set())
        found = tuple(
            signature
            for provenance, signed_by in signed
            if signed_by in signers
            for signature in signatures_of(provenance, f"Consent/{consent}")
        )
        if found:
            signatures[f"Consent/{consent}"] = found
    return PatientFacts(
        people=people,
        signatures=signatures,
        forms=approved_forms(session),
        sources=markers.gate_markers(session).sources,
    )


def _person(
    versions: Sequence[tuple[str, bytes | None]],
    related: Sequence[tuple[dict[str, Any], str]],
    trusted: Set[str],
) -> Person:
    """The patient as the latest version a trusted writer recorded (nobody once deleted), with
    the relationships of the RelatedPersons whose current version a trusted writer recorded."""
    deleted = bool(versions) and versions[0][1] is None
    content = next((c for origin, c in versions if origin in trusted and c is not None), None)
    person: dict[str, Any] = orjson.loads(content) if content is not None and not deleted else {}
    relationships: dict[str, tuple[Coding, ...]] = {}
    for resource, origin in related:
        if origin in trusted:
            relationships[f"RelatedPerson/{resource.get('id')}"] = _codings(
                resource.get("relationship")
            )
    deceased_at = person.get("deceasedDateTime")
    return Person(
        person_name(person),
        _date(person.get("birthDate")),
        relationships,
        deceased=person.get("deceasedBoolean") is True or isinstance(deceased_at, str),
        deceased_at=_moment(deceased_at),
    )


def source_forms(session: Session, consent: Mapping[str, Any]) -> tuple[str, ...]:
    """The form keys of the QuestionnaireResponse a Consent's `sourceReference` points at:
    the Questionnaire's canonical `url|version` it was filled on (PART2.md C9)."""
    reference = source_reference(consent)
    kind, _, ident = (reference or "").partition("/")
    if kind != "QuestionnaireResponse" or not ident or "/" in ident:
        return ()
    content = store.current(session, kind, ident)
    return source_form_keys(orjson.loads(content)) if content is not None else ()


def approved_forms(session: Session) -> dict[str, frozenset[str]]:
    """Each approved form's key and the statements it contains (PART2.md C9)."""
    return {row.form: form_statements(row) for row in store.approved_forms(session)}


def form_statements(row: ConsentFormRow) -> frozenset[str]:
    return frozenset(row.statements.split())


def held(
    local: frozenset[str], own: frozenset[str], consent: Mapping[str, Any], origin: str
) -> bool:
    """Whether a consent version recorded by `origin` is its holder's record (PART2.md C5):
    recorded by the operator or the program's own systems (`own`); by a program whose staff
    work here (the rest of `local`) that it names among the programs that disclose; or by the
    one program it names as disclosing. A case manager of one program cannot write a permit
    for another program's records alone."""
    if origin in own:
        return True
    disclosers = _disclosers(consent)
    if origin in local:
        return origin in disclosers
    return disclosers == frozenset({origin})


def consent_warnings(
    session: Session | None,
    resource: Mapping[str, Any],
    now: datetime,
    origin: str | None = None,
    *,
    patient_withheld: bool = False,
) -> tuple[Issue, ...]:
    """Why a Consent cannot be relied on now, read with what the store knows around it, as
    OperationOutcome warnings naming each element and where a partner puts it; with the
    `origin` that records it, whether its recorder holds it (C5) too. A Patient withheld from
    whoever asks is read as one not stored here (ARCHITECTURE.md rule 4)."""
    facts = ConsentFacts()
    patient = resource.get("patient")
    reference = patient.get("reference") if isinstance(patient, Mapping) else None
    identified = None
    if session is not None and reference is None and isinstance(patient, Mapping):
        identified = _held_by_identifier(session, patient.get("identifier"), origin)
        reference = identified
    if session is not None and isinstance(reference, str) and reference.startswith("Patient/"):
        ident = str(resource.get("id") or "")
        own = store.own_side(session)
        local = store.local_authors(session, own)
        holder = origin is None or held(local, own, resource, origin)
        recorders = {ident: origin}
        around = consent_facts(session, reference, recorders, local)
        if patient_withheld:
            around = replace(around, people={})  # the person as of a patient not stored here
        facts = around.for_consent(
            ident, source_forms(session, resource), recorded_by_holder=holder, patient=identified
        )
    directive = directive_from_fhir(resource, facts=facts)
    problems = directive_problems_as_issues(directive, now, hints=ELEMENT_HINTS)
    return (*problems, *provision_reading_notes(resource))


def _held_by_identifier(session: Session, identifier: Any, origin: str | None) -> str | None:
    """The one stored Patient the recorder's side holds carrying a logical reference's
    identifier, as the gate reads such a consent (interop.store.consents)."""
    if not isinstance(identifier, Mapping) or origin is None:
        return None
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str):
        return None
    held = store.held_carriers(session, system, value, origin)
    return f"Patient/{held[0]}" if len(held) == 1 else None


def person_name(resource: Mapping[str, Any]) -> str | None:
    """A person's name as written: the first HumanName's text, or its given and family parts."""
    for name in resource.get("name") or ():
        if not isinstance(name, Mapping):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return str(name["text"]).strip()
        parts = [p for p in name.get("given") or () if isinstance(p, str)]
        if isinstance(name.get("family"), str):
            parts.append(name["family"])
        if parts:
            return " ".join(parts)
    return None


def _codings(concepts: Any) -> tuple[Coding, ...]:
    return tuple(
        Coding(canonical_system(coding.get("system")), coding["code"])
        for concept in concepts or ()
        if isinstance(concept, Mapping)
        for coding in concept.get("coding") or ()
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str)
    )


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _directive(consent: dict[str, Any], facts: ConsentFacts) -> ConsentDirective | None:
    try:
        return directive_from_fhir(consent, facts=facts)
    except FhirContentError:
        return None


def _moment(value: Any) -> datetime | None:
    """The first instant a FHIR date or dateTime names, None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_range(value)[0]
    except ValueError:
        return None


def _disclosers(consent: Mapping[str, Any]) -> frozenset[str | None]:
    """The Organizations a Consent names as the programs that disclose (Consent.organization),
    None for one named only by identifier or display. An outside program holds a consent when
    it names itself alone: naming itself beside another program, or beside a class of
    programs, would let it write a permit for the other's records."""
    return frozenset(
        party.get("reference") if isinstance(party, dict) else None
        for party in consent.get("organization", [])
    )
