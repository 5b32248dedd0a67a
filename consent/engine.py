"""The Part 2 decision: may this record go to this requester, for these purposes, now?

    decide(request, directives, as_of)
    ├── P1  not Part 2 data .................................. permit, accounted, no labels
    ├── S4  no purpose ....................................... deny
    ├── E2  research, audit, QSOA ............................ deny (out of scope)
    ├── per purpose, over the patient's consents (deny-overrides across consents):
    │     each consent: the provisions that apply, most specific first; a deny of any
    │     active consent counts (C8); a permit only on a valid consent (C1-C7, C9); C3
    │     counseling notes and C4 legal proceedings only on their own kind of consent;
    │     to a covered entity for TPO only on a form stating HIPAA redisclosure (C1(d))
    ├── every purpose permitted ..................... permit (C1-C4), S1 notice, S2 labels
    ├── E1  emergency purpose, medical personnel, §2.51 facts ... permit, flagged for review
    ├── C8  a consent refuses ................................ deny
    └── P2  otherwise ........................................ deny

How a consent's provision tree applies (FHIR R4 Consent.provision): a provision applies when
every criterion it states matches (period, actor, action, purpose through the v3-ActReason
hierarchy, class, code, securityLabel, dataPeriod, data) and its parent applies. Within one
consent the most specific applicable provisions decide: those with no applicable typed
provision beneath them; if any of them denies, the consent denies (so a deny nested in a
permit wins for what it covers). A root deny with provisions beneath it is an opt-in
consent's base policy ("nothing but what is permitted below"): towards a request that none
of its permits covers it is silent, so one recipient's consent never blocks another's; the
root deny of an opt-out consent (policyRule OPTOUT) is the patient's refusal and is not silent.
An untyped provision takes its parent's type
(`mappings.consent` never produces one: it reads every untyped FHIR provision as a deny).
Where the request does not say what a criterion needs (a record with no date against a
dataPeriod, no source program against the disclosing actors, no references against a
`dependents` data item), the criterion holds for a deny and fails for a permit, so missing
facts never widen a disclosure. How far `data` reaches: `_datum_matches`.

Decisions are values: a deny is returned, never raised. `ValueError` means the request cannot
be evaluated (a naive `as_of` or record date).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from consent import rules, validity
from consent import vocabulary as v
from consent.model import (
    ActorGroup,
    ConsentDirective,
    DataMeaning,
    DataReference,
    Decision,
    DisclosureRequest,
    Identifier,
    NonConsentBasis,
    Obligations,
    Outcome,
    Provision,
    ProvisionIndex,
    ProvisionType,
    Reason,
)


@dataclass(frozen=True, slots=True)
class _Facts:
    """The request, flattened once into the sets provisions are matched against."""

    as_of: datetime
    action: str
    requester: str | None
    requester_ids: tuple[Identifier, ...]
    designated: bool
    labels: frozenset[tuple[str | None, str]]
    confidentiality: int
    classes: frozenset[tuple[str | None, str]]
    class_systems: frozenset[str | None]
    class_codes: frozenset[str]
    codes: frozenset[tuple[str | None, str]]
    code_codes: frozenset[str]
    date: datetime | None
    reference: str | None
    refers_to: frozenset[str] | None
    authors: frozenset[str]
    author_ids: frozenset[Identifier]
    source: str | None
    source_ids: tuple[Identifier, ...]
    source_known: bool
    counseling: bool
    via: str | None
    via_ids: tuple[Identifier, ...]
    through_intermediary: bool
    treating: bool

    @classmethod
    def of(cls, request: DisclosureRequest, as_of: datetime) -> "_Facts":
        item = request.item
        labels = {
            (
                v.canonical_system(lb.system),
                v.NO_REDISCLOSURE if lb.code == v.NO_REDISCLOSURE_RETIRED else lb.code,
            )
            for lb in item.security_labels
        }
        counseling = item.is_counseling_note or (v.ACT_CODE, v.COUNSELING_NOTE) in labels
        # Part 2 data is SUD information under 42 CFR Part 2 (P1) even when unlabelled.
        if not any((v.ACT_CODE, code) in labels for code in v.SUD_SENSITIVITY):
            labels.add((v.ACT_CODE, v.SUD))
        labels.add((v.ACT_CODE, v.LAW_42CFR_PART2))
        if counseling:
            labels.add((v.ACT_CODE, v.COUNSELING_NOTE))
        ranks = [
            v.CONFIDENTIALITY_RANK[lb.code]
            for lb in item.security_labels
            if v.canonical_system(lb.system) == v.CONFIDENTIALITY
            and lb.code in v.CONFIDENTIALITY_RANK
        ]
        classes = {(c.system, c.code) for c in item.classes}
        classes.add((v.RESOURCE_TYPES, item.resource_type))
        authors = set(item.authors)
        if item.source_program is not None:
            authors.add(item.source_program)
        requester = request.requester
        via = request.intermediary
        return cls(
            as_of=as_of,
            action=request.action,
            requester=requester.reference,
            requester_ids=requester.identifiers,
            designated=requester.is_covered_entity or requester.is_part2_program,
            labels=frozenset(labels),
            confidentiality=max(ranks, default=v.CONFIDENTIALITY_RANK[v.RESTRICTED]),
            classes=frozenset(classes),
            class_systems=frozenset(system for system, _ in classes),
            class_codes=frozenset(code for _, code in classes),
            codes=frozenset((v.canonical_system(c.system), c.code) for c in item.codes),
            code_codes=frozenset(c.code for c in item.codes),
            date=item.date,
            reference=item.reference,
            refers_to=None if item.related is None else frozenset(item.related),
            authors=frozenset(authors),
            author_ids=frozenset((*item.author_identifiers, *item.source_identifiers)),
            source=item.source_program,
            source_ids=item.source_identifiers,
            source_known=item.source_program is not None or bool(item.source_identifiers),
            counseling=counseling,
            via=None if via is None else via.reference,
            via_ids=() if via is None else via.identifiers,
            through_intermediary=via is not None,
            treating=request.treating_relationship,
        )


@dataclass(frozen=True, slots=True)
class _Hit:
    """A consent provision that decided one purpose, by its child indices from the root."""

    directive: ConsentDirective
    root: Provision
    indices: tuple[int, ...]

    @property
    def path(self) -> str:
        """The provision as a FHIRPath-like location: provision.provision[1]..."""
        return "provision" + "".join(f".provision[{number}]" for number in self.indices)

    @property
    def sort_key(self) -> tuple[str, tuple[int, ...]]:
        return (self.directive.id or "", self.indices)


def decide(
    request: DisclosureRequest, directives: Iterable[ConsentDirective], as_of: datetime
) -> Decision:
    """Decide one disclosure of one record, on the patient's consents, at `as_of`."""
    if as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    if request.item.date is not None and request.item.date.utcoffset() is None:
        raise ValueError("the record's date must be timezone-aware")
    item = request.item
    if not rules.is_part2_data(item):
        return _ordinary(request, as_of)
    refusal = _refused_purposes(request.purposes, request.non_consent_basis)
    if refusal is not None:
        return _deny(request, as_of, refusal, [])
    facts = _Facts.of(request, as_of)
    candidates: list[tuple[ConsentDirective, Provision, bool | None]] = []
    for directive in directives:
        if directive.patient != request.patient or directive.provision is None:
            continue
        # A consent that does not name the record's program as disclosing still refuses
        # (C8): Consent.organization is the consent's custodian in R4, and a patient who
        # refused a recipient refused it whoever would disclose. Only its permits stay away.
        source = _discloser_matches(directive.discloser_group, facts)
        candidates.append((directive, directive.provision, source))
    notes = _Notes()
    permits: list[_Hit] = []
    for purpose in request.purposes:
        deny, permit = _by_consents(request, facts, purpose, candidates, notes)
        if deny is not None:
            reason = rules.refusal(deny.directive, deny.path)
            return _without_consent(request, facts, as_of, reason, notes, deny)
        if permit is None:
            return _without_consent(request, facts, as_of, rules.default_deny(), notes)
        permits.append(permit)
    return _permit(request, as_of, permits)


