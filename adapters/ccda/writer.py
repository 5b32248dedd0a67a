"""C-CDA R2.1 Referral Notes and Transfer Summaries for a handoff, with DS4P Part 2 markings.

`write_document(OutgoingDocument) -> bytes` builds the document with lxml (never by string
concatenation, so every value is escaped) and serialises it as UTF-8 with an XML declaration,
in the urn:hl7-org:v3 namespace, without a DOCTYPE. The same input gives the same bytes: entry
ids the input does not carry are name-based UUIDs (uuid5) of the document id and the entry's
place, and nothing reads the clock.

What is written (HL7 C-CDA R2.1, CDAR2_IG_CCDA_CLINNOTES_R1_DSTU2.1 Vol. 2; templateId root and
release date):
- header: US Realm Header (V3) 2.16.840.1.113883.10.20.22.1.1:2015-08-01, and the document
  template, Referral Note (V2) ...1.14:2015-08-01 (LOINC 57133-1) or Transfer Summary (V2)
  ...1.13:2015-08-01 (LOINC 18761-7); the Referral Note's intendedRecipient with a person name
  (CONF:1198-31589..31594); the Transfer Summary's documentationOf/serviceEvent PCPR with a PRF
  performer (CONF:1198-31570..31575);
- the sections each template SHALL contain: Reason for Referral (V2), Problem (entries required)
  (V3), Medications (entries required) (V2), Allergies and Intolerances (entries required) (V3),
  and an Assessment Section with a Plan of Treatment Section (V2) (CONF:1198-29102 / 31582);
  the Transfer Summary adds Results (entries required) (V3) and Vital Signs (entries required)
  (V3); a Goals Section is added when there are goals. A section with required entries and
  nothing to say carries @nullFlavor="NI" and the narrative "No information", as those section
  templates allow (e.g. CONF:1098-32845, CONF:1198-32875);
- entries: Problem Concern Act (V3) > Problem Observation (V3); Medication Activity (V2) >
  Medication Information (V2); Allergy Concern Act (V3) > Allergy - Intolerance Observation (V2)
  > Reaction Observation (V2) > Severity Observation (V2); Goal Observation; Planned Act,
  Encounter, Procedure or Observation (V2). As CONF:1198-32943 / 32946 require, a template that
  had a C-CDA R1.1 version is also asserted by its bare root;
- each section's narrative is a table of what its entries code, and each entry points at its
  row's text with <reference value="#..."/> (CDA R2 §4.3.5.1).

Part 2 data (PART2.md S1, S2; HL7 CDA R2 IG Data Segmentation for Privacy R1): confidentiality
R (or V), the Privacy Segmented Document template, the Mandatory Document Provenance templates on
the author, the consent relied on in authorization/consent (LOINC 64292-6 "Release of
information consent"), and, as the first section, the Privacy Markings Section whose narrative
is the §2.32 notice and whose Privacy Annotation holds one Security Observation per label:
confidentiality (SECCLASSOBS), sensitivity SUD (or ETHUD, OPIOIDUD; PSYTHPN for counseling notes)
and the law 42CFRPart2 (SECCATOBS), the refrain NORDSCLCD unless redisclosure is permitted (C2),
and any purposes of use (SECCONOBS). The observation codes use the code system DS4P R1 binds
(2.16.840.1.113883.1.11.20457); the label values use the code systems those codes live in today
(Confidentiality 2.16.840.1.113883.5.25, ActCode 2.16.840.1.113883.5.4, ActReason
2.16.840.1.113883.5.8), the ones the service's FHIR labels use, rather than the retired
SecurityObservationValue system 2.16.840.1.113883.5.1063 DS4P R1 names. NORDSLCD, the retired
spelling, is never written. A document that is not Part 2 data is confidentiality N and carries
no marking.

The clinical items are the reader's own types (`Problem`, `Medication`, `Allergy`, `Goal`), so
what is written reads back as the same value, with these rules:
- a value the template fixes may be left None and is written as fixed (Problem.status and
  Allergy.status "completed", Goal.status "active"); any other value is refused; a None
  concern status is "active", a None Medication.mood "EVN";
- Problem.code None is the Problem Type "Problem" (SNOMED CT 55607006, with the LOINC 75326-9
  translation CONF:1198-32950 asks for);
- each entry's narrative text is its own text, else its code's display name, else the code, and
  it reads back as such; text is written as given, and reads back with XML white space collapsed;
- a missing SHALL element the input has no value for is written with a nullFlavor (an unknown
  birth time, no address, no entries) rather than invented.
Input this writer cannot write faithfully raises ValueError naming the field.
"""

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from lxml import etree

from adapters.ccda import templates as t
from adapters.ccda.model import (
    Address,
    Allergy,
    Author,
    Code,
    Goal,
    Identifier,
    Medication,
    Organization,
    Patient,
    Period,
    PersonName,
    Problem,
    Quantity,
    QuantityRange,
    Telecom,
    Value,
)
from adapters.ccda.templates import Confidentiality, DocumentKind, LabelKind, SectionKind

__all__ = [
    "NO_KNOWN_ALLERGIES",
    "LevelOfCareTransition",
    "OutgoingDocument",
    "Part2Marking",
    "PlanItem",
    "PlannedKind",
    "Recipient",
    "write_document",
]

_V3: Final = "{" + t.HL7_V3 + "}"
_XSI_TYPE: Final = "{" + t.XSI + "}type"
_NSMAP: Final = {None: t.HL7_V3, "xsi": t.XSI}

# Releases this writer follows (C-CDA R2.1 Vol. 2); None for templates never versioned.
_R21: Final = "2015-08-01"
_R20: Final = "2014-06-09"

# US Realm Date and Time (DTM.US.FIELDED): precise to the day; a time of day needs its offset.
_DTM_US: Final = re.compile(r"\d{8}(\d{4}(\d{2}(\.\d{1,4})?)?[+-]\d{4})?")
# Any HL7 TS: at least the year, and an offset only after a time of day.
_TS: Final = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?[+-]\d{4})?)?)?")

_NO_INFORMATION: Final = "No information"
_PROBLEM_TYPE: Final = Code(t.SNOMED_CT, "55607006", "Problem")
_PROBLEM_TYPE_LOINC: Final = Code(t.LOINC, "75326-9", "Problem")
_CONCERN: Final = Code(t.ACT_CLASS, "CONC", "Concern")
_ASSERTION: Final = Code(t.ACT_CODE, "ASSERTION", "Assertion")
_SEVERITY: Final = Code(t.ACT_CODE, "SEV", "Severity Observation")
_RELEASE_OF_INFORMATION: Final = Code(t.LOINC, "64292-6", "Release of information consent")

