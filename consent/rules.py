"""The rules of PART2.md, one function each, citing the rule and the 42 CFR Part 2 paragraph.

`consent.validity` composes the consent rules (C1-C7) into a verdict on one directive;
`consent.engine` composes the disclosure rules (P, S, E, A) with those into a decision. The
functions here look at one thing each and return plain values (a bool, problems, a reason), so
each can be read against the regulation on its own.
"""

from collections.abc import Iterator
from datetime import datetime

from consent import vocabulary as v
from consent.model import (
    AccountingEntry,
    Coding,
    ConsentDirective,
    ConsentElement,
    ConsentKind,
    ConsentStatus,
    DataItem,
    DisclosureRequest,
    EmergencyFacts,
    NonConsentBasis,
    Notice,
    Outcome,
    Party,
    PatientCapacity,
    Problem,
    Provision,
    Reason,
    Requester,
    SignerRole,
    chain_end,
    permit_chains,
)

# §2.32(a)(1), Statement 1, as amended by the February 2024 final rule (89 FR 12472).
NOTICE_FULL = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or "
    "testimony that describes the information contained in this record, in any civil, "
    "criminal, administrative, or legislative proceedings by any Federal, State, or local "
    "authority, against the patient, unless authorized by the consent of the patient, except "
    "as provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR "
    "2.64 or 2.65. In addition, the Federal rules prohibit you from making any other use or "
    "disclosure of this record unless at least one of the following applies: (i) Further use "
    "or disclosure is expressly permitted by the written consent of the individual whose "
    "information is being disclosed in this record or as otherwise permitted by 42 CFR part 2. "
    "(ii) You are a covered entity or business associate and have received the record for "
    "treatment, payment, or health care operations, or (iii) You have received the record "
    "from a covered entity or business associate as permitted by 45 CFR part 164, subparts A "
    "and E. A general authorization for the release of medical or other information is NOT "
    "sufficient to meet the required elements of written consent to further use or redisclose "
    "the record (see 42 CFR 2.31)."
)
# §2.32(a)(2), Statement 2.
NOTICE_SHORT = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."

PART2_MARKS = frozenset(
    {*v.SUD_SENSITIVITY, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE, v.NO_REDISCLOSURE_RETIRED}
)
"""The labels (v3-ActCode) that make a record Part 2 data wherever it came from (P1, S2)."""
_LABEL_CONFIDENTIALITY = Coding(v.CONFIDENTIALITY, v.RESTRICTED)
_LABEL_LAW = Coding(v.ACT_CODE, v.LAW_42CFR_PART2)
_LABEL_REFRAIN = Coding(v.ACT_CODE, v.NO_REDISCLOSURE)
_LABEL_SUD = Coding(v.ACT_CODE, v.SUD)
_LABEL_COUNSELING = Coding(v.ACT_CODE, v.COUNSELING_NOTE)
_COUNSELING_KEY = (v.ACT_CODE, v.COUNSELING_NOTE)
_EXPIRES_NEVER = "none"
RULE_OF_KIND = {
    ConsentKind.GENERAL: "C1",
    ConsentKind.TPO: "C2",
    ConsentKind.COUNSELING_NOTES: "C3",
    ConsentKind.LEGAL_PROCEEDINGS: "C4",
}
"""The PART2.md rule that holds each kind of consent (and that a permit on it rests on)."""


def has_typed_provision(root: Provision | None) -> bool:
    """Whether any provision of the tree permits or denies anything."""
    if root is None:
        return False
    return root.type is not None or any(has_typed_provision(p) for p in root.provisions)


def _names_counseling_notes(chain: tuple[Provision, ...]) -> bool:
    return any(
        label.system == v.ACT_CODE and label.code == v.COUNSELING_NOTE
        for provision in chain
        for label in provision.security_labels
    )


def _only_counseling_notes(chain: tuple[Provision, ...]) -> bool:
    return any(
        provision.security_labels
        and all((lb.system, lb.code) == _COUNSELING_KEY for lb in provision.security_labels)
        for provision in chain
    )


