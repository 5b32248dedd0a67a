"""C-CDA R2.1 documents (and the R1.1 ones still sent) to typed values.

The reader is lenient about clinical content and strict about safety: anything that parses
safely as an HL7 v3 ClinicalDocument is read, what does not conform is listed in
`CcdaDocument.issues`, and only unreadable or unsafe input raises `MalformedDocument`.

Decisions (HL7 C-CDA R2.1 Vol. 2 for the templates named below):
- the document kind comes from the document-level templateIds, never the LOINC code, which is
  kept as written (`code`) and reported when it is not the one the template requires;
- sections are recognised by templateId root, and by LOINC code only when no templateId is
  known (then reported); entries are read whatever their templateIds, and reported when they
  lack the one their section expects;
- medications come from the Medications, Admission Medications and Discharge Medications
  sections (each Medication says which), problems from the Problem section, plan entries from
  Plan of Treatment and the Care Plan's Interventions section;
- confidentiality is fail-closed: anything but N, R or V of 2.16.840.1.113883.5.25 (or no code)
  is RESTRICTED_UNKNOWN;
- DS4P labels are collected wherever DS4P puts them (header and section confidentialityCode,
  privacy annotations in the Privacy Markings section and inside entries, entry
  confidentialityCode) and classified by code alone, since samples use wrong code system OIDs.
"""

import re
from collections.abc import Iterator
from typing import Final, cast

from lxml import etree

from adapters.ccda import templates as t
from adapters.ccda.model import (
    Address,
    Allergy,
    Author,
    CcdaDocument,
    Code,
    Goal,
    HealthConcern,
    Identifier,
    LabelScope,
    Medication,
    NonXmlBody,
    Organization,
    Patient,
    Period,
    PersonName,
    PlannedActivity,
    Problem,
    Quantity,
    QuantityRange,
    RelatedDocument,
    SectionSummary,
    SecurityLabel,
    Telecom,
    TemplateId,
    Value,
)
from adapters.ccda.parser import Refusal, parse_untrusted
from adapters.ccda.templates import Confidentiality, DocumentKind, SectionKind
from adapters.errors import MalformedDocument

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 256

_V3: Final = "{" + t.HL7_V3 + "}"
_XML_SPACE: Final = re.compile(r"[ \t\r\n]+")
_SHOWN_LIMIT: Final = 60
_XSI_TYPE: Final = "{" + t.XSI + "}type"
_CLINICAL_DOCUMENT: Final = _V3 + "ClinicalDocument"
_CLINICAL_STATEMENTS: Final = frozenset(
    _V3 + name
    for name in (
        "act",
        "encounter",
        "observation",
        "observationMedia",
        "organizer",
        "procedure",
        "regionOfInterest",
        "substanceAdministration",
        "supply",
    )
)
_CODED_TYPES: Final = frozenset({"CD", "CE", "CV", "CO", "CS"})
_GENDERS: Final = frozenset({"M", "F", "UN"})
_MEDICATION_SECTIONS: Final = frozenset(
    {SectionKind.MEDICATIONS, SectionKind.ADMISSION_MEDICATIONS, SectionKind.DISCHARGE_MEDICATIONS}
)
_ALLERGY_DETAIL_TEMPLATES: Final = frozenset(
    {t.REACTION_OBSERVATION, t.SEVERITY_OBSERVATION, t.ALLERGY_STATUS_OBSERVATION}
)
_PLAN_SECTIONS: Final = frozenset({SectionKind.PLAN_OF_TREATMENT, SectionKind.INTERVENTIONS})
_SECURITY_MARKUP: Final = etree.XPath(
    "//v3:confidentialityCode"
    " | //v3:observation[v3:templateId[starts-with(@root, $ds4p)]"
    " or (starts-with(v3:code/@code, 'SEC')"
    " and substring(v3:code/@code, string-length(v3:code/@code) - 2) = 'OBS')]",
    namespaces={"v3": t.HL7_V3},
)
_NARRATIVE_IDS: Final = etree.XPath("//*[@ID]")


