"""The queries that tell the disclosure gate what it needs to know of Organizations."""

from typing import Any

import orjson
from sqlalchemy import select
from sqlmodel import Session

from interop.store.search_params import token_system
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE


def part2_programs(session: Session) -> frozenset[str]:
    """The Organizations flagged as Part 2 programs, as references."""
    flagged = select(INDEX_TABLE.c.resource_pk).where(
        INDEX_TABLE.c.resource_type == "Organization",
        INDEX_TABLE.c.param == "part2-program",
        INDEX_TABLE.c.value == "true",
    )
    ids = session.execute(
        select(RESOURCE_TABLE.c.resource_id).where(RESOURCE_TABLE.c.pk.in_(flagged))
    ).scalars()
    return frozenset(f"Organization/{ident}" for ident in ids)


def named_by(session: Session, system: str | None, value: str) -> list[str]:
    """The ids of the undeleted Organizations carrying the identifier (no system: one
    written without a system; either spelling of the system, `token_system`), read from the
    search index in one query."""
    index = INDEX_TABLE.c
    system_matches = index.system == token_system(system) if system else index.system.is_(None)
    keys = select(index.resource_pk).where(
        index.resource_type == "Organization",
        index.param == "identifier",
        index.value == value,
        system_matches,
    )
    statement = select(RESOURCE_TABLE.c.resource_id).where(
        RESOURCE_TABLE.c.pk.in_(keys), RESOURCE_TABLE.c.deleted.is_(False)
    )
    return list(session.execute(statement).scalars())


def known_organizations(session: Session) -> frozenset[str]:
    """Every stored Organization that is not deleted, as references."""
    ids = session.execute(
        select(RESOURCE_TABLE.c.resource_id).where(
            RESOURCE_TABLE.c.resource_type == "Organization",
            RESOURCE_TABLE.c.deleted.is_(False),
        )
    ).scalars()
    return frozenset(f"Organization/{ident}" for ident in ids)


def identifiers(session: Session, reference: str) -> list[tuple[str | None, str]]:
    """(system, value) of each identifier of a stored resource (an Organization, usually)."""
    kind, _, ident = reference.partition("/")
    content = session.execute(
        select(RESOURCE_TABLE.c.content).where(
            RESOURCE_TABLE.c.resource_type == kind, RESOURCE_TABLE.c.resource_id == ident
        )
    ).scalar()
    if content is None:
        return []
    items: list[Any] = orjson.loads(content).get("identifier", [])
    return [
        (item.get("system"), item["value"])
        for item in items
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    ]
