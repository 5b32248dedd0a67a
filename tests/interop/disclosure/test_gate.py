"""The disclosure gate end to end through the FHIR API with real tokens (PART2.md rules cited).

A detox unit (a Part 2 program) holds a client's record; partner A has the client's consent,
partner B has none. B must not learn a single byte of the Part 2 record, on any read path.
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from interop.audit.log import verify
from interop.services.disclosure import notice_of
from interop.store.tables import DisclosureLogRow
from mappings.consent import REVOCATION_RECEIVED
from tests.builders import care_plan, part2_consent, patient
from tests.conftest import register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make

FHIR_JSON = {"Content-Type": "application/fhir+json"}
NOTICE = "http://recovery-interop.example.org/fhir/StructureDefinition/part2-disclosure-notice"
PART2_PROGRAM = "http://recovery-interop.example.org/fhir/StructureDefinition/part2-program"


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
        (notice,) = [e for e in plan["meta"].get("extension", []) if e["url"] == NOTICE]
        # S1 as valid R4 (ext-1): a complex extension has nested extensions and no value.
        assert not any(key.startswith("value") for key in notice)
        assert "part 2" in (notice_of(plan) or "").lower()
        (consent,) = [e for e in notice["extension"] if e["url"] == "consent"]
        assert consent["valueReference"]["reference"] == f"Consent/{world.consent_id}"

    def test_search_bundle_carries_the_notice_once(
        self, anonymous: TestClient, world: World
    ) -> None:
        bundle = anonymous.get(
            "/fhir/CarePlan", params={"patient": world.client_ref}, headers=as_(anonymous, world.a)
        ).json()
        assert bundle["total"] == 1
        assert any(e["url"] == NOTICE for e in bundle["meta"]["extension"])
        assert "42CFRPart2" in codes(bundle)

    @pytest.mark.parametrize("kind", ["batch", "transaction"])
    def test_a_bundle_of_entries_carries_their_labels_and_notice(
        self, anonymous: TestClient, world: World, kind: str
    ) -> None:
        """Probe 10 F6 (S1, S2): a batch-response carried them in its entries only."""
        read = {"request": {"method": "GET", "url": f"CarePlan/{world.plan_id}"}}
        answer = anonymous.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": kind, "entry": [read]},
            headers={**as_(anonymous, world.a), **FHIR_JSON},
        )
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        assert bundle["entry"][0]["response"]["status"].startswith("200")
        assert any(e["url"] == NOTICE for e in bundle["meta"]["extension"])
        assert {"42CFRPart2", "NORDSCLCD"} <= codes(bundle)

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

    def test_a_revoked_consent_stays_revoked(
        self, client: TestClient, anonymous: TestClient, world: World
    ) -> None:
        """C6: revocation is the patient's written act. No later write of that Consent puts it
        back in force (through another status, or deleted and written again), nor does a copy
        of its signing under another id; and a Consent recording a received revocation is
        revoked whatever its status says."""
        url = f"/fhir/Consent/{world.consent_id}"
        consent = client.get(url).json()
        consent.pop("meta")
        plan = f"/fhir/CarePlan/{world.plan_id}"

        def put(body: dict[str, Any]) -> Any:
            return client.put(url, json=body, headers=FHIR_JSON)

        assert put({**consent, "status": "inactive"}).status_code == 200
        refused = put({**consent, "status": "active"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["issue"][0]["diagnostics"] == (
            "a revoked consent stays revoked (42 CFR 2.31, 2.35): record the patient's new "
            "consent as a new Consent"
        )
        assert put({**consent, "status": "entered-in-error"}).status_code == 200
        assert put({**consent, "status": "active"}).status_code == 422
        kept = client.delete(url)
        assert kept.status_code == 422, kept.text
        assert "is kept" in kept.json()["issue"][0]["diagnostics"]
        copy = {k: v for k, v in consent.items() if k != "id"}
        respelled = {**copy, "dateTime": copy["dateTime"].replace("Z", "+00:00")}
        form = copy["sourceAttachment"]["url"]
        scheme, _, rest = form.partition("://")
        host, _, path = rest.partition("/")
        for url in (f"{scheme.upper()}://{host.upper()}/{path}", f"{form}#page=1"):
            # probe 10 F4: the same signed form, its URL spelt otherwise
            same_form = {**copy, "sourceAttachment": {**copy["sourceAttachment"], "url": url}}
            copied = client.post("/fhir/Consent", json=same_form, headers=FHIR_JSON)
            assert copied.status_code == 422, copied.text
        for same in (copy, respelled):
            copied = client.post("/fhir/Consent", json=same, headers=FHIR_JSON)
            assert copied.status_code == 422, copied.text
            assert "signed and dated anew" in copied.json()["issue"][0]["diagnostics"]
        extended = {**copy["provision"], "period": {"start": "2026-01-05", "end": "2031-01-01"}}
        assert (
            client.post(
                "/fhir/Consent", json={**copy, "provision": extended}, headers=FHIR_JSON
            ).status_code
            == 422
        )  # the same document, its period edited
        [permit] = copy["provision"]["provision"]
        [actor] = permit["actor"]
        elsewhere = {**actor, "reference": {"reference": world.b.organization}}
        other_recipient = {
            **copy,
            "provision": {**copy["provision"], "provision": [{**permit, "actor": [elsewhere]}]},
        }
        signed_with_it = client.post("/fhir/Consent", json=other_recipient, headers=FHIR_JSON)
        assert signed_with_it.status_code == 201, signed_with_it.text  # another document
        assert anonymous.get(plan, headers=as_(anonymous, world.a)).status_code == 404
        received = {"url": REVOCATION_RECEIVED, "valueDate": "2026-11-20"}
        anew = {
            **copy,
            "dateTime": "2026-11-02T10:00:00Z",
            "extension": [*copy.get("extension", []), received],
        }
        made = client.post("/fhir/Consent", json=anew, headers=FHIR_JSON)
        assert made.status_code == 201, made.text
        assert anonymous.get(plan, headers=as_(anonymous, world.a)).status_code == 404
        signed_anew = {**copy, "dateTime": "2026-11-03T10:00:00Z"}
        assert client.post("/fhir/Consent", json=signed_anew, headers=FHIR_JSON).status_code == 201
        assert anonymous.get(plan, headers=as_(anonymous, world.a)).status_code == 200


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
    changed; flagging a program takes effect at once, for everything it wrote before."""
    clinic = register_partner(anonymous, name="Late Flag Clinic")
    person = make(acting_as(anonymous, clinic), patient(family="Lateflag", mrn="MRN-LATE"))
    headers = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Patient/{person['id']}", headers=headers).status_code == 200
    clinic_id = clinic.organization.split("/")[1]
    stored = client.get(f"/fhir/Organization/{clinic_id}").json()
    flagged = {
        **stored,
        "extension": [
            {"url": PART2_PROGRAM, "valueBoolean": True},
            *[e for e in stored.get("extension", []) if e["url"] != PART2_PROGRAM],
        ],
    }
    changed = client.put(f"/fhir/Organization/{clinic_id}", json=flagged, headers=FHIR_JSON)
    assert changed.status_code == 200, changed.text
    assert anonymous.get(f"/fhir/Patient/{person['id']}", headers=headers).status_code == 404


