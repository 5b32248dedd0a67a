"""The disclosure gate end to end through the FHIR API with real tokens (PART2.md rules cited).

A detox unit (a Part 2 program) holds a client's record; partner A has the client's consent,
partner B has none. B must not learn a single byte of the Part 2 record, on any read path.
"""

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from interop.audit.log import verify
from interop.store.tables import DisclosureLogRow
from tests.interop.disclosure.conftest import World, as_

FHIR_JSON = {"Content-Type": "application/fhir+json"}
NOTICE = "http://recovery-interop.example.org/fhir/StructureDefinition/part2-disclosure-notice"


def codes(resource: dict[str, Any]) -> set[str]:
    return {label["code"] for label in resource.get("meta", {}).get("security", [])}


class TestConsentedRecipient:
    def test_read_is_released_with_labels_and_notice(
        self, anonymous: TestClient, world: World
    ) -> None:
        """C1 permit; S1 notice; S2 labels R, SUD-sensitivity, 42CFRPart2, NORDSCLCD."""
        response = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
        assert response.status_code == 200, response.text
        plan = response.json()
        assert {"R", "42CFRPart2", "NORDSCLCD"} <= codes(plan)
        assert "NORDSLCD" not in codes(plan)
        notices = [e for e in plan["meta"].get("extension", []) if e["url"] == NOTICE]
        assert (
            "42 CFR part 2" in notices[0]["valueString"].lower()
            or "part 2" in notices[0]["valueString"]
        )

    def test_search_bundle_carries_the_notice_once(
        self, anonymous: TestClient, world: World
    ) -> None:
        bundle = anonymous.get(
            "/fhir/CarePlan", params={"patient": world.client_ref}, headers=as_(anonymous, world.a)
        ).json()
        assert bundle["total"] == 1
        assert any(e["url"] == NOTICE for e in bundle["meta"]["extension"])
        assert "42CFRPart2" in codes(bundle)

    def test_no_purpose_of_use_means_no_part2_data(
        self, anonymous: TestClient, world: World
    ) -> None:
        """S4: a request without a purpose is denied."""
        headers = as_(anonymous, world.a, purposes=[])
        assert anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=headers).status_code == 404

    def test_revoked_consent_is_never_relied_on(
        self, client: TestClient, anonymous: TestClient, world: World
    ) -> None:
        """C5/C6: revocation (status inactive) stops future disclosures at once."""
        consent = client.get(f"/fhir/Consent/{world.consent_id}").json()
        client.put(
            f"/fhir/Consent/{world.consent_id}",
            json={**consent, "status": "inactive"},
            headers=FHIR_JSON,
        )
        assert (
            anonymous.get(
                f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a)
            ).status_code
            == 404
        )


class TestWithoutConsentNothingLeaks:
    """P2 deny by default, on every outgoing path (S3: absent, never named)."""

    def test_read_answers_exactly_as_for_an_unknown_id(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.b)
        hidden = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=headers)
        unknown = anonymous.get("/fhir/CarePlan/no-such-plan", headers=headers)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["issue"][0]["diagnostics"].replace(
            world.plan_id, "X"
        ) == unknown.json()["issue"][0]["diagnostics"].replace("no-such-plan", "X")
        assert "Partwo" not in hidden.text

    def test_vread_and_history(self, anonymous: TestClient, world: World) -> None:
        headers = as_(anonymous, world.b)
        assert (
            anonymous.get(f"/fhir/CarePlan/{world.plan_id}/_history/1", headers=headers).status_code
            == 404
        )
        assert (
            anonymous.get(f"/fhir/CarePlan/{world.plan_id}/_history", headers=headers).status_code
            == 404
        )
        type_history = anonymous.get("/fhir/CarePlan/_history", headers=headers).json()
        assert type_history["total"] == 0
        system = anonymous.get("/fhir/_history", headers=headers)
        assert world.plan_id not in system.text
        assert "Partwo" not in system.text

    def test_search_totals_counts_and_entries(self, anonymous: TestClient, world: World) -> None:
        headers = as_(anonymous, world.b)
        plans = anonymous.get(
            "/fhir/CarePlan", params={"patient": world.client_ref}, headers=headers
        ).json()
        assert plans["total"] == 0
        assert plans.get("entry", []) == []
        counted = anonymous.get(
            "/fhir/CarePlan", params={"_summary": "count"}, headers=headers
        ).json()
        assert counted["total"] == 0
        people = anonymous.get("/fhir/Patient", headers=headers).json()
        assert [e["resource"]["name"][0]["family"] for e in people["entry"]] == ["Ordinary"]
        assert people["total"] == 1

    def test_includes_and_revincludes(self, anonymous: TestClient, world: World) -> None:
        headers = as_(anonymous, world.b)
        detox_id = world.detox.split("/")[1]
        found = anonymous.get(
            "/fhir/Organization",
            params={"_id": detox_id, "_revinclude": "Patient:organization"},
            headers=headers,
        ).json()
        assert [e["search"]["mode"] for e in found["entry"]] == ["match"]
        assert "Partwo" not in str(found)
        consented = anonymous.get(
            "/fhir/Organization",
            params={"_id": detox_id, "_revinclude": "Patient:organization"},
            headers=as_(anonymous, world.a),
        ).json()
        assert [e["search"]["mode"] for e in consented["entry"]] == ["match", "include"]

    def test_batch_get_entries(self, anonymous: TestClient, world: World) -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "GET", "url": f"CarePlan/{world.plan_id}"}},
                {"request": {"method": "GET", "url": f"CarePlan?patient={world.client_ref}"}},
            ],
        }
        response = anonymous.post(
            "/fhir", json=bundle, headers={**FHIR_JSON, **as_(anonymous, world.b)}
        ).json()
        assert response["entry"][0]["response"]["status"] == "404 Not Found"
        assert response["entry"][1]["resource"]["total"] == 0
        assert "Partwo" not in str(response)

    def test_ordinary_records_still_flow(self, anonymous: TestClient, world: World) -> None:
        """P1: data that is not Part 2 data follows ordinary sharing (and is still logged)."""
        ordinary_id = world.ordinary_ref.split("/")[1]
        response = anonymous.get(f"/fhir/Patient/{ordinary_id}", headers=as_(anonymous, world.b))
        assert response.status_code == 200
        assert "42CFRPart2" not in codes(response.json())


