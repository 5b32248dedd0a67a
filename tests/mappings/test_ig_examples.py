"""The official HL7 R4 examples of the types the domain maps: what maps, what is reported.

Each example either maps, with exactly the listed elements reported as unmapped, or is refused
with a MappingError naming the element that does not fit (a Patient without the identifier, name
or gender US Core requires; a ServiceRequest that is not an order, the modifier intent; a Task
nobody owns; a Condition that is an encounter diagnosis rather than a problem or health concern).
For every example that maps: what is written back validates, reads back to the same value with
nothing unmapped, and every top-level element of the example is either written back or reported.
"""

import json
from dataclasses import dataclass
from typing import Any, Final

import pytest

from mappings import (
    careplan,
    condition,
    episode,
    fhir,
    goal,
    organization,
    patient,
    practitioner_role,
    service_request,
    task,
)
from mappings.errors import MappingError
from tests.conftest import corpus

MAPPINGS: Final[dict[str, Any]] = {
    "CarePlan": careplan,
    "Condition": condition,
    "EpisodeOfCare": episode,
    "Goal": goal,
    "Organization": organization,
    "Patient": patient,
    "PractitionerRole": practitioner_role,
    "ServiceRequest": service_request,
    "Task": task,
}
# Types whose examples are read from extras/ (the related types of the corpus).
EXTRAS: Final = ("Condition", "PractitionerRole")


@dataclass(frozen=True)
class Maps:
    unmapped: list[str]


@dataclass(frozen=True)
class Refused:
    path: str


