"""IHE Privacy Consent on FHIR (PCF) examples, read as this service reads consents (issue 11):
HIPAA-style privacy consents no one here wrote, translated from the IG's FHIR Shorthand (see
tests/consent/corpus/ihe-pcf/SOURCE.md). A TPO permit that is not a Part 2 consent is never
relied on, and says so for its real gaps only; an expired one names its expiry; a dissent is
honoured over an earlier permit (PART2.md C1, C5, C8, C9)."""

import json
from pathlib import Path
from typing import Any

from consent import ConsentElement, Outcome, check, decide
from mappings.consent import (
    REDISCLOSURE_RISK,
    REFUSAL_CONSEQUENCES,
    RIGHT_TO_REVOKE,
    ConsentFacts,
    directive_from_fhir,
)
from tests.consent import AS_OF, PATIENT, PROGRAM, WORLD, consent, request

E = ConsentElement
FOLDER = Path(__file__).parent / "corpus" / "ihe-pcf"
POLICY = "http://example.org/policies/basePrivacyConsentPolicy.txt"
NAMED = ConsentFacts(patient_name="John Jacob Jingleheimer Schmidt")


def load(ident: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((FOLDER / f"Consent-{ident}.json").read_text())
    return resource


def elements(resource: dict[str, Any], facts: ConsentFacts = NAMED) -> set[ConsentElement]:
    directive = directive_from_fhir(resource, facts=facts)
    return {problem.element for problem in check(directive, AS_OF).problems}


def test_the_basic_tpo_permit_is_refused_for_its_real_gaps_only() -> None:
    """Name (from the Patient), signer (the patient), date, discloser are all there, and a TPO
    consent needs no end date; what it lacks as a Part 2 consent is what Part 2 adds."""
    assert elements(load("ex-consent-basic-treat")) == {
        E.INFORMATION,
        E.RECIPIENTS,
        E.REVOCATION_STATEMENT,
        E.REDISCLOSURE_STATEMENT,
        E.REFUSAL_STATEMENT,
    }


def test_its_form_once_approved_supplies_the_statements() -> None:
    """C9: the policy it was signed on, approved with the statements it contains."""
    statements = frozenset({RIGHT_TO_REVOKE, REDISCLOSURE_RISK, REFUSAL_CONSEQUENCES})
    approved = ConsentFacts(patient_name=NAMED.patient_name, approved_forms={POLICY: statements})
    assert elements(load("ex-consent-basic-treat"), approved) == {E.INFORMATION, E.RECIPIENTS}


def test_the_expired_permit_names_its_expiry() -> None:
    assert E.EXPIRATION in elements(load("ex-consent-expired-treat"))


def test_the_dissent_is_honoured_over_an_earlier_permit() -> None:
    """ex-consent-basic-reject, as written for our test patient and program: a root deny of
    TPO that is no Part 2 consent at all, and still stops a valid permit from disclosing (C8)."""
    dissent = {
        **load("ex-consent-basic-reject"),
        "patient": {"reference": PATIENT},
        "organization": [{"reference": PROGRAM}],
    }
    permit = directive_from_fhir(consent(), facts=WORLD)
    refusal = directive_from_fhir(dissent, facts=WORLD)
    assert decide(request(), [permit], AS_OF).outcome is Outcome.PERMIT

    decision = decide(request(), [permit, refusal], AS_OF)

    assert (decision.outcome, decision.rules[0]) == (Outcome.DENY, "C8")
    assert decision.consent_id == "ex-consent-basic-reject"
