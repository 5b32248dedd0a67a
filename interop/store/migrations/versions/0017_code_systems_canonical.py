"""Index code systems in one spelling: ICD-10-CM's, SNOMED CT's, LOINC's and RxNorm's OIDs
(and the v3 vocabularies' OIDs and pre-THO URLs) as their FHIR URLs.

C-CDA documents and OID-based systems name the clinical terminologies by their HL7 OIDs; the
consent engine reads both as one system (consent.vocabulary.canonical_system), and since this
release the search index stores and is asked for the URL alone, for codings as for identifiers
(interop.store.search_params.token_system). Rows stored before keep the spelling as written: a
Condition a C-CDA document wrote with ICD-10-CM's OID would go on being missed by a partner
asking `code=http://hl7.org/fhir/sid/icd-10-cm|F11.20`, and one written with the URL by a
partner asking by the OID, until each was written again. Reference and date rows never hold
these systems in `system`, so one UPDATE per alias is exact.

The downgrade leaves the rows as they are: which spelling each resource used is in its stored
JSON, not in the index. The previous release then finds these rows by the URL, as it found
those written with the URL, and misses them by the OID until they are written again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-14 12:00:00.000000
"""

from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALIASES: Final = {
    "urn:oid:2.16.840.1.113883.5.8": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "http://hl7.org/fhir/v3/ActReason": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "urn:oid:2.16.840.1.113883.5.4": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "http://hl7.org/fhir/v3/ActCode": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "urn:oid:2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "http://hl7.org/fhir/v3/Confidentiality": (
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
    ),
    "urn:oid:2.16.840.1.113883.5.90": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "http://hl7.org/fhir/v3/ParticipationType": (
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    ),
    "urn:oid:2.16.840.1.113883.5.111": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
    "http://hl7.org/fhir/v3/RoleCode": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
    "http://hl7.org/fhir/consentaction": "http://terminology.hl7.org/CodeSystem/consentaction",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    "urn:oid:2.16.840.1.113883.6.103": "http://hl7.org/fhir/sid/icd-9-cm",
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt",
    "urn:oid:2.16.840.1.113883.6.69": "http://hl7.org/fhir/sid/ndc",
}
"""consent.vocabulary.SYSTEM_ALIASES when this migration was written (kept here, not
imported, so that the migration stays what it was)."""


def upgrade() -> None:
    rewrite = sa.text("UPDATE search_index SET system = :url WHERE system = :oid")
    op.get_bind().execute(rewrite, [{"oid": oid, "url": url} for oid, url in ALIASES.items()])


def downgrade() -> None:
    pass  # see the module docstring: the URL spelling is one the previous release reads
