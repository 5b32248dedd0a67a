"""Client <-> FHIR R4 Patient, to the US Core Patient profile (US Core 7.0.0).

| Client        | Patient                                        | US Core              |
|---------------|------------------------------------------------|----------------------|
| id            | id                                             |                      |
| identifiers   | identifier (system, value)                     | 1..*, must support   |
| names         | name (family, given)                           | 1..*, must support   |
| gender        | gender                                         | 1..1                 |
| birth_date    | birthDate                                      | must support         |
| telecom       | telecom (system, value, use)                   | must support         |
| addresses     | address (use, line, city, state, postalCode)   | must support         |
| language      | communication[0].language (BCP 47, preferred)  | must support         |

The race, ethnicity and sex extensions, contacts, links and the rest are reported as unmapped.
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.model import Client, Gender
from mappings.terminology import BCP47

PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"


def to_fhir(client: Client) -> dict[str, Any]:
    """The client as a US Core Patient."""
    patient: dt.Json = {
        "resourceType": "Patient",
        "id": client.id,
        "meta": dt.meta(PROFILE),
        "identifier": dt.each(client.identifiers, dt.identifier),
        "name": dt.each(client.names, dt.name),
        "gender": client.gender.value,
    }
    dt.put(patient, "telecom", dt.each(client.telecom, dt.contact))
    if client.birth_date is not None:
        patient["birthDate"] = client.birth_date.isoformat()
    dt.put(patient, "address", dt.each(client.addresses, dt.address))
    if client.language is not None:
        language = {"coding": [{"system": BCP47, "code": client.language}]}
        patient["communication"] = [{"language": language, "preferred": True}]
    return patient


def from_fhir(resource: dict[str, Any]) -> Mapped[Client]:
    """A Patient as a client; what the client has no place for is reported."""
    reader = dt.Reader.resource(resource, "Patient")
    dt.read_meta(reader, (PROFILE,))
    identifiers = dt.listed(reader, "identifier", dt.read_identifier)
    names = dt.listed(reader, "name", dt.read_name)
    for key, found in (("identifier", identifiers), ("name", names)):
        if not found:
            raise MappingError(reader.at(key), "US Core Patient requires one", code="required")
    gender = dt.need_enum(reader, "gender", Gender)
    client = dt.domain_value(
        "Patient",
        lambda: Client(
            id=dt.read_id(reader),
            identifiers=identifiers,
            names=names,
            gender=gender,
            birth_date=dt.read_date(reader, "birthDate"),
            telecom=dt.listed(reader, "telecom", dt.read_contact),
            addresses=dt.listed(reader, "address", dt.read_address),
            language=_language(reader),
        ),
    )
    return reader.mapped(client)


def _language(reader: dt.Reader) -> str | None:
    """The preferred language, or the only one; other communication entries are reported."""
    entries = reader.children("communication")
    preferred = [entry for entry in entries if entry.boolean("preferred")]
    chosen = preferred[0] if preferred else entries[0] if len(entries) == 1 else None
    for entry in entries:
        if entry is not chosen:
            entry.report("only the preferred language is kept")
    if chosen is None:
        return None
    language = chosen.need_child("language")
    tags = [code.code for item, code in dt.codes_of(language) if _is_tag(item, code.system)]
    for extra in tags[1:]:
        language.note(language.at("coding"), f"only the first language tag is kept, not {extra}")
    return tags[0] if tags else None


def _is_tag(item: dt.Reader, system: str) -> bool:
    if system != BCP47:
        item.report("only BCP 47 language tags are kept")
    return system == BCP47
