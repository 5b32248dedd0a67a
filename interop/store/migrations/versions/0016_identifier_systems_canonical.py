"""Index identifier systems in one spelling: the NPI's and the SSN's OIDs as their FHIR URLs.

Partners name the NPI and the SSN by their HL7 OIDs as often as by FHIR's URLs; the consent
engine reads both as one system (consent.vocabulary.canonical_identifier_system), and since
this release the search index stores and is asked for the URL alone
(interop.store.search_params.token_system). Rows stored before keep the OID as written: a
refusal naming its patient by the SSN's OID would go on applying to no one (PART2.md C8), and
a referral naming its owner by the NPI's OID would reach no one, until each was written again.
Reference and date rows never hold these OIDs in `system`, so one UPDATE per alias is exact.

The downgrade leaves the rows as they are: which spelling each resource used is in its stored
JSON, not in the index. The previous release then finds these rows by the URL, as it found
those written with the URL, and misses them by the OID until they are written again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALIASES: Final = {
    "urn:oid:2.16.840.1.113883.4.6": "http://hl7.org/fhir/sid/us-npi",
    "urn:oid:2.16.840.1.113883.4.1": "http://hl7.org/fhir/sid/us-ssn",
}
"""consent.vocabulary.IDENTIFIER_SYSTEM_ALIASES when this migration was written (kept here,
not imported, so that the migration stays what it was)."""


def upgrade() -> None:
    rewrite = sa.text("UPDATE search_index SET system = :url WHERE system = :oid")
    op.get_bind().execute(rewrite, [{"oid": oid, "url": url} for oid, url in ALIASES.items()])


def downgrade() -> None:
    pass  # see the module docstring: the URL spelling is one the previous release reads
