"""The dispatcher: delivers queued changes to partners, at least once, whatever they do.

Each round claims due rows (a lease, committed at once, so other dispatchers skip them),
builds each payload through the gate, delivers it through the partner's channel outside any
transaction, and records what happened only if the row is still its own (a dispatcher that
overran its lease lost the row to another and records nothing). A process killed between
delivering and recording leaves the row to be claimed and sent again when the lease ends:
partners deduplicate by identifier (conditional updates on our URLs, RF1-6, document names).

Retryable failures (adapters.errors.PartnerUnavailable) back off exponentially with jitter,
or as the partner's Retry-After asks, until `max_attempts`; a refusal (PartnerRejected) or a
payload the gate withholds ends the delivery at once with its reason, for staff to act on.
Operators see one log line per delivery attempt (`delivery id=... partner=... channel=...
event=... state=... attempt=... elapsed_ms=... cause=...`) and one when a dispatcher starts:
rows, partner client ids, states and reasons of ours; never patient data nor a partner's own
explanation (which may echo what was sent; staff read it in `sync status`).
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.ports import Receipt
from interop.services.errors import ServiceError
from interop.services.outbox import REST_HOOK, ChannelKind
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.outbox import TransportState
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.payloads import Withheld

_log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """Builds the row's payload for the partner and hands it to the partner's channel."""

    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt: ...

    def deliver_together(
        self, rows: Sequence[OutboxRow], partner: PartnerRow
    ) -> list[Receipt | Exception]:
        """Several changes to one partner's FHIR server, each row's receipt or error."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff: timedelta
    backoff_max: timedelta
    lease: timedelta

    def delay(self, attempts: int, retry_after: float | None, jitter: float) -> timedelta:
        """Exponential from `backoff`, capped, spread by `jitter` in [0, 1) so that partners
        coming back are not hit by every queued delivery at once; Retry-After is a floor."""
        exponential: timedelta = self.backoff * 2 ** min(max(attempts - 1, 0), 30)
        delay: timedelta = min(exponential, self.backoff_max) * (0.5 + jitter / 2)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=min(retry_after, 86_400)))
        return delay


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to; `error` is ours, short, without patient data."""

    pk: int
    partner: str
    state: TransportState
    error: str = ""
    cause: str = ""
    """Why, in a few words of ours (never the partner's text): what the log line says."""


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        deliverer: Deliverer,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        jitter: Callable[[], float] = random.random,
        concurrency: int = 1,
        together: int = 1,
    ) -> None:
        self._concurrency = concurrency
        self._together = together
        self._engine = engine
        self._deliverer = deliverer
        self._policy = policy
        self._clock = clock
        self._jitter = jitter

    def run_once(self, limit: int = 20) -> list[Outcome]:
        """One round: claim what is due and work it; the outcomes, for the CLI and tests."""
        with unit_of_work(self._engine) as session:
            claimed = outbox.claim(session, self._clock(), self._policy.lease, limit)
        units = _units(claimed, self._together)
        if self._concurrency == 1 or len(units) < 2:
            return [outcome for unit in units for outcome in self._work(unit)]
        # A round claims at most one change per partner and resource, so its deliveries are
        # independent: made at once, a round lasts as long as its slowest partner answer.
        with ThreadPoolExecutor(min(self._concurrency, len(units))) as workers:
            return [outcome for done in workers.map(self._work, units) for outcome in done]

    def run_forever(self, stop: threading.Event, interval: float, limit: int = 20) -> None:
        """Rounds until `stop` is set, resting `interval` seconds when nothing was due."""
        _log.info(
            "dispatcher started: up to %d deliveries per round, resting %.2fs when none is due,"
            " %d attempts at most, lease %ds",
            limit,
            interval,
            self._policy.max_attempts,
            self._policy.lease.total_seconds(),
        )
        while not stop.is_set():
            try:
                worked = self.run_once(limit)
            except Exception as error:  # the database went away: try again next round
                _log.error("dispatch round failed: %s", type(error).__name__)
                worked = []
            if not worked:
                stop.wait(interval)

    def _work(self, unit: list[OutboxRow]) -> list[Outcome]:
        """One attempt at each row of the unit, then their log lines."""
        started = time.monotonic()
        # claimed again and again, never finished: given up, not attempted again
        spent = [row for row in unit if row.attempts > self._policy.max_attempts]
        due = [row for row in unit if row.attempts <= self._policy.max_attempts]
        outcomes = [*map(self._settle, due, self._deliver(due)), *map(self._gave_up, spent)]
        elapsed_ms = round((time.monotonic() - started) * 1000)
        for row, outcome in zip([*due, *spent], outcomes, strict=True):
            _log_attempt(row, outcome, elapsed_ms)
        return outcomes

    def _deliver(self, rows: list[OutboxRow]) -> list[Receipt | Exception]:
        """Each row's receipt or error: alone, or together when the unit is several."""
        if not rows:
            return []
        try:
            partner = self._partner(rows[0])
            if len(rows) == 1:
                return [self._deliverer.deliver(rows[0], partner)]
            return self._deliverer.deliver_together(rows, partner)
        except Exception as error:  # the partner's registration, or a bug: every row
            return [error] * len(rows)

    def _gave_up(self, row: OutboxRow) -> Outcome:
        reason = f"gave up after {row.attempts - 1} attempts that never finished"
        return self._finish(row, TransportState.FAILED, error=reason, cause="never finished")

    def _settle(self, row: OutboxRow, result: Receipt | Exception) -> Outcome:
        """The attempt's result recorded: a receipt's state, a retry, or the end and why."""
        match result:
            case Receipt():
                state = TransportState(result.state.value)
                return self._finish(row, state, receipt=result.reference)
            case Withheld():
                return self._finish(row, TransportState.WITHHELD, error=_WITHHELD, cause="withheld")
            case PartnerRejected():
                return self._finish(
                    row, TransportState.FAILED, error=str(result)[:1000], cause=result.reason[:100]
                )
            case PartnerUnavailable():
                return self._retry(row, result)
            case ServiceError():
                return self._finish(
                    row,
                    TransportState.FAILED,
                    error=result.message[:1000],
                    cause=type(result).__name__,
                )
        # a bug of ours: stop, say so, and keep the round going
        name = type(result).__name__
        reason = f"internal error ({name}); see the service log"
        return self._finish(row, TransportState.FAILED, error=reason, cause=f"bug: {name}")

    def _partner(self, row: OutboxRow) -> PartnerRow:
        with unit_of_work(self._engine, writes=False) as session:
            partner = outbox.partner(session, row.partner_client_id)
        if partner is None or not partner.enabled:
            raise PartnerRejected("the partner is disabled or no longer registered")
        if partner.channel == "none" and row.channel != REST_HOOK:
            raise PartnerRejected("the partner has no channel any more")
        return partner

    def _retry(self, row: OutboxRow, unavailable: PartnerUnavailable) -> Outcome:
        if row.attempts >= self._policy.max_attempts:
            reason = f"gave up after {row.attempts} attempts: {unavailable.reason}"
            cause = f"gave up: {unavailable.reason[:100]}"
            return self._finish(row, TransportState.FAILED, error=reason[:1000], cause=cause)
        delay = self._policy.delay(row.attempts, unavailable.retry_after, self._jitter())
        return self._finish(
            row,
            TransportState.QUEUED,
            error=unavailable.reason[:1000],
            cause=unavailable.reason[:100],
            next_attempt=self._clock() + delay,
        )

    def _finish(
        self,
        claimed: OutboxRow,
        state: TransportState,
        *,
        error: str = "",
        cause: str = "",
        receipt: str = "",
        next_attempt: datetime | None = None,
    ) -> Outcome:
        """Record the attempt, unless the lease was lost and another dispatcher owns the row."""
        assert claimed.pk is not None
        with unit_of_work(self._engine) as session:
            row = outbox.get(session, claimed.pk, lock=True)
            if (
                row is None
                or row.state != TransportState.SENDING
                or row.attempts != claimed.attempts
            ):
                lost = "lease lost to another dispatcher"
                return Outcome(
                    claimed.pk, claimed.partner_client_id, TransportState.SENDING, cause=lost
                )
            row.state = state
            row.error = error
            row.receipt = receipt
            row.lease_until = None
            if next_attempt is not None:
                row.next_attempt_at = next_attempt
            else:
                row.finished_at = self._clock()
            session.add(row)
        return Outcome(claimed.pk, claimed.partner_client_id, state, error, cause)


