"""Subscriptions both ways: outbox rows for our notifications name their Subscription; a
partner's notifications to us are checked against a secret and ask for a poll.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 11:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscription_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("partner", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_secret_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("poll_requested_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("partner", schema=None) as batch_op:
        batch_op.drop_column("poll_requested_at")
        batch_op.drop_column("notify_secret_hash")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("subscription_id")