def refusal_of_any_part2_record(
    patient: str, purposes: tuple[str, ...], directives: Iterable[ConsentDirective]
) -> Reason | None:
    """Why `decide` denies every Part 2 record of `patient` asked for with `purposes` (no
    exception claimed), whatever the record holds: no purpose or one out of scope, or no
    consent on file for the patient and no emergency purpose to answer (P2). None when what
    a record holds could change the answer.

    A search counting thousands of a patient's records asks this once instead of deciding
    each: the record's codes, dates and labels are then never read."""
    return part2_refusal(purposes).of(patient, directives)


@dataclass(frozen=True, slots=True)
class Part2Refusal:
    """What `refusal_of_any_part2_record` reads of the request alone, worked out once, so
    that a search setting aside thousands of patients' records asks only `of` for each."""

    by_request: Reason | None
    """S4, E2: every Part 2 record is refused, whatever the consents."""
    without_directive: Reason | None
    """P2 for a patient with no directive on file (None: only emergency purposes asked)."""

    def of(self, patient: str, directives: Iterable[ConsentDirective]) -> Reason | None:
        """The refusal of every Part 2 record of `patient`, or None when a record could be
        released."""
        if self.by_request is not None:
            return self.by_request
        if any(d.patient == patient and d.provision is not None for d in directives):
            return None
        return self.without_directive


