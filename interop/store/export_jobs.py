"""Queries and writes of Bulk Data export jobs and their output chunks; the caller owns the
transaction (flush, never commit)."""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import CursorResult, Update, and_, delete, func, or_, select, update
from sqlmodel import Session, col

from interop.store.tables import EXPORT_CHUNK_TABLE, EXPORT_JOB_TABLE, ExportChunkRow, ExportJobRow

JOB = EXPORT_JOB_TABLE.c
CHUNK = EXPORT_CHUNK_TABLE.c

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; every one stored here is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _changed(session: Session, statement: Update) -> int:
    """How many rows an UPDATE changed: the compare-and-set that makes claims exclusive."""
    result = session.execute(statement)
    return result.rowcount if isinstance(result, CursorResult) else 0


def add(session: Session, job: ExportJobRow, notes: bytes, note_lines: int) -> ExportJobRow:
    """A new job; `notes` (NDJSON OperationOutcomes about the request) become its error file."""
    session.add(job)
    session.flush()
    assert job.pk is not None
    if note_lines:
        session.add(
            ExportChunkRow(
                job_pk=job.pk, resource_type="OperationOutcome", lines=note_lines, content=notes
            )
        )
        session.flush()
    return job


def find(session: Session, job_id: str) -> ExportJobRow | None:
    statement = select(ExportJobRow).where(col(ExportJobRow.job_id) == job_id)
    row: ExportJobRow | None = session.execute(statement).scalars().first()
    return row


def claim(session: Session, now: datetime, lease: timedelta) -> ExportJobRow | None:
    """The oldest job due: queued, or running under a lease its worker let lapse (it died).

    Taken by compare-and-set on its state and lease, so that of several workers (processes)
    one wins; the others see no row changed and look again."""
    due = or_(
        col(ExportJobRow.state) == QUEUED,
        and_(col(ExportJobRow.state) == RUNNING, col(ExportJobRow.lease_until) < now),
    )
    candidate = (
        session.execute(select(ExportJobRow).where(due).order_by(col(ExportJobRow.pk)).limit(1))
        .scalars()
        .first()
    )
    if candidate is None:
        return None
    taken = _changed(
        session,
        update(EXPORT_JOB_TABLE)
        .where(
            JOB.pk == candidate.pk,
            JOB.state == candidate.state,
            or_(JOB.lease_until.is_(None), JOB.lease_until == candidate.lease_until),
        )
        .values(
            state=RUNNING,
            lease_until=now + lease,
            transaction_time=func.coalesce(JOB.transaction_time, now),
        ),
    )
    if taken != 1:
        return None
    session.refresh(candidate)
    claimed: ExportJobRow = candidate
    return claimed


def advance(
    session: Session,
    job_pk: int,
    *,
    resource_type: str,
    content: bytes,
    lines: int,
    type_index: int,
    cursor: int,
    lease_until: datetime,
) -> bool:
    """Record a page: its lines (if any) and where the job now stands, in one transaction.

    False when the job is no longer running here (deleted, or taken over after a lapsed
    lease): the caller then rolls back, so nothing of the page is kept."""
    moved = _changed(
        session,
        update(EXPORT_JOB_TABLE)
        .where(JOB.pk == job_pk, JOB.state == RUNNING)
        .values(
            type_index=type_index,
            cursor=cursor,
            released=JOB.released + lines,
            lease_until=lease_until,
        ),
    )
    if moved != 1:
        return False
    if lines:
        session.add(
            ExportChunkRow(job_pk=job_pk, resource_type=resource_type, lines=lines, content=content)
        )
        session.flush()
    return True


def finish(
    session: Session, job_pk: int, state: str, now: datetime, expires: datetime, error: str = ""
) -> bool:
    """Completed or failed, kept until `expires`; False when the job is gone."""
    done = _changed(
        session,
        update(EXPORT_JOB_TABLE)
        .where(JOB.pk == job_pk, JOB.state == RUNNING)
        .values(state=state, finished_at=now, expires_at=expires, lease_until=None, error=error),
    )
    return done == 1


def release(session: Session, job_pk: int) -> None:
    """Back to the queue at its position, for the next worker to resume at once."""
    session.execute(
        update(EXPORT_JOB_TABLE)
        .where(JOB.pk == job_pk, JOB.state == RUNNING)
        .values(state=QUEUED, lease_until=None)
    )


def remove(session: Session, job_pk: int) -> None:
    """The job and every chunk of its files."""
    session.execute(delete(ExportChunkRow).where(col(ExportChunkRow.job_pk) == job_pk))
    session.execute(delete(ExportJobRow).where(col(ExportJobRow.pk) == job_pk))


def expired(session: Session, now: datetime) -> list[int]:
    """Finished jobs past their expiry, whose files may go."""
    statement = select(JOB.pk).where(JOB.expires_at.is_not(None), JOB.expires_at < now)
    return [int(pk) for pk in session.execute(statement).scalars()]


def files(session: Session, job_pk: int) -> list[tuple[str, int]]:
    """(type, lines) of each output file of the job, in the order its chunks were written."""
    statement = (
        select(CHUNK.resource_type, func.sum(CHUNK.lines), func.min(CHUNK.pk))
        .where(CHUNK.job_pk == job_pk)
        .group_by(CHUNK.resource_type)
        .order_by(func.min(CHUNK.pk))
    )
    return [(str(kind), int(lines)) for kind, lines, _first in session.execute(statement).all()]


def chunk_keys(session: Session, job_pk: int, resource_type: str) -> list[int]:
    statement = (
        select(CHUNK.pk)
        .where(CHUNK.job_pk == job_pk, CHUNK.resource_type == resource_type)
        .order_by(CHUNK.pk)
    )
    return [int(pk) for pk in session.execute(statement).scalars()]


def chunk_contents(session: Session, keys: Sequence[int]) -> Iterator[bytes]:
    """The chunks' bytes one at a time, so a large file is never held whole."""
    for key in keys:
        content = session.execute(select(CHUNK.content).where(CHUNK.pk == key)).scalar_one_or_none()
        if content is not None:
            yield bytes(content)
