"""The FHIR release pin: FHIR R4 (4.0.1) through the fhir.resources R4B models, and its formats.

This is the only module that imports fhir.resources, and always its R4B models: they carry the R4
4.0.1 wire format for the types in RESOURCE_TYPES, where the package's default (R5) models refuse
most R4 instances. It is also the only module that knows FHIR JSON and FHIR XML.

fhir.resources is used for what it does cheaply, checking a dict against a model
(`model_validate`, ~0.7 ms). It never transforms what a client wrote, because a model round trip
is not faithful (it rewrites instants such as ...31.512Z into ...31.512000Z): the server keeps the
client's dict. XML is written from that dict and read back into one directly, driven by metadata
taken once per class from the models (element order, lists, primitive, complex or resource
types, which names are XML attributes), which is an order of magnitude faster than
`model_dump_xml`.

Decimals: dicts returned by parse_json and parse_xml hold FHIR decimals that have a fraction or an
exponent as `decimal.Decimal`, so that "1.50" keeps its digits (a float would make it 1.5);
integers stay `int`. orjson cannot write a Decimal by itself: serialise such dicts with to_json.
"""

import json
import re
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import zip_longest
from typing import Any, Final, Literal
from xml.etree.ElementTree import Element as XmlElement

import orjson
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.backboneelement import BackboneElement
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.fhirprimitiveextension import FHIRPrimitiveExtension
from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mappings import invariants
from mappings.errors import InvalidResource, Issue, MalformedContent, UnknownResourceType
from mappings.invariants import Node, Tree, quote
from mappings.terminology import REQUIRED_BINDINGS, REQUIRED_CONCEPT_BINDINGS, ValueSet

FHIR_VERSION: Final = "4.0.1"
FHIR_NAMESPACE: Final = "http://hl7.org/fhir"
XHTML_NAMESPACE: Final = invariants.XHTML_NAMESPACE
MAX_BYTES: Final = 16 * 1024 * 1024
MAX_XML_DEPTH: Final = 256
# fhir.resources validates nested models by Python recursion and overflows the stack past ~150
# levels; real resources nest far less deeply, so deeper ones are refused before it runs.
MAX_NESTING: Final = 64

# The R4 resource types read here: those with an R4B model of the same shape (see there).
RESOURCE_TYPES: Final = invariants.RESOURCE_TYPES

Kind = Literal["primitive", "xhtml", "complex", "resource"]
_INTEGER_TYPES: Final = frozenset({"integer", "unsignedInt", "positiveInt", "integer64"})
_XSI_SCHEMA_LOCATION: Final = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
_BOM: Final = b"\xef\xbb\xbf"
# Every JSON number with a fraction or an exponent has a digit then "." or "e" then a digit or a
# sign. Dates and OIDs in strings match too, which only costs the slower, exact parse (~13 µs).
_FRACTION_OR_EXPONENT: Final = re.compile(rb"[0-9][.eE][0-9+\-]")
_XML_INTEGER: Final = re.compile(r"-?(0|[1-9][0-9]*)")
_XML_DECIMAL: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ATTRIBUTE_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)
_MESSAGE_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class _Element:
    """One element of a FHIR type, as both wire formats need it."""

    name: str
    order: int
    kind: Kind
    fhir_type: str
    is_list: bool
    is_attribute: bool
    model: type[FHIRAbstractModel] | None
    binding: ValueSet | None


@dataclass(frozen=True, slots=True, eq=False)
class _Type:
    """A resource, data type or backbone element: its elements by name, in the spec's order."""

    path: str
    is_resource: bool
    elements: Mapping[str, _Element]


def parse_json(raw: bytes, *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """FHIR JSON bytes to the resource dict, refusing anything that is not one JSON resource."""
    _check_size(raw, max_bytes)
    raw = raw.removeprefix(_BOM)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise MalformedContent([_json_syntax_issue(raw, error)]) from None
    if _FRACTION_OR_EXPONENT.search(raw):
        document = _loads_with_decimals(raw)
    if not isinstance(document, dict):
        raise MalformedContent([_fatal("structure", "A FHIR resource must be a JSON object")])
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str):
        raise MalformedContent(
            [_fatal("structure", "The resource has no resourceType string property")]
        )
    _check_resource_type(resource_type)
    return document


def _check_size(raw: bytes, max_bytes: int) -> None:
    if len(raw) > max_bytes:
        raise MalformedContent(
            [_fatal("too-long", f"The document is larger than the {max_bytes} bytes accepted")]
        )


