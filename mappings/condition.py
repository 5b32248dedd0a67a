"""Barrier <-> FHIR R4 Condition: an SDOH problem or health concern a goal addresses.

Written to SDOHCC Condition (SDOH Clinical Care 2.3) and US Core Condition Problems and Health
Concerns 7.0.0:

| Barrier                | Condition                                                       |
|------------------------|-----------------------------------------------------------------|
| id                     | id                                                              |
| clinical_status        | clinicalStatus (HL7 condition-clinical)                         |
| kind                   | category: problem-list-item (HL7 condition-category) or         |
|                        | health-concern (US Core condition-category), US Core 1..*       |
| domain                 | category: the SDOH category the domain stands for, US Core      |
|                        | us-core-category "sdoh" when there is one, and the local        |
|                        | goal-domain code                                                |
| extra_sdoh_categories  | category: more SDOHCC SDOH categories                           |
| code                   | code (US Core 1..1): SNOMED CT or ICD-10-CM codes and/or text   |
| client_id              | subject                                                         |
| onset, abatement       | onsetDateTime, abatementDateTime                                |
| recorded               | recordedDate                                                    |

SDOHCC Condition is claimed when the barrier has an SDOH category; US Core always. Codes from
other systems in Condition.code are refused (US Core Condition Codes draw on SNOMED
CT and ICD-10-CM only). Verification status, severity, evidence, notes and the like are
reported as unmapped.
"""

from typing import Any, Final

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.goal import categories, is_sdoh, read_categories
from mappings.model import Barrier, ClinicalStatus, Code, ConcernKind
from mappings.terminology import (
    CONCERN_CATEGORY,
    CONDITION_CLINICAL_DISPLAYS,
    CONDITION_CODE_SYSTEMS,
    SDOH,
)

SDOHCC_PROFILE: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Condition"
)
US_CORE_PROFILE: Final = (
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-problems-health-concerns"
)
PROFILES: Final = (SDOHCC_PROFILE, US_CORE_PROFILE)


def to_fhir(barrier: Barrier) -> dict[str, Any]:
    """The barrier as a US Core problem or health concern (SDOHCC Condition when SDOH)."""
    _check_code(barrier)
    sdoh = is_sdoh(barrier.domain, barrier.extra_sdoh_categories)
    resource: dt.Json = {
        "resourceType": "Condition",
        "id": barrier.id,
        "meta": dt.meta(*PROFILES) if sdoh else dt.meta(US_CORE_PROFILE),
    }
    if barrier.clinical_status is not None:
        resource["clinicalStatus"] = {
            "coding": [dt.coded(CONDITION_CLINICAL_DISPLAYS, barrier.clinical_status.value)]
        }
    system, display = CONCERN_CATEGORY[barrier.kind.value]
    kind = {"system": system, "code": barrier.kind.value, "display": display}
    others = categories(barrier.domain, barrier.extra_sdoh_categories, goal=False)
    if sdoh:
        others.insert(0, {"coding": [dt.coding(SDOH)]})
    resource["category"] = [{"coding": [kind]}, *others]
    resource["code"] = dt.concept(barrier.code)
    resource["subject"] = dt.reference("Patient", barrier.client_id)
    if barrier.onset is not None:
        resource["onsetDateTime"] = dt.when(barrier.onset)
    if barrier.abatement is not None:
        resource["abatementDateTime"] = dt.when(barrier.abatement)
    if barrier.recorded is not None:
        resource["recordedDate"] = dt.when(barrier.recorded)
    return resource


def _check_code(barrier: Barrier) -> None:
    for index, code in enumerate(barrier.code.codes):
        dt.check_system(
            f"Condition.code.coding[{index}]",
            code,
            CONDITION_CODE_SYSTEMS,
            "US Core Condition Codes",
        )


def from_fhir(resource: dict[str, Any]) -> Mapped[Barrier]:
    """A Condition as a barrier; Conditions that are not problems or health concerns are refused."""
    reader = dt.Reader.resource(resource, "Condition")
    dt.read_meta(reader, PROFILES)
    kinds: list[ConcernKind] = []

    def concern(code: Code) -> bool:
        for kind in ConcernKind:
            if (code.system, code.code) == (CONCERN_CATEGORY[kind.value][0], kind.value):
                kinds.append(kind)
                return True
        return (code.system, code.code) == (SDOH.system, SDOH.code)

    domain, extra = read_categories(reader, concern, goal=False)
    if len(set(kinds)) != 1:
        raise MappingError(
            reader.at("category"), "a barrier is either a problem-list item or a health concern"
        )
    status = reader.child("clinicalStatus")
    barrier = dt.domain_value(
        "Condition",
        lambda: Barrier(
            id=dt.read_id(reader),
            client_id=dt.need_ref(reader, "subject", "Patient"),
            code=dt.read_concept(reader.need_child("code")),
            kind=kinds[0],
            domain=domain,
            extra_sdoh_categories=extra,
            clinical_status=None
            if status is None
            else dt.only_code(status, CONDITION_CLINICAL_DISPLAYS.url, ClinicalStatus),
            onset=dt.read_when(reader, "onsetDateTime"),
            abatement=dt.read_when(reader, "abatementDateTime"),
            recorded=dt.read_when(reader, "recordedDate"),
        ),
    )
    _check_code(barrier)
    return reader.mapped(barrier)
