"""When a partner's current keys were set, so that rotating them ends the access tokens the
old ones got.

`interop partners rotate-key` is what an operator does when a partner's key is suspected
stolen; until this release, tokens issued to the thief before the rotation kept working until
they expired. `partner.credentials_since` holds the moment of the last rotation (NULL: never
rotated), and an access token issued before that second is refused.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partner") as table:
        table.add_column(sa.Column("credentials_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partner") as table:
        table.drop_column("credentials_since")
