"""The FHIR R4 rules that fhir.resources does not check, as small functions over a walked resource.

fhir.resources checks element names, types, cardinality and value formats. It does not evaluate
the specification's constraints (ele-1, txt-1, per-1, ext-1, dom-2 to dom-5), the required
bindings, the Resource.id length, or what the reference validator checks in its security mode
(HTML in strings and markdown), and it knows nothing of the Bundle as a whole. `mappings.fhir`
walks a resource once into `Node`s (contained and Bundle entry resources included) and each
rule here turns the nodes it cares about into issues, every one with the FHIRPath of the
offending element.

Expressions follow the reference validator where it reports the same rule (an extension's rules
point at the extension, a Bundle entry's fullUrl at the entry), so the two can be compared.
"""

import re
from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Final

from mappings.errors import Issue
from mappings.terminology import LOCAL_CODE_SYSTEMS, ValueSet

XHTML_NAMESPACE: Final = "http://www.w3.org/1999/xhtml"

# R4 §6.4.2 (Narrative): the basic HTML 4.0 formatting elements; no script, form, iframe, object or
# style elements.
NARRATIVE_ELEMENTS: Final = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    }
)
STRING_TYPES: Final = frozenset(
    {
        "string",
        "markdown",
        "code",
        "id",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "base64Binary",
        "date",
        "dateTime",
        "instant",
        "time",
    }
)

# The R4 4.0.1 resource types that have an R4B model of the same shape. Left out: the R4 types
# that R4B removed (EffectEvidenceSynthesis, RiskEvidenceSynthesis, MedicinalProduct*, and
# Substance{NucleicAcid, Polymer, Protein, ReferenceInformation, SourceMaterial, Specification}),
# the two R4B redefined incompatibly (Evidence, EvidenceVariable), and the R4B-only types
# (SubscriptionTopic, SubscriptionStatus, Citation, EvidenceReport, Ingredient, ...). Kept here,
# where the Bundle rules tell a RESTful fullUrl by them; mappings.fhir reads resources by them.
RESOURCE_TYPES: Final = frozenset(
    """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement
    CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse
    ClinicalImpression CodeSystem Communication CommunicationRequest CompartmentDefinition
    Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference Encounter Endpoint
    EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition ExampleScenario
    ExplanationOfBenefit FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse
    HealthcareService ImagingStudy Immunization ImmunizationEvaluation
    ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice Library Linkage List
    Location Measure MeasureReport Media Medication MedicationAdministration MedicationDispense
    MedicationKnowledge MedicationRequest MedicationStatement MessageDefinition MessageHeader
    MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition
    OperationDefinition OperationOutcome Organization OrganizationAffiliation Parameters Patient
    PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner PractitionerRole
    Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup
    ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
    Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition
    StructureMap Subscription Substance SupplyDelivery SupplyRequest Task
    TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription
    """.split()  # noqa: SIM905 - a block of names reads better than 126 quoted strings
)

