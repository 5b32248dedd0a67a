"""The sync outbox, end to end: partner channels, what each Task write queues for whom, that a
notice lives and dies with its change (ARCHITECTURE.md rule 5), and the deliveries staff see.

Every test drives the app through HTTP (or InboundService for HL7 v2) over a real database of
each kind, and reads the outbox table itself; the event table under test is the one in the
docstring of interop/services/outbox.py. Synthetic people only.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import Engine, select
from sqlmodel import col

from interop.services.demo import story
from interop.services.inbound import InboundService
from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, PartnerService
from interop.services.staff import Role, StaffService
from interop.settings import Settings
from interop.store import outbox
from interop.store.database import make_engine, unit_of_work
from interop.store.tables import OutboxRow
from mappings.model import Handoff
from tests.builders import patient, service_request, task
from tests.interop.auth.test_staff import sign_in
from tests.keys import ClientKey, assertion, ec_key, token_form

FHIR_JSON = {"Content-Type": "application/fhir+json"}
HL7V2_CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpora" / "hl7v2"
PARTNER_SCOPE = "system/Task.cru system/ServiceRequest.rs"
FAMILY, GIVEN = "Quillfeather", "Marisol"  # the synthetic client every referral is about

FHIR = ChannelConfig(ChannelKind.FHIR, "https://fhir.lakeside.example.org/r4")
CCDA_HTTP = ChannelConfig(ChannelKind.CCDA_HTTP, "https://docs.bayview.example.org/inbox")
CCDA_DIRECTORY = ChannelConfig(ChannelKind.CCDA_DIRECTORY, "/var/spool/interop/bayview")
HL7V2 = ChannelConfig(ChannelKind.HL7V2_MLLP, "mllp.riverside.example.org:2575")
CHANNELS = {"fhir": FHIR, "ccda-http": CCDA_HTTP, "ccda-directory": CCDA_DIRECTORY, "hl7v2": HL7V2}

Row = tuple[str, str, str, int, str]
"""An outbox row as (partner client_id, event, resource, version, transport state)."""

Staff = tuple[TestClient, dict[str, str]]
"""A signed-in browser and the CSRF header its unsafe requests carry."""


# --- helpers -------------------------------------------------------------------------------
# (tests/conftest.py's register_partner and bearer are not imported: that module does not
# type-check under `mypy --strict`, and importing it would drag its errors in.)


@dataclass(frozen=True)
class Partner:
    client_id: str
    organization: str  # "Organization/{id}"
    key: ClientKey


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.partners._engine  # type: ignore[attr-defined]
    return engine


def outbox_rows(client: TestClient) -> list[Row]:
    """Every outbox row, oldest first, read straight from the table."""
    with unit_of_work(engine_of(client), writes=False) as session:
        rows = session.execute(select(OutboxRow).order_by(col(OutboxRow.pk))).scalars()
        return [
            (
                row.partner_client_id,
                row.event,
                f"{row.resource_type}/{row.resource_id}",
                row.version_id,
                row.state,
            )
            for row in rows
        ]


def outbox_pks(client: TestClient) -> list[int]:
    """The ids of the outbox rows, oldest first (what GET /admin/deliveries calls `id`)."""
    with unit_of_work(engine_of(client), writes=False) as session:
        rows = session.execute(select(OutboxRow).order_by(col(OutboxRow.pk))).scalars()
        return [row.pk for row in rows if row.pk is not None]


def channel_partner(client: TestClient, name: str, channel: ChannelConfig | None) -> Partner:
    """A partner registered through the service with this channel (None: it polls)."""
    key = ec_key()
    service: PartnerService = client.app.state.partners  # type: ignore[attr-defined]
    partner = service.register(
        NewPartner(
            name=name,
            identifiers=[("urn:oid:2.16.840.1.113883.3.9999.10", name)],
            scopes=PARTNER_SCOPE,
            jwks=key.jwks(),
            channel=channel,
        )
    )
    return Partner(partner.client_id, partner.organization, key)


def as_partner(anonymous: TestClient, partner: Partner) -> TestClient:
    """The app as this partner's backend client, with a token from the real token endpoint."""
    signed = assertion(partner.key, partner.client_id, "http://testserver/auth/token")
    response = anonymous.post("/auth/token", data=token_form(signed, PARTNER_SCOPE))
    assert response.status_code == 200, response.text
    session = TestClient(anonymous.app)
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def staff(anonymous: TestClient, username: str, role: Role) -> Staff:
    """A person of this role signed in through the login form, in a browser of their own."""
    service: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
    service.add(username, "correct horse battery staple", role, (), datetime.now(UTC))
    browser = TestClient(anonymous.app)
    response = sign_in(browser, username)
    assert response.status_code == 200, response.text
    return browser, {"X-CSRF-Token": response.json()["csrf_token"]}