def permitted_purposes(root: Provision | None) -> frozenset[str]:
    """The purpose codes named anywhere on the way to a permit."""
    return frozenset(
        purpose.code
        for chain in permit_chains(root)
        for provision in chain
        for purpose in provision.purposes
    )


def is_part2_data(item: DataItem) -> bool:
    """P1 (§2.11 "records", §2.12(d)): the record identifies the patient as having an SUD.

    The caller marks records created or received by a Part 2 program; records that carry an
    SUD sensitivity label, the 42CFRPart2 law label or the NORDSCLCD refrain (no redisclosure
    without a consent directive: how the ONC's DS4P Part 2 documents mark what they hold, S2),
    and SUD counseling notes, are Part 2 data wherever they came from.
    """
    if item.is_part2 or item.is_counseling_note:
        return True
    return any(
        v.canonical_system(label.system) == v.ACT_CODE and label.code in PART2_MARKS
        for label in item.security_labels
    )


def default_deny() -> Reason:
    """P2 (§2.13(a), §2.31): Part 2 data leaves only on a valid consent or an exception."""
    return Reason("P2", "no valid consent permits this disclosure and no exception applies")


def _problem(element: ConsentElement, text: str) -> Problem:
    return Problem("C1", element, text)


def missing_elements(directive: ConsentDirective) -> list[Problem]:
    """C1 (§2.31(a)(1)-(10)): the required elements a consent must show on its face.

    A directive that permits nothing (a restriction) needs only the patient's name, a
    signature and a date: the elements that describe a disclosure do not apply to it.
    """
    problems: list[Problem] = []
    if directive.patient_ambiguous:
        problems.append(
            _problem(
                ConsentElement.PATIENT_NAME,
                "(a) the patient is named by an identifier that several stored patients carry, "
                "so whose consent it is cannot be told (§2.31(a)(1))",
            )
        )
    elif not (directive.patient_name and directive.patient_name.strip()):
        problems.append(
            _problem(ConsentElement.PATIENT_NAME, "(a) the patient's name is missing (§2.31(a)(1))")
        )
    chains = list(permit_chains(directive.provision))
    if not chains and not has_typed_provision(directive.provision):
        problems.append(
            _problem(
                ConsentElement.INFORMATION,
                "(c) no provision permits or denies anything, so what the consent covers "
                "cannot be told (§2.31(a)(3))",
            )
        )
    if chains:
        problems.extend(_disclosure_elements(directive, chains))
    if not directive.signers or not (directive.has_signed_form or directive.signature_on_file):
        problems.append(
            _problem(
                ConsentElement.SIGNATURE,
                "(h) the signature of the patient or an authorized representative is missing "
                "(§2.31(a)(8))",
            )
        )
    if directive.signed_at is None:
        problems.append(
            _problem(ConsentElement.DATE_SIGNED, "(i) the date signed is missing (§2.31(a)(9))")
        )
    if chains and directive.kind is ConsentKind.TPO:
        problems.extend(tpo_statement_problems(directive))
    return problems


def _disclosure_elements(
    directive: ConsentDirective, chains: list[tuple[Provision, ...]]
) -> Iterator[Problem]:
    if directive.discloser_group is None:
        yield _problem(
            ConsentElement.DISCLOSERS,
            "(b) the program or person permitted to disclose is missing (§2.31(a)(2))",
        )
    if not all(any(p.has_content_criteria for p in chain) for chain in chains):
        yield _problem(
            ConsentElement.INFORMATION,
            "(c) a permit does not say how much and what kind of information it releases "
            "(securityLabel, class, code or data) (§2.31(a)(3))",
        )
    for chain in chains:
        # §2.31(a)(4)(i) as amended in 2024: "the name(s) of the person(s), or class of
        # persons" for any consent; a class of persons is a display-only IRCP actor.
        if not any(
            actor.role is not None and actor.role.code in v.RECIPIENT_ROLES
            for provision in chain
            for actor in provision.actors
        ):
            yield _problem(
                ConsentElement.RECIPIENTS,
                "(d) a permit names no recipient, neither a person nor a class of persons (an "
                "IRCP actor) (§2.31(a)(4)(i))",
            )
            break
    yield from intermediary_problems(chains)
    if not all(any(p.purposes for p in chain) for chain in chains):
        yield _problem(
            ConsentElement.PURPOSES, "(e) a permit states no purpose of disclosure (§2.31(a)(5))"
        )
    if not form_states(directive, directive.has_revocation_statement):
        yield _form_problem(
            directive,
            ConsentElement.REVOCATION_STATEMENT,
            "(f)",
            "the patient's right to revoke in writing and how",
            "§2.31(a)(6)",
        )
    yield from expiration_problems(directive)


