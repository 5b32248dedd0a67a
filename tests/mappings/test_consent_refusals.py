"""How a FHIR R4 Consent's base policy, logical patient reference, scope and the patient's death
are read (probe 2: F4, F5, F9, D1, D6), and what the engine then decides on them."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

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
from mappings.consent import ConsentFacts, directive_from_fhir, directive_to_fhir
from tests.conftest import corpus
from tests.consent import (
    AS_OF,
    CLINIC,
    GUARDIAN,
    PATIENT,
    PATIENT_NAME,
    PROGRAM,
    STRANGER,
    WORLD,
    actor,
    consent,
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


class TestOptInWithholdings:
    """D6: the R4 "withhold" examples are written under OPTIN with untyped provisions, exactly
    as the `basic` authorization is: the structure cannot tell a refusal from a permit, so
    neither is read into them (an OPTIN withholding is honoured once typed deny, as notOrg
    is)."""

    @pytest.mark.corpus
    @pytest.mark.parametrize(
        "name", ["basic", "notThem", "notThis", "notTime", "notAuthor"], ids=str
    )
    def test_untyped_optin_provisions_neither_permit_nor_deny(self, name: str) -> None:
        resource = _retargeted(_example(f"Consent-consent-example-{name}.json"))
        directive = directive_from_fhir(resource)

        assert not directive.opt_out
        assert directive.provision is not None
        assert directive.provision.type is None


class TestPatientByIdentifier:
    """F5: a logical `Consent.patient` names the stored Patient the caller resolved it to."""

    def _by_identifier(self) -> dict[str, Any]:
        resource = consent()
        resource["patient"] = {"identifier": MRN}
        return resource

    def test_the_resolved_patient_is_the_consents(self) -> None:
        facts = ConsentFacts(patient_name=PATIENT_NAME, patient=PATIENT)

        directive = directive_from_fhir(self._by_identifier(), facts=facts)

        assert directive.patient == PATIENT
        assert check(directive, AS_OF).valid
        assert decide(request(), [directive], AS_OF).outcome is Outcome.PERMIT

    def test_a_literal_reference_wins(self) -> None:
        facts = ConsentFacts(patient_name=PATIENT_NAME, patient="Patient/someone-else")

        assert directive_from_fhir(consent(), facts=facts).patient == PATIENT

    def test_an_ambiguous_identifier_refuses_but_never_permits(self) -> None:
        facts = ConsentFacts(patient_name=PATIENT_NAME, patient=PATIENT, patient_ambiguous=True)
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
        )
        resource = consent(performers=[performer(signer)])

        directive = directive_from_fhir(resource, facts=facts)

        assert directive.patient_capacity is capacity
        assert [(p.rule, p.element) for p in check(directive, AS_OF).problems] == problems
        expected = Outcome.DENY if problems else Outcome.PERMIT
        assert decide(request(), [directive], AS_OF).outcome is expected

    def test_a_stated_capacity_still_wins(self) -> None:
        facts = ConsentFacts(patient_name=PATIENT_NAME, patient_deceased=True)
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
