"""Episode <-> FHIR R4 EpisodeOfCare: a stay at one level of care (REFERRALS.md).

| Episode          | EpisodeOfCare                                                        |
|------------------|----------------------------------------------------------------------|
| id               | id                                                                   |
| identifiers      | identifier                                                           |
| status           | status (planned, waitlist, active, onhold, finished ...)             |
| level            | type: the local ASAM-aligned level-of-care code, with HL7            |
|                  | episodeofcare-type "da" (Drug and alcohol rehabilitation) beside it  |
| client_id        | patient                                                              |
| program_id       | managingOrganization                                                 |
| period           | period                                                               |
| referral_ids     | referralRequest (the ServiceRequests that led here)                  |
| care_manager_id  | careManager (a Practitioner in R4)                                   |

No US Core or SDOHCC profile covers EpisodeOfCare, so none is claimed. Status history,
diagnoses, teams and accounts are reported as unmapped.
"""

from typing import Any

from mappings import datatypes as dt
from mappings.errors import Mapped, MappingError
from mappings.model import Episode, EpisodeStatus, LevelOfCare
from mappings.terminology import (
    DRUG_AND_ALCOHOL_REHABILITATION,
    EPISODE_OF_CARE_TYPE,
    LEVEL_OF_CARE,
)


def to_fhir(episode: Episode) -> dict[str, Any]:
    """The episode as an EpisodeOfCare."""
    resource: dt.Json = {"resourceType": "EpisodeOfCare", "id": episode.id}
    dt.put(resource, "identifier", dt.each(episode.identifiers, dt.identifier))
    resource["status"] = episode.status.value
    if episode.level is not None:
        resource["type"] = [{"coding": level_codings(episode.level)}]
    resource["patient"] = dt.reference("Patient", episode.client_id)
    resource["managingOrganization"] = dt.reference("Organization", episode.program_id)
    if episode.period is not None:
        resource["period"] = dt.period(episode.period)
    dt.put(
        resource,
        "referralRequest",
        [dt.reference("ServiceRequest", ref) for ref in episode.referral_ids],
    )
    if episode.care_manager_id is not None:
        resource["careManager"] = dt.reference("Practitioner", episode.care_manager_id)
    return resource


def level_codings(level: LevelOfCare) -> list[dt.Json]:
    """The level of care, and HL7's coarse "drug and alcohol rehabilitation" beside it."""
    return [
        dt.coded(LEVEL_OF_CARE, level.value),
        {
            "system": EPISODE_OF_CARE_TYPE,
            "code": DRUG_AND_ALCOHOL_REHABILITATION,
            "display": "Drug and alcohol rehabilitation",
        },
    ]


def read_level(concept: dt.Reader) -> LevelOfCare | None:
    """The level of care of a CodeableConcept written by `level_codings`."""
    level: LevelOfCare | None = None
    rehabilitation = None
    for item, code in dt.codes_of(concept):
        found = dt.enum_code(item, code, LEVEL_OF_CARE.url, LevelOfCare)
        if found is not None and level is None:
            level = found
        elif (code.system, code.code) == (EPISODE_OF_CARE_TYPE, DRUG_AND_ALCOHOL_REHABILITATION):
            rehabilitation = item
        else:
            item.report("only the level of care is kept")
    if rehabilitation is not None and level is None:
        rehabilitation.report("drug and alcohol rehabilitation alone names no level of care")
    return level


def from_fhir(resource: dict[str, Any]) -> Mapped[Episode]:
    """An EpisodeOfCare as an episode at one level of care."""
    reader = dt.Reader.resource(resource, "EpisodeOfCare")
    dt.read_meta(reader, ())
    levels = [read_level(entry) for entry in reader.children("type")]
    found = [level for level in levels if level is not None]
    episode = Episode(
        id=dt.read_id(reader),
        client_id=dt.need_ref(reader, "patient", "Patient"),
        program_id=dt.need_ref(reader, "managingOrganization", "Organization"),
        status=dt.need_enum(reader, "status", EpisodeStatus),
        level=found[0] if len(found) == 1 else _one_level(reader, found),
        period=dt.read_period(reader.child("period")),
        care_manager_id=dt.optional_ref(reader, "careManager", "Practitioner"),
        referral_ids=dt.refs(reader, "referralRequest", "ServiceRequest"),
        identifiers=dt.listed(reader, "identifier", dt.read_identifier),
    )
    return reader.mapped(episode)


def _one_level(reader: dt.Reader, levels: list[LevelOfCare]) -> LevelOfCare | None:
    if levels:
        raise MappingError(reader.at("type"), "an episode is at one level of care")
    return None
