"""The client's story entered through the case API of a running server, as a case manager's
tool would, then read by an independent FHIR client; and `interop demo` seeding the same, with
its consent and partners, so that a partner it registered reads the story with the key and
the command the demo printed."""

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient
from pydantic import TypeAdapter

from interop.services.demo import CLIENT, CONSENT, story
from interop.services.staff import LoginPolicy, Role, StaffService
from interop.store.database import make_engine
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def signed_in(
    root: str, database_url: str, username: str = "ada.admin", role: Role = Role.ADMINISTRATOR
) -> tuple[httpx.Client, str]:
    """A person's browser session on the live server (form, CSRF, cookie), an administrator's
    unless told otherwise."""
    engine = make_engine(database_url)
    policy = LoginPolicy(5, timedelta(minutes=15), timedelta(hours=1))
    StaffService(engine, policy).add(username, PASSWORD, role, (), datetime.now(UTC))
    engine.dispose()
    browser = httpx.Client(base_url=root)
    form = browser.get("/auth/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = browser.post(
        "/auth/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf}
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
        for seed in story():
            body = TypeAdapter(seed.kind.model).dump_python(seed.value, mode="json")
            response = browser.put(
                f"/cases/{seed.kind.name}/{seed.value.id}",
                json=body,
                headers={"X-CSRF-Token": csrf},
            )
            assert response.status_code == 200, (seed.kind.name, response.text)
    finally:
        browser.close()
    read_story(live_server)


def test_every_record_is_written_by_a_case_manager_of_a_program_of_the_story() -> None:
    programs = {str(seed.value.id) for seed in story() if seed.kind.name == "programs"}
    writers = {seed.program for seed in story()}

    assert writers <= programs
    assert {"harbor-detox", "riverside-residential", "bayview-iop"} <= writers


def run_demo(database_url: str, folder: Path, root: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", "demo", "--database-url", database_url,
         "--keys-dir", str(folder)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PUBLIC_BASE_URL": root},
    )  # fmt: skip


def test_interop_demo_seeds_a_story_its_partners_can_read(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    root = live_server.base.removesuffix("/fhir")
    keys = tmp_path / "keys"
    seeded = run_demo(database_url, keys, root)
    assert seeded.returncode == 0, seeded.stderr
    assert f"seeded {len(story())} records" in seeded.stdout
    read_story(live_server)
    consent = httpx.get(f"{live_server.base}/Consent/{CONSENT}", headers=live_server.headers)
    assert consent.status_code == 200, consent.text
    assert consent.json()["patient"]["reference"] == f"Patient/{CLIENT}"

    command = next(line for line in seeded.stdout.splitlines() if "interop token" in line)
    client_id = (keys / "riverside-residential.client-id").read_text().strip()
    assert client_id in command
    assert f"--server {root}" in command
    token = subprocess.run(
        [sys.executable, "-m", "interop", "token", client_id, "--purpose", "TREAT",
         "--key", str(keys / "riverside-residential.key.pem"), "--server", root],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    bundle = httpx.get(
        f"{live_server.base}/CarePlan",
        params={"patient": f"Patient/{CLIENT}", "_include": "CarePlan:goal"},
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    ).json()
    assert bundle["total"] == 1
    assert sum(e["resource"]["resourceType"] == "Goal" for e in bundle["entry"]) == 8
    assert any(
        label.get("code") == "42CFRPart2"
        for label in bundle["entry"][0]["resource"]["meta"].get("security", [])
    )


def test_a_second_demo_reuses_its_partners(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    root = live_server.base.removesuffix("/fhir")
    first = run_demo(database_url, tmp_path / "keys", root)
    second = run_demo(database_url, tmp_path / "keys", root)

    assert first.returncode == second.returncode == 0, second.stderr
    client_lines = [line for line in first.stdout.splitlines() if "client_id" in line]
    assert len(client_lines) == 4
    assert client_lines == [line for line in second.stdout.splitlines() if "client_id" in line]


def test_the_pages_the_demo_and_the_tour_send_each_role_to_answer(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    """Probe 11 L2: `interop demo` and the README's tour send a compliance officer and an
    administrator to a page each; signed in with that role, each page answers."""
    root = live_server.base.removesuffix("/fhir")
    seeded = run_demo(database_url, tmp_path / "keys", root)
    assert seeded.returncode == 0, seeded.stderr
    found = re.search(
        r"compliance officers \(morgan\.compliance\) see (\S+), administrators \(ada\.admin\) "
        r"(\S+)$",
        seeded.stdout,
        re.MULTILINE,
    )
    assert found is not None, seeded.stdout
    tour = (REPOSITORY / "README.md").read_text().split("## A 5-minute tour", 1)[1]
    told = re.search(r"a compliance officer reads `([^`]+)`, an administrator\s+`([^`]+)`", tour)
    assert told is not None, "the tour no longer names the pages for the other roles"
    pages = {
        Role.COMPLIANCE_OFFICER: {found.group(1).removeprefix(root), told.group(1)},
        Role.ADMINISTRATOR: {found.group(2).removeprefix(root), told.group(2)},
    }
    for username, role in (
        ("morgan.compliance", Role.COMPLIANCE_OFFICER),
        ("ada", Role.ADMINISTRATOR),
    ):
        browser, _ = signed_in(root, database_url, username, role)
        try:
            for path in pages[role]:
                assert browser.get(path).status_code == 200, (role, path)
        finally:
            browser.close()
