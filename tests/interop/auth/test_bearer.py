"""Bearer tokens on the FHIR API, and partner isolation between partners sharing the service."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.auth import tokens
from interop.auth.scopes import parse_scopes
from interop.services.partners import PartnerService
from tests.builders import care_plan, organization, part2_consent, patient, service_request, task
from tests.conftest import RegisteredPartner, approve_part2_form, bearer, register_partner
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "http://testserver/fhir"


def as_partner(client: TestClient, partner: RegisteredPartner) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": bearer(client, partner)}


def unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


@pytest.fixture
def stored_patient(client: TestClient) -> dict[str, Any]:
    created: dict[str, Any] = client.post(
        "/fhir/Patient", json=patient(family="Hidden"), headers=FHIR_JSON
    ).json()
    return created


class TestBearer:
    def test_no_token_is_401_and_discloses_nothing(
        self, anonymous: TestClient, stored_patient: dict[str, Any]
    ) -> None:
        response = anonymous.get(f"/fhir/Patient/{stored_patient['id']}")
        unauthorized(response)
        assert "Hidden" not in response.text
        # RFC 6750 §3.1: no error code for a request that presented no token at all
        assert response.headers["www-authenticate"] == 'Bearer realm="fhir"'

    def test_metadata_and_discovery_need_no_token(self, anonymous: TestClient) -> None:
        assert anonymous.get("/fhir/metadata").json()["resourceType"] == "CapabilityStatement"
        assert "token_endpoint" in anonymous.get("/fhir/.well-known/smart-configuration").json()

    @pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "])
    def test_malformed_credentials_are_401(self, anonymous: TestClient, header: str) -> None:
        response = anonymous.get("/fhir/Patient", headers={"Authorization": header})
        unauthorized(response)
        bearer_given = header.startswith("Bearer")
        assert ('error="invalid_token"' in response.headers["www-authenticate"]) is bearer_given

    def test_expired_access_token_is_401(
        self, anonymous: TestClient, harness: RegisteredPartner
    ) -> None:
        token = _minted(anonymous, harness, issued=datetime.now(UTC) - timedelta(minutes=10))
        unauthorized(anonymous.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}))

    def test_token_signed_with_another_key_is_401(
        self, anonymous: TestClient, harness: RegisteredPartner
    ) -> None:
        token = _minted(anonymous, harness, key=b"x" * 32)
        unauthorized(anonymous.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}))

    def test_token_of_a_disabled_partner_stops_working_at_once(
        self, anonymous: TestClient, stored_patient: dict[str, Any]
    ) -> None:
        partner = register_partner(anonymous, scope="system/*.rs", name="Soon Disabled Clinic")
        headers = {"Authorization": bearer(anonymous, partner, scope="system/*.rs")}
        assert anonymous.get("/fhir/Patient", headers=headers).status_code == 200
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        service.set_enabled(partner.client_id, False)
        response = anonymous.get(f"/fhir/Patient/{stored_patient['id']}", headers=headers)
        unauthorized(response)
        assert "Hidden" not in response.text

    def test_tokens_issued_before_a_key_rotation_stop_working(
        self, anonymous: TestClient, stored_patient: dict[str, Any]
    ) -> None:
        """Probe 9 D1: a rotation follows a stolen key; the thief's live tokens end with it."""
        partner = register_partner(anonymous, scope="system/*.rs", name="Rotating Clinic")
        earlier = _minted(anonymous, partner, issued=datetime.now(UTC) - timedelta(seconds=2))
        headers = {"Authorization": f"Bearer {earlier}"}
        assert anonymous.get("/fhir/Patient", headers=headers).status_code == 200
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        fresh = rsa_key()
        service.rotate_key(partner.client_id, fresh.jwks(), None)
        response = anonymous.get(f"/fhir/Patient/{stored_patient['id']}", headers=headers)
        unauthorized(response)
        assert "keys changed" in response.json()["issue"][0]["diagnostics"]
        rotated = RegisteredPartner(partner.client_id, partner.organization, fresh)
        again = {"Authorization": bearer(anonymous, rotated, scope="system/*.rs")}
        assert anonymous.get("/fhir/Patient", headers=again).status_code == 200

    def test_a_token_issued_in_the_second_of_a_rotation_before_it_stops_working(
        self, anonymous: TestClient, stored_patient: dict[str, Any]
    ) -> None:
        """A thief's token minted moments before the rotation, in the same second, ends with
        it too; the partner's first token after the rotation, in that second, works."""
        partner = register_partner(anonymous, scope="system/*.rs", name="Same Second Clinic")
        while datetime.now(UTC).microsecond > 700_000:  # leave the second room for both
            time.sleep(0.01)
        stolen = {"Authorization": f"Bearer {_minted(anonymous, partner)}"}
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        fresh = rsa_key()
        service.rotate_key(partner.client_id, fresh.jwks(), None)
        unauthorized(anonymous.get(f"/fhir/Patient/{stored_patient['id']}", headers=stolen))
        rotated = RegisteredPartner(partner.client_id, partner.organization, fresh)
        again = {"Authorization": bearer(anonymous, rotated, scope="system/*.rs")}
        read = anonymous.get(f"/fhir/Patient/{stored_patient['id']}", headers=again)
        assert read.json()["id"] == stored_patient["id"]

    def test_missing_scope_is_403_per_interaction(
        self, anonymous: TestClient, stored_patient: dict[str, Any]
    ) -> None:
        partner = register_partner(anonymous, scope="system/Patient.s", name="Search Only Clinic")
        headers = {"Authorization": bearer(anonymous, partner, scope="system/Patient.s")}
        assert anonymous.get("/fhir/Patient", headers=headers).json()["total"] >= 1
        read = anonymous.get(f"/fhir/Patient/{stored_patient['id']}", headers=headers)
        assert read.status_code == 403
        assert "Hidden" not in read.text
        assert read.json()["issue"][0]["code"] == "forbidden"
        challenge = 'Bearer realm="fhir", error="insufficient_scope"'  # RFC 6750 §3.1
        assert read.headers["www-authenticate"] == challenge
        history = anonymous.get("/fhir/_history", headers=headers)
        assert history.status_code == 403
        assert history.headers["www-authenticate"] == challenge

    def test_transaction_entries_are_checked_against_scopes(self, anonymous: TestClient) -> None:
        partner = register_partner(anonymous, scope="system/Patient.c", name="Create Patients Only")
        headers = {
            **FHIR_JSON,
            "Authorization": bearer(anonymous, partner, scope="system/Patient.c"),
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
                {"resource": organization(), "request": {"method": "POST", "url": "Organization"}},
            ],
        }
        response = anonymous.post("/fhir", json=bundle, headers=headers)
        assert response.status_code == 403
        assert response.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]


