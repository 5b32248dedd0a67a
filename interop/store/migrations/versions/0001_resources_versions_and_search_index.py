"""Resources, their versions and the search index.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 07:43:13.265760
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("resource_type", "resource_id", name="uq_resource_type_id"),
    )
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_resource_type_updated", ["resource_type", "last_updated"], unique=False
        )

    op.create_table(
        "resource_version",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint(
            "resource_type", "resource_id", "version_id", name="uq_resource_version"
        ),
    )
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resource_version_last_updated"), ["last_updated"], unique=False
        )
        batch_op.create_index(
            "ix_resource_version_updated", ["resource_type", "last_updated"], unique=False
        )

    op.create_table(
        "search_index",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("resource_pk", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=1024), nullable=True),
        sa.Column("value", sa.String(length=2048), nullable=True),
        sa.Column("norm", sa.String(length=2048), nullable=True),
        sa.Column("lo", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hi", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["resource_pk"], ["resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_date", ["resource_type", "param", "lo", "hi"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_search_index_resource_pk"), ["resource_pk"], unique=False
        )
        batch_op.create_index("ix_search_norm", ["resource_type", "param", "norm"], unique=False)
        batch_op.create_index("ix_search_value", ["resource_type", "param", "value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.drop_index("ix_search_value")
        batch_op.drop_index("ix_search_norm")
        batch_op.drop_index(batch_op.f("ix_search_index_resource_pk"))
        batch_op.drop_index("ix_search_date")

    op.drop_table("search_index")
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_version_updated")
        batch_op.drop_index(batch_op.f("ix_resource_version_last_updated"))

    op.drop_table("resource_version")
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_type_updated")

    op.drop_table("resource")