_RESOURCE_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ID_CHARACTERS: Final = re.compile(r"[A-Za-z0-9\-.]+")
# A tag is "<", an optional "/", a letter, then anything but angle brackets up to ">"; "a<b" and
# "< 5 mg" have no closing bracket or no letter, so they stay valid text.
_HTML_TAG: Final = re.compile(r"<(?:/?[A-Za-z][^<>]*|!--.*?--)>", re.DOTALL)
# Characters XML 1.0 cannot carry: such a string could never be served as application/fhir+xml.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SCRIPT_URL: Final = re.compile(r"javascript:|vbscript:|data:text/html")
_SPACE_OR_CONTROL: Final = re.compile(r"[\x00-\x20]+")
_ABSOLUTE_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_FULL_URL: Final = re.compile(
    r"https?://\S+|urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|urn:oid:[0-2](\.(0|[1-9][0-9]*))+"
)
# R4 references' regex (references.html#regex): a base, then Type/id, perhaps a version.
_RESTFUL_URL: Final = re.compile(
    r"https?://(?:[A-Za-z0-9\-\\.:%$]*/)+([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_RELATIVE_REFERENCE: Final = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_DATE_TIME: Final = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:Z|[+\-][0-9]{2}:[0-9]{2}))?)?)?"
)
_QUOTE_LIMIT: Final = 40
_LISTED_ENTRIES: Final = 5
# R4 Bundle: the types whose Bundle may carry a total (bdl-1); the element each entry of the
# given types must carry and no other's may (bdl-3, bdl-4); the first resource a document or a
# message must start with (bdl-11, bdl-12).
_TOTAL_TYPES: Final = frozenset({"searchset", "history"})
_REQUEST_RULE: Final = (
    "bdl-3",
    "entry.request mandatory for batch/transaction/history, otherwise prohibited",
    "request",
    frozenset({"batch", "transaction", "history"}),
)
_RESPONSE_RULE: Final = (
    "bdl-4",
    "entry.response mandatory for batch-response/transaction-response/history, "
    "otherwise prohibited",
    "response",
    frozenset({"batch-response", "transaction-response", "history"}),
)
_FIRST_RESOURCES: Final = {
    "document": (
        "bdl-11",
        "A document must have a Composition as the first resource",
        "Composition",
    ),
    "message": (
        "bdl-12",
        "A message must have a MessageHeader as the first resource",
        "MessageHeader",
    ),
}
# The offsets a date without a timezone may have been meant in (UTC-12:00 to UTC+14:00).
_LATEST_ZONE: Final = timezone(timedelta(hours=-12))
_EARLIEST_ZONE: Final = timezone(timedelta(hours=14))


@dataclass(frozen=True, slots=True)
class Node:
    """One value of a walked resource.

    `type` is the FHIR type ("code", "Period", "Extension"), or "Resource" for a resource;
    `value` is the JSON value, except for "xhtml" where it is the parsed XHTML element;
    `resource` is the FHIRPath of the resource the value belongs to; `binding` is the required
    value set of a code.
    """

    path: str
    type: str
    value: Any
    resource: str
    binding: ValueSet | None = None


class Tree:
    """The nodes of one resource, grouped by type so that each rule reads only its own."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self._by_type: dict[str, list[Node]] = {}
        for node in nodes:
            self._by_type.setdefault(node.type, []).append(node)

    def of(self, *types: str) -> Iterator[Node]:
        """The nodes of these types, in walk order within each type."""
        for type_ in types:
            yield from self._by_type.get(type_, ())


Rule = Callable[[Tree], Iterator[Issue]]


def check(tree: Tree) -> list[Issue]:
    """Every rule's issues, rule by rule."""
    return [issue for rule in RULES for issue in rule(tree)]


def _error(code: str, diagnostics: str, expression: str) -> Issue:
    return Issue("error", code, diagnostics, (expression,))


def quote(text: str) -> str:
    """`text` quoted for a diagnostic, cut short so that errors never echo long input."""
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return repr(text[:_QUOTE_LIMIT] + "...")


def resource_ids(tree: Tree) -> Iterator[Issue]:
    """Resource.id is 1 to 64 of A-Z a-z 0-9 - . (R4 §2.24.0.1); fhir.resources allows 255."""
    for node in tree.of("Resource"):
        resource_id = node.value.get("id")
        if not isinstance(resource_id, str) or _RESOURCE_ID.fullmatch(resource_id):
            continue
        if _ID_CHARACTERS.fullmatch(resource_id):
            reason = f"too long ({len(resource_id)} characters, at most 64)"
        else:
            reason = f"invalid characters in {quote(resource_id)}"
        yield _error(
            "value",
            f"Invalid resource id: {reason}; ids are letters, digits, '-' and '.'",
            f"{node.path}.id",
        )


def required_bindings(tree: Tree) -> Iterator[Issue]:
    """A code bound to a required value set must be one of its codes (R4 §4.1.5.1)."""
    for node in tree.of("code"):
        value_set = node.binding
        if value_set is None or node.value in value_set.codes:
            continue
        where = f" {value_set.url}" if value_set.url else ""
        yield _error(
            "code-invalid",
            f"The code {quote(node.value)} is not in the required value set{where}; "
            f"allowed: {', '.join(value_set.codes)}",
            node.path,
        )


