"""FHIR R4 Consent JSON <-> the engine's ConsentDirective, as PART2.md lays the §2.31 elements out.

Pure and dict-based (no fhir.resources): the gate and the API call it on stored JSON. Where a
§2.31 element lives in a Consent (partners write consents to this table):

- (1) patient's name: `patient`, a Reference whose `display` is the name (or the name passed
  as `patient_name` from the resolved Patient). A logical reference (`patient.identifier`
  only) names the stored Patient the caller resolved it to (`ConsentFacts.patient`).
- (2) who may disclose: `organization[]` (reference, identifier, or display only as a general
  designation).
- (3) what information: each permit's `securityLabel` / `class` / `code` / `data`; "all my SUD
  records" is v3-ActCode SUD (ETH accepted); SUD counseling notes are v3-ActCode PSYTHPN.
- (4) recipients: each permit's `actor` with v3-ParticipationType IRCP (or PRCP); a class of
  persons ("my treating providers") is a display-only reference (§2.31(a)(4)(i), 2024). An
  intermediary (§2.31(a)(4)(ii)) is an IRCP actor carrying the extension INTERMEDIARY
  (valueBoolean true); its member participants are the other IRCP actors of the same
  provision, by name (reference or identifier) or as a display-only general designation.
- (5) purposes: each permit's `purpose` (v3-ActReason).
- (6) right to revoke, (10) the TPO statements and (4)(iii) the statement that a covered
  entity may redisclose under HIPAA: the form the patient signed, named by `policy.uri` (or
  the signed form's attachment URL, or `sourceReference`), as compliance staff approved it
  with the statements it contains (`ConsentFacts.approved_forms`, PART2.md C9):
  `right-to-revoke`, `redisclosure-risk`, `refusal-consequences`. Nothing in the Consent
  itself says what its form states: a consent vouching for its own statements would need no
  approval at all.
- (7) expiration: the root `provision.period.end`, and/or the extension EXPIRATION_EVENT
  (valueCode) on the root `provision`: `end-of-treatment`, `none` (TPO only) or another event.
- (8) signature: `performer[]`, the Patient itself or a RelatedPerson (or another Patient)
  signing for them, with the extension SIGNER_RELATIONSHIP (valueCoding, v3-RoleCode such as
  GUARD, PRN, EXCEST) on the reference; plus the signed form itself: a `sourceAttachment`
  giving its bytes (`data`), `url` or `hash`, or a `sourceReference` (a title alone is no
  form), or a Provenance signature (`ConsentFacts.signatures`).
- (9) date signed: `dateTime`.

The base policy: a `policyRule` (or a `policy.uri` ending in the code) of v3-ActCode OPTOUT or
OPTOUTE makes the consent the patient's refusal. R4 leaves the root provision's type out
("not permitted in root rule, required in all nested rules") and calls a provision "an
exception to the base policy of this consent", so an untyped provision is read as a deny
wherever it stands, root or nested (`_typed`), and never as a permit:

- under an opt-out the untyped root is the refusal itself (`_as_refusal`), and an opt-out
  with no provision at all is a blanket refusal (PART2.md C8: a refusal whose terms are not
  understood still applies). An untyped exception beneath it would be a permit, which is
  never inferred: it is read as a deny, i.e. as part of the refusal around it;
- under OPTIN (or no stated policy) the exception to an assent is a withholding: the R4
  examples `notThem`, `notThis`, `notTime` and `notAuthor` ("withhold ... from") write it
  untyped, so the untyped provision is the patient's refusal of what its criteria cover.
  The `basic` authorization is written the same way, so the structure cannot tell the two
  apart: C8 decides (an unclear deny applies; a permit is never inferred). An untyped root
  with typed permits beneath it (`signature`, `smartonfhir`) is then the opt-in base policy,
  "nothing but what is permitted below", which the engine keeps silent towards whom it does
  not permit (`consent.engine`), exactly as before;
- an untyped nested provision is an exception to its parent: under a permit, a deny (what
  R4 means); under a deny it would be a permit, never inferred, so a deny again.

`provision_reading_notes` says, for the writer, which provisions were read this way.

`scope` (a modifier element) is kept: only a patient-privacy consent is relied on to disclose.

Also on the Consent: CONSENT_KIND (valueCode `general` | `tpo` | `counseling-notes` |
`legal-proceedings`): what the permits grant decides the kind, and a declaration counts only
where it asks more of the consent, never less (`consent.validity.held_kind`);
PATIENT_CAPACITY (valueCode `adult` (default) | `minor-self-consent` |
`minor-parental-consent` | `lacks-capacity` | `deceased`, for §2.14 and §2.15) and KNOWN_FALSE
(valueBoolean, §2.31(c)(4)). Revocation is `status` = `inactive`.
Without PATIENT_CAPACITY, a patient the store knows to be deceased (`Patient.deceased[x]`) at
signing, or at an unknown date, is `deceased` (§2.15(b)): a personal representative signs; a
"signature" by the patient after the recorded death is known to be false (§2.31(c)(4)).
`directive_to_fhir` writes the same representation back, with scope `patient-privacy`,
category LOINC 64292-6 plus v3-ActCode 42CFRPart2CD and policyRule v3-ActCode 42CFRPart2; the
form as `policy.uri` (`ConsentDirective.form`) and the signed copy as `sourceAttachment.url`,
or a `sourceReference` to the resource holding it (`signed_form`). What the store knows
around a consent (the approved forms' statements, signatures, its holder) is never written:
it is read again with the consent.

Dates: a FHIR date or partial dateTime without a zone is read in UTC; a period's start is the
first instant it names and its end the last (an end of "2026-06-30" lasts all that day).

Content that cannot be read as a Consent raises InvalidResource; a Consent that reads but
cannot be relied on under Part 2 is a value, reported by `directive_problems_as_issues`.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, TypeVar

from consent import vocabulary as v
from consent.model import (
    Actor,
    Coding,
    ConsentDirective,
    ConsentElement,
    ConsentKind,
    ConsentStatus,
    DataMeaning,
    DataReference,
    Identifier,
    PatientCapacity,
    Period,
    Provision,
    ProvisionType,
    Signer,
    SignerRole,
    provisions_in,
)
from consent.validity import check, held_kind
from mappings.errors import InvalidResource, Issue
from mappings.uris import document_url

EXTENSION_BASE: Final = "http://recovery-interop.example.org/fhir/StructureDefinition/"
EXPIRATION_EVENT: Final = EXTENSION_BASE + "consent-expiration-event"
CONSENT_KIND: Final = EXTENSION_BASE + "part2-consent-kind"
PATIENT_CAPACITY: Final = EXTENSION_BASE + "consent-patient-capacity"
SIGNER_RELATIONSHIP: Final = EXTENSION_BASE + "consent-signer-relationship"
KNOWN_FALSE: Final = EXTENSION_BASE + "consent-known-false"
INTERMEDIARY: Final = EXTENSION_BASE + "consent-actor-intermediary"
REVOCATION_RECEIVED: Final = EXTENSION_BASE + "consent-revocation-received"
"""The day the patient's written revocation was received (valueDate): the consent is revoked
whatever its status says (C5: known to be revoked)."""

RIGHT_TO_REVOKE: Final = "right-to-revoke"
REDISCLOSURE_RISK: Final = "redisclosure-risk"
REFUSAL_CONSEQUENCES: Final = "refusal-consequences"
FORM_TITLE: Final = "Signed 42 CFR Part 2 consent form"

# Where each problem points, as FHIRPath into the Consent (OperationOutcome.issue.expression).
ELEMENT_EXPRESSIONS: Final[Mapping[ConsentElement, str]] = {
    ConsentElement.PATIENT_NAME: "Consent.patient",
    ConsentElement.DISCLOSERS: "Consent.organization",
    ConsentElement.INFORMATION: "Consent.provision.securityLabel",
    ConsentElement.RECIPIENTS: "Consent.provision.actor",
    ConsentElement.PURPOSES: "Consent.provision.purpose",
    ConsentElement.REVOCATION_STATEMENT: "Consent.sourceAttachment",
    ConsentElement.EXPIRATION: "Consent.provision.period.end",
    ConsentElement.TERM_START: "Consent.provision.period.start",
    ConsentElement.SIGNATURE: "Consent.performer",
    ConsentElement.DATE_SIGNED: "Consent.dateTime",
    ConsentElement.REDISCLOSURE_STATEMENT: "Consent.sourceAttachment",
    ConsentElement.REFUSAL_STATEMENT: "Consent.sourceAttachment",
    ConsentElement.STATUS: "Consent.status",
    ConsentElement.PROVISIONS: "Consent.provision",
    ConsentElement.TRUTHFULNESS: f"Consent.extension('{KNOWN_FALSE}')",
    ConsentElement.SCOPE: "Consent.scope",
}

# Where a partner puts each element (PART2.md's table, as README "Writing a Part 2 consent"
# shows), appended to each warning so that a writer can fix the consent from the answer alone.
ELEMENT_HINTS: Final[Mapping[ConsentElement, str]] = {
    ConsentElement.PATIENT_NAME: "reference a Patient stored here with a name in "
    "Consent.patient (Consent.patient.display is the fallback)",
    ConsentElement.DISCLOSERS: "name the program(s) permitted to disclose in "
    "Consent.organization (reference or identifier)",
    ConsentElement.INFORMATION: "say what the permit releases in its securityLabel (v3-ActCode "
    "SUD for all SUD records), class, code or data",
    ConsentElement.RECIPIENTS: "name each recipient in the permit's actor with role "
    "v3-ParticipationType IRCP: a reference or identifier, or a display only for a class of "
    "persons; beside an intermediary (an IRCP actor with the consent-actor-intermediary "
    "extension) name its member participants or designate them in the same provision",
    ConsentElement.PURPOSES: "give the permit's purpose as v3-ActReason codes (TREAT, HPAYMT, "
    "HOPERAT, PATRQT...)",
    ConsentElement.REVOCATION_STATEMENT: "sign on a form compliance staff approved (named by "
    "Consent.policy.uri or the signed form's sourceAttachment.url)",
    ConsentElement.EXPIRATION: "give period.end on the permit or any provision above it, or "
    "the expiration-event extension on Consent.provision",
    ConsentElement.TERM_START: "nothing is disclosed under it before period.start; until then "
    "another consent in force is needed",
    ConsentElement.SIGNATURE: "list the signer in Consent.performer with the signed form in "
    "sourceAttachment (its url, data or hash) or sourceReference, or record a Provenance "
    "whose target is the Consent with a signature",
    ConsentElement.DATE_SIGNED: "give Consent.dateTime (or the Provenance signature's when)",
    ConsentElement.REDISCLOSURE_STATEMENT: "sign on a form approved as stating that the "
    "records may be redisclosed under HIPAA (statement redisclosure-risk; named by "
    "Consent.policy.uri)",
    ConsentElement.REFUSAL_STATEMENT: "sign on an approved form that states the consequences "
    "of refusing to sign (named by Consent.policy.uri)",
    ConsentElement.STATUS: "set Consent.status to active once signed",
    ConsentElement.PROVISIONS: "give Consent.provision a permit or deny",
    ConsentElement.TRUTHFULNESS: "correct the consent; one known to be false is never relied on",
    ConsentElement.SCOPE: "give Consent.scope consentscope patient-privacy: a research, treatment "
    "or advance-directive consent is not a consent to disclose",
}

# Consent.provision nests without limit in FHIR; a deeper tree than this is refused rather
# than walked by recursion.
MAX_PROVISION_DEPTH: Final = 32

_DATE_TIME = re.compile(
    r"(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?"
)
_END_OF_DAY: Final = time(23, 59, 59, 999999, tzinfo=UTC)
_REPRESENTATIVE_TYPES: Final = frozenset({"RelatedPerson", "Patient"})
_E = TypeVar("_E", ConsentKind, PatientCapacity, DataMeaning)


@dataclass(frozen=True, slots=True)
class ConsentSignature:
    """One signature on a Consent recorded apart from it (R4 `Provenance.signature`)."""

    who: str | None
    when: datetime | None


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """What the store knows about a Consent beyond its own JSON, resolved by the caller.

    `patient_name` is the name of the Patient `Consent.patient` references (§2.31(a)(1));
    `patient_birth_date` tells a minor (§2.14); `relationships` holds each signing
    RelatedPerson's `relationship` codings; `signatures` the Provenance signatures whose
    target is the Consent; `approved_forms` maps each consent form compliance staff approved
    (by `policy.uri`, which may hold a Questionnaire's canonical|version, the signed form's
    attachment URL, or the literal `sourceReference`, e.g. a DocumentReference) to the §2.31
    statements it contains (PART2.md C9); `source_forms` are the further keys the resource the
    consent's `sourceReference` points at names its form by (a QuestionnaireResponse's
    `questionnaire` canonical `url|version`, see `source_form_keys`), resolved by the caller.
    """

    patient_name: str | None = None
    patient_birth_date: date | None = None
    relationships: Mapping[str, tuple[Coding, ...]] = field(default_factory=dict)
    signatures: tuple[ConsentSignature, ...] = ()
    approved_forms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source_forms: tuple[str, ...] = ()
    recorded_by_holder: bool = True
    """Whether the consent was recorded by a party that holds it: this program's own side, or
    a program the consent names as disclosing (never a recipient writing its own permit)."""
    patient: str | None = None
    """The stored Patient (`Patient/{id}`) a Consent naming its patient by identifier only
    (an R4 logical reference) was found for; a literal `Consent.patient.reference` wins."""
    patient_ambiguous: bool = False
    """That identifier is carried by more than one stored Patient (see ConsentDirective)."""
    patient_deceased: bool = False
    """The Patient is recorded as deceased (`deceasedBoolean` true or a `deceasedDateTime`)."""
    patient_deceased_at: datetime | None = None
    """When, if `deceasedDateTime` says (its first instant)."""
    relatives_known: bool = False
    """`relationships` lists every RelatedPerson of this patient the store holds from writers
    the consent may rely on: a `RelatedPerson/{id}` signer not among them is someone else's
    relative, or one a stranger recorded, and signs nothing for this patient (§2.14, §2.15)."""


NO_FACTS: Final = ConsentFacts()


def _unknown_relative(reference: str | None, facts: ConsentFacts) -> bool:
    """A stored RelatedPerson that is not one of this patient's relatives as the store knows
    them (see `ConsentFacts.relatives_known`)."""
    return (
        facts.relatives_known
        and reference is not None
        and reference.startswith("RelatedPerson/")
        and reference not in facts.relationships
    )


def revocation_received(consent: Mapping[str, Any]) -> bool:
    """Whether the consent records that the patient's written revocation was received."""
    extensions = consent.get("extension")
    return isinstance(extensions, list) and any(
        isinstance(e, Mapping) and e.get("url") == REVOCATION_RECEIVED for e in extensions
    )