def read_document(
    raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> CcdaDocument:
    """Reads one untrusted C-CDA document; MalformedDocument names why one is refused.

    `max_depth` counts elements from the root; libxml2 refuses more than 256 whatever is asked.
    """
    root = parse_untrusted(raw, max_bytes=max_bytes, max_depth=max_depth)
    if root.tag != _CLINICAL_DOCUMENT:
        name = etree.QName(root)
        raise MalformedDocument(
            Refusal.NOT_CLINICAL_DOCUMENT,
            location=f"line {root.sourceline}",
            detail=f"found {_shown(name.localname)} in "
            + (f"namespace {_shown(name.namespace)}" if name.namespace else "no namespace")
            + ", expected ClinicalDocument in namespace 'urn:hl7-org:v3'",
        )
    return _Reader(root).document()


def _v3(name: str) -> str:
    return _V3 + name


def _shown(value: str | None) -> str:
    """A value from the document quoted in an issue or error, cut short: these travel to logs
    and partners and must not carry the document along."""
    if value is None:
        return "none"
    return repr(value) if len(value) <= _SHOWN_LIMIT else repr(value[:_SHOWN_LIMIT]) + "…"


# iterchildren() with a tag is about twice as fast as find()/findall(), which parse a path.


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return list(element.iterchildren(_V3 + name))


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    return None if element is None else next(element.iterchildren(_V3 + name), None)


def _attribute(element: etree._Element | None, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    return None if value is None else str(value)


def _collapsed(element: etree._Element | None) -> str | None:
    """The element's text content with layout whitespace collapsed; None when empty."""
    if element is None:
        return None
    return _part(element) or None


def _part(element: etree._Element) -> str:
    """The element's text content with XML white space (space, tab, CR, LF) collapsed."""
    # lxml-stubs type itertext() as str | bytes; on a parsed tree it yields str only.
    text = "".join(cast(Iterator[str], element.itertext()))
    return _XML_SPACE.sub(" ", text).strip(" ")


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _statements(entry: etree._Element) -> Iterator[etree._Element]:
    """The clinical statements of an entry (CDA R2 allows one; senders sometimes put more)."""
    for child in entry:
        if child.tag in _CLINICAL_STATEMENTS:
            yield child


def _template_ids(element: etree._Element) -> tuple[TemplateId, ...]:
    return tuple(
        TemplateId(str(template.get("root")), _attribute(template, "extension"))
        for template in _children(element, "templateId")
        if template.get("root")
    )


def _template_roots(element: etree._Element) -> list[str]:
    """The templateId roots in document order."""
    return [str(template.get("root")) for template in _children(element, "templateId")]


def _code(element: etree._Element | None) -> Code | None:
    code = _attribute(element, "code")
    if code is None:
        return None
    return Code(_attribute(element, "codeSystem"), code, _attribute(element, "displayName"))


def _translations(element: etree._Element | None) -> tuple[Code, ...]:
    if element is None:
        return ()
    return tuple(
        code
        for translation in _children(element, "translation")
        if (code := _code(translation)) is not None
    )


def _identifiers(element: etree._Element, name: str = "id") -> tuple[Identifier, ...]:
    found = []
    for identifier in _children(element, name):
        root, extension = _attribute(identifier, "root"), _attribute(identifier, "extension")
        if root is not None or extension is not None:
            found.append(Identifier(root, extension))
    return tuple(found)


def _identifier(element: etree._Element | None) -> Identifier | None:
    if element is None:
        return None
    root, extension = _attribute(element, "root"), _attribute(element, "extension")
    return None if root is None and extension is None else Identifier(root, extension)


def _period(element: etree._Element | None) -> Period | None:
    if element is None:
        return None
    period = Period(
        _attribute(element, "value"),
        _attribute(_child(element, "low"), "value"),
        _attribute(_child(element, "high"), "value"),
    )
    return None if period == Period() else period


def _quantity(element: etree._Element | None) -> Quantity | None:
    if element is None:
        return None
    value, unit = _attribute(element, "value"), _attribute(element, "unit")
    return None if value is None and unit is None else Quantity(value, unit)


def _dose(element: etree._Element | None) -> Quantity | QuantityRange | None:
    if element is None:
        return None
    low, high = _child(element, "low"), _child(element, "high")
    if low is not None or high is not None:
        return QuantityRange(_quantity(low), _quantity(high))
    return _quantity(element)


def _xsi_type(element: etree._Element) -> str | None:
    value = _attribute(element, _XSI_TYPE)
    return None if value is None else value.rpartition(":")[2]


def _names(element: etree._Element) -> tuple[PersonName, ...]:
    return tuple(_person_name(name) for name in _children(element, "name"))


def _person_name(name: etree._Element) -> PersonName:
    parts: dict[str, list[str]] = {"prefix": [], "given": [], "family": [], "suffix": []}
    has_parts = False
    for child in name:
        if isinstance(child.tag, str) and child.tag.startswith(_V3):
            local = child.tag[len(_V3) :]
            if local in parts:
                parts[local].append(_part(child))
                has_parts = True
    return PersonName(
        use=_attribute(name, "use"),
        prefixes=tuple(parts["prefix"]),
        given=tuple(parts["given"]),
        family=tuple(parts["family"]),
        suffixes=tuple(parts["suffix"]),
        text=None if has_parts else _collapsed(name),
    )


def _addresses(element: etree._Element) -> tuple[Address, ...]:
    return tuple(
        Address(
            use=_attribute(address, "use"),
            street_lines=tuple(_part(line) for line in _children(address, "streetAddressLine")),
            city=_collapsed(_child(address, "city")),
            state=_collapsed(_child(address, "state")),
            postal_code=_collapsed(_child(address, "postalCode")),
            country=_collapsed(_child(address, "country")),
        )
        for address in _children(element, "addr")
        if address.get("nullFlavor") is None or len(address)
    )


def _telecoms(element: etree._Element) -> tuple[Telecom, ...]:
    return tuple(
        Telecom(str(telecom.get("value")), _attribute(telecom, "use"))
        for telecom in _children(element, "telecom")
        if telecom.get("value")
    )


def _organization(element: etree._Element | None) -> Organization | None:
    if element is None:
        return None
    return Organization(
        ids=_identifiers(element),
        names=tuple(_part(name) for name in _children(element, "name")),
        telecoms=_telecoms(element),
        addresses=_addresses(element),
    )


def _related_observations(element: etree._Element) -> Iterator[etree._Element]:
    for relationship in _children(element, "entryRelationship"):
        yield from _children(relationship, "observation")


def _negated(element: etree._Element) -> bool:
    return element.get("negationInd") == "true"


class _Reader:
    """Reads one parsed ClinicalDocument; collects what does not conform in `issues`."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.issues: list[str] = []
        self._narrative: dict[str, etree._Element] | None = None

    def document(self) -> CcdaDocument:
        root = self.root
        template_ids = _template_ids(root)
        kind = self.kind(template_ids)
        code = _code(_child(root, "code"))
        expected = t.DOCUMENT_CODES.get(kind)
        if expected is not None and (code is None or code.code != expected):
            written = "no code" if code is None else f"code {_shown(code.code)}"
            self.issues.append(f"the document has {written}; a {kind} is {expected}")
        confidentiality_code = _code(_child(root, "confidentialityCode"))
        body = _child(_child(root, "component"), "structuredBody")
        sections = [] if body is None else list(self.sections(body, 1))
        summaries = tuple(summary for summary, _ in sections)
        return CcdaDocument(
            kind=kind,
            code=code,
            template_ids=template_ids,
            id=_identifier(_child(root, "id")),
            set_id=_identifier(_child(root, "setId")),
            version_number=_attribute(_child(root, "versionNumber"), "value"),
            title=_collapsed(_child(root, "title")),
            effective_time=_attribute(_child(root, "effectiveTime"), "value"),
            confidentiality=self.confidentiality(confidentiality_code),
            confidentiality_code=confidentiality_code,
            security_labels=tuple(self.security_labels()),
            patient=self.patient(),
            authors=tuple(self.author(author) for author in _children(root, "author")),
            custodian=_organization(
                _child(
                    _child(_child(root, "custodian"), "assignedCustodian"),
                    "representedCustodianOrganization",
                )
            ),
            related_documents=tuple(
                self.related_document(related) for related in _children(root, "relatedDocument")
            ),
            reason_for_referral=self.reason_for_referral(sections),
            problems=tuple(
                problem
                for summary, section in sections
                if summary.kind is SectionKind.PROBLEMS
                for entry in _children(section, "entry")
                for problem in self.problems(entry)
            ),
            medications=tuple(
                medication
                for summary, section in sections
                if summary.kind in _MEDICATION_SECTIONS
                for entry in _children(section, "entry")
                for medication in self.medications(entry, summary.kind)
            ),
            allergies=tuple(
                allergy
                for summary, section in sections
                if summary.kind is SectionKind.ALLERGIES
                for entry in _children(section, "entry")
                for allergy in self.allergies(entry)
            ),
            plan_of_treatment=tuple(
                self.planned_activity(statement, summary.kind)
                for summary, section in sections
                if summary.kind in _PLAN_SECTIONS
                for entry in _children(section, "entry")
                for statement in _statements(entry)
            ),
            goals=tuple(
                self.goal(statement)
                for summary, section in sections
                if summary.kind is SectionKind.GOALS
                for entry in _children(section, "entry")
                for statement in _statements(entry)
            ),
            health_concerns=tuple(
                self.health_concern(statement)
                for summary, section in sections
                if summary.kind is SectionKind.HEALTH_CONCERNS
                for entry in _children(section, "entry")
                for statement in _statements(entry)
            ),
            sections=summaries,
            non_xml_body=self.non_xml_body(),
            issues=tuple(self.issues),
            recipients=tuple(self.recipients()),
            service_event=_code(
                _child(_child(_child(root, "documentationOf"), "serviceEvent"), "code")
            ),
        )

    # Header

    def kind(self, template_ids: tuple[TemplateId, ...]) -> DocumentKind:
        roots = {template.root for template in template_ids}
        claimed = [kind for root, kind in t.DOCUMENT_TEMPLATES.items() if root in roots]
        if len(claimed) > 1:
            self.issues.append(
                f"the document claims several document templates ({', '.join(claimed)}); "
                f"it is read as a {claimed[0]}"
            )
        return claimed[0] if claimed else DocumentKind.OTHER

    def confidentiality(self, code: Code | None) -> Confidentiality:
        if code is None:
            self.issues.append("the document has no confidentialityCode; it is read as restricted")
            return Confidentiality.RESTRICTED_UNKNOWN
        known = t.CONFIDENTIALITY_CODES.get(code.code)
        if known is None or code.system_oid not in (None, t.CONFIDENTIALITY_SYSTEM):
            self.issues.append(
                f"the confidentialityCode {_shown(code.code)} ({_shown(code.system_oid)}) "
                "is not N, R or V of "
                f"{t.CONFIDENTIALITY_SYSTEM}; the document is read as restricted"
            )
            return Confidentiality.RESTRICTED_UNKNOWN
        return known

    def patient(self) -> Patient | None:
        targets = _children(self.root, "recordTarget")
        if not targets:
            self.issues.append("the document has no recordTarget (patient)")
            return None
        if len(targets) > 1:
            self.issues.append(
                f"the document has {len(targets)} recordTargets; the first is the patient"
            )
        role = _child(targets[0], "patientRole")
        if role is None:
            self.issues.append("the recordTarget has no patientRole")
            return None
        person = _child(role, "patient")
        names = () if person is None else _names(person)
        if not any(name.full() for name in names):
            self.issues.append("the patient has no name")
        elif any("" in (*n.given, *n.family, *n.prefixes, *n.suffixes) for n in names):
            self.issues.append("a patient name has empty parts")
        gender = _code(_child(person, "administrativeGenderCode"))
        if gender is not None and gender.code not in _GENDERS:
            self.issues.append(
                f"the patient's administrativeGenderCode {_shown(gender.code)} is unknown"
            )
        return Patient(
            ids=_identifiers(role),
            names=names,
            birth_time=_attribute(_child(person, "birthTime"), "value"),
            gender=gender,
            addresses=_addresses(role),
            telecoms=_telecoms(role),
            provider_organization=_organization(_child(role, "providerOrganization")),
        )

    def author(self, author: etree._Element) -> Author:
        assigned = _child(author, "assignedAuthor")
        person = _child(assigned, "assignedPerson")
        device = _child(assigned, "assignedAuthoringDevice")
        return Author(
            time=_attribute(_child(author, "time"), "value"),
            ids=() if assigned is None else _identifiers(assigned),
            code=_code(_child(assigned, "code")),
            names=() if person is None else _names(person),
            device_model=_collapsed(_child(device, "manufacturerModelName")),
            device_software=_collapsed(_child(device, "softwareName")),
            organization=_organization(_child(assigned, "representedOrganization")),
            addresses=() if assigned is None else _addresses(assigned),
            telecoms=() if assigned is None else _telecoms(assigned),
        )

    def recipients(self) -> Iterator[Organization]:
        """informationRecipient/intendedRecipient/receivedOrganization, in document order."""
        for recipient in _children(self.root, "informationRecipient"):
            received = _organization(
                _child(_child(recipient, "intendedRecipient"), "receivedOrganization")
            )
            if received is not None:
                yield received

    def related_document(self, related: etree._Element) -> RelatedDocument:
        parent = _child(related, "parentDocument")
        return RelatedDocument(
            type_code=_attribute(related, "typeCode"),
            ids=() if parent is None else _identifiers(parent),
            set_id=_identifier(_child(parent, "setId")),
            version_number=_attribute(_child(parent, "versionNumber"), "value"),
        )

    def non_xml_body(self) -> NonXmlBody | None:
        body = _child(_child(self.root, "component"), "nonXMLBody")
        if body is None:
            return None
        text = _child(body, "text")
        reference = _child(text, "reference")
        content = "" if text is None else (text.text or "")
        return NonXmlBody(
            media_type=_attribute(text, "mediaType"),
            representation=_attribute(text, "representation"),
            reference=_attribute(reference, "value"),
            content_length=len(content.strip()),
        )

    # Security labels

    def security_labels(self) -> Iterator[SecurityLabel]:
        found = _SECURITY_MARKUP(self.root, ds4p=t.DS4P_TEMPLATE_PREFIX)
        for element in cast(list[etree._Element], found):
            observation = _local(element) == "observation"
            written = _code(_child(element, "value") if observation else element)
            if written is None:
                if observation:
                    self.issues.append(
                        f"a DS4P security observation (line {element.sourceline}) has no code"
                    )
                continue
            normalised = t.LABEL_SPELLINGS.get(written.code, written.code)
            scope, section = self.label_scope(element)
            yield SecurityLabel(normalised, t.label_kind(normalised), scope, written, section)

    def label_scope(self, element: etree._Element) -> tuple[LabelScope, str | None]:
        section = next(element.iterancestors(_v3("section")), None)
        if section is None:
            return LabelScope.DOCUMENT, None
        section_code = _attribute(_child(section, "code"), "code")
        if self.section_kind(section, report=False) is SectionKind.PRIVACY_MARKINGS:
            return LabelScope.DOCUMENT, section_code
        if element.getparent() is section:
            return LabelScope.SECTION, section_code
        return LabelScope.ENTRY, section_code

    # Sections

    def sections(
        self, container: etree._Element, level: int
    ) -> Iterator[tuple[SectionSummary, etree._Element]]:
        for component in _children(container, "component"):
            for section in _children(component, "section"):
                kind = self.section_kind(section, report=True)
                entries = _children(section, "entry")
                text = _collapsed(_child(section, "text"))
                summary = SectionSummary(
                    kind=kind,
                    template_ids=_template_ids(section),
                    code=_code(_child(section, "code")),
                    title=_collapsed(_child(section, "title")),
                    entry_count=len(entries),
                    text_length=0 if text is None else len(text),
                    level=level,
                )
                self.check_entries(kind, entries)
                yield summary, section
                yield from self.sections(section, level + 1)

    def section_kind(self, section: etree._Element, *, report: bool) -> SectionKind:
        by_template = next(
            (
                t.SECTION_TEMPLATES[root]
                for root in _template_roots(section)
                if root in t.SECTION_TEMPLATES
            ),
            None,
        )
        code = _attribute(_child(section, "code"), "code")
        title = _collapsed(_child(section, "title"))
        if by_template is not None:
            if report and code not in t.SECTION_CODES[by_template]:
                self.issues.append(
                    f"the {by_template} section {_shown(title)} has code {_shown(code)}, "
                    f"expected {t.SECTION_CODES[by_template][0]}"
                )
            return by_template
        by_code = t.SECTION_BY_CODE.get(code or "")
        if by_code is not None:
            if report:
                self.issues.append(
                    f"the section {_shown(title)} is read as {by_code} by its code {code}: "
                    "none of its templateIds is known"
                )
            return by_code
        return SectionKind.OTHER

    def check_entries(self, kind: SectionKind, entries: list[etree._Element]) -> None:
        expected = t.ENTRY_TEMPLATES.get(kind)
        if expected is None:
            return
        for number, entry in enumerate(entries, 1):
            for statement in _statements(entry):
                if expected.isdisjoint(_template_roots(statement)):
                    self.issues.append(
                        f"{kind} entry {number} ({_local(statement)}, line "
                        f"{statement.sourceline}) has none of the templateIds "
                        f"{', '.join(sorted(expected))}"
                    )

    def reason_for_referral(
        self, sections: list[tuple[SectionSummary, etree._Element]]
    ) -> str | None:
        texts = [
            text
            for summary, section in sections
            if summary.kind is SectionKind.REASON_FOR_REFERRAL
            and (text := _collapsed(_child(section, "text"))) is not None
        ]
        return "\n".join(texts) if texts else None

    # Entries

    def text(self, element: etree._Element | None) -> str | None:
        """A text or originalText: the narrative it references, or its own content."""
        if element is None:
            return None
        reference = _attribute(_child(element, "reference"), "value")
        if reference is not None and reference.startswith("#"):
            target = self.narrative().get(reference[1:])
            if target is not None:
                return _collapsed(target)
        return _collapsed(element)

    def narrative(self) -> dict[str, etree._Element]:
        if self._narrative is None:
            found = cast(list[etree._Element], _NARRATIVE_IDS(self.root))
            # The first element with an ID wins, as in HTML, should a sender repeat one.
            self._narrative = {str(element.get("ID")): element for element in reversed(found)}
        return self._narrative

    def value(self, element: etree._Element | None) -> Value | None:
        if element is None:
            return None
        kind = _xsi_type(element)
        if kind in _CODED_TYPES or (kind is None and element.get("code") is not None):
            return _code(element) or self.text(_child(element, "originalText"))
        if kind == "IVL_PQ":
            return QuantityRange(
                _quantity(_child(element, "low")), _quantity(_child(element, "high"))
            )
        if kind in ("PQ", "INT", "REAL"):
            return _quantity(element)
        return _attribute(element, "value") or _collapsed(element)

    def problems(self, entry: etree._Element) -> Iterator[Problem]:
        for statement in _statements(entry):
            if _local(statement) == "observation":
                yield self.problem(statement, None)
                continue
            concern_status = _attribute(_child(statement, "statusCode"), "code")
            observations = list(_related_observations(statement))
            marked = [o for o in observations if t.PROBLEM_OBSERVATION in _template_roots(o)]
            for observation in marked or observations:
                yield self.problem(observation, concern_status)

    def problem(self, observation: etree._Element, concern_status: str | None) -> Problem:
        value = _child(observation, "value")
        return Problem(
            concern_status=concern_status,
            code=_code(_child(observation, "code")),
            value=_code(value),
            value_translations=_translations(value),
            text=self.text(_child(observation, "text")) or self.text(_child(value, "originalText")),
            status=_attribute(_child(observation, "statusCode"), "code"),
            effective=_period(_child(observation, "effectiveTime")),
            negated=_negated(observation),
        )

    def allergies(self, entry: etree._Element) -> Iterator[Allergy]:
        for statement in _statements(entry):
            if _local(statement) == "observation":
                yield self.allergy(statement, None)
                continue
            concern_status = _attribute(_child(statement, "statusCode"), "code")
            observations = list(_related_observations(statement))
            marked = [o for o in observations if t.ALLERGY_OBSERVATION in _template_roots(o)]
            unmarked = [
                o for o in observations if _ALLERGY_DETAIL_TEMPLATES.isdisjoint(_template_roots(o))
            ]
            for observation in marked or unmarked:
                yield self.allergy(observation, concern_status)

    def allergy(self, observation: etree._Element, concern_status: str | None) -> Allergy:
        entity = None
        for participant in _children(observation, "participant"):
            entity = _child(_child(participant, "participantRole"), "playingEntity")
            if entity is not None:
                break
        substance_code = _child(entity, "code")
        reactions = []
        severities: list[Code | None] = []
        reaction_severities: list[Code | None] = []
        for related in _related_observations(observation):
            roots = _template_roots(related)
            if t.REACTION_OBSERVATION in roots:
                reaction = _code(_child(related, "value"))
                if reaction is not None:
                    reactions.append(reaction)
                reaction_severities.extend(
                    _code(_child(nested, "value"))
                    for nested in _related_observations(related)
                    if t.SEVERITY_OBSERVATION in _template_roots(nested)
                )
            elif t.SEVERITY_OBSERVATION in roots:
                severities.append(_code(_child(related, "value")))
        # The allergy's own severity (R1.1) first, else the first reaction's (R2.1).
        severity = next(filter(None, (*severities, *reaction_severities)), None)
        return Allergy(
            concern_status=concern_status,
            allergy_type=_code(_child(observation, "value")),
            substance=_code(substance_code),
            substance_text=self.text(_child(substance_code, "originalText"))
            or _collapsed(_child(entity, "name")),
            reactions=tuple(reactions),
            severity=severity,
            status=_attribute(_child(observation, "statusCode"), "code"),
            effective=_period(_child(observation, "effectiveTime")),
            negated=_negated(observation),
        )

    def medications(self, entry: etree._Element, section: SectionKind) -> Iterator[Medication]:
        for statement in _statements(entry):
            if _local(statement) == "substanceAdministration":
                yield self.medication(statement, section)
                continue
            # Admission and Discharge Medication acts wrap the Medication Activities.
            for relationship in _children(statement, "entryRelationship"):
                for administration in _children(relationship, "substanceAdministration"):
                    yield self.medication(administration, section)

    def medication(self, administration: etree._Element, section: SectionKind) -> Medication:
        material = _child(
            _child(_child(administration, "consumable"), "manufacturedProduct"),
            "manufacturedMaterial",
        )
        product = _child(material, "code")
        effective = None
        frequency = None
        for time in _children(administration, "effectiveTime"):
            kind = _xsi_type(time)
            if kind == "PIVL_TS":
                frequency = frequency or _quantity(_child(time, "period"))
            elif kind in (None, "IVL_TS", "TS") and effective is None:
                effective = _period(time)
        return Medication(
            section=section,
            ids=_identifiers(administration),
            mood=_attribute(administration, "moodCode"),
            status=_attribute(_child(administration, "statusCode"), "code"),
            product=_code(product),
            product_translations=_translations(product),
            product_text=self.text(_child(product, "originalText"))
            or _collapsed(_child(material, "name")),
            text=self.text(_child(administration, "text")),
            dose=_dose(_child(administration, "doseQuantity")),
            route=_code(_child(administration, "routeCode")),
            frequency=frequency,
            effective=effective,
            negated=_negated(administration),
        )

    def planned_activity(self, statement: etree._Element, section: SectionKind) -> PlannedActivity:
        code = _child(statement, "code")
        holder = _child(statement, "consumable")
        if holder is None:
            holder = _child(statement, "product")
        product = _child(_child(holder, "manufacturedProduct"), "manufacturedMaterial")
        return PlannedActivity(
            section=section,
            activity=_local(statement),
            mood=_attribute(statement, "moodCode"),
            template_ids=_template_ids(statement),
            code=_code(code),
            text=self.text(_child(statement, "text")) or self.text(_child(code, "originalText")),
            status=_attribute(_child(statement, "statusCode"), "code"),
            effective=_period(_child(statement, "effectiveTime")),
            product=_code(_child(product, "code")),
        )

    def goal(self, statement: etree._Element) -> Goal:
        code = _child(statement, "code")
        return Goal(
            code=_code(code),
            value=self.value(_child(statement, "value")),
            text=self.text(_child(statement, "text")) or self.text(_child(code, "originalText")),
            status=_attribute(_child(statement, "statusCode"), "code"),
            effective=_period(_child(statement, "effectiveTime")),
        )

    def health_concern(self, statement: etree._Element) -> HealthConcern:
        concerns = tuple(
            code
            for relationship in _children(statement, "entryRelationship")
            if relationship.get("typeCode") == "REFR"
            for observation in _children(relationship, "observation")
            if (code := _code(_child(observation, "value"))) is not None
        )
        return HealthConcern(
            template_ids=_template_ids(statement),
            code=_code(_child(statement, "code")),
            status=_attribute(_child(statement, "statusCode"), "code"),
            effective=_period(_child(statement, "effectiveTime")),
            text=self.text(_child(statement, "text")),
            concerns=concerns,
            value=self.value(_child(statement, "value")),
        )
