"""The console in Debian's chromium, driven by Playwright, against `interop serve` on
loopback; screenshots of the main pages go to a folder the run names at its end."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interop.app import create_app
from interop.services.staff import Role, StaffService
from interop.settings import Settings
from tests.conftest import REPOSITORY, bearer, register_partner
from tests.e2e.conftest import free_port, wait_until_serving
from tests.interop.auth.test_staff import PASSWORD
from tests.interop.console.conftest import emergency_disclosure, enter_story

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", REPOSITORY / "var" / "screenshots"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000


@dataclass(frozen=True)
class Console:
    root: str
    emergency_patient: str


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"console screenshots: {SCREENSHOTS}")


def _seed(database_url: str) -> str:
    """Staff, Jordan's story with referrals, and a break-the-glass read, through the app."""
    with TestClient(create_app(Settings(database_url=database_url))) as anonymous:
        staff: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        staff.add("cora.compliance", PASSWORD, Role.COMPLIANCE_OFFICER, (), now)
        staff.add("casey.manager", PASSWORD, Role.CASE_MANAGER, ("harbor-detox",), now)
        harness = register_partner(anonymous, name="Test Harness EHR", first_party=True)
        ehr = TestClient(anonymous.app)
        ehr.headers["Authorization"] = bearer(anonymous, harness)
        enter_story(anonymous, ehr)
        return emergency_disclosure(anonymous)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One `interop serve` process over a seeded SQLite database, for the whole module."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
    folder = tmp_path_factory.mktemp("console")
    database_url = f"sqlite:///{folder / 'console.sqlite3'}"
    patient = _seed(database_url)
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "interop", "serve"),
                *("--port", str(port), "--database-url", database_url),
            ],
            cwd=REPOSITORY,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        yield Console(root, patient)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chromium for the module with a fresh profile (Playwright takes the profile folder
    as a persistent context), reaching nothing but loopback: a page that needs a CDN fails
    here as it would on an offline hospital network."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink(missing_ok=True)  # the other worker may have just removed it
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            timeout=WAIT_MS * 2,
        )
        context.set_default_timeout(WAIT_MS)
        context.route("**/*", lambda route: _loopback_only(route, console.root))
        try:
            yield context
        finally:
            context.close()


def _loopback_only(route: Any, root: str) -> None:
    if route.request.url.startswith(root):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new tab with no session: each test signs in as the person it is about."""
    browser.clear_cookies()
    tab = browser.new_page()
    try:
        yield tab
    finally:
        tab.close()
