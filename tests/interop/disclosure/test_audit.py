"""The disclosure log for compliance staff: AuditEvents, tamper evidence, accountings, and
medical emergencies."""

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlmodel import Session, col, select

from interop.audit import accounting, log
from interop.services.errors import InvalidRequest
from interop.services.staff import Role
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.tables import ChainHeadRow, DisclosureLogRow
from mappings import fhir
from tests.builders import care_plan, part2_consent
from tests.conftest import REPOSITORY, bearer, register_partner
from tests.interop.auth.test_staff import add_user, sign_in
from tests.interop.disclosure.conftest import World, acting_as, as_, make
from tests.interop.disclosure.test_gate import referral_task

EMERGENCY = {
    "recovery-interop-emergency": {
        "personnel_name": "Dr. Robin Example",
        "personnel_affiliation": "County General Emergency Department",
        "nature_of_emergency": "unresponsive patient, suspected opioid overdose",
    }
}


def opioid_use_disorder(patient_ref: str, program: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "5602001", "display": "Opioid abuse"}
            ]
        },
        "subject": {"reference": patient_ref},
        "asserter": {"reference": program},
    }


@pytest.fixture
def compliance(anonymous: TestClient) -> TestClient:
    reviewer = TestClient(anonymous.app)
    add_user(reviewer, "cora.compliance", Role.COMPLIANCE_OFFICER)
    assert sign_in(reviewer, "cora.compliance").status_code == 200
    return reviewer


def disclose(anonymous: TestClient, world: World) -> None:
    anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.a))
    anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, world.b))


def tamper(database_url: str, statement: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(statement), {"genesis": "0" * 64} if ":genesis" in statement else {}
        )
    engine.dispose()


