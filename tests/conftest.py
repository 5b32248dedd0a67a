"""Shared fixtures: a real database per test (SQLite, and PostgreSQL when CI provides one),
the app over it, and the external corpora."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import make_url, text

from interop.app import create_app
from interop.services.forms import ConsentForms
from interop.services.partners import NewPartner, PartnerService
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from tests.builders import PART2_FORM, PART2_FORM_STATEMENTS
from tests.keys import ClientKey, assertion, rsa_key, token_form

# In CI the property tests draw the same examples every run, so that a red run is one anyone
# can reproduce and a green one is not luck; locally they explore. No deadline anywhere: the
# suite runs beside live servers on two cores, where one slow example says nothing.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
hypothesis_settings.register_profile("local", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "local")

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED = REPOSITORY.parent / "shared"
CORPORA = SHARED / "corpora"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
_POSTGRES_TABLES = (
    "resource_version, search_index, resource, partner, used_assertion, staff_session, staff_user,"
    " disclosure_log, inbound_message, outbox, consent_form, export_chunk, export_job"
)


def corpus(*parts: str) -> Path:
    """A folder of ../shared/corpora; the test skips, saying why, when it is not there."""
    folder = CORPORA.joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(_absent(folder))
    return folder


def needs_corpus(*parts: str) -> pytest.MarkDecorator:
    """For a test with database fixtures: skips it before they are set up, so that a fresh
    clone reports the missing corpus rather than a missing PostgreSQL."""
    folder = CORPORA.joinpath(*parts)
    return pytest.mark.skipif(not folder.is_dir(), reason=_absent(folder))


def _absent(folder: Path) -> str:
    return f"external corpus {folder} is absent (it lives in ../shared beside the repository)"


@pytest.fixture(scope="session")
def _postgres_ready() -> str:
    if POSTGRES_URL is None:
        pytest.skip("PostgreSQL tests need TEST_POSTGRES_URL (set by .ci/run)")
    url = _worker_database(POSTGRES_URL)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _worker_database(url: str) -> str:
    """Under pytest-xdist (`make test` runs one worker per core) each worker empties tables
    before its tests, so each gets a database of its own on the test server, created here."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return url
    server = make_url(url)
    name = f"{server.database}_{worker}"
    with psycopg.connect(
        server.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        ),
        autocommit=True,
    ) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL's tables are emptied before each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'interop.sqlite3'}"
        return
    url: str = request.getfixturevalue("_postgres_ready")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {_POSTGRES_TABLES} RESTART IDENTITY CASCADE"))
        connection.execute(
            text("UPDATE chain_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64}
        )
    engine.dispose()
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_base_url="http://testserver")


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The app over the test's database, without credentials."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass(frozen=True)
class RegisteredPartner:
    client_id: str
    organization: str
    key: ClientKey


def register_partner(
    client: TestClient,
    scope: str = "system/*.cruds",
    name: str = "Harbor Detox Unit",
    **flags: bool,
) -> RegisteredPartner:
    """A partner registered through the service, with a key generated here."""
    key = rsa_key()
    service: PartnerService = client.app.state.partners  # type: ignore[attr-defined]
    partner = service.register(
        NewPartner(
            name=name,
            identifiers=[("urn:oid:2.16.840.1.113883.3.9999.10", name)],
            scopes=scope,
            jwks=key.jwks(),
            **flags,
        )
    )
    return RegisteredPartner(partner.client_id, partner.organization, key)


def approve_part2_form(client: TestClient) -> None:
    """Compliance staff approve the form `tests.builders.part2_consent` is signed on, once
    (PART2.md C9): without it no such consent is relied on."""
    forms: ConsentForms = client.app.state.consent_forms  # type: ignore[attr-defined]
    forms.approve(PART2_FORM, "Part 2 consent form", PART2_FORM_STATEMENTS, "cora.compliance")


def bearer(
    client: TestClient, partner: RegisteredPartner, scope: str = "system/*.cruds", **claims: Any
) -> str:
    """An access token from the real token endpoint."""
    signed = assertion(partner.key, partner.client_id, "http://testserver/auth/token", **claims)
    response = client.post("/auth/token", data=token_form(signed, scope))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return f"Bearer {token}"


@pytest.fixture
def harness(anonymous: TestClient) -> RegisteredPartner:
    """The program's own EHR, which the `client` fixture acts as (isolation does not apply)."""
    return register_partner(anonymous, name="Test Harness EHR", first_party=True)


@pytest.fixture
def client(anonymous: TestClient, harness: RegisteredPartner) -> TestClient:
    """The same app, authenticated as a partner granted every system scope."""
    authenticated = TestClient(anonymous.app)
    authenticated.headers["Authorization"] = bearer(anonymous, harness)
    return authenticated
