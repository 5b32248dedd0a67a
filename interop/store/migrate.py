"""Schema migrations with alembic, run from code (the CLI and start-up), not from an ini file."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from interop.store.database import CHAIN_KEY_OPTION

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes[CHAIN_KEY_OPTION] = engine.get_execution_options().get(CHAIN_KEY_OPTION)
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction where the backend allows it."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
