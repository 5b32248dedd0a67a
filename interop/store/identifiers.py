"""Which stored resources carry an identifier: how other systems name patients and
organizations to us (a consent consult's patientId and actor)."""

from sqlalchemy import select
from sqlmodel import Session

from interop.store.search_params import token_system
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE


def ids_with(session: Session, resource_type: str, system: str | None, value: str) -> list[str]:
    """Ids of the current resources of a type that carry the identifier (system and value, in
    either spelling of its system: `token_system`)."""
    statement = select(RESOURCE_TABLE.c.resource_id).where(
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
    return list(session.execute(statement).scalars())


def patient_custodians(
    session: Session, system: str | None, value: str
) -> dict[str, frozenset[str]]:
    """The current Patients carrying the identifier, each with every organization that wrote a
    version of it: anyone may write a Patient with any identifier, so who did tells them apart."""
    carriers = ids_with(session, "Patient", system, value)
    statement = select(RESOURCE_TABLE.c.resource_id, RESOURCE_TABLE.c.custodians).where(
        RESOURCE_TABLE.c.resource_type == "Patient",
        RESOURCE_TABLE.c.resource_id.in_(carriers),
        RESOURCE_TABLE.c.deleted.is_(False),
    )
    return {
        ident: frozenset(custodians.split()) for ident, custodians in session.execute(statement)
    }