def referral_task(patient_ref: str, requester: str, owner: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "for": {"reference": patient_ref},
        "requester": {"reference": requester},
        "owner": {"reference": owner},
        "authoredOn": "2026-11-02T09:30:00Z",
        "restriction": {"period": {"end": "2026-11-09T17:00:00Z"}},
    }


def test_the_owner_of_a_part2_referral_task_needs_the_consent_too(
    anonymous: TestClient, world: World
) -> None:
    """P1/P2: a detox unit's referral Task owned by partner B names the client as the detox
    unit's patient; B holding the Task is a disclosure to B, not B's own record, so without
    B's consent B reads nothing, while A (consented) may."""
    detox = acting_as(anonymous, world.detox_partner)
    created = make(detox, referral_task(world.client_ref, world.detox, world.b.organization))
    as_b = as_(anonymous, world.b)
    assert anonymous.get(f"/fhir/Task/{created['id']}", headers=as_b).status_code == 404
    assert anonymous.get("/fhir/Task", headers=as_b).json()["total"] == 0
    mine = make(detox, referral_task(world.client_ref, world.detox, world.a.organization))
    answer = anonymous.get(f"/fhir/Task/{mine['id']}", headers=as_(anonymous, world.a)).json()
    assert "42CFRPart2" in codes(answer)


