"""Program <-> US Core Organization, with the Part 2 program flag."""

from typing import Any

import pytest

from mappings import fhir, organization
from mappings.errors import MappingError
from mappings.model import Id, Identifier, Program, ProgramKind
from mappings.terminology import (
    COVERED_ENTITY_EXTENSION,
    PART2_PROGRAM_EXTENSION,
    REGISTRATION_TAG_SYSTEM,
)


def a_program(**changes: Any) -> Program:
    values: dict[str, Any] = {
        "id": Id("harbor"),
        "name": "Harbor Detox Unit",
        "part2_program": True,
        "kind": ProgramKind.DETOX,
        "covered_entity": True,
        "identifiers": (Identifier("http://hl7.org/fhir/sid/us-npi", "1234567893"),),
    }
    return Program(**(values | changes))


class TestToFhir:
    def test_writes_us_core_organization_with_the_part2_flag(self) -> None:
        resource = organization.to_fhir(a_program())

        fhir.validate(resource)
        assert resource["meta"] == {"profile": [organization.PROFILE]}
        assert resource["extension"] == [
            {"url": PART2_PROGRAM_EXTENSION, "valueBoolean": True},
            {"url": COVERED_ENTITY_EXTENSION, "valueBoolean": True},
        ]
        assert (resource["active"], resource["name"]) == (True, "Harbor Detox Unit")
        assert [c["code"] for c in resource["type"][0]["coding"]] == ["detox", "prov"]

    def test_says_so_when_a_program_is_not_under_part2(self) -> None:
        """Absence would leave the gate guessing (PART2.md P1), so false is written too."""
        resource = organization.to_fhir(a_program(part2_program=False, covered_entity=None))

        assert resource["extension"] == [{"url": PART2_PROGRAM_EXTENSION, "valueBoolean": False}]

    def test_community_services_are_not_healthcare_providers(self) -> None:
        resource = organization.to_fhir(a_program(kind=ProgramKind.COMMUNITY_SERVICE))

        assert [c["code"] for c in resource["type"][0]["coding"]] == ["community-service"]


class TestFromFhir:
    def test_reads_a_partner_registration(self) -> None:
        """The Organization interop.services.partners writes for a registered partner."""
        registration = {
            "resourceType": "Organization",
            "id": "p7",
            "meta": {"tag": [{"system": REGISTRATION_TAG_SYSTEM, "code": "partner"}]},
            "extension": [
                {"url": PART2_PROGRAM_EXTENSION, "valueBoolean": True},
                {"url": COVERED_ENTITY_EXTENSION, "valueBoolean": False},
            ],
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.10", "value": "Harbor"}],
            "active": True,
            "name": "Harbor Detox Unit",
        }

        mapped = organization.from_fhir(registration)

        assert mapped.value == Program(
            Id("p7"),
            "Harbor Detox Unit",
            part2_program=True,
            covered_entity=False,
            identifiers=(Identifier("urn:oid:2.16.840.1.113883.3.9999.10", "Harbor"),),
        )
        assert [item.path for item in mapped.unmapped] == ["Organization.meta.tag"]

    def test_without_the_flag_it_is_not_a_part2_program(self) -> None:
        resource = organization.to_fhir(a_program())
        del resource["extension"]

        assert organization.from_fhir(resource).value.part2_program is False

    def test_refuses_an_unknown_program_kind(self) -> None:
        resource = organization.to_fhir(a_program())
        resource["type"][0]["coding"][0]["code"] = "hospital"

        with pytest.raises(MappingError) as raised:
            organization.from_fhir(resource)
        assert raised.value.path == "Organization.type[0].coding[0].code"

    def test_refuses_the_flag_twice(self) -> None:
        resource = organization.to_fhir(a_program())
        resource["extension"].append({"url": PART2_PROGRAM_EXTENSION, "valueBoolean": False})

        with pytest.raises(MappingError, match="only once"):
            organization.from_fhir(resource)