def intermediary_problems(chains: list[tuple[Provision, ...]]) -> Iterator[Problem]:
    """C1(d) (§2.31(a)(4)(ii), 2024): a consent whose recipient is an intermediary names the
    intermediary and, beside it in the same provision, either its member participants by
    name (A) or a general designation of participants (B), which the engine limits to those
    with a treating provider relationship with the patient."""
    for provision in dict.fromkeys(p for chain in chains for p in chain):
        recipients = [
            actor
            for actor in provision.actors
            if actor.role is not None and actor.role.code in v.RECIPIENT_ROLES
        ]
        named = [actor for actor in recipients if actor.intermediary]
        if named and all(actor.intermediary for actor in recipients):
            who = ", ".join(a.display or a.reference or "the intermediary" for a in named)
            yield _problem(
                ConsentElement.RECIPIENTS,
                f"(d) the consent names the intermediary {who} but neither the names of its "
                "member participants nor a general designation of participants with a treating "
                "provider relationship with the patient (§2.31(a)(4)(ii))",
            )
            return


def provision_at(root: Provision | None, path: str) -> tuple[Provision, ...] | None:
    """The chain from the root to the provision at a path such as `provision.provision[1]`
    (as decisions and the disclosure log record it), or None when the tree has no such node."""
    if root is None or not path.startswith("provision"):
        return None
    chain = [root]
    for part in path.removeprefix("provision").split(".")[1:]:
        if not (part.startswith("provision[") and part.endswith("]")):
            return None
        number = part.removeprefix("provision[").removesuffix("]")
        if not (number.isascii() and number.isdigit()) or int(number) >= len(chain[-1].provisions):
            return None
        chain.append(chain[-1].provisions[int(number)])
    return tuple(chain)


def disclosed_under_general_designation(
    directive: ConsentDirective, path: str, recipient: Party
) -> bool:
    """§2.24 (2024): whether a disclosure the consent permitted at `path` reached `recipient`
    through the general designation of an intermediary's participants (§2.31(a)(4)(ii)(B)),
    rather than by its name: such disclosures make the list an intermediary owes the patient
    on written request (recipient, date, brief description; the past three years)."""
    chain = provision_at(directive.provision, path)
    if chain is None:
        return False
    for provision in chain:
        group = provision.index.recipients
        if group is None or group.intermediaries is None or not group.general:
            continue
        named = group.names(recipient.reference, recipient.identifiers)
        intermediary = group.intermediaries.names(recipient.reference, recipient.identifiers)
        if not named and not intermediary:
            return True
    return False


def form_states(directive: ConsentDirective, statement: bool) -> bool:
    """C9: a §2.31 statement of the signed form counts only as compliance staff approved the
    form: what a consent says of its own form vouches for nothing, or any writer could make
    its consent complete by saying so."""
    return directive.form_approved and statement


def _form_problem(
    directive: ConsentDirective, element: ConsentElement, label: str, statement: str, cite: str
) -> Problem:
    """C9: the form's statements are a fact about the form, vouched for by its approval."""
    if directive.form_approved:
        text = f"{label} the approved form does not state {statement} ({cite})"
    else:
        text = (
            f"{label} cannot be verified: the form is not approved; an approved form must "
            f"state {statement} ({cite})"
        )
    return Problem("C9", element, text)


