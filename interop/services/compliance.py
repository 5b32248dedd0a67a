"""What compliance staff ask of the disclosure log: is it intact, who saw what, and the
patient's accounting of disclosures (PART2.md A1-A3, E1)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, func, or_, select
from sqlmodel import col

from consent.model import ConsentDirective, Identifier, Party
from consent.rules import disclosed_under_general_designation
from interop.audit import accounting as acc
from interop.audit.events import log_event
from interop.audit.log import (
    DECISIONS,
    ChainReport,
    CheckpointInvalid,
    Unreadable,
    checkpoint,
    read_checkpoint,
    read_rows,
    verify,
)
from interop.services import bundle_builder as bb
from interop.services.errors import InvalidRequest, ResourceNotFound
from interop.store import organizations, origins
from interop.store.database import unit_of_work
from interop.store.fhirdates import parse_range
from interop.store.tables import RESOURCE_TABLE, VERSION_TABLE, DisclosureLogRow
from mappings.consent import directive_from_fhir
from mappings.errors import FhirContentError


def date_bounds(
    date_from: str | None, date_to: str | None
) -> tuple[datetime | None, datetime | None]:
    """The instants a filter's FHIR dates span: from the start of the first to the end of the
    last (a day, a month, a year as written)."""
    try:
        since = parse_range(date_from)[0] if date_from else None
        until = parse_range(date_to)[1] if date_to else None
    except ValueError:
        raise InvalidRequest(
            "date-from and date-to must be FHIR dates such as 2026-11-30"
        ) from None
    return since, until


@dataclass(frozen=True, slots=True)
class LogQuery:
    patient: str | None = None
    requester: str | None = None
    consent: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    emergency: bool | None = None
    offset: int = 0
    count: int = 100


@dataclass(frozen=True, slots=True)
class PageAddress:
    """Where a page of the log was asked for: its URL and the filters it was asked with, for
    the searchset's self and next links (R4 §3.1.1.6 paging, over `_offset` and `_count`)."""

    url: str
    filters: Sequence[tuple[str, str]] = ()


class ComplianceService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def verify(self, checkpoints: Sequence[str] = ()) -> ChainReport:
        """The chain, then each signed checkpoint kept elsewhere (a cut end, a rollback);
        InvalidRequest for a checkpoint this log's key did not sign."""
        with unit_of_work(self._engine, writes=False) as session:
            try:
                kept = [read_checkpoint(session, token) for token in checkpoints]
            except CheckpointInvalid as invalid:
                raise InvalidRequest(str(invalid)) from None
            return verify(session, kept)

    def checkpoint(self, now: datetime) -> str:
        """The chain's head now, signed, for compliance staff to keep outside the database."""
        with unit_of_work(self._engine, writes=False) as session:
            return checkpoint(session, now)

    def audit_events(self, query: LogQuery, page: PageAddress | None = None) -> dict[str, Any]:
        """A searchset of AuditEvents, newest first (A3: find every disclosure quickly); a row
        that cannot be read is listed in its place as the alert that says so. With the
        `page`'s address, the Bundle links to itself and to the pages around it, so that a
        listing longer than a page is followed to its end (E1: every emergency disclosure)."""
        read_at = datetime.now(UTC)
        with unit_of_work(self._engine, writes=False) as session:
            statement = _filtered(query)
            total: int = session.execute(
                select(func.count()).select_from(statement.subquery())
            ).scalar_one()
            rows = read_rows(
                session,
                statement.order_by(col(DisclosureLogRow.seq).desc())
                .offset(query.offset)
                .limit(query.count),
            )
            entries = [
                {"resource": log_event(row, read_at), "search": {"mode": "match"}} for row in rows
            ]
        links = (
            bb.paging_links(page.url, page.filters, query.offset, query.count, total)
            if page is not None
            else []
        )
        return bb.bundle("searchset", total=total, link=links, entry=entries)

    def accounting(self, patient_id: str, now: datetime) -> acc.Accounting:
        """The past three years of the patient's disclosures, with recipients named; rows that
        cannot be read are counted, so the accounting says it may be incomplete."""
        patient = f"Patient/{patient_id}"
        since = now - timedelta(days=365 * acc.ACCOUNTING_YEARS + 1)
        with unit_of_work(self._engine, writes=False) as session:
            record = _content(session, "Patient", patient_id)
            if record is None:
                raise ResourceNotFound(f"{patient} is not known")
            # Every decision is read and checked, the releases kept after: a release altered
            # into a denial shows as unreadable instead of dropping out unseen.
            query = LogQuery(patient=patient, since=since)
            rows = [
                row
                for row in read_rows(session, _filtered(query).order_by(col(DisclosureLogRow.seq)))
                if isinstance(row, Unreadable) or row.decision == "permit"
            ]
            names = {
                reference: _organization_name(session, reference)
                for reference in {row.requester for row in rows if not isinstance(row, Unreadable)}
            }
        return acc.accounting(patient, _patient_name(record), rows, names, since, now)

    def general_designation_list(self, patient_id: str, now: datetime) -> acc.Accounting:
        """§2.24 (2024): the past three years' disclosures made to participants the patient's
        consent designated generally (§2.31(a)(4)(ii)(B)), read against the version of the
        consent each disclosure relied on."""
        report = self.accounting(patient_id, now)
        with unit_of_work(self._engine, writes=False) as session:
            directives: dict[tuple[str, datetime], ConsentDirective | None] = {}

            def designated(row: DisclosureLogRow) -> bool:
                if row.consent is None or row.provision is None:
                    return False
                key = (row.consent, row.recorded_at)
                if key not in directives:
                    directives[key] = _consent_as_of(session, row.consent, row.recorded_at)
                directive = directives[key]
                recipient = Party(row.requester, _identifiers(session, row.requester))
                return directive is not None and disclosed_under_general_designation(
                    directive, row.provision, recipient
                )

            return acc.under_general_designation(report, designated)


