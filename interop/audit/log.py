"""The append-only, hash-chained disclosure log (42 CFR §2.24/§2.25; PART2.md A1, A3).

Each row's hash covers the previous row's hash and the row's own canonical content, so that
changing, deleting or reordering any row breaks every link after it; `verify` walks the chain
and names the first row that does not hold. Appending locks the chain head, so concurrent
writers (several API processes on one PostgreSQL) add links strictly one after another.
"""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlmodel import Session, col

from interop.store.tables import ChainHeadRow, DisclosureLogRow

GENESIS = "0" * 64
_HEAD = "disclosures"
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decision, as the gate hands it over."""

    recorded_at: datetime
    client_id: str
    requester: str
    patient: str | None
    purposes: tuple[str, ...]
    interaction: str
    decision: str
    rule: str
    consent: str | None
    provision: str | None
    resources: tuple[str, ...]
    labels: tuple[str, ...]
    part2: bool
    emergency: bool
    emergency_facts: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ChainReport:
    intact: bool
    rows: int
    first_broken_seq: int | None = None
    problem: str | None = None


def append(session: Session, entries: Sequence[LogEntry]) -> None:
    """Add the entries as the next links of the chain, inside the caller's transaction."""
    if not entries:
        return
    head = _locked_head(session)
    seq, previous = head.seq, head.hash
    for entry in entries:
        seq += 1
        row = _row(seq, entry, previous)
        session.add(row)
        previous = row.hash
    head.seq, head.hash = seq, previous
    session.add(head)
    session.flush()


def verify(session: Session) -> ChainReport:
    """Walk the chain from the first row; the first row that does not hold is named."""
    expected_seq, previous, count = 1, GENESIS, 0
    for row in _rows_in_order(session):
        count += 1
        if row.seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != previous:
            return ChainReport(False, count, row.seq, "the link to the previous row is broken")
        if _digest(row.prev_hash, _content(row)) != row.hash:
            return ChainReport(False, count, row.seq, "the row's content was changed")
        previous, expected_seq = row.hash, expected_seq + 1
    head = session.get(ChainHeadRow, _HEAD)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != previous):
        return ChainReport(False, count, expected_seq, "rows after the last one were removed")
    return ChainReport(True, count)


def _locked_head(session: Session) -> ChainHeadRow:
    statement = select(ChainHeadRow).where(col(ChainHeadRow.name) == _HEAD).with_for_update()
    head: ChainHeadRow | None = session.execute(statement).scalars().first()
    if head is None:
        head = ChainHeadRow(name=_HEAD, seq=0, hash=GENESIS)
    return head


def _rows_in_order(session: Session) -> Iterator[DisclosureLogRow]:
    last = 0
    while True:
        statement = (
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.seq) > last)
            .order_by(col(DisclosureLogRow.seq))
            .limit(_BATCH)
        )
        rows = list(session.execute(statement).scalars())
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def _row(seq: int, entry: LogEntry, previous: str) -> DisclosureLogRow:
    row = DisclosureLogRow(
        seq=seq,
        recorded_at=entry.recorded_at,
        client_id=entry.client_id,
        requester=entry.requester,
        patient=entry.patient,
        purposes=" ".join(entry.purposes),
        interaction=entry.interaction,
        decision=entry.decision,
        rule=entry.rule,
        consent=entry.consent,
        provision=entry.provision,
        resources=" ".join(entry.resources),
        labels=" ".join(entry.labels),
        part2=entry.part2,
        emergency=entry.emergency,
        emergency_facts=orjson.dumps(entry.emergency_facts).decode()
        if entry.emergency_facts
        else None,
        prev_hash=previous,
        hash="",
    )
    row.hash = _digest(previous, _content(row))
    return row


def _content(row: DisclosureLogRow) -> bytes:
    """The row's fields in a fixed order and form, independent of the database's."""
    fields: dict[str, Any] = {
        "seq": row.seq,
        "recorded_at": row.recorded_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "client_id": row.client_id,
        "requester": row.requester,
        "patient": row.patient,
        "purposes": row.purposes,
        "interaction": row.interaction,
        "decision": row.decision,
        "rule": row.rule,
        "consent": row.consent,
        "provision": row.provision,
        "resources": row.resources,
        "labels": row.labels,
        "part2": row.part2,
        "emergency": row.emergency,
        "emergency_facts": row.emergency_facts,
    }
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _digest(previous: str, content: bytes) -> str:
    return hashlib.sha256(previous.encode() + content).hexdigest()
