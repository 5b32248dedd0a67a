"""The decision table: one row per behaviour, each naming the PART2.md rule it exercises.

Consents are FHIR Consent JSON read through `mappings.consent`, so another suite can replay
`DECISION_CASES` end to end (store the consents, ask through the API) and expect the same.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest

from consent import (
    Coding,
    ConsentDirective,
    Decision,
    DisclosureRequest,
    Identifier,
    NonConsentBasis,
    Outcome,
    Party,
    decide,
)
from consent import vocabulary as v
from mappings.consent import (
    REDISCLOSURE_RISK,
    REFUSAL_CONSEQUENCES,
    RIGHT_TO_REVOKE,
    ConsentFacts,
    ConsentSignature,
    directive_from_fhir,
)
from tests.consent import (
    APPROVED_FORMS,
    AS_OF,
    CLINIC,
    CLINIC_NPI,
    COURT,
    EMERGENCY_FACTS,
    FORM_URI,
    GUARDIAN,
    HIE,
    HIE_OID,
    OTHER_PATIENT,
    OTHER_PROGRAM,
    PARENT,
    PARTICIPANTS_WHO_TREAT_ME,
    PATIENT,
    PATIENT_NAME,
    PAYER,
    PROGRAM,
    STRANGER,
    TPO_FORM_URI,
    TPO_STATEMENTS,
    UNNAMED,
    VIA_HIE,
    WORLD,
    actor,
    coding,
    consent,
    designation,
    form_stating,
    intermediary,
    item,
    label,
    performer,
    permit,
    provision,
    request,
    requester,
    restriction,
    tpo_consent,
)

PERMIT = Outcome.PERMIT
DENY = Outcome.DENY
REFRAINED = ("R", v.SUD, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE)
REDISCLOSABLE = ("R", v.SUD, v.LAW_42CFR_PART2)


@dataclass(frozen=True)
class DecisionCase:
    """One row: consents on file (FHIR JSON), one request, and what `decide` must answer.

    `deciding_rule` is the rule of the first reason; `supporting_rules` must appear among the
    others (e.g. the C5 problem that kept a consent from being relied on). `facts` are what the
    store knows around the consents (the referenced Patient's name, Provenance signatures,
    approved forms), as `interop.services.directives` resolves them.
    """

    id: str
    consents: tuple[dict[str, Any], ...]
    request: DisclosureRequest
    outcome: Outcome
    deciding_rule: str
    consent_id: str | None = None
    provision_path: str | None = None
    labels: tuple[str, ...] | None = None
    emergency: bool = False
    supporting_rules: tuple[str, ...] = ()
    as_of: datetime = AS_OF
    facts: ConsentFacts = WORLD

    @property
    def rule(self) -> str:
        """The PART2.md rule the row exercises, from its id."""
        return self.id.split("-", 1)[0]

    def directives(self) -> list[ConsentDirective]:
        return [directive_from_fhir(resource, facts=self.facts) for resource in self.consents]

    def decide(self) -> Decision:
        return decide(self.request, self.directives(), self.as_of)


def row(
    id: str,
    consents: list[dict[str, Any]],
    req: DisclosureRequest,
    outcome: Outcome,
    deciding_rule: str,
    **expected: Any,
) -> DecisionCase:
    return DecisionCase(id, tuple(consents), req, outcome, deciding_rule, **expected)


GENERAL = consent()
CLINICIAN = requester(medical_personnel=True)
NOT_PART2 = item(labels=(), part2=False)
COUNSELING_NOTE = item(
    "DocumentReference",
    reference="DocumentReference/session-note-1",
    labels=((v.ACT_CODE, v.COUNSELING_NOTE),),
    counseling_note=True,
)
COUNSELING_CONSENT = consent(
    "consent-notes",
    kind="counseling-notes",
    root=permit(labels=[label(v.COUNSELING_NOTE)]),
)
LEGAL_CONSENT = consent(
    "consent-legal",
    kind="legal-proceedings",
    root=permit(actors=[actor(COURT)], purposes=["HLEGAL"]),
)
COURT_REQUEST = request(who=requester(COURT, covered_entity=False), purposes=("HLEGAL",))
MEDICATION = item("MedicationStatement", reference="MedicationStatement/methadone-1")
CARE_PLAN = item("CarePlan", reference="CarePlan/plan-1")
CARE_PLAN_ONLY = consent(root=permit(labels=[], classes=["CarePlan", "ServiceRequest"]))
NESTED_DENY = consent(
    "consent-nested",
    root=permit(children=[provision("deny", classes=["MedicationStatement"])]),
)
# Depth 3: a base deny; for the clinic's treatment (untyped, so still a deny), a permit of SUD
# records, except a deny of what was recorded in 2019.
DEEP = consent(
    "consent-deep",
    root=provision(
        "deny",
        children=[
            provision(
                None,
                actors=[actor()],
                purposes=["TREAT"],
                children=[
                    provision(
                        "permit",
                        labels=[label(v.SUD)],
                        children=[provision("deny", data_period=("2019-01-01", "2019-12-31"))],
                    )
                ],
            )
        ],
    ),
)
DATED_2019 = item(date=datetime(2019, 6, 1, tzinfo=UTC))
UNDATED = item(date=None)
LAST_YEAR_ONLY = consent(root=permit(data_period=("2025-01-01", "2025-12-31")))
WITHOUT_2019 = consent(
    root=permit(children=[provision("deny", data_period=("2019-01-01", "2019-12-31"))])
)
ONE_RECORD = consent(root=permit(labels=[], data=[("instance", "Condition/sud-dx-1")]))
RELATED_TO_PLAN = consent(root=permit(labels=[], data=[("related", "CarePlan/plan-1")]))
DEPENDENTS_OF_PLAN = consent(root=permit(labels=[], data=[("dependents", "CarePlan/plan-1")]))
DISCLOSE_ONLY = consent(root=permit(actions=["disclose"]))
ACCESS_ONLY = consent(root=permit(actions=["access"]))


def signed_by(*signers: dict[str, Any], capacity: str) -> dict[str, Any]:
    return consent(performers=list(signers), capacity=capacity)


def coding_of(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def purpose(system: str, code: str) -> dict[str, str]:
    """A purpose of use as partners spell it (an OID, a local system)."""
    return coding_of(system, code)


def refusal_for(*purposes: dict[str, str]) -> dict[str, Any]:
    """A patient's refusal to the clinic for the given purposes, signed but otherwise bare."""
    root = {**provision("deny", actors=[actor()]), "purpose": list(purposes)}
    return consent("consent-refusal", statements=None, expires=None, root=root)