def part2_refusal(purposes: tuple[str, ...]) -> Part2Refusal:
    """The refusals of Part 2 records a request's purposes settle before any record is read."""
    emergency_only = all(rules.is_emergency_purpose(purpose) for purpose in purposes)
    return Part2Refusal(
        by_request=_refused_purposes(purposes, None),
        without_directive=None if emergency_only else rules.default_deny(),
    )


def _refused_purposes(
    purposes: tuple[str, ...], non_consent_basis: NonConsentBasis | None
) -> Reason | None:
    """S4, then E2: refusals decided by the request alone, before any consent is read."""
    return rules.missing_purpose(purposes) or rules.out_of_scope(purposes, non_consent_basis)


def _by_consents(
    request: DisclosureRequest,
    facts: _Facts,
    purpose: str,
    candidates: list[tuple[ConsentDirective, Provision, bool | None]],
    notes: "_Notes",
) -> tuple[_Hit | None, _Hit | None]:
    """The deciding deny, else the deciding permit, of the patient's consents for a purpose.

    A deny counts whenever its consent is active and in its term (C8: a refusal is always
    honoured); a permit only on a consent that can be relied on (C1-C7, C9). Validity is
    checked only once a permit is found to apply: most consents on file are about other
    recipients, and rejecting them is cheaper.
    """
    closure = v.purpose_closure(purpose)
    denies: list[_Hit] = []
    permits: list[_Hit] = []
    leaves: list[tuple[ProvisionType, tuple[int, ...]]] = []
    for directive, root, source in candidates:
        leaves.clear()
        if not _walk(root, facts, closure, None, (), leaves):
            continue
        relied: bool | None = None
        for kind, path in leaves:
            if kind is ProvisionType.DENY:
                # The base policy of an opt-in consent ("deny, except as permitted below") is
                # silence towards whom it does not permit, not a restriction: a consent for one
                # recipient must not block another consent's recipient (deny-overrides). A root
                # deny with no permit beneath it is a blanket refusal (C8), and so is an opt-out
                # consent's root deny (policyRule OPTOUT): the patient refused all but the
                # exceptions its permits make.
                opt_in_base = not path and directive.permits and not directive.opt_out
                if not opt_in_base and rules.refusal_in_force(directive, facts.as_of):
                    denies.append(_Hit(directive, root, path))
                continue
            if source is False:  # the consent lets other programs disclose, not this one
                continue
            if relied is None:
                relied = validity.is_valid(directive, facts.as_of, request.occurred_events)
                if not relied:
                    notes.unrelied[directive] = None
            hit = _Hit(directive, root, path)
            if not relied:
                continue
            if source is None:
                notes.add(Reason("P2", "the record's source program is unknown"))
            elif not rules.counseling_permit_allowed(directive, facts.counseling):
                text = f"consent {directive.id} is not a consent for SUD counseling notes"
                notes.add(Reason("C3", text))
            elif not rules.legal_permit_allowed(directive, purpose):
                text = f"consent {directive.id} is not a consent for legal proceedings"
                notes.add(Reason("C4", text))
            elif problem := rules.covered_entity_statement_problem(
                directive, request.requester, purpose
            ):
                text = f"consent {directive.id} not relied on: {problem.text}"
                notes.add(Reason(problem.rule, text))
            else:
                permits.append(hit)
    deny = min(denies, key=lambda hit: hit.sort_key) if denies else None
    if deny is not None or not permits:
        return deny, None
    # Several consents permit: rely on the one that allows least redisclosure, then by id, so
    # the outcome and its obligations do not depend on the order consents were stored.
    permit = min(
        permits,
        key=lambda hit: (
            rules.redisclosure_permitted(hit.directive, request.requester, request.purposes),
            hit.sort_key,
        ),
    )
    return None, permit


