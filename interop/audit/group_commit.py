"""Group commit for the disclosure log: nothing leaves before its decision is durably logged
(PART2.md A1), yet concurrent requests do not each pay one locked write transaction.

Each request hands its entries to the process's log writer, a thread of its own, and waits
on the future it gets back: a thread blocks on it, a coroutine awaits it, so that a request
served on the event loop lets the loop serve others meanwhile. The writer takes every entry
handed over since its last turn, appends them in one transaction (the chain stays exact: one
writer extends it at a time, across processes too, since `append` locks the chain head) and
settles each request's future. A failed commit fails every request of that batch, so none of them
discloses. The writer ends after a moment without work and starts again with the next entry.
"""

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine

from interop.audit.log import LogEntry, append
from interop.store.database import core_transaction

IDLE_SECONDS: Final = 2.0
"""How long the writer waits for entries before ending; an engine's pool outlives it."""


@dataclass(frozen=True, slots=True, eq=False)
class _Ticket:
    entries: Sequence[LogEntry]
    committed: "Future[None]" = field(default_factory=Future)
    """Settled by the writer: a thread waits on it, a coroutine awaits it wrapped."""


class GroupCommitLog:
    """The disclosure log of one process, written in batches of concurrent requests."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending: list[_Ticket] = []
        self._wake = threading.Condition()
        self._writing = False
        self._idle = False
        """The writer waits for entries: only then is it woken (a notify costs the request
        thread a lock handoff for nothing while the writer is committing)."""

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Return once `entries` are committed; raise if their batch could not be."""
        if entries:
            self._hand_over(entries).result()

    async def write_async(self, entries: Sequence[LogEntry]) -> None:
        """As `write`, awaiting the commit without holding the event loop."""
        if entries:
            await asyncio.wrap_future(self._hand_over(entries))

    def _hand_over(self, entries: Sequence[LogEntry]) -> "Future[None]":
        ticket = _Ticket(entries)
        with self._wake:
            self._pending.append(ticket)
            if self._writing:
                if self._idle:
                    self._wake.notify()
                return ticket.committed
            self._writing = True
        threading.Thread(target=self._write_batches, name="disclosure-log", daemon=True).start()
        return ticket.committed

    def _write_batches(self) -> None:
        while batch := self._next_batch():
            self._commit(batch)

    def _next_batch(self) -> list[_Ticket]:
        """Every ticket handed over so far; empty (and the writer ends) after IDLE_SECONDS
        without one."""
        with self._wake:
            if not self._pending:
                self._idle = True
                self._wake.wait(IDLE_SECONDS)
                self._idle = False
            batch, self._pending = self._pending, []
            if not batch:
                self._writing = False
            return batch

    def _commit(self, batch: list[_Ticket]) -> None:
        # A request that went away meanwhile (its future cancelled) still has its entries
        # committed; the others can no longer be cancelled, only settled.
        waiting = [t.committed for t in batch if t.committed.set_running_or_notify_cancel()]
        try:
            with core_transaction(self._engine) as connection:
                append(connection, [entry for ticket in batch for entry in ticket.entries])
        except BaseException as failure:  # every request of the batch fails; the writer goes on
            for committed in waiting:
                committed.set_exception(failure)
            return
        for committed in waiting:
            committed.set_result(None)
