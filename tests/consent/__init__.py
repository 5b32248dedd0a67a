"""Builders of synthetic FHIR Consent JSON and disclosure requests for the consent tests.

Consents are built as FHIR R4 Consent dicts in the representation `mappings.consent`
documents, so that the decision table (`tests.consent.test_decisions.DECISION_CASES`) can be
replayed end to end through the HTTP API as well as through `consent.decide`. Every builder
takes keyword arguments defaulting to a valid general consent: a test changes only what its
rule is about. Synthetic people and organizations only.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from consent import (
    Coding,
    DataItem,
    DisclosureRequest,
    EmergencyFacts,
    Identifier,
    NonConsentBasis,
    Party,
    Requester,
)
from consent import vocabulary as v
from mappings.consent import (
    CONSENT_KIND,
    EXPIRATION_EVENT,
    INTERMEDIARY,
    KNOWN_FALSE,
    PATIENT_CAPACITY,
    REDISCLOSURE_RISK,
    REFUSAL_CONSEQUENCES,
    RIGHT_TO_REVOKE,
    SIGNER_RELATIONSHIP,
    ConsentFacts,
)

AS_OF = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
PATIENT = "Patient/sud-patient-1"
PATIENT_NAME = "Alex Testperson"
OTHER_PATIENT = "Patient/sud-patient-2"
PROGRAM = "Organization/harbor-detox"
OTHER_PROGRAM = "Organization/lakeside-outpatient"
CLINIC = "Organization/riverside-clinic"
CLINIC_NPI = Identifier("http://hl7.org/fhir/sid/us-npi", "1234567893")
PAYER = "Organization/state-medicaid"
STRANGER = "Organization/unknown-recipient"
COURT = "Organization/county-court"
HIE = "Organization/state-hie"
HIE_OID = Identifier("urn:ietf:rfc:3986", "urn:oid:2.16.840.1.113883.3.9999.77")
VIA_HIE = Party(HIE, (HIE_OID,))
PARENT = "RelatedPerson/parent-1"
GUARDIAN = "RelatedPerson/guardian-1"
# A general consent's form states the right to revoke (§2.31(a)(6)) and, since the usual
# recipient is a covered entity receiving for treatment, that it may redisclose under HIPAA
# (§2.31(a)(4)(iii)); a TPO consent's adds the consequences of refusing (§2.31(a)(10)).
ALL_STATEMENTS = (RIGHT_TO_REVOKE, REDISCLOSURE_RISK)
TPO_STATEMENTS = (RIGHT_TO_REVOKE, REDISCLOSURE_RISK, REFUSAL_CONSEQUENCES)
FORMS = "http://recovery-interop.example.org/forms/"
FORM_URI = FORMS + "part2-consent-2026"
TPO_FORM_URI = FORMS + "part2-tpo-consent-2026"


def form_stating(statements: Sequence[str]) -> str:
    """The form (`policy.uri`) the builders' consents name for a set of statements: compliance
    staff approved one form per set in WORLD (PART2.md C9)."""
    named = [statement for statement in TPO_STATEMENTS if statement in statements]
    return f"{FORMS}stating/{'+'.join(named) or 'nothing'}"


APPROVED_FORMS = {
    form_stating(chosen): frozenset(chosen)
    for size in range(len(TPO_STATEMENTS) + 1)
    for chosen in combinations(TPO_STATEMENTS, size)
}
# What the store knows around the rows' consents: the Patient they reference has a name, as
# the e2e replay stores it (PART2.md table, row (a)), and the forms the consents name are
# approved with the statements the builders give them (C9), as the e2e replay approves them.
WORLD = ConsentFacts(patient_name=PATIENT_NAME, approved_forms=APPROVED_FORMS)
UNNAMED = ConsentFacts(approved_forms=APPROVED_FORMS)
TREATING_PROVIDERS = (
    "my treating providers, health plans, third-party payers, and people helping to operate "
    "this program"
)


def coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def label(code: str, system: str = v.ACT_CODE) -> dict[str, str]:
    return coding(system, code)


def actor(
    reference: str | None = CLINIC,
    role: str = v.IRCP,
    *,
    display: str | None = None,
    identifier: Identifier | None = None,
) -> dict[str, Any]:
    """A provision actor: by default the clinic as information recipient."""
    target: dict[str, Any] = {}
    if reference is not None:
        target["reference"] = reference
    if identifier is not None:
        target["identifier"] = {"system": identifier.system, "value": identifier.value}
    if display is not None:
        target["display"] = display
    return {"role": {"coding": [coding(v.PARTICIPATION_TYPE, role)]}, "reference": target}


def intermediary(reference: str | None = HIE, **named: Any) -> dict[str, Any]:
    """An IRCP actor the consent names as an intermediary (§2.31(a)(4)(ii))."""
    return {"extension": [{"url": INTERMEDIARY, "valueBoolean": True}], **actor(reference, **named)}


PARTICIPANTS_WHO_TREAT_ME = (
    "participants of the state HIE who have a treating provider relationship with me"
)


def designation(display: str = TREATING_PROVIDERS) -> dict[str, Any]:
    """A general designation of recipients, allowed in a TPO consent (§2.31(a)(4)(i))."""
    return actor(None, display=display)


def provision(
    type: str | None = "permit",
    *,
    actors: Sequence[dict[str, Any]] = (),
    purposes: Sequence[str] = (),
    labels: Sequence[dict[str, str]] = (),
    classes: Sequence[str] = (),
    codes: Sequence[dict[str, str]] = (),
    actions: Sequence[str] = (),
    period: tuple[str | None, str | None] | None = None,
    data_period: tuple[str | None, str | None] | None = None,
    data: Sequence[tuple[str, str]] = (),
    children: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A Consent.provision; lists left empty are left out."""
    result: dict[str, Any] = {}
    if type is not None:
        result["type"] = type
    if period is not None:
        result["period"] = _period(period)
    if actors:
        result["actor"] = list(actors)
    if actions:
        result["action"] = [{"coding": [coding(v.CONSENT_ACTION, a)]} for a in actions]
    if labels:
        result["securityLabel"] = list(labels)
    if purposes:
        result["purpose"] = [coding(v.ACT_REASON, p) for p in purposes]
    if classes:
        result["class"] = [coding(v.RESOURCE_TYPES, c) for c in classes]
    if codes:
        result["code"] = [{"coding": [c]} for c in codes]
    if data_period is not None:
        result["dataPeriod"] = _period(data_period)
    if data:
        result["data"] = [{"meaning": m, "reference": {"reference": r}} for m, r in data]
    if children:
        result["provision"] = list(children)
    return result


