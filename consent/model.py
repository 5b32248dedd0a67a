"""The engine's values: consent directives, disclosure requests, decisions and validity findings.

All are frozen slotted dataclasses: they are built once (by `mappings.consent` from a FHIR
Consent, or by the disclosure gate for each outgoing item) and read many times by `decide`,
which must answer tens of thousands of requests a second, so nothing here validates on
construction. The mapping is where input is checked. `Provision` derives, once, the lookup sets
the engine matches against (`ProvisionIndex`); they never take part in equality.

Times are timezone-aware datetimes. A FHIR Period's end that was given as a date stands for the
last instant of that day (`mappings.consent` does the widening), so `Period.contains` is a plain
inclusive comparison.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum

from consent import vocabulary as v


class ConsentStatus(StrEnum):
    """FHIR R4 consent-state-codes; only `active` can be relied on (§2.31(c))."""

    DRAFT = "draft"
    PROPOSED = "proposed"
    ACTIVE = "active"
    REJECTED = "rejected"
    INACTIVE = "inactive"
    ENTERED_IN_ERROR = "entered-in-error"


class ConsentKind(StrEnum):
    """Which §2.31 consent this is: each kind has its own required elements and reach.

    GENERAL: named recipients and purposes (§2.31(a)). TPO: one consent for all future
    treatment, payment and health care operations (§2.31(a)(4)(i), (a)(5), (a)(10); §2.33(b)).
    COUNSELING_NOTES: SUD counseling notes only (§2.31(b)). LEGAL_PROCEEDINGS: use in
    proceedings against the patient only (§2.31(d)).
    """

    GENERAL = "general"
    TPO = "tpo"
    COUNSELING_NOTES = "counseling-notes"
    LEGAL_PROCEEDINGS = "legal-proceedings"


class ProvisionType(StrEnum):
    """FHIR R4 consent-provision-type."""

    PERMIT = "permit"
    DENY = "deny"


class PatientCapacity(StrEnum):
    """Who may sign for the patient (§2.14 minors, §2.15 incompetent and deceased patients)."""

    ADULT = "adult"
    MINOR_SELF_CONSENT = "minor-self-consent"
    MINOR_PARENTAL_CONSENT = "minor-parental-consent"
    LACKS_CAPACITY = "lacks-capacity"
    DECEASED = "deceased"


class SignerRole(StrEnum):
    """Whether the signer is the patient or someone signing on the patient's behalf."""

    PATIENT = "patient"
    REPRESENTATIVE = "representative"


class DataMeaning(StrEnum):
    """FHIR R4 consent-data-meaning: how a provision's data reference reaches other records."""

    INSTANCE = "instance"
    RELATED = "related"
    DEPENDENTS = "dependents"
    AUTHOREDBY = "authoredby"


class Outcome(StrEnum):
    """The decision: disclose or not."""

    PERMIT = "permit"
    DENY = "deny"


class NonConsentBasis(StrEnum):
    """Part 2 disclosures without consent that this service does not perform (PART2.md E2)."""

    AUDIT_EVALUATION = "audit-evaluation"
    RESEARCH = "research"
    QSOA = "qsoa"


class ConsentElement(StrEnum):
    """The parts of a consent a validity problem can name; `mappings.consent` maps each to
    the FHIR element that carries it."""

    PATIENT_NAME = "patient-name"
    DISCLOSERS = "disclosers"
    INFORMATION = "information"
    RECIPIENTS = "recipients"
    PURPOSES = "purposes"
    REVOCATION_STATEMENT = "revocation-statement"
    EXPIRATION = "expiration"
    TERM_START = "term-start"
    """Not a §2.31 element: when a consent takes effect, which a problem may name (C5)."""
    SIGNATURE = "signature"
    DATE_SIGNED = "date-signed"
    REDISCLOSURE_STATEMENT = "redisclosure-statement"
    REFUSAL_STATEMENT = "refusal-consequences-statement"
    STATUS = "status"
    PROVISIONS = "provisions"
    TRUTHFULNESS = "truthfulness"
    SCOPE = "scope"


