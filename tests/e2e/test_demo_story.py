"""The client's story entered through the case API of a running server, as a case manager's
tool would, then read by an independent FHIR client; and `interop demo` seeding the same."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fhirpy import SyncFHIRClient
from pydantic import TypeAdapter

from interop.services.demo import CLIENT, story
from interop.services.staff import LoginPolicy, Role, StaffService
from interop.store.database import make_engine
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def signed_in(root: str, database_url: str) -> tuple[httpx.Client, str]:
    """An administrator's browser session on the live server (form, CSRF, cookie)."""
    engine = make_engine(database_url)
    policy = LoginPolicy(5, timedelta(minutes=15), timedelta(hours=1))
    StaffService(engine, policy).add(
        "ada.admin", PASSWORD, Role.ADMINISTRATOR, (), datetime.now(UTC)
    )
    engine.dispose()
    browser = httpx.Client(base_url=root)
    form = browser.get("/auth/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = browser.post(
        "/auth/login", data={"username": "ada.admin", "password": PASSWORD, "csrf_token": csrf}
    )
    assert login.status_code == 200, login.text
    return browser, login.json()["csrf_token"]


def read_story(live_server: LiveServer) -> None:
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


def test_story_through_the_case_api_read_by_fhirpy(
    live_server: LiveServer, database_url: str
) -> None:
    root = live_server.base.removesuffix("/fhir")
    browser, csrf = signed_in(root, database_url)
    try:
        for kind, value in story():
            body = TypeAdapter(kind.model).dump_python(value, mode="json")
            response = browser.put(
                f"/cases/{kind.name}/{value.id}", json=body, headers={"X-CSRF-Token": csrf}
            )
            assert response.status_code == 200, (kind.name, response.text)
    finally:
        browser.close()
    read_story(live_server)


def test_interop_demo_seeds_the_same_story(live_server: LiveServer, database_url: str) -> None:
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
    read_story(live_server)
