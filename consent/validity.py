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
        *rules.signer_problems(directive),
    )


def kind_from_content(provision: Provision | None) -> ConsentKind:
    """The kind a consent's permits imply, for consents that do not declare one.

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