def expiration_problems(directive: ConsentDirective) -> list[Problem]:
    """C1(g) (§2.31(a)(7)): an expiration date or event for every permit, read along its whole
    provision chain; "none" only for a TPO consent, where an absent end means "none"."""
    event = directive.expiration_event
    tpo = directive.kind is ConsentKind.TPO
    if not event and not tpo:
        open_ended = any(chain_end(chain) is None for chain in permit_chains(directive.provision))
        if open_ended or (directive.expires_at is None and not directive.permits):
            return [
                _problem(
                    ConsentElement.EXPIRATION,
                    "(g) no expiration date, event or condition is given (§2.31(a)(7))",
                )
            ]
    if event == _EXPIRES_NEVER and directive.kind is not ConsentKind.TPO:
        return [
            _problem(
                ConsentElement.EXPIRATION,
                '(g) expiration "none" is allowed only for a TPO consent (§2.31(a)(7))',
            )
        ]
    return []


def tpo_statement_problems(directive: ConsentDirective) -> list[Problem]:
    """C1/C2 (§2.31(a)(10)): a TPO consent states the redisclosure risk and what refusing
    to sign means for the patient."""
    problems = []
    if not form_states(directive, directive.has_redisclosure_statement):
        problems.append(
            _form_problem(
                directive,
                ConsentElement.REDISCLOSURE_STATEMENT,
                "(TPO)",
                "that records may be redisclosed under HIPAA and no longer protected by Part 2",
                "§2.31(a)(10)(i)",
            )
        )
    if not form_states(directive, directive.has_refusal_consequences_statement):
        problems.append(
            _form_problem(
                directive,
                ConsentElement.REFUSAL_STATEMENT,
                "(TPO)",
                "the consequences of refusing to sign",
                "§2.31(a)(10)(ii)",
            )
        )
    return problems


def scope_problems(directive: ConsentDirective) -> list[Problem]:
    """C1 (§2.31(a)): only a patient-privacy consent is a patient's consent to disclose.

    R4 `Consent.scope` is a modifier element: a research, treatment or advance-directive
    consent records consent to something else (a §2.52 research protocol is not a §2.31
    consent, PART2.md E2), so it is never relied on to disclose. Its denies still count (C8).
    A consent that gives no scope is read as the privacy consent it is written as.
    """
    scope = directive.scope
    if scope is None or (
        scope.code == v.PATIENT_PRIVACY and scope.system in (v.CONSENT_SCOPE, None)
    ):
        return []
    return [
        _problem(
            ConsentElement.SCOPE,
            f"the consent's scope is {scope.code}, not patient-privacy: it is not a consent to "
            "disclose records (§2.31(a); Consent.scope is a modifier element)",
        )
    ]


def tpo_scope_problems(directive: ConsentDirective) -> list[Problem]:
    """C2 (§2.33(b)): a TPO consent covers treatment, payment and operations, nothing else."""
    if directive.kind is not ConsentKind.TPO:
        return []
    outside = sorted(
        code
        for code in permitted_purposes(directive.provision)
        if code == v.HLEGAL or not (v.purpose_closure(code) & v.TPO_PURPOSES)
    )
    if not outside:
        return []
    return [
        Problem(
            "C2",
            ConsentElement.PURPOSES,
            f"a TPO consent permits only treatment, payment and health care operations; it "
            f"also names {', '.join(outside)} (§2.31(a)(5), §2.33(b))",
        )
    ]


def is_tpo_purpose(purpose: str) -> bool:
    """C2: treatment, payment or health care operations, legal proceedings excluded (S4)."""
    return purpose != v.HLEGAL and bool(v.purpose_closure(purpose) & v.TPO_PURPOSES)


def redisclosure_permitted(
    directive: ConsentDirective, requester: Requester, purposes: tuple[str, ...]
) -> bool:
    """C2 (§2.33(b)): a covered entity or business associate that receives records for TPO
    under a TPO consent may redisclose them as HIPAA permits (not in proceedings against the
    patient), so the disclosure carries no refrain policy."""
    return (
        directive.kind is ConsentKind.TPO
        and requester.is_covered_entity
        and all(is_tpo_purpose(purpose) for purpose in purposes)
    )


