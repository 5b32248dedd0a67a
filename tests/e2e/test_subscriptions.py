"""Subscriptions (REFERRALS.md item 3; Subscriptions R5 Backport IG, R4 form): a partner
subscribes through the FHIR API, its rest-hook endpoint on loopback gets the handshake and then
an id-only notification for each change of a Task it is party to, never for one the disclosure
gate withholds from it, and nobody else sees or touches its Subscription."""

from typing import Any

import pytest

from interop.store.outbox import TransportState
from tests.conftest import RegisteredPartner, bearer, register_partner
from tests.e2e.partners import Hook, serving
from tests.e2e.sync_world import World, consent_for, refer, set_task

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TOPIC = "http://recovery-interop.example.org/fhir/SubscriptionTopic/referral-task"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(autouse=True)
def loopback_hooks(world: World) -> None:
    """The hooks here listen on loopback for partners with no channel registered there: a
    test bed on one machine, as `SUBSCRIPTION_PRIVATE_ENDPOINTS` allows."""
    world.settings = world.settings.model_copy(update={"subscription_private_endpoints": True})


def subscription_body(hook: Hook, organization: str, **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Referrals we receive",
        "criteria": TOPIC,
        "_criteria": {
            "extension": [
                {
                    "url": f"{BACKPORT}/backport-filter-criteria",
                    "valueString": f"Task?owner={organization}",
                }
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": hook.url,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}
                ]
            },
            "header": ["Authorization: Bearer hook-secret"],
            **channel,
        },
    }


