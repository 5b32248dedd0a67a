"""The dispatcher's own rules, with a deliverer that does what the test says: backoff, a bug
in a payload never stalls the queue, a lost lease records nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from adapters.ports import Delivery, Receipt
from interop.store import outbox
from interop.store.database import make_engine, unit_of_work
from interop.store.migrate import upgrade
from interop.store.outbox import TransportState
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.dispatcher import Dispatcher, RetryPolicy

POLICY = RetryPolicy(
    max_attempts=5,
    backoff=timedelta(seconds=30),
    backoff_max=timedelta(hours=1),
    lease=timedelta(minutes=5),
)


class Broken:
    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt:
        raise KeyError("a bug of ours")


class Slow:
    """Delivers, but only after another dispatcher took the row over (its lease ran out)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt:
        with unit_of_work(self.engine) as session:
            outbox.claim(session, datetime.now(UTC) + timedelta(hours=1), POLICY.lease, 10)
        return Receipt(Delivery.ACKNOWLEDGED, "late")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, chain_key=b"dispatcher-test-chain-key")
    upgrade(engine)
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        session.add(
            PartnerRow(
                client_id="p1",
                name="Bayview",
                organization_id="org-1",
                scopes="system/*.rs",
                created_at=now,
                channel="fhir",
                channel_address="https://fhir.bayview.example.org",
            )
        )
        session.add(queued("fhir", 1, now))
    yield engine
    engine.dispose()


def queued(channel: str, version: int, now: datetime) -> OutboxRow:
    """A change of Task t1 queued for partner p1 on `channel`, due now."""
    return OutboxRow(
        created_at=now,
        partner_client_id="p1",
        channel=channel,
        event="task-changed",
        resource_type="Task",
        resource_id="t1",
        version_id=version,
        state="queued",
        next_attempt_at=now,
    )


def rows(engine: Engine) -> list[OutboxRow]:
    with unit_of_work(engine, writes=False) as session:
        return outbox.listing(session, (), None, 10)


@pytest.mark.parametrize(
    ("attempts", "retry_after", "jitter", "seconds"),
    [
        (1, None, 0.0, 15),  # half the backoff at the low end of the jitter
        (1, None, 0.999, 29.985),
        (3, None, 0.0, 60),
        (20, None, 0.0, 1800),  # capped at backoff_max, then jittered
        (1, 120.0, 0.0, 120),  # the partner's Retry-After is a floor
    ],
)
def test_backoff_is_exponential_capped_jittered_and_honours_retry_after(
    attempts: int, retry_after: float | None, jitter: float, seconds: float
) -> None:
    delay = POLICY.delay(attempts, retry_after, jitter)
    assert delay.total_seconds() == pytest.approx(seconds)


def test_a_bug_building_a_payload_fails_the_row_without_stalling_the_queue(
    engine: Engine,
) -> None:
    [outcome] = Dispatcher(engine, Broken(), POLICY, lambda: datetime.now(UTC)).run_once()
    assert outcome.state is TransportState.FAILED
    [row] = rows(engine)
    assert (row.state, row.error) == ("failed", "internal error (KeyError); see the service log")
    assert row.finished_at is not None


def test_a_dispatcher_that_lost_its_lease_records_nothing(engine: Engine) -> None:
    [outcome] = Dispatcher(engine, Slow(engine), POLICY, lambda: datetime.now(UTC)).run_once()
    assert outcome.state is TransportState.SENDING
    [row] = rows(engine)
    assert (row.state, row.attempts, row.receipt) == ("sending", 2, "")


def test_a_failing_notification_endpoint_never_holds_back_the_push(engine: Engine) -> None:
    """Probe 15 #7: a Subscription hook retried for hours kept the same Task's push to the
    partner's FHIR server queued behind it. Each channel keeps its own order."""
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        [earlier] = outbox.listing(session, (), None, 10)
        earlier.channel = "rest-hook"
        session.add(earlier)
        session.add(queued("fhir", 2, now))
        session.add(queued("rest-hook", 2, now))
    with unit_of_work(engine) as session:
        claimed = outbox.claim(session, now + timedelta(seconds=1), POLICY.lease, 10)
    assert sorted((row.channel, row.version_id) for row in claimed) == [
        ("fhir", 2),
        ("rest-hook", 1),
    ]