def revoked(consent: Mapping[str, Any]) -> bool:
    """Revoked: `inactive`, or recording that the written revocation was received."""
    return consent.get("status") == "inactive" or revocation_received(consent)


@dataclass(frozen=True, slots=True)
class Signing:
    """What identifies one signed document (PART2.md C5, C6), to tell a copy of a revoked
    consent under another id from another consent the patient signed.

    `identifiers` are the Consent's business identifiers (R4 `Consent.identifier`: one used
    for two records means the same consent). `forms` are every name the signed form is given:
    its attachment's URL (`mappings.uris.document_url`), the SHA-1 of its bytes (`hash`, or
    computed from `data`) and the literal `sourceReference`. `named` is who the provisions
    name (one form signed for two recipients at once is two consents); `terms` the whole
    provision tree, which tells documents apart when one of the two does not say its form."""

    signed: str | None
    forms: frozenset[str]
    named: str
    terms: str
    identifiers: frozenset[tuple[str | None, str]]

    def same_document(self, other: "Signing") -> bool:
        """Whether the two are one document: a shared identifier; or signed at the same
        instant and either naming the same form for the same recipients or, where either
        does not say its form, with the very same terms. A consent cannot escape its revoked
        original by leaving out what names its form."""
        if self.identifiers & other.identifiers:
            return True
        if self.signed is None or self.signed != other.signed:
            return False
        if self.forms and other.forms:
            return bool(self.forms & other.forms) and self.named == other.named
        return self.terms == other.terms