def _period(bounds: tuple[str | None, str | None]) -> dict[str, str]:
    start, end = bounds
    return {key: value for key, value in (("start", start), ("end", end)) if value is not None}


def permit(**criteria: Any) -> dict[str, Any]:
    """The usual permit: SUD records to the clinic for treatment."""
    criteria.setdefault("actors", [actor()])
    criteria.setdefault("purposes", ["TREAT"])
    criteria.setdefault("labels", [label(v.SUD)])
    return provision("permit", **criteria)


def consent(
    id: str = "consent-general",
    *,
    status: str = "active",
    patient: str | None = PATIENT,
    patient_name: str | None = PATIENT_NAME,
    organizations: Sequence[str] = (PROGRAM,),
    signed: str | None = "2026-01-10",
    performers: Sequence[dict[str, Any]] | None = None,
    statements: Sequence[str] | None = ALL_STATEMENTS,
    kind: str | None = None,
    capacity: str | None = None,
    expires: str | None = "2026-12-31",
    expiration_event: str | None = None,
    known_false: bool = False,
    form: str | None = None,
    root: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A FHIR R4 Consent for a Part 2 disclosure, valid (read with WORLD) unless told otherwise.

    `statements` None leaves out the signed form itself; otherwise the signed copy is on file
    and the consent names the form approved in WORLD as stating them (`form_stating`), unless
    `form` names another by `policy.uri` (PART2.md C9); `root` replaces the root provision
    (whose period end is `expires`).
    """
    resource: dict[str, Any] = {"resourceType": "Consent", "id": id}
    extensions: list[dict[str, Any]] = []
    if kind is not None:
        extensions.append({"url": CONSENT_KIND, "valueCode": kind})
    if capacity is not None:
        extensions.append({"url": PATIENT_CAPACITY, "valueCode": capacity})
    if known_false:
        extensions.append({"url": KNOWN_FALSE, "valueBoolean": True})
    if extensions:
        resource["extension"] = extensions
    resource["status"] = status
    resource["scope"] = {"coding": [coding(v.CONSENT_SCOPE, v.PATIENT_PRIVACY)]}
    resource["category"] = [
        {"coding": [coding(v.LOINC, v.LOINC_RELEASE_OF_INFORMATION)]},
        {"coding": [coding(v.ACT_CODE, v.PART2_CONSENT_DIRECTIVE)]},
    ]
    reference = {
        key: value
        for key, value in (("reference", patient), ("display", patient_name))
        if value is not None
    }
    resource["patient"] = reference
    if signed is not None:
        resource["dateTime"] = signed
    signers = [{"reference": patient}] if performers is None and patient else performers
    if signers:
        resource["performer"] = list(signers)
    if organizations:
        resource["organization"] = [{"reference": o} for o in organizations]
    if statements is not None:
        resource["sourceAttachment"] = {
            "contentType": "application/pdf",
            "title": "Signed consent to disclose SUD records",
            "url": f"https://forms.example.org/signed/{id}.pdf",
        }
        form = form or form_stating(statements)
    if form is not None:
        resource["policy"] = [{"uri": form}]
    resource["policyRule"] = {"coding": [coding(v.ACT_CODE, v.LAW_42CFR_PART2)]}
    tree = dict(root if root is not None else permit())
    if expires is not None:
        tree["period"] = {**tree.get("period", {}), "end": expires}
    if expiration_event is not None:
        tree = {"extension": [{"url": EXPIRATION_EVENT, "valueCode": expiration_event}], **tree}
    resource["provision"] = tree
    return resource


def tpo_consent(id: str = "consent-tpo", **overrides: Any) -> dict[str, Any]:
    """A single TPO consent (§2.31, §2.33(b)) to the patient's treating providers and payers."""
    overrides.setdefault("statements", TPO_STATEMENTS)
    overrides.setdefault(
        "root",
        permit(actors=[designation()], purposes=["TREAT", "HPAYMT", "HOPERAT"]),
    )
    overrides.setdefault("expires", None)
    overrides.setdefault("expiration_event", "none")
    return consent(id, **overrides)


def restriction(id: str = "consent-restriction", **criteria: Any) -> dict[str, Any]:
    """A signed directive that only denies: by default, anything to the clinic."""
    criteria.setdefault("actors", [actor()])
    return consent(id, statements=(), expires=None, root=provision("deny", **criteria))


def performer(reference: str, relationship: str | None = None) -> dict[str, Any]:
    """A Consent.performer; a relationship marks a representative signing for the patient."""
    result: dict[str, Any] = {"reference": reference}
    if relationship is not None:
        result["extension"] = [
            {"url": SIGNER_RELATIONSHIP, "valueCoding": coding(v.ROLE_CODE, relationship)}
        ]
    return result


def requester(
    reference: str | None = CLINIC,
    *,
    identifiers: tuple[Identifier, ...] = (),
    covered_entity: bool = True,
    part2_program: bool = False,
    medical_personnel: bool = False,
) -> Requester:
    return Requester(
        reference=reference,
        identifiers=identifiers,
        display=None,
        is_covered_entity=covered_entity,
        is_part2_program=part2_program,
        is_medical_personnel=medical_personnel,
    )


def item(
    resource_type: str = "Condition",
    *,
    reference: str | None = "Condition/sud-dx-1",
    labels: tuple[tuple[str, str], ...] = ((v.ACT_CODE, v.SUD),),
    classes: tuple[Coding, ...] = (),
    codes: tuple[Coding, ...] = (),
    date: datetime | None = datetime(2026, 1, 20, tzinfo=UTC),
    source: str | None = PROGRAM,
    related: tuple[str, ...] | None = None,
    authors: tuple[str, ...] = (),
    author_identifiers: tuple[Identifier, ...] = (),
    part2: bool = True,
    counseling_note: bool = False,
) -> DataItem:
    """A record from the Part 2 program: an SUD diagnosis unless told otherwise."""
    return DataItem(
        resource_type=resource_type,
        reference=reference,
        security_labels=tuple(Coding(system, code) for system, code in labels),
        classes=classes,
        codes=codes,
        date=date,
        source_program=source,
        related=related,
        authors=authors,
        author_identifiers=author_identifiers,
        is_part2=part2,
        is_counseling_note=counseling_note,
    )


EMERGENCY_FACTS = EmergencyFacts(
    personnel_name="Dr. Casey Example",
    personnel_affiliation="Riverside Clinic emergency department",
    nature_of_emergency="unresponsive patient, suspected overdose",
    disclosed_by="Harbor Detox on-call nurse",
)


def request(
    *,
    patient: str = PATIENT,
    who: Requester | None = None,
    purposes: tuple[str, ...] = ("TREAT",),
    data: DataItem | None = None,
    action: str = v.DISCLOSE,
    emergency: EmergencyFacts | None = None,
    basis: NonConsentBasis | None = None,
    events: frozenset[str] = frozenset(),
    via: Party | None = None,
    treating: bool = False,
) -> DisclosureRequest:
    """The clinic asking for the SUD diagnosis for treatment, unless told otherwise."""
    return DisclosureRequest(
        patient=patient,
        requester=who or requester(),
        purposes=purposes,
        item=data or item(),
        action=action,
        emergency=emergency,
        non_consent_basis=basis,
        occurred_events=events,
        intermediary=via,
        treating_relationship=treating,
    )
