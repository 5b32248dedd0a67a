"""Record whose record each resource is, as the gate reads it, when it is written.

A partner's search counted its total by deciding every match, which read and parsed each
one to find its patient; with thousands of a Part 2 program's records of patients who never
consented, that cost grew with the matches, not the page. `resource.patient` holds what
interop.services.disclosure.patient_of finds in the version written ('' when it names no
patient), so that a search can set aside, by columns alone, the Part 2 records of patients
whose directives refuse the requester everything (`GateSession.set_aside` in
interop.services.disclosure).

Rows stored before this release keep NULL, which means "not recorded": the gate decides them
by their content, as before, until they are written again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resource") as table:
        table.add_column(sa.Column("patient", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resource") as table:
        table.drop_column("patient")
