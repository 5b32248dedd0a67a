"""How a FHIR R4 Consent's base policy, logical patient reference, scope and the patient's death
are read (probe 2: F4, F5, F9, D1, D6), and what the engine then decides on them."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    Coding,
    ConsentElement,
    Outcome,
    PatientCapacity,
    ProvisionType,
    check,
    decide,
)
from consent import vocabulary as v
from mappings.consent import (
    ConsentFacts,
    directive_from_fhir,
    directive_to_fhir,
    provision_reading_notes,
)
from tests.conftest import corpus
from tests.consent import (
    APPROVED_FORMS,
    AS_OF,
    CLINIC,
    CLINIC_NPI,
    GUARDIAN,
    PATIENT,
    PATIENT_NAME,
    PROGRAM,
    STRANGER,
    WORLD,
    actor,
    consent,
    item,
    performer,
    permit,
    provision,
    request,
    requester,
)

E = ConsentElement
OID_ACT_CODE = "urn:oid:2.16.840.1.113883.5.4"
MRN = {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "ALEX-1"}


def _example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((corpus("fhir-r4-examples") / name).read_text())
    return resource


def _retargeted(resource: dict[str, Any]) -> dict[str, Any]:
    """An official example written for our synthetic patient and program."""
    text = json.dumps(resource).replace('"Patient/f001"', f'"{PATIENT}"')
    return dict(json.loads(text.replace('"Organization/f001"', f'"{PROGRAM}"')))


def _opt_out(root: dict[str, Any] | None, expires: str | None = None) -> dict[str, Any]:
    resource = consent("consent-opt-out", root=root or {}, expires=expires)
    resource["policyRule"] = {"coding": [{"system": v.ACT_CODE, "code": v.OPT_OUT}]}
    if root is None:
        del resource["provision"]
    return resource


class TestOptOut:
    """F4, C8: under policyRule OPTOUT the consent is the patient's refusal."""

    @pytest.mark.corpus
    def test_the_r4_opt_out_example_withholds_the_programs_records(self) -> None:
        directive = directive_from_fhir(_retargeted(_example("Consent-consent-example-Out.json")))

        decision = decide(request(), [directive], AS_OF)

        assert directive.opt_out
        assert directive.provision is not None
        assert directive.provision.type is ProvisionType.DENY
        assert (decision.outcome, decision.rules[0]) == (Outcome.DENY, "C8")

    @pytest.mark.parametrize("system", [v.ACT_CODE, OID_ACT_CODE, None])
    def test_no_provision_is_a_blanket_refusal(self, system: str | None) -> None:
        resource = _opt_out(None)
        resource["policyRule"]["coding"][0] = {"code": v.OPT_OUT} | (
            {"system": system} if system else {}
        )
        directive = directive_from_fhir(resource, facts=WORLD)

        decision = decide(request(), [directive, directive_from_fhir(consent())], AS_OF)

        assert decision.rules[0] == "C8"

    def test_an_untyped_provision_naming_the_recipient_refuses_everyone(self) -> None:
        """Whether the named recipient is whom the patient refuses or the one it still allows
        is not said (R4 types no root): the refusal applies to both (C8)."""
        directive = directive_from_fhir(_opt_out({"actor": [actor()]}))
        other = request(who=requester(STRANGER))

        assert decide(request(), [directive], AS_OF).rules[0] == "C8"
        assert decide(other, [directive], AS_OF).rules[0] == "C8"

    def test_untyped_children_inherit_the_refusal(self) -> None:
        root = {"provision": [{"actor": [actor()], "purpose": [{"code": "TREAT"}]}]}
        directive = directive_from_fhir(_opt_out(root))

        assert decide(request(), [directive], AS_OF).rules[0] == "C8"
        assert decide(request(purposes=("HPAYMT",)), [directive], AS_OF).rules[0] == "C8"

    def test_a_policy_uri_naming_opt_out_is_one(self) -> None:
        resource = consent(root=provision(None, actors=[actor()]), expires=None)
        resource["policy"] = [{"uri": f"{v.ACT_CODE}#OPTOUT"}]

        assert decide(request(), [directive_from_fhir(resource)], AS_OF).rules[0] == "C8"

    def test_its_root_deny_refuses_what_its_permits_do_not_except(self) -> None:
        """An opt-out with exceptions (OPTOUTE): the clinic's exception does not reach the
        stranger, whose own valid consent is refused (deny-overrides); under OPTIN the same
        tree is an opt-in consent whose base is silent towards the stranger."""
        tree = provision(None, children=[permit()])
        opt_out = _opt_out(tree, expires="2026-12-31")
        opt_out["policyRule"]["coding"][0]["code"] = "OPTOUTE"
        opt_in = {**opt_out, "policyRule": {"coding": [{"system": v.ACT_CODE, "code": "OPTIN"}]}}
        strangers = consent("consent-stranger", root=permit(actors=[actor(STRANGER)]))
        ask = request(who=requester(STRANGER))
        relied = directive_from_fhir(strangers, facts=WORLD)

        refused = decide(ask, [directive_from_fhir(opt_out, facts=WORLD), relied], AS_OF)
        silent = decide(ask, [directive_from_fhir(opt_in, facts=WORLD), relied], AS_OF)
        excepted = decide(request(), [directive_from_fhir(opt_out, facts=WORLD)], AS_OF)

        assert refused.rules[0] == "C8"
        assert silent.outcome is Outcome.PERMIT
        assert excepted.outcome is Outcome.PERMIT

    def test_round_trip_keeps_the_opt_out(self) -> None:
        directive = directive_from_fhir(_opt_out(None), facts=WORLD)

        assert directive_from_fhir(directive_to_fhir(directive), facts=WORLD) == directive