NPI = Identifier("http://hl7.org/fhir/sid/us-npi", "1992753883")
# A refusal with no signature, date, form or recipient: deficient as a §2.31 consent to
# disclose, and honoured all the same (C8).
REFUSAL_UNSIGNED = consent(
    "consent-refusal",
    signed=None,
    performers=[],
    organizations=(),
    statements=None,
    expires=None,
    root=provision("deny", actors=[actor()]),
)
# LEAP-style opt-out: a root deny with no criteria at all.
OPT_OUT = consent(
    "consent-opt-out", statements=None, expires=None, organizations=(), root=provision("deny")
)
BLANKET = consent(
    "consent-blanket",
    statements=None,
    expires=None,
    root=provision("deny", children=[provision("deny", classes=["MedicationStatement"])]),
)
MINOR = ConsentFacts(
    patient_name="Alex Testperson",
    patient_birth_date=date(2010, 4, 2),
    relationships={PARENT: (Coding(v.ROLE_CODE, "MTH"),)},
    approved_forms=APPROVED_FORMS,
)
APPROVED = ConsentFacts(
    patient_name="Alex Testperson",
    approved_forms={
        FORM_URI: frozenset({RIGHT_TO_REVOKE, REDISCLOSURE_RISK}),
        TPO_FORM_URI: frozenset({RIGHT_TO_REVOKE, REDISCLOSURE_RISK, REFUSAL_CONSEQUENCES}),
    },
)


HILLTOP = "Organization/hilltop-family-practice"
HIE_CONSENT = consent(
    "consent-hie",
    root=permit(actors=[intermediary(), actor(CLINIC), designation(PARTICIPANTS_WHO_TREAT_ME)]),
)
HIE_DESIGNATION = consent(
    "consent-hie-designation",
    root=permit(actors=[intermediary(), designation(PARTICIPANTS_WHO_TREAT_ME)]),
)
QUESTIONNAIRE = "http://recovery-interop.example.org/fhir/Questionnaire/part2-consent"
QUESTIONNAIRE_V3 = QUESTIONNAIRE + "|3"
QUESTIONNAIRE_CONSENT = {
    **consent("consent-questionnaire", statements=None),
    "sourceReference": {"reference": "QuestionnaireResponse/signed-part2-form-1"},
}

# A title and a statement the consent makes of its own form: no approval, no signed form.
SELF_VOUCHED = {
    **consent("consent-self-vouched", statements=None),
    "sourceAttachment": {
        "title": "Signed consent",
        "extension": [
            {
                "url": "http://recovery-interop.example.org/fhir/StructureDefinition/"
                "consent-form-statement",
                "valueCode": RIGHT_TO_REVOKE,
            }
        ],
    },
}
TPO_DECLARED_GENERAL = consent(
    "consent-tpo-called-general",
    kind="general",
    statements=(RIGHT_TO_REVOKE, REDISCLOSURE_RISK),
    root=permit(actors=[designation()], purposes=["TREAT", "HPAYMT", "HOPERAT"]),
)