_DOCUMENT_TEMPLATES: Final = {kind: root for root, kind in t.DOCUMENT_TEMPLATES.items()}
_DOCUMENT_NAMES: Final = {
    DocumentKind.REFERRAL_NOTE: "Referral note",
    DocumentKind.TRANSFER_SUMMARY: "Transfer summary note",
}
_CONFIDENTIALITY_NAMES: Final = {
    Confidentiality.NORMAL: "normal",
    Confidentiality.RESTRICTED: "restricted",
    Confidentiality.VERY_RESTRICTED: "very restricted",
}
# ActCode sensitivities a Part 2 disclosure may carry (PART2.md S2): SUD or its specific
# children, and PSYTHPN for SUD counseling notes; ETH is accepted on input only.
_PART2_SENSITIVITIES: Final = {
    "SUD": "substance use disorder information sensitivity",
    "ETHUD": "alcohol use disorder information sensitivity",
    "OPIOIDUD": "opioid use disorder information sensitivity",
    "PSYTHPN": "psychotherapy note",
}
_PART2_LAW: Final = Code(t.ACT_CODE, "42CFRPart2", "42 CFR Part2")
_NO_REDISCLOSURE: Final = Code(t.ACT_CODE, "NORDSCLCD", "no redisclosure without consent directive")
_MEDICATION_MOODS: Final = frozenset({"EVN", "INT"})
# Planned moodCode (Act/Encounter/Procedure) 2.16.840.1.113883.11.20.9.23, which Planned
# Observation's value set 2.16.840.1.113883.11.20.9.25 includes.
_PLANNED_MOODS: Final = frozenset({"INT", "ARQ", "PRMS", "PRP", "RQO"})


class PlannedKind(StrEnum):
    """What a Plan of Treatment entry plans; the value is its clinical statement's element."""

    ACT = "act"
    ENCOUNTER = "encounter"
    PROCEDURE = "procedure"
    OBSERVATION = "observation"


_PLANNED: Final[Mapping[PlannedKind, tuple[str, str]]] = {
    PlannedKind.ACT: (t.PLANNED_ACT, "ACT"),
    PlannedKind.ENCOUNTER: (t.PLANNED_ENCOUNTER, "ENC"),
    PlannedKind.PROCEDURE: (t.PLANNED_PROCEDURE, "PROC"),
    PlannedKind.OBSERVATION: (t.PLANNED_OBSERVATION, "OBS"),
}


@dataclass(frozen=True, slots=True)
class PlanItem:
    """A Plan of Treatment entry (Planned Act, Encounter, Procedure or Observation (V2)).

    `mood` is INT (intended), RQO (requested), PRMS (promised), PRP (proposed) or ARQ
    (appointment requested); `text` is what the narrative says of it.
    """

    kind: PlannedKind
    text: str
    code: Code | None = None
    mood: str = "INT"
    effective: Period | None = None


@dataclass(frozen=True, slots=True)
class LevelOfCareTransition:
    """The move a Transfer Summary documents: from one level of care to the next.

    The level left is the header serviceEvent's code (care provision since `from_start`), the
    level entered a Planned Encounter on `planned_date` in the Plan of Treatment. Times are
    HL7 TS strings.
    """

    from_level: Code
    to_level: Code
    planned_date: str
    from_start: str | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """The receiving program, and the person there the document is for when known."""

    organization: Organization
    person: PersonName | None = None


@dataclass(frozen=True, slots=True)
class Part2Marking:
    """What a document disclosing 42 CFR Part 2 data carries (PART2.md S1, S2).

    `notice` is the §2.32 statement (full or short form) and becomes the Privacy Markings
    narrative; `redisclosure_permitted` is set only when C2 allows redisclosure, and otherwise
    the refrain NORDSCLCD is written; `purposes_of_use` are ActReason codes (TREAT ...);
    `consent` identifies the consent the disclosure relies on.
    """

    notice: str
    confidentiality: Confidentiality = Confidentiality.RESTRICTED
    sensitivities: tuple[str, ...] = ("SUD",)
    redisclosure_permitted: bool = False
    purposes_of_use: tuple[str, ...] = ()
    consent: Identifier | None = None


@dataclass(frozen=True, slots=True)
class OutgoingDocument:
    """A Referral Note or Transfer Summary to write; `kind` says which.

    A Transfer Summary needs its `transition`, a Referral Note has none. `part2` is None for a
    document that is not Part 2 data. Times are HL7 TS strings; `effective_time` and the
    author's time follow DTM.US.FIELDED (to the day at least, with an offset when more precise).
    `allergies` may be (NO_KNOWN_ALLERGIES,).
    """

    kind: DocumentKind
    id: Identifier
    effective_time: str
    title: str
    patient: Patient
    author: Author
    custodian: Organization
    recipient: Recipient
    reason: str
    problems: tuple[Problem, ...] = ()
    medications: tuple[Medication, ...] = ()
    allergies: tuple[Allergy, ...] = ()
    plan: tuple[PlanItem, ...] = ()
    goals: tuple[Goal, ...] = ()
    assessment: str | None = None
    transition: LevelOfCareTransition | None = None
    part2: Part2Marking | None = None
    set_id: Identifier | None = None
    version_number: int | None = None
    language: str = "en-US"


NO_KNOWN_ALLERGIES: Final = Allergy(
    concern_status="active",
    allergy_type=Code(t.SNOMED_CT, "419199007", "Allergy to substance (disorder)"),
    substance=None,
    substance_text=None,
    reactions=(),
    severity=None,
    status="completed",
    effective=None,
    negated=True,
)
"""The patient has no known allergies: a negated Allergy - Intolerance Observation with no
substance (C-CDA R2.1, "No Known Allergies" example)."""


def write_document(document: OutgoingDocument) -> bytes:
    """The document as UTF-8 C-CDA R2.1 XML; ValueError names input it cannot write."""
    root = _Writer(document).clinical_document()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# Building blocks


def _el(
    parent: etree._Element,
    name: str,
    attributes: Mapping[str, str | None] | None = None,
    text: str | None = None,
) -> etree._Element:
    """A v3 child element; attributes whose value is None are left out."""
    element = etree.SubElement(parent, _V3 + name)
    for key, value in (attributes or {}).items():
        if value is not None:
            element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _template(parent: etree._Element, root: str, release: str | None, *, r11: bool) -> None:
    """The templateId of a release, and the bare R1.1 root when the template had an R1.1
    version (CONF:1198-32943)."""
    _el(parent, "templateId", {"root": root, "extension": release})
    if r11:
        _el(parent, "templateId", {"root": root})


