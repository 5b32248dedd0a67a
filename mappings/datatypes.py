"""FHIR R4 data types to and from domain values, and the Reader that reports what is left over.

Every `from_fhir` reads its resource through a `Reader`: each element it takes is marked, and
when it finishes, every element nobody took (an unknown extension, a `display`, a meta tag, an
extension on a primitive) becomes an `Unmapped` entry with its FHIRPath, so nothing is dropped
silently. A `modifierExtension` is refused outright: it changes the meaning of its element
(R4 §2.4.1.1), so reading past it would misread the resource.

Writers take domain values and return FHIR JSON dicts; readers take a Reader and return domain
values, raising MappingError where the resource cannot become one.
"""

import re
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

from mappings.errors import Mapped, MappingError, Unmapped
from mappings.model import (
    Address,
    AddressUse,
    Code,
    Concept,
    Contact,
    ContactSystem,
    ContactUse,
    Id,
    Identifier,
    Name,
    Party,
    PartyKind,
    Period,
    Quantity,
    Ref,
    TypedRef,
    When,
)
from mappings.terminology import CodeSystem

Json = dict[str, Any]
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)

_RELATIVE: Final = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_TYPE_IN_URL: Final = re.compile(r".*/([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(/_history/\S+)?")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PARTIAL_DATE: Final = re.compile(r"[0-9]{4}(-[0-9]{2})?")
_DATE_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+\-][0-9]{2}:[0-9]{2})"
)
_NO_PLACE: Final = "has no place in the domain"