EXPECTED: Final[dict[str, Maps | Refused]] = {
    "CarePlan-example.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0]",
            "CarePlan.author.display",
            "CarePlan.basedOn",
            "CarePlan.careTeam",
            "CarePlan.category[0].text",
            "CarePlan.contained",
            "CarePlan.encounter",
            "CarePlan.identifier",
            "CarePlan.instantiatesUri",
            "CarePlan.partOf",
            "CarePlan.replaces",
            "CarePlan.subject.display",
            "CarePlan.text",
        ]
    ),
    "CarePlan-f001.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.identifier",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-f002.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.identifier",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-f003.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.identifier",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-f201.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.activity[1]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-f202.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-f203.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.addresses[0].display",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-gpvisit.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.activity[1]",
            "CarePlan.addresses[0]",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.subject.display",
            "CarePlan.text",
        ]
    ),
    "CarePlan-integrate.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.activity[10]",
            "CarePlan.activity[11]",
            "CarePlan.activity[1]",
            "CarePlan.activity[2]",
            "CarePlan.activity[3]",
            "CarePlan.activity[4]",
            "CarePlan.activity[5]",
            "CarePlan.activity[6]",
            "CarePlan.activity[7]",
            "CarePlan.activity[8]",
            "CarePlan.activity[9]",
            "CarePlan.addresses[0]",
            "CarePlan.addresses[1]",
            "CarePlan.addresses[2]",
            "CarePlan.contained",
            "CarePlan.goal[0]",
            "CarePlan.goal[1]",
            "CarePlan.goal[2]",
            "CarePlan.goal[3]",
            "CarePlan.goal[4]",
            "CarePlan.note",
            "CarePlan.subject.display",
        ]
    ),
    "CarePlan-obesity-narrative.json": Maps(["CarePlan.subject.display", "CarePlan.text"]),
    "CarePlan-preg.json": Maps(
        [
            "CarePlan.activity[0]",
            "CarePlan.activity[1]",
            "CarePlan.activity[2]",
            "CarePlan.activity[3]",
            "CarePlan.addresses[0]",
            "CarePlan.careTeam",
            "CarePlan.contained",
            "CarePlan.extension[0]",
            "CarePlan.goal[0]",
            "CarePlan.subject.display",
            "CarePlan.text",
        ]
    ),
    "EpisodeOfCare-example.json": Maps(
        [
            "EpisodeOfCare.account",
            "EpisodeOfCare.careManager.display",
            "EpisodeOfCare.diagnosis",
            "EpisodeOfCare.referralRequest[0]",
            "EpisodeOfCare.statusHistory",
            "EpisodeOfCare.team",
            "EpisodeOfCare.text",
            "EpisodeOfCare.type[0].coding[0]",
        ]
    ),
    "Goal-example.json": Maps(
        [
            "Goal.addresses[0]",
            "Goal.category[0].coding[0]",
            "Goal.expressedBy.display",
            "Goal.identifier",
            "Goal.outcomeReference",
            "Goal.priority.text",
            "Goal.statusReason",
            "Goal.subject.display",
            "Goal.target[0].detailRange",
            "Goal.text",
        ]
    ),
    "Goal-stop-smoking.json": Maps(
        [
            "Goal.achievementStatus.text",
            "Goal.identifier",
            "Goal.outcomeCode",
            "Goal.subject.display",
            "Goal.text",
        ]
    ),
    "Organization-1.json": Maps(["Organization.text"]),
    "Organization-1832473e-2fe0-452d-abe9-3cdb9879522f.json": Maps(["Organization.text"]),
    "Organization-2.16.840.1.113883.19.5.json": Maps(["Organization.text"]),
    "Organization-2.json": Maps(["Organization.alias", "Organization.text"]),
    "Organization-3.json": Maps(["Organization.alias", "Organization.text"]),
    "Organization-f001.json": Maps(
        [
            "Organization.contact",
            "Organization.identifier[0].use",
            "Organization.identifier[1].use",
            "Organization.text",
            "Organization.type[0].coding[0]",
            "Organization.type[0].coding[1]",
        ]
    ),
    "Organization-f002.json": Maps(
        [
            "Organization.contact",
            "Organization.partOf",
            "Organization.text",
            "Organization.type[0].coding[0]",
        ]
    ),
    "Organization-f003.json": Maps(
        [
            "Organization.contact",
            "Organization.partOf",
            "Organization.text",
            "Organization.type[0].coding[0]",
        ]
    ),
    "Organization-f201.json": Maps(
        [
            "Organization.contact",
            "Organization.identifier[0].use",
            "Organization.text",
            "Organization.type[0].coding[0]",
            "Organization.type[0].coding[1]",
            "Organization.type[0].coding[2]",
        ]
    ),
    "Organization-f203.json": Maps(
        [
            "Organization.identifier[0].type",
            "Organization.identifier[0].use",
            "Organization.text",
            "Organization.type[0].coding[0]",
            "Organization.type[0].coding[1]",
        ]
    ),
    "Organization-hl7.json": Maps(
        ["Organization.alias", "Organization.endpoint", "Organization.text"]
    ),
    "Organization-hl7pay.json": Maps(["Organization.text"]),
    "Organization-mmanu.json": Maps(["Organization.text"]),
    "Patient-animal.json": Maps(
        [
            "Patient.active",
            "Patient.contact",
            "Patient.extension[0]",
            "Patient.identifier[0].assigner",
            "Patient.identifier[0].period",
            "Patient.identifier[0].type",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-ch-example.json": Refused("Patient.name"),
    "Patient-dicom.json": Maps(
        [
            "Patient.active",
            "Patient.extension[0]",
            "Patient.extension[1]",
            "Patient.extension[2]",
            "Patient.gender",
            "Patient.managingOrganization",
            "Patient.text",
        ]
    ),
    "Patient-example.json": Maps(
        [
            "Patient.active",
            "Patient.address[0].district",
            "Patient.address[0].period",
            "Patient.address[0].text",
            "Patient.address[0].type",
            "Patient.birthDate",
            "Patient.contact",
            "Patient.deceasedBoolean",
            "Patient.identifier[0].assigner",
            "Patient.identifier[0].period",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.name[1].use",
            "Patient.name[2].period",
            "Patient.name[2].use",
            "Patient.telecom[0]",
            "Patient.telecom[1].rank",
            "Patient.telecom[2].rank",
            "Patient.telecom[3].period",
            "Patient.text",
        ]
    ),
    "Patient-f001.json": Maps(
        [
            "Patient.active",
            "Patient.communication[0].language.text",
            "Patient.contact",
            "Patient.deceasedBoolean",
            "Patient.identifier[0].use",
            "Patient.identifier[1]",
            "Patient.managingOrganization",
            "Patient.maritalStatus",
            "Patient.multipleBirthBoolean",
            "Patient.name[0].suffix",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-f201.json": Maps(
        [
            "Patient.active",
            "Patient.contact",
            "Patient.deceasedBoolean",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.identifier[1].type",
            "Patient.identifier[1].use",
            "Patient.managingOrganization",
            "Patient.maritalStatus",
            "Patient.multipleBirthBoolean",
            "Patient.name[0].prefix",
            "Patient.name[0].suffix",
            "Patient.name[0].text",
            "Patient.name[0].use",
            "Patient.photo",
            "Patient.text",
        ]
    ),
    "Patient-genetics-example1.json": Maps(
        [
            "Patient.active",
            "Patient.identifier[0].type",
            "Patient.managingOrganization",
            "Patient.meta.lastUpdated",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-glossy.json": Maps(
        [
            "Patient.active",
            "Patient.extension[0]",
            "Patient.generalPractitioner",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.meta.lastUpdated",
            "Patient.name[0].suffix",
            "Patient.text",
        ]
    ),
    "Patient-ihe-pcd.json": Refused("Patient.gender"),
    "Patient-infant-fetal.json": Refused("Patient.name"),
    "Patient-infant-mom.json": Refused("Patient.identifier"),
    "Patient-infant-twin-1.json": Maps(
        [
            "Patient.birthDate",
            "Patient.contact",
            "Patient.extension[0]",
            "Patient.identifier[0].type",
            "Patient.multipleBirthInteger",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-infant-twin-2.json": Maps(
        [
            "Patient.birthDate",
            "Patient.contact",
            "Patient.extension[0]",
            "Patient.identifier[0].type",
            "Patient.multipleBirthInteger",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-mom.json": Maps(
        [
            "Patient.active",
            "Patient.identifier[0].type",
            "Patient.link",
            "Patient.managingOrganization",
            "Patient.meta.lastUpdated",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-newborn.json": Refused("Patient.identifier"),
    "Patient-pat1.json": Maps(
        [
            "Patient.active",
            "Patient.contact",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.link",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.photo",
            "Patient.text",
        ]
    ),
    "Patient-pat2.json": Maps(
        [
            "Patient.active",
            "Patient.gender",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.link",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.photo",
            "Patient.text",
        ]
    ),
    "Patient-pat3.json": Maps(
        [
            "Patient.active",
            "Patient.deceasedDateTime",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-pat4.json": Maps(
        [
            "Patient.active",
            "Patient.deceasedBoolean",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.name[0].use",
            "Patient.text",
        ]
    ),
    "Patient-proband.json": Refused("Patient.name"),
    "Patient-xcda.json": Maps(
        [
            "Patient.active",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.text",
        ]
    ),
    "Patient-xds.json": Maps(
        [
            "Patient.active",
            "Patient.identifier[0].type",
            "Patient.identifier[0].use",
            "Patient.managingOrganization",
            "Patient.text",
        ]
    ),
    "ServiceRequest-ambulation.json": Maps(
        [
            "ServiceRequest.basedOn",
            "ServiceRequest.code.text",
            "ServiceRequest.reasonReference[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-appendectomy-narrative.json": Refused("ServiceRequest.subject"),
    "ServiceRequest-benchpress.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-colon-biopsy.json": Maps(
        [
            "ServiceRequest.code.text",
            "ServiceRequest.performer[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.requisition",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-colonoscopy.json": Maps(
        [
            "ServiceRequest.code.text",
            "ServiceRequest.performer[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.requisition",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-di.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-do-not-turn.json": Maps(
        [
            "ServiceRequest.doNotPerform",
            "ServiceRequest.reasonReference[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-education.json": Refused("ServiceRequest.subject"),
    "ServiceRequest-example-implant.json": Maps(
        [
            "ServiceRequest.code.text",
            "ServiceRequest.performer[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-example-pgx.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-example.json": Refused("ServiceRequest.requester"),
    "ServiceRequest-ft4.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-lipid.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-myringotomy.json": Maps(
        [
            "ServiceRequest.basedOn",
            "ServiceRequest.category[0].coding[0]",
            "ServiceRequest.code.text",
            "ServiceRequest.encounter",
            "ServiceRequest.note",
            "ServiceRequest.performerType",
            "ServiceRequest.performer[0]",
            "ServiceRequest.replaces[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.requisition",
            "ServiceRequest.subject.display",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-ob.json": Refused("ServiceRequest.subject"),
    "ServiceRequest-og-example1.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-physical-therapy.json": Refused("ServiceRequest.requester"),
    "ServiceRequest-physiotherapy.json": Maps(
        [
            "ServiceRequest.asNeededCodeableConcept",
            "ServiceRequest.basedOn",
            "ServiceRequest.contained",
            "ServiceRequest.identifier[0].type.text",
            "ServiceRequest.occurrenceTiming",
            "ServiceRequest.reasonReference[0]",
            "ServiceRequest.relevantHistory",
            "ServiceRequest.requester.display",
            "ServiceRequest.text",
        ]
    ),
    "ServiceRequest-subrequest.json": Refused("ServiceRequest.intent"),
    "ServiceRequest-vent.json": Maps(
        [
            "ServiceRequest.code.text",
            "ServiceRequest.orderDetail[0].coding[0]",
            "ServiceRequest.orderDetail[0].text",
            "ServiceRequest.orderDetail[1].text",
            "ServiceRequest.performer[0]",
            "ServiceRequest.requester.display",
            "ServiceRequest.text",
        ]
    ),
    "Task-example1.json": Refused("Task.performerType"),
    "Task-example2.json": Refused("Task.performerType"),
    "Task-example3.json": Maps(["Task.focus", "Task.lastModified", "Task.text"]),
    "Task-example4.json": Maps(
        [
            "Task.encounter",
            "Task.focus",
            "Task.for.display",
            "Task.groupIdentifier",
            "Task.identifier",
            "Task.lastModified",
            "Task.output",
            "Task.owner.display",
            "Task.partOf",
            "Task.performerType[0].coding[0]",
            "Task.performerType[0].text",
            "Task.priority",
            "Task.requester.display",
            "Task.restriction.repetitions",
            "Task.text",
        ]
    ),
    "Task-example5.json": Refused("Task.performerType"),
    "Task-example6.json": Refused("Task.performerType"),
    "Task-fm-example1.json": Refused("Task.code.text"),
    "Task-fm-example2.json": Refused("Task.code.text"),
    "Task-fm-example3.json": Refused("Task.code.text"),
    "Task-fm-example4.json": Refused("Task.code.text"),
    "Task-fm-example5.json": Refused("Task.code.text"),
    "Task-fm-example6.json": Refused("Task.code.text"),
    "extras/Condition-example.json": Refused("Condition.category"),
    "extras/Condition-example2.json": Maps(
        [
            "Condition.onsetString",
            "Condition.severity",
            "Condition.text",
            "Condition.verificationStatus",
        ]
    ),
    "extras/Condition-f001.json": Refused("Condition.category"),
    "extras/Condition-f002.json": Refused("Condition.category"),
    "extras/Condition-f003.json": Refused("Condition.category"),
    "extras/Condition-f201.json": Maps(
        [
            "Condition.abatementString",
            "Condition.asserter",
            "Condition.bodySite",
            "Condition.category[0].coding[0]",
            "Condition.encounter",
            "Condition.evidence",
            "Condition.identifier",
            "Condition.recorder",
            "Condition.severity",
            "Condition.subject.display",
            "Condition.text",
            "Condition.verificationStatus",
        ]
    ),
    "extras/Condition-f202.json": Refused("Condition.category"),
    "extras/Condition-f203.json": Maps(
        [
            "Condition.asserter",
            "Condition.bodySite",
            "Condition.category[0].coding[0]",
            "Condition.encounter",
            "Condition.evidence",
            "Condition.severity",
            "Condition.subject.display",
            "Condition.text",
            "Condition.verificationStatus",
        ]
    ),
    "extras/Condition-f204.json": Maps(
        [
            "Condition.asserter",
            "Condition.bodySite",
            "Condition.category[0].coding[0]",
            "Condition.encounter",
            "Condition.note",
            "Condition.severity",
            "Condition.stage",
            "Condition.subject.display",
            "Condition.text",
            "Condition.verificationStatus",
        ]
    ),
    "extras/Condition-f205.json": Refused("Condition.category"),
    "extras/Condition-family-history.json": Maps(["Condition.text"]),
    "extras/Condition-stroke.json": Refused("Condition.category"),
    "extras/PractitionerRole-example.json": Maps(
        [
            "PractitionerRole.availabilityExceptions",
            "PractitionerRole.availableTime",
            "PractitionerRole.code",
            "PractitionerRole.endpoint",
            "PractitionerRole.healthcareService",
            "PractitionerRole.identifier",
            "PractitionerRole.location",
            "PractitionerRole.notAvailable",
            "PractitionerRole.period",
            "PractitionerRole.practitioner.display",
            "PractitionerRole.specialty[0].coding[0]",
            "PractitionerRole.text",
        ]
    ),
}


def _example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(corpus("fhir-r4-examples").joinpath(name).read_bytes())
    return resource


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_what_maps_and_what_is_reported(name: str, expected: Maps | Refused) -> None:
    resource = _example(name)
    mapping = MAPPINGS[resource["resourceType"]]
    if isinstance(expected, Refused):
        with pytest.raises(MappingError) as raised:
            mapping.from_fhir(resource)
        assert raised.value.path == expected.path
        return
    mapped = mapping.from_fhir(resource)
    assert sorted({item.path for item in mapped.unmapped}) == expected.unmapped


@pytest.mark.corpus
@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if isinstance(e, Maps)], ids=str)
def test_what_maps_is_kept(name: str) -> None:
    """FHIR -> domain -> FHIR keeps every element the domain models, and drops nothing silently."""
    resource = _example(name)
    mapping = MAPPINGS[resource["resourceType"]]
    mapped = mapping.from_fhir(resource)
    written = mapping.to_fhir(mapped.value)

    fhir.validate(written)
    again = mapping.from_fhir(written)
    assert (again.value, again.unmapped) == (mapped.value, ())
    reported = [item.path for item in mapped.unmapped]
    for key in resource:
        element = key.removeprefix("_")
        path = f"{resource['resourceType']}.{element}"
        assert (
            element in written
            or element == "resourceType"
            or any(
                found == path or found.startswith((f"{path}.", f"{path}[")) for found in reported
            )
        ), f"{path} was dropped without a report"


@pytest.mark.corpus
def test_every_example_of_a_mapped_type_is_expected() -> None:
    """A new example in the corpus must be looked at, not passed over."""
    folder = corpus("fhir-r4-examples")
    found = {
        str(path.relative_to(folder))
        for resource_type in MAPPINGS
        for path in (folder / ("extras" if resource_type in EXTRAS else "")).glob(
            f"{resource_type}-*.json"
        )
    }
    assert found == set(EXPECTED)
