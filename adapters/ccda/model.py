"""What the C-CDA reader takes from a document, as frozen values; no FHIR here.

Values are kept as written: times stay HL7 TS strings ("20150622", "20190605104830-0400"),
codes keep the sender's code system OID, and nothing is looked up or corrected, except where a
field says so (security label spellings, the fail-closed confidentiality). Text taken from the
narrative has its XML layout whitespace collapsed to single spaces.
"""

from dataclasses import dataclass
from enum import StrEnum

from adapters.ccda.templates import (
    Confidentiality,
    DocumentKind,
    LabelKind,
    SectionKind,
)


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value as written: code system OID (None when the sender left it out), code and
    display name."""

    system_oid: str | None
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateId:
    root: str
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Identifier:
    """An HL7 II: root OID or UUID, and extension."""

    root: str | None
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """An HL7 time: a point (`value`) or an interval (`low`, `high`), each a raw TS string."""

    value: str | None = None
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True, slots=True)
class Quantity:
    """An HL7 PQ (or INT/REAL, without unit): value and UCUM unit as written."""

    value: str | None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class QuantityRange:
    """An HL7 IVL_PQ: a dose written as a range, or a goal's target range."""

    low: Quantity | None
    high: Quantity | None


# An observation value: coded (CD/CE/CV/CO), a quantity or range, or text (ST/ED and the rest,
# as the raw @value or text content).
Value = Code | Quantity | QuantityRange | str


@dataclass(frozen=True, slots=True)
class PersonName:
    """An HL7 PN: its parts as written, or `text` when the sender wrote the name unstructured."""

    use: str | None = None
    prefixes: tuple[str, ...] = ()
    given: tuple[str, ...] = ()
    family: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    text: str | None = None

    def full(self) -> str:
        """The name as one line: prefixes, given, family, suffixes, or the unstructured text."""
        parts = (*self.prefixes, *self.given, *self.family, *self.suffixes)
        joined = " ".join(part for part in parts if part)
        return joined or (self.text or "")


@dataclass(frozen=True, slots=True)
class Address:
    use: str | None = None
    street_lines: tuple[str, ...] = ()
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Telecom:
    """A telephone, fax, e-mail or Direct address: `value` is the URL as written (tel:, mailto:)."""

    value: str
    use: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    ids: tuple[Identifier, ...] = ()
    names: tuple[str, ...] = ()
    telecoms: tuple[Telecom, ...] = ()
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Patient:
    """ClinicalDocument/recordTarget/patientRole."""

    ids: tuple[Identifier, ...]
    names: tuple[PersonName, ...]
    birth_time: str | None
    gender: Code | None
    addresses: tuple[Address, ...]
    telecoms: tuple[Telecom, ...]
    provider_organization: Organization | None


@dataclass(frozen=True, slots=True)
class Author:
    """ClinicalDocument/author: a person (`names`) or a device (`device_model`,
    `device_software`), on behalf of an organization."""

    time: str | None
    ids: tuple[Identifier, ...]
    code: Code | None
    names: tuple[PersonName, ...]
    device_model: str | None
    device_software: str | None
    organization: Organization | None
    addresses: tuple[Address, ...] = ()
    telecoms: tuple[Telecom, ...] = ()


class LabelScope(StrEnum):
    """Where a security label applies.

    DOCUMENT: the header confidentialityCode and the DS4P Privacy Markings section (document-level
    privacy annotations); SECTION: a section's own confidentialityCode; ENTRY: a clinical
    statement's confidentialityCode or a DS4P privacy annotation inside an entry.
    """

    DOCUMENT = "document"
    SECTION = "section"
    ENTRY = "entry"


@dataclass(frozen=True, slots=True)
class SecurityLabel:
    """One security label (HL7 Healthcare Privacy and Security Classification System).

    `code` is normalised (NORDSLCD becomes NORDSCLCD) and `kind` decided by it alone; `written`
    keeps the code, system and display exactly as the sender wrote them. `section` is the LOINC
    code of the section holding the label (None in the header or when the section has no code).
    """

    code: str
    kind: LabelKind
    scope: LabelScope
    written: Code
    section: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A Problem Observation, with the status of the Problem Concern Act that holds it."""

    concern_status: str | None
    code: Code | None
    value: Code | None
    value_translations: tuple[Code, ...]
    text: str | None
    status: str | None
    effective: Period | None
    negated: bool


@dataclass(frozen=True, slots=True)
class Allergy:
    """An Allergy - Intolerance Observation, with its concern's status, reactions and severity."""

    concern_status: str | None
    allergy_type: Code | None
    substance: Code | None
    substance_text: str | None
    reactions: tuple[Code, ...]
    severity: Code | None
    status: str | None
    effective: Period | None
    negated: bool


