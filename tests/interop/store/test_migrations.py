"""The alembic migrations build exactly the schema the SQLModel tables describe, on both
backends."""

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

import interop.store.tables  # noqa: F401  (registers the tables)
from interop.audit import log
from interop.store.database import make_engine
from interop.store.migrate import downgrade, upgrade
from interop.store.tables import OPERATOR_ORIGIN, DisclosureLogRow


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_downgrade_and_upgrade_again(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, "base")
    with engine.connect() as connection:
        assert "resource" not in engine.dialect.get_table_names(connection)
    upgrade(engine)
    with engine.connect() as connection:
        assert {"resource", "resource_version", "search_index"} <= set(
            engine.dialect.get_table_names(connection)
        )
    engine.dispose()


class TestRecordOrigin:
    """Migration 0008: existing rows get the operator's origin (its rule, written in the
    migration), and the disclosure log is chained again under the key held outside the
    database."""

    @pytest.fixture
    def legacy(self, database_url: str) -> Iterator[Engine]:
        """A database as it was before origins were recorded; at head again afterwards, even
        when the test failed half-way (PostgreSQL's database is shared by the suite)."""
        engine = make_engine(database_url, chain_key=b"migration-test-chain-key-0123456789")
        upgrade(engine)
        downgrade(engine, "0007")
        try:
            yield engine
        finally:
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM disclosure_log"))
                connection.execute(text("DELETE FROM resource"))
                connection.execute(
                    text("UPDATE chain_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64}
                )
            upgrade(engine)
            engine.dispose()

    def test_existing_versions_get_the_operators_origin_and_the_log_is_rekeyed(
        self, legacy: Engine
    ) -> None:
        engine = legacy
        at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO resource (resource_type, resource_id, version_id, "
                    "last_updated, deleted, content) VALUES ('Goal', 'g1', 1, :at, false, :c)"
                ),
                {"at": at, "c": b'{"resourceType":"Goal","id":"g1"}'},
            )
            previous = "0" * 64
            for seq in (1, 2):
                row = _legacy_row(seq, previous, at)
                connection.execute(text(_INSERT_LOG), row)
                previous = row["hash"]
            connection.execute(
                text("UPDATE chain_head SET seq = 2, hash = :hash WHERE name = 'disclosures'"),
                {"hash": previous},
            )
        upgrade(engine)
        with engine.connect() as connection:
            origin = connection.execute(text("SELECT origin, custodians FROM resource")).one()
        with Session(engine) as session:
            report = log.verify(session)
        assert tuple(origin) == (OPERATOR_ORIGIN, OPERATOR_ORIGIN)
        assert report.intact, report
        assert report.rows == 2

    def test_a_broken_legacy_log_is_not_rekeyed(self, legacy: Engine) -> None:
        engine = legacy
        at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        with engine.begin() as connection:
            row = _legacy_row(1, "0" * 64, at)
            connection.execute(text(_INSERT_LOG), {**row, "decision": "permit"})
        with pytest.raises(ValueError, match="broken at row 1"):
            upgrade(engine)


def test_a_consent_naming_its_patient_by_identifier_is_indexed_when_stored_before(
    database_url: str,
) -> None:
    """Migration 0013: a Consent stored before Reference identifiers were indexed is found for
    the Patient carrying the identifier, as one stored since is (PART2.md C8)."""
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, "0012")
    consent = {
        "resourceType": "Consent",
        "id": "by-identifier",
        "status": "active",
        "patient": {"identifier": {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "M-7"}},
    }
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO resource (resource_type, resource_id, version_id, last_updated,"
                    " deleted, content, origin, custodians) VALUES ('Consent', 'by-identifier',"
                    " 1, :at, false, :c, :o, :o)"
                ),
                {
                    "at": datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
                    "c": orjson.dumps(consent),
                    "o": OPERATOR_ORIGIN,
                },
            )
        upgrade(engine)
        with engine.connect() as connection:
            indexed = connection.execute(
                text(
                    "SELECT system, value FROM search_index i JOIN resource r"
                    " ON r.pk = i.resource_pk WHERE r.resource_id = 'by-identifier'"
                    " AND i.param = 'patient:identifier'"
                )
            ).all()
        assert [tuple(row) for row in indexed] == [("urn:oid:2.16.840.1.113883.3.9999.2", "M-7")]
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM resource WHERE resource_id = 'by-identifier'"))
        engine.dispose()


IndexRow = tuple[str, str, str]
"""(param, system, value) of one search-index row."""