def _json_syntax_issue(raw: bytes, error: orjson.JSONDecodeError) -> Issue:
    """orjson's message with its line and column; comments get the reason they are refused."""
    if raw[error.pos : error.pos + 2] in (b"//", b"/*"):
        reason = "comments are not allowed in JSON"
    else:
        reason = error.msg
    return _fatal("invalid", f"Invalid JSON at line {error.lineno}, column {error.colno}: {reason}")


def _loads_with_decimals(raw: bytes) -> Any:
    """The same document with exact decimals; orjson has already proven it well formed."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except RecursionError:
        raise MalformedContent([_fatal("too-long", "The JSON is nested too deeply")]) from None


def _check_resource_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise UnknownResourceType(
            [
                Issue(
                    "error",
                    "not-supported",
                    f"{quote(resource_type)} is not a FHIR R4 resource type this server knows",
                    ("resourceType",),
                )
            ]
        )


def _fatal(code: str, diagnostics: str) -> Issue:
    return Issue("fatal", code, diagnostics)


def to_json(resource: dict[str, Any]) -> bytes:
    """The dict as FHIR JSON, decimals written with the digits they came with."""
    return orjson.dumps(resource, default=_json_default)


def _json_default(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(_decimal_text(value))
    raise TypeError(f"{type(value).__name__} is not a FHIR JSON value")


def _decimal_text(value: Decimal) -> str:
    """1.50 stays 1.50 and 0.0000001 is not turned into 1E-7; only exponents above 0 remain."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:
        return format(value, "f")
    return str(value)