def create(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def client_and_order(client: TestClient, requester: str) -> tuple[str, str]:
    """A synthetic patient and the referral order for them: ("Patient/..", "ServiceRequest/..")."""
    person = create(client, patient(family=FAMILY, given=GIVEN, mrn="MRN-SYNC-1"))
    order = create(client, service_request(f"Patient/{person['id']}", requester=requester))
    return f"Patient/{person['id']}", f"ServiceRequest/{order['id']}"


def referral_task(
    client: TestClient, *, requester: str, owner: str | None, status: str = "requested"
) -> dict[str, Any]:
    """A referral's fulfillment Task created through the FHIR API (by `client`)."""
    person, order = client_and_order(client, requester)
    owner_ref = {"reference": owner} if owner is not None else None
    return create(client, task(order, person, status=status, requester=requester, owner=owner_ref))


def change_task(client: TestClient, current: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """PUT the Task with these elements changed; the stored version comes back."""
    body = {key: value for key, value in current.items() if key != "meta"} | changes
    response = client.put(f"/fhir/Task/{current['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    updated: dict[str, Any] = response.json()
    return updated


def note(text: str) -> list[dict[str, str]]:
    return [{"text": text}]


def problem(response: Any, status: int) -> dict[str, Any]:
    """The RFC 9457 problem detail of a refused admin request."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def partner_body(name: str, channel: dict[str, Any] | None) -> dict[str, Any]:
    """A registration as POSTed to /admin/partners."""
    body: dict[str, Any] = {
        "name": name,
        "identifiers": [f"urn:oid:2.16.840.1.113883.3.9999.10|{name}"],
        "scope": PARTNER_SCOPE,
        "jwks": ec_key().jwks(),
    }
    if channel is not None:
        body["channel"] = channel
    return body


def listed_channel(browser: TestClient, client_id: str) -> dict[str, Any] | None:
    """The channel GET /admin/partners shows for this partner."""
    [listed] = [p for p in browser.get("/admin/partners").json() if p["client_id"] == client_id]
    channel: dict[str, Any] | None = listed["channel"]
    return channel


def endpoints_of(client: TestClient, organization: str) -> list[dict[str, Any]]:
    bundle = client.get("/fhir/Endpoint", params={"organization": organization}).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


def fail_delivery(client: TestClient, pk: int) -> None:
    """What the dispatcher does when a partner refuses a delivery, done in the store."""
    with unit_of_work(engine_of(client)) as session:
        row = outbox.get(session, pk, lock=True)
        assert row is not None
        row.state = outbox.TransportState.FAILED
        row.attempts = 3
        row.error = "partner answered 422: unknown placer identifier system"
        row.finished_at = datetime.now(UTC)
        session.add(row)


@pytest.fixture
def admin(anonymous: TestClient) -> Staff:
    return staff(anonymous, "ada.admin", Role.ADMINISTRATOR)


@pytest.fixture
def officer(anonymous: TestClient) -> Staff:
    return staff(anonymous, "cora.compliance", Role.COMPLIANCE_OFFICER)


# --- 1. channels in registration -----------------------------------------------------------

CHANNEL_BODIES: dict[str, dict[str, str]] = {
    "fhir": {
        "kind": "fhir",
        "address": "https://fhir.lakeside.example.org/r4",
        "client_id": "recovery-interop",
        "token_url": "https://auth.lakeside.example.org/token",
    },
    "ccda-http": {"kind": "ccda-http", "address": "https://docs.bayview.example.org/inbox"},
    "ccda-directory": {"kind": "ccda-directory", "address": "/var/spool/interop/bayview"},
    "hl7v2-mllp": {"kind": "hl7v2-mllp", "address": "mllp.riverside.example.org:2575"},
}
"""The four channel kinds as registrations carry them (ChannelIn)."""


class TestChannelRegistration:
    def test_each_channel_kind_is_stored_and_listed(self, admin: Staff) -> None:
        """A registration's channel is kept as given and shown by GET /admin/partners."""
        browser, csrf = admin
        registered = {}
        for kind, channel in CHANNEL_BODIES.items():
            response = browser.post(
                "/admin/partners", json=partner_body(f"{kind} program", channel), headers=csrf
            )
            assert response.status_code == 201, response.text
            assert response.json()["channel"] == {"client_id": None, "token_url": None, **channel}
            registered[response.json()["client_id"]] = kind
        listed = {p["client_id"]: p["channel"] for p in browser.get("/admin/partners").json()}
        assert {client_id: listed[client_id]["kind"] for client_id in registered} == registered
        fhir = next(c for c in listed.values() if c is not None and c["kind"] == "fhir")
        assert fhir["token_url"] == "https://auth.lakeside.example.org/token"

    def test_a_partner_without_a_channel_polls(self, admin: Staff) -> None:
        """No channel in the registration means none is stored: the partner polls our API."""
        browser, csrf = admin
        response = browser.post("/admin/partners", json=partner_body("Poller", None), headers=csrf)
        assert response.status_code == 201
        assert response.json()["channel"] is None
        assert [p["channel"] for p in browser.get("/admin/partners").json()] == [None]

    def test_plain_http_to_loopback_is_allowed(self, admin: Staff) -> None:
        """http is accepted only to this machine's loopback (a tunnel, or tests)."""
        browser, csrf = admin
        channel = {"kind": "ccda-http", "address": "http://127.0.0.1:9090/inbox"}
        response = browser.post(
            "/admin/partners", json=partner_body("Tunnel", channel), headers=csrf
        )
        assert response.status_code == 201, response.text
        assert response.json()["channel"]["address"] == "http://127.0.0.1:9090/inbox"

    @pytest.mark.parametrize(
        ("channel", "reason"),
        [
            (
                {"kind": "fhir", "address": "http://fhir.lakeside.example.org/r4"},
                "a partner's channel URL must use https",
            ),
            (
                {"kind": "ccda-http", "address": "ftp://docs.bayview.example.org/inbox"},
                "a partner's channel URL must use https",
            ),
            (
                {"kind": "fhir", "address": "http://127.0.0.1.evil.example/fhir"},
                "a partner's channel URL must use https",
            ),
            (
                {"kind": "fhir", "address": "http://127.0.0.1@evil.example/fhir"},
                "a partner's channel URL must name a host, without credentials",
            ),
            (
                {"kind": "hl7v2-mllp", "address": "mllp://h.example.org:2575"},
                "an MLLP address is host:port",
            ),
            (
                {"kind": "ccda-directory", "address": "spool/bayview"},
                "a drop directory must be an absolute path",
            ),
            (
                {"kind": "hl7v2-mllp", "address": "mllp.riverside.example.org"},
                "an MLLP address is host:port, not 'mllp.riverside.example.org'",
            ),
            (
                {"kind": "hl7v2-mllp", "address": "mllp.riverside.example.org:70000"},
                "an MLLP address is host:port",
            ),
            (
                {
                    "kind": "fhir",
                    "address": "https://fhir.lakeside.example.org/r4",
                    "token_url": "https://auth.lakeside.example.org/token",
                },
                "a token URL needs the client_id the partner gave us",
            ),
            (
                {
                    "kind": "fhir",
                    "address": "https://fhir.lakeside.example.org/r4",
                    "client_id": "recovery-interop",
                    "token_url": "http://auth.lakeside.example.org/token",
                },
                "a partner's token URL must use https",
            ),
        ],
        ids=[
            "http-not-https",
            "other-scheme",
            "loopback-lookalike-host",
            "loopback-as-userinfo",
            "mllp-address-with-a-scheme",
            "relative-directory",
            "mllp-without-port",
            "mllp-port-out-of-range",
            "token-url-without-client-id",
            "token-url-in-the-clear",
        ],
    )
    def test_an_unworkable_channel_is_refused_with_its_reason(
        self, admin: Staff, channel: dict[str, Any], reason: str
    ) -> None:
        """A channel that could not work, or would send data in the clear, is a 400 problem
        detail naming why, and nothing is registered."""
        browser, csrf = admin
        response = browser.post("/admin/partners", json=partner_body("Bad", channel), headers=csrf)
        assert reason in problem(response, 400)["detail"]
        assert browser.get("/admin/partners").json() == []

    def test_an_unknown_channel_kind_is_refused(self, admin: Staff) -> None:
        """Only the four channel kinds exist; anything else fails validation."""
        browser, csrf = admin
        channel = {"kind": "smtp", "address": "intake@bayview.example.org"}
        response = browser.post("/admin/partners", json=partner_body("Mail", channel), headers=csrf)
        assert "kind" in problem(response, 422)["detail"]
        assert browser.get("/admin/partners").json() == []


class TestEndpoints:
    def register(self, admin: Staff, name: str, channel: dict[str, Any]) -> dict[str, Any]:
        browser, csrf = admin
        response = browser.post("/admin/partners", json=partner_body(name, channel), headers=csrf)
        assert response.status_code == 201, response.text
        partner: dict[str, Any] = response.json()
        return partner

    def test_a_fhir_channel_publishes_a_fhir_rest_endpoint(
        self, admin: Staff, client: TestClient
    ) -> None:
        """The Organization names an Endpoint of connectionType hl7-fhir-rest at the base URL."""
        partner = self.register(admin, "Lakeside", CHANNEL_BODIES["fhir"])
        organization = client.get(f"/fhir/{partner['organization']}").json()
        [endpoint] = endpoints_of(client, partner["organization"])
        assert organization["endpoint"] == [{"reference": f"Endpoint/{endpoint['id']}"}]
        assert endpoint["connectionType"]["code"] == "hl7-fhir-rest"
        assert endpoint["address"] == "https://fhir.lakeside.example.org/r4"
        assert endpoint["status"] == "active"

    def test_an_mllp_channel_publishes_an_mllp_endpoint(
        self, admin: Staff, client: TestClient
    ) -> None:
        """An HL7 v2 channel is published as an hl7v2-mllp Endpoint at mllp://host:port."""
        partner = self.register(admin, "Riverside", CHANNEL_BODIES["hl7v2-mllp"])
        [endpoint] = endpoints_of(client, partner["organization"])
        assert endpoint["connectionType"]["code"] == "hl7v2-mllp"
        assert endpoint["address"] == "mllp://mllp.riverside.example.org:2575"
        organization = client.get(f"/fhir/{partner['organization']}").json()
        assert organization["endpoint"] == [{"reference": f"Endpoint/{endpoint['id']}"}]

    @pytest.mark.parametrize("kind", ["ccda-http", "ccda-directory"])
    def test_document_channels_publish_no_endpoint(
        self, admin: Staff, client: TestClient, kind: str
    ) -> None:
        """Documents posted or dropped for a partner are not an addressable Endpoint."""
        partner = self.register(admin, "Bayview", CHANNEL_BODIES[kind])
        organization = client.get(f"/fhir/{partner['organization']}").json()
        assert organization["name"] == "Bayview"
        assert "endpoint" not in organization
        assert client.get("/fhir/Endpoint", params={"_summary": "count"}).json()["total"] == 0

    def test_changing_the_channel_moves_the_organizations_endpoint(
        self, admin: Staff, client: TestClient
    ) -> None:
        """PUT .../channel replaces the channel; the Organization's endpoint follows it, and a
        null body leaves the partner polling with no endpoint at all."""
        browser, csrf = admin
        partner = self.register(admin, "Lakeside", CHANNEL_BODIES["fhir"])
        url = f"/admin/partners/{partner['client_id']}/channel"

        moved = browser.put(url, json=CHANNEL_BODIES["hl7v2-mllp"], headers=csrf)
        assert moved.status_code == 200, moved.text
        assert moved.json()["channel"]["kind"] == "hl7v2-mllp"
        organization = client.get(f"/fhir/{partner['organization']}").json()
        [reference] = organization["endpoint"]
        endpoint = client.get(f"/fhir/{reference['reference']}").json()
        assert endpoint["connectionType"]["code"] == "hl7v2-mllp"
        assert endpoint["address"] == "mllp://mllp.riverside.example.org:2575"
        endpoints = client.get("/fhir/Endpoint", params={"organization": partner["organization"]})
        statuses = sorted(
            (entry["resource"]["connectionType"]["code"], entry["resource"]["status"])
            for entry in endpoints.json()["entry"]
        )
        assert statuses == [("hl7-fhir-rest", "off"), ("hl7v2-mllp", "active")]

        polling = browser.put(
            url, content=b"null", headers={**csrf, "Content-Type": "application/json"}
        )
        assert polling.status_code == 200, polling.text
        assert polling.json()["channel"] is None
        assert "endpoint" not in client.get(f"/fhir/{partner['organization']}").json()
        assert listed_channel(browser, partner["client_id"]) is None

    def test_an_invalid_channel_change_is_refused_and_changes_nothing(
        self, admin: Staff, client: TestClient
    ) -> None:
        """A refused change is a problem detail; the old channel and Endpoint stay."""
        browser, csrf = admin
        partner = self.register(admin, "Lakeside", CHANNEL_BODIES["fhir"])
        url = f"/admin/partners/{partner['client_id']}/channel"
        refused = browser.put(url, json={"kind": "ccda-directory", "address": "x"}, headers=csrf)
        assert "absolute path" in problem(refused, 400)["detail"]
        assert listed_channel(browser, partner["client_id"]) == {**CHANNEL_BODIES["fhir"]}
        assert len(endpoints_of(client, partner["organization"])) == 1

    def test_changing_an_unknown_partners_channel_is_not_found(self, admin: Staff) -> None:
        """An unknown client_id is a 404 problem detail naming it."""
        browser, csrf = admin
        response = browser.put(
            "/admin/partners/no-such-client/channel",
            json=CHANNEL_BODIES["fhir"],
            headers=csrf,
        )
        assert "no-such-client" in problem(response, 404)["detail"]


# --- 2. the enqueue table, row by row ------------------------------------------------------


class TestOwnerPartner:
    def test_a_fhir_owner_is_told_of_every_new_version(self, client: TestClient) -> None:
        """fhir owner: the created Task queues exactly one task-changed row (queued, v1), and
        every later version, status move or not, another."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        shared = referral_task(client, requester="Organization/harbor", owner=owner.organization)
        assert outbox_rows(client) == [
            (owner.client_id, "task-changed", f"Task/{shared['id']}", 1, "queued")
        ]
        change_task(client, shared, note=note("Intake call booked"))
        assert outbox_rows(client)[1:] == [
            (owner.client_id, "task-changed", f"Task/{shared['id']}", 2, "queued")
        ]

    def test_an_absolute_reference_to_a_partner_counts_as_the_partner(
        self, client: TestClient
    ) -> None:
        """Partners write references across servers absolute (REFERRALS.md), ours included."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        absolute = f"http://testserver/fhir/{owner.organization}"
        shared = referral_task(client, requester="Organization/harbor", owner=absolute)
        assert outbox_rows(client) == [
            (owner.client_id, "task-changed", f"Task/{shared['id']}", 1, "queued")
        ]

    @pytest.mark.parametrize("channel", [CCDA_HTTP, CCDA_DIRECTORY], ids=lambda c: c.kind)
    def test_a_document_owner_gets_the_referral_once(
        self, client: TestClient, channel: ChannelConfig
    ) -> None:
        """ccda owner: referral-sent when the Task enters requested, nothing for later
        versions (a note, a status change: C-CDA carries no status)."""
        owner = channel_partner(client, "Bayview IOP", channel)
        shared = referral_task(client, requester="Organization/harbor", owner=owner.organization)
        expected = [(owner.client_id, "referral-sent", f"Task/{shared['id']}", 1, "queued")]
        assert outbox_rows(client) == expected
        noted = change_task(client, shared, note=note("Client prefers mornings"))
        change_task(client, noted, status="accepted")
        assert outbox_rows(client) == expected

    def test_a_document_owner_gets_the_referral_when_a_draft_is_requested(
        self, client: TestClient
    ) -> None:
        """A draft is not sent; the version that moves it to requested is."""
        owner = channel_partner(client, "Bayview IOP", CCDA_DIRECTORY)
        draft = referral_task(
            client, requester="Organization/harbor", owner=owner.organization, status="draft"
        )
        assert outbox_rows(client) == []
        change_task(client, draft, status="requested")
        assert outbox_rows(client) == [
            (owner.client_id, "referral-sent", f"Task/{draft['id']}", 2, "queued")
        ]

    def test_an_hl7v2_owner_gets_the_referral_and_its_cancellation(
        self, client: TestClient
    ) -> None:
        """hl7v2 owner: referral-sent (REF^I12) on requested, nothing for a note,
        referral-cancelled (REF^I14) on cancelled."""
        owner = channel_partner(client, "Riverside Residential", HL7V2)
        shared = referral_task(client, requester="Organization/harbor", owner=owner.organization)
        noted = change_task(client, shared, note=note("Awaiting bed"))
        change_task(
            client, noted, status="cancelled", statusReason={"text": "client chose another program"}
        )
        resource = f"Task/{shared['id']}"
        assert outbox_rows(client) == [
            (owner.client_id, "referral-sent", resource, 1, "queued"),
            (owner.client_id, "referral-cancelled", resource, 3, "queued"),
        ]


class TestRequesterPartner:
    @pytest.mark.parametrize(
        ("channel", "event"),
        [
            (FHIR, "task-changed"),
            (HL7V2, "status-returned"),
            (CCDA_HTTP, None),
            (CCDA_DIRECTORY, None),
        ],
        ids=["fhir", "hl7v2", "ccda-http", "ccda-directory"],
    )
    def test_a_requester_hears_of_status_changes_its_channel_can_carry(
        self, client: TestClient, channel: ChannelConfig, event: str | None
    ) -> None:
        """requester: nothing for the Task's creation nor for a note; on a status change
        task-changed (fhir), status-returned (hl7v2) or nothing (ccda)."""
        requester = channel_partner(client, "Harbor Detox", channel)
        shared = referral_task(client, requester=requester.organization, owner=None)
        noted = change_task(client, shared, note=note("Records attached"))
        assert outbox_rows(client) == []
        change_task(client, noted, status="accepted")
        expected = (
            []
            if event is None
            else [(requester.client_id, event, f"Task/{shared['id']}", 3, "queued")]
        )
        assert outbox_rows(client) == expected


class TestWhoIsNeverTold:
    def test_a_fhir_requester_is_not_pushed_its_own_copy_back(self, client: TestClient) -> None:
        """A copy another instance pushed here carries its Task's URL as identifier; that
        instance reads our moves back (polls, Subscriptions). Pushed back, the copy would land
        there as a second referral (issue 12, found by tests/e2e/test_three_instances.py)."""
        channel = ChannelConfig(ChannelKind.FHIR, "https://fhir.harbor.example.org/r4")
        requester = channel_partner(client, "Harbor Detox", channel)
        person, order = client_and_order(client, requester.organization)
        theirs = {"system": "urn:ietf:rfc:3986", "value": f"{channel.address}/Task/t-1"}
        pushed = task(order, person, requester=requester.organization, owner=None)
        copy = create(client, {**pushed, "identifier": [theirs]})
        change_task(client, copy, status="accepted")
        assert outbox_rows(client) == []

    def test_a_polling_partner_never_gets_rows(self, client: TestClient) -> None:
        """A partner without a channel polls our API: no row as owner or requester."""
        poller = channel_partner(client, "Northside Primary Care", None)
        owned = referral_task(client, requester="Organization/harbor", owner=poller.organization)
        requested = referral_task(client, requester=poller.organization, owner="Organization/x")
        change_task(client, owned, status="accepted")
        change_task(client, requested, status="rejected", statusReason={"text": "out of area"})
        assert outbox_rows(client) == []

    def test_what_a_disabled_partner_must_hear_waits_until_it_is_enabled_again(
        self, client: TestClient, admin: Staff, settings: Settings
    ) -> None:
        """Probe 9 L4: disabled through the admin API, a channel partner was told nothing of
        the changes made meanwhile, even once enabled again. They now wait in the outbox,
        passed over by the dispatcher, and go once it is enabled."""
        browser, csrf = admin
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        disabled = browser.post(f"/admin/partners/{owner.client_id}/disable", headers=csrf)
        assert disabled.json()["enabled"] is False
        shared = referral_task(client, requester="Organization/harbor", owner=owner.organization)
        waiting = [(owner.client_id, "task-changed", f"Task/{shared['id']}", 1, "queued")]
        assert outbox_rows(client) == waiting
        engine = make_engine(settings.database_url)
        far = datetime.now(UTC) + timedelta(days=1)
        with unit_of_work(engine) as session:
            assert outbox.claim(session, far, timedelta(minutes=1), 10) == []
        browser.post(f"/admin/partners/{owner.client_id}/enable", headers=csrf)
        with unit_of_work(engine) as session:
            claimed = outbox.claim(session, far, timedelta(minutes=1), 10)
            assert [(row.resource_id, row.version_id) for row in claimed] == [(shared["id"], 1)]
        engine.dispose()

    def test_a_partner_is_not_told_of_its_own_change(
        self, client: TestClient, anonymous: TestClient
    ) -> None:
        """Writing with its own token (its write guard names it), a partner is not told of
        its change; the other party is, as its channel can carry it."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        requester = channel_partner(client, "Riverside Residential", HL7V2)
        shared = referral_task(client, requester=requester.organization, owner=owner.organization)
        resource = f"Task/{shared['id']}"
        assert outbox_rows(client) == [(owner.client_id, "task-changed", resource, 1, "queued")]

        accepted = change_task(as_partner(anonymous, owner), shared, status="accepted")
        assert outbox_rows(client)[1:] == [
            (requester.client_id, "status-returned", resource, 2, "queued")
        ]

        change_task(
            as_partner(anonymous, requester),
            accepted,
            status="cancelled",
            statusReason={"text": "client moved out of area"},
        )
        assert outbox_rows(client)[2:] == [(owner.client_id, "task-changed", resource, 3, "queued")]

    def test_other_resources_queue_nothing(self, client: TestClient) -> None:
        """Only Task writes are notices: the order and the patient are carried with them."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        client_and_order(client, owner.organization)
        assert outbox_rows(client) == []


# --- 3. the notice lives and dies with its change ------------------------------------------


class TestSameTransaction:
    def transaction(
        self, person: str, order: str, owner: str, patient_version: str
    ) -> dict[str, Any]:
        """POST the Task, then PUT the patient under If-Match (processed after POSTs)."""
        patient_id = person.split("/")[1]
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": task(
                        order, person, requester="Organization/harbor", owner={"reference": owner}
                    ),
                    "request": {"method": "POST", "url": "Task"},
                },
                {
                    "resource": {
                        **patient(family=FAMILY, given=GIVEN, mrn="MRN-SYNC-1"),
                        "id": patient_id,
                    },
                    "request": {"method": "PUT", "url": person, "ifMatch": patient_version},
                },
            ],
        }

    def test_a_committed_transaction_queues_its_row(self, client: TestClient) -> None:
        """The control: the same Bundle, with the right If-Match, stores the Task and its row."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        person, order = client_and_order(client, "Organization/harbor")
        bundle = self.transaction(person, order, owner.organization, 'W/"1"')
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 200, response.text
        location = response.json()["entry"][0]["response"]["location"]
        task_id = location.split("/")[1]
        assert outbox_rows(client) == [
            (owner.client_id, "task-changed", f"Task/{task_id}", 1, "queued")
        ]

    def test_a_failing_if_match_later_in_the_bundle_leaves_no_task_and_no_row(
        self, client: TestClient
    ) -> None:
        """The Task is written, then a later entry fails (412): both roll back together."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        person, order = client_and_order(client, "Organization/harbor")
        bundle = self.transaction(person, order, owner.organization, 'W/"7"')
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 412, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
        assert client.get("/fhir/Task", params={"_summary": "count"}).json()["total"] == 0
        assert outbox_rows(client) == []

    def test_an_invalid_resource_later_in_the_bundle_leaves_no_task_and_no_row(
        self, client: TestClient
    ) -> None:
        """An entry that fails validation after the Task was written undoes the Task's row."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        person, order = client_and_order(client, "Organization/harbor")
        bundle = self.transaction(person, order, owner.organization, 'W/"1"')
        bundle["entry"].append(
            {
                "resource": patient(family=FAMILY, mrn="MRN-SYNC-2", birthDate="sometime in May"),
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 422, response.text
        assert response.json()["issue"][0]["expression"] == ["Bundle.entry[2].resource.birthDate"]
        assert client.get("/fhir/Task", params={"_summary": "count"}).json()["total"] == 0
        assert outbox_rows(client) == []

    def test_a_batch_keeps_the_rows_of_the_entries_that_succeeded(self, client: TestClient) -> None:
        """A batch runs each entry in its own transaction: the stored Task keeps its row."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        person, order = client_and_order(client, "Organization/harbor")
        bundle = self.transaction(person, order, owner.organization, 'W/"7"')
        bundle["type"] = "batch"
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 200, response.text
        statuses = [entry["response"]["status"][:3] for entry in response.json()["entry"]]
        assert statuses == ["201", "412"]
        task_id = response.json()["entry"][0]["response"]["location"].split("/")[1]
        assert outbox_rows(client) == [
            (owner.client_id, "task-changed", f"Task/{task_id}", 1, "queued")
        ]

    def test_a_rejected_task_update_queues_nothing(
        self, client: TestClient, anonymous: TestClient
    ) -> None:
        """A stale If-Match (412), or a partner that is no party to the Task (403), stores
        nothing and queues nothing."""
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        stranger = channel_partner(client, "Elsewhere Clinic", HL7V2)
        shared = referral_task(client, requester="Organization/harbor", owner=owner.organization)
        before = outbox_rows(client)
        body = {**shared, "status": "cancelled", "statusReason": {"text": "duplicate"}}
        stale = client.put(
            f"/fhir/Task/{shared['id']}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"7"'}
        )
        assert stale.status_code == 412
        forbidden = as_partner(anonymous, stranger).put(
            f"/fhir/Task/{shared['id']}", json=body, headers=FHIR_JSON
        )
        assert forbidden.status_code == 403
        assert client.get(f"/fhir/Task/{shared['id']}").json()["meta"]["versionId"] == "1"
        assert outbox_rows(client) == before