class TestSharedRecordsFollowWhoWroteEachVersion:
    """A referral is a disclosure by its referrer; what the program referred to writes into the
    shared Task is the program's own record (the gate issue, point 3)."""

    def test_a_program_reads_a_referral_from_a_non_part2_referrer_without_consent(
        self, anonymous: TestClient, world: World
    ) -> None:
        clinic = register_partner(anonymous, name="Primary Care Clinic")
        program = register_partner(anonymous, name="Bayview Outpatient", part2_program=True)
        as_clinic = acting_as(anonymous, clinic)
        person = make(as_clinic, patient(family="Referred", mrn="MRN-REF"))
        sent = make(
            as_clinic,
            referral_task(f"Patient/{person['id']}", clinic.organization, program.organization),
        )
        as_program = acting_as(anonymous, program)
        received = as_program.get(f"/fhir/Task/{sent['id']}")
        assert received.status_code == 200, received.text
        assert as_program.get(f"/fhir/Patient/{person['id']}").status_code == 200
        # An unrelated partner without any consent is not blocked from non-Part 2 data (P1),
        # but once the program writes into the Task, the Task is the program's Part 2 record.
        accepted = {**received.json(), "status": "accepted"}
        answer = as_program.put(f"/fhir/Task/{sent['id']}", json=accepted, headers=FHIR_JSON)
        assert answer.status_code == 200, answer.text
        assert as_clinic.get(f"/fhir/Task/{sent['id']}").status_code == 404
        # Not even its own first version: that a newer one is hidden would tell that the
        # program wrote since (its "accepted" is the program's to disclose).
        assert as_clinic.get(f"/fhir/Task/{sent['id']}/_history/1").status_code == 404
        assert as_clinic.get(f"/fhir/Task/{sent['id']}/_history").status_code == 404
        unknown = as_clinic.get("/fhir/Task/no-such-task")
        hidden = as_clinic.get(f"/fhir/Task/{sent['id']}")
        assert _diagnostics(hidden) == _diagnostics(unknown).replace("no-such-task", sent["id"])
        log = anonymous.app.state.compliance  # type: ignore[attr-defined]
        assert log.verify().intact


def test_a_partner_writing_a_part2_record_gets_it_back_through_the_gate(
    anonymous: TestClient, world: World
) -> None:
    """The answer to a write is a disclosure too (ARCHITECTURE.md: one door for every
    outgoing byte): the owner accepting a detox unit's referral Task gets the Task back
    labelled, with the §2.32 notice naming the consent relied on, and the release logged."""
    owner = register_partner(anonymous, name="Lakeside Residential")
    detox = acting_as(anonymous, world.detox_partner)
    consent = make(detox, part2_consent(world.client_ref, world.detox, owner.organization))
    task = make(detox, referral_task(world.client_ref, world.detox, owner.organization))
    as_owner = acting_as(anonymous, owner)
    read = as_owner.get(f"/fhir/Task/{task['id']}").json()
    accepted = {k: v for k, v in read.items() if k != "meta"} | {"status": "accepted"}
    answer = as_owner.put(f"/fhir/Task/{task['id']}", json=accepted, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "accepted"
    assert {"R", "42CFRPart2", "NORDSCLCD"} <= codes(body)
    assert "part 2" in (notice_of(body) or "").lower()
    assert f"Consent/{consent['id']}" in answer.text
    engine = anonymous.app.state.partners._engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        rows = session.exec(
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.requester) == owner.organization)
            .where(col(DisclosureLogRow.interaction) == "write-answer")
            .where(col(DisclosureLogRow.decision) == "permit")
        )
        released = [row for row in rows if f"Task/{task['id']}" in row.resources.split()]
    assert released
    assert released[-1].consent is not None
    assert consent["id"] in released[-1].consent
    compliance = anonymous.app.state.compliance  # type: ignore[attr-defined]
    report = compliance.accounting(world.client_ref.removeprefix("Patient/"), datetime.now(UTC))
    answered = [d for d in report.with_consent if d.row.interaction == "write-answer"]
    assert [d.recipient for d in answered] == [owner.organization]