@dataclass(frozen=True, slots=True)
class Coding:
    """A code and its system (None when the source gave no system)."""

    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class Identifier:
    """A business identifier: system and value, the system in its FHIR spelling whatever the
    writer used (the NPI's OID is the NPI), since a refusal naming a recipient by either must
    reach it (C8) and identifiers are compared by equality everywhere."""

    system: str | None
    value: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "system", v.canonical_identifier_system(self.system))


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive time range; a missing bound is open."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        """Whether the moment falls inside the range."""
        return (self.start is None or self.start <= moment) and (
            self.end is None or moment <= self.end
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """A party named by a consent: a recipient, a disclosing program, or another role.

    An actor with only a display is a general designation ("my treating providers"), which
    §2.31(a)(4)(i) (2024) allows for recipients of any consent as a "class of persons".
    `intermediary` marks a recipient the consent names as an intermediary (§2.11: an HIE or
    similar that passes records on to its member participants), for which §2.31(a)(4)(ii)
    asks the consent to name the member participants too, or designate them generally.
    """

    role: Coding | None
    reference: str | None = None
    identifiers: tuple[Identifier, ...] = ()
    display: str | None = None
    intermediary: bool = False

    @property
    def is_general_designation(self) -> bool:
        """Named by description only, with no reference or identifier to match."""
        return self.reference is None and not self.identifiers and bool(self.display)


@dataclass(frozen=True, slots=True)
class Party:
    """An organization or person named by reference, identifiers, or both."""

    reference: str | None
    identifiers: tuple[Identifier, ...] = ()


@dataclass(frozen=True, slots=True)
class DataReference:
    """A provision's `data`: a specific record (by literal reference, identifier, or both) and
    how far the rule reaches from it (R4 consent-data-meaning).

    `reaches` are the records the data's instance itself refers to (`Type/id`), which a
    `related` refusal reaches too ("the instance of the resource and instances it refers
    to"). The engine cannot read them (it sees one record at a time): whoever reads the
    directive from the store resolves them (`interop.services.directives`); None when they
    were not resolved, or the instance could not be read, and then a refusal reaches the
    instance alone (`consent.engine` explains why that is safe)."""

    meaning: DataMeaning
    reference: str | None
    identifiers: tuple[Identifier, ...] = ()
    reaches: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ActorGroup:
    """The references, identifiers and general designations of one group of actors."""

    references: frozenset[str]
    identifiers: frozenset[Identifier]
    general: bool
    intermediaries: "ActorGroup | None" = None

    @classmethod
    def of(cls, actors: tuple[Actor, ...]) -> "ActorGroup | None":
        """The group of these actors, or None when there are none (no constraint).

        Intermediaries (§2.31(a)(4)(ii)) are kept apart: the others are their member
        participants, named or designated.
        """
        if not actors:
            return None
        named = tuple(a for a in actors if not a.intermediary)
        intermediaries = tuple(a for a in actors if a.intermediary)
        return cls(
            references=frozenset(a.reference for a in named if a.reference is not None),
            identifiers=frozenset(i for a in named for i in a.identifiers),
            general=any(a.is_general_designation for a in named),
            intermediaries=cls(
                references=frozenset(a.reference for a in intermediaries if a.reference),
                identifiers=frozenset(i for a in intermediaries for i in a.identifiers),
                general=False,
            )
            if intermediaries
            else None,
        )

    def names(self, reference: str | None, identifiers: tuple[Identifier, ...]) -> bool:
        """Whether a party with this reference or one of these identifiers is in the group."""
        if reference is not None and reference in self.references:
            return True
        return bool(identifiers) and not self.identifiers.isdisjoint(identifiers)


def _label_keys(labels: tuple[Coding, ...]) -> tuple[frozenset[tuple[str | None, str]], int]:
    """The item labels a provision's labels cover, and its confidentiality high-water mark."""
    keys: set[tuple[str | None, str]] = set()
    confidentiality = -1
    for label in labels:
        if label.system == v.CONFIDENTIALITY and label.code in v.CONFIDENTIALITY_RANK:
            confidentiality = max(confidentiality, v.CONFIDENTIALITY_RANK[label.code])
        elif label.system == v.ACT_CODE and label.code in v.SENSITIVITY_COVERS:
            keys.update((v.ACT_CODE, code) for code in v.SENSITIVITY_COVERS[label.code])
        elif label.system == v.ACT_CODE and label.code == v.NO_REDISCLOSURE_RETIRED:
            keys.add((v.ACT_CODE, v.NO_REDISCLOSURE))
        else:
            keys.add((label.system, label.code))
    return frozenset(keys), confidentiality


def _coded(codings: tuple[Coding, ...]) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """Codings with a system as (system, code) keys; those without as bare codes."""
    keyed = frozenset((c.system, c.code) for c in codings if c.system is not None)
    bare = frozenset(c.code for c in codings if c.system is None)
    return keyed, bare


@dataclass(frozen=True, slots=True)
class ProvisionIndex:
    """What a provision matches on, as sets, derived once so that matching is set lookups."""

    purposes: frozenset[str]
    foreign_purposes: bool
    actions: frozenset[str]
    refuses_disclosure: bool
    labels: frozenset[tuple[str | None, str]]
    confidentiality: int
    classes: frozenset[tuple[str, str]]
    class_systems: frozenset[str]
    bare_classes: frozenset[str]
    codes: frozenset[tuple[str, str]]
    bare_codes: frozenset[str]
    recipients: ActorGroup | None
    sources: ActorGroup | None
    others: ActorGroup | None

    @classmethod
    def of(cls, provision: "Provision") -> "ProvisionIndex":
        """Index a provision's criteria."""
        labels, confidentiality = _label_keys(provision.security_labels)
        classes, bare_classes = _coded(provision.classes)
        codes, bare_codes = _coded(provision.codes)

        def role(actor: Actor) -> str | None:
            return None if actor.role is None else actor.role.code

        actors = provision.actors
        understood = (v.ACT_REASON, None)
        actions = frozenset(a.code for a in provision.actions)
        return cls(
            purposes=frozenset(p.code for p in provision.purposes if p.system in understood),
            foreign_purposes=any(p.system not in understood for p in provision.purposes),
            actions=actions,
            refuses_disclosure=bool(actions - {v.COLLECT}),
            labels=labels,
            confidentiality=confidentiality,
            classes=classes,
            class_systems=frozenset(system for system, _ in classes),
            bare_classes=bare_classes,
            codes=codes,
            bare_codes=bare_codes,
            recipients=ActorGroup.of(tuple(a for a in actors if role(a) in v.RECIPIENT_ROLES)),
            sources=ActorGroup.of(tuple(a for a in actors if role(a) in v.SOURCE_ROLES)),
            others=ActorGroup.of(
                tuple(
                    a
                    for a in actors
                    if role(a) not in v.RECIPIENT_ROLES and role(a) not in v.SOURCE_ROLES
                )
            ),
        )


@dataclass(frozen=True, slots=True)
class Provision:
    """One rule of a consent (FHIR R4 Consent.provision), with its nested exceptions.

    Every criterion that is given must match for the rule to apply; an untyped provision takes
    its type from the nearest typed ancestor (a value built in code; `mappings.consent` reads
    every untyped FHIR provision as a deny, PART2.md C8).
    """

    type: ProvisionType | None = None
    period: Period | None = None
    actors: tuple[Actor, ...] = ()
    actions: tuple[Coding, ...] = ()
    purposes: tuple[Coding, ...] = ()
    classes: tuple[Coding, ...] = ()
    codes: tuple[Coding, ...] = ()
    security_labels: tuple[Coding, ...] = ()
    data_period: Period | None = None
    data: tuple[DataReference, ...] = ()
    provisions: tuple["Provision", ...] = ()
    index: ProvisionIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The index is derived data of a frozen value, so setting it once here is safe.
        object.__setattr__(self, "index", ProvisionIndex.of(self))

    @property
    def has_content_criteria(self) -> bool:
        """Whether this rule says which information it covers (§2.31(a)(3))."""
        return bool(self.security_labels or self.classes or self.codes or self.data)


def permit_chains(root: Provision | None) -> Iterator[tuple[Provision, ...]]:
    """Every provision typed `permit`, as the chain from the root down to it.

    A permit applies only where all of its ancestors' criteria match too, so what it releases,
    to whom, why and until when is read off the whole chain.
    """
    if root is None:
        return
    stack: list[tuple[Provision, tuple[Provision, ...]]] = [(root, (root,))]
    while stack:
        provision, chain = stack.pop()
        if provision.type is ProvisionType.PERMIT:
            yield chain
        stack.extend((child, (*chain, child)) for child in reversed(provision.provisions))


def chain_end(chain: tuple[Provision, ...]) -> datetime | None:
    """When a permit lapses: the earliest `period.end` along its chain, root and nested."""
    ends = [p.period.end for p in chain if p.period is not None and p.period.end is not None]
    return min(ends) if ends else None


def provisions_in(root: Provision | None) -> Iterator[Provision]:
    """The root and every provision nested beneath it, at any depth."""
    stack = [] if root is None else [root]
    while stack:
        provision = stack.pop()
        yield provision
        stack.extend(provision.provisions)


def _names_intermediary(root: Provision | None) -> bool:
    """Whether any provision names an intermediary among its actors (§2.31(a)(4)(ii))."""
    return any(actor.intermediary for p in provisions_in(root) for actor in p.actors)


def _asks_dependents(root: Provision | None) -> bool:
    """Whether any provision's data reaches the records that refer to its instance
    (`dependents`): only then must a decision be told what a record refers to."""
    return any(
        datum.meaning is DataMeaning.DEPENDENTS for p in provisions_in(root) for datum in p.data
    )


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed the consent (FHIR Consent.performer) and in what capacity."""

    role: SignerRole
    reference: str | None = None
    relationship: Coding | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentDirective:
    """A patient's Part 2 consent (or restriction) as the engine reads it.

    `has_signed_form` says whether the signed form itself is on file (FHIR sourceAttachment
    with its bytes, URL or hash, or sourceReference: a title alone is no form, §2.31(a)(8));
    the `has_*_statement` flags say which §2.31 statements that form holds, as compliance
    staff approved it (`form_approved`).
    `materially_false` records that the program knows, or should know, the consent to be false
    (§2.31(c)(4)). The expiration is the earliest period end along each permit's provision
    chain (PART2.md's table, row (g)), an event (`expiration_event`, e.g. "end-of-treatment",
    or "none" for a TPO consent), or both.

    `signature_on_file` says a signature is recorded for the consent apart from the form (an
    R4 `Provenance.signature` whose target is the Consent). `form_approved` says compliance
    staff approved the form the consent was signed on (PART2.md C9), so that the statement
    flags are theirs: a statement counts only then, since what a consent claims of itself is
    no approval (`consent.rules` reads the flags through `form_states`). `form` names that form
    as the consent does (`policy.uri`) and `signed_form` where the signed copy is kept
    (`sourceAttachment.url`, or the `sourceReference`): the engine reads neither; they are how
    a directive written through the case API (`mappings.consent.directive_to_fhir`) names its
    form and copy.

    `recorded_by_holder` is False when the consent was recorded by someone who does not hold
    it: neither the program's own side nor a program it names as disclosing, e.g. a recipient
    writing itself a permit. Such a consent is never relied on to disclose (C5); its refusals
    still count (C8).

    `opt_out` says the consent's base policy is the patient's refusal (R4 `policyRule` v3-ActCode
    OPTOUT or OPTOUTE): its root deny then refuses whatever its permits do not except, even
    where another consent would permit (C8), instead of being an opt-in consent's silent base.
    `scope` is the consent's R4 `scope` coding (a modifier element): only a patient-privacy
    consent (or one that gives no scope) is a consent to disclose. `patient_ambiguous` says
    `Consent.patient` names the patient by an identifier that more than one stored Patient
    carries, so whose consent it is cannot be told: its refusals count for each of them (C8),
    it is never relied on to disclose.
    """

    id: str | None
    status: ConsentStatus
    patient: str | None
    patient_name: str | None = None
    disclosers: tuple[Actor, ...] = ()
    kind: ConsentKind = ConsentKind.GENERAL
    signed_at: datetime | None = None
    signers: tuple[Signer, ...] = ()
    patient_capacity: PatientCapacity = PatientCapacity.ADULT
    expiration_event: str | None = None
    has_signed_form: bool = False
    has_revocation_statement: bool = False
    has_redisclosure_statement: bool = False
    has_refusal_consequences_statement: bool = False
    materially_false: bool = False
    signature_on_file: bool = False
    form_approved: bool = False
    form: str | None = None
    signed_form: str | None = None
    recorded_by_holder: bool = True
    opt_out: bool = False
    scope: Coding | None = None
    patient_ambiguous: bool = False
    provision: Provision | None = None
    discloser_group: ActorGroup | None = field(init=False, repr=False, compare=False)
    permits: bool = field(init=False, repr=False, compare=False)
    names_intermediary: bool = field(init=False, repr=False, compare=False)
    asks_dependents: bool = field(init=False, repr=False, compare=False)
    expires_at: datetime | None = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "discloser_group", ActorGroup.of(self.disclosers))
        # Derived once: the engine asks on every decision whether the consent permits anything
        # (a root deny over denies only is a blanket refusal) and when it lapses.
        ends = [chain_end(chain) for chain in permit_chains(self.provision)]
        root_term = None if self.provision is None else self.provision.period
        known = [end for end in ends if end is not None]
        expires: datetime | None = None
        if ends and len(known) == len(ends):
            expires = max(known)
        elif root_term is not None:
            expires = root_term.end
        object.__setattr__(self, "permits", bool(ends))
        object.__setattr__(self, "names_intermediary", _names_intermediary(self.provision))
        object.__setattr__(self, "asks_dependents", _asks_dependents(self.provision))
        object.__setattr__(self, "expires_at", expires)
        # Hashed once: `consent.validity` memoizes what does not depend on time per directive,
        # and a directive's tree is too deep to rehash on every decision.
        values = tuple(getattr(self, f.name) for f in fields(self) if f.compare)
        object.__setattr__(self, "_hash", hash(values))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a consent cannot be relied on: the PART2.md rule, the element at fault, and text."""

    rule: str
    element: ConsentElement
    text: str


@dataclass(frozen=True, slots=True)
class Validity:
    """The outcome of checking a consent against §2.31: valid, or the problems found."""

    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        """No problem was found."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks for the data (the recipient of the disclosure) and what kind of party it is.

    `is_covered_entity` covers HIPAA covered entities and business associates alike, the
    recipients that may redisclose under a TPO consent (§2.33(b)).
    """

    reference: str | None
    identifiers: tuple[Identifier, ...] = ()
    display: str | None = None
    is_covered_entity: bool = False
    is_part2_program: bool = False
    is_medical_personnel: bool = False


@dataclass(frozen=True, slots=True)
class DataItem:
    """The record asked for, described by what the consent rules match on.

    `is_part2` is set by the caller from the record's source program or labels (PART2.md P1);
    the engine also treats SUD-labelled records and counseling notes as Part 2 data.
    `source_program` is the Part 2 program that created or holds the record (author or
    custodian); `authors` (of any type: Organization, Practitioner, PractitionerRole, Device,
    RelatedPerson...) with `author_identifiers`, and `related`, are the references the record
    makes, for provisions whose `data` reaches records authored by (`authoredby`), or that
    refer to (`dependents`), a record. `related` is None when the caller did not say which
    records this one refers to: a `dependents` refusal then reaches it, a permit does not
    (PART2.md C8), so missing facts never widen a disclosure; () says it refers to none.
    """

    resource_type: str
    reference: str | None = None
    security_labels: tuple[Coding, ...] = ()
    classes: tuple[Coding, ...] = ()
    codes: tuple[Coding, ...] = ()
    date: datetime | None = None
    source_program: str | None = None
    source_identifiers: tuple[Identifier, ...] = ()
    authors: tuple[str, ...] = ()
    author_identifiers: tuple[Identifier, ...] = ()
    related: tuple[str, ...] | None = None
    is_part2: bool = False
    is_counseling_note: bool = False


@dataclass(frozen=True, slots=True)
class EmergencyFacts:
    """What §2.51(c) requires the program to document at once for an emergency disclosure."""

    personnel_name: str | None = None
    personnel_affiliation: str | None = None
    nature_of_emergency: str | None = None
    disclosed_by: str | None = None


@dataclass(frozen=True, slots=True)
class DisclosureRequest:
    """One record asked for by one requester, for the given purposes (v3-ActReason codes).

    `occurred_events` are the consent expiration events known to have happened for this
    patient (e.g. "end-of-treatment" once discharged). `non_consent_basis` is set when the
    caller claims a Part 2 exception other than a medical emergency.

    `intermediary` is the intermediary the disclosure passes through (this service, when it
    acts as one), None for a direct disclosure; `treating_relationship` says the requester has
    a treating provider relationship with the patient (§2.11), the only members a general
    designation of an intermediary's participants reaches (§2.31(a)(4)(ii)(B)).
    """

    patient: str
    requester: Requester
    purposes: tuple[str, ...]
    item: DataItem
    action: str = v.DISCLOSE
    emergency: EmergencyFacts | None = None
    non_consent_basis: NonConsentBasis | None = None
    occurred_events: frozenset[str] = frozenset()
    intermediary: Party | None = None
    treating_relationship: bool = False


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of the decision: the PART2.md rule that applied and what it found."""

    rule: str
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """What travels with a disclosure made with consent (§2.32): the statement, in full and in
    its short form, and a copy of the consent or a clear explanation of its scope."""

    statement: str
    short_statement: str
    consent_reference: str | None
    scope: str


@dataclass(frozen=True, slots=True)
class Obligations:
    """What the gate must do with a permitted record, and what it releases.

    `labels` go into meta.security (S2); `released` names the data classes disclosed (S3);
    `compliance_review` marks an emergency disclosure for compliance staff (E1).
    """

    labels: tuple[Coding, ...] = ()
    notice: Notice | None = None
    released: tuple[str, ...] = ()
    redisclosure_permitted: bool = False
    compliance_review: bool = False


@dataclass(frozen=True, slots=True)
class AccountingEntry:
    """The record of one decision for compliance staff and the patient (§2.24, §2.25)."""

    at: datetime
    patient: str
    requester: Requester
    purposes: tuple[str, ...]
    action: str
    resource_type: str
    resource_reference: str | None
    outcome: Outcome
    rule: str
    consent_id: str | None
    provision_path: str | None
    released: tuple[str, ...]
    emergency: EmergencyFacts | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one request, with the reasons, obligations and accounting."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    consent_id: str | None
    provision_path: str | None
    obligations: Obligations
    accounting: AccountingEntry
    emergency: bool = False

    @property
    def permitted(self) -> bool:
        """Whether the record may be disclosed."""
        return self.outcome is Outcome.PERMIT

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules cited by the reasons, in order."""
        return tuple(reason.rule for reason in self.reasons)
