"""Properties of `decide` over generated provision trees, checked against a plain oracle.

The oracle restates the semantics the engine documents, by brute force over every path of
the tree: a provision applies when it and all its ancestors match; the most specific
applicable provisions (no applicable typed provision beneath them) decide a consent, any deny
among them winning; consents combine deny-overrides. So `decide` permits only if some
provision permits and no applicable deny covers the request.
"""

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    Actor,
    Coding,
    ConsentDirective,
    ConsentKind,
    ConsentStatus,
    DisclosureRequest,
    Period,
    Provision,
    ProvisionType,
    Signer,
    SignerRole,
    decide,
)
from consent import vocabulary as v
from consent.engine import refusal_of_any_part2_record
from tests.consent import AS_OF, PATIENT, PROGRAM, item, request, requester

RECIPIENTS = ("Organization/a", "Organization/b")
PURPOSES = ("TREAT", "COC", "HPAYMT")
TYPES = ("Condition", "CarePlan", "MedicationStatement")
YEARS = {
    "2019": Period(datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC)),
    "2025": Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)),
}
DATES = (datetime(2019, 6, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC), None)

kinds = st.sampled_from([ProvisionType.PERMIT, ProvisionType.DENY, None])


def _recipient(reference: str) -> Actor:
    return Actor(Coding(v.PARTICIPATION_TYPE, v.IRCP), reference)


def _tree(depth: int) -> st.SearchStrategy[Provision]:
    children = st.just(()) if depth == 0 else st.lists(_tree(depth - 1), max_size=3).map(tuple)
    return st.builds(
        Provision,
        type=kinds,
        actors=st.lists(st.sampled_from(RECIPIENTS), max_size=2, unique=True).map(
            lambda refs: tuple(_recipient(r) for r in refs)
        ),
        purposes=st.lists(st.sampled_from(PURPOSES), max_size=2, unique=True).map(
            lambda codes: tuple(Coding(v.ACT_REASON, c) for c in codes)
        ),
        classes=st.lists(st.sampled_from(TYPES), max_size=2, unique=True).map(
            lambda codes: tuple(Coding(v.RESOURCE_TYPES, c) for c in codes)
        ),
        data_period=st.none() | st.sampled_from(sorted(YEARS)).map(YEARS.__getitem__),
        provisions=children,
    )


# The root names recipients, purposes and SUD records, so every permit beneath it meets
# §2.31(a)(3)-(5) and the consent is valid: the tree alone decides.
roots = st.builds(
    lambda kind, kids: Provision(
        type=kind,
        actors=tuple(_recipient(r) for r in RECIPIENTS),
        purposes=(Coding(v.ACT_REASON, "TREAT"), Coding(v.ACT_REASON, "HPAYMT")),
        security_labels=(Coding(v.ACT_CODE, v.SUD),),
        period=Period(end=datetime(2026, 12, 31, tzinfo=UTC)),
        provisions=kids,
    ),
    kinds,
    st.lists(_tree(2), max_size=3).map(tuple),
)


def _directive(number: int, root: Provision) -> ConsentDirective:
    return ConsentDirective(
        id=f"consent-{number}",
        status=ConsentStatus.ACTIVE,
        patient=PATIENT,
        patient_name="Alex Testperson",
        disclosers=(Actor(None, PROGRAM),),
        kind=ConsentKind.GENERAL,
        signed_at=datetime(2026, 1, 10, tzinfo=UTC),
        signers=(Signer(SignerRole.PATIENT, PATIENT),),
        has_signed_form=True,
        has_revocation_statement=True,
        has_redisclosure_statement=True,
        form_approved=True,
        provision=root,
    )


directives = st.lists(roots, min_size=1, max_size=4).map(
    lambda trees: [_directive(number, tree) for number, tree in enumerate(trees)]
)
requests = st.builds(
    lambda who, purpose, kind, date: request(
        who=requester(who), purposes=(purpose,), data=item(kind, date=date)
    ),
    st.sampled_from(RECIPIENTS),
    st.sampled_from(PURPOSES),
    st.sampled_from(TYPES),
    st.sampled_from(DATES),
)


def _matches(provision: Provision, kind: ProvisionType | None, req: DisclosureRequest) -> bool:
    """One provision's own criteria, restated; an unknown date holds only for a deny."""
    data = req.item
    if provision.actors and req.requester.reference not in {a.reference for a in provision.actors}:
        return False
    if provision.purposes and not any(
        p.code in v.purpose_closure(req.purposes[0]) for p in provision.purposes
    ):
        return False
    if provision.classes and data.resource_type not in {c.code for c in provision.classes}:
        return False
    if provision.data_period is not None:
        if data.date is None:
            return kind is ProvisionType.DENY
        return provision.data_period.contains(data.date)
    return True


def _has_permit(node: Provision) -> bool:
    return node.type is ProvisionType.PERMIT or any(_has_permit(c) for c in node.provisions)