def _code(
    parent: etree._Element, name: str, code: Code | None, xsi_type: str | None = None
) -> etree._Element:
    """A coded element, or nullFlavor NI when there is no code."""
    if code is None:
        return _el(parent, name, {_XSI_TYPE: xsi_type, "nullFlavor": "NI"})
    if code.system_oid is None:
        raise ValueError(f"code {code.code!r} has no code system; C-CDA requires one")
    return _el(
        parent,
        name,
        {
            _XSI_TYPE: xsi_type,
            "code": code.code,
            "codeSystem": code.system_oid,
            "displayName": code.display,
        },
    )


def _translation(parent: etree._Element, code: Code) -> None:
    _code(parent, "translation", code)


def _reference(parent: etree._Element, narrative_id: str) -> None:
    _el(parent, "reference", {"value": "#" + narrative_id})


def _identifier(parent: etree._Element, identifier: Identifier, name: str = "id") -> None:
    if identifier.root is None:
        raise ValueError(f"identifier {identifier.extension!r} has no root; an HL7 II needs one")
    _el(parent, name, {"root": identifier.root, "extension": identifier.extension})


def _identifiers(parent: etree._Element, identifiers: tuple[Identifier, ...]) -> None:
    """Ids, or one id with nullFlavor NI where CDA requires at least one."""
    for identifier in identifiers:
        _identifier(parent, identifier)
    if not identifiers:
        _el(parent, "id", {"nullFlavor": "NI"})


def _name(parent: etree._Element, name: PersonName | None) -> None:
    """A PN: its parts as given, or the unstructured text, or nullFlavor UNK."""
    if name is None or not name.full():
        _el(parent, "name", {"nullFlavor": "UNK"})
        return
    element = _el(parent, "name", {"use": name.use})
    parts = (
        ("prefix", name.prefixes),
        ("given", name.given),
        ("family", name.family),
        ("suffix", name.suffixes),
    )
    if not any(values for _, values in parts):
        element.text = name.text
    elif name.text is not None:
        raise ValueError(f"name {name.full()!r} has both parts and unstructured text")
    for tag, values in parts:
        for value in values:
            _el(element, tag, text=value)


def _addresses(parent: etree._Element, addresses: tuple[Address, ...]) -> None:
    """AD.US.FIELDED addresses, or one with nullFlavor UNK where the template needs one."""
    for address in addresses:
        element = _el(parent, "addr", {"use": address.use})
        for line in address.street_lines:
            _el(element, "streetAddressLine", text=line)
        for tag, value in (
            ("city", address.city),
            ("state", address.state),
            ("postalCode", address.postal_code),
            ("country", address.country),
        ):
            if value is not None:
                _el(element, tag, text=value)
    if not addresses:
        _el(parent, "addr", {"nullFlavor": "UNK"})


def _telecoms(parent: etree._Element, telecoms: tuple[Telecom, ...]) -> None:
    for telecom in telecoms:
        _el(parent, "telecom", {"use": telecom.use, "value": telecom.value})
    if not telecoms:
        _el(parent, "telecom", {"nullFlavor": "UNK"})


def _organization(parent: etree._Element, name: str, organization: Organization) -> None:
    """An Organization with the id, name, telecom and addr C-CDA requires of every organization
    in the header (nullFlavor where the input has none)."""
    element = _el(parent, name)
    _identifiers(element, organization.ids)
    for organization_name in organization.names:
        _el(element, "name", text=organization_name)
    if not organization.names:
        _el(element, "name", {"nullFlavor": "UNK"})
    _telecoms(element, organization.telecoms)
    _addresses(element, organization.addresses)


def _time(value: str, what: str, pattern: re.Pattern[str] = _TS) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not an HL7 time of the form the template requires")
    return value


def _period(
    parent: etree._Element,
    name: str,
    period: Period | None,
    xsi_type: str | None = None,
    *,
    interval: bool = False,
) -> etree._Element:
    """An IVL_TS: a point (@value) or low/high; an unknown start is low nullFlavor UNK.
    `interval` is for templates whose effectiveTime SHALL have a low (problems, allergies)."""
    element = _el(parent, name, {_XSI_TYPE: xsi_type})
    if period is not None and period.value is not None:
        if period.low is not None or period.high is not None:
            raise ValueError(f"period {period} is both a point and an interval")
        if interval:
            raise ValueError(f"period {period} is a point; the template needs an onset (low)")
        element.set("value", _time(period.value, "time"))
        return element
    low = None if period is None else period.low
    high = None if period is None else period.high
    if low is None:
        _el(element, "low", {"nullFlavor": "UNK"})
    else:
        _el(element, "low", {"value": _time(low, "start")})
    if high is not None:
        _el(element, "high", {"value": _time(high, "end")})
    return element


def _concern_time(concern: etree._Element, status: str, effective: Period | None) -> None:
    """A concern act's effectiveTime: when the concern began and, once completed, ended
    (CONF:1198-7504, 10085); unknown bounds are nullFlavor UNK."""
    period = effective or Period()
    element = _el(concern, "effectiveTime")
    for name, value, needed in (
        ("low", period.low, True),
        ("high", period.high, status == "completed"),
    ):
        if value is not None and needed:
            _el(element, name, {"value": _time(value, name)})
        elif needed:
            _el(element, name, {"nullFlavor": "UNK"})


def _quantity(parent: etree._Element, name: str, quantity: Quantity) -> None:
    _el(parent, name, {"value": quantity.value, "unit": quantity.unit})


def _value(parent: etree._Element, value: Value) -> None:
    """An observation value typed by what it is: CD, PQ, IVL_PQ or ST."""
    if isinstance(value, Code):
        _code(parent, "value", value, "CD")
    elif isinstance(value, Quantity):
        _el(parent, "value", {_XSI_TYPE: "PQ", "value": value.value, "unit": value.unit})
    elif isinstance(value, QuantityRange):
        element = _el(parent, "value", {_XSI_TYPE: "IVL_PQ"})
        for name, bound in (("low", value.low), ("high", value.high)):
            if bound is not None:
                _quantity(element, name, bound)
    else:
        _el(parent, "value", {_XSI_TYPE: "ST"}, value)