def covered_entity_statement_problem(
    directive: ConsentDirective, requester: Requester, purpose: str
) -> Problem | None:
    """C1(d) (§2.31(a)(4)(iii), 2024): a consent relied on to disclose to a covered entity or
    business associate for treatment, payment or health care operations includes the statement
    that the record may be redisclosed as the HIPAA regulations permit, except in proceedings
    against the patient. Any kind of consent, TREAT alone included: such a recipient may so
    redisclose what it received for TPO (§2.33(b)(1)). Whether the recipient is one is known
    only per disclosure (its registration: `Requester.is_covered_entity`), so this is asked of
    each permit relied on; the statement is the approved form's `redisclosure-risk` (C9)."""
    if not requester.is_covered_entity or not is_tpo_purpose(purpose):
        return None
    if form_states(directive, directive.has_redisclosure_statement):
        return None
    return _form_problem(
        directive,
        ConsentElement.REDISCLOSURE_STATEMENT,
        "(d)",
        "that what a covered entity or business associate receives for treatment, payment or "
        "health care operations may be redisclosed as HIPAA permits, except in proceedings "
        "against the patient",
        "§2.31(a)(4)(iii)",
    )


def counseling_note_problems(directive: ConsentDirective) -> list[Problem]:
    """C3 (§2.31(b)(2)): a consent for SUD counseling notes is never combined with consent
    for other records; a consent that mixes them is invalid as a whole."""
    chains = list(permit_chains(directive.provision))
    if directive.kind is ConsentKind.COUNSELING_NOTES:
        if all(_only_counseling_notes(chain) for chain in chains):
            return []
        text = (
            "a counseling-notes consent releases other records too; it must release SUD "
            "counseling notes (securityLabel PSYTHPN) only (§2.31(b))"
        )
    elif any(_names_counseling_notes(chain) for chain in chains):
        text = (
            "SUD counseling notes are combined with consent for other records; they need a "
            "consent of their own (§2.31(b))"
        )
    else:
        return []
    return [Problem("C3", ConsentElement.INFORMATION, text)]


def counseling_permit_allowed(directive: ConsentDirective, counseling_note: bool) -> bool:
    """C3 (§2.31(b)(1)): only a counseling-notes consent releases SUD counseling notes."""
    return not counseling_note or directive.kind is ConsentKind.COUNSELING_NOTES


def legal_proceedings_problems(directive: ConsentDirective) -> list[Problem]:
    """C4 (§2.31(d)): consent to use records in proceedings against the patient is never
    combined with consent for any other purpose; a consent that mixes them is invalid."""
    purposes = permitted_purposes(directive.provision)
    legal = v.HLEGAL in purposes
    if legal and len(purposes) > 1:
        text = "HLEGAL (legal proceedings) is combined with other purposes (§2.31(d))"
    elif legal != (directive.kind is ConsentKind.LEGAL_PROCEEDINGS):
        text = (
            "a legal-proceedings consent must permit HLEGAL and nothing else, and only such a "
            "consent may permit HLEGAL (§2.31(d))"
        )
    else:
        return []
    return [Problem("C4", ConsentElement.PURPOSES, text)]


def legal_permit_allowed(directive: ConsentDirective, purpose: str) -> bool:
    """C4 (§2.31(d)): only a legal-proceedings consent permits use in proceedings."""
    return purpose != v.HLEGAL or directive.kind is ConsentKind.LEGAL_PROCEEDINGS


def in_force(directive: ConsentDirective, as_of: datetime, occurred_events: frozenset[str]) -> bool:
    """C5 (§2.31(c)): active, not known to be false, signed, begun and not yet expired."""
    term = None if directive.provision is None else directive.provision.period
    event = directive.expiration_event
    expires = directive.expires_at
    return (
        directive.status is ConsentStatus.ACTIVE
        and not directive.materially_false
        and directive.recorded_by_holder
        and (term is None or term.start is None or term.start <= as_of)
        and (expires is None or as_of <= expires)
        and (not event or event == _EXPIRES_NEVER or event not in occurred_events)
        and (directive.signed_at is None or directive.signed_at <= as_of)
    )


