"""Alembic environment: the SQLModel metadata is the target; the URL comes from the caller."""

from alembic import context
from sqlmodel import SQLModel

import interop.store.tables  # noqa: F401  (registers the tables on the metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        raise RuntimeError("run migrations through interop.store.migrate")
    context.configure(connection=connectable, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
