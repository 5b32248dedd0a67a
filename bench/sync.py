"""The sync dispatcher's throughput: referrals delivered per second to a FHIR partner on
loopback (a real HTTP server verifying our SMART client assertions), on the embedded SQLite
database, one dispatcher.

Run: .venv/bin/python bench/sync.py [--referrals 300]

Each delivery is the whole path: claim, the gate as the partner (ServiceRequest and Task read,
decided, labelled; the decisions logged in the hash chain), the transaction POSTed, the answer
judged, the row finished. Never asserted in the test suite: the figures depend on the machine.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from interop.app import create_app
from interop.services.partners import NewPartner
from interop.settings import Settings
from interop.store.database import make_engine
from interop.sync.runtime import dispatcher
from tests.conftest import RegisteredPartner, bearer
from tests.e2e.partners import FhirPartner, serving
from tests.e2e.sync_world import fhir_channel, put, refer
from tests.keys import rsa_key


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=300)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        key = rsa_key("sync-1")
        pem = Path(folder) / "sync.pem"
        pem.write_bytes(
            key.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        settings = Settings(
            database_url=f"sqlite:///{folder}/bench.sqlite3",
            public_base_url="http://testserver",
            sync_signing_key_file=pem,
            sync_signing_kid="sync-1",
        )
        partner = FhirPartner(key.jwks())
        with TestClient(create_app(settings)) as client, serving(partner):
            service = client.app.state.partners  # type: ignore[attr-defined]
            ehr = rsa_key()
            registered = service.register(
                NewPartner(
                    "EHR", [("urn:x", "ehr")], "system/*.cruds", ehr.jwks(), first_party=True
                )
            )
            harness = RegisteredPartner(registered.client_id, registered.organization, ehr)
            client.headers["Authorization"] = bearer(client, harness)
            program = service.register(
                NewPartner(
                    "Bayview",
                    [("urn:x", "bayview")],
                    "system/*.rs",
                    rsa_key().jwks(),
                    covered_entity=True,
                    channel=fhir_channel(partner),
                )
            ).organization.split("/")[1]
            refer(client, program)
            for index in range(arguments.referrals - 1):
                task = client.get("/fhir/Task/task-1").json()
                put(client, {**task, "id": f"task-{index + 2}"})
        engine = make_engine(settings.database_url, chain_key=settings.chain_key())
        with dispatcher(settings, engine) as worker:
            started = time.perf_counter()
            rounds: list[float] = []
            delivered = 0
            while True:
                begun = time.perf_counter()
                outcomes = worker.run_once(20)
                if not outcomes:
                    break
                rounds.append((time.perf_counter() - begun) / len(outcomes))
                delivered += len(outcomes)
            elapsed = time.perf_counter() - started
        engine.dispose()
    median = statistics.median(rounds) * 1e3
    print(
        f"sync dispatch to a loopback FHIR partner: {delivered} deliveries in {elapsed:.2f} s = "
        f"{delivered / elapsed:,.0f}/s; per delivery median {median:.2f} ms"
    )
    return 0 if delivered == arguments.referrals else 1


if __name__ == "__main__":
    sys.exit(main())