def required_concepts(tree: Tree) -> Iterator[Issue]:
    """A CodeableConcept bound to a required value set carries a coding from it (R4 §4.1.5.1):
    a reader acts on the code (a refuted or entered-in-error diagnosis is no diagnosis), so
    text alone or a code it does not define tells it nothing it can act on."""
    for node in tree.of("CodeableConcept"):
        value_set = node.binding
        if value_set is None or not isinstance(node.value, dict):
            continue
        codings = node.value.get("coding")
        if any(
            isinstance(coding, dict)
            and coding.get("system") == value_set.system
            and coding.get("code") in value_set.codes
            for coding in (codings if isinstance(codings, list) else [])
        ):
            continue
        yield _error(
            "code-invalid",
            f"No coding is from the required value set {value_set.url}: one with system "
            f"{value_set.system} and a code of {', '.join(value_set.codes)} is needed",
            node.path,
        )


def local_codes(tree: Tree) -> Iterator[Issue]:
    """A code of one of this project's own code systems must be one of its codes: they are
    complete (CodeSystem.content "complete"), so an unknown one means nothing to any reader."""
    for node in tree.of("Coding"):
        system = LOCAL_CODE_SYSTEMS.get(str(node.value.get("system")))
        code = node.value.get("code")
        if system is None or not isinstance(code, str) or code in system.displays:
            continue
        yield _error(
            "code-invalid",
            f"The code {quote(code)} is not in the code system {system.url}; "
            f"its codes: {', '.join(system.displays)}",
            f"{node.path}.code",
        )


def narratives(tree: Tree) -> Iterator[Issue]:
    """txt-1 and txt-2: basic HTML only, nothing that runs, and some content (R4 §6.4.2)."""
    for node in tree.of("xhtml"):
        div = node.value
        if div.tag != f"{{{XHTML_NAMESPACE}}}div":
            yield _error(
                "invalid",
                f'The narrative must be a <div xmlns="{XHTML_NAMESPACE}"> element',
                node.path,
            )
            continue
        for problem in dict.fromkeys(_markup_problems(div)):
            yield _error("invariant", f"txt-1: {problem}", node.path)
        if not _has_content(div):
            yield _error(
                "invariant",
                "txt-2: The narrative SHALL have some non-whitespace content",
                node.path,
            )


def _markup_problems(div: Any) -> Iterator[str]:
    for element in div.iter():
        namespace, _, name = element.tag.rpartition("}")
        if namespace != "{" + XHTML_NAMESPACE or name not in NARRATIVE_ELEMENTS:
            yield f"the element <{name}> is not allowed in a narrative"
        for attribute, value in element.attrib.items():
            attribute_name = attribute.rpartition("}")[2]
            if attribute_name.lower().startswith("on"):
                yield f"the event attribute {attribute_name!r} is not allowed in a narrative"
            elif _SCRIPT_URL.search(_SPACE_OR_CONTROL.sub("", value).lower()):
                yield f"the attribute {attribute_name!r} holds a script URL"


def _has_content(div: Any) -> bool:
    has_text = any(text.strip() for text in div.itertext())
    return has_text or div.find(f".//{{{XHTML_NAMESPACE}}}img") is not None


def embedded_html(tree: Tree) -> Iterator[Issue]:
    """Strings and markdown must not carry HTML tags, which a careless client would render.

    This is the reference validator's security-checks and noHtmlInMarkdown behaviour, enforced
    always: narrative belongs in Narrative.div, where txt-1 keeps it harmless.
    """
    for node in tree.of("string", "markdown"):
        tag = _HTML_TAG.search(node.value)
        if tag is not None:
            yield _error(
                "security",
                f"The {node.type} contains text that looks like an HTML tag, starting at "
                f"{quote(tag.group()[:6])}; embedded markup is not accepted for security reasons",
                node.path,
            )


def xml_characters(tree: Tree) -> Iterator[Issue]:
    """Strings must not hold control characters: XML cannot carry them (R4 §2.24.0.1 string)."""
    for node in tree.of(*STRING_TYPES):
        if _NOT_XML.search(node.value):
            yield _error(
                "value",
                "The value contains a control character, which FHIR does not allow in strings",
                node.path,
            )


