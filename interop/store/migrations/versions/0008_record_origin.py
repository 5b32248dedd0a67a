"""Every stored version records its origin: the organization on whose behalf it was written;
the disclosure log's chain is keyed.

The rule for rows written before this migration: their writer was never recorded, and guessing
it from the record's elements (author, requester...) is exactly what let Part 2 records leak.
So every existing version is given the operator's origin, `Organization/operator`, a custodian
of unknown standing that the disclosure gate treats as a Part 2 program: existing records are
disclosed only to the operator's own systems, or under a consent that does not restrict who
may disclose, until an operator attributes them (`interop db attribute-origin`).

An index on resource_version (resource_type, pk) lets the gate ask in one cheap query whether
anything of a type changed since it last looked (the newest version's key per type).

The disclosure log was chained with plain SHA-256, which anyone who can write the database can
recompute after changing a row. Its existing rows are checked and chained again under the key
the engine carries (AUDIT_CHAIN_KEY, held outside the database); a log that no longer verifies
is not re-keyed, and the migration fails saying so.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel import Session

from interop.audit.log import rechain
from interop.store.database import CHAIN_KEY_OPTION

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPERATOR = "Organization/operator"


def upgrade() -> None:
    for table in ("resource", "resource_version"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("origin", sa.String(length=200), nullable=False, server_default=_OPERATOR)
            )
            batch_op.add_column(
                sa.Column(
                    "custodians",
                    sa.String(length=4000),
                    nullable=False,
                    server_default=_OPERATOR,
                )
            )
    op.create_index("ix_resource_origin", "resource", ["resource_type", "origin"])
    op.create_index("ix_resource_version_type_pk", "resource_version", ["resource_type", "pk"])
    _rekey_disclosure_log()


def _rekey_disclosure_log() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM disclosure_log")).scalar() == 0:
        return
    config = op.get_context().config
    key = config.attributes.get(CHAIN_KEY_OPTION) if config is not None else None
    if not key:
        raise RuntimeError("re-keying the disclosure log needs AUDIT_CHAIN_KEY (see README)")
    with Session(bind=bind) as session:
        rechain(session, key)


def downgrade() -> None:
    op.drop_index("ix_resource_version_type_pk", table_name="resource_version")
    op.drop_index("ix_resource_origin", table_name="resource")
    for table in ("resource", "resource_version"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("custodians")
            batch_op.drop_column("origin")