def _discloser_matches(group: ActorGroup | None, facts: _Facts) -> bool | None:
    """Whether the record's source program may disclose under the consent (§2.31(a)(2)).

    None when the request does not name the source, False when the consent names others:
    only the consent's denies then count.
    """
    if group is None or group.general:
        return True
    if not facts.source_known:
        return None
    return group.names(facts.source, facts.source_ids)


def _walk(
    provision: Provision,
    facts: _Facts,
    purposes: frozenset[str],
    inherited: ProvisionType | None,
    path: tuple[int, ...],
    leaves: list[tuple[ProvisionType, tuple[int, ...]]],
) -> bool:
    """Collect the most specific applicable typed provisions; True if any was found here."""
    kind = provision.type or inherited
    # The root's period is the consent's own term, which validity judges (C5), so that an
    # expired consent is reported as such rather than silently not applying.
    if path and provision.period is not None and not provision.period.contains(facts.as_of):
        return False
    if not _applies(provision, facts, purposes, kind is ProvisionType.DENY):
        return False
    found = False
    for number, child in enumerate(provision.provisions):
        if _walk(child, facts, purposes, kind, (*path, number), leaves):
            found = True
    if not found and kind is not None:
        leaves.append((kind, path))
        return True
    return found


def _applies(provision: Provision, facts: _Facts, purposes: frozenset[str], deny: bool) -> bool:
    """Whether every criterion the provision states, but its period, matches the request."""
    index = provision.index
    # C8: what the engine cannot understand in a deny (a purpose in a system it does not
    # know, an action other than collect, a class in a system the record is not classed by)
    # makes the deny apply; in a permit, it makes the permit not apply.
    if (
        provision.purposes
        and index.purposes.isdisjoint(purposes)
        and not (deny and index.foreign_purposes)
    ):
        return False
    if (
        provision.actions
        and facts.action not in index.actions
        and not (deny and index.refuses_disclosure and facts.action != v.COLLECT)
    ):
        return False
    if provision.actors and not _actors_match(index, facts, deny):
        return False
    if (
        provision.security_labels
        and facts.confidentiality > index.confidentiality
        and index.labels.isdisjoint(facts.labels)
        and not (deny and _unspecified_sud(facts) and not index.labels.isdisjoint(_SUD_KINDS))
    ):
        return False
    if (
        provision.classes
        and index.classes.isdisjoint(facts.classes)
        and index.bare_classes.isdisjoint(facts.class_codes)
        and not (deny and not index.class_systems <= facts.class_systems)
    ):
        return False
    if (
        provision.codes
        and index.codes.isdisjoint(facts.codes)
        and index.bare_codes.isdisjoint(facts.code_codes)
        and not (deny and _under_a_category(index.codes, facts.codes))
    ):
        return False
    if provision.data_period is not None:
        if facts.date is None:
            return deny
        if not provision.data_period.contains(facts.date):
            return False
    return not provision.data or _data_matches(provision, facts, deny)


_SUD_KINDS: Final[frozenset[tuple[str | None, str]]] = frozenset(
    (v.ACT_CODE, code) for code in v.SUD_SENSITIVITY
)
_UNSPECIFIED_SUD: Final[frozenset[tuple[str | None, str]]] = frozenset(
    {(v.ACT_CODE, v.SUD), (v.ACT_CODE, v.ETH)}
)


def _unspecified_sud(facts: "_Facts") -> bool:
    """The record is SUD information of no stated kind (labelled SUD, or Part 2 data with no
    label): it may be about opioids or alcohol as well as anything else, so a refusal of a
    narrower kind (OPIOIDUD, ETHUD) reaches it (C8), while a permit of one does not."""
    kinds = facts.labels & _SUD_KINDS
    return kinds <= _UNSPECIFIED_SUD


def _under_a_category(
    refused: frozenset[tuple[str, str]], codes: frozenset[tuple[str | None, str]]
) -> bool:
    """Whether a code of the record lies under a refused category of a code system whose codes
    nest by prefix (a refusal of ICD-10-CM F11 reaches F11.20)."""
    for system, code in codes:
        if system not in v.PREFIX_HIERARCHIES:
            continue
        bare = code.replace(".", "")
        if any(
            kind == system and bare.startswith(category.replace(".", ""))
            for kind, category in refused
        ):
            return True
    return False


