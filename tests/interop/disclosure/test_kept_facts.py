"""What the gate keeps between requests (a patient's directives, the Organizations) is dropped
as soon as a committed write changes it, in commit order, and never holds what a transaction
wrote before it committed (interop.store.markers)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.services.resources import ResourceOperations, internal_operations
from interop.services.search_parser import Paging
from interop.settings import Settings
from interop.store.database import make_engine, unit_of_work
from tests.builders import care_plan, part2_consent
from tests.conftest import RegisteredPartner, register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@contextmanager
def writing(settings: Settings, on_behalf_of: str) -> Iterator[ResourceOperations]:
    """A transaction of the product's own write path, committed when the block ends."""
    engine = make_engine(settings.database_url, chain_key=settings.chain_key())
    try:
        with (
            unit_of_work(engine) as session,
            internal_operations(
                session, "test-writer", paging=Paging(1, 1), on_behalf_of=on_behalf_of
            ) as operations,
        ):
            yield operations
    finally:
        engine.dispose()


def revoked(world: World) -> dict[str, Any]:
    """The consent partner A holds, revoked (status inactive)."""
    stored = part2_consent(world.client_ref, world.detox, world.a.organization, status="inactive")
    return {**stored, "id": world.consent_id}


def reads_plan(anonymous: TestClient, world: World, partner: RegisteredPartner) -> int:
    """How the detox unit's care plan answers the partner."""
    answer = anonymous.get(f"/fhir/CarePlan/{world.plan_id}", headers=as_(anonymous, partner))
    return answer.status_code


def test_a_revocation_committed_after_a_later_write_is_honoured(
    anonymous: TestClient, world: World, settings: Settings, database_url: str
) -> None:
    """On PostgreSQL a revocation may hold an older key than a write that commits before it:
    the gate must not keep the patient's old directives under the newer write's marker."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serializes writers: a second writer waits for the first to commit")
    assert reads_plan(anonymous, world, world.a) == 200
    revoking_written, other_committed = threading.Event(), threading.Event()

    def revoke() -> None:
        with writing(settings, world.detox) as operations:
            operations.update("Consent", world.consent_id, revoked(world))
            revoking_written.set()
            assert other_committed.wait(30)

    revoker = threading.Thread(target=revoke)
    revoker.start()
    assert revoking_written.wait(30)
    other = part2_consent(world.ordinary_ref, world.detox, world.b.organization)
    with writing(settings, world.detox) as operations:
        operations.create("Consent", other, base_url="")
    assert reads_plan(anonymous, world, world.a) == 200  # kept under the markers as they are now
    other_committed.set()
    revoker.join(30)
    assert reads_plan(anonymous, world, world.a) == 404


def test_a_consent_written_in_a_transaction_that_rolls_back_is_never_relied_on(
    anonymous: TestClient, world: World
) -> None:
    """The detox unit's transaction writes a permit for partner B, reads a clinic's record of
    the same client (a gated read: the client's directives are read, with the permit), then
    fails: no later request may rely on the permit that never was."""
    clinic = register_partner(anonymous, name="Primary Care Clinic")
    plan = make(acting_as(anonymous, clinic), care_plan(world.client_ref))
    phantom = part2_consent(world.client_ref, world.detox, world.b.organization)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7d0c7a51-8f5e-4d4b-9a53-1f0e6c2b9a11",
                "resource": phantom,
                "request": {"method": "POST", "url": "Consent"},
            },
            {"request": {"method": "GET", "url": f"CarePlan/{plan['id']}"}},
            {"request": {"method": "GET", "url": "CarePlan/no-such-plan"}},
        ],
    }
    detox = acting_as(anonymous, world.detox_partner)
    failed = detox.post("/fhir", json=transaction, headers=FHIR_JSON)
    assert failed.status_code == 404, failed.text
    assert reads_plan(anonymous, world, world.b) == 404
    assert reads_plan(anonymous, world, world.a) == 200


def test_a_refusal_in_a_batch_holds_for_the_entries_after_it(
    anonymous: TestClient, world: World
) -> None:
    """Each batch entry is its own transaction: an entry after a committed refusal is decided
    by the refusal, not by the directives an earlier entry read."""
    clinic = register_partner(anonymous, name="Batching Clinic")
    permit = part2_consent(world.client_ref, world.detox, clinic.organization)
    make(acting_as(anonymous, world.detox_partner), permit)
    refusal = part2_consent(world.client_ref, world.detox, clinic.organization)
    refusal["provision"]["provision"][0]["type"] = "deny"
    read = {"request": {"method": "GET", "url": f"CarePlan/{world.plan_id}"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            read,
            {"resource": refusal, "request": {"method": "POST", "url": "Consent"}},
            read,
        ],
    }
    answered = acting_as(anonymous, clinic).post("/fhir", json=bundle, headers=FHIR_JSON)
    assert answered.status_code == 200, answered.text
    statuses = [entry["response"]["status"] for entry in answered.json()["entry"]]
    assert statuses == ["200 OK", "201 Created", "404 Not Found"]
    assert "Partwo" not in str(answered.json()["entry"][2])