def periods(tree: Tree) -> Iterator[Issue]:
    """per-1: if present, start SHALL have a lower value than end."""
    for node in tree.of("Period"):
        start, end = node.value.get("start"), node.value.get("end")
        if isinstance(start, str) and isinstance(end, str) and _after(start, end):
            yield _error(
                "invariant",
                f"per-1: If present, start SHALL have a lower value than end "
                f"(start {quote(start)}, end {quote(end)})",
                node.path,
            )


def _after(start: str, end: str) -> bool:
    """Whether `start` can be later than `end`, each taken as the span its precision covers.

    A partial date is the span of its calendar fields: "2020" is not after "2020-05-01". Two
    values with times of day are instants. A date compared with a time of day has no timezone of
    its own (R4 §2.24.0.1), so the check must hold whatever zone, from UTC-12:00 to UTC+14:00, the
    date was meant in: "2023-06-21" can begin after 2023-06-21T06:20:00Z, as the reference
    validator also reports, while 2023-06-21T06:20:00Z always ends before "2023-06-21" does.
    """
    start_match, end_match = _DATE_TIME.fullmatch(start), _DATE_TIME.fullmatch(end)
    if start_match is None or end_match is None:
        return False
    try:
        if start_match.group(4) and end_match.group(4):
            return datetime.fromisoformat(start) > datetime.fromisoformat(end)
        if not start_match.group(4) and not end_match.group(4):
            return _first_day(start_match) > _last_day(end_match)
        earliest_start = (
            datetime.fromisoformat(start)
            if start_match.group(4)
            else datetime.combine(_first_day(start_match), time(), _LATEST_ZONE)
        )
        latest_end = (
            datetime.fromisoformat(end)
            if end_match.group(4)
            else datetime.combine(_last_day(end_match), time.max, _EARLIEST_ZONE)
        )
    except ValueError:  # an impossible date or a leap second, which fhir.resources reports
        return False
    return earliest_start > latest_end


def _first_day(match: re.Match[str]) -> date:
    year, month, day = match.group(1, 2, 3)
    return date(int(year), int(month or 1), int(day or 1))


def _last_day(match: re.Match[str]) -> date:
    year, month, day = match.group(1, 2, 3)
    if day:
        return date(int(year), int(month), int(day))
    last_month = int(month or 12)
    return date(int(year), last_month, monthrange(int(year), last_month)[1])


def extensions(tree: Tree) -> Iterator[Issue]:
    """Extension.url is required, absolute and unversioned; ext-1: value or extensions, not both.

    The extensions inside a complex extension are named by a relative url ("species" in
    patient-animal), so only the outermost ones must be absolute.
    """
    nodes = list(tree.of("Extension"))
    paths = {node.path for node in nodes}
    for node in nodes:
        nested = node.path.rpartition(".")[0] in paths
        yield from _extension_url(node, nested)
        has_value = any(key.startswith("value") for key in node.value)
        if has_value == bool(node.value.get("extension")):
            yield _error(
                "invariant", "ext-1: Must have either extensions or value[x], not both", node.path
            )


def _extension_url(node: Node, nested: bool) -> Iterator[Issue]:
    url = node.value.get("url")
    if not url:
        yield _error(
            "required",
            "Extension.url is required in order to identify, use and validate the extension",
            node.path,
        )
    elif not isinstance(url, str):
        return
    elif not nested and not _ABSOLUTE_URI.fullmatch(url):
        yield _error("value", f"Extension.url must be an absolute URL, not {quote(url)}", node.path)
    elif "|" in url:
        yield _error(
            "value", f"The extension URL must not contain a version: {quote(url)}", node.path
        )


def contained_resources(tree: Tree) -> Iterator[Issue]:
    """dom-2 to dom-5 on every resource that contains others (R4 §2.36.0.1)."""
    for node in tree.of("Resource"):
        contained = node.value.get("contained")
        if not isinstance(contained, list) or not contained:
            continue
        references = _local_references(tree, node.path)
        referenced = {value for _, value in references}
        for index, resource in enumerate(contained):
            path = f"{node.path}.contained[{index}]"
            if isinstance(resource, dict):
                refers_back = (path, "#") in references
                yield from _contained_issues(resource, path, referenced, refers_back)


