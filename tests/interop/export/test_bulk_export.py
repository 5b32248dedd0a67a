"""Bulk Data $export (Bulk Data Access IG v2.0.0) over real HTTP and a real database: the
kick-off, status, manifest, file and delete protocol, and every exported resource through the
disclosure gate as the partner that asked (PART2.md P2, S1, S2, S3, A1, A2)."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from interop.app import create_app
from interop.services.disclosure import notice_of
from interop.services.export_worker import ExportWorker
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.fhirdates import format_instant
from interop.store.tables import DisclosureLogRow
from tests.builders import care_plan, patient
from tests.conftest import bearer, register_partner
from tests.interop.disclosure.conftest import acting_as, make
from tests.interop.export.conftest import ASYNC, World, as_, export, finished, lines

PART2 = {"42CFRPart2", "NORDSCLCD", "R"}


def codes(resource: dict[str, Any]) -> set[str]:
    return {label["code"] for label in resource.get("meta", {}).get("security", [])}


def outputs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in manifest["output"]}


def counted(client: TestClient, item: dict[str, Any], headers: dict[str, str]) -> int:
    """How many lines the file holds as downloaded (a partner's manifest gives no count)."""
    return len(lines(client, item["url"], headers))


def families(resources: list[dict[str, Any]]) -> set[str]:
    return {r["name"][0]["family"] for r in resources if r["resourceType"] == "Patient"}


class TestKickoff:
    def test_needs_prefer_respond_async(self, anonymous: TestClient, world: World) -> None:
        response = anonymous.get("/fhir/$export", headers=as_(anonymous, world.a))
        assert response.status_code == 400
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "respond-async" in response.text

    @pytest.mark.parametrize(
        "params",
        [
            {"_elements": "id"},
            {"_outputFormat": "text/csv"},
            {"_type": "Observation"},
            {"_since": "yesterday"},
            {"_type": "Patient", "_typeFilter": "Patient?_sort=name"},
            {"_type": "Patient", "_typeFilter": "Patient?shoe-size=12"},
        ],
    )
    def test_unsupported_parameters_are_400(
        self, anonymous: TestClient, world: World, params: dict[str, str]
    ) -> None:
        headers = {**ASYNC, **as_(anonymous, world.a)}
        response = anonymous.get("/fhir/$export", params=params, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["resourceType"] == "OperationOutcome"

    def test_outside_the_compartment_is_400_at_patient_level(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = {**ASYNC, **as_(anonymous, world.a)}
        response = anonymous.get("/fhir/Patient/$export?_type=Organization", headers=headers)
        assert response.status_code == 400

    def test_lenient_handling_names_what_was_left_out_in_the_error_file(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        lenient = {**headers, "Prefer": "respond-async, handling=lenient"}
        response = anonymous.get(
            "/fhir/$export?_type=Patient&_pretty=true", headers={**ASYNC, **lenient}
        )
        assert response.status_code == 202
        manifest = finished(anonymous, response.headers["Content-Location"], headers)
        (error,) = manifest["error"]
        assert error["type"] == "OperationOutcome"
        assert error["count"] == 1
        (note,) = lines(anonymous, error["url"], headers)
        assert "_pretty" in note["issue"][0]["diagnostics"]

    @pytest.mark.parametrize(
        "param", [("patient", "Patient/x"), ("_elements", "id"), ("includeAssociatedData", "x")]
    )
    def test_a_narrowing_parameter_is_refused_even_under_lenient_handling(
        self, anonymous: TestClient, world: World, param: tuple[str, str]
    ) -> None:
        """Left out, it would export more than was asked for."""
        lenient = {**as_(anonymous, world.a), "Prefer": "respond-async, handling=lenient"}
        response = anonymous.get("/fhir/Group/g/$export", params=[param], headers=lenient)
        assert response.status_code == 400, response.text
        assert "more than was asked for" in response.json()["issue"][0]["diagnostics"]

    @pytest.mark.parametrize(
        "output_format", ["application/fhir+ndjson", "application/ndjson", "ndjson"]
    )
    def test_ndjson_in_each_spelling(
        self, anonymous: TestClient, world: World, output_format: str
    ) -> None:
        headers = as_(anonymous, world.a)
        status = export(
            anonymous, "/fhir/$export", headers, _type="Patient", _outputFormat=output_format
        )
        [patients] = finished(anonymous, status, headers)["output"]
        assert len(lines(anonymous, patients["url"], headers)) == 2


class TestStatusAndManifest:
    def test_queued_job_polls_202_then_completes_with_the_manifest(
        self, settings: Settings, world: World, anonymous: TestClient
    ) -> None:
        """202 + Retry-After + X-Progress while not done; then 200 application/json with
        transactionTime, request, requiresAccessToken, output (type, url, count), error, and
        an Expires header (IG "Bulk Data Status Request")."""
        quiet = settings.model_copy(update={"export_worker": False})
        with TestClient(create_app(quiet)) as still:
            headers = as_(anonymous, world.a)
            before = datetime.now(UTC)
            status = export(still, "/fhir/$export", headers, _type="Patient,CarePlan")
            waiting = still.get(status, headers=headers)
            assert waiting.status_code == 202
            assert waiting.headers["X-Progress"] == "queued"
            assert int(waiting.headers["Retry-After"]) >= 1
            worker = ExportWorker(still.app.state.bulk_exports, 1.0)  # type: ignore[attr-defined]
            assert worker.run_once()
            done = still.get(status, headers=headers)
        assert done.status_code == 200
        assert done.headers["content-type"].startswith("application/json")
        assert "GMT" in done.headers["Expires"]
        manifest = done.json()
        assert manifest["request"] == "http://testserver/fhir/$export?_type=Patient%2CCarePlan"
        assert manifest["requiresAccessToken"] is True
        assert manifest["error"] == []
        moment = datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
        assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC)
        assert {item["type"]: counted(anonymous, item, headers) for item in manifest["output"]} == {
            "CarePlan": 1,
            "Patient": 2,
        }
        for item in manifest["output"]:
            assert item["url"].startswith("http://testserver/fhir/$export-file/")
            assert "count" not in item  # a partner's file can shrink as it is downloaded

    def test_a_job_queued_before_a_restart_is_run_by_the_next_process(
        self, settings: Settings, world: World, anonymous: TestClient
    ) -> None:
        quiet = settings.model_copy(update={"export_worker": False})
        headers = as_(anonymous, world.a)
        with TestClient(create_app(quiet)) as stopped:
            status = export(stopped, "/fhir/Patient/$export", headers)
        with TestClient(create_app(settings)) as restarted:
            manifest = finished(restarted, status, headers)
        assert counted(anonymous, outputs(manifest)["Patient"], headers) == 2

    def test_delete_removes_the_job_and_its_files(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        status = export(anonymous, "/fhir/$export", headers, _type="Patient")
        url = outputs(finished(anonymous, status, headers))["Patient"]["url"]
        deleted = anonymous.delete(status, headers=headers)
        assert deleted.status_code == 202
        gone = anonymous.get(status, headers=headers)
        assert gone.status_code == 404
        assert gone.json()["resourceType"] == "OperationOutcome"
        assert anonymous.get(url, headers=headers).status_code == 404

    def test_another_partner_cannot_see_poll_read_or_delete_the_job(
        self, anonymous: TestClient, world: World
    ) -> None:
        """The files are the requester's: to anyone else the job is unknown (404 alike)."""
        headers = as_(anonymous, world.a)
        status = export(anonymous, "/fhir/$export", headers, _type="Patient")
        url = outputs(finished(anonymous, status, headers))["Patient"]["url"]
        other = as_(anonymous, world.b)
        unknown = anonymous.get(status.rsplit("/", 1)[0] + "/no-such-job", headers=other)
        for response in (
            anonymous.get(status, headers=other),
            anonymous.get(url, headers=other),
            anonymous.delete(status, headers=other),
        ):
            assert response.status_code == unknown.status_code == 404
            assert response.json() == unknown.json()
        assert anonymous.get(url, headers=headers).status_code == 200
        assert anonymous.get(status).status_code == 401


class TestThroughTheGate:
    def test_consented_partner_gets_the_part2_record_labelled(
        self, anonymous: TestClient, world: World
    ) -> None:
        """S1/S2: released as the gate releases it, with labels and the §2.32 notice."""
        headers = as_(anonymous, world.a)
        manifest = finished(anonymous, export(anonymous, "/fhir/$export", headers), headers)
        files = outputs(manifest)
        (plan,) = lines(anonymous, files["CarePlan"]["url"], headers)
        assert plan["id"] == world.plan_id
        assert codes(plan) >= PART2
        assert "part 2" in (notice_of(plan) or "").lower()
        people = lines(anonymous, files["Patient"]["url"], headers)
        assert families(people) == {"Partwo", "Ordinary"}
        assert len(people) == 2

    def test_without_consent_the_record_is_absent_from_files_counts_and_errors(
        self, anonymous: TestClient, world: World
    ) -> None:
        """P2/S3: withheld means absent, in every file, count, progress text and error."""
        headers = as_(anonymous, world.b)
        manifest = finished(anonymous, export(anonymous, "/fhir/$export", headers), headers)
        files = outputs(manifest)
        assert "CarePlan" not in files
        assert "Consent" not in files
        people = lines(anonymous, files["Patient"]["url"], headers)
        assert families(people) == {"Ordinary"}
        assert counted(anonymous, files["Patient"], headers) == 1
        assert manifest["error"] == []
        everything = b"".join(
            anonymous.get(item["url"], headers=headers).content for item in manifest["output"]
        )
        assert b"Partwo" not in everything
        assert world.plan_id.encode() not in everything

    def test_a_file_downloaded_after_a_revocation_leaves_the_revoked_lines_out(
        self, anonymous: TestClient, client: TestClient, settings: Settings, world: World
    ) -> None:
        """C6: the download is the disclosure. Lines whose consent was revoked after the job
        ran stay here, the rest are served, and the withholding is logged (A1)."""
        headers = as_(anonymous, world.a)
        files = outputs(finished(anonymous, export(anonymous, "/fhir/$export", headers), headers))
        consent = client.get(f"/fhir/Consent/{world.consent_id}").json()
        revoked = client.put(
            f"/fhir/Consent/{world.consent_id}", json={**consent, "status": "inactive"}
        )
        assert revoked.status_code == 200, revoked.text
        assert lines(anonymous, files["CarePlan"]["url"], headers) == []
        assert families(lines(anonymous, files["Patient"]["url"], headers)) == {"Ordinary"}
        engine = make_engine(settings.database_url)
        with Session(engine) as session:
            withheld = session.exec(
                select(DisclosureLogRow).where(
                    col(DisclosureLogRow.interaction) == "export-download",
                    col(DisclosureLogRow.decision) == "deny",
                )
            ).all()
        engine.dispose()
        assert any(f"CarePlan/{world.plan_id}" in row.resources for row in withheld)

    def test_decisions_are_logged_and_the_download_is_accounted(
        self, anonymous: TestClient, settings: Settings, world: World
    ) -> None:
        """A1: each decision of the job in the disclosure log (permits and denials), as a
        decision only, since the files stay here; A2: the download is the disclosure the
        patient's accounting lists, once it happens."""
        compliance = anonymous.app.state.compliance  # type: ignore[attr-defined]
        patient_id = world.client_ref.split("/")[1]
        manifests = {}
        for partner in (world.a, world.b):
            headers = as_(anonymous, partner)
            manifests[partner] = finished(
                anonymous, export(anonymous, "/fhir/$export", headers), headers
            )
        plan = f"CarePlan/{world.plan_id}"
        prepared = _logged(settings, "export-prepare")
        granted = [
            r for r in prepared if r.requester == world.a.organization and plan in r.resources
        ]
        refused = [
            r for r in prepared if r.requester == world.b.organization and plan in r.resources
        ]
        assert [r.decision for r in granted] == ["permit"]
        assert granted[0].consent == f"Consent/{world.consent_id}"
        assert [r.decision for r in refused] == ["deny"]
        report = compliance.accounting(patient_id, datetime.now(UTC))
        assert not [d for d in report.with_consent if d.row.interaction.startswith("export")]
        headers = as_(anonymous, world.a)
        assert lines(anonymous, outputs(manifests[world.a])["CarePlan"]["url"], headers)
        report = compliance.accounting(patient_id, datetime.now(UTC))
        downloaded = [d for d in report.with_consent if d.row.interaction == "export-download"]
        assert {d.recipient for d in downloaded} == {world.a.organization}
        assert any("care plan" in d.description for d in downloaded)
        assert {d.consent for d in downloaded} == {f"Consent/{world.consent_id}"}

    def test_a_file_is_decided_for_the_token_that_downloads_it(
        self, anonymous: TestClient, world: World
    ) -> None:
        """The download is decided as the partner asks now: a token for legal proceedings
        (HLEGAL, which only a consent of its own permits: PART2.md C4, §2.31(d)) or one whose
        scopes no longer cover the type gets none of the Part 2 lines the kick-off's could."""
        headers = as_(anonymous, world.a)
        files = outputs(finished(anonymous, export(anonymous, "/fhir/$export", headers), headers))
        url = files["CarePlan"]["url"]
        assert [plan["id"] for plan in lines(anonymous, url, headers)] == [world.plan_id]
        legal = as_(anonymous, world.a, purposes=["urn:oid:2.16.840.1.113883.5.8#HLEGAL"])
        assert lines(anonymous, url, legal) == []
        narrow = {"Authorization": bearer(anonymous, world.a, scope="system/Organization.rs")}
        assert lines(anonymous, url, narrow) == []
        assert [plan["id"] for plan in lines(anonymous, url, headers)] == [world.plan_id]

    def test_patient_and_group_levels_walk_the_compartment(
        self, anonymous: TestClient, client: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        patients = finished(anonymous, export(anonymous, "/fhir/Patient/$export", headers), headers)
        assert set(outputs(patients)) == {"CarePlan", "Consent", "Patient"}
        group = make(
            client,
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": world.client_ref}}],
            },
        )
        status = export(anonymous, f"/fhir/Group/{group['id']}/$export", headers)
        files = outputs(finished(anonymous, status, headers))
        assert families(lines(anonymous, files["Patient"]["url"], headers)) == {"Partwo"}
        assert counted(anonymous, files["CarePlan"], headers) == 1
        unknown = anonymous.get("/fhir/Group/no-such-group/$export", headers={**ASYNC, **headers})
        assert unknown.status_code == 404


class TestFilters:
    def test_type_since_and_type_filter_select_exactly(
        self, anonymous: TestClient, client: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        time.sleep(0.01)
        since = format_instant(datetime.now(UTC))
        time.sleep(0.01)
        later = make(client, patient(family="Later", mrn="MRN-LATER"))
        make(client, care_plan(f"Patient/{later['id']}"))
        only_later = outputs(
            finished(
                anonymous,
                export(anonymous, "/fhir/$export", headers, _type="Patient", _since=since),
                headers,
            )
        )
        assert list(only_later) == ["Patient"]
        assert families(lines(anonymous, only_later["Patient"]["url"], headers)) == {"Later"}
        filtered = outputs(
            finished(
                anonymous,
                export(
                    anonymous,
                    "/fhir/$export",
                    headers,
                    _type="Patient,CarePlan",
                    _typeFilter="Patient?family=Ordinary,Patient?family=Partwo&gender=unknown",
                ),
                headers,
            )
        )
        assert set(filtered) == {"Patient", "CarePlan"}
        assert families(lines(anonymous, filtered["Patient"]["url"], headers)) == {
            "Ordinary",
            "Partwo",
        }
        assert counted(anonymous, filtered["CarePlan"], headers) == 2


def test_a_disabled_partner_job_fails_without_exporting(
    anonymous: TestClient, settings: Settings
) -> None:
    partner = register_partner(anonymous, scope="system/*.rs", name="Soon Disabled")
    headers = {"Authorization": bearer(anonymous, partner, scope="system/*.rs")}
    quiet = settings.model_copy(update={"export_worker": False})
    with TestClient(create_app(quiet)) as still:
        status = export(still, "/fhir/$export", headers, _type="Patient")
        still.app.state.partners.set_enabled(partner.client_id, False)  # type: ignore[attr-defined]
        ExportWorker(still.app.state.bulk_exports, 1.0).run_once()  # type: ignore[attr-defined]
        still.app.state.partners.set_enabled(partner.client_id, True)  # type: ignore[attr-defined]
        failed = still.get(status, headers=headers)
    assert failed.status_code == 500
    assert failed.json()["issue"][0]["diagnostics"] == "the requesting client is no longer enabled"


def test_consented_partner_sees_the_unit_writing_as_itself(
    anonymous: TestClient, world: World
) -> None:
    """The detox unit's own records are its use, not a disclosure: exported unlabelled."""
    headers = as_(anonymous, world.detox_partner)
    files = outputs(finished(anonymous, export(anonymous, "/fhir/$export", headers), headers))
    (plan,) = lines(anonymous, files["CarePlan"]["url"], headers)
    assert "42CFRPart2" not in codes(plan)
    assert acting_as is not None


def _logged(settings: Settings, interaction: str) -> list[DisclosureLogRow]:
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(DisclosureLogRow).where(col(DisclosureLogRow.interaction) == interaction)
            ).all()
        )
    engine.dispose()
    return rows
