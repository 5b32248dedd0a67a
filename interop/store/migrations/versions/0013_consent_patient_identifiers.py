"""Index the identifier of a Consent's patient, for Consents stored before it was indexed.

A Consent may name its patient by identifier alone (an R4 logical reference); the gate finds
such a Consent for the stored Patient carrying that identifier through the index rows
`patient:identifier` (interop.store.consents), which writes make since this release. Without
them, a refusal stored earlier would go on being ignored (PART2.md C8) until written again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:50:00.000000
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARAM = "patient:identifier"
"""As interop.store.search_params writes it when this migration was written (kept here, not
imported, so that the migration stays what it was)."""


def upgrade() -> None:
    connection = op.get_bind()
    consents = connection.execute(
        sa.text(
            "SELECT pk, content FROM resource WHERE resource_type = 'Consent'"
            " AND deleted = :deleted AND content IS NOT NULL"
        ),
        {"deleted": False},
    )
    rows = [row for pk, content in consents for row in _index_rows(pk, content)]
    if rows:
        connection.execute(
            sa.text(
                "INSERT INTO search_index (resource_pk, resource_type, param, system, value)"
                " VALUES (:resource_pk, 'Consent', :param, :system, :value)"
            ),
            rows,
        )


def downgrade() -> None:
    delete = sa.text("DELETE FROM search_index WHERE param = :param")
    op.get_bind().execute(delete, {"param": PARAM})


def _index_rows(pk: int, content: Any) -> Iterator[dict[str, Any]]:
    """The row the write path makes for the Consent's patient identifier, if it has one."""
    consent = json.loads(bytes(content))
    patient = consent.get("patient") if isinstance(consent, dict) else None
    identifier = patient.get("identifier") if isinstance(patient, dict) else None
    if not isinstance(identifier, dict):
        return
    system, value = identifier.get("system"), identifier.get("value")
    if isinstance(system, str) and isinstance(value, str) and system and value:
        yield {"resource_pk": pk, "param": PARAM, "system": system, "value": value}