class Reader:
    """One JSON object of a resource being read: what was taken, and where it is (FHIRPath)."""

    def __init__(self, value: Mapping[str, Any], path: str, report: list[Unmapped]) -> None:
        if "modifierExtension" in value:
            raise MappingError(
                f"{path}.modifierExtension",
                "a modifier extension changes the meaning of its element and is not understood",
                code="not-supported",
            )
        self._value = value
        self.path = path
        self._report = report
        self._taken: set[str] = set()
        self._extensions_taken: set[int] = set()
        self._children: list[Reader] = []
        self._reported = False

    @classmethod
    def resource(cls, resource: Mapping[str, Any], resource_type: str) -> "Reader":
        """A reader for a whole resource, which must be of `resource_type`."""
        if resource.get("resourceType") != resource_type:
            raise MappingError("resourceType", f"expected a {resource_type}", code="structure")
        reader = cls(resource, resource_type, [])
        reader._taken.add("resourceType")
        return reader

    def mapped(self, value: _T) -> Mapped[_T]:
        """The value with everything of the resource that was not taken."""
        self.finish()
        return Mapped(value, tuple(self._report))

    def at(self, key: str) -> str:
        """The FHIRPath of one of this object's elements."""
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return key in self._value

    def peek(self, key: str) -> Any:
        """The JSON value of an element, without taking it."""
        return self._value.get(key)

    def raw(self, key: str) -> Any:
        """The JSON value of an element (None when absent), which now counts as taken."""
        self._taken.add(key)
        return self._value.get(key)

    def string(self, key: str) -> str | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, str):
            raise MappingError(self.at(key), "must be a string", code="structure")
        return value

    def need_string(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise MappingError(self.at(key), "is required here", code="required")
        return value

    def strings(self, key: str) -> list[str]:
        values = self.raw(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise MappingError(self.at(key), "must be a list of strings", code="structure")
        return values

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise MappingError(self.at(key), "must be true or false", code="structure")
        return value

    def child(self, key: str) -> "Reader | None":
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise MappingError(self.at(key), "must be an object", code="structure")
        return self._adopt(value, self.at(key))

    def need_child(self, key: str) -> "Reader":
        child = self.child(key)
        if child is None:
            raise MappingError(self.at(key), "is required here", code="required")
        return child

    def children(self, key: str) -> list["Reader"]:
        values = self.raw(key) or []
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise MappingError(self.at(key), "must be a list of objects", code="structure")
        return [self._adopt(value, f"{self.at(key)}[{i}]") for i, value in enumerate(values)]

    def extensions(self, url: str) -> list["Reader"]:
        """The extensions with this URL, taken; their `url` is taken too."""
        found = []
        entries = self._value.get("extension") or []
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("url") == url:
                self._extensions_taken.add(index)
                reader = self._adopt(entry, f"{self.path}.extension[{index}]")
                reader.raw("url")
                found.append(reader)
        return found

    def report(self, reason: str) -> None:
        """Report this whole object as unmapped, with why."""
        self._report.append(Unmapped(self.path, reason))
        self._reported = True

    def report_key(self, key: str, reason: str) -> None:
        """Report one element as unmapped, with why, if it is there."""
        if self.raw(key) is not None:
            self._report.append(Unmapped(self.at(key), reason))

    def note(self, path: str, reason: str) -> None:
        """Report something inside this object (a part of a value) as unmapped."""
        self._report.append(Unmapped(path, reason))

    def expect(self, key: str, value: str) -> None:
        """An element the mapping always writes as `value`; any other value is reported."""
        found = self.raw(key)
        if found is not None and found != value:
            self._report.append(Unmapped(self.at(key), f"{found!r} is written as {value!r}"))

    def finish(self) -> None:
        """Report every element not taken, here and in every child."""
        if self._reported:
            return
        self._reported = True
        for key in self._value:
            if key == "extension":
                self._finish_extensions()
            elif key not in self._taken:
                self._report.append(_leftover(self.path, key))
        for child in self._children:
            child.finish()

    def _finish_extensions(self) -> None:
        for index, entry in enumerate(self._value.get("extension") or []):
            if index not in self._extensions_taken:
                url = entry.get("url") if isinstance(entry, dict) else None
                self._report.append(
                    Unmapped(f"{self.path}.extension[{index}]", f"extension {url} {_NO_PLACE}")
                )

    def _adopt(self, value: Mapping[str, Any], path: str) -> "Reader":
        reader = Reader(value, path, self._report)
        self._children.append(reader)
        return reader


def _leftover(path: str, key: str) -> Unmapped:
    if key.startswith("_"):
        return Unmapped(
            f"{path}.{key[1:]}", "the extensions on this value have no place in the domain"
        )
    return Unmapped(f"{path}.{key}", f"this element {_NO_PLACE}")


def domain_value(path: str, build: Callable[[], _T]) -> _T:
    """Build a domain value, turning the invariant it breaks into a MappingError at `path`."""
    try:
        return build()
    except ValueError as error:
        raise MappingError(path, str(error), code="invariant") from None


def read_id(reader: Reader) -> Id:
    text = reader.need_string("id")
    return domain_value(reader.at("id"), lambda: Id(text))


def meta(*profiles: str) -> Json:
    """Resource.meta claiming the profiles the resource is written to."""
    return {"profile": list(profiles)}


def read_meta(reader: Reader, profiles: Collection[str]) -> None:
    """Take the profile claims this mapping writes; report the rest of meta, saying why."""
    found = reader.child("meta")
    if found is None:
        return
    for index, profile in enumerate(found.strings("profile")):
        if profile.partition("|")[0] not in profiles:
            found.note(f"{found.at('profile')}[{index}]", "only the profiles written here are kept")
    found.report_key("security", "security labels are kept by the store and the disclosure gate")
    found.report_key("tag", f"tags {_NO_PLACE}")
    for key in ("versionId", "lastUpdated", "source"):
        found.report_key(key, "the server manages this")


def read_generated_narrative(reader: Reader) -> None:
    """Take a generated narrative, for a mapping that writes it again from the data.

    Any other narrative (written by hand, or with extensions) is reported. Mappings that write
    no narrative leave Resource.text to be reported like any other element.
    """
    text = reader.child("text")
    if text is None:
        return
    status = text.string("status")
    text.raw("div")
    if status != "generated":
        text.report("a narrative written by hand (not generated) has no place in the domain")


def reference(resource_type: str, ref: Ref) -> Json:
    """A Reference: "Type/id" for a resource here, the URL as written for one elsewhere.

    An absolute URL that does not show the resource type also gets Reference.type.
    """
    if ref.is_local:
        return {"reference": f"{resource_type}/{ref}"}
    if _type_in_url(ref) == resource_type:
        return {"reference": str(ref)}
    return {"reference": str(ref), "type": resource_type}


def _type_in_url(url: str) -> str | None:
    match = _TYPE_IN_URL.fullmatch(url)
    return match.group(1) if match else None


def read_reference(reader: Reader, allowed: Collection[str] = ()) -> TypedRef:
    """A Reference as a typed reference; it must name a resource and, given `allowed`, its type."""
    text = reader.string("reference")
    declared = reader.string("type")
    if text is None:
        raise MappingError(
            reader.path, "the domain refers to resources by id or URL; this has neither"
        )
    if text.startswith("#"):
        raise MappingError(reader.at("reference"), "contained resources are not mapped")
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        resource_type, found = relative.group(1), relative.group(2)
        if relative.group(3):
            reader.note(reader.at("reference"), "the domain refers to the current version")
    else:
        resource_type, found = declared or _type_in_url(text), text
    if resource_type is None:
        raise MappingError(
            reader.at("reference"), "the type of the resource referred to is unknown"
        )
    if declared is not None and declared != resource_type:
        raise MappingError(reader.at("type"), f"does not match the reference ({resource_type})")
    if allowed and resource_type not in allowed:
        raise MappingError(
            reader.at("reference"),
            f"must refer to a {' or '.join(sorted(allowed))}, not a {resource_type}",
        )
    ref = domain_value(reader.at("reference"), lambda: Ref(found))
    return domain_value(reader.path, lambda: TypedRef(resource_type, ref))


def read_ref(reader: Reader, resource_type: str) -> Ref:
    """A Reference to one resource type, as the id or URL the domain keeps."""
    return read_reference(reader, (resource_type,)).ref


def need_ref(reader: Reader, key: str, resource_type: str) -> Ref:
    return read_ref(reader.need_child(key), resource_type)


def optional_ref(reader: Reader, key: str, resource_type: str) -> Ref | None:
    found = reader.child(key)
    return None if found is None else read_ref(found, resource_type)


def refs(reader: Reader, key: str, resource_type: str) -> tuple[Ref, ...]:
    """A repeating Reference: the references to `resource_type` are kept, the others reported."""
    return tuple(typed.ref for typed in listed_refs(reader, key, (resource_type,)))


def listed_refs(reader: Reader, key: str, allowed: Collection[str]) -> list[TypedRef]:
    """A repeating Reference: those to an allowed type are kept; the others are reported.

    In a list, a reference the domain cannot hold (by identifier or display only, to a
    contained resource, or to another type) is reported rather than refused.
    """
    found = []
    for item in reader.children(key):
        typed = usable_reference(item)
        if typed is not None and typed.resource_type in allowed:
            found.append(typed)
        elif typed is not None:
            item.report(f"only references to {' or '.join(sorted(allowed))} are kept here")
    return found


def usable_reference(reader: Reader) -> TypedRef | None:
    """A reference the domain can hold, or None after reporting one by identifier or display."""
    text = reader.peek("reference")
    if not isinstance(text, str) or text.startswith("#"):
        reader.report("a reference without an id or URL has no place in the domain")
        return None
    return read_reference(reader)


def typed_reference(typed: TypedRef) -> Json:
    return reference(typed.resource_type, typed.ref)


def party(value: Party) -> Json:
    return reference(value.kind.value, value.ref)


def read_party(reader: Reader, kinds: Collection[PartyKind]) -> Party:
    found = read_reference(reader, {kind.value for kind in kinds})
    return Party(PartyKind(found.resource_type), found.ref)


def coding(code: Code) -> Json:
    found: Json = {"system": code.system, "code": code.code}
    if code.display is not None:
        found["display"] = code.display
    return found


def coded(system: CodeSystem, code: str) -> Json:
    """A Coding of a known code system, with the display it gives the code."""
    return {"system": system.url, "code": code, "display": system.display(code)}


def concept(value: Concept) -> Json:
    found: Json = {}
    if value.codes:
        found["coding"] = [coding(code) for code in value.codes]
    if value.text is not None:
        found["text"] = value.text
    return found


def read_coding(reader: Reader) -> Code:
    system = reader.string("system")
    code = reader.string("code")
    display = reader.string("display")
    if system is None or code is None:
        raise MappingError(reader.path, "a coding needs a system and a code")
    return domain_value(reader.path, lambda: Code(system, code, display))


def read_concept(reader: Reader) -> Concept:
    codes = tuple(read_coding(item) for item in reader.children("coding"))
    text = reader.string("text")
    return domain_value(reader.path, lambda: Concept(codes, text))


def codes_of(reader: Reader) -> Iterator[tuple[Reader, Code]]:
    """The codings of a CodeableConcept with their readers, for mappings that pick among them."""
    for item in reader.children("coding"):
        yield item, read_coding(item)


def enum_code(reader: Reader, code: Code, system: str, kind: type[_E]) -> _E | None:
    """The domain value of a code of `system`; None for another system; refused if unknown."""
    if code.system != system:
        return None
    try:
        return kind(code.code)
    except ValueError:
        raise MappingError(
            reader.at("code"), f"{code.code!r} is not a code of {system}", code="code-invalid"
        ) from None


def only_code(reader: Reader, system: str, kind: type[_E]) -> _E | None:
    """The one code of `system` in a CodeableConcept; its other codings and text are reported."""
    found: _E | None = None
    for item, code in codes_of(reader):
        value = enum_code(item, code, system, kind)
        if value is None or found is not None:
            item.report(f"only one code of {system} {_NO_PLACE}")
        else:
            found = value
    return found


def enum_value(reader: Reader, key: str, kind: type[_E]) -> _E | None:
    """A `code` element as a domain enumeration (its required binding, checked)."""
    text = reader.string(key)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise MappingError(
            reader.at(key), f"{text!r} is not allowed here", code="code-invalid"
        ) from None


def need_enum(reader: Reader, key: str, kind: type[_E]) -> _E:
    found = enum_value(reader, key, kind)
    if found is None:
        raise MappingError(reader.at(key), "is required here", code="required")
    return found


def check_system(path: str, code: Code, systems: Collection[str], binding: str) -> None:
    """Refuse a code outside the code systems a binding draws on."""
    if code.system not in systems:
        raise MappingError(
            path, f"{code.system} is not a code system of {binding}", code="code-invalid"
        )


def when(value: When) -> str:
    """A date or an instant in FHIR form (an instant always carries its offset)."""
    return value.isoformat()


def read_when(reader: Reader, key: str) -> When | None:
    """A FHIR dateTime; a year or a month alone is reported (the domain keeps whole days)."""
    text = reader.string(key)
    if text is None:
        return None
    if _DATE.fullmatch(text):
        return date.fromisoformat(text)
    if _DATE_TIME.fullmatch(text):
        return datetime.fromisoformat(text)
    if _PARTIAL_DATE.fullmatch(text):
        reader.note(reader.at(key), "a partial date (year or month) has no place in the domain")
        return None
    raise MappingError(reader.at(key), f"not a FHIR dateTime: {text[:40]!r}", code="value")


def need_when(reader: Reader, key: str) -> When:
    found = read_when(reader, key)
    if found is None:
        raise MappingError(reader.at(key), "a whole date or an instant is required here")
    return found


def read_date(reader: Reader, key: str) -> date | None:
    """A FHIR date; a year or a month alone is reported."""
    found = read_when(reader, key)
    if isinstance(found, datetime):
        raise MappingError(reader.at(key), "must be a date", code="value")
    return found


def period(value: Period) -> Json:
    found: Json = {}
    if value.start is not None:
        found["start"] = when(value.start)
    if value.end is not None:
        found["end"] = when(value.end)
    return found


def read_period(reader: Reader | None) -> Period | None:
    if reader is None:
        return None
    start, end = read_when(reader, "start"), read_when(reader, "end")
    if start is None and end is None:
        return None
    return domain_value(reader.path, lambda: Period(start, end))


def identifier(value: Identifier) -> Json:
    found: Json = {}
    if value.system is not None:
        found["system"] = value.system
    found["value"] = value.value
    return found


def read_identifier(reader: Reader) -> Identifier:
    system, value = reader.string("system"), reader.string("value")
    if value is None:
        raise MappingError(reader.at("value"), "an identifier needs a value", code="required")
    return domain_value(reader.path, lambda: Identifier(system, value))


def name(value: Name) -> Json:
    found: Json = {}
    if value.family is not None:
        found["family"] = value.family
    if value.given:
        found["given"] = list(value.given)
    return found


def read_name(reader: Reader) -> Name:
    family, given = reader.string("family"), tuple(reader.strings("given"))
    return domain_value(reader.path, lambda: Name(family, given))


def contact(value: Contact) -> Json:
    found: Json = {"system": value.system.value, "value": value.value}
    if value.use is not None:
        found["use"] = value.use.value
    return found


def read_contact(reader: Reader) -> Contact:
    system = need_enum(reader, "system", ContactSystem)
    use = enum_value(reader, "use", ContactUse)
    text = reader.need_string("value")
    return domain_value(reader.path, lambda: Contact(system, text, use))


def address(value: Address) -> Json:
    found: Json = {}
    if value.use is not None:
        found["use"] = value.use.value
    if value.lines:
        found["line"] = list(value.lines)
    for key, part in (
        ("city", value.city),
        ("state", value.state),
        ("postalCode", value.postal_code),
        ("country", value.country),
    ):
        if part is not None:
            found[key] = part
    return found


def read_address(reader: Reader) -> Address:
    use = enum_value(reader, "use", AddressUse)
    lines = tuple(reader.strings("line"))
    city, state = reader.string("city"), reader.string("state")
    postal_code, country = reader.string("postalCode"), reader.string("country")
    return domain_value(reader.path, lambda: Address(lines, city, state, postal_code, country, use))


def quantity(value: Quantity) -> Json:
    found: Json = {"value": value.value}
    for key, part in (("unit", value.unit), ("system", value.system), ("code", value.code)):
        if part is not None:
            found[key] = part
    return found


def read_quantity(reader: Reader) -> Quantity:
    number = reader.raw("value")
    if isinstance(number, bool) or not isinstance(number, int | float | Decimal):
        raise MappingError(reader.at("value"), "a quantity needs a number", code="required")
    unit, system, code = reader.string("unit"), reader.string("system"), reader.string("code")
    amount = Decimal(str(number)) if isinstance(number, float) else Decimal(number)
    return domain_value(reader.path, lambda: Quantity(amount, unit, system, code))


def listed(reader: Reader, key: str, read: Callable[[Reader], _T]) -> tuple[_T, ...]:
    """A repeating element whose entries the domain cannot all hold: those it cannot are reported.

    For identifiers, names, contacts and addresses, where one unusable entry (a telecom with no
    value, a name with only text) should not cost the rest of the resource.
    """
    found = []
    for item in reader.children(key):
        try:
            found.append(read(item))
        except MappingError as error:
            where = error.path.removeprefix(item.path).removeprefix(".")
            item.report(f"{where} {error.reason}" if where else error.reason)
    return tuple(found)


def each(values: Collection[_T], write: Callable[[_T], Json]) -> list[Json]:
    return [write(value) for value in values]


def put(target: Json, key: str, value: Any) -> None:
    """Set an element unless it is empty (FHIR has no nulls and no empty arrays or objects)."""
    if value is not None and value != [] and value != {}:
        target[key] = value