def signing(consent: Mapping[str, Any]) -> Signing:
    """The consent's signing (see `Signing`)."""
    provision = consent.get("provision")
    return Signing(
        signed=_instant_text(consent.get("dateTime")),
        forms=_form_names(consent),
        named=json.dumps(sorted(_named(provision))),
        terms=json.dumps(provision, sort_keys=True, default=str),
        identifiers=frozenset(_business_identifiers(consent.get("identifier"))),
    )


def _form_names(consent: Mapping[str, Any]) -> frozenset[str]:
    """Every name the consent gives its signed form (see `Signing.forms`)."""
    names: set[str] = set()
    source = consent.get("sourceAttachment")
    if isinstance(source, Mapping):
        url, digest, data = source.get("url"), source.get("hash"), source.get("data")
        if isinstance(url, str) and url.strip():
            names.add(document_url(url))
        if isinstance(digest, str) and digest.strip():
            names.add("sha1:" + digest.strip())
        if isinstance(data, str):
            names |= _data_digest(data)
    reference = consent.get("sourceReference")
    literal = reference.get("reference") if isinstance(reference, Mapping) else None
    if isinstance(literal, str) and literal.strip():
        names.add(document_url(literal))
    return frozenset(names)


def _data_digest(data: str) -> set[str]:
    """The `hash` R4 defines for an Attachment's `data` (base64 SHA-1 of its bytes), so that a
    copy giving the form's bytes is the document that gave their hash; none for bad base64."""
    try:
        content = base64.b64decode(data, validate=True)
    except binascii.Error:
        return set()
    digest = hashlib.sha1(content, usedforsecurity=False).digest()
    return {"sha1:" + base64.b64encode(digest).decode()}


def _business_identifiers(items: Any) -> Iterable[tuple[str | None, str]]:
    """(system in its canonical spelling, value) of each identifier giving both."""
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        system, value = item.get("system"), item.get("value")
        if isinstance(system, str) and system and isinstance(value, str) and value:
            yield v.canonical_identifier_system(system), value


def _named(provision: Any) -> set[str]:
    """Every actor reference a provision tree names."""
    if not isinstance(provision, Mapping):
        return set()
    found = {
        str(actor.get("reference", {}).get("reference"))
        for actor in provision.get("actor") or ()
        if isinstance(actor, Mapping) and isinstance(actor.get("reference"), Mapping)
    }
    for nested in provision.get("provision") or ():
        found |= _named(nested)
    return found