def refusal_in_force(directive: ConsentDirective, as_of: datetime) -> bool:
    """C8 (§2.31(c), §2.31(a)(6)): a patient's written refusal or restriction is honoured
    whatever the document's §2.31 completeness.

    §2.31(c) bars relying on a deficient consent to disclose; it never bars honouring a
    refusal, and a written dissent works as a revocation in writing (C6). So a deny applies
    while its consent is active and inside its own term, without any validity check.
    """
    term = None if directive.provision is None else directive.provision.period
    return directive.status is ConsentStatus.ACTIVE and (term is None or term.contains(as_of))


def refusal(directive: ConsentDirective, path: str) -> Reason:
    """C8: the reason a consent's deny gives."""
    return Reason(
        "C8",
        f"consent {directive.id} refuses this disclosure at {path}; a written refusal is "
        "always honoured (§2.31(c), §2.31(a)(6))",
    )


def reliance_problems(
    directive: ConsentDirective, as_of: datetime, occurred_events: frozenset[str]
) -> list[Problem]:
    """C5 (§2.31(c)): no disclosure on a consent that is not in force: expired, revoked (C6),
    never made active, entered in error, or known (or knowable) to be materially false."""
    if in_force(directive, as_of, occurred_events):
        return []
    term = None if directive.provision is None else directive.provision.period
    event = directive.expiration_event
    problems = []
    if directive.status is not ConsentStatus.ACTIVE:
        problems.append(status_problem(directive))
    if directive.materially_false:
        problems.append(
            Problem(
                "C5",
                ConsentElement.TRUTHFULNESS,
                "the consent is known to be materially false (§2.31(c)(4))",
            )
        )
    if not directive.recorded_by_holder:
        problems.append(
            Problem(
                "C5",
                ConsentElement.TRUTHFULNESS,
                "the consent was recorded by neither this program nor a program it names as "
                "disclosing: a recipient cannot record its own authorization, and a consent "
                "the program does not hold cannot be relied on (§2.31(c)(4))",
            )
        )
    if term is not None and term.start is not None and as_of < term.start:
        problems.append(
            Problem(
                "C5",
                ConsentElement.TERM_START,
                f"the consent takes effect only on {term.start.isoformat()}",
            )
        )
    expires_at = directive.expires_at
    if expires_at is not None and expires_at < as_of:
        problems.append(
            Problem(
                "C5",
                ConsentElement.EXPIRATION,
                f"the consent expired on {expires_at.isoformat()} (§2.31(c)(1))",
            )
        )
    if event and event != _EXPIRES_NEVER and event in occurred_events:
        problems.append(
            Problem(
                "C5",
                ConsentElement.EXPIRATION,
                f'the consent expired with the event "{event}" (§2.31(c)(1))',
            )
        )
    if directive.signed_at is not None and directive.signed_at > as_of:
        problems.append(
            Problem(
                "C5",
                ConsentElement.DATE_SIGNED,
                "the consent was signed after the time of the disclosure (§2.31(a)(9))",
            )
        )
    return problems


def status_problem(directive: ConsentDirective) -> Problem:
    """C6 (§2.31(a)(6)): revocation, recorded as status `inactive`, stops disclosures at once;
    C5: a draft, proposed, rejected or mistaken consent was never in force."""
    if is_revoked(directive):
        return Problem(
            "C6",
            ConsentElement.STATUS,
            "the consent has been revoked (status inactive); disclosures already made in "
            "reliance on it stand (§2.31(a)(6))",
        )
    return Problem(
        "C5",
        ConsentElement.STATUS,
        f"the consent is {directive.status.value}, not active (§2.31(c))",
    )


def is_revoked(directive: ConsentDirective) -> bool:
    """C6 (§2.31(a)(6)): a revoked consent is one whose status is `inactive`."""
    return directive.status is ConsentStatus.INACTIVE


