"""Whether a program is a Part 2 program is read from its Organization, so a partner never
changes an Organization someone else recorded: clearing the flag would release the program's
records as ordinary data (PART2.md P1)."""

from typing import Any

from fastapi.testclient import TestClient

from interop.services.partners import NewPartner, PartnerService
from mappings.terminology import PART2_PROGRAM_EXTENSION
from tests.conftest import register_partner
from tests.interop.disclosure.conftest import acting_as, make
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def program(flag: bool) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "name": "Lakeside Detox (synthetic)",
        "extension": [{"url": PART2_PROGRAM_EXTENSION, "valueBoolean": flag}],
    }


def test_a_partner_cannot_clear_a_programs_part2_flag(
    client: TestClient, anonymous: TestClient
) -> None:
    lakeside = make(client, program(True))
    partner = acting_as(anonymous, register_partner(anonymous, name="Curious Clinic"))
    url = f"/fhir/Organization/{lakeside['id']}"
    cleared = partner.put(url, json={**program(False), "id": lakeside["id"]}, headers=FHIR_JSON)
    assert cleared.status_code == 403, cleared.text
    outcome = cleared.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Organizations it recorded" in outcome["issue"][0]["diagnostics"]
    assert partner.delete(url).status_code == 403
    stored = client.get(url).json()
    assert stored["extension"] == [{"url": PART2_PROGRAM_EXTENSION, "valueBoolean": True}]
    assert stored["meta"]["versionId"] == "1"


def test_a_partner_maintains_the_organizations_it_recorded(anonymous: TestClient) -> None:
    partner = acting_as(anonymous, register_partner(anonymous, name="Curious Clinic"))
    own = make(partner, program(False))
    url = f"/fhir/Organization/{own['id']}"
    renamed = partner.put(url, json={**own, "name": "Lakeside Clinic"}, headers=FHIR_JSON)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Lakeside Clinic"
    assert partner.delete(url).status_code in (200, 204)
    assert partner.get(url).status_code == 410


def test_registering_a_program_flags_the_organization_others_recorded_for_it(
    client: TestClient, anonymous: TestClient
) -> None:
    """A partner (or an HL7 v2 message) may have recorded the program's Organization first,
    without the flag: the registration links to it and the operator's word is what the gate
    reads from then on."""
    partner = acting_as(anonymous, register_partner(anonymous, name="Curious Clinic"))
    npi = ("urn:oid:2.16.840.1.113883.3.9999.10", "Lakeside Detox")
    identifier = {"system": npi[0], "value": npi[1]}
    recorded = make(partner, {**program(False), "identifier": [identifier]})
    service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
    registered = service.register(
        NewPartner(
            name="Lakeside Detox",
            identifiers=[npi],
            scopes="system/*.rs",
            jwks=rsa_key().jwks(),
            part2_program=True,
        )
    )
    assert registered.organization == f"Organization/{recorded['id']}"
    stored = client.get(f"/fhir/Organization/{recorded['id']}")
    assert stored.status_code == 200, stored.text
    flags = [e for e in stored.json()["extension"] if e["url"] == PART2_PROGRAM_EXTENSION]
    assert flags == [{"url": PART2_PROGRAM_EXTENSION, "valueBoolean": True}]