# --- 4. the case API path ------------------------------------------------------------------


class TestCaseApi:
    def test_a_referral_task_written_by_a_case_manager_queues_a_row(
        self, client: TestClient, admin: Staff
    ) -> None:
        """PUT /cases/referral-tasks/{id} owned by a fhir partner queues task-changed."""
        browser, csrf = admin
        owner = channel_partner(client, "Lakeside Recovery", FHIR)
        body = {
            "id": "rt-sync-1",
            "referral_id": "sr-sync-1",
            "client_id": "client-sync-1",
            "requester": {"kind": "Organization", "ref": "harbor-detox"},
            "owner": {"kind": "Organization", "ref": owner.organization.split("/")[1]},
            "status": "requested",
            "authored_on": "2026-03-02T09:30:00Z",
            "business_status": "created",
            "response_deadline": "2026-03-04",
        }
        response = browser.put("/cases/referral-tasks/rt-sync-1", json=body, headers=csrf)
        assert response.status_code == 200, response.text
        assert response.json()["reference"] == "Task/rt-sync-1"
        assert outbox_rows(client) == [
            (owner.client_id, "task-changed", "Task/rt-sync-1", 1, "queued")
        ]

    def test_a_handoff_to_a_document_partner_queues_the_referral(
        self, client: TestClient, admin: Staff
    ) -> None:
        """PUT /cases/handoffs/{id} to a ccda partner's program queues referral-sent for the
        handoff's Task (the Transfer Summary), nothing for its ServiceRequest."""
        browser, csrf = admin
        receiving = channel_partner(client, "Bayview IOP", CCDA_DIRECTORY)
        template = next(seed.value for seed in story() if seed.kind.name == "handoffs")
        body = TypeAdapter(Handoff).dump_python(template, mode="json") | {
            "id": "handoff-sync-1",
            "referral_id": "referral-sync-1",
            "to_program_id": receiving.organization.split("/")[1],
            "status": "requested",
        }
        response = browser.put("/cases/handoffs/handoff-sync-1", json=body, headers=csrf)
        assert response.status_code == 200, response.text
        assert outbox_rows(client) == [
            (receiving.client_id, "referral-sent", "Task/handoff-sync-1", 1, "queued")
        ]