@dataclass(frozen=True, slots=True)
class Medication:
    """A Medication Activity, enough to reconcile medications at a handoff.

    `section` says which list it came from (current, admission or discharge medications);
    `mood` is EVN for taken or given and INT for intended or prescribed; `product` is the
    manufacturedMaterial code (RxNorm for R2.1) with `product_translations` and
    `product_text` (its originalText or name); `text` is the sig as the sender wrote it;
    `frequency` is the period of a PIVL_TS effectiveTime.
    """

    section: SectionKind
    ids: tuple[Identifier, ...]
    mood: str | None
    status: str | None
    product: Code | None
    product_translations: tuple[Code, ...]
    product_text: str | None
    text: str | None
    dose: Quantity | QuantityRange | None
    route: Code | None
    frequency: Quantity | None
    effective: Period | None
    negated: bool


@dataclass(frozen=True, slots=True)
class PlannedActivity:
    """An entry of the Plan of Treatment (or Care Plan Interventions) section.

    `activity` is the clinical statement's element name (act, encounter, observation,
    procedure, substanceAdministration, supply); `mood` its moodCode (INT, RQO, PRMS, APT, ...);
    `product` the product code of a planned medication or supply.
    """

    section: SectionKind
    activity: str
    mood: str | None
    template_ids: tuple[TemplateId, ...]
    code: Code | None
    text: str | None
    status: str | None
    effective: Period | None
    product: Code | None


@dataclass(frozen=True, slots=True)
class Goal:
    """A Goal Observation: what is aimed at (`code`, `value`) and the sender's text."""

    code: Code | None
    value: Value | None
    text: str | None
    status: str | None
    effective: Period | None


@dataclass(frozen=True, slots=True)
class HealthConcern:
    """An entry of the Health Concerns section: a Health Concern or Risk Concern Act (with the
    values of the observations it refers to in `concerns`), or a Health Status Observation
    (with its `value`)."""

    template_ids: tuple[TemplateId, ...]
    code: Code | None
    status: str | None
    effective: Period | None
    text: str | None
    concerns: tuple[Code, ...]
    value: Value | None


@dataclass(frozen=True, slots=True)
class SectionSummary:
    """What a section holds, for tests and triage: `entry_count` counts its own entry elements
    (not those of subsections); `text_length` is the length of its narrative text after
    whitespace is collapsed; `level` is 1 for body sections, 2 for their subsections..."""

    kind: SectionKind
    template_ids: tuple[TemplateId, ...]
    code: Code | None
    title: str | None
    entry_count: int
    text_length: int
    level: int


@dataclass(frozen=True, slots=True)
class RelatedDocument:
    """ClinicalDocument/relatedDocument: typeCode RPLC (replaces), APND or XFRM, and the parent."""

    type_code: str | None
    ids: tuple[Identifier, ...]
    set_id: Identifier | None
    version_number: str | None


@dataclass(frozen=True, slots=True)
class NonXmlBody:
    """An unstructured document's body; `reference` is never dereferenced."""

    media_type: str | None
    representation: str | None
    reference: str | None
    content_length: int


@dataclass(frozen=True, slots=True)
class CcdaDocument:
    """A C-CDA document as read.

    `kind` comes from the templateIds, `code` is the LOINC document code as written;
    `confidentiality` is the header confidentialityCode read fail-closed, and
    `confidentiality_code` as written. `security_labels` hold every label found, header,
    section and entry level. `issues` lists what did not conform but was read anyway (a wrong
    document or section code, an unexpected confidentialityCode, a missing patient name...).
    `recipients` are the organizations of informationRecipient/intendedRecipient (who the
    document is for); `service_event` the code of the first documentationOf/serviceEvent (a
    Transfer Summary's care provision: the level of care left).
    """

    kind: DocumentKind
    code: Code | None
    template_ids: tuple[TemplateId, ...]
    id: Identifier | None
    set_id: Identifier | None
    version_number: str | None
    title: str | None
    effective_time: str | None
    confidentiality: Confidentiality
    confidentiality_code: Code | None
    security_labels: tuple[SecurityLabel, ...]
    patient: Patient | None
    authors: tuple[Author, ...]
    custodian: Organization | None
    related_documents: tuple[RelatedDocument, ...]
    reason_for_referral: str | None
    problems: tuple[Problem, ...]
    medications: tuple[Medication, ...]
    allergies: tuple[Allergy, ...]
    plan_of_treatment: tuple[PlannedActivity, ...]
    goals: tuple[Goal, ...]
    health_concerns: tuple[HealthConcern, ...]
    sections: tuple[SectionSummary, ...]
    non_xml_body: NonXmlBody | None
    issues: tuple[str, ...]
    recipients: tuple[Organization, ...] = ()
    service_event: Code | None = None

    def sections_of(self, kind: SectionKind) -> tuple[SectionSummary, ...]:
        """The sections of one kind, in document order."""
        return tuple(section for section in self.sections if section.kind is kind)
