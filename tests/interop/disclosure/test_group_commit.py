"""Group commit of the disclosure log (issue 13, point 1): concurrent requests' entries are
appended in shared transactions, each request returns only once its own entries are durable,
and the chain stays exact."""

import asyncio
import threading
from datetime import UTC, datetime

from sqlalchemy import event
from sqlmodel import Session, col, select

from interop.audit.group_commit import GroupCommitLog
from interop.audit.log import LogEntry, verify
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from interop.store.tables import DisclosureLogRow

WRITERS = 24


def entry(number: int) -> LogEntry:
    return LogEntry(
        recorded_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        client_id=f"client-{number}",
        requester=f"Organization/reader-{number}",
        patient="Patient/p1",
        purposes=("TREAT",),
        interaction="read",
        decision="deny",
        rule="P2",
        consent=None,
        provision=None,
        resources=(f"Goal/g{number}",),
        labels=(),
        part2=True,
        emergency=False,
        emergency_facts=None,
    )


def test_concurrent_writers_share_transactions_and_the_chain_stays_exact(
    database_url: str,
) -> None:
    engine = make_engine(database_url, chain_key=b"group-commit-test-key-0123456789")
    upgrade(engine)
    commits: list[int] = []
    event.listen(engine.engine, "commit", lambda _connection: commits.append(1))
    log = GroupCommitLog(engine)
    durable: list[int] = []
    start = threading.Barrier(WRITERS)

    def request(number: int) -> None:
        start.wait()
        log.write([entry(number)])
        with Session(engine) as session:  # once write returns, the entry is there to read
            found = session.exec(
                select(DisclosureLogRow).where(
                    col(DisclosureLogRow.client_id) == f"client-{number}"
                )
            ).first()
        if found is not None:
            durable.append(number)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with Session(engine) as session:
        report = verify(session)
        seqs = list(session.exec(select(DisclosureLogRow.seq).order_by(col(DisclosureLogRow.seq))))
    engine.dispose()
    assert sorted(durable) == list(range(WRITERS))
    assert report.intact, report
    assert seqs == list(range(1, WRITERS + 1))
    assert len(commits) < WRITERS  # at least one batch carried several requests' entries


def test_a_batch_that_cannot_be_committed_fails_every_request_in_it(database_url: str) -> None:
    engine = make_engine(database_url)  # no chain key: appending must fail, nothing is written
    upgrade(engine)
    log = GroupCommitLog(engine)
    failures: list[str] = []

    def request(number: int) -> None:
        try:
            log.write([entry(number)])
        except RuntimeError as error:
            failures.append(str(error))

    threads = [threading.Thread(target=request, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with Session(engine) as session:
        rows = session.exec(select(DisclosureLogRow)).all()
    engine.dispose()
    assert len(failures) == 4
    assert rows == []


def test_requests_awaiting_on_the_event_loop_share_transactions(database_url: str) -> None:
    """Reads served on the loop await their entries: the loop hands them all over before the
    writer's turn, and each coroutine resumes once its own entry is durable."""
    engine = make_engine(database_url, chain_key=b"group-commit-test-key-0123456789")
    upgrade(engine)
    commits: list[int] = []
    event.listen(engine.engine, "commit", lambda _connection: commits.append(1))
    log = GroupCommitLog(engine)

    async def request(number: int) -> bool:
        await log.write_async([entry(number)])
        with Session(engine) as session:
            found = session.exec(
                select(DisclosureLogRow).where(
                    col(DisclosureLogRow.client_id) == f"client-{number}"
                )
            ).first()
        return found is not None

    async def requests() -> list[bool]:
        return await asyncio.gather(*(request(number) for number in range(WRITERS)))

    durable = asyncio.run(requests())
    with Session(engine) as session:
        report = verify(session)
    engine.dispose()
    assert durable == [True] * WRITERS
    assert report.intact, report
    assert report.rows == WRITERS
    assert len(commits) < WRITERS


def test_an_awaited_batch_that_cannot_be_committed_fails_every_request(
    database_url: str,
) -> None:
    engine = make_engine(database_url)  # no chain key: appending must fail
    upgrade(engine)
    log = GroupCommitLog(engine)

    async def requests() -> list[BaseException | None]:
        return await asyncio.gather(
            *(log.write_async([entry(number)]) for number in range(4)), return_exceptions=True
        )

    outcomes = asyncio.run(requests())
    with Session(engine) as session:
        rows = session.exec(select(DisclosureLogRow)).all()
    engine.dispose()
    assert [type(outcome) for outcome in outcomes] == [RuntimeError] * 4
    assert rows == []
