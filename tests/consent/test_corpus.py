"""Published FHIR R4 Consents no one here wrote, read as the service reads them: with the
Patient they reference, the Provenance that signs them, and what their authors meant.

The official R4 examples (CC0, from ../shared/corpora/fhir-r4-examples; see its MANIFEST.txt
for source, commit and licence) are not Part 2 consents: none is relied on to disclose, and
each verdict must name the real gap rather than a spurious one (a name that is on the
Patient, a signature that is on a Provenance). Their refusals, however written, are honoured
(PART2.md C8). LEAP's GPL fixtures are not copied: the decision table's C8 rows are our own
cases of what they test (an opt-out, a deny of one practitioner, of a label, of a class, of
several labels, an expired and an inactive consent), listed in LEAP_DERIVED below.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from consent import ConsentElement, Outcome, check, decide
from interop.services.directives import person_name
from mappings.consent import ConsentFacts, directive_from_fhir, signatures_of
from tests.conftest import corpus
from tests.consent import AS_OF, item, request, requester
from tests.consent.test_decisions import DECISION_CASES

E = ConsentElement
pytestmark = pytest.mark.corpus


def _load(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((corpus("fhir-r4-examples") / name).read_text())
    return resource


def _facts(consent: dict[str, Any]) -> ConsentFacts:
    """What a server holding the whole example set knows around one Consent."""
    folder: Path = corpus("fhir-r4-examples")
    ident = consent["patient"]["reference"].split("/", 1)[1]
    patient_file = folder / f"Patient-{ident}.json"
    patient = json.loads(patient_file.read_text()) if patient_file.exists() else {}
    signatures = tuple(
        signature
        for path in sorted(folder.glob("Provenance-*.json"))
        for signature in signatures_of(json.loads(path.read_text()), f"Consent/{consent['id']}")
    )
    return ConsentFacts(patient_name=person_name(patient), signatures=signatures)


def _elements(name: str) -> set[ConsentElement]:
    consent = _load(name)
    directive = directive_from_fhir(consent, facts=_facts(consent))
    return {problem.element for problem in check(directive, AS_OF).problems}


def test_the_name_is_read_from_the_referenced_patient() -> None:
    """(a): Consent.patient carries no display; the stored Patient (Patient-xcda) has the name."""
    name = "Consent-consent-example-smartonfhir.json"
    consent = _load(name)
    assert "display" not in consent["patient"]
    assert directive_from_fhir(consent).patient_name is None

    assert E.PATIENT_NAME not in _elements(name)


def test_the_provenance_signature_signs_the_consent() -> None:
    """(h): Provenance-consent-signature's target is consent-example-signature."""
    consent = _load("Consent-consent-example-signature.json")
    facts = _facts(consent)

    directive = directive_from_fhir(consent, facts=facts)

    assert [s.who for s in facts.signatures] == ["Patient/72"]
    assert directive.signature_on_file
    assert E.SIGNATURE not in _elements("Consent-consent-example-signature.json")


def test_a_deficient_permit_is_refused_naming_the_real_gaps() -> None:
    """The signature example permits CDA documents by one author: still not a Part 2 consent,
    for what it really lacks: no purpose, an unapproved form, its term long over, and a name
    (its Patient/72 is not among the published examples, so no name can be read)."""
    assert _elements("Consent-consent-example-signature.json") == {
        E.PATIENT_NAME,
        E.EXPIRATION,
        E.PURPOSES,
        E.REVOCATION_STATEMENT,
    }


def test_a_deny_of_access_and_correction_withholds_disclosure() -> None:
    """consent-example-notOrg: patient f001 denies Organization/f001 `access` and `correct`;
    it lacks most §2.31 elements, and is honoured all the same (C8)."""
    consent = _load("Consent-consent-example-notOrg.json")
    directive = directive_from_fhir(consent, facts=_facts(consent))
    ask = request(
        patient="Patient/f001",
        who=requester("Organization/f001"),
        data=item(source="Organization/f001"),
    )

    decision = decide(ask, [directive], AS_OF)

    assert not check(directive, AS_OF).valid
    assert (decision.outcome, decision.rules[0]) == (Outcome.DENY, "C8")
    assert decision.consent_id == "consent-example-notOrg"


LEAP_DERIVED = {
    "consent-boris-optout": "C8-opt-out-without-criteria-refuses-everything",
    "consent-boris-deny-practitioner": "P2-recipient-practitionerrole-matched-by-reference",
    "consent-boris-deny-restricted-label": "C8-root-deny-over-denies-only-is-a-blanket-refusal",
    "consent-boris-deny-restricted-content-class": "C8-deny-class-in-unknown-system-applies",
    "consent-boris-multiple-deny-labels": "C8-deficient-refusal-after-a-permit-is-honoured",
    "consent-boris-expired": "C5-expired-consent-denies",
    "consent-boris-inactive": "C6-revoked-consent-denies",
    "consent-boris-optin-with-pou-in-root-provision": "C8-deny-purpose-in-oid-form-applies",
}
"""Which of our decision-table rows covers what each LEAP CDS fixture tests (by its name in
sdhealthconnect/leap-cds test/fixtures/consents); the rows are written here, not copied."""


def test_every_leap_derived_case_is_a_row_of_the_table() -> None:
    rows = {case.id for case in DECISION_CASES}

    assert set(LEAP_DERIVED.values()) <= rows


def test_the_sdoh_authorization_is_never_relied_on_for_its_real_gaps() -> None:
    """HL7 SDOH Clinical Care's information-disclosure consent (tests/consent/corpus/
    sdoh-clinicalcare/SOURCE.md): a HIPAA authorization whose terms are only in its PDF. No
    provision says what it covers, no signer is recorded; its name and date are there."""
    folder = Path(__file__).parent / "corpus" / "sdoh-clinicalcare"
    consent = json.loads(
        (folder / "Consent-SDOHCC-ConsentInformationDisclosureExample.json").read_text()
    )
    directive = directive_from_fhir(consent)
    ask = request(
        patient="Patient/pat-53234",
        who=requester("Organization/SDOHCC-OrganizationPayerExample"),
        data=item(source="Organization/SDOHCC-OrganizationPayerExample"),
        purposes=("HPAYMT",),
    )

    elements = {problem.element for problem in check(directive, AS_OF).problems}
    decision = decide(ask, [directive], AS_OF)

    assert elements == {E.INFORMATION, E.SIGNATURE}
    assert (decision.outcome, decision.rules[0]) == (Outcome.DENY, "P2")
