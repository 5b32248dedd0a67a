"""Engines and units of work for SQLite (embedded) and PostgreSQL."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlmodel import Session

from interop.settings import sqlalchemy_url

CHAIN_KEY_OPTION = "interop_chain_key"
"""The execution option carrying the disclosure log's key (interop.audit.log), so that every
unit of work on this engine can extend and check the chain, and no table ever holds the key."""


def make_engine(
    database_url: str, *, chain_key: bytes | None = None, busy_timeout: float = 30
) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL, foreign keys and a busy timeout (how
    long a writer waits for another's lock, in seconds). `chain_key` (settings.chain_key()) is
    what the disclosure log is keyed with."""
    url = sqlalchemy_url(database_url)
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    else:
        _ensure_parent_directory(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        with _TURNS_GUARD:
            _WRITE_TURNS.setdefault(engine.url.database or "", (threading.Lock(), busy_timeout))
    return (
        engine if chain_key is None else engine.execution_options(**{CHAIN_KEY_OPTION: chain_key})
    )


def _ensure_parent_directory(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Writers take the write lock at BEGIN, so that they queue instead of failing to upgrade
    a read lock; readers begin deferred and go on reading beside them under WAL."""
    if connection.get_execution_options().get(_WRITES):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


_WRITES = "interop_writes"


_WRITE_TURNS: dict[str, tuple[threading.Lock, float]] = {}
"""Per SQLite database file: the turn its writers in this process take, and how long one
waits for it (the engine's busy timeout)."""
_TURNS_GUARD = threading.Lock()


@contextmanager
def unit_of_work(engine: Engine, *, writes: bool = True) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    bind = engine.execution_options(**{_WRITES: True}) if writes else engine
    with (
        _write_turn(engine, writes),
        Session(bind, expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextmanager
def core_transaction(engine: Engine) -> Iterator[Connection]:
    """A writing transaction on a plain connection, for hot paths that need no ORM (the
    disclosure log's group commit): committed when the block ends, rolled back when it raises."""
    with (
        _write_turn(engine, writes=True),
        engine.execution_options(**{_WRITES: True}).begin() as connection,
    ):
        yield connection


@contextmanager
def _write_turn(engine: Engine, writes: bool) -> Iterator[None]:
    """SQLite takes one writer at a time. Left to SQLite, the writers of this process would
    each poll its lock with growing sleeps (its busy handler), so that under a few concurrent
    writes the database sits idle between them; queued here, each begins the moment the one
    before it has committed. Writers in other processes still meet at SQLite's own lock."""
    turn = _WRITE_TURNS.get(engine.url.database or "") if writes else None
    if turn is None:
        yield
        return
    lock, timeout = turn
    if not lock.acquire(timeout=timeout):
        raise sqlite3.OperationalError("database is locked")
    try:
        yield
    finally:
        lock.release()
