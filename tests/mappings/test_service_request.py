"""Referral <-> SDOHCC / US Core ServiceRequest."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from mappings import fhir, service_request
from mappings.errors import MappingError
from mappings.model import (
    Code,
    Id,
    Identifier,
    LevelOfCare,
    Party,
    PartyKind,
    Period,
    Ref,
    Referral,
    RequestStatus,
    SdohCategory,
    Urgency,
)
from mappings.terminology import (
    LEVEL_OF_CARE,
    PATIENT_REFERRAL,
    REFERRAL_TO_DRUG_REHABILITATION,
    SDOHCC_CODES,
)


def a_referral(**changes: Any) -> Referral:
    values: dict[str, Any] = {
        "id": Id("sr1"),
        "client_id": Ref("c1"),
        "requester": Party(PartyKind.CASE_MANAGER, Ref("cm1")),
        "status": RequestStatus.ACTIVE,
        "service": REFERRAL_TO_DRUG_REHABILITATION,
        "authored_on": datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        "performer_id": Ref("https://riverside.example.org/fhir/Organization/r1"),
        "urgency": Urgency.URGENT,
        "requested_level": LevelOfCare.INTENSIVE_OUTPATIENT,
        "reason": "Step down after residential treatment",
        "barrier_ids": (Ref("b1"),),
        "goal_ids": (Ref("g1"),),
        "occurrence": Period(date(2025, 3, 10), date(2025, 3, 17)),
        "placer_identifier": Identifier("urn:oid:2.16.840.1.113883.3.9999.5", "REF-42"),
        "consents": (Ref("consent1"),),
        "attachments": (Ref("doc1"),),
        "supporting_episode_id": Ref("ep1"),
    }
    return Referral(**(values | changes))


def test_writes_an_sdohcc_service_request() -> None:
    resource = service_request.to_fhir(a_referral())

    fhir.validate(resource)
    assert resource["meta"]["profile"] == list(service_request.PROFILES)
    assert resource["intent"] == "order"
    assert resource["identifier"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "PLAC",
                        "display": "Placer Identifier",
                    }
                ]
            },
            "system": "urn:oid:2.16.840.1.113883.3.9999.5",
            "value": "REF-42",
        }
    ]
    assert resource["orderDetail"][0]["coding"][0] == {
        "system": LEVEL_OF_CARE.url,
        "code": "2.1",
        "display": "ASAM 2.1 Intensive outpatient services",
    }
    assert resource["supportingInfo"] == [
        {"reference": "Consent/consent1"},
        {"reference": "DocumentReference/doc1"},
        {"reference": "EpisodeOfCare/ep1"},
    ]
    assert resource["occurrencePeriod"] == {"start": "2025-03-10", "end": "2025-03-17"}


def test_without_an_sdoh_category_it_is_unspecified() -> None:
    """SDOHCC requires one SDOH category on every ServiceRequest."""
    resource = service_request.to_fhir(a_referral())

    assert resource["category"] == [
        {
            "coding": [
                {
                    "system": SDOHCC_CODES,
                    "code": "sdoh-category-unspecified",
                    "display": "SDOH Category Unspecified",
                }
            ]
        }
    ]


def test_a_community_referral_carries_its_sdoh_categories() -> None:
    food = a_referral(
        service=PATIENT_REFERRAL,
        requested_level=None,
        sdoh_categories=(SdohCategory.FOOD_INSECURITY,),
        occurrence=date(2025, 3, 12),
    )
    resource = service_request.to_fhir(food)

    assert [c["coding"][0]["code"] for c in resource["category"]] == ["food-insecurity", "sdoh"]
    assert resource["occurrenceDateTime"] == "2025-03-12"
    assert service_request.from_fhir(resource).value == food


def test_reads_what_it_wrote() -> None:
    mapped = service_request.from_fhir(service_request.to_fhir(a_referral()))

    assert (mapped.value, mapped.unmapped) == (a_referral(), ())


def test_refuses_a_service_outside_us_core_procedure_codes() -> None:
    not_a_procedure = a_referral(service=Code("http://example.org/services", "detox"))

    with pytest.raises(MappingError) as raised:
        service_request.to_fhir(not_a_procedure)
    assert raised.value.path == "ServiceRequest.code"
    resource = service_request.to_fhir(a_referral())
    resource["code"]["coding"][0]["system"] = "http://example.org/services"
    with pytest.raises(MappingError) as raised:
        service_request.from_fhir(resource)
    assert raised.value.path == "ServiceRequest.code.coding[0]"


def test_refuses_a_proposal() -> None:
    """intent is a modifier: a proposal is not a referral order."""
    resource = service_request.to_fhir(a_referral()) | {"intent": "proposal"}

    with pytest.raises(MappingError) as raised:
        service_request.from_fhir(resource)
    assert raised.value.path == "ServiceRequest.intent"


def test_reports_supporting_information_of_other_kinds() -> None:
    resource = service_request.to_fhir(a_referral())
    resource["supportingInfo"].append({"reference": "Observation/o1"})

    mapped = service_request.from_fhir(resource)

    assert mapped.value == a_referral()
    assert [item.path for item in mapped.unmapped] == ["ServiceRequest.supportingInfo[3]"]