def test_a_write_answered_without_the_resource_discloses_nothing(
    anonymous: TestClient, world: World
) -> None:
    """With `Prefer: return=minimal` (or `OperationOutcome`) nothing of the record goes back,
    so nothing is logged or accounted as released to the writer."""
    owner = register_partner(anonymous, name="Lakeside Residential")
    detox = acting_as(anonymous, world.detox_partner)
    make(detox, part2_consent(world.client_ref, world.detox, owner.organization))
    task = make(detox, referral_task(world.client_ref, world.detox, owner.organization))
    as_owner = acting_as(anonymous, owner)
    read = as_owner.get(f"/fhir/Task/{task['id']}").json()
    accepted = {k: v for k, v in read.items() if k != "meta"} | {"status": "accepted"}
    for prefer in ("return=minimal", "return=OperationOutcome"):
        answer = as_owner.put(
            f"/fhir/Task/{task['id']}", json=accepted, headers={**FHIR_JSON, "Prefer": prefer}
        )
        assert answer.status_code == 200, answer.text
        assert "Part 2" not in answer.text
    engine = anonymous.app.state.partners._engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        answers = session.exec(
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.interaction) == "write-answer")
            .where(col(DisclosureLogRow.requester) == owner.organization)
        ).all()
    assert answers == []


class TestWritesSeeOnlyWhatTheWriterMaySee:
    """One door for reads and writes: a record the writer may not see answers exactly as an
    unknown id, and is never changed (ARCHITECTURE.md rule 4)."""

    def test_update_of_a_hidden_record_answers_as_an_unknown_id(
        self, anonymous: TestClient, world: World
    ) -> None:
        writer = register_partner(anonymous, name="Nosy Partner")
        nosy = acting_as(anonymous, writer)
        body = care_plan(world.client_ref, title="changed by someone without consent")
        hidden = nosy.put(
            f"/fhir/CarePlan/{world.plan_id}", json={**body, "id": world.plan_id}, headers=FHIR_JSON
        )
        unknown = nosy.put(
            "/fhir/CarePlan/no-such-plan", json={**body, "id": "no-such-plan"}, headers=FHIR_JSON
        )
        assert hidden.status_code == unknown.status_code == 404
        assert _diagnostics(hidden) == _diagnostics(unknown).replace("no-such-plan", world.plan_id)
        assert hidden.headers.get("etag") is None
        assert hidden.headers.get("location") is None
        stored = acting_as(anonymous, world.detox_partner).get(f"/fhir/CarePlan/{world.plan_id}")
        assert "changed by someone" not in stored.text

    def test_delete_of_a_hidden_record_answers_as_an_unknown_id_and_deletes_nothing(
        self, anonymous: TestClient, world: World
    ) -> None:
        """R4 §3.1.0.7: deleting what does not exist succeeds; a withheld record does not
        exist to the requester, so it is answered the same and stays."""
        nosy = acting_as(anonymous, register_partner(anonymous, name="Nosy Partner"))
        patient_id = world.client_ref.split("/")[1]
        hidden = nosy.delete(f"/fhir/Patient/{patient_id}")
        unknown = nosy.delete("/fhir/Patient/no-such-patient")
        assert hidden.status_code == unknown.status_code == 204
        assert hidden.content == unknown.content == b""
        detox = acting_as(anonymous, world.detox_partner)
        assert detox.get(f"/fhir/Patient/{patient_id}").status_code == 200

    def test_conditional_update_never_matches_a_hidden_record(
        self, anonymous: TestClient, world: World
    ) -> None:
        nosy = acting_as(anonymous, register_partner(anonymous, name="Nosy Partner"))
        body = patient(family="Impostor", mrn="MRN-P2")
        answer = nosy.put(
            "/fhir/Patient", params={"identifier": "MRN-P2"}, json=body, headers=FHIR_JSON
        )
        assert answer.status_code == 201, answer.text  # no match: a new record of its own
        assert answer.json()["id"] != world.client_ref.split("/")[1]
        detox = acting_as(anonymous, world.detox_partner)
        kept = detox.get(f"/fhir/{world.client_ref}").json()
        assert kept["name"][0]["family"] == "Partwo"

    def test_history_of_a_hidden_record_answers_as_an_unknown_id(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.b)
        hidden = anonymous.get(f"/fhir/CarePlan/{world.plan_id}/_history", headers=headers)
        unknown = anonymous.get("/fhir/CarePlan/no-such-plan/_history", headers=headers)
        assert hidden.status_code == unknown.status_code == 404
        everything = anonymous.get("/fhir/_history", headers=headers).json()
        assert world.plan_id not in str(everything)


def _diagnostics(response: Any) -> str:
    return str(response.json()["issue"][0].get("diagnostics", ""))