DECISION_CASES: list[DecisionCase] = [
    # P1: what is Part 2 data
    row("P1-non-part2-record-permitted-without-consent", [], request(data=NOT_PART2), PERMIT, "P1"),
    row(
        "P1-non-part2-record-permitted-without-purpose",
        [],
        request(data=NOT_PART2, purposes=()),
        PERMIT,
        "P1",
        labels=(),
    ),
    row("P1-sud-label-makes-part2-data", [], request(data=item(part2=False)), DENY, "P2"),
    row(
        "P1-42cfrpart2-label-makes-part2-data",
        [],
        request(data=item(labels=((v.ACT_CODE, v.LAW_42CFR_PART2),), part2=False)),
        DENY,
        "P2",
    ),
    row(
        "P1-retired-eth-label-makes-part2-data",
        [],
        request(data=item(labels=((v.ACT_CODE, v.ETH),), part2=False)),
        DENY,
        "P2",
    ),
    row(
        "P1-source-program-makes-unlabelled-record-part2",
        [],
        request(data=item(labels=())),
        DENY,
        "P2",
    ),
    row(
        "P1-unlabelled-program-record-matches-sud-consent",
        [GENERAL],
        request(data=item(labels=())),
        PERMIT,
        "C1",
        labels=REFRAINED,
    ),
    # P2: default deny
    row("P2-no-consent-denies", [], request(), DENY, "P2"),
    row(
        "P2-another-patients-consent-is-ignored",
        [consent(patient=OTHER_PATIENT)],
        request(),
        DENY,
        "P2",
    ),
    row(
        "P2-unnamed-recipient-denied",
        [GENERAL],
        request(who=requester(STRANGER)),
        DENY,
        "P2",
    ),
    row(
        "P2-recipient-matched-by-identifier",
        [consent(root=permit(actors=[actor(None, identifier=CLINIC_NPI, display="Clinic")]))],
        request(who=requester("Organization/clinic-elsewhere", identifiers=(CLINIC_NPI,))),
        PERMIT,
        "C1",
    ),
    row(
        "P2-records-of-another-program-not-covered",
        [GENERAL],
        request(data=item(source=OTHER_PROGRAM)),
        DENY,
        "P2",
    ),
    row(
        "P2-unknown-source-program-never-permitted",
        [GENERAL],
        request(data=item(source=None)),
        DENY,
        "P2",
        supporting_rules=("P2",),
    ),
    row(
        "P2-deny-overrides-a-permit-of-another-consent",
        [GENERAL, restriction()],
        request(),
        DENY,
        "C8",
        consent_id="consent-restriction",
        provision_path="provision",
    ),
    row(
        "P2-deny-overrides-whatever-the-order",
        [restriction(), GENERAL],
        request(),
        DENY,
        "C8",
        consent_id="consent-restriction",
    ),
    row(
        "P2-restriction-of-another-recipient-does-not-block",
        [GENERAL, restriction(actors=[actor(PAYER)])],
        request(),
        PERMIT,
        "C1",
        consent_id="consent-general",
    ),
    row(
        "P2-disclosing-actor-must-be-the-source",
        [consent(root=permit(actors=[actor(), actor(OTHER_PROGRAM, "CST")]))],
        request(),
        DENY,
        "P2",
    ),
    row(
        "P2-disclosing-actor-matching-source-permits",
        [consent(root=permit(actors=[actor(), actor(PROGRAM, "CST")]))],
        request(),
        PERMIT,
        "C1",
    ),
    # C1: required elements
    row(
        "C1-valid-general-consent-permits",
        [GENERAL],
        request(),
        PERMIT,
        "C1",
        consent_id="consent-general",
        provision_path="provision",
        labels=REFRAINED,
    ),
    row(
        "C1-missing-patient-name-denies",
        [consent(patient_name=None)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
        facts=UNNAMED,
    ),
    row(
        "C1-patient-name-read-from-the-referenced-patient",
        [consent(patient_name=None)],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C1-missing-discloser-denies",
        [consent(organizations=())],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-missing-information-description-denies",
        [consent(root=permit(labels=[]))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-missing-recipient-denies",
        [consent(root=permit(actors=[]))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    # 2024 §2.31(a)(4)(i): "the name(s) of the person(s), or class of persons" in any consent
    # (PART2.md's table, older, allowed a general designation only in a TPO consent).
    row(
        "C1-class-of-persons-in-a-general-consent-permits",
        [consent(root=permit(actors=[designation()]))],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C1-class-of-persons-excludes-parties-outside-it",
        [consent(root=permit(actors=[designation()]))],
        request(who=requester(STRANGER, covered_entity=False)),
        DENY,
        "P2",
    ),
    row(
        "C1-expiration-on-the-nested-permit-permits",
        [
            consent(
                expires=None, root=provision("deny", children=[permit(period=(None, "2026-12-31"))])
            )
        ],
        request(),
        PERMIT,
        "C1",
        provision_path="provision.provision[0]",
    ),
    row(
        "C1-earliest-end-along-the-chain-applies",
        [
            consent(
                expires="2026-12-31",
                root=provision("deny", children=[permit(period=(None, "2026-02-28"))]),
            )
        ],
        request(),
        DENY,
        "P2",
    ),
    row(
        "C1-provenance-signature-signs-the-consent",
        [consent(performers=[])],
        request(),
        PERMIT,
        "C1",
        facts=ConsentFacts(
            patient_name="Alex Testperson",
            signatures=(ConsentSignature(PATIENT, datetime(2026, 1, 10, tzinfo=UTC)),),
            approved_forms=APPROVED_FORMS,
        ),
    ),
    row(
        "C1-provenance-signature-dates-the-consent",
        [consent(performers=[], signed=None)],
        request(),
        PERMIT,
        "C1",
        facts=ConsentFacts(
            patient_name="Alex Testperson",
            signatures=(ConsentSignature(PATIENT, datetime(2026, 1, 10, tzinfo=UTC)),),
            approved_forms=APPROVED_FORMS,
        ),
    ),
    row(
        "C1-missing-purpose-denies",
        [consent(root=permit(purposes=[]))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-missing-revocation-statement-denies",
        [consent(statements=())],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C1-missing-expiration-denies",
        [consent(expires=None)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-expiration-none-outside-tpo-denies",
        [consent(expires=None, expiration_event="none")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-end-of-treatment-expiration-permits",
        [consent(expires=None, expiration_event="end-of-treatment")],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C1-missing-signature-denies",
        [consent(performers=[])],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-missing-signed-form-denies",
        [consent(statements=None)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C1-missing-date-signed-denies",
        [consent(signed=None)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C1-tpo-without-redisclosure-statement-denies",
        [tpo_consent(statements=("right-to-revoke", REFUSAL_CONSEQUENCES))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C1-tpo-without-refusal-statement-denies",
        [tpo_consent(statements=("right-to-revoke", REDISCLOSURE_RISK))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C2-tpo-without-an-end-expires-never",
        [tpo_consent(expiration_event=None)],
        request(),
        PERMIT,
        "C2",
        as_of=datetime(2040, 1, 1, tzinfo=UTC),
    ),
    # C2: TPO consents
    row(
        "C2-tpo-to-covered-entity-permits-redisclosure",
        [tpo_consent()],
        request(),
        PERMIT,
        "C2",
        consent_id="consent-tpo",
        labels=REDISCLOSABLE,
    ),
    row(
        "C2-tpo-general-designation-excludes-other-parties",
        [tpo_consent()],
        request(who=requester(STRANGER, covered_entity=False)),
        DENY,
        "P2",
    ),
    row(
        "C2-tpo-general-designation-includes-part2-programs",
        [tpo_consent()],
        request(who=requester(OTHER_PROGRAM, covered_entity=False, part2_program=True)),
        PERMIT,
        "C2",
        labels=REFRAINED,
    ),
    row(
        "C2-tpo-to-named-non-covered-recipient-keeps-refrain",
        [tpo_consent(root=permit(actors=[actor(STRANGER)], purposes=list(v.TPO_PURPOSES)))],
        request(who=requester(STRANGER, covered_entity=False)),
        PERMIT,
        "C2",
        labels=REFRAINED,
    ),
    row(
        "C2-tpo-covers-payment",
        [tpo_consent()],
        request(who=requester(PAYER), purposes=("COVAUTH",)),
        PERMIT,
        "C2",
        labels=REDISCLOSABLE,
    ),
    row(
        "C2-tpo-covers-health-care-operations",
        [tpo_consent()],
        request(purposes=("HQUALIMP",)),
        PERMIT,
        "C2",
    ),
    row(
        "C2-general-consent-to-covered-entity-keeps-refrain",
        [GENERAL],
        request(),
        PERMIT,
        "C1",
        labels=REFRAINED,
    ),
    row(
        "C2-tpo-consent-naming-marketing-is-invalid",
        [tpo_consent(root=permit(actors=[designation()], purposes=[*v.TPO_PURPOSES, "HMARKT"]))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C2",),
    ),
    row(
        "C2-tpo-expiring-never-permits-years-later",
        [tpo_consent()],
        request(),
        PERMIT,
        "C2",
        as_of=datetime(2040, 1, 1, tzinfo=UTC),
    ),
    # C3: SUD counseling notes
    row(
        "C3-counseling-note-needs-its-own-consent",
        [GENERAL],
        request(data=COUNSELING_NOTE),
        DENY,
        "P2",
        supporting_rules=("C3",),
    ),
    row(
        "C3-counseling-notes-consent-permits-a-note",
        [COUNSELING_CONSENT],
        request(data=COUNSELING_NOTE),
        PERMIT,
        "C3",
        consent_id="consent-notes",
        labels=("R", v.SUD, v.COUNSELING_NOTE, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE),
    ),
    row(
        "C3-counseling-notes-consent-releases-no-other-record",
        [COUNSELING_CONSENT],
        request(),
        DENY,
        "P2",
    ),
    row(
        "C3-notes-combined-with-other-records-is-invalid",
        [consent(root=permit(labels=[label(v.SUD), label(v.COUNSELING_NOTE)]))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C3",),
    ),
    row(
        "C3-tpo-consent-never-releases-counseling-notes",
        [tpo_consent()],
        request(data=COUNSELING_NOTE),
        DENY,
        "P2",
        supporting_rules=("C3",),
    ),
    # C4: legal proceedings
    row(
        "C4-legal-consent-permits-hlegal",
        [LEGAL_CONSENT],
        COURT_REQUEST,
        PERMIT,
        "C4",
        consent_id="consent-legal",
    ),
    row(
        "C4-tpo-consent-never-covers-hlegal",
        [tpo_consent()],
        request(purposes=("HLEGAL",)),
        DENY,
        "P2",
    ),
    row(
        "C4-hlegal-combined-with-treatment-is-invalid",
        [consent(root=permit(actors=[actor(COURT)], purposes=["HLEGAL", "TREAT"]))],
        COURT_REQUEST,
        DENY,
        "P2",
        supporting_rules=("C4",),
    ),
    row(
        "C4-legal-consent-does-not-permit-treatment",
        [LEGAL_CONSENT],
        request(who=requester(COURT)),
        DENY,
        "P2",
    ),
    # C5: not in force
    row(
        "C5-expired-consent-denies",
        [consent(expires="2025-12-31")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    row(
        "C5-consent-valid-through-its-last-day",
        [consent(expires="2026-03-02")],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C5-expiration-event-occurred-denies",
        [consent(expires=None, expiration_event="end-of-treatment")],
        request(events=frozenset({"end-of-treatment"})),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    row(
        "C5-draft-consent-denies",
        [consent(status="draft")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    row(
        "C5-entered-in-error-consent-denies",
        [consent(status="entered-in-error")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    row(
        "C5-materially-false-consent-denies",
        [consent(known_false=True)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    row(
        "C5-consent-signed-after-the-disclosure-denies",
        [consent(signed="2026-06-01")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C5",),
    ),
    # C6: revocation
    row(
        "C6-revoked-consent-denies",
        [consent(status="inactive")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C6",),
    ),
    row(
        "C6-revoked-restriction-no-longer-blocks",
        [GENERAL, {**restriction(), "status": "inactive"}],
        request(),
        PERMIT,
        "C1",
    ),
    # C7: who signs
    row(
        "C7-adult-signed-only-by-representative-denies",
        [signed_by(performer(GUARDIAN, "GUARD"), capacity="adult")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C7",),
    ),
    row(
        "C7-self-consenting-minor-signs-alone",
        [signed_by(performer(PATIENT), capacity="minor-self-consent")],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C7-self-consenting-minor-cannot-be-replaced-by-parent",
        [signed_by(performer(PARENT, "PRN"), capacity="minor-self-consent")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C7",),
    ),
    row(
        "C7-minor-needing-parental-consent-signs-with-parent",
        [
            signed_by(
                performer(PATIENT), performer(PARENT, "PRN"), capacity="minor-parental-consent"
            )
        ],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C7-minor-needing-parental-consent-alone-denies",
        [signed_by(performer(PATIENT), capacity="minor-parental-consent")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C7",),
    ),
    row(
        "C7-patient-lacking-capacity-signs-through-guardian",
        [signed_by(performer(GUARDIAN, "GUARD"), capacity="lacks-capacity")],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C7-patient-lacking-capacity-cannot-sign-alone",
        [signed_by(performer(PATIENT), capacity="lacks-capacity")],
        request(),
        DENY,
        "P2",
        supporting_rules=("C7",),
    ),
    row(
        "C7-deceased-patient-represented-by-executor",
        [signed_by(performer("RelatedPerson/executor-1", "EXCEST"), capacity="deceased")],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "C7-minor-by-birth-date-signing-alone-permits",
        [consent()],
        request(),
        PERMIT,
        "C1",
        facts=MINOR,
    ),
    row(
        "C7-minor-by-birth-date-parent-alone-denies",
        [consent(performers=[performer(PARENT)])],
        request(),
        DENY,
        "P2",
        supporting_rules=("C7",),
        facts=MINOR,
    ),
    row(
        "C7-minor-signs-with-parent-named-by-relatedperson-relationship",
        [consent(performers=[performer(PATIENT), performer(PARENT)])],
        request(),
        PERMIT,
        "C1",
        facts=MINOR,
    ),
    row(
        "C7-adult-by-birth-date-signs-alone",
        [consent()],
        request(),
        PERMIT,
        "C1",
        facts=ConsentFacts(
            patient_name="Alex Testperson",
            patient_birth_date=date(1990, 5, 1),
            approved_forms=APPROVED_FORMS,
        ),
    ),
    # C8: a refusal is always honoured
    row(
        "C8-deficient-refusal-after-a-permit-is-honoured",
        [GENERAL, REFUSAL_UNSIGNED],
        request(),
        DENY,
        "C8",
        consent_id="consent-refusal",
        supporting_rules=(),
    ),
    row(
        "C8-opt-out-without-criteria-refuses-everything",
        [GENERAL, OPT_OUT],
        request(who=requester(PAYER), purposes=("HPAYMT",)),
        DENY,
        "C8",
        consent_id="consent-opt-out",
        provision_path="provision",
    ),
    row(
        "C8-root-deny-over-denies-only-is-a-blanket-refusal",
        [GENERAL, BLANKET],
        request(),
        DENY,
        "C8",
        consent_id="consent-blanket",
        provision_path="provision",
    ),
    row(
        "C8-nested-deny-with-access-action-blocks",
        [consent(root=permit(children=[provision("deny", actions=["access"])]))],
        request(),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-nested-deny-with-correct-action-blocks",
        [consent(root=permit(children=[provision("deny", actions=["correct"])]))],
        request(),
        DENY,
        "C8",
    ),
    row(
        "C8-deny-of-collection-only-leaves-disclosure",
        [consent(root=permit(children=[provision("deny", actions=["collect"])]))],
        request(),
        PERMIT,
        "C1",
        provision_path="provision",
    ),
    row(
        "C8-deny-purpose-in-oid-form-applies",
        [GENERAL, refusal_for(purpose("urn:oid:2.16.840.1.113883.5.8", "TREAT"))],
        request(),
        DENY,
        "C8",
        consent_id="consent-refusal",
    ),
    row(
        "C8-deny-purpose-in-unknown-system-applies",
        [GENERAL, refusal_for(purpose("http://example.org/local-purposes", "CARE"))],
        request(),
        DENY,
        "C8",
        consent_id="consent-refusal",
    ),
    row(
        "C8-permit-purpose-in-unknown-system-does-not-permit",
        [
            consent(
                root={
                    **permit(),
                    "purpose": [purpose("http://example.org/local-purposes", "TREAT")],
                }
            )
        ],
        request(),
        DENY,
        "P2",
    ),
    row(
        "C8-deny-class-in-unknown-system-applies",
        [
            consent(
                root=permit(
                    children=[
                        {
                            "type": "deny",
                            "class": [coding_of("http://example.org/classes", "sud-notes")],
                        }
                    ]
                )
            )
        ],
        request(),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-permit-class-in-unknown-system-does-not-permit",
        [
            consent(
                root={
                    **permit(labels=[]),
                    "class": [coding_of("http://example.org/classes", "sud-notes")],
                }
            )
        ],
        request(),
        DENY,
        "P2",
    ),
    row(
        "C8-refusal-beats-an-approved-tpo-consent",
        [tpo_consent(), restriction(actors=[designation()])],
        request(),
        DENY,
        "C8",
        consent_id="consent-restriction",
    ),
    # C9: consent forms approved once
    row(
        "C9-approved-form-supplies-the-revocation-statement",
        [consent(statements=(), form=FORM_URI)],
        request(),
        PERMIT,
        "C1",
        facts=APPROVED,
    ),
    row(
        "C9-unapproved-form-cannot-be-verified",
        [consent(statements=(), form=FORM_URI)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C9-approved-form-lacking-the-statement-denies",
        [consent(statements=(), form=FORM_URI)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
        facts=ConsentFacts(
            patient_name="Alex Testperson",
            approved_forms={FORM_URI: frozenset({REDISCLOSURE_RISK})},
        ),
    ),
    row(
        "C9-approved-tpo-form-supplies-the-tpo-statements",
        [tpo_consent(statements=(), form=TPO_FORM_URI)],
        request(),
        PERMIT,
        "C2",
        labels=REDISCLOSABLE,
        facts=APPROVED,
    ),
    row(
        "C9-tpo-on-a-form-approved-without-tpo-statements-denies",
        [tpo_consent(statements=(), form=FORM_URI)],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
        facts=APPROVED,
    ),
    # S1-S3: what travels with a disclosure, and only what the consent covers
    row(
        "S2-labels-in-oid-form-are-read",
        [GENERAL],
        request(data=item(labels=(("urn:oid:2.16.840.1.113883.5.4", v.OPIOIDUD),))),
        PERMIT,
        "C1",
        labels=("R", v.OPIOIDUD, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE),
    ),
    row(
        "S2-consent-label-in-the-old-fhir-url-matches",
        [consent(root=permit(labels=[label(v.SUD, "http://hl7.org/fhir/v3/ActCode")]))],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "S3-authoredby-practitioner-releases-their-records",
        [consent(root=permit(labels=[], data=[("authoredby", "Practitioner/dr-casey")]))],
        request(data=item(authors=("Practitioner/dr-casey",))),
        PERMIT,
        "C1",
    ),
    row(
        "S3-authoredby-device-deny-withholds-its-records",
        [
            consent(
                root=permit(children=[provision("deny", data=[("authoredby", "Device/pump-1")])])
            )
        ],
        request(data=item(authors=("Device/pump-1",))),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "S3-authoredby-practitionerrole-matched-by-identifier",
        [
            consent(
                root=permit(labels=[], children=[])
                | {
                    "data": [
                        {
                            "meaning": "authoredby",
                            "reference": {"identifier": {"system": NPI.system, "value": NPI.value}},
                        }
                    ]
                }
            )
        ],
        request(data=item(author_identifiers=(NPI,))),
        PERMIT,
        "C1",
    ),
    row(
        "P2-recipient-practitionerrole-matched-by-reference",
        [consent(root=permit(actors=[actor("PractitionerRole/counselor-1")]))],
        request(who=requester("PractitionerRole/counselor-1")),
        PERMIT,
        "C1",
    ),
    row(
        "P2-recipient-practitioner-matched-by-identifier",
        [consent(root=permit(actors=[actor(None, identifier=NPI, display="Dr. Casey")]))],
        request(who=requester("Practitioner/elsewhere-9", identifiers=(NPI,))),
        PERMIT,
        "C1",
    ),
    row(
        "S2-specific-opioid-label-kept",
        [GENERAL],
        request(data=item(labels=((v.ACT_CODE, v.OPIOIDUD),))),
        PERMIT,
        "C1",
        labels=("R", v.OPIOIDUD, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE),
    ),
    row(
        "S2-retired-eth-label-emitted-as-sud",
        [GENERAL],
        request(data=item(labels=((v.ACT_CODE, v.ETH),))),
        PERMIT,
        "C1",
        labels=REFRAINED,
    ),
    row(
        "S2-retired-nordslcd-never-emitted",
        [GENERAL],
        request(data=item(labels=((v.ACT_CODE, v.SUD), (v.ACT_CODE, v.NO_REDISCLOSURE_RETIRED)))),
        PERMIT,
        "C1",
        labels=REFRAINED,
    ),
    row(
        "S2-very-restricted-record-stays-v",
        [GENERAL],
        request(data=item(labels=((v.ACT_CODE, v.SUD), (v.CONFIDENTIALITY, "V")))),
        PERMIT,
        "C1",
        labels=("V", v.SUD, v.LAW_42CFR_PART2, v.NO_REDISCLOSURE),
    ),
    row(
        "S2-ethud-consent-does-not-cover-opioid-records",
        [consent(root=permit(labels=[label(v.ETHUD)]))],
        request(data=item(labels=((v.ACT_CODE, v.OPIOIDUD),))),
        DENY,
        "P2",
    ),
    row(
        "S3-care-plan-consent-releases-the-care-plan",
        [CARE_PLAN_ONLY],
        request(data=CARE_PLAN),
        PERMIT,
        "C1",
    ),
    row(
        "S3-care-plan-consent-withholds-medications",
        [CARE_PLAN_ONLY],
        request(data=MEDICATION),
        DENY,
        "P2",
    ),
    row(
        "S3-care-plan-consent-withholds-diagnoses",
        [CARE_PLAN_ONLY],
        request(),
        DENY,
        "P2",
    ),
    row(
        "S3-code-limited-consent-matches-the-code",
        [
            consent(
                root=permit(
                    labels=[], codes=[{"system": "http://snomed.info/sct", "code": "5602001"}]
                )
            )
        ],
        request(data=item(codes=(Coding("http://snomed.info/sct", "5602001"),))),
        PERMIT,
        "C1",
    ),
    row(
        "S3-code-limited-consent-withholds-other-codes",
        [
            consent(
                root=permit(
                    labels=[], codes=[{"system": "http://snomed.info/sct", "code": "5602001"}]
                )
            )
        ],
        request(data=item(codes=(Coding("http://snomed.info/sct", "191816009"),))),
        DENY,
        "P2",
    ),
    row(
        "S3-nested-deny-in-permit-wins-for-what-it-covers",
        [NESTED_DENY],
        request(data=MEDICATION),
        DENY,
        "C8",
        consent_id="consent-nested",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-deny-of-a-narrower-sud-kind-reaches-an-unspecified-sud-record",
        [consent(root=permit(children=[provision("deny", labels=[label(v.OPIOIDUD)])]))],
        request(),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-deny-of-a-narrower-sud-kind-spares-a-record-of-another-kind",
        [consent(root=permit(children=[provision("deny", labels=[label(v.OPIOIDUD)])]))],
        request(data=item(labels=((v.ACT_CODE, v.ETHUD),))),
        PERMIT,
        "C1",
    ),
    row(
        "C8-deny-of-an-icd10cm-category-reaches-the-codes-under-it",
        [
            consent(
                root=permit(
                    children=[provision("deny", codes=[coding(v.ICD10CM, "F11")])],
                )
            )
        ],
        request(data=item(codes=(Coding(v.ICD10CM, "F11.20"),))),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-deny-naming-snomed-by-its-oid-reaches-a-record-coded-by-url",
        [
            consent(
                root=permit(
                    children=[
                        provision(
                            "deny", codes=[coding("urn:oid:2.16.840.1.113883.6.96", "191816009")]
                        )
                    ],
                )
            )
        ],
        request(data=item(codes=(Coding(v.SNOMED_CT, "191816009"),))),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "C8-deny-by-url-reaches-a-record-coded-by-the-icd10cm-oid",
        [consent(root=permit(children=[provision("deny", codes=[coding(v.ICD10CM, "F11.20")])]))],
        request(data=item(codes=(Coding("urn:oid:2.16.840.1.113883.6.90", "F11.20"),))),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "S3-permit-of-an-icd10cm-category-does-not-reach-the-codes-under-it",
        [consent(root=permit(labels=[], codes=[coding(v.ICD10CM, "F11")]))],
        request(data=item(codes=(Coding(v.ICD10CM, "F11.20"),))),
        DENY,
        "P2",
    ),
    row(
        "S3-nested-deny-leaves-the-rest-permitted",
        [NESTED_DENY],
        request(),
        PERMIT,
        "C1",
        provision_path="provision",
    ),
    row(
        "S3-deny-at-depth-three-wins",
        [DEEP],
        request(data=DATED_2019),
        DENY,
        "C8",
        provision_path="provision.provision[0].provision[0].provision[0]",
    ),
    row(
        "S3-permit-at-depth-two-under-a-base-deny",
        [DEEP],
        request(),
        PERMIT,
        "C1",
        provision_path="provision.provision[0].provision[0]",
    ),
    row(
        "S3-base-deny-holds-outside-the-exception",
        [DEEP],
        request(who=requester(PAYER), purposes=("HPAYMT",)),
        DENY,
        "P2",
    ),
    row(
        "C1-another-recipients-opt-in-consent-does-not-block",
        [
            consent(
                id="consent-for-payer",
                root=provision(
                    "deny", children=[permit(actors=[actor(PAYER)], purposes=["HPAYMT"])]
                ),
            ),
            consent(id="consent-for-clinic", root=provision("deny", children=[permit()])),
        ],
        request(),
        PERMIT,
        "C1",
        consent_id="consent-for-clinic",
    ),
    row(
        "S3-data-period-excludes-older-records",
        [LAST_YEAR_ONLY],
        request(),
        DENY,
        "P2",
    ),
    row(
        "S3-data-period-includes-records-inside",
        [LAST_YEAR_ONLY],
        request(data=item(date=datetime(2025, 7, 1, tzinfo=UTC))),
        PERMIT,
        "C1",
    ),
    row(
        "S3-undated-record-not-permitted-by-a-dated-permit",
        [LAST_YEAR_ONLY],
        request(data=UNDATED),
        DENY,
        "P2",
    ),
    row(
        "S3-undated-record-caught-by-a-dated-deny",
        [WITHOUT_2019],
        request(data=UNDATED),
        DENY,
        "C8",
        provision_path="provision.provision[0]",
    ),
    row(
        "S3-dated-deny-leaves-other-years",
        [WITHOUT_2019],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "S3-data-instance-releases-that-record",
        [ONE_RECORD],
        request(),
        PERMIT,
        "C1",
    ),
    row(
        "S3-data-instance-withholds-other-records",
        [ONE_RECORD],
        request(data=item(reference="Condition/other")),
        DENY,
        "P2",
    ),
    row(
        "S3-data-related-releases-its-instance",
        [RELATED_TO_PLAN],
        request(data=item("CarePlan", reference="CarePlan/plan-1")),
        PERMIT,
        "C1",
    ),
    row(
        # R4 `related` is the instance and what it refers to, not what refers to it; and a
        # related permit reaches its instance alone (consent.engine._datum_matches).
        "S3-data-related-permit-does-not-release-records-that-refer-to-it",
        [RELATED_TO_PLAN],
        request(data=item("Goal", reference="Goal/g1", related=("CarePlan/plan-1",))),
        DENY,
        "P2",
    ),
    row(
        "S3-data-dependents-releases-records-that-refer-to-it",
        [DEPENDENTS_OF_PLAN],
        request(data=item("Goal", reference="Goal/g1", related=("CarePlan/plan-1",))),
        PERMIT,
        "C1",
    ),
    row(
        "S3-data-dependents-permit-needs-what-the-record-refers-to",
        [DEPENDENTS_OF_PLAN],
        request(data=item("Goal", reference="Goal/g1", related=None)),
        DENY,
        "P2",
    ),
    row(
        "S3-data-related-withholds-unrelated-records",
        [RELATED_TO_PLAN],
        request(data=item("Goal", reference="Goal/g2")),
        DENY,
        "P2",
    ),
    row("S3-disclose-action-permits-disclosure", [DISCLOSE_ONLY], request(), PERMIT, "C1"),
    row("S3-access-action-does-not-permit-disclosure", [ACCESS_ONLY], request(), DENY, "P2"),
    row(
        "S3-nested-permit-not-yet-in-effect",
        [
            consent(
                root=provision(
                    "deny",
                    children=[permit(period=("2026-06-01", None))],
                )
            )
        ],
        request(),
        DENY,
        "P2",
    ),
    # S4: purposes
    row("S4-request-without-purpose-denied", [GENERAL], request(purposes=()), DENY, "S4"),
    row(
        "S4-treat-covers-coordination-of-care",
        [GENERAL],
        request(purposes=("COC",)),
        PERMIT,
        "C1",
    ),
    row(
        "S4-treat-covers-emergency-treatment",
        [GENERAL],
        request(purposes=("ETREAT",)),
        PERMIT,
        "C1",
        emergency=False,
    ),
    row(
        "S4-child-purpose-does-not-cover-parent",
        [consent(root=permit(purposes=["COC"]))],
        request(),
        DENY,
        "P2",
    ),
    row(
        "S4-hoperat-never-covers-hlegal",
        [consent(root=permit(purposes=["HOPERAT"]))],
        request(purposes=("HLEGAL",)),
        DENY,
        "P2",
    ),
    row(
        "S4-treatment-consent-does-not-cover-payment",
        [GENERAL],
        request(purposes=("HPAYMT",)),
        DENY,
        "P2",
    ),
    row(
        "S4-every-purpose-must-be-permitted",
        [GENERAL],
        request(purposes=("TREAT", "HPAYMT")),
        DENY,
        "P2",
    ),
    row(
        "S4-unknown-purpose-is-covered-by-nothing-else",
        [GENERAL],
        request(purposes=("LOCALCODE",)),
        DENY,
        "P2",
    ),
    # E1: medical emergency
    row(
        "E1-break-the-glass-with-facts-permits",
        [],
        request(who=CLINICIAN, purposes=("BTG",), emergency=EMERGENCY_FACTS),
        PERMIT,
        "E1",
        emergency=True,
        labels=REFRAINED,
    ),
    row(
        "E1-etreat-with-facts-permits",
        [],
        request(who=CLINICIAN, purposes=("ETREAT",), emergency=EMERGENCY_FACTS),
        PERMIT,
        "E1",
        emergency=True,
    ),
    row(
        "E1-emergency-without-facts-denies",
        [],
        request(who=CLINICIAN, purposes=("ETREAT",)),
        DENY,
        "E1",
    ),
    row(
        "E1-emergency-missing-one-fact-denies",
        [],
        request(
            who=CLINICIAN,
            purposes=("BTG",),
            emergency=EMERGENCY_FACTS.__class__(
                personnel_name="Dr. Casey Example",
                personnel_affiliation="Riverside Clinic",
                nature_of_emergency=" ",
                disclosed_by="on-call nurse",
            ),
        ),
        DENY,
        "E1",
    ),
    row(
        "E1-emergency-to-non-medical-personnel-denies",
        [],
        request(purposes=("ETREAT",), emergency=EMERGENCY_FACTS),
        DENY,
        "E1",
    ),
    row(
        "E1-emergency-never-releases-counseling-notes",
        [],
        request(who=CLINICIAN, purposes=("BTG",), emergency=EMERGENCY_FACTS, data=COUNSELING_NOTE),
        DENY,
        "E1",
    ),
    row(
        "E1-emergency-releases-only-the-clinical-summary",
        [],
        request(
            who=CLINICIAN,
            purposes=("BTG",),
            emergency=EMERGENCY_FACTS,
            data=item("Claim", reference="Claim/c1"),
        ),
        DENY,
        "E1",
    ),
    row(
        "E1-emergency-overrides-a-patient-restriction",
        [restriction()],
        request(who=CLINICIAN, purposes=("BTG",), emergency=EMERGENCY_FACTS, data=MEDICATION),
        PERMIT,
        "E1",
        emergency=True,
    ),
    row(
        "E1-treatment-purpose-is-no-emergency",
        [],
        request(who=CLINICIAN, purposes=("TREAT",), emergency=EMERGENCY_FACTS),
        DENY,
        "P2",
    ),
    # E2: out of scope, never consent
    row(
        "E2-research-purpose-denied-even-with-consent",
        [consent(root=permit(purposes=["HRESCH"]))],
        request(purposes=("HRESCH",)),
        DENY,
        "E2",
    ),
    row(
        "E2-clinical-trial-research-denied",
        [GENERAL],
        request(purposes=("CLINTRCH",)),
        DENY,
        "E2",
    ),
    row(
        "E2-audit-and-evaluation-denied",
        [tpo_consent()],
        request(purposes=("HOPERAT",), basis=NonConsentBasis.AUDIT_EVALUATION),
        DENY,
        "E2",
    ),
    row(
        "E2-qsoa-denied",
        [tpo_consent()],
        request(purposes=("HOPERAT",), basis=NonConsentBasis.QSOA),
        DENY,
        "E2",
    ),
    # C1(d), §2.31(a)(4)(ii) (2024): a consent to an intermediary names it and its member
    # participants, by name (A) or by a general designation limited to participants with a
    # treating provider relationship (B); only those reached through it may receive.
    row(
        "C1-intermediary-named-participant-receives",
        [HIE_CONSENT],
        request(via=VIA_HIE),
        PERMIT,
        "C1",
        consent_id="consent-hie",
        labels=REFRAINED,
    ),
    row(
        "C1-intermediary-designated-participant-who-treats-receives",
        [HIE_DESIGNATION],
        request(who=requester(HILLTOP), via=VIA_HIE, treating=True),
        PERMIT,
        "C1",
        consent_id="consent-hie-designation",
    ),
    row(
        "C1-intermediary-designation-needs-a-treating-relationship",
        [HIE_DESIGNATION],
        request(who=requester(HILLTOP), via=VIA_HIE),
        DENY,
        "P2",
    ),
    row(
        "C1-intermediary-designation-reaches-no-one-outside-the-intermediary",
        [HIE_DESIGNATION],
        request(who=requester(HILLTOP), treating=True),
        DENY,
        "P2",
    ),
    row(
        "C1-intermediary-designation-is-no-class-of-all-covered-entities",
        [HIE_DESIGNATION],
        request(who=requester(HILLTOP, covered_entity=True)),
        DENY,
        "P2",
    ),
    row(
        "C1-intermediary-designation-only-through-the-named-intermediary",
        [HIE_DESIGNATION],
        request(who=requester(HILLTOP), via=Party("Organization/other-hie"), treating=True),
        DENY,
        "P2",
    ),
    row(
        "C1-intermediary-itself-receives",
        [HIE_CONSENT],
        request(who=requester(HIE, covered_entity=False)),
        PERMIT,
        "C1",
        consent_id="consent-hie",
    ),
    row(
        "C1-intermediary-matched-by-identifier",
        [
            consent(
                "consent-hie-by-oid",
                root=permit(
                    actors=[
                        intermediary(None, identifier=HIE_OID, display="State HIE"),
                        designation(PARTICIPANTS_WHO_TREAT_ME),
                    ]
                ),
            )
        ],
        request(who=requester(HILLTOP), via=Party(None, (HIE_OID,)), treating=True),
        PERMIT,
        "C1",
        consent_id="consent-hie-by-oid",
    ),
    row(
        "C1-intermediary-without-participants-is-not-relied-on",
        [consent("consent-hie-alone", root=permit(actors=[intermediary()]))],
        request(who=requester(HIE, covered_entity=False)),
        DENY,
        "P2",
        supporting_rules=("C1",),
    ),
    row(
        "C8-refusal-of-the-intermediary-stops-onward-disclosure",
        [HIE_CONSENT, restriction(actors=[intermediary()])],
        request(via=VIA_HIE),
        DENY,
        "C8",
        consent_id="consent-restriction",
    ),
    row(
        "C8-refusal-of-the-intermediary-leaves-a-direct-consent-standing",
        [GENERAL, restriction(actors=[intermediary()])],
        request(),
        PERMIT,
        "C1",
        consent_id="consent-general",
    ),
    # C9: a form filled as a Questionnaire is approved by its canonical and version; the
    # consent's sourceReference is the QuestionnaireResponse naming `url|version`.
    row(
        "C9-form-identified-by-questionnaire-canonical-and-version",
        [QUESTIONNAIRE_CONSENT],
        request(),
        PERMIT,
        "C1",
        consent_id="consent-questionnaire",
        facts=ConsentFacts(
            patient_name=PATIENT_NAME,
            approved_forms={QUESTIONNAIRE_V3: frozenset({RIGHT_TO_REVOKE, REDISCLOSURE_RISK})},
            source_forms=(QUESTIONNAIRE_V3,),
        ),
    ),
    row(
        "C9-another-version-of-the-questionnaire-cannot-be-verified",
        [QUESTIONNAIRE_CONSENT],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
        facts=ConsentFacts(
            patient_name=PATIENT_NAME,
            approved_forms={QUESTIONNAIRE + "|2": frozenset({RIGHT_TO_REVOKE})},
            source_forms=(QUESTIONNAIRE_V3,),
        ),
    ),
    # Probe: a consent may not vouch for its own §2.31 statements (C9), nor call a TPO grant
    # general (C2), and a covered entity receiving for treatment needs the HIPAA redisclosure
    # statement whatever the kind of consent (§2.31(a)(4)(iii)).
    row(
        "C9-a-consent-vouching-for-its-own-form-denies",
        [SELF_VOUCHED],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C2-a-tpo-grant-declared-general-needs-the-tpo-statements",
        [TPO_DECLARED_GENERAL],
        request(who=requester(PAYER), purposes=("HPAYMT",)),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C2-a-tpo-grant-declared-general-with-the-tpo-statements-permits",
        [{**TPO_DECLARED_GENERAL, "policy": [{"uri": form_stating(TPO_STATEMENTS)}]}],
        request(who=requester(PAYER), purposes=("HPAYMT",)),
        PERMIT,
        "C2",
        labels=REDISCLOSABLE,
    ),
    row(
        "C1-treatment-to-a-covered-entity-needs-the-hipaa-redisclosure-statement",
        [consent(statements=(RIGHT_TO_REVOKE,))],
        request(),
        DENY,
        "P2",
        supporting_rules=("C9",),
    ),
    row(
        "C1-treatment-to-a-program-not-a-covered-entity-needs-no-hipaa-statement",
        [consent(statements=(RIGHT_TO_REVOKE,))],
        request(who=requester(covered_entity=False, part2_program=True)),
        PERMIT,
        "C1",
        labels=REFRAINED,
    ),
    row(
        "C1-a-covered-entity-outside-tpo-needs-no-hipaa-statement",
        [consent(statements=(RIGHT_TO_REVOKE,), root=permit(purposes=["PATRQT"]))],
        request(purposes=("PATRQT",)),
        PERMIT,
        "C1",
    ),
    # A1: every decision is accounted (checked for every row below, named here too)
    row("A1-deny-is-accounted", [], request(), DENY, "P2"),
    row("A1-permit-is-accounted", [GENERAL], request(), PERMIT, "C1"),
]

IDS = [case.id for case in DECISION_CASES]


@pytest.mark.parametrize("case", DECISION_CASES, ids=IDS)
def test_decision(case: DecisionCase) -> None:
    decision = case.decide()

    assert decision.outcome is case.outcome, decision.reasons
    assert decision.reasons[0].rule == case.deciding_rule, decision.reasons
    assert set(case.supporting_rules) <= set(decision.rules[1:]), decision.reasons
    assert decision.emergency is case.emergency
    if case.consent_id is not None:
        assert decision.consent_id == case.consent_id
    if case.provision_path is not None:
        assert decision.provision_path == case.provision_path
    if case.labels is not None:
        assert tuple(label.code for label in decision.obligations.labels) == case.labels


@pytest.mark.parametrize("case", DECISION_CASES, ids=IDS)
def test_every_decision_is_accounted(case: DecisionCase) -> None:
    decision = case.decide()
    entry = decision.accounting

    assert entry.outcome is decision.outcome
    assert entry.rule == decision.reasons[0].rule
    assert entry.at == case.as_of
    assert entry.patient == case.request.patient
    assert entry.requester == case.request.requester
    assert entry.purposes == case.request.purposes
    assert entry.resource_reference == case.request.item.reference
    assert entry.consent_id == decision.consent_id
    assert entry.released == decision.obligations.released
    if decision.emergency:
        assert entry.emergency == case.request.emergency
    if entry.emergency is not None:
        assert entry.rule == "E1"


@pytest.mark.parametrize("case", DECISION_CASES, ids=IDS)
def test_obligations_follow_the_outcome(case: DecisionCase) -> None:
    decision = case.decide()
    obligations = decision.obligations

    if not decision.permitted:
        assert obligations.labels == obligations.released == ()
        assert obligations.notice is None
    elif decision.rules[0] == "P1":
        assert obligations.labels == ()
        assert obligations.notice is None
    elif decision.emergency:
        assert obligations.compliance_review
        assert obligations.notice is None
        assert v.NO_REDISCLOSURE in {label.code for label in obligations.labels}
    else:
        assert obligations.notice is not None
        assert obligations.notice.consent_reference == f"Consent/{decision.consent_id}"
        assert obligations.released[0] == case.request.item.resource_type
        assert not obligations.compliance_review


@pytest.mark.parametrize(
    "case", [c for c in DECISION_CASES if len(c.consents) > 1], ids=lambda c: c.id
)
def test_order_of_consents_does_not_matter(case: DecisionCase) -> None:
    reordered = decide(case.request, case.directives()[::-1], case.as_of)

    assert reordered == case.decide()


def test_case_ids_are_unique_and_name_a_rule() -> None:
    assert len(set(IDS)) == len(IDS)
    assert {case.rule for case in DECISION_CASES} == {
        "P1",
        "P2",
        "C1",
        "C2",
        "C3",
        "C4",
        "C5",
        "C6",
        "C7",
        "C8",
        "C9",
        "S2",
        "S3",
        "S4",
        "E1",
        "E2",
        "A1",
    }
    assert len(DECISION_CASES) >= 60


def test_permit_carries_the_part2_notice_and_scope() -> None:
    decision = decide(request(), [directive_from_fhir(GENERAL, facts=WORLD)], AS_OF)

    notice = decision.obligations.notice
    assert notice is not None
    assert (
        notice.short_statement
        == "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
    )
    assert notice.statement.startswith("This record which has been disclosed to you is protected")
    assert "TREAT" in notice.scope
    assert CLINIC in notice.scope
    assert notice.consent_reference == "Consent/consent-general"


def test_emergency_disclosure_records_the_section_2_51_facts() -> None:
    req = request(who=CLINICIAN, purposes=("BTG",), emergency=EMERGENCY_FACTS)

    decision = decide(req, [], AS_OF)

    assert decision.accounting.emergency == EMERGENCY_FACTS
    assert decision.accounting.at == AS_OF
    assert decision.obligations.compliance_review


def test_deny_text_never_names_the_withheld_record() -> None:
    decision = decide(
        request(data=MEDICATION), [directive_from_fhir(CARE_PLAN_ONLY, facts=WORLD)], AS_OF
    )

    assert all("methadone" not in reason.text for reason in decision.reasons)


def test_naive_time_cannot_be_evaluated() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(request(), [], datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(request(data=item(date=datetime(2026, 1, 2))), [], AS_OF)
