"""The referral workflow at the FHIR API: partners move a shared Task only as REFERRALS.md
allows their side, and a refused move is a 422 OperationOutcome that changes nothing."""

from typing import Any

from fastapi.testclient import TestClient

from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, PartnerService
from mappings.terminology import BUSINESS_STATUS
from tests.builders import patient, service_request, task
from tests.conftest import RegisteredPartner, bearer, register_partner
from tests.interop.sync.test_outbox import outbox_rows

ADMITTED = {"coding": [{"system": BUSINESS_STATUS.url, "code": "admitted"}]}

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def as_(anonymous: TestClient, partner: RegisteredPartner) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": bearer(anonymous, partner, scope="system/*.cruds")}


def referral(
    anonymous: TestClient, client: TestClient
) -> tuple[dict[str, Any], RegisteredPartner, RegisteredPartner]:
    """Harbor (requester) refers a client to Bayview (owner); the Task is requested."""
    harbor = register_partner(anonymous, name="Harbor Clinic")
    bayview = register_partner(anonymous, name="Bayview Outpatient")
    person = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    order = client.post(
        "/fhir/ServiceRequest",
        json=service_request(f"Patient/{person['id']}", requester=harbor.organization),
        headers=FHIR_JSON,
    ).json()
    body = task(
        f"ServiceRequest/{order['id']}",
        f"Patient/{person['id']}",
        requester=harbor.organization,
        owner={"reference": bayview.organization},
    )
    created = anonymous.post("/fhir/Task", json=body, headers=as_(anonymous, harbor))
    assert created.status_code == 201, created.text
    return created.json(), harbor, bayview


def put(anonymous: TestClient, partner: RegisteredPartner, body: dict[str, Any]) -> Any:
    return anonymous.put(f"/fhir/Task/{body['id']}", json=body, headers=as_(anonymous, partner))


def test_a_finished_task_sent_again_as_it_is_gets_no_new_version(
    anonymous: TestClient, client: TestClient
) -> None:
    """A terminal Task never changes again (REFERRALS.md): resending it as read writes
    nothing, so the other side is not told of a change that is none (probe 13 #7)."""
    shared, harbor, bayview = referral(anonymous, client)
    base = "https://harbor.example.org/fhir"
    service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
    channel = ChannelConfig(ChannelKind.FHIR, base, "us-at-harbor", f"{base}/token")
    service.set_channel(harbor.client_id, channel)
    declined = {**shared, "status": "rejected", "statusReason": {"text": "At capacity"}}
    assert put(anonymous, bayview, declined).status_code == 200
    queued = len(outbox_rows(client))
    assert queued >= 1  # the decline itself goes to the requester's server
    read = anonymous.get(f"/fhir/Task/{shared['id']}", headers=as_(anonymous, bayview)).json()
    for body in (declined, {k: v for k, v in read.items() if k != "meta"}):
        again = put(anonymous, bayview, body)
        assert again.status_code == 200, again.text
        assert again.json()["meta"]["versionId"] == "2"
    history = client.get(f"/fhir/Task/{shared['id']}/_history").json()
    assert history["total"] == 2
    assert len(outbox_rows(client)) == queued


def test_the_owner_accepts_and_the_requester_cannot(
    anonymous: TestClient, client: TestClient
) -> None:
    shared, harbor, bayview = referral(anonymous, client)
    refused = put(anonymous, harbor, {**shared, "status": "accepted"})
    assert refused.status_code == 422
    [issue] = refused.json()["issue"]
    assert (issue["code"], issue["diagnostics"], issue["expression"]) == (
        "business-rule",
        "only the owner moves a Task from requested to accepted",
        ["Task.status"],
    )
    assert client.get(f"/fhir/Task/{shared['id']}").json()["meta"]["versionId"] == "1"
    accepted = put(anonymous, bayview, {**shared, "status": "accepted"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"


def test_a_decline_needs_its_reason_and_then_never_changes(
    anonymous: TestClient, client: TestClient
) -> None:
    shared, harbor, bayview = referral(anonymous, client)
    bare = put(anonymous, bayview, {**shared, "status": "rejected"})
    assert bare.json()["issue"][0]["diagnostics"] == "a Task put rejected says why, in statusReason"
    assert bare.json()["issue"][0]["expression"] == ["Task.statusReason"]
    declined = {**shared, "status": "rejected", "statusReason": {"text": "At capacity"}}
    assert put(anonymous, bayview, declined).status_code == 200
    current = client.get(f"/fhir/Task/{shared['id']}").json()
    reopened = put(anonymous, harbor, {**current, "status": "requested"})
    assert reopened.status_code == 422
    assert "never changes again" in reopened.json()["issue"][0]["diagnostics"]


def test_a_partner_creates_only_requests_it_makes(
    anonymous: TestClient, client: TestClient
) -> None:
    shared, harbor, bayview = referral(anonymous, client)
    body = {k: v for k, v in shared.items() if k not in ("id", "meta")}
    as_owner = anonymous.post("/fhir/Task", json=body, headers=as_(anonymous, bayview))
    assert as_owner.status_code == 422
    assert as_owner.json()["issue"][0]["diagnostics"] == (
        "a referral's Task is created by its requester"
    )
    already = anonymous.post(
        "/fhir/Task", json={**body, "status": "accepted"}, headers=as_(anonymous, harbor)
    )
    assert already.json()["issue"][0]["diagnostics"] == (
        "a new referral's Task is draft or requested, not accepted"
    )


def test_a_partner_marks_a_referral_in_error_rather_than_deleting_it(
    anonymous: TestClient, client: TestClient
) -> None:
    shared, harbor, _bayview = referral(anonymous, client)
    deleted = anonymous.delete(f"/fhir/Task/{shared['id']}", headers=as_(anonymous, harbor))
    assert deleted.status_code == 422
    assert "mark it entered-in-error" in deleted.json()["issue"][0]["diagnostics"]
    marked = put(anonymous, harbor, {**shared, "status": "entered-in-error"})
    assert marked.status_code == 200, marked.text


def test_each_side_writes_the_task_as_it_last_saw_it_and_nothing_of_the_other_is_lost(
    anonymous: TestClient, client: TestClient
) -> None:
    """Across servers each side sends the whole Task from its last view: the requester's note
    sent with the status it last saw (requested) after the owner accepted is kept, the
    acceptance too; the owner's later move sent without the requester's new input keeps it."""
    shared, harbor, bayview = referral(anonymous, client)
    note = {"text": "Client prefers morning appointments"}
    accepted = put(
        anonymous, bayview, {**shared, "status": "accepted", "businessStatus": {"text": "booked"}}
    )
    assert accepted.status_code == 200, accepted.text
    noted = put(anonymous, harbor, {**shared, "note": [note]})
    assert noted.status_code == 200, noted.text
    stored = client.get(f"/fhir/Task/{shared['id']}").json()
    assert (stored["status"], stored["businessStatus"], stored["note"]) == (
        "accepted",
        {"text": "booked"},
        [note],
    )
    document = {"type": {"text": "Discharge summary"}, "valueString": "attached by fax"}
    assert put(anonymous, harbor, {**stored, "input": [document]}).status_code == 200
    started = {
        **stored,
        "status": "in-progress",
        "executionPeriod": {"start": "2026-11-03"},
        "businessStatus": ADMITTED,
    }
    answer = put(anonymous, bayview, started)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["input"], answer.json()["note"]) == (
        "in-progress",
        [document],
        [note],
    )
    reopened = put(anonymous, harbor, {**answer.json(), "businessStatus": {"text": "mine now"}})
    assert reopened.status_code == 422, reopened.text


def test_a_malformed_write_of_the_shared_task_is_a_400_not_a_crash(
    anonymous: TestClient, client: TestClient
) -> None:
    """The body is validated before it is rebased on the stored Task: 422 naming what is
    wrong, as for any invalid resource, never a 500."""
    shared, harbor, _bayview = referral(anonymous, client)
    for odd, where in (({"note": 5}, "Task.note"), ({"businessStatus": {"coding": 5}}, None)):
        answer = put(anonymous, harbor, {**shared, **odd})
        assert answer.status_code == 422, answer.text
        [issue] = answer.json()["issue"]
        assert issue["code"] == "structure"
        assert where is None or issue["expression"] == [where]


def test_a_side_signs_no_note_as_the_other_party_by_its_identifier(
    anonymous: TestClient, client: TestClient
) -> None:
    """Review 9 #5: the Task names the owner by reference; a note the requester signed with
    the owner's registered identifier was taken for nobody's, and passed."""
    shared, harbor, bayview = referral(anonymous, client)
    owner_identifier = {
        "system": "urn:oid:2.16.840.1.113883.3.9999.10",
        "value": "Bayview Outpatient",
    }
    for author in (
        {"reference": bayview.organization},
        {"identifier": owner_identifier, "display": "Bayview Outpatient"},
    ):
        forged = put(
            anonymous, harbor, {**shared, "note": [{"text": "declined", "authorReference": author}]}
        )
        assert forged.status_code == 422, (author, forged.text)
        assert forged.json()["issue"][0]["diagnostics"] == (
            "a note the requester adds may not name the owner as its author"
        )
    own_identifier = {"system": "urn:oid:2.16.840.1.113883.3.9999.10", "value": "Harbor Clinic"}
    signed = {"text": "records sent", "authorReference": {"identifier": own_identifier}}
    answer = put(anonymous, harbor, {**shared, "note": [signed]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["note"][0]["authorReference"] == {
        "identifier": own_identifier,
        "reference": harbor.organization,
    }


def test_our_own_systems_move_only_our_side_of_a_task_copied_to_a_partners_server(
    anonymous: TestClient, client: TestClient, harness: RegisteredPartner
) -> None:
    """Probe 11 M3: a partner with its own FHIR server moves its side there; our EHR moving
    it here too (cancelling work the partner has under way) left the two copies apart for
    good. Our systems still act for either side of a Task with a partner without a server."""
    base = "https://bayview.example.org/fhir"
    bayview = register_partner(anonymous, name="Bayview Outpatient")
    service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
    service.set_channel(
        bayview.client_id, ChannelConfig(ChannelKind.FHIR, base, "us-at-bayview", f"{base}/token")
    )
    walk_in = register_partner(anonymous, name="Walk-in Clinic")
    person = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
    for partner, expected in ((bayview, 422), (walk_in, 200)):
        order = client.post(
            "/fhir/ServiceRequest",
            json=service_request(f"Patient/{person['id']}", requester=harness.organization),
            headers=FHIR_JSON,
        ).json()
        body = task(
            f"ServiceRequest/{order['id']}",
            f"Patient/{person['id']}",
            requester=harness.organization,
            owner={"reference": partner.organization},
        )
        shared = client.post("/fhir/Task", json=body, headers=FHIR_JSON).json()
        accepted = client.put(
            f"/fhir/Task/{shared['id']}", json={**shared, "status": "accepted"}, headers=FHIR_JSON
        )
        assert accepted.status_code == expected, accepted.text
    [entry] = client.get("/fhir/Task", params={"owner": bayview.organization}).json()["entry"]
    assert entry["resource"]["status"] == "requested"