def _fixed(value: str | None, fixed: str, what: str) -> str:
    """A value the template fixes: None is written as fixed, anything else is refused."""
    if value not in (None, fixed):
        raise ValueError(f"{what} is {value!r}; the template fixes it to {fixed!r}")
    return fixed


# Narrative text


def _shown_code(code: Code | None) -> str:
    if code is None:
        return ""
    return code.display or code.code


def _shown_time(value: str | None) -> str:
    """An HL7 TS as a reader sees it: 20240501 is 2024-05-01; a time of day stays as given."""
    if value is None:
        return ""
    date = value[:8]
    shown = "-".join(part for part in (date[:4], date[4:6], date[6:8]) if part)
    return f"{shown} {value[8:]}".strip()


def _shown_period(period: Period | None) -> str:
    if period is None:
        return ""
    if period.value is not None:
        return _shown_time(period.value)
    return " to ".join(
        part for part in (_shown_time(period.low) or "unknown", _shown_time(period.high)) if part
    )


def _shown_quantity(quantity: Quantity | QuantityRange | None) -> str:
    if quantity is None:
        return ""
    if isinstance(quantity, QuantityRange):
        return " to ".join(
            _shown_quantity(bound) for bound in (quantity.low, quantity.high) if bound
        )
    return " ".join(part for part in (quantity.value, quantity.unit) if part)


def _shown_value(value: Value | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, Code):
        return _shown_code(value)
    return _shown_quantity(value)


_XML_WHITE_SPACE: Final = " \t\r\n"
"""What XML collapses; a no-break space is text (XML 1.0 §2.3 S)."""


def _described(*candidates: str | None, what: str) -> str:
    """The first non-blank description of an entry; an entry the narrative cannot describe is
    refused, since C-CDA requires the narrative to carry what the entries code."""
    for candidate in candidates:
        if candidate is not None and candidate.strip(_XML_WHITE_SPACE):
            return candidate
    raise ValueError(f"{what} has neither text nor a code to show in the narrative")


class _Table:
    """A narrative table; cells given an id become <content ID> that entries reference."""

    def __init__(self, text: etree._Element, headers: tuple[str, ...]) -> None:
        table = _el(text, "table", {"border": "1", "width": "100%"})
        row = _el(_el(table, "thead"), "tr")
        for header in headers:
            _el(row, "th", text=header)
        self.body = _el(table, "tbody")

    def row(self, *cells: str | tuple[str, str]) -> None:
        """One row; a cell is its text, or (narrative id, text) for text an entry references."""
        row = _el(self.body, "tr")
        for cell in cells:
            td = _el(row, "td")
            if isinstance(cell, tuple):
                _el(td, "content", {"ID": cell[0]}, cell[1])
            else:
                td.text = cell


@dataclass(frozen=True, slots=True)
class _Section:
    """How one section is identified: templateId root and release, whether it had an R1.1
    version, LOINC code and title."""

    root: str
    release: str | None
    r11: bool
    code: str
    title: str


_REASON: Final = _Section(
    t.REASON_FOR_REFERRAL_SECTION,
    _R20,
    True,
    t.SECTION_CODES[SectionKind.REASON_FOR_REFERRAL][0],
    "Reason for Referral",
)
_PROBLEMS: Final = _Section(
    t.PROBLEM_SECTION, _R21, True, t.SECTION_CODES[SectionKind.PROBLEMS][0], "Problems"
)
_MEDICATIONS: Final = _Section(
    t.MEDICATIONS_SECTION, _R20, True, t.SECTION_CODES[SectionKind.MEDICATIONS][0], "Medications"
)
_ALLERGIES: Final = _Section(
    t.ALLERGIES_SECTION,
    _R21,
    True,
    t.SECTION_CODES[SectionKind.ALLERGIES][0],
    "Allergies and Intolerances",
)
_RESULTS: Final = _Section(t.RESULTS_SECTION, _R21, True, t.RESULTS_CODE, "Results")
_VITAL_SIGNS: Final = _Section(t.VITAL_SIGNS_SECTION, _R21, True, t.VITAL_SIGNS_CODE, "Vital Signs")
_ASSESSMENT: Final = _Section(t.ASSESSMENT_SECTION, None, False, t.ASSESSMENT_CODE, "Assessment")
_PLAN: Final = _Section(
    t.PLAN_OF_TREATMENT_SECTION,
    _R20,
    True,
    t.SECTION_CODES[SectionKind.PLAN_OF_TREATMENT][0],
    "Plan of Treatment",
)
_GOALS: Final = _Section(
    t.GOALS_SECTION, None, False, t.SECTION_CODES[SectionKind.GOALS][0], "Goals"
)
_PRIVACY: Final = _Section(
    t.PRIVACY_MARKINGS_SECTION,
    None,
    False,
    t.SECTION_CODES[SectionKind.PRIVACY_MARKINGS][0],
    "Privacy and Security Markings",
)


class _Label(NamedTuple):
    """One DS4P Security Observation: its specific template (None for the generic Security
    Observation), observation type and the type's display name, and the label itself."""

    template: str | None
    kind: str
    kind_display: str
    value: Code


