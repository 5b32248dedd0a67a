"""Partners are organizations known by their identifiers (issue 12, point 2): a partner's
referral names organizations as its own server does, with identifiers beside the references;
those known here are resolved to the Organizations here, so the partner writes as itself and
only as itself."""

from typing import Any

from fastapi.testclient import TestClient

from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, PartnerService
from tests.builders import patient, service_request, task
from tests.conftest import RegisteredPartner, register_partner
from tests.interop.disclosure.conftest import acting_as

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