def _instant_text(value: Any) -> str | None:
    """A dateTime as one spelling of its instant (Z or +00:00 alike); a day as written."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).isoformat()


def copy_problem(consent: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> str | None:
    """Why this Consent may not be put in force as a copy of a revoked one, or None: the same
    signing (`signing`) as a Consent the patient revoked is that revoked document (C5)."""
    if consent.get("status") not in _IN_FORCE:
        return None
    key = signing(consent)
    if not any(revoked(other) and key.same_document(signing(other)) for other in others):
        return None
    return (
        "this is the signing of a consent the patient revoked (42 CFR 2.31, 2.35): sharing "
        "again needs a new consent, signed and dated anew"
    )


_IN_FORCE: Final = ("active", "proposed", "draft")


def revival_problem(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """Why this write may not put a consent back in force, or None. A revoked consent stays
    revoked (C6: revocation is the patient's written act): sharing again needs the patient's
    new consent, signed and dated anew, recorded as a new Consent."""
    if not revoked(before) or after.get("status") not in _IN_FORCE:
        return None
    return (
        "a revoked consent stays revoked (42 CFR 2.31, 2.35): record the patient's new "
        "consent as a new Consent"
    )


def directive_from_fhir(
    consent: Mapping[str, Any],
    *,
    patient_name: str | None = None,
    facts: ConsentFacts = NO_FACTS,
) -> ConsentDirective:
    """Read a FHIR R4 Consent (a parsed JSON dict) as a Part 2 consent directive.

    `facts` are what the store knows around it; `patient_name` alone is shorthand for facts
    naming the Patient. Raises InvalidResource when the dict is not a readable Consent.
    """
    if patient_name is not None:
        facts = replace(facts, patient_name=patient_name)
    reader = _Reader()
    directive = reader.directive(consent, facts)
    if reader.issues:
        raise InvalidResource(reader.issues)
    return directive


def form_keys(consent: Mapping[str, Any]) -> tuple[str, ...]:
    """How a Consent names the form it was signed on: `policy.uri`, the signed form's
    attachment URL, and the literal reference of `sourceReference` (PART2.md C9)."""
    keys = list(_policy_uris(consent))
    attachment = _attachment_url(consent)
    if attachment is not None:
        keys.append(attachment)
    reference = source_reference(consent)
    if reference is not None:
        keys.append(reference)
    return tuple(dict.fromkeys(keys))


def _policy_uris(consent: Mapping[str, Any]) -> tuple[str, ...]:
    """Every `policy.uri` of the Consent, in order."""
    policies = consent.get("policy")
    return tuple(
        policy["uri"]
        for policy in (policies if isinstance(policies, list) else ())
        if isinstance(policy, Mapping) and isinstance(policy.get("uri"), str)
    )


def _attachment_url(consent: Mapping[str, Any]) -> str | None:
    """The signed form's `sourceAttachment.url`, if any."""
    attachment = consent.get("sourceAttachment")
    if isinstance(attachment, Mapping) and isinstance(attachment.get("url"), str):
        return str(attachment["url"])
    return None


def _signed_form_on_file(consent: Mapping[str, Any]) -> bool:
    """§2.31(a)(8): whether the signed form itself is on file: an attachment giving its bytes,
    URL or hash, or a reference to the resource holding it. An attachment with a title only
    names a form nobody can produce, so it is no signed form."""
    attachment = consent.get("sourceAttachment")
    if isinstance(attachment, Mapping) and any(
        isinstance(attachment.get(key), str) and attachment[key].strip()
        for key in ("data", "url", "hash")
    ):
        return True
    reference = consent.get("sourceReference")
    if not isinstance(reference, Mapping):
        return False
    identifier = reference.get("identifier")
    named = [reference.get("reference")]
    if isinstance(identifier, Mapping):
        named.append(identifier.get("value"))
    return any(isinstance(name, str) and name.strip() for name in named)


def source_reference(consent: Mapping[str, Any]) -> str | None:
    """The literal reference of `Consent.sourceReference`, if any."""
    reference = consent.get("sourceReference")
    if isinstance(reference, Mapping) and isinstance(reference.get("reference"), str):
        return str(reference["reference"])
    return None


def source_form_keys(source: Mapping[str, Any]) -> tuple[str, ...]:
    """How the resource a Consent's `sourceReference` points at names the form it was filled
    on (PART2.md C9): a QuestionnaireResponse by its `questionnaire` canonical exactly as
    written, so `url|version` matches an approval of that version only (a form's statements
    may change between versions); a DocumentReference by its attachments' URLs."""
    if source.get("resourceType") == "QuestionnaireResponse":
        canonical = source.get("questionnaire")
        return (canonical.strip(),) if isinstance(canonical, str) and canonical.strip() else ()
    if source.get("resourceType") == "DocumentReference":
        return tuple(
            content["attachment"]["url"]
            for content in source.get("content") or ()
            if isinstance(content, Mapping)
            and isinstance(content.get("attachment"), Mapping)
            and isinstance(content["attachment"].get("url"), str)
        )
    return ()


def signatures_of(provenance: Mapping[str, Any], consent: str) -> tuple[ConsentSignature, ...]:
    """The signatures of a Provenance whose target is the Consent (`Consent/{id}`, any
    version): the R4 consent-signature pattern (`Provenance-consent-signature` example)."""
    targets = [t.get("reference") for t in provenance.get("target") or () if isinstance(t, Mapping)]
    if not any(
        isinstance(t, str) and (t == consent or t.startswith(f"{consent}/_history/"))
        for t in targets
    ):
        return ()
    found = []
    for signature in provenance.get("signature") or ():
        if not isinstance(signature, Mapping):
            continue
        who = signature.get("who")
        when = signature.get("when")
        found.append(
            ConsentSignature(
                who=who.get("reference") if isinstance(who, Mapping) else None,
                when=_instant(when, end=False) if isinstance(when, str) else None,
            )
        )
    return tuple(found)


def directive_problems_as_issues(
    directive: ConsentDirective,
    as_of: datetime,
    occurred_events: frozenset[str] = frozenset(),
    *,
    hints: Mapping[ConsentElement, str] | None = None,
) -> tuple[Issue, ...]:
    """Why a consent cannot be relied on now, as OperationOutcome warnings (business-rule),
    each with, given `hints`, where a partner puts the element."""
    return tuple(
        Issue(
            severity="warning",
            code="business-rule",
            diagnostics=f"{problem.rule}: {problem.text}"
            + (f"; {hints[problem.element]}" if hints and problem.element in hints else ""),
            expression=(ELEMENT_EXPRESSIONS[problem.element],),
        )
        for problem in check(directive, as_of, occurred_events).problems
    )


def directive_to_fhir(directive: ConsentDirective) -> dict[str, Any]:
    """Write a directive as a FHIR R4 Consent in this module's representation."""
    extensions: list[dict[str, Any]] = [{"url": CONSENT_KIND, "valueCode": directive.kind.value}]
    if directive.patient_capacity is not PatientCapacity.ADULT:
        extensions.append({"url": PATIENT_CAPACITY, "valueCode": directive.patient_capacity.value})
    if directive.materially_false:
        extensions.append({"url": KNOWN_FALSE, "valueBoolean": True})
    resource: dict[str, Any] = {"resourceType": "Consent"}
    if directive.id is not None:
        resource["id"] = directive.id
    resource["extension"] = extensions
    resource["status"] = directive.status.value
    resource["scope"] = _concept(directive.scope or Coding(v.CONSENT_SCOPE, v.PATIENT_PRIVACY))
    resource["category"] = [
        _concept(Coding(v.LOINC, v.LOINC_RELEASE_OF_INFORMATION)),
        _concept(Coding(v.ACT_CODE, v.PART2_CONSENT_DIRECTIVE)),
    ]
    patient = _without_nones({"reference": directive.patient, "display": directive.patient_name})
    if patient:
        resource["patient"] = patient
    if directive.signed_at is not None:
        resource["dateTime"] = directive.signed_at.isoformat()
    if directive.signers:
        resource["performer"] = [_signer_to_fhir(signer) for signer in directive.signers]
    if directive.disclosers:
        resource["organization"] = [_reference_to_fhir(actor) for actor in directive.disclosers]
    if directive.signed_form is not None and local_reference(directive.signed_form):
        resource["sourceReference"] = {"reference": directive.signed_form}
    elif directive.signed_form is not None:
        resource["sourceAttachment"] = {"title": FORM_TITLE, "url": directive.signed_form}
    if directive.form is not None:
        resource["policy"] = [{"uri": directive.form}]
    resource["policyRule"] = {
        "coding": [
            _coding_to_fhir(Coding(v.ACT_CODE, v.LAW_42CFR_PART2)),
            *([_coding_to_fhir(Coding(v.ACT_CODE, v.OPT_OUT))] if directive.opt_out else []),
        ]
    }
    if directive.provision is not None:
        provision = _provision_to_fhir(directive.provision)
        if directive.expiration_event:
            event = {"url": EXPIRATION_EVENT, "valueCode": directive.expiration_event}
            provision = {"extension": [event], **provision}
        resource["provision"] = provision
    return resource


class _Reader:
    """Reads a Consent dict, collecting an issue (with its FHIRPath) for each unreadable part."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def fail(self, path: str, code: str, text: str) -> None:
        self.issues.append(Issue("error", code, text, (path,)))

    def directive(self, consent: Mapping[str, Any], facts: ConsentFacts) -> ConsentDirective:
        if not isinstance(consent, Mapping) or consent.get("resourceType") != "Consent":
            self.fail("Consent", "structure", "not a FHIR Consent resource")
            return ConsentDirective(id=None, status=ConsentStatus.ENTERED_IN_ERROR, patient=None)
        status = self.status(consent.get("status"))
        if revocation_received(consent):
            status = ConsentStatus.INACTIVE
        patient = self.mapping(consent, "patient", "Consent.patient") or {}
        patient_reference = (
            self.string(patient, "reference", "Consent.patient.reference") or facts.patient
        )
        display = self.string(patient, "display", "Consent.patient.display")
        name = facts.patient_name or display
        keys = (*form_keys(consent), *facts.source_forms)
        approved = [facts.approved_forms[key] for key in keys if key in facts.approved_forms]
        statements = frozenset[str]().union(*approved)
        root = consent.get("provision")
        provision = None if root is None else self.provision(root, "Consent.provision", 0)
        opt_out = _opts_out(consent)
        if opt_out:
            provision = _as_refusal(provision)
        provision = _typed(provision)
        events = (
            self.codes(root, EXPIRATION_EVENT, "Consent.provision.extension")
            if isinstance(root, Mapping)
            else []
        )
        kind_codes = self.codes(consent, CONSENT_KIND, "Consent.extension")
        declared = (
            self.enum(ConsentKind, kind_codes[0], "Consent.extension") if kind_codes else None
        )
        capacity_codes = self.codes(consent, PATIENT_CAPACITY, "Consent.extension")
        signers = (
            *self.signers(consent, patient_reference, facts),
            *_signature_signers(facts, patient_reference),
        )
        signed_at = self.instant(consent.get("dateTime"), "Consent.dateTime", end=False)
        if signed_at is None:
            signed_at = min((s.when for s in facts.signatures if s.when is not None), default=None)
        after_death = _signed_after_death(facts, signed_at)
        capacity = (
            self.enum(PatientCapacity, capacity_codes[0], "Consent.extension")
            if capacity_codes
            else PatientCapacity.DECEASED
            if after_death
            else _capacity_from_age(facts.patient_birth_date, signed_at, signers)
        )
        # A dead patient cannot sign: a patient's signature dated after the recorded death is
        # known to be false (§2.31(c)(4)); with no date of death, C7 asks for a representative.
        signed_by_the_dead = (
            after_death
            and facts.patient_deceased_at is not None
            and any(signer.role is SignerRole.PATIENT for signer in signers)
        )
        return ConsentDirective(
            id=self.string(consent, "id", "Consent.id"),
            status=status,
            patient=patient_reference,
            patient_name=name,
            disclosers=tuple(
                self.actor_reference(reference, None, f"Consent.organization[{number}]")
                for number, reference in enumerate(
                    self.sequence(consent, "organization", "Consent.organization")
                )
            ),
            kind=held_kind(declared, provision),
            signed_at=signed_at,
            signers=signers,
            patient_capacity=capacity or PatientCapacity.ADULT,
            expiration_event=events[0] if events else None,
            has_signed_form=_signed_form_on_file(consent),
            has_revocation_statement=RIGHT_TO_REVOKE in statements,
            has_redisclosure_statement=REDISCLOSURE_RISK in statements,
            has_refusal_consequences_statement=REFUSAL_CONSEQUENCES in statements,
            materially_false=signed_by_the_dead
            or any(
                extension.get("valueBoolean") is True
                for extension in self.extensions(consent, KNOWN_FALSE, "Consent.extension")
            ),
            signature_on_file=bool(facts.signatures),
            form_approved=bool(approved),
            form=next(iter(_policy_uris(consent)), None),
            signed_form=_attachment_url(consent) or source_reference(consent),
            recorded_by_holder=facts.recorded_by_holder,
            opt_out=opt_out,
            scope=self.scope(consent),
            patient_ambiguous=facts.patient_ambiguous,
            provision=provision,
        )

    def scope(self, consent: Mapping[str, Any]) -> Coding | None:
        """The consentscope coding of `Consent.scope`, else its first coding; None for
        patient-privacy, the scope `directive_to_fhir` writes for a directive that has none,
        so that a consent reads back as it was written."""
        codings = self.concepts(consent, "scope", "Consent.scope", single=True)
        scope = next((c for c in codings if c.system == v.CONSENT_SCOPE), None) or next(
            iter(codings), None
        )
        return None if scope == Coding(v.CONSENT_SCOPE, v.PATIENT_PRIVACY) else scope

    def status(self, value: Any) -> ConsentStatus:
        try:
            return ConsentStatus(value)
        except ValueError:
            self.fail("Consent.status", "value", "status is missing or not a consent-state code")
            return ConsentStatus.ENTERED_IN_ERROR

    def signers(
        self, consent: Mapping[str, Any], patient: str | None, facts: ConsentFacts
    ) -> tuple[Signer, ...]:
        signers = []
        for number, performer in enumerate(
            self.sequence(consent, "performer", "Consent.performer")
        ):
            path = f"Consent.performer[{number}]"
            if not isinstance(performer, Mapping):
                self.fail(path, "structure", "a performer must be a Reference object")
                continue
            reference = self.string(performer, "reference", f"{path}.reference")
            relationships = [
                self.coding(extension.get("valueCoding"), f"{path}.extension")
                for extension in self.extensions(
                    performer, SIGNER_RELATIONSHIP, f"{path}.extension"
                )
            ]
            relationship = next((coding for coding in relationships if coding), None)
            if relationship is None and reference is not None:
                relationship = next(iter(facts.relationships.get(reference, ())), None)
            display = self.string(performer, "display", f"{path}.display")
            if reference is not None and reference == patient:
                signers.append(Signer(SignerRole.PATIENT, reference, relationship, display))
            elif _unknown_relative(reference, facts):
                continue
            elif relationship is not None or _resource_type(reference) in _REPRESENTATIVE_TYPES:
                signers.append(Signer(SignerRole.REPRESENTATIVE, reference, relationship, display))
        return tuple(signers)

    def provision(self, value: Any, path: str, depth: int) -> Provision | None:
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "a provision must be an object")
            return None
        if depth >= MAX_PROVISION_DEPTH:
            self.fail(path, "too-costly", f"provisions nest deeper than {MAX_PROVISION_DEPTH}")
            return None
        kind = value.get("type")
        if kind is not None and kind not in ("permit", "deny"):
            self.fail(f"{path}.type", "value", "type must be permit or deny")
        children = (
            self.provision(child, f"{path}.provision[{number}]", depth + 1)
            for number, child in enumerate(self.sequence(value, "provision", f"{path}.provision"))
        )
        return Provision(
            type=ProvisionType(kind) if kind in ("permit", "deny") else None,
            period=self.period(value.get("period"), f"{path}.period"),
            actors=tuple(
                self.actor(actor, f"{path}.actor[{number}]")
                for number, actor in enumerate(self.sequence(value, "actor", f"{path}.actor"))
            ),
            actions=self.concepts(value, "action", f"{path}.action"),
            purposes=self.codings(value, "purpose", f"{path}.purpose"),
            classes=self.codings(value, "class", f"{path}.class"),
            codes=self.concepts(value, "code", f"{path}.code"),
            security_labels=self.codings(value, "securityLabel", f"{path}.securityLabel"),
            data_period=self.period(value.get("dataPeriod"), f"{path}.dataPeriod"),
            data=tuple(
                data
                for number, item in enumerate(self.sequence(value, "data", f"{path}.data"))
                if (data := self.data(item, f"{path}.data[{number}]")) is not None
            ),
            provisions=tuple(child for child in children if child is not None),
        )

    def actor(self, value: Any, path: str) -> Actor:
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "an actor must be an object")
            return Actor(role=None)
        role = self.concepts(value, "role", f"{path}.role", single=True)
        reference = self.mapping(value, "reference", f"{path}.reference") or {}
        actor = self.actor_reference(reference, role[0] if role else None, f"{path}.reference")
        flags = self.extensions(value, INTERMEDIARY, f"{path}.extension")
        if any(extension.get("valueBoolean") is True for extension in flags):
            actor = replace(actor, intermediary=True)
        return actor

    def actor_reference(self, value: Any, role: Coding | None, path: str) -> Actor:
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "a reference must be an object")
            return Actor(role=role)
        identifier = self.mapping(value, "identifier", f"{path}.identifier")
        identifiers: tuple[Identifier, ...] = ()
        if identifier:
            identifier_value = self.string(identifier, "value", f"{path}.identifier.value")
            if identifier_value is not None:
                system = self.string(identifier, "system", f"{path}.identifier.system")
                identifiers = (Identifier(system, identifier_value),)
        return Actor(
            role=role,
            reference=self.string(value, "reference", f"{path}.reference"),
            identifiers=identifiers,
            display=self.string(value, "display", f"{path}.display"),
        )

    def data(self, value: Any, path: str) -> DataReference | None:
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "data must be an object")
            return None
        meaning = self.enum(DataMeaning, value.get("meaning"), f"{path}.meaning")
        target = self.actor_reference(
            self.mapping(value, "reference", f"{path}.reference") or {}, None, f"{path}.reference"
        )
        if meaning is None or (target.reference is None and not target.identifiers):
            self.fail(path, "required", "data needs a meaning and a reference or identifier")
            return None
        return DataReference(meaning, target.reference, target.identifiers)

    def period(self, value: Any, path: str) -> Period | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "a period must be an object")
            return None
        return Period(
            start=self.instant(value.get("start"), f"{path}.start", end=False),
            end=self.instant(value.get("end"), f"{path}.end", end=True),
        )

    def instant(self, value: Any, path: str, *, end: bool) -> datetime | None:
        if value is None:
            return None
        moment = _instant(value, end=end) if isinstance(value, str) else None
        if moment is None:
            self.fail(path, "value", "not a FHIR date or dateTime")
        return moment

    def concepts(
        self, value: Mapping[str, Any], key: str, path: str, *, single: bool = False
    ) -> tuple[Coding, ...]:
        """CodeableConcepts, flattened: a rule matches on any of their codings."""
        concepts = [value[key]] if single and key in value else None
        items = concepts if concepts is not None else self.sequence(value, key, path)
        codings: list[Coding] = []
        for number, concept in enumerate(items):
            where = path if single else f"{path}[{number}]"
            if not isinstance(concept, Mapping):
                self.fail(where, "structure", "a CodeableConcept must be an object")
                continue
            codings.extend(self.codings(concept, "coding", f"{where}.coding"))
        return tuple(codings)

    def codings(self, value: Mapping[str, Any], key: str, path: str) -> tuple[Coding, ...]:
        return tuple(
            coding
            for number, item in enumerate(self.sequence(value, key, path))
            if (coding := self.coding(item, f"{path}[{number}]")) is not None
        )

    def coding(self, value: Any, path: str) -> Coding | None:
        if not isinstance(value, Mapping):
            self.fail(path, "structure", "a Coding must be an object")
            return None
        code = self.string(value, "code", f"{path}.code")
        if code is None:
            return None
        return Coding(v.canonical_system(self.string(value, "system", f"{path}.system")), code)

    def codes(self, value: Mapping[str, Any], url: str, path: str) -> list[str]:
        """The valueCode of every extension with this URL."""
        codes = []
        for extension in self.extensions(value, url, path):
            code = extension.get("valueCode")
            if isinstance(code, str) and code:
                codes.append(code)
            else:
                self.fail(f"{path}('{url}')", "value", "the extension needs a valueCode")
        return codes

    def extensions(self, value: Mapping[str, Any], url: str, path: str) -> list[Mapping[str, Any]]:
        return [
            extension
            for extension in self.sequence(value, "extension", path)
            if isinstance(extension, Mapping) and extension.get("url") == url
        ]

    def enum(self, kind: type[_E], value: Any, path: str) -> _E | None:
        try:
            return kind(value)
        except ValueError:
            self.fail(path, "value", f"{value!r} is not one of {', '.join(kind)}")
            return None

    def mapping(self, value: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        item = value.get(key)
        if item is None or isinstance(item, Mapping):
            return item
        self.fail(path, "structure", f"{key} must be an object")
        return None

    def sequence(self, value: Mapping[str, Any], key: str, path: str) -> list[Any]:
        item = value.get(key)
        if item is None:
            return []
        if isinstance(item, list):
            return item
        self.fail(path, "structure", f"{key} must be an array")
        return []

    def string(self, value: Mapping[str, Any], key: str, path: str) -> str | None:
        item = value.get(key)
        if item is None or isinstance(item, str):
            return item
        self.fail(path, "structure", f"{key} must be a string")
        return None


def _signature_signers(facts: ConsentFacts, patient: str | None) -> tuple[Signer, ...]:
    """Who signed, by the Provenance signatures (§2.31(a)(8) "electronic is fine")."""
    signers = []
    for signature in facts.signatures:
        if signature.who is not None and signature.who == patient:
            signers.append(Signer(SignerRole.PATIENT, signature.who))
        elif _resource_type(signature.who) in _REPRESENTATIVE_TYPES:
            codings = facts.relationships.get(signature.who or "", ())
            relationship = codings[0] if codings else None
            signers.append(Signer(SignerRole.REPRESENTATIVE, signature.who, relationship))
    return tuple(signers)


_POLICY_URI_SEPARATORS: Final = re.compile(r"[#/|:=]")


def _opts_out(consent: Mapping[str, Any]) -> bool:
    """Whether the consent's base policy is an opt-out: `policyRule` v3-ActCode OPTOUT or
    OPTOUTE (any spelling of the system, or none), or a `policy.uri` whose last segment is
    one of those codes (e.g. `http://terminology.hl7.org/CodeSystem/v3-ActCode#OPTOUT`).

    Read leniently on purpose: taking a refusal for one costs a disclosure the patient may
    want, taking one for a permit would disclose what the patient refused (PART2.md C8)."""
    rule = consent.get("policyRule")
    codings = rule.get("coding") if isinstance(rule, Mapping) else None
    for coding in codings if isinstance(codings, list) else ():
        if (
            isinstance(coding, Mapping)
            and coding.get("code") in v.OPT_OUT_POLICIES
            and v.canonical_system(coding.get("system")) in (v.ACT_CODE, None)
        ):
            return True
    policies = consent.get("policy")
    return any(
        isinstance(policy, Mapping)
        and isinstance(policy.get("uri"), str)
        and _POLICY_URI_SEPARATORS.split(policy["uri"])[-1] in v.OPT_OUT_POLICIES
        for policy in (policies if isinstance(policies, list) else ())
    )


def _as_refusal(root: Provision | None) -> Provision:
    """An opt-out consent's provisions. No provision at all is a blanket refusal, and an
    untyped root the refusal itself (its untyped children inherit it), as in
    `consent-example-Out`. An untyped root that names a purpose or a recipient could be what
    the refusal is about ("not to Riverside") or what it still allows (the R4 examples
    `consent-example-Emergency`, "but for emergency treatment", and `consent-example-grantor`,
    "but this one person"): R4 types no root, so the text cannot say which. A refusal whose
    terms are not understood applies (PART2.md C8): it refuses everything from the programs
    the root names as disclosing, its typed nested rules kept."""
    if root is None:
        return Provision(type=ProvisionType.DENY)
    if root.type is not None:
        return root
    if not _states_an_exception(root):
        return replace(root, type=ProvisionType.DENY)
    sources = tuple(actor for actor in root.actors if _role_code(actor) in v.SOURCE_ROLES)
    return Provision(
        type=ProvisionType.DENY, period=root.period, actors=sources, provisions=root.provisions
    )


def _typed(provision: Provision | None) -> Provision | None:
    """The provision tree with every untyped provision read as a deny (see the module's
    docstring): an untyped provision is a refusal of what its criteria cover, never a
    permit (PART2.md C8)."""
    if provision is None:
        return None
    children = tuple(_typed(child) or child for child in provision.provisions)
    if provision.type is not None and children == provision.provisions:
        return provision
    return replace(provision, type=provision.type or ProvisionType.DENY, provisions=children)


def provision_reading_notes(consent: Mapping[str, Any]) -> tuple[Issue, ...]:
    """How the untyped provisions of a Consent are read, as OperationOutcome information for
    whoever wrote it: each is a refusal of what its criteria cover (`_typed`), and an opt-out's
    untyped root naming a purpose or a recipient refuses all the same (`_as_refusal`). An
    untyped root with typed permits beneath it is the usual R4 opt-in shape and needs no note.
    """
    root = consent.get("provision")
    if not isinstance(root, Mapping):
        return ()
    opt_out = _opts_out(consent)
    notes: list[Issue] = []
    stack: list[tuple[Mapping[str, Any], str]] = [(root, "Consent.provision")]
    while stack and len(notes) < _MAX_NOTES:
        provision, path = stack.pop()
        nested = [p for p in provision.get("provision") or () if isinstance(p, Mapping)]
        stack.extend(
            (child, f"{path}.provision[{number}]")
            for number, child in reversed(list(enumerate(nested)))
        )
        if provision.get("type") is not None:
            continue
        is_root = path == "Consent.provision"
        if is_root and not opt_out and _permits_beneath(provision):
            continue
        if is_root and opt_out:
            text = "the provision has no type: under the opt-out policyRule it is the patient's "
            text += (
                "refusal; the purpose or recipient it names is not read as an exception to it, "
                "since a permit is never inferred (PART2.md C8)"
                if _names_purpose_or_recipient(provision)
                else "refusal (PART2.md C8)"
            )
        elif is_root:
            text = (
                "the provision has no type: R4 makes a provision an exception to the consent's "
                "base policy, so it is read as a deny (the patient's refusal of what it covers), "
                "never as a permit (PART2.md C8); write type permit or deny to say which"
            )
        else:
            text = (
                "the nested provision has no type (R4 requires one): an exception to the "
                "provision above it, it is read as a deny, never as a permit (PART2.md C8); "
                "write type permit or deny to say which"
            )
        notes.append(Issue("information", "informational", text, (path,)))
    return tuple(notes)


_MAX_NOTES: Final = 20


def _names_purpose_or_recipient(provision: Mapping[str, Any]) -> bool:
    if provision.get("purpose"):
        return True
    for actor in provision.get("actor") or ():
        role = actor.get("role") if isinstance(actor, Mapping) else None
        codings = role.get("coding") if isinstance(role, Mapping) else None
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, Mapping) and coding.get("code") in v.RECIPIENT_ROLES:
                return True
    return False


_REFERENCE: Final = re.compile(
    r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?"
)


def local_reference(text: Any) -> str | None:
    """`Type/id` of a relative literal reference (a version of it included), None for anything
    else: an absolute URL names a record on some server by that server's ids, a `#id` a
    contained resource, a `urn:uuid:` an entry of a Bundle."""
    if not isinstance(text, str) or "://" in text or text.startswith(("#", "urn:")):
        return None
    match = _REFERENCE.fullmatch(text)
    return None if match is None else f"{match['type']}/{match['id']}"


def related_instances(directive: ConsentDirective) -> frozenset[str]:
    """The records (`Type/id`) named by the `related` data of the directive's denies, whose
    own references a reader from the store resolves (`with_related_reaches`)."""
    return frozenset(
        reference
        for provision in provisions_in(directive.provision)
        if provision.type is ProvisionType.DENY
        for data in provision.data
        if data.meaning is DataMeaning.RELATED
        and (reference := local_reference(data.reference)) is not None
    )


def with_related_reaches(
    directive: ConsentDirective, reaches: Mapping[str, frozenset[str] | None]
) -> ConsentDirective:
    """The directive with each `related` data item of its denies knowing the records its
    instance refers to (`DataReference.reaches`), from `reaches` (`Type/id` -> what that
    record refers to, None when it cannot be read)."""
    if directive.provision is None:
        return directive
    provision = _reaching(directive.provision, reaches)
    return (
        directive if provision is directive.provision else replace(directive, provision=provision)
    )


def _reached(
    item: DataReference, reaches: Mapping[str, frozenset[str] | None]
) -> frozenset[str] | None:
    """What a related refusal reaches beyond its instance as written: the records the instance
    refers to, and the instance itself as `Type/id` (a refusal naming a version of the record
    still reaches the record)."""
    instance = local_reference(item.reference)
    found = None if instance is None else reaches.get(instance)
    return None if found is None or instance is None else found | {instance}


def _reaching(provision: Provision, reaches: Mapping[str, frozenset[str] | None]) -> Provision:
    children = tuple(_reaching(child, reaches) for child in provision.provisions)
    data = provision.data
    if provision.type is ProvisionType.DENY:
        data = tuple(
            replace(item, reaches=_reached(item, reaches))
            if item.meaning is DataMeaning.RELATED
            else item
            for item in data
        )
    if data == provision.data and children == provision.provisions:
        return provision
    return replace(provision, data=data, provisions=children)


_MAX_REFERENCES: Final = 10_000


def references_in(resource: Any) -> frozenset[str]:
    """Every record a FHIR resource (parsed JSON) refers to by relative literal reference, as
    `Type/id`, wherever the Reference stands (extensions and contained resources included):
    what R4 consent-data-meaning calls the "instances it refers to" (`related`), and what makes
    a record one of the "instances that refer to" another (`dependents`)."""
    found: set[str] = set()
    stack: list[Any] = [resource]
    while stack and len(found) < _MAX_REFERENCES:
        value = stack.pop()
        if isinstance(value, Mapping):
            reference = local_reference(value.get("reference"))
            if reference is not None:
                found.add(reference)
            stack.extend(item for item in value.values() if isinstance(item, (Mapping, list)))
        elif isinstance(value, list):
            stack.extend(item for item in value if isinstance(item, (Mapping, list)))
    return frozenset(found)


def _permits_beneath(provision: Mapping[str, Any]) -> bool:
    """Whether a typed permit lies anywhere beneath the provision (JSON)."""
    stack = [p for p in provision.get("provision") or () if isinstance(p, Mapping)]
    while stack:
        child = stack.pop()
        if child.get("type") == "permit":
            return True
        stack.extend(p for p in child.get("provision") or () if isinstance(p, Mapping))
    return False


def _states_an_exception(root: Provision) -> bool:
    """Whether an opt-out's untyped root names a purpose or a recipient, which may be the
    exception to the refusal rather than its scope."""
    return bool(root.purposes) or any(
        _role_code(actor) in v.RECIPIENT_ROLES for actor in root.actors
    )


def _role_code(actor: Actor) -> str | None:
    return actor.role.code if actor.role is not None else None


def _signed_after_death(facts: ConsentFacts, signed_at: datetime | None) -> bool:
    """§2.15(b): whether the patient was already dead when the consent was signed; when the
    store knows the patient is dead but not since when, or the consent is undated, it is
    taken to be so, so that only a personal representative's consent is relied on."""
    if not facts.patient_deceased:
        return False
    if facts.patient_deceased_at is None or signed_at is None:
        return True
    return signed_at >= facts.patient_deceased_at


_AGE_OF_MAJORITY: Final = 18


def _capacity_from_age(
    birth_date: date | None, signed_at: datetime | None, signers: tuple[Signer, ...]
) -> PatientCapacity | None:
    """§2.14 from `Patient.birthDate`: a patient under 18 at signing is a minor. Signing alone,
    the minor consented to treatment alone (§2.14(b)); with a parent or guardian, where state
    law asks for one (§2.14(c)). A representative alone is held to (c), so C7 finds the
    minor's signature missing. None when the age cannot be told (the patient is then an adult,
    the default)."""
    if birth_date is None or signed_at is None:
        return None
    signed = signed_at.date()
    age = (
        signed.year
        - birth_date.year
        - ((signed.month, signed.day) < (birth_date.month, birth_date.day))
    )
    if age >= _AGE_OF_MAJORITY:
        return PatientCapacity.ADULT
    roles = {signer.role for signer in signers}
    if roles == {SignerRole.PATIENT}:
        return PatientCapacity.MINOR_SELF_CONSENT
    return PatientCapacity.MINOR_PARENTAL_CONSENT


def _resource_type(reference: str | None) -> str | None:
    """The type of a relative or absolute literal reference (`.../RelatedPerson/7`)."""
    if reference is None:
        return None
    parts = reference.split("/")
    return parts[-2] if len(parts) >= 2 else None


def _instant(text: str, *, end: bool) -> datetime | None:
    """The first (or, for `end`, the last) instant a FHIR date or dateTime names."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day = match["year"], match["month"], match["day"]
    try:
        if match["time"] is not None:
            fraction = (match["fraction"] or "")[:7]
            zone = "+00:00" if match["zone"] == "Z" else match["zone"]
            return datetime.fromisoformat(f"{year}-{month}-{day}T{match['time']}{fraction}{zone}")
        first = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None
    if not end:
        return datetime.combine(first, time(tzinfo=UTC))
    if day is not None:
        last = first
    elif month is not None:
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    else:
        last = first.replace(month=12, day=31)
    return datetime.combine(last, _END_OF_DAY)


def _moment_to_fhir(moment: datetime, *, end: bool) -> str:
    """A FHIR date where the instant is a whole UTC day's bound, else a dateTime."""
    if moment.utcoffset() == timedelta(0) and moment.timetz() == (
        _END_OF_DAY if end else time(tzinfo=UTC)
    ):
        return moment.date().isoformat()
    return moment.isoformat()


def _concept(coding: Coding) -> dict[str, Any]:
    return {"coding": [_coding_to_fhir(coding)]}


def _coding_to_fhir(coding: Coding) -> dict[str, Any]:
    return _without_nones({"system": coding.system, "code": coding.code})


def _reference_to_fhir(actor: Actor) -> dict[str, Any]:
    identifier = actor.identifiers[0] if actor.identifiers else None
    return _without_nones(
        {
            "reference": actor.reference,
            "identifier": None
            if identifier is None
            else _without_nones({"system": identifier.system, "value": identifier.value}),
            "display": actor.display,
        }
    )


def _signer_to_fhir(signer: Signer) -> dict[str, Any]:
    relationship = (
        None
        if signer.relationship is None
        else [{"url": SIGNER_RELATIONSHIP, "valueCoding": _coding_to_fhir(signer.relationship)}]
    )
    return _without_nones(
        {"extension": relationship, "reference": signer.reference, "display": signer.display}
    )


def _period_to_fhir(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return _without_nones(
        {
            "start": None if period.start is None else _moment_to_fhir(period.start, end=False),
            "end": None if period.end is None else _moment_to_fhir(period.end, end=True),
        }
    )


def _provision_to_fhir(provision: Provision) -> dict[str, Any]:
    return _without_nones(
        {
            "type": None if provision.type is None else provision.type.value,
            "period": _period_to_fhir(provision.period),
            "actor": [
                _without_nones(
                    {
                        "extension": [{"url": INTERMEDIARY, "valueBoolean": True}]
                        if actor.intermediary
                        else None,
                        "role": None if actor.role is None else _concept(actor.role),
                        "reference": _reference_to_fhir(actor),
                    }
                )
                for actor in provision.actors
            ]
            or None,
            "action": [_concept(action) for action in provision.actions] or None,
            "securityLabel": [_coding_to_fhir(c) for c in provision.security_labels] or None,
            "purpose": [_coding_to_fhir(c) for c in provision.purposes] or None,
            "class": [_coding_to_fhir(c) for c in provision.classes] or None,
            "code": [_concept(code) for code in provision.codes] or None,
            "dataPeriod": _period_to_fhir(provision.data_period),
            "data": [
                {
                    "meaning": data.meaning.value,
                    "reference": _reference_to_fhir(
                        Actor(role=None, reference=data.reference, identifiers=data.identifiers)
                    ),
                }
                for data in provision.data
            ]
            or None,
            "provision": [_provision_to_fhir(child) for child in provision.provisions] or None,
        }
    )


def _without_nones(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if item is not None}