def _local_references(tree: Tree, container: str) -> set[tuple[str, str]]:
    """(resource path, "#...") for every local reference in a container or what it contains."""
    inside = container + ".contained["
    found: set[tuple[str, str]] = set()
    for node in tree.of("Reference", "canonical", "uri", "url"):
        if node.resource != container and not node.resource.startswith(inside):
            continue
        value = node.value.get("reference") if node.type == "Reference" else node.value
        if isinstance(value, str) and value.startswith("#"):
            found.add((node.resource, value))
    return found


def _contained_issues(
    resource: dict[str, Any], path: str, referenced: set[str], refers_back: bool
) -> Iterator[Issue]:
    if "contained" in resource:
        yield _error(
            "invariant",
            "dom-2: If the resource is contained in another resource, "
            "it SHALL NOT contain nested Resources",
            path,
        )
    meta = resource.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        yield _error(
            "invariant",
            "dom-4: If a resource is contained in another resource, "
            "it SHALL NOT have a meta.versionId or a meta.lastUpdated",
            path,
        )
    if isinstance(meta, dict) and meta.get("security"):
        yield _error(
            "invariant",
            "dom-5: If a resource is contained in another resource, it SHALL NOT have a "
            "security label (the container's labels cover what it contains)",
            path,
        )
    resource_id = resource.get("id")
    if f"#{resource_id}" not in referenced and not refers_back:
        yield _error(
            "invariant",
            f"dom-3: The contained resource {quote(str(resource_id))} is not referenced from "
            "elsewhere in the containing resource, nor does it refer to the containing resource",
            path,
        )


def bundles(tree: Tree) -> Iterator[Issue]:
    """Entry fullUrls are absolute, a "Type/id" reference to an entry names its real type, and
    the R4 Bundle invariants hold (`_bundle_invariants`)."""
    for node in tree.of("Resource"):
        if node.value.get("resourceType") != "Bundle":
            continue
        entries = node.value.get("entry")
        if isinstance(entries, list):
            yield from _full_urls(entries, node.path)
            yield from _reference_types(tree, node.path, _entry_types(entries))
        yield from _bundle_invariants(node.value, node.path)


def _full_urls(entries: list[Any], bundle: str) -> Iterator[Issue]:
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(full_url, str):
            continue
        if not _FULL_URL.fullmatch(full_url):
            yield _error(
                "value",
                f"The fullUrl must be an absolute URL (http, https, urn:uuid or urn:oid), "
                f"not {quote(full_url)}",
                f"{bundle}.entry[{index}]",
            )
        elif (disagreement := full_url_disagreement(full_url, entry.get("resource"))) is not None:
            yield _error("value", disagreement, f"{bundle}.entry[{index}]")


def full_url_disagreement(full_url: str, resource: Any) -> str | None:
    """Why an entry's fullUrl disagrees with its resource, or None (R4 Bundle.entry.fullUrl:
    it "SHALL NOT disagree with the id in the resource"). A fullUrl that looks like a RESTful
    server URL names the resource's type and ends with its id; a urn:uuid or urn:oid, or any
    other URL, names neither, and a resource without an id (a create's) has none to match."""
    restful = _RESTFUL_URL.fullmatch(full_url)
    if restful is None or not isinstance(resource, dict):
        return None
    named_type, named_id = restful.groups()
    if named_type not in RESOURCE_TYPES:  # no FHIR server's: https://x.org/people/Jane/2
        return None
    kind, resource_id = resource.get("resourceType"), resource.get("id")
    if isinstance(kind, str) and named_type != kind:
        return (
            f"The fullUrl {quote(full_url)} must name the resource's type {quote(kind)}, not "
            f"{named_type} (R4 Bundle.entry.fullUrl)"
        )
    if isinstance(resource_id, str) and named_id != resource_id:
        return (
            f"The fullUrl {quote(full_url)} must end with the resource's id "
            f"{quote(resource_id)} (R4 Bundle.entry.fullUrl)"
        )
    return None