class _Writer:
    """Writes one OutgoingDocument."""

    def __init__(self, document: OutgoingDocument) -> None:
        self.document = document
        identifier = document.id
        if identifier.root is None:
            raise ValueError("the document id has no root")
        self._namespace = uuid.uuid5(
            uuid.NAMESPACE_OID, f"{identifier.root}^{identifier.extension or ''}"
        )
        self.labels = () if document.part2 is None else tuple(_security_labels(document.part2))

    def entry_id(self, parent: etree._Element, *place: object) -> None:
        """An id for an entry the input gives none: a UUID named by the document and the
        entry's place in it, so the same document always gets the same ids (HL7 v3 writes
        UUIDs in upper case)."""
        name = "/".join(str(part) for part in place)
        _el(parent, "id", {"root": str(uuid.uuid5(self._namespace, name)).upper()})

    # Header

    def clinical_document(self) -> etree._Element:
        document = self.document
        if document.kind not in _DOCUMENT_NAMES:
            raise ValueError(
                f"the writer writes Referral Notes and Transfer Summaries, not {document.kind}"
            )
        if (document.kind is DocumentKind.TRANSFER_SUMMARY) != (document.transition is not None):
            raise ValueError(
                "a Transfer Summary needs its level-of-care transition; a Referral Note has none"
            )
        if (document.set_id is None) != (document.version_number is None):
            raise ValueError("setId and versionNumber go together (CONF:1198-6380, 6387)")
        marking = document.part2
        # lxml-stubs 0.5 type nsmap keys as str; lxml takes None for the default namespace.
        root = etree.Element(_V3 + "ClinicalDocument", nsmap=_NSMAP)  # type: ignore[arg-type]
        _el(root, "realmCode", {"code": "US"})
        _el(root, "typeId", {"root": "2.16.840.1.113883.1.3", "extension": "POCD_HD000040"})
        _template(root, t.US_REALM_HEADER, _R21, r11=True)
        _template(root, _DOCUMENT_TEMPLATES[document.kind], _R21, r11=False)
        if marking is not None:
            _template(root, t.PRIVACY_SEGMENTED_DOCUMENT, None, r11=False)
        _identifier(root, document.id)
        code = Code(t.LOINC, t.DOCUMENT_CODES[document.kind], _DOCUMENT_NAMES[document.kind])
        _code(root, "code", code)
        _el(root, "title", text=document.title)
        _el(
            root,
            "effectiveTime",
            {"value": _time(document.effective_time, "effectiveTime", _DTM_US)},
        )
        confidentiality = Confidentiality.NORMAL if marking is None else marking.confidentiality
        _el(
            root,
            "confidentialityCode",
            {
                "code": confidentiality.value,
                "codeSystem": t.CONFIDENTIALITY_SYSTEM,
                "displayName": _CONFIDENTIALITY_NAMES[confidentiality],
            },
        )
        _el(root, "languageCode", {"code": document.language})
        if document.set_id is not None and document.version_number is not None:
            _identifier(root, document.set_id, "setId")
            _el(root, "versionNumber", {"value": str(document.version_number)})
        self.record_target(root)
        self.author(root)
        self.custodian(root)
        self.recipient(root)
        if document.transition is not None:
            self.service_event(root, document.transition)
        if marking is not None and marking.consent is not None:
            consent = _el(
                _el(root, "authorization"), "consent", {"classCode": "CONS", "moodCode": "EVN"}
            )
            _identifier(consent, marking.consent)
            _code(consent, "code", _RELEASE_OF_INFORMATION)
            _el(consent, "statusCode", {"code": "completed"})
        self.body(_el(_el(root, "component"), "structuredBody"))
        return root

    def record_target(self, root: etree._Element) -> None:
        patient = self.document.patient
        role = _el(_el(root, "recordTarget"), "patientRole")
        _identifiers(role, patient.ids)
        _addresses(role, patient.addresses)
        _telecoms(role, patient.telecoms)
        person = _el(role, "patient")
        for name in patient.names or (None,):
            _name(person, name)
        if patient.gender is None:
            _el(person, "administrativeGenderCode", {"nullFlavor": "UNK"})
        else:
            _code(person, "administrativeGenderCode", patient.gender)
        if patient.birth_time is None:
            _el(person, "birthTime", {"nullFlavor": "UNK"})
        else:
            _el(person, "birthTime", {"value": _time(patient.birth_time, "birthTime")})
        # CONF:1198-5322 and 5323 require race and ethnicity, which a handoff does not carry.
        _el(person, "raceCode", {"nullFlavor": "UNK"})
        _el(person, "ethnicGroupCode", {"nullFlavor": "UNK"})
        if patient.provider_organization is not None:
            _organization(role, "providerOrganization", patient.provider_organization)

    def author(self, root: etree._Element) -> None:
        """US Realm Header author (CONF:1198-5444..16790), with DS4P's Mandatory Document
        Provenance templates on a Part 2 document."""
        author = self.document.author
        if author.time is None:
            raise ValueError("the author needs a time (CONF:1198-5445)")
        element = _el(root, "author")
        if self.document.part2 is not None:
            _template(element, t.MANDATORY_DOCUMENT_PROVENANCE, None, r11=False)
        _el(element, "time", {"value": _time(author.time, "author time", _DTM_US)})
        assigned = _el(element, "assignedAuthor")
        if self.document.part2 is not None:
            _template(assigned, t.MANDATORY_DOCUMENT_ASSIGNED_AUTHOR, None, r11=False)
        _identifiers(assigned, author.ids)
        if author.code is not None:
            _code(assigned, "code", author.code)
        _addresses(assigned, author.addresses)
        _telecoms(assigned, author.telecoms)
        if author.names:
            person = _el(assigned, "assignedPerson")
            for name in author.names:
                _name(person, name)
        elif author.device_model is not None and author.device_software is not None:
            device = _el(assigned, "assignedAuthoringDevice")
            _el(device, "manufacturerModelName", text=author.device_model)
            _el(device, "softwareName", text=author.device_software)
        else:
            raise ValueError("the author needs a person's name or a device (CONF:1198-16790)")
        if author.organization is not None:
            _organization(assigned, "representedOrganization", author.organization)

    def custodian(self, root: etree._Element) -> None:
        """CONF:1198-5519..5559; a CustodianOrganization has one name, telecom and addr."""
        custodian = self.document.custodian
        if max(len(custodian.names), len(custodian.telecoms), len(custodian.addresses)) > 1:
            raise ValueError("the custodian has one name, telecom and address in CDA")
        assigned = _el(_el(root, "custodian"), "assignedCustodian")
        _organization(assigned, "representedCustodianOrganization", custodian)

    def recipient(self, root: etree._Element) -> None:
        """The receiving program; the Referral Note requires a named person there
        (CONF:1198-31593, 31594), nullFlavor UNK when none is known."""
        recipient = self.document.recipient
        intended = _el(_el(root, "informationRecipient"), "intendedRecipient")
        if recipient.person is not None or self.document.kind is DocumentKind.REFERRAL_NOTE:
            _name(_el(intended, "informationRecipient"), recipient.person)
        _organization(intended, "receivedOrganization", recipient.organization)

    def service_event(self, root: etree._Element, transition: LevelOfCareTransition) -> None:
        """Transfer Summary documentationOf (CONF:1198-31570..31575): the care provision at the
        level of care the client leaves, by the author as performer."""
        event = _el(_el(root, "documentationOf"), "serviceEvent", {"classCode": "PCPR"})
        _code(event, "code", transition.from_level)
        _period(
            event,
            "effectiveTime",
            Period(low=transition.from_start, high=transition.planned_date),
        )
        author = self.document.author
        entity = _el(_el(event, "performer", {"typeCode": "PRF"}), "assignedEntity")
        _identifiers(entity, author.ids)
        if author.code is not None:
            _code(entity, "code", author.code)
        _addresses(entity, author.addresses)
        _telecoms(entity, author.telecoms)
        if author.names:
            person = _el(entity, "assignedPerson")
            for name in author.names:
                _name(person, name)
        if author.organization is not None:
            _organization(entity, "representedOrganization", author.organization)

    # Body

    def body(self, body: etree._Element) -> None:
        """The sections, the Privacy Markings first as DS4P asks, then those each template
        requires, in the order a reader expects them."""
        document = self.document
        if document.part2 is not None:
            self.privacy_markings(body, document.part2)
        self.reason(body)
        self.problems(body)
        self.medications(body)
        self.allergies(body)
        if document.kind is DocumentKind.TRANSFER_SUMMARY:
            self.no_information(body, _RESULTS)
            self.no_information(body, _VITAL_SIGNS)
        self.assessment(body)
        self.plan(body)
        if document.goals:
            self.goals(body)

    @staticmethod
    def section(
        body: etree._Element, spec: _Section, *, no_information: bool = False
    ) -> tuple[etree._Element, etree._Element]:
        """A section's identification and its empty <text>."""
        section = _el(_el(body, "component"), "section")
        if no_information:
            section.set("nullFlavor", "NI")
        _template(section, spec.root, spec.release, r11=spec.r11)
        _code(section, "code", Code(t.LOINC, spec.code))
        _el(section, "title", text=spec.title)
        return section, _el(section, "text")

    def no_information(self, body: etree._Element, spec: _Section) -> None:
        """A section whose entries are required, with nothing to say (@nullFlavor NI)."""
        _, text = self.section(body, spec, no_information=True)
        text.text = _NO_INFORMATION

    def reason(self, body: etree._Element) -> None:
        """Reason for Referral Section (V2): narrative only."""
        _, text = self.section(body, _REASON)
        reason = _described(self.document.reason, what="the reason for referral")
        _el(text, "paragraph", text=reason)

    def assessment(self, body: etree._Element) -> None:
        """Assessment Section (narrative only; CONF:1198-29102 pairs it with the plan)."""
        _, text = self.section(body, _ASSESSMENT)
        _el(text, "paragraph", text=self.document.assessment or _NO_INFORMATION)

    def problems(self, body: etree._Element) -> None:
        problems = self.document.problems
        if not problems:
            self.no_information(body, _PROBLEMS)
            return
        section, text = self.section(body, _PROBLEMS)
        table = _Table(text, ("Problem", "Concern", "Onset", "Resolved"))
        for number, problem in enumerate(problems, 1):
            narrative_id = f"problem-{number}"
            description = _described(
                problem.text, _shown_code(problem.value) or None, what=f"problem {number}"
            )
            effective = problem.effective or Period()
            table.row(
                (narrative_id, description),
                problem.concern_status or "active",
                _shown_time(effective.low),
                _shown_time(effective.high),
            )
            self.problem_entry(_el(section, "entry"), problem, number, narrative_id)

    def problem_entry(
        self, entry: etree._Element, problem: Problem, number: int, narrative_id: str
    ) -> None:
        """Problem Concern Act (V3) holding one Problem Observation (V3)."""
        concern = _el(entry, "act", {"classCode": "ACT", "moodCode": "EVN"})
        _template(concern, t.PROBLEM_CONCERN_ACT, _R21, r11=True)
        self.entry_id(concern, "problem", number, "concern")
        _code(concern, "code", _CONCERN)
        status = problem.concern_status or "active"
        _el(concern, "statusCode", {"code": status})
        _concern_time(concern, status, problem.effective)
        relationship = _el(concern, "entryRelationship", {"typeCode": "SUBJ"})
        observation = _el(
            relationship,
            "observation",
            {
                "classCode": "OBS",
                "moodCode": "EVN",
                "negationInd": "true" if problem.negated else None,
            },
        )
        _template(observation, t.PROBLEM_OBSERVATION, _R21, r11=True)
        self.entry_id(observation, "problem", number)
        problem_type = _code(observation, "code", problem.code or _PROBLEM_TYPE)
        if problem.code is None:
            _translation(problem_type, _PROBLEM_TYPE_LOINC)
        _reference(_el(observation, "text"), narrative_id)
        _el(
            observation,
            "statusCode",
            {"code": _fixed(problem.status, "completed", "Problem.status")},
        )
        _period(observation, "effectiveTime", problem.effective, interval=True)
        value = _code(observation, "value", problem.value, "CD")
        for translation in problem.value_translations:
            _translation(value, translation)

    def medications(self, body: etree._Element) -> None:
        medications = self.document.medications
        if not medications:
            self.no_information(body, _MEDICATIONS)
            return
        section, text = self.section(body, _MEDICATIONS)
        table = _Table(
            text, ("Medication", "Instructions", "Dose", "Route", "Frequency", "Status", "Dates")
        )
        for number, medication in enumerate(medications, 1):
            if medication.section is not SectionKind.MEDICATIONS:
                raise ValueError(
                    f"medication {number} is from the {medication.section} list; "
                    "this writer writes current medications"
                )
            narrative_id = f"medication-{number}"
            description = _described(
                medication.product_text,
                _shown_code(medication.product) or None,
                what=f"medication {number}",
            )
            instructions: str | tuple[str, str] = ""
            if medication.text is not None:
                instructions = (f"{narrative_id}-sig", medication.text)
            frequency = medication.frequency
            table.row(
                (narrative_id, description),
                instructions,
                _shown_quantity(medication.dose),
                _shown_code(medication.route),
                f"every {_shown_quantity(frequency)}" if frequency is not None else "",
                ("not taken: " if medication.negated else "") + (medication.status or ""),
                _shown_period(medication.effective),
            )
            self.medication_entry(_el(section, "entry"), medication, number, narrative_id)

    def medication_entry(
        self, entry: etree._Element, medication: Medication, number: int, narrative_id: str
    ) -> None:
        """Medication Activity (V2) with its Medication Information (V2)."""
        if medication.status is None:
            raise ValueError(f"medication {number} has no status (CONF:1098-7507)")
        mood = medication.mood or "EVN"
        if mood not in _MEDICATION_MOODS:
            raise ValueError(f"medication {number} has mood {mood!r}; EVN or INT (CONF:1098-7497)")
        administration = _el(
            entry,
            "substanceAdministration",
            {
                "classCode": "SBADM",
                "moodCode": mood,
                "negationInd": "true" if medication.negated else None,
            },
        )
        _template(administration, t.MEDICATION_ACTIVITY, _R20, r11=True)
        if medication.ids:
            for identifier in medication.ids:
                _identifier(administration, identifier)
        else:
            self.entry_id(administration, "medication", number)
        if medication.text is not None:
            _reference(_el(administration, "text"), f"{narrative_id}-sig")
        _el(administration, "statusCode", {"code": medication.status})
        _period(administration, "effectiveTime", medication.effective, "IVL_TS")
        if medication.frequency is not None:
            frequency = _el(
                administration, "effectiveTime", {_XSI_TYPE: "PIVL_TS", "operator": "A"}
            )
            _quantity(frequency, "period", medication.frequency)
        if medication.route is not None:
            _code(administration, "routeCode", medication.route)
        dose = medication.dose
        if dose is None:
            _el(administration, "doseQuantity", {"nullFlavor": "UNK"})
        elif isinstance(dose, Quantity):
            _quantity(administration, "doseQuantity", dose)
        else:
            element = _el(administration, "doseQuantity")
            for name, bound in (("low", dose.low), ("high", dose.high)):
                if bound is not None:
                    _quantity(element, name, bound)
        product = _el(
            _el(administration, "consumable"), "manufacturedProduct", {"classCode": "MANU"}
        )
        _template(product, t.MEDICATION_INFORMATION, _R20, r11=True)
        code = _code(_el(product, "manufacturedMaterial"), "code", medication.product)
        _reference(_el(code, "originalText"), narrative_id)
        for translation in medication.product_translations:
            _translation(code, translation)

    def allergies(self, body: etree._Element) -> None:
        allergies = self.document.allergies
        if not allergies:
            self.no_information(body, _ALLERGIES)
            return
        section, text = self.section(body, _ALLERGIES)
        table = _Table(text, ("Substance", "Reaction", "Severity", "Concern", "Dates"))
        for number, allergy in enumerate(allergies, 1):
            narrative_id = f"allergy-{number}"
            if allergy.negated and allergy.substance is None and allergy.substance_text is None:
                substance = "No known allergies"
            else:
                substance = _described(
                    allergy.substance_text,
                    _shown_code(allergy.substance) or None,
                    what=f"allergy {number}",
                )
            table.row(
                (narrative_id, substance),
                ", ".join(_shown_code(reaction) for reaction in allergy.reactions),
                _shown_code(allergy.severity),
                allergy.concern_status or "active",
                _shown_period(allergy.effective),
            )
            self.allergy_entry(_el(section, "entry"), allergy, number, narrative_id)

    def allergy_entry(
        self, entry: etree._Element, allergy: Allergy, number: int, narrative_id: str
    ) -> None:
        """Allergy Concern Act (V3) > Allergy - Intolerance Observation (V2), with its
        reactions and, in the first reaction, its severity (C-CDA R2.1 moved severity there)."""
        if allergy.severity is not None and not allergy.reactions:
            raise ValueError(f"allergy {number} has a severity but no reaction to hold it")
        concern = _el(entry, "act", {"classCode": "ACT", "moodCode": "EVN"})
        _template(concern, t.ALLERGY_CONCERN_ACT, _R21, r11=True)
        self.entry_id(concern, "allergy", number, "concern")
        _code(concern, "code", _CONCERN)
        status = allergy.concern_status or "active"
        _el(concern, "statusCode", {"code": status})
        _concern_time(concern, status, allergy.effective)
        relationship = _el(concern, "entryRelationship", {"typeCode": "SUBJ"})
        observation = _el(
            relationship,
            "observation",
            {
                "classCode": "OBS",
                "moodCode": "EVN",
                "negationInd": "true" if allergy.negated else None,
            },
        )
        _template(observation, t.ALLERGY_OBSERVATION, _R20, r11=True)
        self.entry_id(observation, "allergy", number)
        _code(observation, "code", _ASSERTION)
        _reference(_el(observation, "text"), narrative_id)
        _el(
            observation,
            "statusCode",
            {"code": _fixed(allergy.status, "completed", "Allergy.status")},
        )
        _period(observation, "effectiveTime", allergy.effective, interval=True)
        _code(observation, "value", allergy.allergy_type, "CD")
        role = _el(
            _el(observation, "participant", {"typeCode": "CSM"}),
            "participantRole",
            {"classCode": "MANU"},
        )
        entity = _el(role, "playingEntity", {"classCode": "MMAT"})
        if allergy.substance is None and allergy.negated:
            substance = _el(entity, "code", {"nullFlavor": "NA"})
        else:
            substance = _code(entity, "code", allergy.substance)
        if allergy.substance is not None or allergy.substance_text is not None:
            _reference(_el(substance, "originalText"), narrative_id)
        for index, reaction in enumerate(allergy.reactions, 1):
            self.reaction(
                observation, reaction, allergy.severity if index == 1 else None, number, index
            )

    def reaction(
        self,
        observation: etree._Element,
        reaction: Code,
        severity: Code | None,
        number: int,
        index: int,
    ) -> None:
        """Reaction Observation (V2), with a Severity Observation (V2) when known."""
        relationship = _el(
            observation, "entryRelationship", {"typeCode": "MFST", "inversionInd": "true"}
        )
        element = _el(relationship, "observation", {"classCode": "OBS", "moodCode": "EVN"})
        _template(element, t.REACTION_OBSERVATION, _R20, r11=True)
        self.entry_id(element, "allergy", number, "reaction", index)
        _code(element, "code", _ASSERTION)
        _el(element, "statusCode", {"code": "completed"})
        _code(element, "value", reaction, "CD")
        if severity is not None:
            nested = _el(
                _el(element, "entryRelationship", {"typeCode": "SUBJ", "inversionInd": "true"}),
                "observation",
                {"classCode": "OBS", "moodCode": "EVN"},
            )
            _template(nested, t.SEVERITY_OBSERVATION, _R20, r11=True)
            _code(nested, "code", _SEVERITY)
            _el(nested, "statusCode", {"code": "completed"})
            _code(nested, "value", severity, "CD")

    def plan(self, body: etree._Element) -> None:
        """Plan of Treatment Section (V2): the plan items, then, in a Transfer Summary, the
        move to the next level of care as a Planned Encounter."""
        items = list(self.document.plan)
        transition = self.document.transition
        if transition is not None:
            items.append(
                PlanItem(
                    PlannedKind.ENCOUNTER,
                    f"Transfer from {_shown_code(transition.from_level)} to "
                    f"{_shown_code(transition.to_level)}, planned for "
                    f"{_shown_time(transition.planned_date)}",
                    transition.to_level,
                    "INT",
                    Period(value=transition.planned_date),
                )
            )
        section, text = self.section(body, _PLAN)
        if not items:
            text.text = "No planned care"
            return
        table = _Table(text, ("Planned care", "Kind", "Date"))
        for number, item in enumerate(items, 1):
            narrative_id = f"plan-{number}"
            table.row(
                (narrative_id, _described(item.text, what=f"plan item {number}")),
                item.kind.value,
                _shown_period(item.effective),
            )
            self.planned_entry(_el(section, "entry"), item, number, narrative_id)

    def planned_entry(
        self, entry: etree._Element, item: PlanItem, number: int, narrative_id: str
    ) -> None:
        """Planned Act, Encounter, Procedure or Observation (V2): status fixed to active, mood
        from the planned mood value sets."""
        if item.mood not in _PLANNED_MOODS:
            raise ValueError(
                f"plan item {number} has mood {item.mood!r}; one of {sorted(_PLANNED_MOODS)}"
            )
        template, class_code = _PLANNED[item.kind]
        statement = _el(entry, item.kind.value, {"classCode": class_code, "moodCode": item.mood})
        _template(statement, template, _R20, r11=True)
        self.entry_id(statement, "plan", number)
        _code(statement, "code", item.code)
        _reference(_el(statement, "text"), narrative_id)
        _el(statement, "statusCode", {"code": "active"})
        if item.effective is not None:
            _period(statement, "effectiveTime", item.effective)

    def goals(self, body: etree._Element) -> None:
        section, text = self.section(body, _GOALS)
        table = _Table(text, ("Goal", "Target", "Date"))
        for number, goal in enumerate(self.document.goals, 1):
            narrative_id = f"goal-{number}"
            description = _described(
                goal.text,
                _shown_code(goal.code) or None,
                _shown_value(goal.value) or None,
                what=f"goal {number}",
            )
            table.row(
                (narrative_id, description),
                _shown_value(goal.value),
                _shown_period(goal.effective),
            )
            observation = _el(
                _el(section, "entry"), "observation", {"classCode": "OBS", "moodCode": "GOL"}
            )
            _template(observation, t.GOAL_OBSERVATION, None, r11=False)
            self.entry_id(observation, "goal", number)
            _code(observation, "code", goal.code)
            _reference(_el(observation, "text"), narrative_id)
            _el(observation, "statusCode", {"code": _fixed(goal.status, "active", "Goal.status")})
            if goal.effective is not None:
                _period(observation, "effectiveTime", goal.effective)
            if goal.value is not None:
                _value(observation, goal.value)

    # DS4P

    def privacy_markings(self, body: etree._Element, marking: Part2Marking) -> None:
        """DS4P Privacy Markings Section (first in the body, as DS4P asks): the notice as
        narrative, then a Privacy Markings Entry holding one Privacy Annotation organizer of
        Security Observations."""
        section, text = self.section(body, _PRIVACY)
        _el(text, "paragraph", text=_described(marking.notice, what="the Part 2 notice"))
        listing = _el(text, "list")
        for label in self.labels:
            value = label.value
            _el(
                listing,
                "item",
                text=f"{label.kind_display}: {value.display or value.code} ({value.code})",
            )
        entry = _el(section, "entry", {"typeCode": "COMP"})
        _template(entry, t.PRIVACY_MARKINGS_ENTRY, None, r11=False)
        organizer = _el(entry, "organizer", {"classCode": "CLUSTER", "moodCode": "EVN"})
        _template(organizer, t.PRIVACY_ANNOTATION, None, r11=False)
        _el(organizer, "statusCode", {"code": "active"})
        for label in self.labels:
            observation = _el(
                _el(organizer, "component", {"typeCode": "COMP"}),
                "observation",
                {"classCode": "OBS", "moodCode": "EVN"},
            )
            _template(observation, t.SECURITY_OBSERVATION, None, r11=False)
            if label.template is not None:
                _template(observation, label.template, None, r11=False)
            kind = Code(t.SECURITY_OBSERVATION_TYPE, label.kind, label.kind_display)
            _code(observation, "code", kind)
            _code(observation, "value", label.value, "CE")


