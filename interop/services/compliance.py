"""What compliance staff ask of the disclosure log: is it intact, who saw what, and the
patient's accounting of disclosures (PART2.md A1-A3, E1)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlmodel import col

from interop.audit import accounting as acc
from interop.audit.events import audit_event
from interop.audit.log import ChainReport, verify
from interop.services import bundle_builder as bb
from interop.services.errors import ResourceNotFound
from interop.store.database import unit_of_work
from interop.store.tables import RESOURCE_TABLE, DisclosureLogRow


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


class ComplianceService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def verify(self) -> ChainReport:
        with unit_of_work(self._engine, writes=False) as session:
            return verify(session)

    def audit_events(self, query: LogQuery) -> dict[str, Any]:
        """A searchset of AuditEvents, newest first (A3: find every disclosure quickly)."""
        with unit_of_work(self._engine, writes=False) as session:
            statement = _filtered(query)
            total = len(
                session.execute(statement.with_only_columns(col(DisclosureLogRow.seq))).all()
            )
            rows = session.execute(
                statement.order_by(col(DisclosureLogRow.seq).desc())
                .offset(query.offset)
                .limit(query.count)
            ).scalars()
            entries = [{"resource": audit_event(row), "search": {"mode": "match"}} for row in rows]
        return bb.bundle("searchset", total=total, entry=entries)

    def accounting(self, patient_id: str, now: datetime) -> acc.Accounting:
        """The past three years of the patient's disclosures, with recipients named."""
        patient = f"Patient/{patient_id}"
        since = now - timedelta(days=365 * acc.ACCOUNTING_YEARS + 1)
        with unit_of_work(self._engine, writes=False) as session:
            record = _content(session, "Patient", patient_id)
            if record is None:
                raise ResourceNotFound(f"{patient} is not known")
            rows = list(
                session.execute(
                    _filtered(LogQuery(patient=patient, since=since, decision="permit")).order_by(
                        col(DisclosureLogRow.seq)
                    )
                ).scalars()
            )
            names = {
                reference: _organization_name(session, reference)
                for reference in {row.requester for row in rows}
            }
        return acc.accounting(patient, _patient_name(record), rows, names, since, now)


def _filtered(query: LogQuery) -> Any:
    statement = select(DisclosureLogRow)
    conditions = {
        "patient": (col(DisclosureLogRow.patient), query.patient),
        "requester": (col(DisclosureLogRow.requester), query.requester),
        "decision": (col(DisclosureLogRow.decision), query.decision),
        "emergency": (col(DisclosureLogRow.emergency), query.emergency),
    }
    for column, value in conditions.values():
        if value is not None:
            statement = statement.where(column == value)
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