def signer_problems(directive: ConsentDirective) -> list[Problem]:
    """C7 (§2.14, §2.15): the right person signs.

    An adult signs for themself; a minor whom state law lets consent to SUD treatment alone
    is the only one who can consent to disclosure (§2.14(b)); where state law requires a
    parent's consent to treatment, the minor and the parent or guardian both sign (§2.14(c));
    a patient adjudicated as lacking capacity, or deceased, is represented by a guardian or
    personal representative (§2.15).
    """
    if not directive.signers:
        return []
    roles = {signer.role for signer in directive.signers}
    patient = SignerRole.PATIENT in roles
    representative = SignerRole.REPRESENTATIVE in roles
    capacity = directive.patient_capacity
    if capacity in (PatientCapacity.ADULT, PatientCapacity.MINOR_SELF_CONSENT) and not patient:
        text = (
            "the patient must sign (§2.31(a)(8))"
            if capacity is PatientCapacity.ADULT
            else "the minor consented to treatment alone, so only the minor can consent to "
            "disclosure (§2.14(b))"
        )
    elif capacity is PatientCapacity.MINOR_PARENTAL_CONSENT and not (patient and representative):
        text = "the minor and a parent or guardian must both sign (§2.14(c))"
    elif (
        capacity in (PatientCapacity.LACKS_CAPACITY, PatientCapacity.DECEASED)
        and not representative
    ):
        text = (
            "a guardian or personal representative must sign for a patient who lacks "
            "capacity or is deceased (§2.15)"
        )
    else:
        return []
    return [Problem("C7", ConsentElement.SIGNATURE, text)]


def notice(
    directive: ConsentDirective, root: Provision, indices: tuple[int, ...], path: str
) -> Notice:
    """S1 (§2.32(a), (b)): the prohibition on redisclosure, and the consent's scope."""
    return Notice(
        statement=NOTICE_FULL,
        short_statement=NOTICE_SHORT,
        consent_reference=None if directive.id is None else f"Consent/{directive.id}",
        scope=describe_scope(directive, root, indices, path),
    )


def describe_scope(
    directive: ConsentDirective, root: Provision, indices: tuple[int, ...], path: str
) -> str:
    """S1 (§2.32(b)): a clear explanation of what the permitting provision releases, read
    from it and its ancestors (whose criteria it inherits), to whom, for what and when."""
    chain = [root]
    for number in indices:
        chain.append(chain[-1].provisions[number])
    content = [c.code for p in chain for c in (*p.security_labels, *p.classes, *p.codes)]
    content += [
        data.reference or ", ".join(i.value for i in data.identifiers)
        for p in chain
        for data in p.data
    ]
    actions = [a.code for p in chain for a in p.actions]
    names = [a.display or a.reference or "a named party" for p in chain for a in p.actors]
    purposes = [c.code for p in chain for c in p.purposes]
    dated = [p.data_period for p in chain if p.data_period is not None]
    parts = [f"information {', '.join(dict.fromkeys(content))}"]
    parts += [f"dated {_day(p.start)} to {_day(p.end)}" for p in dated]
    if names:
        parts.append(f"recipients {', '.join(dict.fromkeys(names))}")
    if purposes:
        parts.append(f"purposes {', '.join(dict.fromkeys(purposes))}")
    if actions:
        parts.append(f"actions {', '.join(dict.fromkeys(actions))}")
    end = chain_end(tuple(chain))
    if end is not None:
        parts.append(f"until {_day(end)}")
    event = directive.expiration_event
    if event:
        parts.append("no expiration" if event == _EXPIRES_NEVER else f"until {event}")
    kind = directive.kind.value
    return f"{kind} consent {directive.id or '(no id)'} ({path}) permits: {'; '.join(parts)}"


def _day(moment: datetime | None) -> str:
    return "open" if moment is None else moment.date().isoformat()


def disclosure_labels(item: DataItem, redisclosure_allowed: bool) -> tuple[Coding, ...]:
    """S2 (§2.32, HL7 DS4P): the labels a disclosed Part 2 record carries.

    Confidentiality R (or the record's own higher V), the SUD sensitivity (the specific ETHUD
    or OPIOIDUD where the record has it; ETH on input becomes SUD), PSYTHPN for counseling
    notes, the 42CFRPart2 law, and the NORDSCLCD refrain unless C2 allows redisclosure. The
    retired NORDSLCD is never emitted.
    """
    systems = [(v.canonical_system(label.system), label.code) for label in item.security_labels]
    codes = {code for system, code in systems if system == v.ACT_CODE}
    very_restricted = (v.CONFIDENTIALITY, "V") in systems
    confidentiality = Coding(v.CONFIDENTIALITY, "V") if very_restricted else _LABEL_CONFIDENTIALITY
    specific = sorted(codes & v.SUD_SPECIFIC)
    labels = [confidentiality]
    labels += [Coding(v.ACT_CODE, code) for code in specific] if specific else [_LABEL_SUD]
    if item.is_counseling_note or v.COUNSELING_NOTE in codes:
        labels.append(_LABEL_COUNSELING)
    labels.append(_LABEL_LAW)
    if not redisclosure_allowed:
        labels.append(_LABEL_REFRAIN)
    return tuple(labels)