class TestAuditEvents:
    def test_decisions_are_searchable_by_patient_as_audit_events(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        disclose(anonymous, world)
        bundle = compliance.get("/audit/AuditEvent", params={"patient": world.client_ref}).json()
        assert bundle["resourceType"] == "Bundle"
        outcomes = {
            (e["resource"]["agent"][0]["who"]["reference"], e["resource"]["outcome"])
            for e in bundle["entry"]
        }
        assert (world.a.organization, "0") in outcomes
        assert (world.b.organization, "4") in outcomes
        released = next(
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["outcome"] == "0"
            and e["resource"]["agent"][0]["who"]["reference"] == world.a.organization
        )
        assert released["type"]["code"] == "110106"
        assert released["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
        entities = [entity.get("what", {}).get("reference") for entity in released["entity"]]
        assert world.client_ref in entities
        assert any(ref and ref.startswith("Consent/") for ref in entities)

    def test_partners_and_case_managers_cannot_read_the_log(
        self, anonymous: TestClient, world: World
    ) -> None:
        assert (
            anonymous.get("/audit/AuditEvent", headers=as_(anonymous, world.a)).status_code == 401
        )
        manager = TestClient(anonymous.app)
        add_user(manager, "casey.manager", Role.CASE_MANAGER)
        sign_in(manager, "casey.manager")
        assert manager.get("/audit/verify").status_code == 403


class TestWritesOnRecord:
    def test_a_write_commits_its_decisions_with_it_and_a_refused_one_still_logs_them(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        """A1 without a transaction of its own: a write's decisions are appended in the write's
        transaction (the same connection, so the same thread), while a write that is refused
        (rolled back) still has its denial logged on its own."""
        inserts: list[tuple[str, int]] = []

        def seen(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            for table in ("resource_version", "disclosure_log"):
                if statement.startswith(f"INSERT INTO {table} "):
                    inserts.append((table, threading.get_ident()))

        event.listen(Engine, "before_cursor_execute", seen)
        try:
            detox = acting_as(anonymous, world.detox_partner)
            plan = detox.get(f"/fhir/CarePlan/{world.plan_id}").json()
            inserts.clear()  # the read's decision went to the log's writer: the write's now
            updated = detox.put(
                f"/fhir/CarePlan/{world.plan_id}", json={**plan, "status": "completed"}
            )
            assert updated.status_code == 200, updated.text
            written = list(inserts)
            nosy_partner = register_partner(anonymous, name="Nosy Partner")
            nosy = acting_as(anonymous, nosy_partner)
            refused = nosy.put(f"/fhir/CarePlan/{world.plan_id}", json=plan)
            assert refused.status_code == 404
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
        versions = [thread for table, thread in written if table == "resource_version"]
        logs = [thread for table, thread in written if table == "disclosure_log"]
        assert len(versions) == 1
        assert logs == versions  # one transaction: the version and its decision
        logged = compliance.get("/audit/AuditEvent", params={"patient": world.client_ref}).json()
        nosy_denials = [
            e["resource"]
            for e in logged["entry"]
            if e["resource"]["agent"][0]["who"]["reference"] == nosy_partner.organization
        ]
        assert [event["outcome"] for event in nosy_denials] == ["4"]
        assert nosy_denials[0]["subtype"][0]["code"] == "update"

    def test_an_update_in_a_bundle_is_no_disclosure_of_what_it_replaces(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        """A2: the receiving program accepting a Part 2 referral in a transaction Bundle sends
        nothing of the Task it replaces, so the patient's accounting stays empty; a read of
        the Task is listed."""
        detox = acting_as(anonymous, world.detox_partner)
        program = register_partner(anonymous, name="Bayview Intensive Outpatient")
        make(detox, part2_consent(world.client_ref, world.detox, program.organization))
        task = make(detox, referral_task(world.client_ref, world.detox, program.organization))
        residential = acting_as(anonymous, program)
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {**task, "status": "accepted"},
                    "request": {"method": "PUT", "url": f"Task/{task['id']}"},
                }
            ],
        }
        answer = residential.post("/fhir", json=bundle)
        assert answer.status_code == 200, answer.text
        assert answer.json()["entry"][0]["response"]["status"].startswith("200")
        patient_id = world.client_ref.split("/")[1]
        path = f"/audit/accounting/Patient/{patient_id}"
        assert compliance.get(path, params={"format": "fhir"}).json().get("entry", []) == []
        assert residential.get(f"/fhir/Task/{task['id']}").status_code == 200
        listed = compliance.get(path, params={"format": "fhir"}).json()["entry"]
        assert len(listed) == 1


class TestTamperEvidence:
    """A1: append-only and tamper-evident, on SQLite and PostgreSQL."""

    def test_intact_chain_verifies(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        disclose(anonymous, world)
        report = compliance.get("/audit/verify").json()
        assert report["intact"] is True
        assert report["rows"] >= 2

    @pytest.mark.parametrize(
        ("statement", "problem"),
        [
            ("UPDATE disclosure_log SET decision = 'permit' WHERE decision = 'deny'", "changed"),
            (
                "UPDATE disclosure_log SET requester = 'Organization/elsewhere' WHERE seq = 2",
                "changed",
            ),
            ("DELETE FROM disclosure_log WHERE seq = 2", "missing"),
            ("UPDATE disclosure_log SET seq = seq + 1000 WHERE seq = 1", "missing"),
            (
                "DELETE FROM disclosure_log WHERE seq = (SELECT MAX(seq) FROM disclosure_log)",
                "removed",
            ),
        ],
        ids=["edit-decision", "edit-recipient", "delete-row", "reorder", "truncate-tail"],
    )
    def test_tampering_is_detected(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        database_url: str,
        statement: str,
        problem: str,
    ) -> None:
        disclose(anonymous, world)
        disclose(anonymous, world)
        tamper(database_url, statement)
        report = compliance.get("/audit/verify").json()
        assert report["intact"] is False
        assert problem in report["problem"]
        assert report["first_broken_seq"] is not None

    def test_a_value_edited_into_one_the_log_cannot_read_is_reported_as_broken(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        database_url: str,
    ) -> None:
        """Probe 9 L2: SQLite keeps any text in a timestamp column; the walk stopped with a
        traceback instead of naming the row."""
        if not database_url.startswith("sqlite"):
            pytest.skip("PostgreSQL refuses a timestamp that is no time when it is written")
        disclose(anonymous, world)
        disclose(anonymous, world)
        tamper(database_url, "UPDATE disclosure_log SET recorded_at = 'yesterday' WHERE seq = 2")
        report = compliance.get("/audit/verify").json()
        assert report["intact"] is False
        assert report["first_broken_seq"] == 2
        assert "cannot be read" in report["problem"]


SPOILED = {
    "facts-not-json": "UPDATE disclosure_log SET emergency_facts = '{{not json' WHERE seq = {seq}",
    "unknown-decision": "UPDATE disclosure_log SET decision = 'maybe' WHERE seq = {seq}",
    "time-no-time": "UPDATE disclosure_log SET recorded_at = 'yesterday' WHERE seq = {seq}",
    "recipient-changed": (
        "UPDATE disclosure_log SET requester = 'Organization/never-got-it' WHERE seq = {seq}"
    ),
    "release-made-denial": "UPDATE disclosure_log SET decision = 'deny' WHERE seq = {seq}",
}
"""Ways a row can be altered into one the log cannot read (the third only where SQLite keeps
text in a timestamp column: PostgreSQL refuses it when it is written), or into one that reads
well but is not what its hash was made of (review 10 #1: shown as genuine before)."""


def spoil(database_url: str, how: str, seq: int) -> None:
    if how == "time-no-time" and not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL refuses a timestamp that is no time when it is written")
    tamper(database_url, SPOILED[how].format(seq=seq))


def released_to_a(compliance: TestClient, world: World) -> list[int]:
    """The log's numbers of the patient's records released to partner A, oldest first."""
    bundle = compliance.get("/audit/AuditEvent", params={"patient": world.client_ref}).json()
    return sorted(
        int(event["id"].removeprefix("disclosure-"))
        for event in (e["resource"] for e in bundle["entry"])
        if event["outcome"] == "0" and event["agent"][0]["who"]["reference"] == world.a.organization
    )


def by_id(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in bundle.get("entry", [])}


def assert_unreadable(event: dict[str, Any], seq: int, world: World) -> None:
    """Said plainly, and nothing of the altered row told (who, for whom, what, why)."""
    assert event["outcome"] == "8"
    assert f"row {seq} " in event["outcomeDesc"]
    assert "cannot be read" in event["outcomeDesc"]
    assert "altered" in event["outcomeDesc"]
    assert "chain is broken" in event["outcomeDesc"]
    told = orjson.dumps(event).decode()
    for secret in (world.client_ref, world.a.organization, world.a.client_id, "TREAT", "CarePlan"):
        assert secret not in told


@pytest.mark.parametrize("how", list(SPOILED))
class TestAnUnreadableRow:
    """Compliance staff's views keep working when one row of the log has been altered into
    one that cannot be read: the row is listed in its place as unreadable, where the chain is
    broken, and the rest are listed as before; an accounting says it may be incomplete."""

    def test_the_audit_event_search_lists_it_as_unreadable_and_the_rest_unchanged(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        database_url: str,
        how: str,
    ) -> None:
        disclose(anonymous, world)
        disclose(anonymous, world)
        before = by_id(compliance.get("/audit/AuditEvent").json())
        seq = released_to_a(compliance, world)[0]
        spoil(database_url, how, seq)
        answer = compliance.get("/audit/AuditEvent")
        assert answer.status_code == 200, answer.text
        after = by_id(answer.json())
        assert after.keys() == before.keys()
        assert_unreadable(after.pop(f"disclosure-{seq}"), seq, world)
        before.pop(f"disclosure-{seq}")
        assert after == before
        # A release altered into a denial now matches `outcome=withheld`, where it is listed.
        outcome = "withheld" if how == "release-made-denial" else "released"
        for params in ({"patient": world.client_ref}, {"outcome": outcome}):
            found = compliance.get("/audit/AuditEvent", params=params)
            assert found.status_code == 200, found.text
            assert_unreadable(by_id(found.json())[f"disclosure-{seq}"], seq, world)
        emergencies = compliance.get("/audit/emergencies")
        assert emergencies.status_code == 200, emergencies.text
        assert compliance.get("/audit/verify").json()["first_broken_seq"] == seq

    def test_the_accounting_says_it_may_be_incomplete(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        database_url: str,
        how: str,
    ) -> None:
        disclose(anonymous, world)
        disclose(anonymous, world)
        seq, kept = released_to_a(compliance, world)
        spoil(database_url, how, seq)
        path = f"/audit/accounting/Patient/{world.client_ref.split('/')[1]}"
        bundle = compliance.get(path, params={"format": "fhir"})
        assert bundle.status_code == 200, bundle.text
        events = by_id(bundle.json())
        assert events.keys() == {f"disclosure-{seq}", f"disclosure-{kept}"}
        assert_unreadable(events[f"disclosure-{seq}"], seq, world)
        assert events[f"disclosure-{kept}"]["outcome"] == "0"
        lines = compliance.get(path, params={"format": "csv"}).text.strip().splitlines()
        assert len(lines) == 3, lines
        assert "Riverside Residential" in lines[1]
        assert f"row {seq} of the disclosure log cannot be read" in lines[2]
        assert "may be incomplete" in lines[2]
        assert world.a.organization not in lines[2]
        for letter in (
            compliance.get(path),
            compliance.get(f"{path}/general-designation"),
        ):
            assert letter.status_code == 200, letter.text
            assert "may be incomplete" in letter.text
            assert f"row {seq} of the disclosure log cannot be read" in letter.text
        assert "Riverside Residential" in compliance.get(path).text

    def test_the_command_line_accounting_says_it_may_be_incomplete(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        settings: Settings,
        how: str,
    ) -> None:
        disclose(anonymous, world)
        disclose(anonymous, world)
        seq, _kept = released_to_a(compliance, world)
        spoil(settings.database_url, how, seq)
        patient_id = world.client_ref.split("/")[1]
        command = ["audit", "accounting", patient_id, "--database-url", settings.database_url]
        ran = subprocess.run(
            [sys.executable, "-m", "interop", *command],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.strip().splitlines()
        assert len(lines) == 3, lines
        assert "Riverside Residential" in lines[1]
        assert f"row {seq} of the disclosure log cannot be read" in lines[2]
        assert "may be incomplete" in ran.stderr


class TestKeyedChain:
    """Issue 10, point 5: tamper-evident against whoever can write the database. The chain is
    keyed with a secret held outside it; signed checkpoints kept elsewhere catch a cut at the
    end and a rollback to an older copy, which no chain can show by itself."""

    def test_a_row_changed_and_the_rest_of_the_chain_recomputed_is_found(
        self, anonymous: TestClient, world: World, settings: Settings
    ) -> None:
        disclose(anonymous, world)
        disclose(anonymous, world)
        engine = make_engine(settings.database_url)  # the database, without the key
        with Session(engine) as session:
            rows = list(session.exec(select(DisclosureLogRow).order_by(col(DisclosureLogRow.seq))))
            rows[1].decision = "permit" if rows[1].decision == "deny" else "deny"
            previous = rows[0].hash
            for row in rows[1:]:  # re-link the rest with the project's own canonical form
                for guess in (b"", b"development", settings.signing_key()):
                    row.prev_hash = previous
                    row.hash = log._digest(previous, log._content(row), guess)
                previous = row.hash
                session.add(row)
            head = session.get(ChainHeadRow, "disclosures")
            assert head is not None
            head.hash = previous
            session.add(head)
            session.commit()
        engine.dispose()
        report = anonymous.app.state.compliance.verify()  # type: ignore[attr-defined]
        assert not report.intact
        assert report.first_broken_seq == 2

    def test_a_cut_end_and_a_rollback_are_found_by_a_kept_checkpoint(
        self, anonymous: TestClient, world: World, settings: Settings, tmp_path: Path
    ) -> None:
        compliance = anonymous.app.state.compliance  # type: ignore[attr-defined]
        disclose(anonymous, world)
        kept = compliance.checkpoint(datetime.now(UTC))
        assert compliance.verify([kept]).intact
        disclose(anonymous, world)
        last = compliance.verify().rows
        # Cut the newest rows and move the head back onto an older row: the chain alone holds.
        tamper(settings.database_url, f"DELETE FROM disclosure_log WHERE seq > {int(last) - 2}")  # noqa: S608
        tamper(
            settings.database_url,
            "UPDATE chain_head SET seq = (SELECT MAX(seq) FROM disclosure_log), "
            "hash = (SELECT hash FROM disclosure_log "
            "WHERE seq = (SELECT MAX(seq) FROM disclosure_log))",
        )
        assert compliance.verify().intact
        later = compliance.checkpoint(datetime.now(UTC))
        disclose(anonymous, world)
        disclose(anonymous, world)
        tamper(settings.database_url, "DELETE FROM disclosure_log")
        tamper(settings.database_url, "UPDATE chain_head SET seq = 0, hash = :genesis")
        report = compliance.verify([kept, later])
        assert not report.intact
        assert "gone" in str(report.problem)

    def test_a_checkpoint_not_signed_with_the_key_is_refused(self, anonymous: TestClient) -> None:
        compliance = anonymous.app.state.compliance  # type: ignore[attr-defined]
        forged = jwt.encode({"seq": 1, "hash": "0" * 64, "iat": 0, "typ": "chain-head"}, "x" * 32)
        with pytest.raises(InvalidRequest, match="not a checkpoint of this log"):
            compliance.verify([forged])


class TestAccounting:
    @pytest.mark.parametrize("rows", ["none", "a disclosure and an unreadable row"])
    def test_the_fhir_form_is_a_valid_r4_bundle(self, rows: str) -> None:
        """A collection carries no total (R4 bdl-1: searches and histories only) and no empty
        entry array; its AuditEvents validate."""
        until = datetime(2026, 12, 7, tzinfo=UTC)
        released = DisclosureLogRow(
            seq=1,
            recorded_at=until,
            client_id="riverside",
            requester="Organization/riverside",
            patient="Patient/p1",
            purposes="TREAT",
            interaction="read",
            decision="permit",
            rule="CONSENT",
            consent="Consent/c1",
            resources="CarePlan/cp1",
            part2=True,
            prev_hash="0" * 64,
            hash="1" * 64,
        )
        logged = [released, log.Unreadable(2)] if rows != "none" else []
        report = accounting.accounting("p1", "Alex", logged, {}, datetime(2024, 1, 1), until)

        bundle = accounting.as_bundle(report)

        fhir.validate(bundle)
        assert "total" not in bundle
        assert len(bundle.get("entry", [])) == (2 if logged else 0)

    def test_accounting_lists_disclosures_with_consent_in_three_forms(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        """A2: recipient, date, brief description; denials and own use are not disclosures."""
        disclose(anonymous, world)
        patient_id = world.client_ref.split("/")[1]
        bundle = compliance.get(
            f"/audit/accounting/Patient/{patient_id}", params={"format": "fhir"}
        ).json()
        recipients = {e["resource"]["agent"][0]["who"]["reference"] for e in bundle["entry"]}
        assert recipients == {world.a.organization}
        csv_text = compliance.get(
            f"/audit/accounting/Patient/{patient_id}", params={"format": "csv"}
        ).text
        lines = csv_text.strip().splitlines()
        assert lines[0].startswith("date,recipient,")
        assert "Riverside Residential" in lines[1]
        assert "1 care plan" in lines[1]
        letter = compliance.get(f"/audit/accounting/Patient/{patient_id}")
        assert letter.headers["content-type"].startswith("text/html")
        assert "Alex Partwo" in letter.text
        assert "Riverside Residential" in letter.text
        assert "Unrelated Clinic" not in letter.text

    def test_a_deleted_record_answered_gone_is_no_disclosure(
        self, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        """A1, A2: a 410 Gone sends nothing of the record it ended, so a consented partner's
        read and vread of the deletion are neither logged as releases nor accounted."""
        detox = acting_as(anonymous, world.detox_partner)
        assert detox.delete(f"/fhir/CarePlan/{world.plan_id}").status_code == 204
        for path in ("", "/_history/2"):
            gone = anonymous.get(
                f"/fhir/CarePlan/{world.plan_id}{path}", headers=as_(anonymous, world.a)
            )
            assert gone.status_code == 410, gone.text
            assert gone.json()["issue"][0]["code"] == "deleted"
        patient_id = world.client_ref.split("/")[1]
        accounted = compliance.get(
            f"/audit/accounting/Patient/{patient_id}", params={"format": "fhir"}
        ).json()
        assert accounted.get("entry", []) == []
        logged = compliance.get("/audit/AuditEvent", params={"patient": world.client_ref}).json()
        released_to_a = [
            e["resource"]
            for e in logged.get("entry", [])
            if e["resource"]["outcome"] == "0"
            and e["resource"]["agent"][0]["who"]["reference"] == world.a.organization
        ]
        assert released_to_a == []
        earlier = anonymous.get(
            f"/fhir/CarePlan/{world.plan_id}/_history/1", headers=as_(anonymous, world.a)
        )
        assert earlier.status_code == 200  # the version before it is still released (and logged)
        accounted = compliance.get(
            f"/audit/accounting/Patient/{patient_id}", params={"format": "fhir"}
        ).json()
        assert len(accounted["entry"]) == 1

    @pytest.mark.parametrize(
        ("path", "level"),
        [("/fhir/CarePlan/_history", "history-type"), ("/fhir/_history", "history-system")],
    )
    def test_a_history_page_accounts_for_its_entries_alone(
        self, anonymous: TestClient, compliance: TestClient, world: World, path: str, level: str
    ) -> None:
        """A1, A2: as for a search, what history decides only to count and page is not
        disclosed; the page sent is, logged as the level of history it was (R4
        restful-interaction), with confidentiality labels of v3-Confidentiality."""
        detox = acting_as(anonymous, world.detox_partner)
        for _ in range(3):
            make(detox, care_plan(world.client_ref))
        page = anonymous.get(path, params={"_count": "1"}, headers=as_(anonymous, world.a)).json()
        assert len(page["entry"]) == 1
        assert page["total"] >= 4
        patient_id = world.client_ref.split("/")[1]
        lines = (
            compliance.get(f"/audit/accounting/Patient/{patient_id}", params={"format": "csv"})
            .text.strip()
            .splitlines()
        )
        assert len(lines) == 2, lines
        _date, recipient, _reference, _purpose, description, *_rest = lines[1].split(",")
        assert (recipient, description) == ("Riverside Residential", "1 care plan")
        logged = compliance.get("/audit/AuditEvent", params={"patient": world.client_ref}).json()
        released = [
            e["resource"]
            for e in logged["entry"]
            if e["resource"]["outcome"] == "0"
            and e["resource"]["agent"][0]["who"]["reference"] == world.a.organization
        ]
        assert [event["subtype"][0]["code"] for event in released] == [level]
        labels = {
            (label["system"], label["code"])
            for entity in released[0]["entity"]
            for label in entity.get("securityLabel", [])
        }
        assert ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R") in labels
        assert ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "R") not in labels

    @pytest.mark.parametrize(
        ("path", "level"),
        [
            ("/fhir/CarePlan/{plan}/_history", "history-instance"),
            ("/fhir/CarePlan/_history", "history-type"),
            ("/fhir/_history", "history-system"),
        ],
    )
    @pytest.mark.parametrize("handling", ["lenient", "strict"])
    def test_a_history_count_is_the_total_alone_and_discloses_nothing(
        self,
        anonymous: TestClient,
        compliance: TestClient,
        world: World,
        settings: Settings,
        path: str,
        level: str,
        handling: str,
    ) -> None:
        """R4 §3.1.1.5.8 (the count without the matches), §2.13(a) (minimum necessary), A1,
        A2, S3: `_summary=count` on history, in either handling, answers a history Bundle
        with its total alone, counted through the gate as a page of it would be, and nothing
        of it is logged as disclosed, accounted or labelled."""
        detox = acting_as(anonymous, world.detox_partner)
        make(detox, care_plan(world.client_ref))
        url = path.format(plan=world.plan_id)
        headers = {**as_(anonymous, world.a), "Prefer": f"handling={handling}"}
        answer = anonymous.get(url, params={"_summary": "count"}, headers=headers)
        assert answer.status_code == 200, answer.text
        counted = answer.json()
        assert (counted["type"], "entry" in counted) == ("history", False)
        assert set(counted["meta"]) == {"lastUpdated"}  # no labels, no notice: nothing left
        patient_id = world.client_ref.split("/")[1]
        accounted = compliance.get(
            f"/audit/accounting/Patient/{patient_id}", params={"format": "fhir"}
        ).json()
        assert accounted.get("entry", []) == []
        engine = make_engine(settings.database_url)
        with Session(engine) as session:
            permits = session.exec(
                select(DisclosureLogRow)
                .where(col(DisclosureLogRow.requester) == world.a.organization)
                .where(col(DisclosureLogRow.decision) == "permit")
            ).all()
        engine.dispose()
        assert [(row.interaction, row.resources) for row in permits] == []
        full = anonymous.get(url, params={"_count": "100"}, headers=as_(anonymous, world.a))
        assert counted["total"] == full.json()["total"] == len(full.json()["entry"])
        assert counted["total"] >= (1 if level == "history-instance" else 2)
        unconsented = anonymous.get(
            "/fhir/CarePlan/_history", params={"_summary": "count"}, headers=as_(anonymous, world.b)
        )
        assert unconsented.json()["total"] == 0

    def test_unknown_patient_is_404_problem(self, compliance: TestClient) -> None:
        response = compliance.get("/audit/accounting/Patient/nobody")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


def emergency_department(
    anonymous: TestClient, patient: str, name: str = "County General ED", **stated: str
) -> dict[str, str]:
    """The headers of an emergency department asking with ETREAT and the §2.51 facts (some
    `stated` otherwise), about `patient` (`Patient/{id}`, or `system|value`)."""
    er = register_partner(anonymous, scope="system/*.rs", name=name)
    facts = {
        "recovery-interop-emergency": {
            **EMERGENCY["recovery-interop-emergency"],
            "patient": patient,
            **stated,
        }
    }
    token = bearer(
        anonymous,
        er,
        scope="system/*.rs",
        purposes=["ETREAT"],
        extra={
            "extensions": {
                **facts,
                "hl7-b2b": {
                    "version": "1",
                    "organization_id": "urn:oid:1.2.3",
                    "purpose_of_use": ["ETREAT"],
                },
            }
        },
    )
    return {"Authorization": token}


class TestBreakTheGlass:
    def test_emergency_release_is_flagged_listed_and_accounted_apart(
        self, client: TestClient, anonymous: TestClient, compliance: TestClient, world: World
    ) -> None:
        """E1: ETREAT to medical personnel with the §2.51 facts; recorded and reviewable."""
        headers = emergency_department(anonymous, world.client_ref)
        detox = acting_as(anonymous, world.detox_partner)
        condition = make(detox, opioid_use_disorder(world.client_ref, world.detox))
        response = anonymous.get(f"/fhir/Condition/{condition['id']}", headers=headers)
        assert response.status_code == 200, response.text
        assert anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=headers).status_code == 404
        patient_id = world.client_ref.split("/")[1]
        flagged = compliance.get("/audit/emergencies").json()
        assert flagged["total"] >= 1
        details = {
            d["type"]: d["valueString"]
            for e in flagged["entry"]
            for entity in e["resource"]["entity"]
            for d in entity.get("detail", [])
        }
        assert details["emergency-personnel_name"] == "Dr. Robin Example"
        assert details["emergency-nature_of_emergency"].startswith("unresponsive")
        # §2.51(c)(2): who made the disclosure, the program whose record it was (probe 13 #4)
        assert details["emergency-disclosed_by"] == world.detox
        custodians = [
            agent["who"]["reference"]
            for e in flagged["entry"]
            for agent in e["resource"]["agent"]
            if agent["type"]["coding"][0]["code"] == "CST"
        ]
        assert custodians
        assert set(custodians) == {world.detox}
        letter = compliance.get(f"/audit/accounting/Patient/{patient_id}").text
        assert "medical emergency" in letter
        assert "County General ED" in letter

    def test_without_the_facts_the_glass_stays_closed(
        self, anonymous: TestClient, world: World
    ) -> None:
        er = register_partner(anonymous, scope="system/*.rs", name="Walk-in Clinic")
        headers = {"Authorization": bearer(anonymous, er, scope="system/*.rs", purposes=["ETREAT"])}
        assert anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=headers).status_code == 404

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("personnel_name", "\u200b\u200b"),
            ("personnel_affiliation", "-"),
            ("nature_of_emergency", "\u00a0\u2060"),
            ("nature_of_emergency", "x" * 1001),
            ("personnel_name", "\u3164\u3164"),
            ("personnel_affiliation", "\uffa0"),
            ("nature_of_emergency", "\u115f \u1160"),
            ("personnel_name", "\u0301\u0308"),
            ("personnel_affiliation", "\u034f\ufe0f\u3000"),
        ],
        ids=[
            "zero-width-name",
            "dash-affiliation",
            "invisible-nature",
            "a-document",
            "hangul-filler-name",
            "halfwidth-filler-affiliation",
            "jamo-filler-nature",
            "combining-marks-only",
            "ignorable-affiliation",
        ],
    )
    def test_facts_no_one_can_read_keep_the_glass_closed(
        self, anonymous: TestClient, world: World, field: str, value: str
    ) -> None:
        """Probe 10 F5 (E1): the §2.51(c) facts are recorded for compliance staff to review;
        invisible characters or punctuation alone state nothing; nor do Hangul fillers, which
        are letters to Unicode (Review 9 #13), or combining marks with nothing to sit on."""
        detox = acting_as(anonymous, world.detox_partner)
        condition = make(detox, opioid_use_disorder(world.client_ref, world.detox))
        headers = emergency_department(anonymous, world.client_ref, **{field: value})
        answer = anonymous.get(f"/fhir/Condition/{condition['id']}", headers=headers)
        assert answer.status_code == 404, answer.text

    def test_an_emergency_reaches_the_patient_it_names_never_another(
        self, anonymous: TestClient, world: World
    ) -> None:
        """§2.51 allows what one patient's bona fide emergency needs: the patient the token's
        emergency names (by id, or by an identifier one Patient carries), never another one,
        however many requests ask; a search naming no one patient and a bulk export get
        nothing under it."""
        detox = acting_as(anonymous, world.detox_partner)
        mrn = {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "ER-7"}
        other = make(detox, {"resourceType": "Patient", "name": [{"family": "Second"}]})
        first_oud = make(detox, opioid_use_disorder(world.client_ref, world.detox))
        second_oud = make(detox, opioid_use_disorder(f"Patient/{other['id']}", world.detox))
        second_ref = f"Patient/{other['id']}"
        third = make(
            detox, {"resourceType": "Patient", "identifier": [mrn], "name": [{"family": "Mrn"}]}
        )
        third_oud = make(detox, opioid_use_disorder(f"Patient/{third['id']}", world.detox))

        def found(headers: dict[str, str], params: dict[str, str]) -> list[str]:
            answer = anonymous.get("/fhir/Condition", params=params, headers=headers)
            assert answer.status_code == 200, answer.text
            return sorted(
                e["resource"]["id"]
                for e in answer.json().get("entry", [])
                if e["search"]["mode"] == "match"
            )

        about_first = emergency_department(anonymous, world.client_ref)
        assert found(about_first, {}) == []
        assert found(about_first, {"code": "http://snomed.info/sct|5602001"}) == []
        assert found(about_first, {"patient": world.client_ref}) == [first_oud["id"]]
        assert found(about_first, {"patient": second_ref}) == []
        assert found(about_first, {"patient": f"{world.client_ref},{second_ref}"}) == []
        read = anonymous.get(f"/fhir/Condition/{second_oud['id']}", headers=about_first)
        assert read.status_code == 404
        by_mrn = emergency_department(anonymous, f"{mrn['system']}|{mrn['value']}", "City ED")
        assert found(by_mrn, {"patient": f"Patient/{third['id']}"}) == [third_oud["id"]]
        assert found(by_mrn, {"patient": second_ref}) == []
        export = anonymous.get("/fhir/$export", headers={**about_first, "Prefer": "respond-async"})
        assert export.status_code == 403, export.text
        assert "never a bulk export" in export.json()["issue"][0]["diagnostics"]

    def test_no_partner_can_unbind_an_emergency_by_copying_the_patients_identifier(
        self, anonymous: TestClient, world: World
    ) -> None:
        """Probe 14 #3: of several Patients carrying the identifier, the one a Part 2 program
        wrote is the emergency's; a copy another partner writes, before the token or after
        it, leaves the §2.51 exception reaching the patient."""
        detox = acting_as(anonymous, world.detox_partner)
        mrn = {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "ER-9"}
        person = make(detox, {"resourceType": "Patient", "identifier": [mrn]})
        oud = make(detox, opioid_use_disorder(f"Patient/{person['id']}", world.detox))
        decoys = acting_as(anonymous, register_partner(anonymous, name="Decoy Clinic"))
        named = f"{mrn['system']}|{mrn['value']}"
        before = emergency_department(anonymous, named, "City ED")
        make(decoys, {"resourceType": "Patient", "identifier": [mrn], "name": [{"family": "D"}]})
        after = emergency_department(anonymous, named, "Harbor ED")
        for headers in (before, after):
            answer = anonymous.get(f"/fhir/Condition/{oud['id']}", headers=headers)
            assert answer.status_code == 200, answer.text

    def test_an_identifier_no_one_programs_patient_carries_reaches_no_one(
        self, anonymous: TestClient, world: World
    ) -> None:
        """Fail closed, and alike: two of a Part 2 program's Patients carrying the identifier,
        or none, and the emergency releases neither's records; the token endpoint, which
        decides nothing, does not tell which (§2.13(c))."""
        detox = acting_as(anonymous, world.detox_partner)
        mrn = {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "ER-TWICE"}
        twins = [
            make(detox, {"resourceType": "Patient", "identifier": [mrn], "name": [{"family": f}]})
            for f in ("One", "Two")
        ]
        records = [
            make(detox, opioid_use_disorder(f"Patient/{twin['id']}", world.detox)) for twin in twins
        ]
        for n, value in enumerate((mrn["value"], "ER-NOBODY")):
            headers = emergency_department(anonymous, f"{mrn['system']}|{value}", f"ED {n}")
            for record in records:
                answer = anonymous.get(f"/fhir/Condition/{record['id']}", headers=headers)
                assert answer.status_code == 404, answer.text
