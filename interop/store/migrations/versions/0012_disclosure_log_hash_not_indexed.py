"""The disclosure log's hashes are no longer indexed.

Nothing ever looks a row up by its hash: the chain is checked by walking it in `seq` order
(interop.audit.log.verify), and a checkpoint names its row by `seq`. The unique index on
`hash` only made every append insert a random key into an ever-growing B-tree; with 5,000
rows appended at once (the denials a partner's search counts) it cost about half the append's
time and most of its commit, and the more the log grew, the more it cost.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_UNNAMED = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
"""The name SQLite's unnamed constraint gets while the table is copied without it."""


def upgrade() -> None:
    unique = sa.inspect(op.get_bind()).get_unique_constraints("disclosure_log")
    name = next(each["name"] for each in unique if each["column_names"] == ["hash"])
    # On SQLite, which cannot drop a table constraint, the table is copied without it.
    with op.batch_alter_table("disclosure_log", naming_convention=_UNNAMED) as batch_op:
        batch_op.drop_constraint(name or "uq_disclosure_log_hash", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("disclosure_log") as batch_op:
        batch_op.create_unique_constraint("uq_disclosure_log_hash", ["hash"])
