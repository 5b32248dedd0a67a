"""`interop demo` seeds the story; an independent FHIR client reads it from a running server."""

import subprocess
import sys

import pytest
from fhirpy import SyncFHIRClient

from interop.services.demo import CLIENT
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def test_demo_story_read_by_fhirpy(live_server: LiveServer, database_url: str) -> None:
    seeded = subprocess.run(
        [sys.executable, "-m", "interop", "demo", "--database-url", database_url],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert CLIENT in seeded.stdout
    client = SyncFHIRClient(live_server.base, authorization=live_server.authorization)
    bundle = (
        client.resources("CarePlan")
        .search(patient=f"Patient/{CLIENT}")
        .include("CarePlan", "goal")
        .fetch_raw()
    )
    modes = [entry["search"]["mode"] for entry in bundle["entry"]]
    assert modes.count("match") == 1
    goals = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Goal"]
    domains = {
        coding["code"]
        for goal in goals
        for category in goal.get("category", [])
        for coding in category.get("coding", [])
    }
    assert len(goals) == 8
    assert len(domains) >= 6
    episodes = (
        client.resources("EpisodeOfCare").search(patient=f"Patient/{CLIENT}").sort("date").fetch()
    )
    assert [e.id for e in episodes] == [
        "episode-detox",
        "episode-residential",
        "episode-iop",
        "episode-aftercare",
    ]
    handoff = client.reference("Task", "handoff-to-aftercare").to_resource()
    assert handoff["focus"]["reference"] == "ServiceRequest/referral-to-aftercare"
