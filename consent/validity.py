"""Whether a consent directive may be relied on (§2.31), and which kind of consent it is.

`check` gathers every problem rather than stopping at the first, because the API tells a
caller all that is wrong with a stored consent at once (PART2.md C1: "the API says which
element is missing"). Problems come in the order a reader would fix them: whether the consent
is in force at all (C5, C6), then the required elements (C1), then the rules that make a
consent invalid as a whole (C2-C4), then the signer (C7).
"""

from datetime import datetime
from functools import lru_cache

from consent import rules
from consent import vocabulary as v
from consent.model import (
    ConsentDirective,
    ConsentElement,
    ConsentKind,
    Problem,
    Provision,
    Validity,
    permit_chains,
)


def check(
    directive: ConsentDirective,
    as_of: datetime,
    occurred_events: frozenset[str] = frozenset(),
) -> Validity:
    """Check a directive against C1-C7 at a moment (expiration events given as known facts)."""
    return Validity(problems(directive, as_of, occurred_events))


def is_valid(
    directive: ConsentDirective,
    as_of: datetime,
    occurred_events: frozenset[str] = frozenset(),
) -> bool:
    """Whether `check` would find no problem (the engine's hot path: no explanations built)."""
    return rules.in_force(directive, as_of, occurred_events) and not _on_its_face(directive)


def problems(
    directive: ConsentDirective,
    as_of: datetime,
    occurred_events: frozenset[str] = frozenset(),
) -> tuple[Problem, ...]:
    """The problems `check` reports, in its order."""
    in_force = rules.reliance_problems(directive, as_of, occurred_events)
    on_its_face = _on_its_face(directive)
    return (*in_force, *on_its_face) if in_force else on_its_face


# The engine checks the same stored consents on every decision; what a consent says on its face
# does not change with time, so it is worked out once per distinct directive.
@lru_cache(maxsize=4096)
def _on_its_face(directive: ConsentDirective) -> tuple[Problem, ...]:
    return (
        *rules.missing_elements(directive),
        *rules.scope_problems(directive),
        *rules.tpo_scope_problems(directive),
        *rules.counseling_note_problems(directive),
        *rules.legal_proceedings_problems(directive),
        *kind_problems(directive),
        *rules.signer_problems(directive),
    )


def held_kind(declared: ConsentKind | None, provision: Provision | None) -> ConsentKind:
    """The kind a consent is held to: what its permits make it (`kind_from_content`), unless
    it declares a kind, and never a declared kind that asks less than its permits grant.

    A declaration asks more where it names a kind the permits do not match: a consent declared
    for counseling notes or legal proceedings that grants other records or purposes, or one
    declared general that names counseling notes or HLEGAL, fails C3 or C4; one declared TPO
    needs the TPO statements. It would ask less in one case, which is refused: permits granting
    treatment, payment and operations together make a TPO consent (§2.33(b)), with the TPO
    statements (§2.31(a)(10)), whether or not it calls itself general.
    """
    content = kind_from_content(provision)
    if declared is None or (declared is ConsentKind.GENERAL and content is ConsentKind.TPO):
        return content
    return declared


def kind_problems(directive: ConsentDirective) -> list[Problem]:
    """C2 (§2.31(a)(10), §2.33(b)): a directive given a kind that asks less than its permits
    grant (`held_kind`: a general consent granting TPO) is not relied on. `mappings.consent`
    reads every Consent with its held kind; a directive built in code is checked here, so
    that nothing is relied on under the weaker kind's rules."""
    held = held_kind(directive.kind, directive.provision)
    if held is directive.kind:
        return []
    text = (
        f"the consent is given as a {directive.kind.value} consent, but its permits grant "
        f"what makes it a {held.value} consent, whose elements it must show (§2.31(a)(10))"
    )
    return [Problem(rules.RULE_OF_KIND[held], ConsentElement.PURPOSES, text)]


def kind_from_content(provision: Provision | None) -> ConsentKind:
    """The kind a consent's permits make it (see `held_kind`).

    Naming SUD counseling notes (PSYTHPN) makes a counseling-notes consent (§2.31(b));
    permitting HLEGAL, a legal-proceedings consent (§2.31(d)); permitting treatment, payment
    and operations together, a TPO consent (§2.33(b)); anything else is a general consent.
    `check` then holds each kind to its own rules.
    """
    chains = list(permit_chains(provision))
    if any(
        (label.system, label.code) == (v.ACT_CODE, v.COUNSELING_NOTE)
        for chain in chains
        for p in chain
        for label in p.security_labels
    ):
        return ConsentKind.COUNSELING_NOTES
    purposes = rules.permitted_purposes(provision)
    if v.HLEGAL in purposes:
        return ConsentKind.LEGAL_PROCEEDINGS
    if v.TPO_PURPOSES.issubset(purposes):
        return ConsentKind.TPO
    return ConsentKind.GENERAL
