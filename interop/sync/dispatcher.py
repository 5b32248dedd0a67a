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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.ports import Receipt
from interop.services.errors import ServiceError
from interop.services.outbox import REST_HOOK
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.outbox import TransportState
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.payloads import Withheld

_log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """Builds the row's payload for the partner and hands it to the partner's channel."""

    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt: ...


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
    ) -> None:
        self._concurrency = concurrency
        self._engine = engine
        self._deliverer = deliverer
        self._policy = policy
        self._clock = clock
        self._jitter = jitter

    def run_once(self, limit: int = 20) -> list[Outcome]:
        """One round: claim what is due and work it; the outcomes, for the CLI and tests."""
        with unit_of_work(self._engine) as session:
            claimed = outbox.claim(session, self._clock(), self._policy.lease, limit)
        if self._concurrency == 1 or len(claimed) < 2:
            return [self._work(row) for row in claimed]
        # A round claims at most one change per partner and resource, so its deliveries are
        # independent: made at once, a round lasts as long as its slowest partner answer.
        with ThreadPoolExecutor(min(self._concurrency, len(claimed))) as workers:
            return list(workers.map(self._work, claimed))

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

    def _work(self, row: OutboxRow) -> Outcome:
        """One attempt, then its log line."""
        started = time.monotonic()
        outcome = self._attempt(row)
        _log_attempt(row, outcome, round((time.monotonic() - started) * 1000))
        return outcome

    def _attempt(self, row: OutboxRow) -> Outcome:
        if row.attempts > self._policy.max_attempts:  # claimed again and again, never finished
            reason = f"gave up after {row.attempts - 1} attempts that never finished"
            return self._finish(row, TransportState.FAILED, error=reason, cause="never finished")
        try:
            partner = self._partner(row)
            receipt = self._deliverer.deliver(row, partner)
        except Withheld:
            return self._finish(row, TransportState.WITHHELD, error=_WITHHELD, cause="withheld")
        except PartnerRejected as refused:
            return self._finish(
                row, TransportState.FAILED, error=str(refused)[:1000], cause=refused.reason[:100]
            )
        except PartnerUnavailable as unavailable:
            return self._retry(row, unavailable)
        except ServiceError as error:
            return self._finish(
                row, TransportState.FAILED, error=error.message[:1000], cause=type(error).__name__
            )
        except Exception as error:  # a bug of ours: stop, say so, and keep the round going
            name = type(error).__name__
            reason = f"internal error ({name}); see the service log"
            return self._finish(row, TransportState.FAILED, error=reason, cause=f"bug: {name}")
        return self._finish(row, TransportState(receipt.state.value), receipt=receipt.reference)

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
