"""The hash-chained disclosure log and its chain head.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:12:52.153349
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    head = op.create_table(
        "chain_head",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # The chain starts here, so that the very first writers already have a row to lock.
    op.bulk_insert(head, [{"name": "disclosures", "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "disclosure_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("patient", sa.String(length=200), nullable=True),
        sa.Column("purposes", sa.String(length=500), nullable=False),
        sa.Column("interaction", sa.String(length=32), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("consent", sa.String(length=200), nullable=True),
        sa.Column("provision", sa.String(length=200), nullable=True),
        sa.Column("resources", sa.String(length=100000), nullable=False),
        sa.Column("labels", sa.String(length=1000), nullable=False),
        sa.Column("part2", sa.Boolean(), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("emergency_facts", sa.String(length=4000), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disclosure_log_consent"), ["consent"], unique=False)
        batch_op.create_index(batch_op.f("ix_disclosure_log_patient"), ["patient"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_disclosure_log_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_disclosure_log_requester"), ["requester"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosure_log_requester"))
        batch_op.drop_index(batch_op.f("ix_disclosure_log_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_disclosure_log_patient"))
        batch_op.drop_index(batch_op.f("ix_disclosure_log_consent"))

    op.drop_table("disclosure_log")
    op.drop_table("chain_head")