def as_(world: World, partner: RegisteredPartner) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": bearer(world.client, partner, scope="system/*.cruds")}


def subscribe(world: World, hook: Hook) -> tuple[RegisteredPartner, dict[str, Any]]:
    partner = register_partner(world.client, name="Bayview Outpatient", covered_entity=True)
    body = subscription_body(hook, partner.organization)
    created = world.client.post("/fhir/Subscription", json=body, headers=as_(world, partner))
    assert created.status_code == 201, created.text
    return partner, created.json()


def reported(answer: Any) -> list[str]:
    """The Subscriptions a `$status` answer reports, each a SubscriptionStatus of type
    query-status (none ran a handshake, so each is still requested)."""
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    entries = bundle.get("entry", [])
    assert (bundle["type"], bundle["total"]) == ("searchset", len(entries))
    statuses = [{p["name"]: p for p in e["resource"]["parameter"]} for e in entries]
    assert {(s["type"]["valueCode"], s["status"]["valueCode"]) for s in statuses} <= {
        ("query-status", "requested")
    }
    return sorted(s["subscription"]["valueReference"]["reference"] for s in statuses)


def asking(*ids: str) -> dict[str, Any]:
    """A `$status` Parameters body naming Subscriptions by `id`."""
    return {"resourceType": "Parameters", "parameter": [{"name": "id", "valueId": i} for i in ids]}


class TestLifecycle:
    def test_handshake_then_id_only_notifications(self, world: World) -> None:
        hook = Hook()
        with serving(hook):
            partner, created = subscribe(world, hook)
            assert created["status"] == "requested"
            [handshake] = world.run()
            assert handshake.state is TransportState.ACKNOWLEDGED
            mine = world.client.get(
                f"/fhir/Subscription/{created['id']}", headers=as_(world, partner)
            )
            assert mine.json()["status"] == "active"
            refer(world.client, partner.organization.split("/")[1])
            [notified] = world.run()
            assert notified.state is TransportState.ACKNOWLEDGED
        first, second = hook.received
        assert [
            p["valueCode"]
            for p in first["entry"][0]["resource"]["parameter"]
            if p["name"] == "type"
        ] == ["handshake"]
        assert second["type"] == "history"
        parameters = {p["name"]: p for p in second["entry"][0]["resource"]["parameter"]}
        assert parameters["type"]["valueCode"] == "event-notification"
        assert parameters["events-since-subscription-start"]["valueString"] == "1"
        event = {p["name"]: p for p in parameters["notification-event"]["part"]}
        assert event["focus"]["valueReference"]["reference"] == "http://testserver/fhir/Task/task-1"
        assert second["entry"][1] == {
            "fullUrl": "http://testserver/fhir/Task/task-1",
            "request": {"method": "PUT", "url": "http://testserver/fhir/Task/task-1"},
            "response": {"status": "200"},
        }
        assert "Quill" not in str(hook.received)
        assert hook.headers[1]["Authorization"] == "Bearer hook-secret"
        handshake_status = {p["name"]: p for p in first["entry"][0]["resource"]["parameter"]}
        assert handshake_status["status"]["valueCode"] == "requested"
        status = world.client.get(
            f"/fhir/Subscription/{created['id']}/$status", headers=as_(world, partner)
        )
        assert status.status_code == 200, status.text
        [entry] = status.json()["entry"]
        now = {p["name"]: p for p in entry["resource"]["parameter"]}
        assert now["type"]["valueCode"] == "query-status"
        assert now["status"]["valueCode"] == "active"
        assert now["events-since-subscription-start"]["valueString"] == "1"
        assert f"Subscription/{created['id']}" in now["subscription"]["valueReference"]["reference"]

    def test_a_part2_task_without_consent_is_never_notified(self, world: World) -> None:
        hook = Hook()
        with serving(hook):
            partner, _created = subscribe(world, hook)
            world.run()
            refer(world.client, partner.organization.split("/")[1], part2=True)
            [withheld] = world.run()
            consent_for(world.client, partner.organization.split("/")[1])
            set_task(world.client, partner.organization.split("/")[1], "cancelled")
            [told] = world.run()
        assert (withheld.state, told.state) == (
            TransportState.WITHHELD,
            TransportState.ACKNOWLEDGED,
        )
        assert len(hook.received) == 2  # the handshake, then only the consented change

    def test_an_endpoint_on_this_network_is_never_called(self, world: World) -> None:
        """SSRF: a partner's Subscription naming a loopback address (or any private one) that
        is not its registered channel's host is refused at sending, and the Subscription is
        put in error; the hook is never called."""
        hook = Hook()
        with serving(hook):
            partner, created = subscribe(world, hook)
            [outcome] = world.run(subscription_private_endpoints=False)
        assert outcome.state is TransportState.FAILED
        assert "loopback, private or link-local" in (outcome.error or "")
        assert hook.received == []
        mine = world.client.get(f"/fhir/Subscription/{created['id']}", headers=as_(world, partner))
        assert mine.json()["status"] == "error"

    def test_a_metadata_address_is_never_called_even_on_a_private_network(
        self, world: World
    ) -> None:
        """Probe 11 L9: a test bed on a private network lets partners' hooks be there too, but
        never at the link-local or shared address where clouds answer for their metadata."""
        partner = register_partner(world.client, name="Bayview Outpatient", covered_entity=True)
        body = subscription_body(Hook(), partner.organization)
        body["channel"]["endpoint"] = "https://169.254.169.254/latest/meta-data/"
        created = world.client.post("/fhir/Subscription", json=body, headers=as_(world, partner))
        assert created.status_code == 201, created.text
        [outcome] = world.run()
        assert outcome.state is TransportState.FAILED
        assert "link-local, shared (metadata)" in (outcome.error or "")

    def test_a_refused_handshake_leaves_the_subscription_in_error(self, world: World) -> None:
        hook = Hook(status=410)
        with serving(hook):
            partner, created = subscribe(world, hook)
            [outcome] = world.run()
        assert outcome.state is TransportState.FAILED
        mine = world.client.get(f"/fhir/Subscription/{created['id']}", headers=as_(world, partner))
        assert mine.json()["status"] == "error"


class TestIsolation:
    def test_another_partner_neither_sees_nor_touches_it(self, world: World) -> None:
        hook = Hook()
        owner, created = subscribe(world, hook)
        other = register_partner(world.client, name="Unrelated Clinic")
        headers = as_(world, other)
        url = f"/fhir/Subscription/{created['id']}"
        assert world.client.get(url, headers=headers).status_code == 404
        assert world.client.get("/fhir/Subscription", headers=headers).json()["total"] == 0
        stolen = {
            **created,
            "channel": {**created["channel"], "endpoint": "https://evil.example/hook"},
        }
        # What it may not see answers as an unknown id, for writes too (issue 10, one door):
        # an update is refused, a delete succeeds as for what does not exist, touching nothing.
        assert world.client.put(url, json=stolen, headers=headers).status_code == 404
        assert world.client.delete(url, headers=headers).status_code == 204
        mine = world.client.get(url, headers=as_(world, owner)).json()
        assert mine["channel"]["endpoint"] == hook.url
        assert world.client.get(f"{url}/$status", headers=headers).status_code == 404

    def test_status_is_asked_by_post_too(self, world: World) -> None:
        """R4: "Servers SHALL support POST method for all operations": `$status` by POST, with
        no body or a Parameters body (whose `id` the instance level ignores, as the IG says),
        answered as the GET is; another's Subscription is unknown by POST as by GET."""
        hook = Hook()
        owner, first = subscribe(world, hook)
        mine = as_(world, owner)
        second = world.client.post(
            "/fhir/Subscription", json=subscription_body(hook, owner.organization), headers=mine
        ).json()
        other = register_partner(world.client, name="Unrelated Clinic")
        instance = f"/fhir/Subscription/{first['id']}/$status"
        expected = [f"http://testserver/fhir/Subscription/{first['id']}"]
        assert reported(world.client.get(instance, headers=mine)) == expected
        assert reported(world.client.post(instance, headers=mine)) == expected
        ignored = world.client.post(instance, json=asking(second["id"]), headers=mine)
        assert reported(ignored) == expected
        assert (
            world.client.post(instance, json={"resourceType": "Patient"}, headers=mine).status_code
            == 400
        )
        refused = world.client.post(instance, headers=as_(world, other))
        assert refused.status_code == 404, refused.text

    def test_status_at_the_type_level_reports_its_own_alone(self, world: World) -> None:
        """Backport IG 1.1.0 `Subscription/$status`: the caller's Subscriptions, those `id`
        names (ORed) or every one, each a SubscriptionStatus; another's id is left out exactly
        as an unknown one is. A read by id is still a read."""
        hook = Hook()
        owner, first = subscribe(world, hook)
        mine = as_(world, owner)
        second = world.client.post(
            "/fhir/Subscription", json=subscription_body(hook, owner.organization), headers=mine
        ).json()
        other = register_partner(world.client, name="Unrelated Clinic")
        theirs = world.client.post(
            "/fhir/Subscription",
            json=subscription_body(hook, other.organization),
            headers=as_(world, other),
        ).json()
        url = "http://testserver/fhir/Subscription/"
        both = sorted([url + first["id"], url + second["id"]])
        status = "/fhir/Subscription/$status"
        assert reported(world.client.get(status, headers=mine)) == both
        assert reported(world.client.post(status, headers=mine)) == both
        named = [("id", first["id"]), ("id", theirs["id"])]
        assert reported(world.client.get(status, params=named, headers=mine)) == [url + first["id"]]
        not_mine = world.client.post(status, json=asking(theirs["id"]), headers=mine)
        unknown = world.client.post(status, json=asking("no-such-subscription"), headers=mine)
        assert reported(not_mine) == reported(unknown) == []
        assert not_mine.json() == unknown.json()
        active = world.client.get(status, params={"status": "active"}, headers=mine)
        assert reported(active) == []
        read = world.client.get(f"/fhir/Subscription/{first['id']}", headers=mine)
        assert (read.status_code, read.json()["id"]) == (200, first["id"])

    def test_what_cannot_work_or_would_leak_is_refused(self, world: World) -> None:
        hook = Hook()
        partner = register_partner(world.client, name="Bayview Outpatient")
        headers = as_(world, partner)
        full = subscription_body(hook, partner.organization)
        full["channel"]["_payload"]["extension"][0]["valueCode"] = "full-resource"
        other_org = subscription_body(hook, "Organization/someone-else")
        clear = subscription_body(hook, partner.organization, endpoint="http://hooks.example.org/n")
        cookie = subscription_body(hook, partner.organization, header=["Cookie: session=x"])
        cases = [
            (full, 422, "payload content 'full-resource' is not offered"),
            (other_org, 422, "a partner subscribes to the Tasks of its own organization only"),
            (clear, 400, "a Subscription's endpoint must use https"),
            (cookie, 422, "only an Authorization header is sent with notifications"),
            ({**full, "criteria": "Patient?name=x"}, 422, "the only topic offered is"),
        ]
        for body, status, text in cases:
            response = world.client.post("/fhir/Subscription", json=body, headers=headers)
            assert response.status_code == status, response.text
            assert text in response.json()["issue"][0]["diagnostics"]
        assert world.rows == []