class TestPartnerIsolation:
    @pytest.fixture
    def two_partners(self, anonymous: TestClient) -> tuple[RegisteredPartner, RegisteredPartner]:
        return (
            register_partner(anonymous, name="Partner A Detox"),
            register_partner(anonymous, name="Partner B Residential"),
        )

    def test_a_partner_writes_only_its_own_referrals(
        self, anonymous: TestClient, two_partners: tuple[RegisteredPartner, RegisteredPartner]
    ) -> None:
        a, b = two_partners
        mine = anonymous.post(
            "/fhir/ServiceRequest",
            json=service_request("Patient/p1", requester=a.organization),
            headers=as_partner(anonymous, a),
        )
        assert mine.status_code == 201
        theirs = anonymous.post(
            "/fhir/ServiceRequest",
            json=service_request("Patient/p1", requester=b.organization),
            headers=as_partner(anonymous, a),
        )
        assert theirs.status_code == 403
        [issue] = theirs.json()["issue"]  # probe 12 #7: it named no element
        assert (issue["code"], issue["expression"]) == ("forbidden", ["ServiceRequest.requester"])
        referral = mine.json()
        hijack = anonymous.put(
            f"/fhir/ServiceRequest/{referral['id']}",
            json={**referral, "status": "revoked"},
            headers=as_partner(anonymous, b),
        )
        assert hijack.status_code == 403
        assert (
            anonymous.delete(
                f"/fhir/ServiceRequest/{referral['id']}", headers=as_partner(anonymous, b)
            ).status_code
            == 403
        )

    def test_a_partner_adds_audit_events_and_never_changes_one(
        self, anonymous: TestClient, two_partners: tuple[RegisteredPartner, RegisteredPartner]
    ) -> None:
        """Probe 12 #10: a partner could update and delete its AuditEvents (R4: audit records
        are not updated)."""
        a, _ = two_partners
        event = {
            "resourceType": "AuditEvent",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
            "recorded": "2026-12-01T10:00:00Z",
            "agent": [{"requestor": True, "who": {"display": "Partner A's app"}}],
            "source": {"observer": {"display": "Partner A's app"}},
        }
        headers = as_partner(anonymous, a)
        made = anonymous.post("/fhir/AuditEvent", json=event, headers=headers)
        assert made.status_code == 201, made.text
        stored = made.json()
        changed = anonymous.put(
            f"/fhir/AuditEvent/{stored['id']}",
            json={**stored, "outcome": "8"},
            headers=headers,
        )
        assert changed.status_code == 403, changed.text
        assert "kept as it was written" in changed.json()["issue"][0]["diagnostics"]
        gone = anonymous.delete(f"/fhir/AuditEvent/{stored['id']}", headers=headers)
        assert gone.status_code == 403, gone.text
        read = anonymous.get(f"/fhir/AuditEvent/{stored['id']}", headers=headers)
        assert read.json()["meta"]["versionId"] == "1"
        assert "outcome" not in read.json()

    def test_task_owner_may_update_and_a_stranger_may_not(
        self, anonymous: TestClient, two_partners: tuple[RegisteredPartner, RegisteredPartner]
    ) -> None:
        a, b = two_partners
        stranger = register_partner(anonymous, name="Partner C Stranger")
        created = anonymous.post(
            "/fhir/Task",
            json=task(
                "ServiceRequest/r1",
                "Patient/p1",
                requester=a.organization,
                owner={"reference": b.organization},
            ),
            headers=as_partner(anonymous, a),
        ).json()
        accepted = {**created, "status": "accepted"}
        url = f"/fhir/Task/{created['id']}"
        assert (
            anonymous.put(url, json=accepted, headers=as_partner(anonymous, b)).status_code == 200
        )
        assert (
            anonymous.put(url, json=accepted, headers=as_partner(anonymous, stranger)).status_code
            == 403
        )
        steal = {
            **accepted,
            "owner": {"reference": stranger.organization},
            "requester": {"reference": stranger.organization},
        }
        assert (
            anonymous.put(url, json=steal, headers=as_partner(anonymous, stranger)).status_code
            == 403
        )

    def test_registrations_are_not_writable_by_partners(
        self, anonymous: TestClient, two_partners: tuple[RegisteredPartner, RegisteredPartner]
    ) -> None:
        a, b = two_partners
        b_org_id = b.organization.split("/")[1]
        registration = anonymous.get(
            f"/fhir/Organization/{b_org_id}", headers=as_partner(anonymous, a)
        ).json()
        renamed = {**registration, "name": "Taken Over"}
        response = anonymous.put(
            f"/fhir/Organization/{b_org_id}", json=renamed, headers=as_partner(anonymous, a)
        )
        assert response.status_code == 403
        assert (
            anonymous.delete(
                f"/fhir/Organization/{b_org_id}", headers=as_partner(anonymous, a)
            ).status_code
            == 403
        )
        assert (
            anonymous.put(
                f"/fhir/Organization/{b_org_id}", json=renamed, headers=as_partner(anonymous, b)
            ).status_code
            == 403
        )

    def test_a_recipient_does_not_rewrite_what_the_program_recorded(
        self, client: TestClient, anonymous: TestClient
    ) -> None:
        """A partner that reads a program's care plan and a patient's consent may not change
        or delete them (PART2.md C6: a revocation is the patient's act, not a recipient's)."""
        reader = register_partner(anonymous, name="Eastside Clinic")
        headers = as_partner(anonymous, reader)
        person = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()
        subject = f"Patient/{person['id']}"
        consent = part2_consent(subject, "Organization/harbor", reader.organization)
        for kind, resource in (("CarePlan", care_plan(subject)), ("Consent", consent)):
            stored = client.post(f"/fhir/{kind}", json=resource, headers=FHIR_JSON).json()
            url = f"/fhir/{kind}/{stored['id']}"
            seen = anonymous.get(url, headers=headers).json()
            changed = anonymous.put(url, json={**seen, "status": "inactive"}, headers=headers)
            assert changed.status_code == 403, changed.text
            assert "only records it wrote" in changed.json()["issue"][0]["diagnostics"]
            assert anonymous.delete(url, headers=headers).status_code == 403
            assert client.get(url).json()["meta"]["versionId"] == "1"
        own = anonymous.post("/fhir/CarePlan", json=care_plan(subject), headers=headers).json()
        revised = {**own, "status": "completed"}
        updated = anonymous.put(f"/fhir/CarePlan/{own['id']}", json=revised, headers=headers)
        assert updated.status_code == 200
        assert updated.json()["status"] == "completed"

    def test_a_partner_records_consents_only_for_patients_it_may_see(
        self, anonymous: TestClient
    ) -> None:
        """A refusal is honoured whoever records it (C8): a partner that does not serve the
        patient must not be able to record one, and a hidden patient answers as an unknown."""
        program = register_partner(
            anonymous, name="Harbor Detox EHR", first_party=True, part2_program=True
        )
        stranger = register_partner(anonymous, name="Westside Program", part2_program=True)
        recipient = register_partner(anonymous, name="Eastside Clinic")
        ehr = as_partner(anonymous, program)
        person = anonymous.post("/fhir/Patient", json=patient(), headers=ehr).json()
        subject = f"Patient/{person['id']}"
        consent = part2_consent(subject, program.organization, recipient.organization)
        named = {**consent["provision"]["provision"][0], "type": "deny"}
        refusal = {**consent, "provision": {**consent["provision"], "provision": [named]}}
        headers = as_partner(anonymous, stranger)
        assert anonymous.get(f"/fhir/{subject}", headers=headers).status_code == 404
        hidden = anonymous.post("/fhir/Consent", json=refusal, headers=headers)
        unknown = anonymous.post(
            "/fhir/Consent",
            json={**refusal, "patient": {"reference": "Patient/nobody-here"}},
            headers=headers,
        )
        assert hidden.status_code == unknown.status_code == 422
        assert hidden.json()["issue"] == unknown.json()["issue"]
        assert "Consent.patient names no such Patient" in hidden.json()["issue"][0]["diagnostics"]
        assert hidden.json()["issue"][0]["expression"] == ["Consent.patient"]
        by_identifier = {**refusal, "patient": {"identifier": person["identifier"][0]}}
        assert (
            anonymous.post("/fhir/Consent", json=by_identifier, headers=headers).status_code == 422
        )
        on_file = anonymous.get("/fhir/Consent", params={"patient": subject}, headers=ehr).json()
        assert on_file["total"] == 0
        own_client = anonymous.post(
            "/fhir/Patient", json=patient(family="Own"), headers=headers
        ).json()
        mine = {**refusal, "patient": {"reference": f"Patient/{own_client['id']}"}}
        made = anonymous.post("/fhir/Consent", json=mine, headers=headers)
        assert made.status_code == 201, made.text
        # By identifier alone, only Patients the partner holds count: one of its own carrying
        # the hidden client's MRN is answered as one carrying an MRN nobody else has (no MRN
        # oracle), and its refusal reaches no one else's client (a permit stays relied on).
        approve_part2_form(anonymous)
        assert anonymous.post("/fhir/Consent", json=consent, headers=ehr).status_code == 201
        reader = as_partner(anonymous, recipient)
        assert anonymous.get(f"/fhir/{subject}", headers=reader).status_code == 200
        for mrn in ("MRN-1", "MRN-NOBODY-ELSE"):
            anonymous.post("/fhir/Patient", json=patient(family="Probe", mrn=mrn), headers=headers)
            by_mrn = {
                **refusal,
                "patient": {"identifier": {**person["identifier"][0], "value": mrn}},
            }
            assert anonymous.post("/fhir/Consent", json=by_mrn, headers=headers).status_code == 201
        assert anonymous.get(f"/fhir/{subject}", headers=reader).status_code == 200