# --- 5. HL7 v2 inbound ---------------------------------------------------------------------


class TestHl7v2Inbound:
    """REF-I12-01.hl7 is a referral from GOOD HEALTH HOSPITAL to RADIANT HEALTH HOSPITAL; both
    are registered here as partners under those names, so intake matches their Organizations."""

    @pytest.fixture
    def inbound(self, anonymous: TestClient) -> InboundService:
        return InboundService(engine_of(anonymous), lambda: datetime.now(UTC))

    @staticmethod
    def message() -> bytes:
        path = HL7V2_CORPUS / "REF-I12-01.hl7"
        if not path.is_file():
            pytest.skip(f"external corpus file {path} is absent")
        return path.read_bytes()

    @staticmethod
    def msa(ack: bytes) -> str:
        line = next(line for line in ack.split(b"\r") if line.startswith(b"MSA"))
        return line.split(b"|")[1].decode()

    def test_the_sender_is_not_told_of_its_own_referral(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        """The referring v2 partner gets nothing for the Task its REF^I12 created; the
        receiving fhir partner gets the new Task."""
        sender = channel_partner(client, "GOOD HEALTH HOSPITAL", HL7V2)
        receiver = channel_partner(client, "RADIANT HEALTH HOSPITAL", FHIR)
        assert self.msa(*inbound.receive(self.message(), "mllp")) == "AA"
        [shared] = [e["resource"] for e in client.get("/fhir/Task").json()["entry"]]
        assert shared["requester"] == {"reference": sender.organization}
        assert outbox_rows(client) == [
            (receiver.client_id, "task-changed", f"Task/{shared['id']}", 1, "queued")
        ]

    def test_a_resent_referral_does_not_reopen_an_accepted_task(
        self, inbound: InboundService, client: TestClient
    ) -> None:
        """After the Task was accepted (the sender hears status-returned), the same REF^I12
        again leaves the Task accepted at its version and queues nothing more."""
        sender = channel_partner(client, "GOOD HEALTH HOSPITAL", HL7V2)
        channel_partner(client, "RADIANT HEALTH HOSPITAL", None)  # polls: told of nothing
        assert self.msa(*inbound.receive(self.message(), "mllp")) == "AA"
        [shared] = [e["resource"] for e in client.get("/fhir/Task").json()["entry"]]
        change_task(client, shared, status="accepted")
        resource = f"Task/{shared['id']}"
        assert outbox_rows(client) == [(sender.client_id, "status-returned", resource, 2, "queued")]

        assert self.msa(*inbound.receive(self.message(), "mllp")) == "AA"
        again = client.get(f"/fhir/{resource}").json()
        assert (again["status"], again["meta"]["versionId"]) == ("accepted", "2")
        assert client.get("/fhir/Task", params={"_summary": "count"}).json()["total"] == 1
        assert len(outbox_rows(client)) == 1


# --- 6. deliveries for staff ---------------------------------------------------------------


class TestDeliveriesApi:
    @pytest.fixture
    def queued(self, client: TestClient) -> tuple[Partner, Partner]:
        """Three rows: Lakeside (fhir) v1, Riverside (hl7v2) v1, Lakeside v2."""
        lakeside = channel_partner(client, "Lakeside Recovery", FHIR)
        riverside = channel_partner(client, "Riverside Residential", HL7V2)
        first = referral_task(client, requester="Organization/harbor", owner=lakeside.organization)
        referral_task(client, requester="Organization/harbor", owner=riverside.organization)
        change_task(client, first, note=note("Bed held until Friday"))
        return lakeside, riverside

    def test_the_listing_is_newest_first_and_filters(
        self,
        admin: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """GET /admin/deliveries: newest first; partner= and state= (repeatable) filter."""
        browser, _csrf = admin
        lakeside, riverside = queued
        pks = outbox_pks(client)
        listing = browser.get("/admin/deliveries").json()
        assert [d["id"] for d in listing] == pks[::-1]
        assert [(d["partner"], d["event"], d["version"]) for d in listing] == [
            (lakeside.client_id, "task-changed", 2),
            (riverside.client_id, "referral-sent", 1),
            (lakeside.client_id, "task-changed", 1),
        ]
        assert {d["state"] for d in listing} == {"queued"}
        assert all(d["next_attempt_at"] is not None for d in listing)

        mine = browser.get("/admin/deliveries", params={"partner": riverside.client_id}).json()
        assert [(d["channel"], d["event"]) for d in mine] == [("hl7v2-mllp", "referral-sent")]

        fail_delivery(client, pks[0])
        failed = browser.get("/admin/deliveries", params={"state": "failed"}).json()
        assert [(d["id"], d["attempts"], d["next_attempt_at"]) for d in failed] == [
            (pks[0], 3, None)
        ]
        both = browser.get("/admin/deliveries", params=[("state", "failed"), ("state", "queued")])
        assert len(both.json()) == 3
        assert browser.get("/admin/deliveries", params={"limit": 1}).json()[0]["id"] == pks[-1]

    def test_an_unknown_state_is_a_problem_detail(self, admin: Staff) -> None:
        """state= takes transport states only; anything else is a 400 naming the value."""
        browser, _csrf = admin
        response = browser.get("/admin/deliveries", params={"state": "lost"})
        assert "unknown state 'lost'" in problem(response, 400)["detail"]

    def test_the_listing_never_carries_patient_data(
        self,
        admin: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """Rows name resources by id only: the client's name and MRN are nowhere in it."""
        browser, _csrf = admin
        fail_delivery(client, outbox_pks(client)[0])
        response = browser.get("/admin/deliveries")
        assert len(response.json()) == 3
        for secret in (FAMILY, GIVEN, "MRN-SYNC-1", "1990-04-12"):
            assert secret not in response.text

    def test_a_compliance_officer_may_list_but_not_retry(
        self,
        officer: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """Compliance officers watch deliveries; only administrators send them again (403)."""
        browser, csrf = officer
        assert len(browser.get("/admin/deliveries").json()) == 3
        pk = outbox_pks(client)[0]
        fail_delivery(client, pk)
        refused = browser.post(f"/admin/deliveries/{pk}/retry", headers=csrf)
        problem(refused, 403)
        assert browser.get("/admin/deliveries", params={"state": "failed"}).json()[0]["id"] == pk

    def test_case_managers_and_strangers_are_kept_out(
        self, anonymous: TestClient, client: TestClient
    ) -> None:
        """Neither case managers, nor anyone unsigned-in, nor a partner's token see deliveries."""
        problem(anonymous.get("/admin/deliveries"), 401)
        manager, _csrf = staff(anonymous, "casey.manager", Role.CASE_MANAGER)
        problem(manager.get("/admin/deliveries"), 403)
        problem(client.get("/admin/deliveries"), 401)

    def test_retry_requeues_a_failed_delivery_from_the_start(
        self,
        admin: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """POST .../retry on a failed row: queued again, attempts 0, error cleared."""
        browser, csrf = admin
        pk = outbox_pks(client)[0]
        fail_delivery(client, pk)
        response = browser.post(f"/admin/deliveries/{pk}/retry", headers=csrf)
        assert response.status_code == 200, response.text
        retried = response.json()
        assert (retried["id"], retried["state"], retried["attempts"]) == (pk, "queued", 0)
        assert (retried["error"], retried["finished_at"]) == ("", None)
        assert retried["next_attempt_at"] is not None
        assert browser.get("/admin/deliveries", params={"state": "failed"}).json() == []

    def test_retry_leaves_a_pending_delivery_as_it_is(
        self,
        admin: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """Only failed or withheld rows are sent again; a queued one is answered unchanged."""
        browser, csrf = admin
        before = outbox_rows(client)
        pk = outbox_pks(client)[-1]
        response = browser.post(f"/admin/deliveries/{pk}/retry", headers=csrf)
        assert (response.json()["state"], response.json()["version"]) == ("queued", 2)
        assert outbox_rows(client) == before

    def test_retry_of_a_missing_delivery_is_not_found(self, admin: Staff) -> None:
        """Retrying an id that is no row is a 404 problem detail."""
        browser, csrf = admin
        response = browser.post("/admin/deliveries/4242/retry", headers=csrf)
        assert problem(response, 404)["detail"] == "no delivery has id 4242"

    def test_retry_needs_the_csrf_header(
        self,
        admin: Staff,
        client: TestClient,
        queued: tuple[Partner, Partner],
    ) -> None:
        """A retry is an unsafe request: without the session's CSRF header it is refused."""
        browser, _csrf = admin
        pk = outbox_pks(client)[0]
        fail_delivery(client, pk)
        refused = problem(browser.post(f"/admin/deliveries/{pk}/retry"), 403)
        assert (refused["title"], refused["detail"][:17]) == ("Forbidden", "CSRF check failed")
        assert browser.get("/admin/deliveries", params={"state": "failed"}).json()[0]["id"] == pk
