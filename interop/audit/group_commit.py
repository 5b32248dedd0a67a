"""Group commit for the disclosure log: nothing leaves before its decision is durably logged
(PART2.md A1), yet concurrent requests do not each pay one locked write transaction.

Each request hands its entries over and waits. Whoever holds the writer's turn takes every
entry handed over so far, its own and those of the requests that arrived meanwhile, appends
them in one transaction (the chain stays exact: one writer extends it at a time, across
processes too, since `append` locks the chain head) and wakes each request whose entries it
committed. A request finds its entries committed by an earlier turn, or commits them in its
own; a failed commit fails every request of that batch, so none of them discloses.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from interop.audit.log import LogEntry, append
from interop.store.database import core_transaction


@dataclass(eq=False)
class _Ticket:
    entries: Sequence[LogEntry]
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommitLog:
    """The disclosure log of one process, written in batches of concurrent requests."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending: list[_Ticket] = []
        self._pending_lock = threading.Lock()
        self._turn = threading.Lock()

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Return once `entries` are committed; raise if their batch could not be."""
        if not entries:
            return
        ticket = _Ticket(entries)
        with self._pending_lock:
            self._pending.append(ticket)
        with self._turn:
            if not ticket.done.is_set():
                self._commit(self._take())
        if ticket.error is not None:
            raise ticket.error

    def _take(self) -> list[_Ticket]:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        return batch

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            with core_transaction(self._engine) as connection:
                append(connection, [entry for ticket in batch for entry in ticket.entries])
        except BaseException as error:
            for ticket in batch:
                ticket.error = error
                ticket.done.set()
            raise
        for ticket in batch:
            ticket.done.set()