def _entry_types(entries: list[Any]) -> dict[str, set[str]]:
    """The resource types each urn:uuid fullUrl stands for.

    Only type-less identities count: resource ids are unique per type, so `Patient/0` beside a
    Task whose id is 0 is no mismatch, while `Practitioner/x` naming the entry whose fullUrl is
    urn:uuid:x, an Organization, is.
    """
    types: dict[str, set[str]] = {}
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        entry_id = _full_url_id(entry.get("fullUrl"))
        if entry_id is not None:
            types.setdefault(entry_id, set()).add(resource["resourceType"])
    return types


def _full_url_id(full_url: Any) -> str | None:
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    return None


def _reference_types(tree: Tree, bundle: str, types: dict[str, set[str]]) -> Iterator[Issue]:
    inside = bundle + ".entry["
    for node in tree.of("Reference"):
        reference = node.value.get("reference")
        if not node.resource.startswith(inside) or not isinstance(reference, str):
            continue
        match = _RELATIVE_REFERENCE.fullmatch(reference)
        if match is None or match.group(2) not in types:
            continue
        found = types[match.group(2)]
        if match.group(1) not in found:
            yield _error(
                "value",
                f"The reference {quote(reference)} matches a Bundle entry whose resourceType is "
                f"{' or '.join(sorted(found))}",
                node.path,
            )


Entry = tuple[int, dict[str, Any]]
"""A Bundle entry that is a JSON object, with its index (the walk reports any other)."""


def _bundle_invariants(bundle: dict[str, Any], path: str) -> Iterator[Issue]:
    """bdl-1 to bdl-12 (R4 Bundle): what each Bundle type allows its entries and needs.

    fhir.resources checks each element on its own, so a collection with a total or a document
    without a Composition passed as valid. Each rule is reported where the reference validator
    reports it: bdl-5 and bdl-8, constraints on Bundle.entry, at the entry; the others, on
    Bundle, at the Bundle, with the text naming the entries that break them. A Bundle without
    a type string (fhir.resources reports it) is held to the rules that do not depend on it.
    """
    entries = _object_entries(bundle.get("entry"))
    yield from _entry_contents(entries, path)
    kind = bundle.get("type")
    if isinstance(kind, str):
        yield from _typed_contents(bundle, kind, entries, path)
        yield from _unique_full_urls(kind, entries, path)
        yield from _document_header(bundle, kind, path)
        yield from _first_resource(kind, entries, path)


def _object_entries(entries: Any) -> list[Entry]:
    if not isinstance(entries, list):
        return []
    return [(index, entry) for index, entry in enumerate(entries) if isinstance(entry, dict)]


def _has(element: dict[str, Any], name: str) -> bool:
    """FHIRPath `exists()`: a value, or for a primitive, extensions in its `_name` instead."""
    return element.get(name) is not None or element.get(f"_{name}") is not None


def _invariant(key: str, human: str, detail: str, expression: str) -> Issue:
    return _error("invariant", f"{key}: {human} ({detail})", expression)


def _listed(indexes: list[int]) -> str:
    """Entries named as "entry 3" or "entries 0, 2, 4", the first few only: a Bundle may
    have thousands."""
    shown = ", ".join(str(index) for index in indexes[:_LISTED_ENTRIES])
    more = len(indexes) - _LISTED_ENTRIES
    return f"entr{'y' if len(indexes) == 1 else 'ies'} {shown}" + (
        f" and {more} more" if more > 0 else ""
    )


def _entry_contents(entries: list[Entry], bundle: str) -> Iterator[Issue]:
    """bdl-5: an entry is a resource, a request or a response; bdl-8: a fullUrl names the
    resource, never one version of it, so that references to it resolve to whichever is
    current (R4 §2.36.0.4)."""
    for index, entry in entries:
        if not any(_has(entry, name) for name in ("resource", "request", "response")):
            yield _invariant(
                "bdl-5",
                "must be a resource unless there's a request or response",
                "the entry has none of them",
                f"{bundle}.entry[{index}]",
            )
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and "/_history/" in full_url:
            yield _invariant(
                "bdl-8",
                "fullUrl cannot be a version specific reference",
                f"the fullUrl is {quote(full_url)}",
                f"{bundle}.entry[{index}]",
            )


