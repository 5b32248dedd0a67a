"""Episode <-> EpisodeOfCare at one ASAM-aligned level of care."""

from datetime import date
from typing import Any

import pytest

from mappings import episode, fhir
from mappings.errors import MappingError
from mappings.model import Episode, EpisodeStatus, Id, LevelOfCare, Period, Ref
from mappings.terminology import LEVEL_OF_CARE


def an_episode(**changes: Any) -> Episode:
    values: dict[str, Any] = {
        "id": Id("ep1"),
        "client_id": Ref("c1"),
        "program_id": Ref("harbor"),
        "status": EpisodeStatus.ACTIVE,
        "level": LevelOfCare.WM_INPATIENT_MONITORED,
        "period": Period(date(2025, 3, 1)),
        "care_manager_id": Ref("pr1"),
        "referral_ids": (Ref("sr1"),),
    }
    return Episode(**(values | changes))


def test_writes_the_level_beside_drug_and_alcohol_rehabilitation() -> None:
    resource = episode.to_fhir(an_episode())

    fhir.validate(resource)
    assert resource["type"] == [
        {
            "coding": [
                {
                    "system": LEVEL_OF_CARE.url,
                    "code": "3.7-WM",
                    "display": "ASAM 3.7-WM Medically monitored inpatient withdrawal management",
                },
                {
                    "system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type",
                    "code": "da",
                    "display": "Drug and alcohol rehabilitation",
                },
            ]
        }
    ]
    assert resource["careManager"] == {"reference": "Practitioner/pr1"}
    assert resource["referralRequest"] == [{"reference": "ServiceRequest/sr1"}]


def test_reads_what_it_wrote() -> None:
    mapped = episode.from_fhir(episode.to_fhir(an_episode()))

    assert (mapped.value, mapped.unmapped) == (an_episode(), ())


def test_reports_rehabilitation_alone() -> None:
    resource = episode.to_fhir(an_episode())
    del resource["type"][0]["coding"][0]

    mapped = episode.from_fhir(resource)

    assert mapped.value.level is None
    assert [item.path for item in mapped.unmapped] == ["EpisodeOfCare.type[0].coding[0]"]


def test_refuses_two_levels() -> None:
    resource = episode.to_fhir(an_episode())
    resource["type"].append({"coding": [{"system": LEVEL_OF_CARE.url, "code": "2.1"}]})

    with pytest.raises(MappingError, match="one level of care"):
        episode.from_fhir(resource)


def test_refuses_a_level_that_is_not_one() -> None:
    resource = episode.to_fhir(an_episode())
    resource["type"][0]["coding"][0]["code"] = "3.9"

    with pytest.raises(MappingError) as raised:
        episode.from_fhir(resource)
    assert raised.value.path == "EpisodeOfCare.type[0].coding[0].code"
    assert raised.value.to_issue().code == "code-invalid"


def test_needs_the_managing_program() -> None:
    resource = episode.to_fhir(an_episode())
    del resource["managingOrganization"]

    with pytest.raises(MappingError) as raised:
        episode.from_fhir(resource)
    assert raised.value.path == "EpisodeOfCare.managingOrganization"
