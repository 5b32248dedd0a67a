"""The alembic migrations build exactly the schema the SQLModel tables describe, on both
backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import interop.store.tables  # noqa: F401  (registers the tables)
from interop.store.database import make_engine
from interop.store.migrate import downgrade, upgrade


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_downgrade_and_upgrade_again(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, "base")
    with engine.connect() as connection:
        assert "resource" not in engine.dialect.get_table_names(connection)
    upgrade(engine)
    with engine.connect() as connection:
        assert {"resource", "resource_version", "search_index"} <= set(
            engine.dialect.get_table_names(connection)
        )
    engine.dispose()