class TestAuditTrail:
    def test_every_decision_is_logged_and_the_chain_verifies(
        self, anonymous: TestClient, world: World
    ) -> None:
        """A1: who asked, for whom, what purpose, which consent, what, when."""
        anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
        anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.b))
        engine = anonymous.app.state.partners._engine  # type: ignore[attr-defined]
        with Session(engine) as session:
            rows = list(session.exec(select(DisclosureLogRow).order_by(col(DisclosureLogRow.seq))))
            report = verify(session)
        plan_ref = f"CarePlan/{world.plan_id}"
        permits = [
            r
            for r in rows
            if plan_ref in r.resources.split()
            and r.decision == "permit"
            and r.requester == world.a.organization
        ]
        denies = [
            r
            for r in rows
            if plan_ref in r.resources.split()
            and r.decision == "deny"
            and r.requester == world.b.organization
        ]
        assert permits
        assert permits[0].consent is not None
        assert world.consent_id in permits[0].consent
        assert permits[0].purposes == "TREAT"
        assert permits[0].part2 is True
        assert denies
        assert denies[0].rule == "P2"
        assert report.intact, report


def test_a_program_flagged_part2_is_known_on_the_very_next_request(
    client: TestClient, anonymous: TestClient, world: World
) -> None:
    """P1: the gate keeps the Part 2 program set between requests only while no Organization
    changed; flagging a program takes effect at once."""
    clinic = client.post(
        "/fhir/Organization",
        json={"resourceType": "Organization", "name": "Late Flag"},
        headers=FHIR_JSON,
    ).json()
    person = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": "Lateflag"}],
            "managingOrganization": {"reference": f"Organization/{clinic['id']}"},
        },
        headers=FHIR_JSON,
    ).json()
    headers = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Patient/{person['id']}", headers=headers).status_code == 200
    flagged = {
        **clinic,
        "extension": [
            {
                "url": "http://recovery-interop.example.org/fhir/StructureDefinition/part2-program",
                "valueBoolean": True,
            }
        ],
    }
    assert (
        client.put(
            f"/fhir/Organization/{clinic['id']}", json=flagged, headers=FHIR_JSON
        ).status_code
        == 200
    )
    assert anonymous.get(f"/fhir/Patient/{person['id']}", headers=headers).status_code == 404


def test_the_owner_of_a_part2_referral_task_needs_the_consent_too(
    client: TestClient, anonymous: TestClient, world: World
) -> None:
    """P1/P2: a detox unit's referral Task owned by partner B names the client as the detox
    unit's patient; B holding the Task is a disclosure to B, not B's own record, so without
    B's consent B reads nothing, while A (consented) may."""
    shared = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "for": {"reference": world.client_ref},
        "requester": {"reference": world.detox},
        "owner": {"reference": world.b.organization},
        "authoredOn": "2026-11-02T09:30:00Z",
    }
    created = client.post("/fhir/Task", json=shared, headers=FHIR_JSON).json()
    as_b = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Task/{created['id']}", headers=as_b).status_code == 404
    assert anonymous.get("/fhir/Task", headers=as_b).json()["total"] == 0
    consented = {**shared, "owner": {"reference": world.a.organization}}
    mine = client.post("/fhir/Task", json=consented, headers=FHIR_JSON).json()
    answer = anonymous.get(f"/fhir/Task/{mine['id']}", headers=as_(anonymous, world.a)).json()
    assert "42CFRPart2" in codes(answer)
