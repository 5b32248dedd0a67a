"""FHIR XML (R4 §2.6) in and out, at the edge: the XML half of the wire format needs lxml,
which the pure mappings layer does not import; element order, cardinality and types come from
the R4 model metadata of mappings.fhir.

Parsing is hardened: a fresh lxml parser per document, no DTD, no entity expansion, no network,
no huge trees, a resolver that refuses everything, any DOCTYPE refused, size and depth limited.
"""

from decimal import Decimal
from functools import lru_cache
from itertools import zip_longest
from typing import Any, Final, NoReturn

from lxml import etree

from mappings.errors import InvalidResource, Issue, MalformedContent
from mappings.fhir import (
    _ATTRIBUTE_ESCAPES,
    _EXTENSION,
    _INTEGER_TYPES,
    _MESSAGE_LIMIT,
    _XML_DECIMAL,
    _XML_INTEGER,
    _XSI_SCHEMA_LOCATION,
    FHIR_NAMESPACE,
    MAX_BYTES,
    MAX_XML_DEPTH,
    RESOURCE_TYPES,
    XHTML_NAMESPACE,
    _check_resource_type,
    _check_size,
    _decimal_text,
    _Element,
    _fatal,
    _resource_info,
    _Type,
    _type_info,
)
from mappings.invariants import quote

_EXTENSION_TAG: Final = f"{{{FHIR_NAMESPACE}}}extension"