def _indexed_after_upgrade(
    database_url: str, before: str, resource_type: str, written: list[IndexRow]
) -> list[IndexRow]:
    """The index rows of one resource written at revision `before`, as the upgrade to head
    leaves them; the resource is removed after."""
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, before)
    ident = f"indexed-before-{before}"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO resource (resource_type, resource_id, version_id, last_updated,"
                    " deleted, content, origin, custodians) VALUES (:type, :id,"
                    " 1, :at, false, :c, :o, :o)"
                ),
                {
                    "type": resource_type,
                    "id": ident,
                    "at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
                    "c": orjson.dumps({"resourceType": resource_type, "id": ident}),
                    "o": OPERATOR_ORIGIN,
                },
            )
            pk = connection.execute(
                text("SELECT pk FROM resource WHERE resource_id = :id"), {"id": ident}
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO search_index (resource_pk, resource_type, param, system, value)"
                    " VALUES (:pk, :type, :param, :system, :value)"
                ),
                [
                    {"pk": pk, "type": resource_type, "param": p, "system": s, "value": v}
                    for p, s, v in written
                ],
            )
        upgrade(engine)
        with engine.connect() as connection:
            indexed = connection.execute(
                text("SELECT param, system, value FROM search_index WHERE resource_pk = :pk"),
                {"pk": pk},
            ).all()
        return sorted((str(p), str(s), str(v)) for p, s, v in indexed)
    finally:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "DELETE FROM search_index WHERE resource_pk IN"
                    " (SELECT pk FROM resource WHERE resource_id = :id)"
                ),
                {"id": ident},
            )
            connection.execute(text("DELETE FROM resource WHERE resource_id = :id"), {"id": ident})
        engine.dispose()


def test_identifier_systems_stored_by_oid_are_indexed_by_their_fhir_urls(
    database_url: str,
) -> None:
    """Migration 0016: index rows written before identifier systems were canonical hold the
    SSN's and NPI's OIDs; rewritten to FHIR's URLs, they are found as rows written since are
    (interop.store.search_params.token_system), and other systems are left as they were."""
    written = [
        ("identifier", "urn:oid:2.16.840.1.113883.4.1", "123-45-6789"),
        ("identifier", "urn:oid:2.16.840.1.113883.3.9999.2", "M-7"),
        ("general-practitioner:identifier", "urn:oid:2.16.840.1.113883.4.6", "1992753883"),
    ]
    assert _indexed_after_upgrade(database_url, "0015", "Patient", written) == sorted(
        [
            ("identifier", "http://hl7.org/fhir/sid/us-ssn", "123-45-6789"),
            ("identifier", "urn:oid:2.16.840.1.113883.3.9999.2", "M-7"),
            ("general-practitioner:identifier", "http://hl7.org/fhir/sid/us-npi", "1992753883"),
        ]
    )


def test_code_systems_stored_by_oid_are_indexed_by_their_fhir_urls(database_url: str) -> None:
    """Migration 0017: index rows written before code systems were canonical hold ICD-10-CM's,
    SNOMED CT's, v3-ActCode's OIDs (and pre-THO URLs); rewritten to FHIR's URLs, they are found
    as rows written since are (interop.store.search_params.token_system), and other systems,
    reference rows among them, are left as they were."""
    written = [
        ("code", "urn:oid:2.16.840.1.113883.6.90", "F11.20"),
        ("code", "urn:oid:2.16.840.1.113883.6.96", "5602001"),
        ("category", "urn:oid:2.16.840.1.113883.6.1", "75310-3"),
        ("category", "http://hl7.org/fhir/v3/ActCode", "42CFRPart2CD"),
        ("code", "urn:oid:2.16.840.1.113883.3.9999.7", "LOCAL-1"),
        ("subject", "Patient", "p-1"),
    ]
    assert _indexed_after_upgrade(database_url, "0016", "Condition", written) == sorted(
        [
            ("code", "http://hl7.org/fhir/sid/icd-10-cm", "F11.20"),
            ("code", "http://snomed.info/sct", "5602001"),
            ("category", "http://loinc.org", "75310-3"),
            ("category", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "42CFRPart2CD"),
            ("code", "urn:oid:2.16.840.1.113883.3.9999.7", "LOCAL-1"),
            ("subject", "Patient", "p-1"),
        ]
    )


_INSERT_LOG = (
    "INSERT INTO disclosure_log (seq, recorded_at, client_id, requester, patient, purposes, "
    "interaction, decision, rule, consent, provision, resources, labels, part2, emergency, "
    "emergency_facts, prev_hash, hash) VALUES (:seq, :recorded_at, :client_id, :requester, "
    ":patient, :purposes, :interaction, :decision, :rule, :consent, :provision, :resources, "
    ":labels, :part2, :emergency, :emergency_facts, :prev_hash, :hash)"
)


def _legacy_row(seq: int, previous: str, at: datetime) -> dict[str, Any]:
    """A row as the log wrote it before 0008: plain SHA-256 over the link and the content."""
    row = DisclosureLogRow(
        seq=seq,
        recorded_at=at,
        client_id="c1",
        requester="Organization/a",
        patient="Patient/p",
        purposes="TREAT",
        interaction="read",
        decision="deny",
        rule="P2",
        consent=None,
        provision=None,
        resources="Goal/g1",
        labels="",
        part2=True,
        emergency=False,
        emergency_facts=None,
        prev_hash=previous,
        hash="",
    )
    digest = hashlib.sha256(previous.encode() + log._content(row)).hexdigest()
    return {**row.model_dump(), "hash": digest}
