"""The disclosure gate's cost on a read, with 20 consents on file for the patient
(target: p99 under 1 ms), on the embedded SQLite database.

Run: .venv/bin/python bench/gate.py [--runs 2000] [--database-url URL]

Measured separately, since they are paid separately: the decision (a fresh gate per read:
the patient's 20 consents read and mapped, the record classified, the engine asked, the
labels applied) and the disclosure-log write that follows every request (one hash-chained
row). Never asserted in the test suite: the figures depend on the machine.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from interop.app import create_app
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services.disclosure import DisclosureGate
from interop.services.partners import NewPartner
from interop.settings import Settings
from interop.store.database import unit_of_work
from interop.store.repository import ResourceRepository, StoredVersion
from tests.builders import care_plan, part2_consent, part2_program, patient
from tests.keys import rsa_key

JSON = {"Content-Type": "application/fhir+json"}
CONSENTS = 20


def _percentiles(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    print(f"{name}: median {p50:.0f} µs, p99 {p99:.0f} µs ({len(samples)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--database-url")
    arguments = parser.parse_args()
    folder = tempfile.mkdtemp()
    url = arguments.database_url or f"sqlite:///{folder}/bench.sqlite3"
    app = create_app(Settings(database_url=url))
    ehr = app.state.partners.register(
        NewPartner(
            "Bench EHR",
            [("urn:oid:1.2.3", "ehr")],
            "system/*.cruds",
            jwks=rsa_key().jwks(),
            first_party=True,
        )
    )
    recipient = app.state.partners.register(
        NewPartner(
            "Bench Clinic", [("urn:oid:1.2.3", "clinic")], "system/*.rs", jwks=rsa_key().jwks()
        )
    )
    writer = _requester(ehr.client_id, ehr.organization, first_party=True)
    with TestClient(app):
        resources = app.state.resources
        detox = resources.create("Organization", part2_program(), writer, base_url="").stored
        program = f"Organization/{detox.resource_id}"
        # The detox unit's own systems write its records: their origin makes them Part 2 data.
        writer = _requester(ehr.client_id, program, first_party=True)
        person = resources.create(
            "Patient", patient(managingOrganization={"reference": program}), writer, base_url=""
        ).stored
        subject = f"Patient/{person.resource_id}"
        plan = resources.create(
            "CarePlan", care_plan(subject, author={"reference": program}), writer, base_url=""
        ).stored
        for n in range(CONSENTS - 1):
            other = part2_consent(subject, program, f"Organization/other-{n}", purposes=("HPAYMT",))
            resources.create("Consent", other, writer, base_url="")
        resources.create(
            "Consent", part2_consent(subject, program, recipient.organization), writer, base_url=""
        )
        reader = _requester(recipient.client_id, recipient.organization, first_party=False)
        _measure(app.state.resources._engine, plan, reader, arguments.runs)


def _measure(engine: object, plan: StoredVersion, reader: Requester, runs: int) -> None:
    gates = DisclosureGate(engine)  # type: ignore[arg-type]
    decide_times: list[float] = []
    record_times: list[float] = []
    released = 0
    for _ in range(runs):
        with unit_of_work(engine, writes=False) as session:  # type: ignore[arg-type]
            stored = ResourceRepository(session).version("CarePlan", plan.resource_id, 1)
            assert stored is not None
            start = time.perf_counter()
            gate = gates.open(session, reader, "read")
            released += gate.admit(stored) is not None
            decide_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        gates.record(gate)
        record_times.append(time.perf_counter() - start)
    assert released == runs, "the consented read should be released every time"
    _percentiles(f"gate decision on a read, {CONSENTS} consents on file", decide_times)
    _percentiles("disclosure-log write per request", record_times)


def _requester(client_id: str, organization: str, *, first_party: bool) -> Requester:
    return Requester(
        client_id=client_id,
        organization=organization,
        scopes=parse_scopes("system/*.cruds"),
        purposes=("TREAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=first_party,
    )


if __name__ == "__main__":
    main()