def validate(resource: dict[str, Any]) -> None:
    """Check a resource against R4: the R4B model, the JSON rules, required bindings, invariants.

    Raises InvalidResource with every issue found, each with a FHIRPath expression.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource(
            [Issue("error", "structure", "The resource has no resourceType string property")]
        )
    _check_resource_type(resource_type)
    walk = _Walk()
    walk.resource(resource, resource_type, 0)
    checked = invariants.check(Tree(walk.nodes))
    flagged = {issue.expression for issue in checked}
    model = _model_issues(resource, resource_type, walk.covered) if walk.sound else []
    issues = [*walk.issues, *(i for i in model if i.expression not in flagged), *checked]
    if issues:
        raise InvalidResource(issues)


class _Walk:
    """One pass over a resource: the nodes for the invariants, and the FHIR JSON rule breaks.

    fhir.resources lets through what pydantic's lax mode coerces ("true" for a boolean), nulls
    and empty arrays, field names used as keys (`status__ext`) and `fhir_comments`; the walk
    refuses them. Where it reports a path, pydantic's complaints about that path are dropped
    (`covered`). When a value has the wrong JSON shape or nests too deeply, `sound` turns False
    and fhir.resources is not asked: on such input it can raise TypeError or AttributeError, or
    parse a string as JSON, instead of reporting a validation error.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.issues: list[Issue] = []
        self.covered: list[str] = []
        self.sound = True

    def fail(self, code: str, diagnostics: str, path: str, *, covers: str | None = None) -> None:
        self.issues.append(Issue("error", code, diagnostics, (path,)))
        self.covered.append(covers or path)

    def misshapen(self, diagnostics: str, path: str) -> None:
        self.sound = False
        self.fail("structure", diagnostics, path)

    def resource(self, value: Any, path: str, depth: int) -> None:
        resource_type = value.get("resourceType") if isinstance(value, dict) else None
        if not isinstance(resource_type, str) or resource_type not in RESOURCE_TYPES:
            self.misshapen("Expected a resource with a known R4 resourceType", path)
            return
        self.nodes.append(Node(path, "Resource", value, path))
        self.object(value, _resource_info(resource_type), path, path, depth + 1)

    def object(
        self, value: dict[str, Any], info: _Type, path: str, resource: str, depth: int
    ) -> None:
        if depth > MAX_NESTING:
            self.sound = False
            self.fail("too-long", f"Elements are nested more than {MAX_NESTING} deep", path)
            return
        for key in value:
            if key == "resourceType" and info.is_resource:
                continue
            name = key.removeprefix("_")
            element = info.elements.get(name)
            if element is None or (key != name and element.kind != "primitive"):
                self.fail(
                    "structure",
                    f"Unrecognized property {quote(key)}",
                    path,
                    covers=f"{path}.{key}",
                )
            elif key == name or name not in value:
                extension = value.get("_" + name) if element.kind == "primitive" else None
                self.element(element, value.get(name), extension, f"{path}.{name}", resource, depth)

    def element(
        self, element: _Element, value: Any, extension: Any, path: str, resource: str, depth: int
    ) -> None:
        if not element.is_list:
            if isinstance(value, list) or isinstance(extension, list):
                self.misshapen("This element does not repeat: it must not be an array", path)
            else:
                self.item(element, value, extension, path, resource, depth)
            return
        if value is None and extension is None:
            self.fail("invalid", "null is not a FHIR value - leave the property out instead", path)
        elif not isinstance(value, list | None) or not isinstance(extension, list | None):
            self.misshapen("This element repeats: it must be a JSON array", path)
        elif value == [] or extension == []:
            self.fail("invalid", "Array cannot be empty - leave the property out instead", path)
        elif value is not None and extension is not None and len(value) != len(extension):
            self.misshapen("The value and _extension arrays differ in length", path)
        else:
            pairs = zip_longest(value or [], extension or [])
            for index, (item, item_extension) in enumerate(pairs):
                self.item(element, item, item_extension, f"{path}[{index}]", resource, depth)

    def item(
        self, element: _Element, value: Any, extension: Any, path: str, resource: str, depth: int
    ) -> None:
        if value is None and extension is None:
            self.fail("invalid", "null is not a FHIR value - leave the property out instead", path)
        elif element.kind == "primitive":
            self.primitive(element, value, extension, path, resource, depth)
        elif element.kind == "xhtml":
            self.xhtml(value, path, resource)
        elif element.kind == "resource":
            self.resource(value, path, depth)
        elif not isinstance(value, dict):
            self.misshapen("This element must be a JSON object", path)
        elif not value:
            self.fail("invalid", "Object cannot be empty - leave the property out instead", path)
        elif value.keys() <= {"id"}:
            self.fail("invariant", "ele-1: All FHIR elements must have a @value or children", path)
        else:
            assert element.model is not None
            self.nodes.append(Node(path, element.fhir_type, value, resource, element.binding))
            self.object(value, _type_info(element.model), path, resource, depth + 1)

    def primitive(
        self, element: _Element, value: Any, extension: Any, path: str, resource: str, depth: int
    ) -> None:
        if extension is not None:
            self.primitive_extension(extension, value is None, path, resource, depth)
        if value is None:
            return
        expected = _json_type_error(element.fhir_type, value)
        if expected is not None:
            self.misshapen(f"A FHIR {element.fhir_type} must be {expected}", path)
        elif value == "":
            self.fail("invalid", "A value cannot be empty - leave the property out instead", path)
        else:
            self.nodes.append(Node(path, element.fhir_type, value, resource, element.binding))

    def primitive_extension(
        self, extension: Any, without_value: bool, path: str, resource: str, depth: int
    ) -> None:
        if not isinstance(extension, dict) or not extension:
            self.misshapen("The _ property must be a non-empty JSON object", path)
        elif without_value and not extension.get("extension"):
            self.fail("invariant", "ele-1: All FHIR elements must have a @value or children", path)
        else:
            self.object(extension, _PRIMITIVE_EXTENSION, path, resource, depth + 1)

    def xhtml(self, value: Any, path: str, resource: str) -> None:
        if not isinstance(value, str):
            self.misshapen("The narrative div must be a JSON string", path)
            return
        try:
            self.nodes.append(Node(path, "xhtml", _parse_xhtml(value), resource))
        except MalformedContent as error:
            self.fail("invalid", f"The narrative is not valid XHTML: {error}", path)


def _json_type_error(primitive: str, value: Any) -> str | None:
    """The JSON type a FHIR primitive needs, when `value` is not of it (R4 §2.6.2)."""
    if primitive == "boolean":
        return None if isinstance(value, bool) else "a JSON boolean"
    if primitive in _INTEGER_TYPES:
        valid = isinstance(value, int) and not isinstance(value, bool)
        return None if valid else "a JSON integer"
    if primitive == "decimal":
        valid = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        return None if valid else "a JSON number"
    return None if isinstance(value, str) else "a JSON string"