def _actors_match(index: ProvisionIndex, facts: _Facts, deny: bool) -> bool:
    """Recipients name the requester; disclosing actors name the record's source; actors in
    other roles name either. Each group present must match."""
    recipients = index.recipients
    if recipients is not None and not _recipients_match(recipients, facts, deny):
        return False
    sources = index.sources
    if sources is not None and not sources.general:
        if not facts.source_known:
            return deny
        if not sources.names(facts.source, facts.source_ids):
            return False
    others = index.others
    return others is None or (
        others.names(facts.requester, facts.requester_ids)
        or others.names(facts.source, facts.source_ids)
    )


def _recipients_match(recipients: ActorGroup, facts: _Facts, deny: bool) -> bool:
    """§2.31(a)(4) as amended in 2024: the requester is named, or is of the class of persons
    the consent designates.

    Where the provision names an intermediary (§2.31(a)(4)(ii)), the intermediary itself is a
    recipient and so are its member participants named beside it (A); a general designation
    of participants (B) reaches only a participant that receives through that intermediary
    and has a treating provider relationship with the patient, never every covered entity.
    A refusal naming an intermediary also stops what would pass through it (C8).
    """
    if recipients.names(facts.requester, facts.requester_ids):
        return True
    intermediaries = recipients.intermediaries
    if intermediaries is None:
        return recipients.general and facts.designated
    if intermediaries.names(facts.requester, facts.requester_ids):
        return True
    through = facts.through_intermediary and intermediaries.names(facts.via, facts.via_ids)
    if deny:
        return through or (recipients.general and facts.designated)
    return through and recipients.general and facts.treating


def _data_matches(provision: Provision, facts: _Facts, deny: bool) -> bool:
    """Whether the record is among the provision's `data` (any of them)."""
    return any(_datum_matches(data, facts, deny) for data in provision.data)


def _datum_matches(data: DataReference, facts: _Facts, deny: bool) -> bool:
    """R4 consent-data-meaning, the record asked for against one `data` item:

    - instance: "the instance of the resource": the record itself;
    - related: "the instance of the resource and instances it refers to": the record itself,
      or one the data's instance refers to (`DataReference.reaches`, resolved from the store
      by whoever read the directive). For a deny only: what an instance refers to is read
      when the directive is, and may have changed since, so a permit would reach what the
      instance no longer refers to. A related permit reaches the instance alone (never more
      than the consent says); unresolved (None), a related deny reaches the instance alone
      too (an instance that cannot be read refers to nothing here);
    - dependents: "the instance of the resource and instances that refer to it": the record
      itself, or one whose own references (`DataItem.related`) name it. Where the request does
      not say what the record refers to, the deny applies and the permit does not (C8);
    - authoredby: "instances of resources that are authored by" the referenced party: the
      record's authors, custodians and source program, by reference or identifier.

    A record named by identifier only (no literal reference) cannot be told from others, as
    the request carries no record identifiers: such a deny applies (C8), such a permit not.
    """
    if data.meaning is DataMeaning.AUTHOREDBY:
        if not facts.authors and not facts.author_ids:
            return deny
        return data.reference in facts.authors or not facts.author_ids.isdisjoint(data.identifiers)
    if data.reference is None or facts.reference is None:
        return deny
    if data.reference == facts.reference:
        return True
    if data.meaning is DataMeaning.RELATED:
        return deny and data.reaches is not None and facts.reference in data.reaches
    if data.meaning is DataMeaning.DEPENDENTS:
        if facts.refers_to is None:
            return deny
        return data.reference in facts.refers_to
    return False


class _Notes:
    """Why consents that apply did not decide, explained only when a decision reports them
    (a permit rests on its one consent; a deny says what kept the others from counting)."""

    __slots__ = ("reasons", "unrelied")

    def __init__(self) -> None:
        self.reasons: dict[Reason, None] = {}
        self.unrelied: dict[ConsentDirective, None] = {}

    def add(self, reason: Reason) -> None:
        self.reasons[reason] = None

    def explain(self, request: DisclosureRequest, as_of: datetime) -> list[Reason]:
        """The reasons, with the first problem of each consent not relied on, sorted so that
        they do not depend on the order of the consents."""
        reasons = dict(self.reasons)
        for directive in self.unrelied:
            problem = validity.problems(directive, as_of, request.occurred_events)[0]
            text = f"consent {directive.id} not relied on: {problem.text}"
            reasons[Reason(problem.rule, text)] = None
        return sorted(reasons, key=lambda note: (note.rule, note.text))