def _consent_as_of(session: Any, consent: str, moment: datetime) -> ConsentDirective | None:
    """The consent's version that was current at the moment, as a directive."""
    kind, _, ident = consent.partition("/")
    content = session.execute(
        select(VERSION_TABLE.c.content)
        .where(
            VERSION_TABLE.c.resource_type == kind,
            VERSION_TABLE.c.resource_id == ident,
            VERSION_TABLE.c.last_updated <= moment,
        )
        .order_by(VERSION_TABLE.c.version_id.desc())
        .limit(1)
    ).scalar()
    if not content:
        return None
    try:
        return directive_from_fhir(orjson.loads(content))
    except FhirContentError:
        return None


def _identifiers(session: Any, reference: str) -> tuple[Identifier, ...]:
    return tuple(
        Identifier(system, value) for system, value in organizations.identifiers(session, reference)
    )


def _filtered(query: LogQuery) -> Any:
    statement = select(DisclosureLogRow)
    conditions = {
        "patient": (col(DisclosureLogRow.patient), query.patient),
        "requester": (col(DisclosureLogRow.requester), query.requester),
        "emergency": (col(DisclosureLogRow.emergency), query.emergency),
    }
    for column, value in conditions.values():
        if value is not None:
            statement = statement.where(column == value)
    if query.decision is not None:
        # A decision the log never writes is an altered row that may have been this one:
        # listed (as unreadable), never left out unseen.
        decision = col(DisclosureLogRow.decision)
        statement = statement.where(
            or_(decision == query.decision, decision.not_in(sorted(DECISIONS)))
        )
    if query.consent is not None:
        statement = statement.where(col(DisclosureLogRow.consent).contains(query.consent))
    if query.since is not None:
        statement = statement.where(col(DisclosureLogRow.recorded_at) >= query.since)
    if query.until is not None:
        statement = statement.where(col(DisclosureLogRow.recorded_at) <= query.until)
    return statement


def _content(session: Any, kind: str, ident: str) -> dict[str, Any] | None:
    content = session.execute(
        select(RESOURCE_TABLE.c.content).where(
            RESOURCE_TABLE.c.resource_type == kind, RESOURCE_TABLE.c.resource_id == ident
        )
    ).scalar()
    return orjson.loads(content) if content else None


def _organization_name(session: Any, reference: str) -> str:
    kind, _, ident = reference.partition("/")
    organization = _content(session, kind, ident)
    name = organization.get("name") if organization else None
    return name if isinstance(name, str) else reference


def _patient_name(patient: dict[str, Any]) -> str:
    for name in patient.get("name", []):
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("given", []), name.get("family", "")]
        text = " ".join(part for part in parts if part)
        if text:
            return text
    return "the patient"


def attribute_operator_records(engine: Engine, organization: str) -> int:
    """Records migrated without a recorded writer become the named program's (the operator
    says whose they are: PART2.md P1); the Organization must exist, so that the gate can tell
    whether it is a Part 2 program."""
    with unit_of_work(engine) as session:
        if organization not in organizations.known_organizations(session):
            raise ResourceNotFound(f"{organization[:80]} is not a stored Organization")
        return origins.attribute_operator_records(session, organization)