def _opt_in(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "policyRule": {"coding": [{"system": v.ACT_CODE, "code": "OPTIN"}]}}


def _withholding(name: str, recipient: dict[str, Any] | None = None) -> dict[str, Any]:
    """An R4 OPTIN withholding example for our patient, its actor pointed at `recipient`."""
    resource = _retargeted(_example(f"Consent-consent-example-{name}.json"))
    if recipient is not None:
        resource["provision"]["actor"][0]["reference"] = recipient
    return resource


class TestOptInWithholdings:
    """R4 makes a provision "an exception to the base policy of this consent" and requires a
    type in every nested rule: the R4 "withhold" examples write the exception to an OPTIN
    assent untyped, so an untyped provision is read as a deny, root or nested, and never as
    a permit (PART2.md C8: an unclear deny applies). `basic` is written the same way and is
    read the same way: a refusal in its (long past) term, never a permit."""

    @pytest.mark.corpus
    @pytest.mark.parametrize(
        "name", ["basic", "notThem", "notThis", "notTime", "notAuthor"], ids=str
    )
    def test_untyped_optin_provisions_are_denies(self, name: str) -> None:
        directive = directive_from_fhir(_withholding(name))

        assert not directive.opt_out
        assert directive.provision is not None
        assert directive.provision.type is ProvisionType.DENY
        assert not directive.permits

    @pytest.mark.corpus
    @pytest.mark.parametrize(
        "recipient",
        [
            {"reference": CLINIC},
            {"identifier": {"system": CLINIC_NPI.system, "value": "1234567893"}},
        ],
        ids=["by-reference", "by-npi"],
    )
    def test_not_them_refuses_the_named_recipient_only(self, recipient: dict[str, Any]) -> None:
        """Finding 1: the example's PRCP actor, access and correct, pointed at the clinic,
        refuses the clinic's reads whatever consent permits them; another recipient's own
        consent still counts (the refusal names the clinic)."""
        refusal = directive_from_fhir(_withholding("notThem", recipient), facts=WORLD)
        clinics = directive_from_fhir(consent("consent-clinic"), facts=WORLD)
        strangers = directive_from_fhir(
            consent("consent-stranger", root=permit(actors=[actor(STRANGER)])), facts=WORLD
        )
        clinic = request(who=requester(CLINIC, identifiers=(CLINIC_NPI,)))
        stranger = request(who=requester(STRANGER))

        assert decide(clinic, [clinics, refusal], AS_OF).rules[0] == "C8"
        assert decide(stranger, [strangers, refusal], AS_OF).outcome is Outcome.PERMIT

    @pytest.mark.corpus
    def test_not_this_refuses_its_record(self) -> None:
        """Finding 1: notThis (an untyped provision with only `data`) refuses Task/example3."""
        refusal = directive_from_fhir(_withholding("notThis"), facts=WORLD)
        relied = directive_from_fhir(consent("consent-clinic"), facts=WORLD)
        task = item("Task", reference="Task/example3")
        other = item("Task", reference="Task/other")

        assert decide(request(data=task), [relied, refusal], AS_OF).rules[0] == "C8"
        assert decide(request(data=other), [relied, refusal], AS_OF).outcome is Outcome.PERMIT

    def test_an_untyped_provision_nested_in_a_permit_is_an_exception_to_it(self) -> None:
        """R4 requires a nested rule's type; untyped, the exception to a permit is a deny."""
        root = permit(purposes=["TREAT", "HPAYMT"], children=[provision(None, purposes=["HPAYMT"])])
        directive = directive_from_fhir(_opt_in(consent(root=root)), facts=WORLD)

        assert decide(request(), [directive], AS_OF).outcome is Outcome.PERMIT
        assert decide(request(purposes=("HPAYMT",)), [directive], AS_OF).rules[0] == "C8"

    def test_an_untyped_root_over_permits_stays_the_silent_opt_in_base(self) -> None:
        """The `signature` shape: untyped root, typed permit beneath. The root is the opt-in
        base policy, silent towards whom the permit does not name."""
        tree = provision(None, children=[permit()])
        directive = directive_from_fhir(_opt_in(consent(root=tree)), facts=WORLD)
        strangers = directive_from_fhir(
            consent("consent-stranger", root=permit(actors=[actor(STRANGER)])), facts=WORLD
        )

        assert decide(request(), [directive], AS_OF).outcome is Outcome.PERMIT
        ask = request(who=requester(STRANGER))
        assert decide(ask, [directive, strangers], AS_OF).outcome is Outcome.PERMIT

    def test_the_writer_is_told_how_an_untyped_provision_is_read(self) -> None:
        resource = _opt_in(consent(root=provision(None, actors=[actor()])))

        notes = provision_reading_notes(resource)

        assert [(n.severity, n.expression) for n in notes] == [
            ("information", ("Consent.provision",))
        ]
        assert "read as a deny" in notes[0].diagnostics
        assert provision_reading_notes(consent()) == ()