def _security_labels(marking: Part2Marking) -> Iterator[_Label]:
    """The Part 2 labels (PART2.md S2) in a fixed order: confidentiality (a Confidentiality
    Security Observation, SECCLASSOBS), sensitivities and the law (Security Observations of
    security category, SECCATOBS: DS4P R1 has no specific template for them), the refrain
    (Refrain Policy Security Observation) and purposes of use (Purpose Of Use Security
    Observation), both SECCONOBS."""
    if marking.confidentiality not in (Confidentiality.RESTRICTED, Confidentiality.VERY_RESTRICTED):
        raise ValueError("Part 2 data is confidentiality R or V")
    if not marking.sensitivities:
        raise ValueError("Part 2 data carries the SUD sensitivity or one of its children")
    yield _Label(
        t.CONFIDENTIALITY_SECURITY_OBSERVATION,
        "SECCLASSOBS",
        "Security Classification",
        Code(
            t.CONFIDENTIALITY_SYSTEM,
            marking.confidentiality.value,
            _CONFIDENTIALITY_NAMES[marking.confidentiality],
        ),
    )
    for sensitivity in marking.sensitivities:
        if sensitivity not in _PART2_SENSITIVITIES:
            raise ValueError(
                f"sensitivity {sensitivity!r} is not one a Part 2 disclosure carries "
                f"({', '.join(_PART2_SENSITIVITIES)}; ETH is written as SUD)"
            )
        display = _PART2_SENSITIVITIES[sensitivity]
        yield _Label(None, "SECCATOBS", "Security Category", Code(t.ACT_CODE, sensitivity, display))
    yield _Label(None, "SECCATOBS", "Security Category", _PART2_LAW)
    if not marking.redisclosure_permitted:
        yield _Label(
            t.REFRAIN_SECURITY_OBSERVATION, "SECCONOBS", "Security Control", _NO_REDISCLOSURE
        )
    for purpose in marking.purposes_of_use:
        if t.label_kind(purpose) is not LabelKind.PURPOSE_OF_USE:
            raise ValueError(f"{purpose!r} is not an ActReason purpose of use")
        yield _Label(
            t.PURPOSE_OF_USE_SECURITY_OBSERVATION,
            "SECCONOBS",
            "Security Control",
            Code(t.ACT_REASON, purpose),
        )
