"""Attributing records whose writer was never recorded (the operator's origin) to a program."""

from sqlalchemy import Table, select, update
from sqlmodel import Session

from interop.store import markers
from interop.store.tables import OPERATOR_ORIGIN, RESOURCE_TABLE, VERSION_TABLE


def attribute_operator_records(session: Session, organization: str) -> int:
    """Name `organization` wherever the operator's origin stands, in every version and in the
    current rows; the number of versions changed. Whose records they are is what the gate's
    kept facts were read with: every watched counter moves."""
    for kind in sorted(markers.WATCHED):
        markers.note_write(session, kind)
    _attribute(session, RESOURCE_TABLE, organization)
    return _attribute(session, VERSION_TABLE, organization)


def _attribute(session: Session, table: Table, organization: str) -> int:
    rows = session.execute(
        select(table.c.pk, table.c.custodians).where(table.c.custodians.contains(OPERATOR_ORIGIN))
    ).all()
    for pk, custodians in rows:
        named = [organization if c == OPERATOR_ORIGIN else c for c in custodians.split()]
        unique = " ".join(dict.fromkeys(named))
        session.execute(update(table).where(table.c.pk == pk).values(custodians=unique))
    session.execute(
        update(table).where(table.c.origin == OPERATOR_ORIGIN).values(origin=organization)
    )
    return len(rows)
