"""Partners are organizations known by their identifiers (issue 12, point 2): a partner's
referral names organizations as its own server does, with identifiers beside the references;
those known here are resolved to the Organizations here, so the partner writes as itself and
only as itself."""

from typing import Any

from fastapi.testclient import TestClient

from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, PartnerService
from tests.builders import organization, patient, service_request, task
from tests.conftest import RegisteredPartner, register_partner
from tests.interop.disclosure.conftest import acting_as
from tests.interop.disclosure.test_consents_as_written import partner

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"  # the identifiers register_partner gives


def named_by_identifier(name: str) -> dict[str, Any]:
    """An Organization on the partner's own server, named as that server would."""
    return {
        "reference": f"https://partner.example.org/fhir/Organization/{name.replace(' ', '-')}",
        "identifier": {"system": SYSTEM, "value": name},
    }


def referral_from(writer: TestClient, requester: dict[str, Any]) -> Any:
    person = writer.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    order = {**service_request(f"Patient/{person['id']}"), "requester": requester}
    return writer.post("/fhir/ServiceRequest", json=order, headers=FHIR_JSON)


def test_a_partners_own_absolute_reference_resolves_to_its_registration(
    anonymous: TestClient,
) -> None:
    a: RegisteredPartner = register_partner(anonymous, name="Harbor Detox")
    answer = referral_from(acting_as(anonymous, a), named_by_identifier("Harbor Detox"))
    assert answer.status_code == 201, answer.text
    requester = answer.json()["requester"]
    assert requester["reference"] == a.organization
    assert requester["identifier"] == {"system": SYSTEM, "value": "Harbor Detox"}


def test_a_partner_cannot_write_as_another_organization_by_naming_its_identifier(
    anonymous: TestClient,
) -> None:
    a = register_partner(anonymous, name="Harbor Detox")
    register_partner(anonymous, name="Riverside Residential")
    answer = referral_from(acting_as(anonymous, a), named_by_identifier("Riverside Residential"))
    assert answer.status_code == 403, answer.text
    assert "requester" in answer.json()["issue"][0]["diagnostics"]


def test_an_identifier_known_nowhere_here_is_not_taken_for_the_writer(
    anonymous: TestClient, client: TestClient
) -> None:
    a = register_partner(anonymous, name="Harbor Detox")
    answer = referral_from(acting_as(anonymous, a), named_by_identifier("Somewhere Else"))
    assert answer.status_code == 403, answer.text
    assert client.get("/fhir/ServiceRequest").json()["total"] == 0


def test_only_the_partner_at_a_fhir_base_writes_identifiers_under_it(
    anonymous: TestClient,
) -> None:
    """Probe 9 H3: a partner finds its copy here by its own Task's URL; a third partner
    that wrote a Task carrying that URL first had the partner's push match its Task (and be
    refused) and its poll read it as the copy."""
    base = "https://harbor.example.org/fhir"
    service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
    harbor = register_partner(anonymous, name="Harbor Detox")
    service.set_channel(
        harbor.client_id, ChannelConfig(ChannelKind.FHIR, base, "us-at-harbor", f"{base}/token")
    )
    cedar_partner = register_partner(anonymous, name="Cedar Clinic")
    cedar = acting_as(anonymous, cedar_partner)
    person = cedar.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    own = {"reference": cedar_partner.organization}
    squat = {
        **task("ServiceRequest/elsewhere", f"Patient/{person['id']}", owner=own),
        "requester": own,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"{base}/Task/ref-yan-task"}],
    }
    answer = cedar.post("/fhir/Task", json=squat, headers=FHIR_JSON)
    assert answer.status_code == 403, answer.text
    assert (
        f"an identifier under {base}/ names a record on another partner's server"
        in (answer.json()["issue"][0]["diagnostics"])
    )
    elsewhere = {"system": "urn:ietf:rfc:3986", "value": "https://cedar.example.org/fhir/Task/1"}
    answer = cedar.post("/fhir/Task", json={**squat, "identifier": [elsewhere]}, headers=FHIR_JSON)
    assert answer.status_code == 201, answer.text
    # Review 9 #6: nor a client, whose URL would have our referrals of them pushed to Harbor
    # filed in the chart of Harbor's patient of that URL.
    claimed = {"system": "urn:ietf:rfc:3986", "value": f"{base}/Patient/victim-42"}
    answer = cedar.post("/fhir/Patient", json=patient(identifier=[claimed]), headers=FHIR_JSON)
    assert answer.status_code == 403, answer.text
    assert "names a record on another partner's server" in answer.text


NPI_OID = "urn:oid:2.16.840.1.113883.4.6"
"""The NPI as C-CDA, IHE and OID-based documents name it (consent.vocabulary)."""


def test_an_owner_named_by_the_npis_oid_resolves_to_its_registration(
    anonymous: TestClient,
) -> None:
    """Review 9 F7: the registry stores the NPI by FHIR's URL; a referral naming its owner by
    the NPI's OID was looked up as written, found no one, and so reached no one."""
    cedar = partner(anonymous, "Cedar Clinic", "1003000126", "system/*.cruds")
    bay = partner(anonymous, "Bayview", "1992753883", "system/*.cruds")
    writer = acting_as(anonymous, cedar)
    person = writer.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    order = writer.post(
        "/fhir/ServiceRequest",
        json=service_request(f"Patient/{person['id']}", requester=cedar.organization),
        headers=FHIR_JSON,
    ).json()
    owner = {"identifier": {"system": NPI_OID, "value": "1992753883"}}
    body = task(
        f"ServiceRequest/{order['id']}",
        f"Patient/{person['id']}",
        requester=cedar.organization,
        owner=owner,
    )

    made = writer.post("/fhir/Task", json=body, headers=FHIR_JSON)

    assert made.status_code == 201, made.text
    assert made.json()["owner"]["reference"] == bay.organization


def test_a_registration_by_the_npis_url_is_the_organization_stored_with_its_oid(
    anonymous: TestClient, client: TestClient
) -> None:
    """Review 9 F7: an Organization stored naming its NPI by the OID is the one a partner
    registered by the NPI's URL acts for, not a second Organization of the same program (its
    own records would otherwise be disclosures to itself)."""
    stored = client.post(
        "/fhir/Organization",
        json=organization("Bayview", identifier=[{"system": NPI_OID, "value": "1992753883"}]),
        headers=FHIR_JSON,
    )
    assert stored.status_code == 201, stored.text

    bay = partner(anonymous, "Bayview", "1992753883", "system/*.cruds")

    assert bay.organization == f"Organization/{stored.json()['id']}"
