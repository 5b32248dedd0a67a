"""CaseManager <-> US Core and SDOHCC PractitionerRole."""

from mappings import fhir, practitioner_role
from mappings.model import CaseManager, Contact, ContactSystem, Id, Ref

A_CASE_MANAGER = CaseManager(
    Id("cm1"),
    Ref("pr1"),
    Ref("https://partner.example.org/fhir/Organization/harbor"),
    telecom=(Contact(ContactSystem.EMAIL, "cm@harbor.example.org"),),
)


def test_writes_the_case_manager_specialty() -> None:
    resource = practitioner_role.to_fhir(A_CASE_MANAGER)

    fhir.validate(resource)
    assert resource["meta"]["profile"] == list(practitioner_role.PROFILES)
    assert resource["practitioner"] == {"reference": "Practitioner/pr1"}
    assert resource["organization"] == {
        "reference": "https://partner.example.org/fhir/Organization/harbor"
    }
    assert resource["specialty"] == [
        {
            "coding": [
                {
                    "system": "http://nucc.org/provider-taxonomy",
                    "code": "171M00000X",
                    "display": "Case Manager/Care Coordinator",
                }
            ]
        }
    ]


def test_reports_other_specialties() -> None:
    resource = practitioner_role.to_fhir(A_CASE_MANAGER)
    resource["specialty"][0]["coding"].append(
        {"system": "http://snomed.info/sct", "code": "408443003"}
    )

    mapped = practitioner_role.from_fhir(resource)

    assert mapped.value == A_CASE_MANAGER
    assert [item.path for item in mapped.unmapped] == ["PractitionerRole.specialty[0].coding[1]"]
