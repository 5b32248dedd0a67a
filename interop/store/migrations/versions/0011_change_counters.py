"""Change counters for what the disclosure gate keeps between requests (interop.store.markers).

The gate used the largest resource_version key of each watched type as its marker. On
PostgreSQL keys come from a sequence and commit out of order: a revocation holding key 100 that
commits after a consent holding key 101 left the marker at 101, so the patient's directives,
kept under 101, went on being relied on. A counter bumped by each writing transaction as it
commits moves in commit order.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 23:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = (
    "Consent",
    "Organization",
    "Patient",
    "Provenance",
    "QuestionnaireResponse",
    "RelatedPerson",
    "consent-forms",
)
"""As interop.store.markers.WATCHED when this migration was written (kept here, not imported,
so that the migration stays what it was)."""


def upgrade() -> None:
    counters = op.create_table(
        "change_counter",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(counters, [{"name": name, "n": 0} for name in WATCHED])


def downgrade() -> None:
    op.drop_table("change_counter")