def _model_issues(resource: dict[str, Any], resource_type: str, covered: list[str]) -> list[Issue]:
    """fhir.resources' complaints, as issues, minus those the walk already explained."""
    try:
        _resource_model(resource_type).model_validate(resource)
    except ValidationError as error:
        issues = (
            _pydantic_issue(resource, details)
            for details in error.errors(include_url=False, include_input=False)
        )
        return [issue for issue in issues if not _is_covered(issue.expression[0], covered)]
    except (TypeError, AttributeError, KeyError, RecursionError):
        # fhir.resources' own validators fail this way on some invalid shapes; content that
        # could not be checked is refused, never let through
        return [Issue("error", "structure", "The resource could not be checked", (resource_type,))]
    return []


def _pydantic_issue(resource: dict[str, Any], details: ErrorDetails) -> Issue:
    kind = details["type"]
    if kind in ("missing", "model_field_validation.missing"):
        code = "required"
    elif kind.endswith("_type") or kind in ("extra_forbidden", "model_validation_format"):
        code = "structure"
    else:
        code = "value"
    message = " ".join(details["msg"].split())[:_MESSAGE_LIMIT]
    return Issue("error", code, message, (_fhirpath(resource, details["loc"]),))


def _fhirpath(resource: dict[str, Any], location: tuple[int | str, ...]) -> str:
    """A pydantic error location as FHIRPath, following the data to know each step's type.

    ('activity', 0, 'detail', 'status') on a CarePlan is "CarePlan.activity[0].detail.status";
    a primitive's extension (`_created`, `created__ext`) is the primitive's own path, and
    fhir.resources' other steps (`root`, union tags) name no element and are left out.
    """
    path: str = resource["resourceType"]
    info: _Type | None = _resource_info(path)
    value: Any = resource
    element: _Element | None = None
    into_extension = False
    for step in location:
        if isinstance(step, int):
            if not isinstance(value, list) or not 0 <= step < len(value):
                break
            value = value[step]
            path += f"[{step}]"
            info = _PRIMITIVE_EXTENSION if into_extension else _value_info(element, value)
            continue
        name = step.removeprefix("_").removesuffix("__ext")
        element = info.elements.get(name) if info is not None else None
        if element is None and isinstance(value, dict) and step in value:
            return f"{path}.{step}"  # an unknown property, which the walk reports
        if element is None or not isinstance(value, dict):
            continue
        path += f".{name}"
        value = value.get(step, value.get(name))
        into_extension = step != name
        if element.is_list:
            info = None
        else:
            info = _PRIMITIVE_EXTENSION if into_extension else _value_info(element, value)
    return path


def _value_info(element: _Element | None, value: Any) -> _Type | None:
    if element is None or element.kind in ("primitive", "xhtml"):
        return None
    if element.kind == "resource":
        resource_type = value.get("resourceType") if isinstance(value, dict) else None
        return _resource_info(resource_type) if resource_type in RESOURCE_TYPES else None
    assert element.model is not None
    return _type_info(element.model)


def _is_covered(path: str, covered: list[str]) -> bool:
    return any(
        path == prefix or path.startswith((prefix + ".", prefix + "[")) for prefix in covered
    )


def _resource_model(resource_type: str) -> type[FHIRAbstractModel]:
    return get_fhir_model_class(resource_type)


def _resource_info(resource_type: str) -> _Type:
    return _type_info(_resource_model(resource_type))


@cache
def _type_info(model: type[FHIRAbstractModel]) -> _Type:
    """The wire-format metadata of one model class, built once."""
    is_resource = model.has_resource_base()
    path = _definition_paths(model.__module__)[model]
    aliases = model.get_alias_mapping()
    elements = {
        name: _element(model, name, order, aliases[name], path, is_resource)
        for order, name in enumerate(model.elements_sequence())
    }
    return _Type(path, is_resource, elements)


def _element(
    model: type[FHIRAbstractModel], name: str, order: int, field: str, path: str, is_resource: bool
) -> _Element:
    info = model.model_fields[field]
    target = _model_of(info.annotation)
    kind: Kind
    binding = None
    if target is not None:
        kind = "resource" if target.has_resource_base() else "complex"
        type_ = target.__name__
        binding = REQUIRED_CONCEPT_BINDINGS.get(f"{path}.{name}")
    else:
        type_ = _primitive_of(info.annotation)
        kind = "xhtml" if type_ == "xhtml" else "primitive"
        if type_ == "code" and f"{path}.{name}" not in _OPEN_CODES:
            binding = REQUIRED_BINDINGS.get(f"{path}.{name}") or _model_binding(
                info.json_schema_extra
            )
    is_attribute = (name == "id" and not is_resource) or (model is Extension and name == "url")
    return _Element(
        name, order, kind, type_, _is_list(info.annotation), is_attribute, target, binding
    )