def to_xml(resource: dict[str, Any]) -> bytes:
    """A validated resource dict as FHIR XML (R4 §2.6.1), elements in the specification's order."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    _write_resource(out, resource, f' xmlns="{FHIR_NAMESPACE}"')
    return "".join(out).encode()


def _write_resource(out: list[str], resource: dict[str, Any], namespace: str = "") -> None:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in RESOURCE_TYPES:
        raise InvalidResource([Issue("error", "structure", "Expected a known R4 resource")])
    out.append(f"<{resource_type}{namespace}>")
    _write_children(out, _resource_info(resource_type), resource)
    out.append(f"</{resource_type}>")


def _write_object(out: list[str], name: str, info: _Type, value: dict[str, Any]) -> None:
    attributes, children = _layout(info, tuple(value))
    opening = f"<{name}" + "".join(f' {key}="{_attribute(value[key])}"' for key in attributes)
    if not children:
        out.append(opening + "/>")
        return
    out.append(opening + ">")
    _write_elements(out, children, value)
    out.append(f"</{name}>")


def _write_children(out: list[str], info: _Type, value: dict[str, Any]) -> None:
    _write_elements(out, _layout(info, tuple(value))[1], value)


def _write_elements(out: list[str], elements: tuple[_Element, ...], value: dict[str, Any]) -> None:
    for element in elements:
        name = element.name
        if element.kind == "primitive":
            _write_primitives(out, element, value.get(name), value.get("_" + name))
        elif element.kind == "xhtml":
            out.append(_xhtml_out(value[name]))
        else:
            for item in value[name] if element.is_list else [value[name]]:
                _write_item(out, element, item)


@lru_cache(maxsize=4096)
def _layout(info: _Type, keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[_Element, ...]]:
    """The XML attributes and the child elements, in order, of an object with these keys.

    Cached: resources repeat a few shapes (a Coding with system, code and display) many times.
    """
    names = {key.removeprefix("_") for key in keys} - {"resourceType"}
    unknown = names - info.elements.keys()
    if unknown:
        raise InvalidResource(
            [Issue("error", "structure", f"Unrecognized property {quote(min(unknown))}")]
        )
    present = sorted((info.elements[name] for name in names), key=_order)
    attributes = tuple(element.name for element in present if element.is_attribute)
    return attributes, tuple(element for element in present if not element.is_attribute)


def _order(element: _Element) -> int:
    return element.order


def _write_primitives(out: list[str], element: _Element, value: Any, extension: Any) -> None:
    if not element.is_list:
        _write_primitive(out, element.name, value, extension)
        return
    for item, item_extension in zip_longest(value or [], extension or []):
        _write_primitive(out, element.name, item, item_extension)


def _write_primitive(out: list[str], name: str, value: Any, extension: Any) -> None:
    attributes = ""
    if extension and "id" in extension:
        attributes += f' id="{_attribute(extension["id"])}"'
    if value is not None:
        attributes += f' value="{_attribute(_primitive_text(value))}"'
    extensions = extension.get("extension") if extension else None
    if not extensions:
        out.append(f"<{name}{attributes}/>")
        return
    out.append(f"<{name}{attributes}>")
    for item in extensions:
        _write_object(out, "extension", _EXTENSION, item)
    out.append(f"</{name}>")


def _write_item(out: list[str], element: _Element, value: dict[str, Any]) -> None:
    if element.kind == "resource":
        out.append(f"<{element.name}>")
        _write_resource(out, value)
        out.append(f"</{element.name}>")
    else:
        assert element.model is not None
        _write_object(out, element.name, _type_info(element.model), value)


def _primitive_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _attribute(value: Any) -> str:
    """An attribute value; newlines and tabs as references, which XML would turn into spaces."""
    return str(value).translate(_ATTRIBUTE_ESCAPES)


def _xhtml_out(div: str) -> str:
    """The narrative div, re-serialised after a hardened parse so the output is well formed."""
    return etree.tostring(_parse_xhtml(div), encoding="unicode")


def parse_xml(
    raw: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_XML_DEPTH
) -> dict[str, Any]:
    """FHIR XML bytes to the FHIR JSON dict of the same resource (R4 §2.6.1, §2.6.2).

    Elements repeat exactly where the model's element is a list; values become JSON numbers and
    booleans by their FHIR type; the narrative div becomes the string of the div element with
    the XHTML default namespace.
    """
    _check_size(raw, max_bytes)
    root = _parse_document(raw)
    namespace, name = _split(root.tag)
    if namespace != FHIR_NAMESPACE:
        raise MalformedContent(
            [_fatal("structure", f"The root element must be in the {FHIR_NAMESPACE} namespace")]
        )
    _check_resource_type(name)
    reader = _XmlReader(max_depth)
    resource = reader.resource(root, name, 0)
    if reader.issues:
        raise InvalidResource(reader.issues)
    return resource


class _DenyAll(etree.Resolver):
    """Refuses every external entity, DTD and XInclude the parser asks for."""

    def resolve(self, system_url: str, public_id: str, context: object = None) -> NoReturn:
        raise MalformedContent([_fatal("security", "External XML resources are not loaded")])


def _xml_parser() -> etree.XMLParser:
    """A fresh hardened parser: no DTDs, no entity expansion, no network, no huge trees."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    parser.resolvers.add(_DenyAll())
    return parser


def _parse_document(raw: bytes) -> etree._Element:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise MalformedContent([_fatal("security", "XML with a DOCTYPE or ENTITY is refused")])
    try:
        root = etree.fromstring(raw, _xml_parser())
    except etree.XMLSyntaxError as error:
        raise MalformedContent([_fatal("invalid", f"Invalid XML: {_xml_message(error)}")]) from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise MalformedContent([_fatal("security", "XML with a DOCTYPE is refused")])
    return root


def _xml_message(error: etree.XMLSyntaxError) -> str:
    return " ".join(error.msg.split())[:_MESSAGE_LIMIT]


def _parse_xhtml(div: str) -> etree._Element:
    """A narrative div, parsed as hardened as a whole document; its errors name the reason."""
    return _parse_document(div.encode())


@lru_cache(maxsize=1024)
def _split(tag: Any) -> tuple[str, str]:
    """("namespace", "local name") of an element tag; ("", "") for comments and the like."""
    if not isinstance(tag, str):
        return "", ""
    namespace, _, local_name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local_name


