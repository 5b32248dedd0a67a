"""The search index's value index carries the resource's key, so that a token or reference
search finds its matches from the index alone.

A search selects `resource.pk IN (SELECT resource_pk FROM search_index WHERE ...)`; with the
key in the index, the subquery reads no table rows (SQLite: a covering index; PostgreSQL: an
index-only scan), and the resources are then fetched by key. Only the key is added: the
system and the folded text are wide enough that an index holding them beside the value
could pass PostgreSQL's limit on an index row.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("search_index") as table:
        table.drop_index("ix_search_value")
        table.create_index("ix_search_value", ["resource_type", "param", "value", "resource_pk"])


def downgrade() -> None:
    with op.batch_alter_table("search_index") as table:
        table.drop_index("ix_search_value")
        table.create_index("ix_search_value", ["resource_type", "param", "value"])
