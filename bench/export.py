"""Bulk Data $export throughput through the disclosure gate (target: 20,000 resources/s), on
the embedded SQLite database.

Run: .venv/bin/python bench/export.py [--patients 200] [--plans 100] [--page 1000]

A detox unit (a Part 2 program) holds `patients` clients with `plans` CarePlans each; a clinic
holds the consent of every other client. The clinic exports Patient and CarePlan at system
level: every resource is judged by the gate as the clinic (half released with labels and the
§2.32 notice, half withheld), each page's decisions are logged before its lines are stored,
and the lines are written to the job's chunks; then the program's own EHR exports the same
(its own records: use, logged, unlabelled). The figure is resources examined per second of
the job's run (kick-off to last chunk), with what was released beside it. Seeding writes the
rows through the store's own write (the same rows, index and origins the API writes) but
skips validation, which export never pays. Never asserted in the test suite.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from interop.app import create_app
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services.bulk_export import BulkExports
from interop.services.disclosure import patient_of
from interop.services.export_request import SYSTEM
from interop.services.partners import NewPartner
from interop.settings import Settings
from interop.store.database import unit_of_work
from interop.store.fhirdates import now_ms
from interop.store.repository import ResourceRepository, StoredVersion
from interop.store.search_params import extract
from mappings import fhir
from tests.builders import care_plan, part2_consent, part2_program, patient
from tests.keys import rsa_key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--page", type=int, default=1000)
    arguments = parser.parse_args()
    folder = tempfile.mkdtemp()
    url = f"sqlite:///{folder}/bench.sqlite3"
    settings = Settings(
        database_url=url,
        export_worker=False,
        export_page_size=arguments.page,
        audit_chain_key_file=Path(folder) / "chain.key",
    )
    app = create_app(settings)
    partners = app.state.partners
    ehr = partners.register(
        NewPartner(
            "Bench EHR",
            [("urn:oid:1.2.3", "ehr")],
            "system/*.cruds",
            jwks=rsa_key().jwks(),
            first_party=True,
        )
    )
    clinic = partners.register(
        NewPartner(
            "Bench Clinic", [("urn:oid:1.2.3", "clinic")], "system/*.rs", jwks=rsa_key().jwks()
        )
    )
    with TestClient(app):
        resources = app.state.resources
        writer = _requester(ehr.client_id, ehr.organization, first_party=True)
        detox = resources.create("Organization", part2_program(), writer, base_url="").stored
        program = f"Organization/{detox.resource_id}"
        unit = _requester(ehr.client_id, program, first_party=True)
        start = time.perf_counter()
        people = _seed(app.state.resources._engine, program, arguments.patients, arguments.plans)
        for n, subject in enumerate(people):
            if n % 2 == 0:
                consent = part2_consent(subject, program, clinic.organization)
                resources.create("Consent", consent, unit, base_url="")
        total = arguments.patients * (1 + arguments.plans)
        print(f"seeded {total} resources in {time.perf_counter() - start:.1f} s")
        exports: BulkExports = app.state.bulk_exports
        reader = _requester(clinic.client_id, clinic.organization, first_party=False)
        _measure("partner with consent for half the clients", exports, reader, total)
        _measure("the program's own EHR (use, not disclosure)", exports, unit, total)


def _seed(engine: object, program: str, patients: int, plans: int) -> list[str]:
    """Patients and their CarePlans written by the detox unit, in large transactions."""
    people: list[str] = []
    with unit_of_work(engine) as session:  # type: ignore[arg-type]
        repository = ResourceRepository(session)
        for n in range(patients):
            ident = f"p{n}"
            _write(repository, "Patient", ident, patient(mrn=f"MRN-{n}"), program)
            people.append(f"Patient/{ident}")
    for n, subject in enumerate(people):
        with unit_of_work(engine) as session:  # type: ignore[arg-type]
            repository = ResourceRepository(session)
            for k in range(plans):
                _write(repository, "CarePlan", f"c{n}-{k}", care_plan(subject), program)
    return people


def _write(
    repository: ResourceRepository, kind: str, ident: str, body: dict[str, object], origin: str
) -> None:
    moment = now_ms()
    body = {**body, "id": ident, "meta": {"versionId": "1", "lastUpdated": moment.isoformat()}}
    stored = StoredVersion(kind, ident, 1, moment, "POST", fhir.to_json(body), "", ())
    repository.write(None, stored.with_origin(origin, ()), extract(body), patient=patient_of(body))


def _measure(name: str, exports: BulkExports, reader: Requester, total: int) -> None:
    start = time.perf_counter()
    job_id = exports.kickoff(
        SYSTEM,
        [("_type", "Patient,CarePlan")],
        reader,
        request_url="bench",
        base_url="",
        prefer="respond-async",
    )
    job = exports.claim()
    assert job is not None
    assert job.job_id == job_id
    exports.run(job)
    elapsed = time.perf_counter() - start
    status = exports.status(job_id, reader, "")
    assert status.manifest is not None, status.error
    released = sum(
        chunk.count(b"\n")
        for item in status.manifest["output"]
        for chunk in exports.file(job_id, item["type"], reader).chunks
    )
    print(
        f"{name}: {total} resources through the gate in {elapsed:.2f} s = "
        f"{total / elapsed:,.0f} resources/s ({released} released)"
    )
    exports.delete(job_id, reader)


def _requester(client_id: str, organization: str, *, first_party: bool) -> Requester:
    return Requester(
        client_id=client_id,
        organization=organization,
        scopes=parse_scopes("system/*.rs"),
        purposes=("TREAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=first_party,
    )


if __name__ == "__main__":
    main()