class _XmlReader:
    """FHIR XML elements to FHIR JSON values, collecting every structural issue it meets."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.issues: list[Issue] = []

    def fail(self, code: str, diagnostics: str, path: str) -> None:
        self.issues.append(Issue("error", code, diagnostics, (path,)))

    def resource(self, element: etree._Element, path: str, depth: int) -> dict[str, Any]:
        namespace, name = _split(element.tag)
        if namespace != FHIR_NAMESPACE or name not in RESOURCE_TYPES:
            self.fail("structure", f"{quote(name)} is not an R4 resource type", path)
            return {}
        resource: dict[str, Any] = {"resourceType": name}
        self.read_into(resource, element, _resource_info(name), path, depth)
        return resource

    def read_into(
        self, target: dict[str, Any], element: etree._Element, info: _Type, path: str, depth: int
    ) -> None:
        if depth > self.max_depth:
            raise MalformedContent(
                [_fatal("too-long", f"The XML is nested more than {self.max_depth} deep")]
            )
        self.attributes(target, element, info, path)
        self.no_text(element.text, path)
        repeats: dict[str, int] = {}
        for child in element:
            self.no_text(child.tail, path)
            namespace, name = _split(child.tag)
            child_element = info.elements.get(name)
            if (
                child_element is None
                or child_element.is_attribute
                or namespace
                != (XHTML_NAMESPACE if child_element.kind == "xhtml" else FHIR_NAMESPACE)
            ):
                self.fail("structure", f"Undefined element {quote(name)}", path)
            elif not child_element.is_list and (name in target or "_" + name in target):
                repeats[name] = repeats.get(name, 1) + 1
            else:
                self.child(target, child, child_element, f"{path}.{name}", depth + 1)
        for name, count in repeats.items():
            self.fail("structure", f"{info.path}.{name}: max allowed = 1, but found {count}", path)
        _drop_null_values(target, info)

    def attributes(
        self, target: dict[str, Any], element: etree._Element, info: _Type, path: str
    ) -> None:
        for name, value in element.attrib.items():
            attribute = info.elements.get(str(name))
            if attribute is not None and attribute.is_attribute:
                target[attribute.name] = value
            elif name != _XSI_SCHEMA_LOCATION:
                self.fail("structure", f"Undefined attribute {quote(str(name))}", path)

    def no_text(self, text: str | None, path: str) -> None:
        if text is not None and text.strip():
            self.fail("structure", "Text is not allowed between FHIR elements", path)

    def child(
        self,
        target: dict[str, Any],
        child: etree._Element,
        element: _Element,
        path: str,
        depth: int,
    ) -> None:
        if element.is_list:
            path = f"{path}[{len(target.get(element.name) or target.get('_' + element.name, []))}]"
        if element.kind == "primitive":
            value, extension = self.primitive(child, element, path, depth)
            _store_primitive(target, element, value, extension)
        elif element.is_list:
            target.setdefault(element.name, []).append(self.content(child, element, path, depth))
        else:
            target[element.name] = self.content(child, element, path, depth)

    def content(self, child: etree._Element, element: _Element, path: str, depth: int) -> Any:
        if element.kind == "xhtml":
            return _xhtml_string(child)
        if element.kind == "resource":
            return self.contained(child, path, depth)
        assert element.model is not None
        content: dict[str, Any] = {}
        self.read_into(content, child, _type_info(element.model), path, depth)
        return content

    def primitive(
        self, child: etree._Element, element: _Element, path: str, depth: int
    ) -> tuple[Any, dict[str, Any] | None]:
        """The value attribute, converted, and the {"id", "extension"} object of R4 §2.6.2.7."""
        extension: dict[str, Any] = {}
        for name, attribute in child.attrib.items():
            if name == "id":
                extension["id"] = attribute
            elif name not in ("value", _XSI_SCHEMA_LOCATION):
                self.fail("structure", f"Undefined attribute {quote(str(name))}", path)
        self.no_text(child.text, path)
        for grandchild in child:
            self.no_text(grandchild.tail, path)
            if grandchild.tag != _EXTENSION_TAG:
                self.fail(
                    "structure", f"Undefined element {quote(_split(grandchild.tag)[1])}", path
                )
                continue
            extensions: list[Any] = extension.setdefault("extension", [])
            item: dict[str, Any] = {}
            item_path = f"{path}.extension[{len(extensions)}]"
            self.read_into(item, grandchild, _EXTENSION, item_path, depth + 1)
            extensions.append(item)
        text = child.get("value")
        if text is None and "extension" not in extension:
            self.fail("invariant", "ele-1: All FHIR elements must have a @value or children", path)
        value = None if text is None else self.convert(text, element.fhir_type, path)
        return value, extension or None

    def convert(self, text: str, primitive: str, path: str) -> Any:
        if primitive == "boolean":
            if text not in ("true", "false"):
                self.fail("value", f"A boolean must be true or false, not {quote(text)}", path)
            return text == "true"
        if primitive in _INTEGER_TYPES:
            if not _XML_INTEGER.fullmatch(text):
                self.fail("value", f"Not a valid {primitive}: {quote(text)}", path)
                return text
            return int(text)
        if primitive == "decimal":
            if not _XML_DECIMAL.fullmatch(text):
                self.fail("value", f"Not a valid decimal: {quote(text)}", path)
                return text
            return int(text) if _XML_INTEGER.fullmatch(text) else Decimal(text)
        return text

    def contained(self, child: etree._Element, path: str, depth: int) -> dict[str, Any]:
        if child.attrib:
            self.fail("structure", "A resource element has no attributes", path)
        self.no_text(child.text, path)
        resources = list(child)
        if len(resources) != 1:
            self.fail("structure", "A resource element must hold exactly one resource", path)
            return {}
        self.no_text(resources[0].tail, path)
        return self.resource(resources[0], path, depth + 1)


def _store_primitive(
    target: dict[str, Any], element: _Element, value: Any, extension: dict[str, Any] | None
) -> None:
    """Put a primitive and its extension into the JSON object, as R4 §2.6.2.7 lays them out.

    A repeating primitive keeps its values and extensions in two arrays of equal length, with
    nulls where one side is missing.
    """
    name, extension_name = element.name, "_" + element.name
    if not element.is_list:
        if value is not None:
            target[name] = value
        if extension is not None:
            target[extension_name] = extension
        return
    values: list[Any] = target.setdefault(name, [])
    values.append(value)
    if extension is not None:
        extensions: list[Any] = target.setdefault(extension_name, [])
        extensions.extend([None] * (len(values) - 1 - len(extensions)))
        extensions.append(extension)
    elif extension_name in target:
        target[extension_name].append(None)


def _drop_null_values(target: dict[str, Any], info: _Type) -> None:
    """A repeating primitive that only has extensions keeps its _ array and no value array."""
    for name in [key for key, value in target.items() if type(value) is list]:
        element = info.elements.get(name)
        values = target[name]
        if (
            element is not None
            and element.kind == "primitive"
            and values.count(None) == len(values)
        ):
            del target[name]


def _xhtml_string(div: etree._Element) -> str:
    """The div as a string with the XHTML default namespace and nothing inherited from FHIR."""
    if div.prefix is None and div.nsmap == {None: XHTML_NAMESPACE}:
        return etree.tostring(div, encoding="unicode", with_tail=False)
    return etree.tostring(_xhtml_copy(div, None), encoding="unicode")


def _xhtml_copy(source: etree._Element, parent: etree._Element | None) -> etree._Element:
    if parent is None:
        # lxml-stubs leave out the None key that names a default namespace
        copy = etree.Element(source.tag, nsmap={None: XHTML_NAMESPACE})  # type: ignore[dict-item]
    else:
        copy = etree.SubElement(parent, source.tag)
        copy.tail = source.tail
    copy.attrib.update(source.attrib)
    copy.text = source.text
    for child in source:
        _xhtml_copy(child, copy)
    return copy