def _ordinary(request: DisclosureRequest, as_of: datetime) -> Decision:
    """P1: data that is not Part 2 data follows HIPAA; the engine only accounts for it."""
    released = rules.released_classes(request.item)
    return Decision(
        outcome=Outcome.PERMIT,
        reasons=(Reason("P1", "not Part 2 data: ordinary HIPAA rules apply"),),
        consent_id=None,
        provision_path=None,
        obligations=Obligations(released=released),
        accounting=rules.accounting_entry(request, as_of, Outcome.PERMIT, "P1", released=released),
    )


def _permit(request: DisclosureRequest, as_of: datetime, hits: list[_Hit]) -> Decision:
    """A disclosure with consent: S1 notice, S2 labels, S3 what is released, A1 the entry."""
    hit = hits[0]
    directive = hit.directive
    redisclosure = all(
        rules.redisclosure_permitted(h.directive, request.requester, request.purposes) for h in hits
    )
    released = rules.released_classes(request.item)
    rule = rules.RULE_OF_KIND[directive.kind]
    reason = Reason(rule, f"consent {directive.id} permits this disclosure at {hit.path}")
    return Decision(
        outcome=Outcome.PERMIT,
        reasons=(reason,),
        consent_id=directive.id,
        provision_path=hit.path,
        obligations=Obligations(
            labels=rules.disclosure_labels(request.item, redisclosure),
            notice=rules.notice(directive, hit.root, hit.indices, hit.path),
            released=released,
            redisclosure_permitted=redisclosure,
        ),
        accounting=rules.accounting_entry(
            request, as_of, Outcome.PERMIT, rule, directive.id, hit.path, released
        ),
    )


def _without_consent(
    request: DisclosureRequest,
    facts: _Facts,
    as_of: datetime,
    refusal: Reason,
    notes: _Notes,
    deny: _Hit | None = None,
) -> Decision:
    """No consent permits (or one denies): E1 for an emergency purpose, else the refusal.

    §2.51 needs no consent, so a patient's restriction does not stop an emergency
    disclosure; the restriction is kept among the reasons for the compliance review.
    """
    if not all(rules.is_emergency_purpose(purpose) for purpose in request.purposes):
        return _deny(request, as_of, refusal, notes.explain(request, as_of), deny)
    if deny is not None:
        notes.add(refusal)
    missing = rules.missing_emergency_facts(request)
    if missing:
        text = "emergency disclosure refused: " + "; ".join(missing) + " (§2.51)"
        return _deny(request, as_of, Reason("E1", text), notes.explain(request, as_of))
    if not rules.emergency_releases(request.item, facts.counseling):
        text = (
            f"an emergency does not need {request.item.resource_type}"
            f"{' counseling notes' if facts.counseling else ''}: not released (§2.51(a))"
        )
        return _deny(request, as_of, Reason("E1", text), notes.explain(request, as_of))
    released = rules.released_classes(request.item)
    return Decision(
        outcome=Outcome.PERMIT,
        reasons=(
            Reason("E1", "bona fide medical emergency disclosure (§2.51)"),
            *notes.explain(request, as_of),
        ),
        consent_id=None,
        provision_path=None,
        obligations=Obligations(
            labels=rules.disclosure_labels(request.item, redisclosure_allowed=False),
            released=released,
            compliance_review=True,
        ),
        accounting=rules.accounting_entry(request, as_of, Outcome.PERMIT, "E1", released=released),
        emergency=True,
    )


def _deny(
    request: DisclosureRequest,
    as_of: datetime,
    reason: Reason,
    notes: list[Reason],
    hit: _Hit | None = None,
) -> Decision:
    consent_id = None if hit is None else hit.directive.id
    path = None if hit is None else hit.path
    return Decision(
        outcome=Outcome.DENY,
        reasons=(reason, *notes),
        consent_id=consent_id,
        provision_path=path,
        obligations=Obligations(),
        accounting=rules.accounting_entry(
            request, as_of, Outcome.DENY, reason.rule, consent_id, path
        ),
    )
