"""What operators see of the sync workers: one log line per delivery attempt and per poll
round, with ids, channel, event, state, attempt and time, and never a patient's data, not
even when a partner's refusal quotes it; a start line saying what the worker serves."""

import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.ports import Delivery, Receipt
from interop.store.database import make_engine, unit_of_work
from interop.store.migrate import upgrade
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.channels import ChannelDeliverer
from interop.sync.dispatcher import Dispatcher, RetryPolicy
from interop.sync.poller import Poller

POLICY = RetryPolicy(
    max_attempts=5,
    backoff=timedelta(seconds=30),
    backoff_max=timedelta(hours=1),
    lease=timedelta(minutes=5),
)
PATIENT_DATA = ("Robin", "Quinlan", "1984-03-09")
"""What a partner's refusal quotes back in these tests: it must never reach the log."""
QUOTED = "Patient Robin Quinlan (born 1984-03-09) is not valid"
DELIVERY_LINE = re.compile(
    r"^delivery id=(?P<id>\d+) partner=(?P<partner>\S+) channel=(?P<channel>\S+)"
    r" event=(?P<event>\S+) state=(?P<state>\S+) attempt=(?P<attempt>\d+)"
    r" elapsed_ms=(?P<elapsed>\d+) cause=(?P<cause>.+)$"
)
POLL_LINE = re.compile(
    r"^poll partner=(?P<partner>\S+) seen=(?P<seen>\d+) applied=(?P<applied>\d+)"
    r" held=(?P<held>\d+) elapsed_ms=(?P<elapsed>\d+) cause=(?P<cause>.+)$"
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A FHIR partner and one queued change to it."""
    engine = make_engine(database_url, chain_key=b"sync-logs-test-chain-key")
    upgrade(engine)
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        session.add(
            PartnerRow(
                client_id="bayview-ehr",
                name="Bayview",
                organization_id="org-1",
                scopes="system/*.rs",
                created_at=now,
                channel="fhir",
                channel_address="https://fhir.bayview.example.org",
            )
        )
        session.add(
            OutboxRow(
                created_at=now,
                partner_client_id="bayview-ehr",
                channel="fhir",
                event="task-changed",
                resource_type="Task",
                resource_id="t1",
                version_id=1,
                state="queued",
                next_attempt_at=now,
            )
        )
    yield engine
    engine.dispose()


class Answers:
    """A partner that answers as the test says."""

    def __init__(self, answer: Receipt | Exception) -> None:
        self.answer = answer

    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def lines(caplog: pytest.LogCaptureFixture, pattern: re.Pattern[str]) -> list[dict[str, str]]:
    found = [pattern.match(record.getMessage()) for record in caplog.records]
    return [match.groupdict() for match in found if match is not None]


def dispatch_once(
    engine: Engine, answer: Receipt | Exception, caplog: pytest.LogCaptureFixture
) -> dict[str, str]:
    with caplog.at_level(logging.INFO, logger="interop.sync"):
        Dispatcher(engine, Answers(answer), POLICY, lambda: datetime.now(UTC)).run_once()
    [line] = lines(caplog, DELIVERY_LINE)
    return line


def test_a_delivery_logs_its_ids_channel_event_state_attempt_and_time(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    line = dispatch_once(engine, Receipt(Delivery.ACKNOWLEDGED, "Task/9"), caplog)
    assert int(line["id"]) >= 1
    assert int(line["elapsed"]) >= 0
    assert {k: line[k] for k in ("partner", "channel", "event", "state", "attempt", "cause")} == {
        "partner": "bayview-ehr",
        "channel": "fhir",
        "event": "task-changed",
        "state": "acknowledged",
        "attempt": "1",
        "cause": "-",
    }


def test_a_refusal_logs_our_reason_and_not_what_the_partner_quoted(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    line = dispatch_once(engine, PartnerRejected("HTTP 422", QUOTED), caplog)
    assert (line["state"], line["cause"]) == ("failed", "HTTP 422")
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert not any(word in caplog.text for word in PATIENT_DATA)


def test_a_retry_logs_the_state_it_left_the_row_in(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    line = dispatch_once(engine, PartnerUnavailable("HTTP 503", retry_after=5), caplog)
    assert (line["state"], line["attempt"], line["cause"]) == ("queued", "1", "HTTP 503")


def test_the_dispatcher_says_what_it_does_on_start(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    stop.set()
    with caplog.at_level(logging.INFO, logger="interop.sync"):
        Dispatcher(
            engine, Answers(Receipt(Delivery.ACKNOWLEDGED, "")), POLICY, lambda: datetime.now(UTC)
        ).run_forever(stop, 0.5, 7)
    assert caplog.messages == [
        "dispatcher started: up to 7 deliveries per round, resting 0.50s when none is due,"
        " 5 attempts at most, lease 300s"
    ]


class Server:
    """A partner's FHIR server, as the poller's channel reaches it."""

    def __init__(self, answer: list[dict[str, Any]] | Exception) -> None:
        self.answer = answer

    def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Channels:
    def __init__(self, server: Server) -> None:
        self.server = server

    def fhir_channel(self, partner: PartnerRow) -> Server:
        return self.server


def poller(engine: Engine, answer: list[dict[str, Any]] | Exception) -> Poller:
    channels = cast(ChannelDeliverer, Channels(Server(answer)))
    return Poller(engine, channels, "https://us.example.org/fhir", lambda: datetime.now(UTC))


def test_a_poll_round_logs_its_counts_per_partner(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    someone_elses = {"resourceType": "Task", "id": "x", "status": "requested"}
    with caplog.at_level(logging.INFO, logger="interop.sync"):
        poller(engine, [someone_elses]).run_once()
    [line] = lines(caplog, POLL_LINE)
    assert int(line["elapsed"]) >= 0
    assert {k: line[k] for k in ("partner", "seen", "applied", "held", "cause")} == {
        "partner": "bayview-ehr",
        "seen": "1",
        "applied": "0",
        "held": "0",
        "cause": "-",
    }


def test_a_failed_poll_logs_our_reason_only(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="interop.sync"):
        [report] = poller(engine, PartnerRejected("HTTP 403", QUOTED)).run_once()
    assert report.error.startswith("HTTP 403")
    [line] = lines(caplog, POLL_LINE)
    assert (line["seen"], line["cause"]) == ("0", "HTTP 403")
    assert not any(word in caplog.text for word in PATIENT_DATA)


def test_the_poller_says_whom_it_reads_and_how_often(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="interop.sync"):
        poller(engine, []).announce(60)
    assert caplog.messages == [
        "poller started: 1 FHIR partners (bayview-ehr), a full round every 60s,"
        " notified partners within a second"
    ]
