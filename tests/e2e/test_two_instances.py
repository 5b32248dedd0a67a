"""Two instances of this service exchange a referral (issue 12, point 2): instance A, a
detox unit (this test's app and its dispatcher), pushes a referral to instance B, a real
`interop serve` process with its own database, where A is registered by its identifier. The
copy lands at B as A's referral, owned by B's own program, both resolved by identifier."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, PartnerService
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from interop.store.outbox import TransportState
from tests.e2e.conftest import _token, free_port, wait_until_serving
from tests.e2e.sync_world import SENDER_IDENTIFIER, World, refer, synthetic_npi
from tests.keys import rsa_key

pytestmark = pytest.mark.e2e

NPI = "http://hl7.org/fhir/sid/us-npi"
PROGRAM_AT_B = "Bayview Outpatient"
REAL_PROCESS_TIMEOUT = 15.0
"""B's first request (token, imports, SQLite warm-up) on a loaded CI machine can take seconds:
the world's 0.5 s is for fault rounds against the in-process app."""


@dataclass(frozen=True)
class InstanceB:
    root: str
    ehr_authorization: str  # B's own program's EHR (first party at B)
    program: str  # B's own program's Organization, at B
    a_client_id: str  # A's registration at B
    a_organization: str  # A's Organization, at B


@pytest.fixture
def instance_b(world: World, tmp_path: Path) -> Iterator[InstanceB]:
    """B on its own database and port, registering its own EHR and A as an operator would:
    A with the identifier A's Organization carries, and the public key A signs with."""
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    partners = PartnerService(engine)
    key = rsa_key()
    ehr = partners.register(
        NewPartner(
            name=PROGRAM_AT_B,
            identifiers=[(NPI, synthetic_npi(PROGRAM_AT_B))],
            scopes="system/*.cruds",
            jwks=key.jwks(),
            first_party=True,
        )
    )
    a = partners.register(
        NewPartner(
            name="Harbor Detox (instance A)",
            identifiers=[SENDER_IDENTIFIER],
            scopes="system/Patient.cru system/ServiceRequest.cru system/Task.crus"
            " system/Subscription.cr",
            jwks=world.key_jwks,
            covered_entity=True,
        )
    )
    engine.dispose()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log = tmp_path / "b.log"
    command = [sys.executable, "-m", "interop", "serve", "--port", str(port),
               "--database-url", url]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=output, stderr=output)
    try:
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        token = _token(root, ehr.client_id, key)
        yield InstanceB(root, token, ehr.organization, a.client_id, a.organization)
    finally:
        process.terminate()
        process.wait(timeout=20)


def fhir_channel_to(instance_b: InstanceB) -> ChannelConfig:
    """B reached at its FHIR server, as A's registration there (README, two instances)."""
    return ChannelConfig(
        ChannelKind.FHIR,
        f"{instance_b.root}/fhir",
        instance_b.a_client_id,
        f"{instance_b.root}/auth/token",
    )


def test_a_referral_pushed_by_another_instance_lands_as_its_referral(
    world: World, instance_b: InstanceB
) -> None:
    program_at_a = world.register(PROGRAM_AT_B, fhir_channel_to(instance_b))
    refer(world.client, program_at_a)

    [outcome] = world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)

    assert outcome.state is TransportState.ACKNOWLEDGED, outcome
    b = {"Authorization": instance_b.ehr_authorization}
    tasks = httpx.get(f"{instance_b.root}/fhir/Task", headers=b).json()
    assert tasks["total"] == 1, tasks
    copy: dict[str, Any] = tasks["entry"][0]["resource"]
    assert copy["requester"]["reference"] == instance_b.a_organization
    assert copy["requester"]["identifier"]["value"] == SENDER_IDENTIFIER[1]
    assert copy["owner"]["reference"] == instance_b.program
    orders = httpx.get(f"{instance_b.root}/fhir/ServiceRequest", headers=b).json()
    assert orders["total"] == 1
    assert orders["entry"][0]["resource"]["requester"]["reference"] == instance_b.a_organization
    # A resend updates the copy in place: still one referral at B.
    refer(world.client, program_at_a)
    world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)
    assert httpx.get(f"{instance_b.root}/fhir/Task", headers=b).json()["total"] == 1


def test_a_note_the_requester_adds_after_the_owner_moved_reaches_the_owner(
    world: World, instance_b: InstanceB
) -> None:
    """A's push carries its whole Task as A last saw it (status requested) after B accepted:
    B keeps its acceptance and takes A's note, and the delivery is acknowledged, not refused."""
    program_at_a = world.register(PROGRAM_AT_B, fhir_channel_to(instance_b))
    refer(world.client, program_at_a)
    world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)
    b = {"Authorization": instance_b.ehr_authorization, "Content-Type": "application/fhir+json"}
    [entry] = httpx.get(f"{instance_b.root}/fhir/Task", headers=b).json()["entry"]
    copy = entry["resource"]
    accepted = httpx.put(
        f"{instance_b.root}/fhir/Task/{copy['id']}", json={**copy, "status": "accepted"}, headers=b
    )
    assert accepted.status_code == 200, accepted.text
    ours = world.client.get("/fhir/Task/task-1").json()
    note = {"text": "Client prefers morning appointments"}
    noted = world.client.put("/fhir/Task/task-1", json={**ours, "note": [note]})
    assert noted.status_code == 200, noted.text

    outcomes = world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)

    assert [outcome.state for outcome in outcomes] == [TransportState.ACKNOWLEDGED], outcomes
    at_b = httpx.get(f"{instance_b.root}/fhir/Task/{copy['id']}", headers=b).json()
    assert (at_b["status"], at_b["note"]) == ("accepted", [note])