def released_classes(item: DataItem) -> tuple[str, ...]:
    """S3 (§2.31(a)(3), §2.33(a)): what a permitted disclosure releases: this record's type
    and classes, and nothing the consent did not cover (the gate asks per record)."""
    return (item.resource_type, *(c.code for c in item.classes))


def missing_purpose(purposes: tuple[str, ...]) -> Reason | None:
    """S4 (§2.31(a)(5), §2.33): a request must state its purpose of use."""
    if purposes:
        return None
    return Reason("S4", "the request states no purpose of use; Part 2 data needs one")


def is_emergency_purpose(purpose: str) -> bool:
    """E1 (§2.51(a)): emergency treatment (ETREAT, break the glass BTG, ERTREAT)."""
    return v.ETREAT in v.purpose_closure(purpose)


def missing_emergency_facts(request: DisclosureRequest) -> list[str]:
    """E1 (§2.51(a), (c)): a bona fide emergency disclosure goes to medical personnel, and
    the program records at once who received it, their affiliation, who disclosed it and the
    nature of the emergency (the date and time is the decision's)."""
    missing = []
    if not request.requester.is_medical_personnel:
        missing.append("the requester is not medical personnel")
    facts = request.emergency or EmergencyFacts()
    for name, value in (
        ("the name of the medical personnel", facts.personnel_name),
        ("their affiliation", facts.personnel_affiliation),
        ("the nature of the emergency", facts.nature_of_emergency),
        ("who discloses", facts.disclosed_by),
    ):
        if not (value and value.strip()):
            missing.append(f"{name} is missing")
    return missing


def emergency_releases(item: DataItem, counseling_note: bool) -> bool:
    """E1 (§2.51(a) "to the extent necessary"): an emergency releases the clinical summary
    (allergies, conditions, medications, results, procedures, immunizations), never SUD
    counseling notes, consents, payment records or free-form documents."""
    return not counseling_note and item.resource_type in v.EMERGENCY_RESOURCE_TYPES


def out_of_scope(
    purposes: tuple[str, ...], non_consent_basis: NonConsentBasis | None
) -> Reason | None:
    """E2 (§2.52 research, §2.53 audit and evaluation, §2.12(c)(4) QSOA): these disclosures
    without consent are not performed by this service, and no consent stands in for them."""
    if non_consent_basis is not None:
        return Reason(
            "E2",
            f"disclosure under {non_consent_basis.value} is out of this service's "
            "scope and is never treated as consent",
        )
    research = sorted(p for p in purposes if v.HRESCH in v.purpose_closure(p))
    if research:
        return Reason(
            "E2",
            f"research purposes ({', '.join(research)}) are out of this service's scope "
            "(§2.52) and are never treated as consent",
        )
    return None


def accounting_entry(
    request: DisclosureRequest,
    as_of: datetime,
    outcome: Outcome,
    rule: str,
    consent_id: str | None = None,
    provision_path: str | None = None,
    released: tuple[str, ...] = (),
) -> AccountingEntry:
    """A1 (§2.24, §2.25): who asked, for whom, why, on which consent, what left, and when."""
    item = request.item
    return AccountingEntry(
        at=as_of,
        patient=request.patient,
        requester=request.requester,
        purposes=request.purposes,
        action=request.action,
        resource_type=item.resource_type,
        resource_reference=item.reference,
        outcome=outcome,
        rule=rule,
        consent_id=consent_id,
        provision_path=provision_path,
        released=released,
        emergency=request.emergency if rule == "E1" else None,
    )
