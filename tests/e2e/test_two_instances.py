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
from interop.sync.runtime import poller
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


def b_headers(instance_b: InstanceB) -> dict[str, str]:
    return {"Authorization": instance_b.ehr_authorization, "Content-Type": "application/fhir+json"}


def copy_at_b(instance_b: InstanceB) -> dict[str, Any]:
    [entry] = httpx.get(f"{instance_b.root}/fhir/Task", headers=b_headers(instance_b)).json()[
        "entry"
    ]
    copy: dict[str, Any] = entry["resource"]
    return copy


def poll_b(world: World) -> list[Any]:
    settings = world.settings.model_copy(update={"sync_timeout_seconds": REAL_PROCESS_TIMEOUT})
    with poller(settings, world.engine, world.clock) as reader:
        return reader.run_once()


def test_notes_each_side_signs_as_itself_cross_both_ways(
    world: World, instance_b: InstanceB
) -> None:
    """Probe 9 H2: each server names the signer by its own id, so the other refused the note,
    and with it every later change of the referral (the loop stayed open both ways)."""
    program_at_a = world.register(PROGRAM_AT_B, fhir_channel_to(instance_b))
    refer(world.client, program_at_a)
    world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)
    copy = copy_at_b(instance_b)
    theirs = {"text": "Bed 4 from Monday", "authorReference": {"reference": instance_b.program}}
    accepted = httpx.put(
        f"{instance_b.root}/fhir/Task/{copy['id']}",
        json={**copy, "status": "accepted", "note": [theirs]},
        headers=b_headers(instance_b),
    )
    assert accepted.status_code == 200, accepted.text

    [report] = poll_b(world)

    assert (report.applied, report.held) == (1, 0), report
    ours = world.client.get("/fhir/Task/task-1").json()
    assert ours["status"] == "accepted"
    assert ours["note"] == [
        {
            "text": "Bed 4 from Monday",
            "authorReference": {"reference": f"Organization/{program_at_a}"},
        }
    ]
    mine = {
        "text": "Client prefers mornings",
        "authorReference": {"reference": "Organization/sender"},
    }
    noted = world.client.put("/fhir/Task/task-1", json={**ours, "note": [*ours["note"], mine]})
    assert noted.status_code == 200, noted.text
    cancelled = world.client.put(
        "/fhir/Task/task-1",
        json={**noted.json(), "status": "cancelled", "statusReason": {"text": "went elsewhere"}},
    )
    assert cancelled.status_code == 200, cancelled.text

    outcomes = world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)

    assert {outcome.state for outcome in outcomes} == {TransportState.ACKNOWLEDGED}, outcomes
    at_b = copy_at_b(instance_b)
    assert at_b["status"] == "cancelled"
    assert [note["text"] for note in at_b["note"]] == [
        "Bed 4 from Monday",
        "Client prefers mornings",
    ]
    signer = at_b["note"][1]["authorReference"]
    assert signer["identifier"] == {"system": SENDER_IDENTIFIER[0], "value": SENDER_IDENTIFIER[1]}


def test_a_note_the_owner_signs_as_the_requester_is_held_not_applied(
    world: World, instance_b: InstanceB
) -> None:
    program_at_a = world.register(PROGRAM_AT_B, fhir_channel_to(instance_b))
    refer(world.client, program_at_a)
    world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)
    copy = copy_at_b(instance_b)
    forged = {"text": "We withdraw", "authorReference": {"reference": instance_b.a_organization}}
    httpx.put(
        f"{instance_b.root}/fhir/Task/{copy['id']}",
        json={**copy, "status": "accepted", "note": [forged]},
        headers=b_headers(instance_b),
    )

    [report] = poll_b(world)

    assert (report.applied, report.held) == (0, 1), report
    assert world.client.get("/fhir/Task/task-1").json()["status"] == "requested"
    assert "may not name the requester as its author" in str(world.held())


def test_a_task_a_third_partner_writes_with_our_tasks_url_is_not_the_owners_answer(
    world: World, instance_b: InstanceB, tmp_path: Path
) -> None:
    """Probe 9 H3: the poller took any Task carrying our Task's URL as the owner's copy, so a
    third partner of B declined our referral in B's name."""
    program_at_a = world.register(PROGRAM_AT_B, fhir_channel_to(instance_b))
    refer(world.client, program_at_a)
    world.run(sync_timeout_seconds=REAL_PROCESS_TIMEOUT)
    copy = copy_at_b(instance_b)
    engine = make_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    key = rsa_key()
    cedar = PartnerService(engine).register(
        NewPartner(
            name="Cedar Clinic",
            identifiers=[(NPI, synthetic_npi("Cedar Clinic"))],
            scopes="system/Task.crus",
            jwks=key.jwks(),
        )
    )
    engine.dispose()
    as_cedar = {
        "Authorization": _token(instance_b.root, cedar.client_id, key),
        "Content-Type": "application/fhir+json",
    }
    squat = {key: value for key, value in copy.items() if key not in ("id", "meta")}
    squat |= {
        "for": {"reference": "Patient/nobody"},
        "requester": {"reference": cedar.organization},
        "owner": {"reference": cedar.organization},
    }
    written = httpx.post(f"{instance_b.root}/fhir/Task", json=squat, headers=as_cedar)
    assert written.status_code == 201, written.text
    declined = {**written.json(), "status": "rejected", "statusReason": {"text": "at capacity"}}
    answer = httpx.put(
        f"{instance_b.root}/fhir/Task/{declined['id']}", json=declined, headers=as_cedar
    )
    assert answer.status_code == 200, answer.text

    [report] = poll_b(world)

    assert (report.applied, report.held) == (0, 1), report
    assert world.client.get("/fhir/Task/task-1").json()["status"] == "requested"
    assert "not the partner's copy of our referral" in str(world.held())