@dataclass(frozen=True, slots=True)
class SummaryShape:
    """A resource's or backbone element's JSON names as `_summary` and `_elements` read them
    (R4 §3.1.1.5.8): its summary elements, its mandatory ones, and its backbone elements (by
    JSON name, with their type's name) whose own summary elements `_summary=true` keeps."""

    summary: frozenset[str]
    mandatory: frozenset[str]
    backbones: tuple[tuple[str, str], ...]


@cache
def summary_shape(type_name: str) -> SummaryShape:
    """The shape of a resource type or backbone element type (`CarePlanActivity`)."""
    model: type[FHIRAbstractModel] = get_fhir_model_class(type_name)
    summary: set[str] = set()
    mandatory: set[str] = set()
    backbones: list[tuple[str, str]] = []
    for field in model.model_fields.values():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        name = field.alias or ""
        if extra.get("summary_element_property"):
            summary.add(name)
        if (
            field.is_required()
            or extra.get("element_required")
            or extra.get("one_of_many_required")
        ):
            mandatory.add(name)
        target = _model_of(field.annotation)
        if target is not None and issubclass(target, BackboneElement):
            backbones.append((name, target.__name__))
    return SummaryShape(frozenset(summary), frozenset(mandatory), tuple(backbones))


_OPEN_CODES: Final = frozenset({"CapabilityStatement.format"})
"""Codes whose required value set is open, where fhir.resources' enum_values read a list off
the element's short text instead: CapabilityStatement.format is "xml | json | ttl | mime
type", bound to MimeType (any BCP-13 type), so application/fhir+json is one of its codes."""


def _model_binding(extra: Any) -> ValueSet | None:
    """fhir.resources' enum_values for a code, unless truncated (they then end with "+")."""
    codes = extra.get("enum_values") if isinstance(extra, dict) else None
    if not codes or codes[-1] == "+":
        return None
    return ValueSet(None, tuple(codes))


def _model_of(annotation: Any) -> type[FHIRAbstractModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return annotation.get_model_klass()
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _primitive_of(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *markers = typing.get_args(annotation)
        for marker in markers:
            if type(marker) in FHIR_PRIMITIVES_MAPS:
                return FHIR_PRIMITIVES_MAPS[type(marker)]
        return FHIR_PRIMITIVES_MAPS[base]
    if annotation in FHIR_PRIMITIVES_MAPS:
        return FHIR_PRIMITIVES_MAPS[annotation]
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    return _primitive_of(arguments[0])


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list or any(
        _is_list(argument) for argument in typing.get_args(annotation)
    )


@cache
def _definition_paths(module_name: str) -> Mapping[type[FHIRAbstractModel], str]:
    """Element paths of one model module: its resource or data type, then its backbone elements.

    A backbone element's path is the path it is first reached by from the module's main class
    ("CarePlan.activity.detail"), which is where the specification defines its bindings.
    """
    module = sys.modules[module_name]
    short_name = module_name.rpartition(".")[2]
    main: type[FHIRAbstractModel] = next(
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and value.__module__ == module_name
        and value.__name__.lower() == short_name
    )
    paths: dict[type[FHIRAbstractModel], str] = {main: main.__name__}
    queue = [main]
    for model in queue:
        for name, field in model.get_alias_mapping().items():
            target = _model_of(model.model_fields[field].annotation)
            if target is not None and target.__module__ == module_name and target not in paths:
                paths[target] = f"{paths[model]}.{name}"
                queue.append(target)
    return paths


_PRIMITIVE_EXTENSION: Final = _type_info(FHIRPrimitiveExtension)
_EXTENSION: Final = _type_info(Extension)


def _parse_xhtml(div: str) -> XmlElement:
    """A narrative div as an element tree, for the txt-1/txt-2 checks (R4 §6.4.2).

    defusedxml refuses DTDs and entity declarations (nothing is expanded or fetched), and an
    undefined entity such as &reg; is a syntax error, as the reference validator says.
    """
    try:
        return defused.fromstring(div, forbid_dtd=True)
    except (defused.ParseError, DefusedXmlException) as error:
        message = " ".join(str(error).split())[:_MESSAGE_LIMIT]
        raise MalformedContent([_fatal("invalid", f"Invalid XML: {message}")]) from None
