"""Transaction-scoped locks on names, for writes that must not race on PostgreSQL.

A conditional create (PUT [type]?[criteria] with no match, or POST with If-None-Exist) reads,
then writes: two transactions with the same criteria both read "none" under READ COMMITTED and
both create, after which every later conditional write with those criteria answers 412. Taking
a lock on the criteria first makes the second wait for the first to commit, and its read then
sees the first one's resource. SQLite needs nothing: its writers are serialized already (every
unit of work begins IMMEDIATE).
"""

import hashlib
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlmodel import Session


def serialize_on(session: Session, names: Iterable[str]) -> None:
    """Until the transaction ends, other transactions naming any of `names` wait here; names
    are locked in sorted order, so two transactions never wait for each other."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for name in sorted(set(names)):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(name)})


def criteria_name(resource_type: str, criteria: Sequence[tuple[str, str]]) -> str:
    """One name for the same criteria however they arrive (REST header, URL or Bundle entry),
    so that a conditional create over REST and one in a transaction wait for each other."""
    return f"{resource_type}?{sorted(c for c in criteria if c[0] != '_format')}"


def _key(name: str) -> int:
    """A signed 64-bit key for the name (pg_advisory_xact_lock takes a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
