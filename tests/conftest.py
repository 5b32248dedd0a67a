"""Shared fixtures: a real database per test (SQLite, and PostgreSQL when CI provides one),
the app over it, and the external corpora."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from interop.app import create_app
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.migrate import upgrade

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED = REPOSITORY.parent / "shared"
CORPORA = SHARED / "corpora"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
_POSTGRES_TABLES = "resource_version, search_index, resource"


def corpus(*parts: str) -> Path:
    """A folder of ../shared/corpora; the test skips, saying why, when it is not there."""
    folder = CORPORA.joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(
            f"external corpus {folder} is absent (it lives in ../shared beside the repository)"
        )
    return folder


@pytest.fixture(scope="session")
def _postgres_ready() -> str:
    if POSTGRES_URL is None:
        pytest.skip("PostgreSQL tests need TEST_POSTGRES_URL (set by .ci/run)")
    engine = make_engine(POSTGRES_URL)
    upgrade(engine)
    engine.dispose()
    return POSTGRES_URL


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
    engine.dispose()
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_base_url="http://testserver")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