def _oracle(directive: ConsentDirective, req: DisclosureRequest) -> ProvisionType | None:
    """What one consent says, by enumerating every path of its tree."""
    assert directive.provision is not None
    applicable: list[tuple[tuple[int, ...], ProvisionType]] = []

    def visit(node: Provision, path: tuple[int, ...], inherited: ProvisionType | None) -> None:
        kind = node.type or inherited
        period_ok = not path or node.period is None or node.period.contains(AS_OF)
        if not (period_ok and _matches(node, kind, req)):
            return
        if kind is not None:
            applicable.append((path, kind))
        for number, child in enumerate(node.provisions):
            visit(child, (*path, number), kind)

    visit(directive.provision, (), None)
    paths = {path for path, _ in applicable}
    # A root deny is an opt-in base only over a permit; over denies alone it refuses (C8).
    opt_in_base = _has_permit(directive.provision)
    specific = [
        kind
        for path, kind in applicable
        if not any(other[: len(path)] == path and other != path for other in paths)
        and not (path == () and kind is ProvisionType.DENY and opt_in_base)
    ]
    if ProvisionType.DENY in specific:
        return ProvisionType.DENY
    return ProvisionType.PERMIT if specific else None


@settings(max_examples=400)
@given(directives, requests)
def test_permits_only_where_a_permit_applies_and_no_deny_covers(
    consents: list[ConsentDirective], req: DisclosureRequest
) -> None:
    verdicts = [_oracle(directive, req) for directive in consents]
    expected = ProvisionType.DENY not in verdicts and ProvisionType.PERMIT in verdicts

    assert decide(req, consents, AS_OF).permitted is expected


@settings(max_examples=200)
@given(directives.flatmap(lambda ds: st.tuples(st.just(ds), st.permutations(ds))), requests)
def test_deny_overrides_does_not_depend_on_order(
    pair: tuple[list[ConsentDirective], list[ConsentDirective]], req: DisclosureRequest
) -> None:
    consents, shuffled = pair

    assert decide(req, shuffled, AS_OF) == decide(req, consents, AS_OF)


lapses = st.sampled_from(
    [
        lambda d: replace(d, status=ConsentStatus.INACTIVE),
        lambda d: replace(d, status=ConsentStatus.ENTERED_IN_ERROR),
        lambda d: replace(d, materially_false=True),
        lambda d: replace(
            d,
            provision=replace(d.provision, period=Period(end=datetime(2026, 3, 1, tzinfo=UTC))),
        ),
        lambda d: replace(d, expiration_event="end-of-treatment"),
    ]
)


@settings(max_examples=300)
@given(directives, requests, lapses)
def test_revoked_or_expired_consents_never_permit(
    consents: list[ConsentDirective], req: DisclosureRequest, lapse: object
) -> None:
    lapsed = [lapse(directive) for directive in consents]  # type: ignore[operator]
    ended = replace(req, occurred_events=frozenset({"end-of-treatment"}))

    assert not decide(ended, lapsed, AS_OF).permitted


@settings(max_examples=200)
@given(directives, directives, requests)
def test_a_revoked_consent_changes_no_outcome(
    consents: list[ConsentDirective], others: list[ConsentDirective], req: DisclosureRequest
) -> None:
    revoked = [replace(d, id=f"revoked-{d.id}", status=ConsentStatus.INACTIVE) for d in others]

    with_revoked = decide(req, [*consents, *revoked], AS_OF)

    assert with_revoked.outcome is decide(req, consents, AS_OF).outcome


any_purposes = st.lists(
    st.sampled_from([*PURPOSES, "ETREAT", "BTG", "HRESCH", "CLINTRCH"]), max_size=2, unique=True
).map(tuple)
part2_items = st.builds(
    lambda kind, date, labelled: item(kind, date=date, labels=labelled),
    st.sampled_from(TYPES),
    st.sampled_from(DATES),
    st.sampled_from([((v.ACT_CODE, v.SUD),), ()]),
)
on_file = st.one_of(st.just([]), directives)
for_others = st.sampled_from([PATIENT, "Patient/someone-else"])


@settings(max_examples=400)
@given(on_file, for_others, any_purposes, st.sampled_from(RECIPIENTS), part2_items)
def test_a_refusal_by_patient_is_the_engines_answer_for_every_part2_record(
    consents: list[ConsentDirective],
    holder: str,
    purposes: tuple[str, ...],
    who: str,
    data: object,
) -> None:
    consents = [replace(directive, patient=holder) for directive in consents]
    req = request(who=requester(who), purposes=purposes, data=data)  # type: ignore[arg-type]

    refusal = refusal_of_any_part2_record(PATIENT, purposes, consents)
    decision = decide(req, consents, AS_OF)

    if refusal is not None:
        assert not decision.permitted
        assert decision.reasons[0] == refusal
        assert decision.consent_id is None
        assert decision.provision_path is None


@given(any_purposes)
def test_a_patient_without_consents_is_refused_by_patient_unless_for_an_emergency(
    purposes: tuple[str, ...],
) -> None:
    emergency = bool(purposes) and all(v.ETREAT in v.purpose_closure(p) for p in purposes)

    refusal = refusal_of_any_part2_record(PATIENT, purposes, [])

    assert (refusal is None) is emergency
