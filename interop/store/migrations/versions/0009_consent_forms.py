"""Consent forms approved once by compliance staff, with the §2.31 statements they contain
(PART2.md C9).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_form",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("form", sa.String(length=1024), nullable=False),
        sa.Column("title", sa.String(length=400), nullable=False),
        sa.Column("statements", sa.String(length=400), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("form"),
    )


def downgrade() -> None:
    op.drop_table("consent_form")
