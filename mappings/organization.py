"""Program <-> FHIR R4 Organization, to the US Core Organization profile (US Core 7.0.0).

| Program         | Organization                                                        |
|-----------------|---------------------------------------------------------------------|
| id              | id                                                                  |
| name            | name (US Core 1..1)                                                 |
| active          | active (US Core 1..1)                                               |
| kind            | type: local program-kind code, with HL7 organization-type "prov"    |
|                 | beside it for the clinical kinds                                    |
| part2_program   | extension PART2_PROGRAM_EXTENSION (valueBoolean), always written:   |
|                 | the disclosure gate treats a Part 2 program's records as Part 2     |
|                 | data (PART2.md P1), so absence must never be read as a guess        |
| covered_entity  | extension COVERED_ENTITY_EXTENSION (valueBoolean), when known       |
| identifiers     | identifier (NPI and others)                                         |
| telecom         | telecom                                                             |
| addresses       | address                                                             |

An Organization without the Part 2 extension reads as not a Part 2 program; partner
registrations (interop.services.partners) always write it.
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.model import Program, ProgramKind
from mappings.terminology import (
    COVERED_ENTITY_EXTENSION,
    HEALTHCARE_PROVIDER,
    ORGANIZATION_TYPE,
    PART2_PROGRAM_EXTENSION,
    PROGRAM_KIND,
    PROGRAM_KIND_PROVIDER,
)

PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization"


def to_fhir(program: Program) -> dict[str, Any]:
    """The program as a US Core Organization."""
    extensions = [{"url": PART2_PROGRAM_EXTENSION, "valueBoolean": program.part2_program}]
    if program.covered_entity is not None:
        extensions.append({"url": COVERED_ENTITY_EXTENSION, "valueBoolean": program.covered_entity})
    organization: dt.Json = {
        "resourceType": "Organization",
        "id": program.id,
        "meta": dt.meta(PROFILE),
        "extension": extensions,
    }
    dt.put(organization, "identifier", dt.each(program.identifiers, dt.identifier))
    organization["active"] = program.active
    if program.kind is not None:
        organization["type"] = [{"coding": _kind_codings(program.kind)}]
    organization["name"] = program.name
    dt.put(organization, "telecom", dt.each(program.telecom, dt.contact))
    dt.put(organization, "address", dt.each(program.addresses, dt.address))
    return organization


def _kind_codings(kind: ProgramKind) -> list[dt.Json]:
    codings = [dt.coded(PROGRAM_KIND, kind.value)]
    if kind.value in PROGRAM_KIND_PROVIDER:
        codings.append(
            {
                "system": ORGANIZATION_TYPE,
                "code": HEALTHCARE_PROVIDER,
                "display": "Healthcare Provider",
            }
        )
    return codings


def from_fhir(resource: dict[str, Any]) -> Mapped[Program]:
    """An Organization as a program; what the program has no place for is reported."""
    reader = dt.Reader.resource(resource, "Organization")
    dt.read_meta(reader, (PROFILE,))
    name = reader.string("name")
    if name is None:
        raise MappingError(reader.at("name"), "a program needs a name", code="required")
    program = dt.domain_value(
        "Organization",
        lambda: Program(
            id=dt.read_id(reader),
            name=name,
            part2_program=_flag(reader, PART2_PROGRAM_EXTENSION) or False,
            kind=_kind(reader),
            covered_entity=_flag(reader, COVERED_ENTITY_EXTENSION),
            active=reader.boolean("active") is not False,
            identifiers=dt.listed(reader, "identifier", dt.read_identifier),
            telecom=dt.listed(reader, "telecom", dt.read_contact),
            addresses=dt.listed(reader, "address", dt.read_address),
        ),
    )
    return reader.mapped(program)


def _flag(reader: dt.Reader, url: str) -> bool | None:
    """A boolean project extension; it may appear once."""
    found = reader.extensions(url)
    if not found:
        return None
    if len(found) > 1:
        raise MappingError(found[1].path, "this extension may appear only once")
    value = found[0].boolean("valueBoolean")
    if value is None:
        raise MappingError(found[0].at("valueBoolean"), "is required", code="required")
    return value


def _kind(reader: dt.Reader) -> ProgramKind | None:
    """The program kind from Organization.type; organization-type "prov" beside it is implied."""
    kind: ProgramKind | None = None
    for entry in reader.children("type"):
        provider = None
        for item, code in dt.codes_of(entry):
            found = dt.enum_code(item, code, PROGRAM_KIND.url, ProgramKind)
            if found is not None and kind is None:
                kind = found
            elif (code.system, code.code) == (ORGANIZATION_TYPE, HEALTHCARE_PROVIDER):
                provider = item
            else:
                item.report("only the program kind and its organization type are kept")
        if provider is not None and (kind is None or kind.value not in PROGRAM_KIND_PROVIDER):
            provider.report("organization type prov is kept only beside a clinical program kind")
    return kind