def _typed_contents(
    bundle: dict[str, Any], kind: str, entries: list[Entry], path: str
) -> Iterator[Issue]:
    """bdl-1 to bdl-4: a total and search details belong to searches (and a history's total),
    a request to what a server is asked to run or ran, a response to what it answered."""
    if _has(bundle, "total") and kind not in _TOTAL_TYPES:
        yield _invariant(
            "bdl-1", "total only when a search or history", f"the type is {quote(kind)}", path
        )
    searched = [index for index, entry in entries if _has(entry, "search")]
    if searched and kind != "searchset":
        yield _invariant(
            "bdl-2",
            "entry.search only when a search",
            f"the type is {quote(kind)}; search is in {_listed(searched)}",
            path,
        )
    for rule in (_REQUEST_RULE, _RESPONSE_RULE):
        yield from _mandatory_or_prohibited(rule, kind, entries, path)


def _mandatory_or_prohibited(
    rule: tuple[str, str, str, frozenset[str]], kind: str, entries: list[Entry], path: str
) -> Iterator[Issue]:
    key, human, name, types = rule
    mandatory = kind in types
    wrong = [index for index, entry in entries if _has(entry, name) != mandatory]
    if wrong:
        where = "missing from" if mandatory else "in"
        detail = f"the type is {quote(kind)}; a {name} is {where} {_listed(wrong)}"
        yield _invariant(key, human, detail, path)


def _unique_full_urls(kind: str, entries: list[Entry], path: str) -> Iterator[Issue]:
    """bdl-7: a fullUrl names one entry, or versions of one resource told apart by
    meta.versionId; a history lists versions as it likes. Two entries with the same fullUrl and
    neither version make a reference to it mean either."""
    if kind == "history":
        return
    first: dict[tuple[str, str | None], int] = {}
    repeated: list[int] = []
    for index, entry in entries:
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str):
            continue
        identity = (full_url, _version_id(entry.get("resource")))
        if identity in first:
            repeated.append(index)
        else:
            first[identity] = index
    if repeated:
        yield _invariant(
            "bdl-7",
            "FullUrl must be unique in a bundle, or else entries with the same fullUrl must "
            "have different meta.versionId (except in history bundles)",
            f"an earlier entry's fullUrl and version recur in {_listed(repeated)}",
            path,
        )


def _version_id(resource: Any) -> str | None:
    meta = resource.get("meta") if isinstance(resource, dict) else None
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _document_header(bundle: dict[str, Any], kind: str, path: str) -> Iterator[Issue]:
    """bdl-9 and bdl-10: a document is identified for all time and dated, since it is kept
    and passed on whole (R4 §3.3.1)."""
    if kind != "document":
        return
    identifier = bundle.get("identifier")
    if not isinstance(identifier, dict):
        identifier = {}
    missing = [name for name in ("system", "value") if not _has(identifier, name)]
    if missing:
        yield _invariant(
            "bdl-9",
            "A document must have an identifier with a system and a value",
            f"Bundle.identifier has no {' and no '.join(missing)}",
            path,
        )
    if not isinstance(bundle.get("timestamp"), str):
        yield _invariant(
            "bdl-10", "A document must have a date", "Bundle.timestamp has no value", path
        )


def _first_resource(kind: str, entries: list[Entry], path: str) -> Iterator[Issue]:
    """bdl-11 and bdl-12: a document starts with its Composition, a message with its
    MessageHeader, which say what the rest is; a Bundle with no entries has neither."""
    if kind not in _FIRST_RESOURCES:
        return
    key, human, expected = _FIRST_RESOURCES[kind]
    resource = entries[0][1].get("resource") if entries and entries[0][0] == 0 else None
    found = resource.get("resourceType") if isinstance(resource, dict) else None
    if found != expected:
        detail = f"the first is {quote(found)}" if isinstance(found, str) else "there is none"
        yield _invariant(key, human, detail, path)


RULES: Final[tuple[Rule, ...]] = (
    resource_ids,
    required_bindings,
    required_concepts,
    local_codes,
    narratives,
    embedded_html,
    xml_characters,
    periods,
    extensions,
    contained_resources,
    bundles,
)
