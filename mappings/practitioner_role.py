"""CaseManager <-> FHIR R4 PractitionerRole (US Core 7.0.0 and SDOHCC PractitionerRole).

| CaseManager      | PractitionerRole                                                     |
|------------------|----------------------------------------------------------------------|
| id               | id                                                                   |
| practitioner_id  | practitioner (SDOHCC 1..1)                                           |
| program_id       | organization (SDOHCC 1..1)                                           |
| active           | active                                                               |
| (the role)       | specialty: NUCC 171M00000X Case Manager/Care Coordinator, the NUCC   |
|                  | taxonomy US Core binds PractitionerRole.specialty to                 |
| telecom          | telecom                                                              |

SDOHCC PractitionerRole is the profile SDOHCC Task and ServiceRequest requesters point at.
Other specialties, codes, locations and services are reported as unmapped.
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped
from mappings.model import CaseManager
from mappings.terminology import CASE_MANAGER_SPECIALTY

US_CORE_PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole"
SDOHCC_PROFILE: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-practitionerrole"
)
PROFILES: Final = (SDOHCC_PROFILE, US_CORE_PROFILE)


def to_fhir(case_manager: CaseManager) -> dict[str, Any]:
    """The case manager as a US Core and SDOHCC PractitionerRole."""
    role: dt.Json = {
        "resourceType": "PractitionerRole",
        "id": case_manager.id,
        "meta": dt.meta(*PROFILES),
        "active": case_manager.active,
        "practitioner": dt.reference("Practitioner", case_manager.practitioner_id),
        "organization": dt.reference("Organization", case_manager.program_id),
        "specialty": [{"coding": [dt.coding(CASE_MANAGER_SPECIALTY)]}],
    }
    dt.put(role, "telecom", dt.each(case_manager.telecom, dt.contact))
    return role


def from_fhir(resource: dict[str, Any]) -> Mapped[CaseManager]:
    """A PractitionerRole as a case manager; other roles and specialties are reported."""
    reader = dt.Reader.resource(resource, "PractitionerRole")
    dt.read_meta(reader, PROFILES)
    for entry in reader.children("specialty"):
        for item, code in dt.codes_of(entry):
            if (code.system, code.code) != (
                CASE_MANAGER_SPECIALTY.system,
                CASE_MANAGER_SPECIALTY.code,
            ):
                item.report("only the case manager specialty is kept")
    case_manager = CaseManager(
        id=dt.read_id(reader),
        practitioner_id=dt.need_ref(reader, "practitioner", "Practitioner"),
        program_id=dt.need_ref(reader, "organization", "Organization"),
        active=reader.boolean("active") is not False,
        telecom=dt.listed(reader, "telecom", dt.read_contact),
    )
    return reader.mapped(case_manager)
