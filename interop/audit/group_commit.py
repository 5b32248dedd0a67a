"""Group commit for the disclosure log: nothing leaves before its decision is durably logged
(PART2.md A1), yet concurrent requests do not each pay one locked write transaction.

Each request hands its entries to the process's log writer, a thread of its own, and waits:
a thread on an event, a coroutine on a future, so that a request served on the event loop
lets the loop serve others meanwhile. The writer takes every entry handed over since its last
turn, appends them in one transaction (the chain stays exact: one writer extends it at a
time, across processes too, since `append` locks the chain head) and wakes each request whose
entries it committed. A failed commit fails every request of that batch, so none of them
discloses. The writer ends after a moment without work and starts again with the next entry.
"""

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine

from interop.audit.log import LogEntry, append
from interop.store.database import core_transaction

IDLE_SECONDS: Final = 2.0
"""How long the writer waits for entries before ending; an engine's pool outlives it."""


@dataclass(frozen=True, slots=True, eq=False)
class _Ticket:
    entries: Sequence[LogEntry]
    settle: Callable[[BaseException | None], None]
    """Called by the writer once, with the batch's error or None."""


class GroupCommitLog:
    """The disclosure log of one process, written in batches of concurrent requests."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending: list[_Ticket] = []
        self._wake = threading.Condition()
        self._writing = False

    def write(self, entries: Sequence[LogEntry]) -> None:
        """Return once `entries` are committed; raise if their batch could not be."""
        if not entries:
            return
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def settle(error: BaseException | None) -> None:
            outcome.append(error)
            done.set()

        self._hand_over(_Ticket(entries, settle))
        done.wait()
        if outcome[0] is not None:
            raise outcome[0]

    async def write_async(self, entries: Sequence[LogEntry]) -> None:
        """As `write`, awaiting the commit without holding the event loop."""
        if not entries:
            return
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_resolve, committed, error)

        self._hand_over(_Ticket(entries, settle))
        await committed

    def _hand_over(self, ticket: _Ticket) -> None:
        with self._wake:
            self._pending.append(ticket)
            if self._writing:
                self._wake.notify()
                return
            self._writing = True
        threading.Thread(target=self._write_batches, name="disclosure-log", daemon=True).start()

    def _write_batches(self) -> None:
        while batch := self._next_batch():
            self._commit(batch)

    def _next_batch(self) -> list[_Ticket]:
        """Every ticket handed over so far; empty (and the writer ends) after IDLE_SECONDS
        without one."""
        with self._wake:
            if not self._pending:
                self._wake.wait(IDLE_SECONDS)
            batch, self._pending = self._pending, []
            if not batch:
                self._writing = False
            return batch

    def _commit(self, batch: list[_Ticket]) -> None:
        error: BaseException | None = None
        try:
            with core_transaction(self._engine) as connection:
                append(connection, [entry for ticket in batch for entry in ticket.entries])
        except BaseException as failure:  # every request of the batch fails; the writer goes on
            error = failure
        for ticket in batch:
            ticket.settle(error)


def _resolve(future: "asyncio.Future[None]", error: BaseException | None) -> None:
    """On the waiting loop: a request that went away meanwhile has a cancelled future."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