_KINDS = st.sampled_from(["permit", "deny", None])


def _json_tree(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    children = st.just([]) if depth == 0 else st.lists(_json_tree(depth - 1), max_size=3)
    return st.builds(
        lambda kind, who, purposes, kids: provision(
            kind, actors=[actor(r) for r in who], purposes=purposes, children=kids
        ),
        _KINDS,
        st.lists(st.sampled_from([CLINIC, STRANGER]), max_size=2, unique=True),
        st.lists(st.sampled_from(["TREAT", "HPAYMT"]), max_size=2, unique=True),
        children,
    )


_POLICIES = st.sampled_from([None, "OPTIN", "OPTOUT", v.LAW_42CFR_PART2])


def _types(tree: dict[str, Any]) -> list[str | None]:
    found = [tree.get("type")]
    for child in tree.get("provision", []):
        found.extend(_types(child))
    return found


def _read_types(tree: Any) -> list[ProvisionType | None]:
    found = [tree.type]
    for child in tree.provisions:
        found.extend(_read_types(child))
    return found


@settings(max_examples=300, deadline=None)
@given(_json_tree(3), _POLICIES)
def test_an_untyped_provision_is_read_as_a_deny_and_never_as_a_permit(
    tree: dict[str, Any], policy: str | None
) -> None:
    """Whatever the tree and the base policy: every provision is typed once read, each
    written type is kept, and each untyped one is a deny (so the permits are exactly the
    written ones)."""
    resource = consent(root=tree, expires=None)
    if policy is None:
        del resource["policyRule"]
    else:
        resource["policyRule"] = {"coding": [{"system": v.ACT_CODE, "code": policy}]}

    directive = directive_from_fhir(resource, facts=WORLD)

    assert directive.provision is not None
    written = _types(tree)
    read = _read_types(directive.provision)
    assert read == [ProvisionType(kind) if kind else ProvisionType.DENY for kind in written]


class TestPatientByIdentifier:
    """F5: a logical `Consent.patient` names the stored Patient the caller resolved it to."""

    def _by_identifier(self) -> dict[str, Any]:
        resource = consent()
        resource["patient"] = {"identifier": MRN}
        return resource

    def test_the_resolved_patient_is_the_consents(self) -> None:
        facts = ConsentFacts(
            patient_name=PATIENT_NAME, patient=PATIENT, approved_forms=APPROVED_FORMS
        )

        directive = directive_from_fhir(self._by_identifier(), facts=facts)

        assert directive.patient == PATIENT
        assert check(directive, AS_OF).valid
        assert decide(request(), [directive], AS_OF).outcome is Outcome.PERMIT

    def test_a_literal_reference_wins(self) -> None:
        facts = ConsentFacts(patient_name=PATIENT_NAME, patient="Patient/someone-else")

        assert directive_from_fhir(consent(), facts=facts).patient == PATIENT

    def test_an_ambiguous_identifier_refuses_but_never_permits(self) -> None:
        facts = ConsentFacts(
            patient_name=PATIENT_NAME,
            patient=PATIENT,
            patient_ambiguous=True,
            approved_forms=APPROVED_FORMS,
        )
        permits = directive_from_fhir(self._by_identifier(), facts=facts)
        refusal = {**self._by_identifier(), "provision": {"type": "deny"}}

        problems = [(p.rule, p.element) for p in check(permits, AS_OF).problems]
        assert problems == [("C1", E.PATIENT_NAME)]
        assert decide(request(), [permits], AS_OF).rules[0] == "P2"
        denied = decide(request(), [directive_from_fhir(refusal, facts=facts)], AS_OF)
        assert denied.rules[0] == "C8"


DIED = datetime(2026, 1, 5, tzinfo=UTC)
EXECUTOR = "RelatedPerson/executor-1"


class TestDeceasedPatient:
    """F9, C5, C7 (§2.15(b)): for a deceased patient the personal representative signs."""

    @pytest.mark.parametrize(
        ("died_at", "signer", "capacity", "problems"),
        [
            (
                DIED,
                PATIENT,
                PatientCapacity.DECEASED,
                [("C5", E.TRUTHFULNESS), ("C7", E.SIGNATURE)],
            ),
            (DIED, EXECUTOR, PatientCapacity.DECEASED, []),
            (datetime(2026, 2, 1, tzinfo=UTC), PATIENT, PatientCapacity.ADULT, []),
            (None, PATIENT, PatientCapacity.DECEASED, [("C7", E.SIGNATURE)]),
            (None, EXECUTOR, PatientCapacity.DECEASED, []),
        ],
        ids=[
            "patient-signs-after-death",
            "executor-signs-after-death",
            "patient-signed-in-life",
            "patient-signs-death-date-unknown",
            "executor-signs-death-date-unknown",
        ],
    )
    def test_who_may_sign(
        self,
        died_at: datetime | None,
        signer: str,
        capacity: PatientCapacity,
        problems: list[tuple[str, ConsentElement]],
    ) -> None:
        facts = ConsentFacts(
            patient_name=PATIENT_NAME,
            relationships={EXECUTOR: (Coding(v.ROLE_CODE, "EXCEST"),)},
            patient_deceased=True,
            patient_deceased_at=died_at,
            approved_forms=APPROVED_FORMS,
        )
        resource = consent(performers=[performer(signer)])

        directive = directive_from_fhir(resource, facts=facts)

        assert directive.patient_capacity is capacity
        assert [(p.rule, p.element) for p in check(directive, AS_OF).problems] == problems
        expected = Outcome.DENY if problems else Outcome.PERMIT
        assert decide(request(), [directive], AS_OF).outcome is expected

    def test_a_stated_capacity_still_wins(self) -> None:
        facts = ConsentFacts(
            patient_name=PATIENT_NAME, patient_deceased=True, approved_forms=APPROVED_FORMS
        )
        resource = consent(capacity="lacks-capacity", performers=[performer(GUARDIAN, "GUARD")])

        directive = directive_from_fhir(resource, facts=facts)

        assert directive.patient_capacity is PatientCapacity.LACKS_CAPACITY
        assert check(directive, AS_OF).valid


class TestScope:
    """D1: R4 Consent.scope is a modifier; only a patient-privacy consent is one to disclose."""

    @pytest.mark.parametrize("scope", ["research", "treatment", "adr"])
    def test_another_scope_is_never_relied_on(self, scope: str) -> None:
        resource = consent()
        resource["scope"] = {"coding": [{"system": v.CONSENT_SCOPE, "code": scope}]}

        directive = directive_from_fhir(resource, facts=WORLD)

        assert [(p.rule, p.element) for p in check(directive, AS_OF).problems] == [("C1", E.SCOPE)]
        assert decide(request(), [directive], AS_OF).rules[0] == "P2"
        assert directive_from_fhir(directive_to_fhir(directive), facts=WORLD) == directive

    def test_its_refusal_is_honoured_all_the_same(self) -> None:
        resource = consent(root=provision("deny", actors=[actor(CLINIC)]), expires=None)
        resource["scope"] = {"coding": [{"system": v.CONSENT_SCOPE, "code": "research"}]}
        relied = directive_from_fhir(consent("consent-permit"), facts=WORLD)

        decision = decide(request(), [directive_from_fhir(resource, facts=WORLD), relied], AS_OF)

        assert decision.rules[0] == "C8"