def _units(claimed: list[OutboxRow], together: int) -> list[list[OutboxRow]]:
    """The round's rows as delivery units: a partner's FHIR pushes on their first attempt in
    groups of up to `together` (one transaction each), every other row alone. A change tried
    before goes alone: whatever failed it (a partner too slow for a large transaction, a
    refusal of one of its neighbours) then holds back no other change."""
    units: list[list[OutboxRow]] = []
    open_units: dict[str, list[OutboxRow]] = {}
    for row in claimed:
        if together < 2 or row.channel != ChannelKind.FHIR or row.attempts > 1:
            units.append([row])
            continue
        unit = open_units.get(row.partner_client_id)
        if unit is None or len(unit) >= together:
            unit = open_units[row.partner_client_id] = []
            units.append(unit)
        unit.append(row)
    return units


def _log_attempt(row: OutboxRow, outcome: Outcome, elapsed_ms: int) -> None:
    """The operator's line for one attempt: ids, channel, event, state, counts, our reason."""
    level = logging.WARNING if outcome.state is TransportState.FAILED else logging.INFO
    _log.log(
        level,
        "delivery id=%s partner=%s channel=%s event=%s state=%s attempt=%d elapsed_ms=%d cause=%s",
        row.pk,
        row.partner_client_id,
        row.channel,
        row.event,
        outcome.state.value,
        row.attempts,
        elapsed_ms,
        outcome.cause or "-",
    )


_WITHHELD = (
    "the disclosure gate withheld the referral from this partner, or a part it needs (the "
    "Task, its ServiceRequest, the client): no consent on file covers it for this partner, "
    "or the part is not stored here (a Task whose focus names no ServiceRequest)"
)
