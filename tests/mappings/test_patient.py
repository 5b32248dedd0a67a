"""Client <-> US Core Patient."""

from datetime import date
from typing import Any

import pytest

from mappings import fhir, patient
from mappings.errors import MappingError, Unmapped
from mappings.model import (
    Address,
    Client,
    Contact,
    ContactSystem,
    ContactUse,
    Gender,
    Id,
    Identifier,
    Name,
)


def a_client(**changes: Any) -> Client:
    values: dict[str, Any] = {
        "id": Id("c1"),
        "identifiers": (Identifier("urn:oid:2.16.840.1.113883.3.9999.2", "MRN-1001"),),
        "names": (Name("Rivera", ("Ana", "Luz")),),
        "gender": Gender.FEMALE,
        "birth_date": date(1988, 4, 12),
        "telecom": (Contact(ContactSystem.PHONE, "555-0100", ContactUse.MOBILE),),
        "addresses": (Address(("12 Elm St",), "Springfield", "MA", "01101"),),
        "language": "es",
    }
    return Client(**(values | changes))


class TestToFhir:
    def test_writes_us_core_patient(self) -> None:
        resource = patient.to_fhir(a_client())

        fhir.validate(resource)
        assert resource == {
            "resourceType": "Patient",
            "id": "c1",
            "meta": {"profile": [patient.PROFILE]},
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "MRN-1001"}],
            "name": [{"family": "Rivera", "given": ["Ana", "Luz"]}],
            "gender": "female",
            "telecom": [{"system": "phone", "value": "555-0100", "use": "mobile"}],
            "birthDate": "1988-04-12",
            "address": [
                {"line": ["12 Elm St"], "city": "Springfield", "state": "MA", "postalCode": "01101"}
            ],
            "communication": [
                {
                    "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]},
                    "preferred": True,
                }
            ],
        }

    def test_leaves_out_what_is_not_known(self) -> None:
        resource = patient.to_fhir(
            a_client(birth_date=None, telecom=(), addresses=(), language=None)
        )

        assert set(resource) == {"resourceType", "id", "meta", "identifier", "name", "gender"}


class TestFromFhir:
    def test_reads_what_it_wrote(self) -> None:
        assert patient.from_fhir(patient.to_fhir(a_client())).value == a_client()

    def test_reports_race_and_the_unusable_telecom(self) -> None:
        resource = patient.to_fhir(a_client())
        race = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
        resource["extension"] = [{"url": race, "extension": [{"url": "text", "valueString": "x"}]}]
        resource["telecom"].insert(0, {"use": "home"})

        mapped = patient.from_fhir(resource)

        assert mapped.value == a_client()
        assert mapped.unmapped == (
            Unmapped("Patient.telecom[0]", "system is required here"),
            Unmapped("Patient.extension[0]", f"extension {race} has no place in the domain"),
        )

    def test_picks_the_preferred_language(self) -> None:
        resource = patient.to_fhir(a_client(language=None))
        resource["communication"] = [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "vi"}]},
                "preferred": True,
            },
        ]

        mapped = patient.from_fhir(resource)

        assert mapped.value.language == "vi"
        assert [item.path for item in mapped.unmapped] == ["Patient.communication[0]"]

    @pytest.mark.parametrize(
        ("element", "path"),
        [
            ("identifier", "Patient.identifier"),
            ("name", "Patient.name"),
            ("gender", "Patient.gender"),
        ],
    )
    def test_refuses_a_patient_us_core_would_refuse(self, element: str, path: str) -> None:
        resource = patient.to_fhir(a_client())
        del resource[element]

        with pytest.raises(MappingError) as raised:
            patient.from_fhir(resource)
        assert raised.value.path == path

    def test_refuses_a_gender_outside_the_required_binding(self) -> None:
        resource = patient.to_fhir(a_client()) | {"gender": "f"}

        with pytest.raises(MappingError) as raised:
            patient.from_fhir(resource)
        assert (raised.value.path, raised.value.to_issue().code) == (
            "Patient.gender",
            "code-invalid",
        )
