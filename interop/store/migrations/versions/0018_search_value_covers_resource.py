"""The search index's value index carries the resource's key, so that a search by a code
(a token without a system) finds its matches from the index alone, and a search asking one
resource for an exact value (interop.store.search `_probed`) is one index lookup.

A search selects `resource.pk IN (SELECT resource_pk FROM search_index WHERE ...)`; with the
key in the index, such a subquery reads no table rows (SQLite: a covering index; PostgreSQL:
an index-only scan). Only the key is added: the system and the folded text are wide enough
that an index holding them beside the value could pass PostgreSQL's limit on an index row.

The new index is built before the old one is dropped: on PostgreSQL the build lets reads go
on (writes to the search index wait for it), and the drop's exclusive lock is held only from
the drop to the commit that follows it. Migrations run in one transaction (interop.store.
migrate), which rules out CONCURRENTLY; on a large database, upgrade when writes may wait.

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

_OLD = ("ix_search_value", ["resource_type", "param", "value"])
_NEW = ("ix_search_value_key", ["resource_type", "param", "value", "resource_pk"])


def upgrade() -> None:
    _replace(_OLD, _NEW)


def downgrade() -> None:
    _replace(_NEW, _OLD)


def _replace(old: tuple[str, list[str]], new: tuple[str, list[str]]) -> None:
    with op.batch_alter_table("search_index") as table:
        table.create_index(new[0], new[1])
        table.drop_index(old[0])