def _minted(
    client: TestClient,
    partner: RegisteredPartner,
    *,
    issued: datetime | None = None,
    key: bytes | None = None,
) -> str:
    token, _claims = tokens.issue(
        client_id=partner.client_id,
        organization=partner.organization,
        scopes=parse_scopes("system/*.rs"),
        purposes=("TREAT",),
        emergency=None,
        audience=BASE,
        key=key or client.app.state.settings.signing_key(),  # type: ignore[attr-defined]
        now=issued or datetime.now(UTC),
        lifetime=timedelta(minutes=5),
    )
    return token


class _PathValues(dict[str, str]):
    """Values for a route's path parameters: "x" for any not given (ids of every kind)."""

    def __missing__(self, key: str) -> str:
        return "x"


def test_every_fhir_route_but_metadata_demands_a_token(anonymous: TestClient) -> None:
    """Walk the app's published paths, so that a route added later cannot slip past."""
    open_paths = {"/fhir/metadata", "/fhir/.well-known/smart-configuration"}
    checked = 0
    paths = anonymous.app.openapi()["paths"]  # type: ignore[attr-defined]
    for template, operations in paths.items():
        if not template.startswith("/fhir") or template in open_paths:
            continue
        path = template.format_map(_PathValues(resource_type="Patient", version_id="1"))
        for method in operations:
            response = anonymous.request(method.upper(), path, content=b"{}", headers=FHIR_JSON)
            assert response.status_code == 401, (method, template)
            checked += 1
    assert checked >= 12


def test_includes_of_types_outside_the_scopes_are_left_out(
    anonymous: TestClient, client: TestClient
) -> None:
    person = client.post("/fhir/Patient", json=patient(family="Scoped"), headers=FHIR_JSON).json()
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{person['id']}"},
    }
    client.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON)
    partner = register_partner(anonymous, scope="system/CarePlan.rs", name="Care Plans Only")
    headers = {"Authorization": bearer(anonymous, partner, scope="system/CarePlan.rs")}
    found = anonymous.get(
        "/fhir/CarePlan", params={"_include": "CarePlan:subject"}, headers=headers
    ).json()
    assert [e["resource"]["resourceType"] for e in found["entry"]] == ["CarePlan"]
    assert "Scoped" not in str(found)
