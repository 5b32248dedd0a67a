"""Which stored resources carry an identifier: how other systems name patients and
organizations to us (a consent consult's patientId and actor)."""

from typing import NamedTuple

from sqlalchemy import select
from sqlmodel import Session

from interop.store.search_params import token_system
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE


class Carrier(NamedTuple):
    resource_id: str
    origin: str


def ids_with(session: Session, resource_type: str, system: str | None, value: str) -> list[str]:
    """Ids of the current resources of a type that carry the identifier (system and value, in
    either spelling of its system: `token_system`)."""
    return [carrier.resource_id for carrier in _carrying(session, resource_type, system, value)]


def patients_carrying(session: Session, system: str | None, value: str) -> list[Carrier]:
    """The current Patients carrying the identifier, with whose record each is."""
    return _carrying(session, "Patient", system, value)


def _carrying(
    session: Session, resource_type: str, system: str | None, value: str
) -> list[Carrier]:
    statement = select(RESOURCE_TABLE.c.resource_id, RESOURCE_TABLE.c.origin).where(
        RESOURCE_TABLE.c.deleted.is_(False),
        RESOURCE_TABLE.c.pk.in_(
            select(INDEX_TABLE.c.resource_pk).where(
                INDEX_TABLE.c.resource_type == resource_type,
                INDEX_TABLE.c.param == "identifier",
                INDEX_TABLE.c.system == token_system(system),
                INDEX_TABLE.c.value == value,
            )
        ),
    )
    return [Carrier(ident, origin) for ident, origin in session.execute(statement)]
